//! DP-SGD at a participant: one step equals a direct computation of the clipped per-example
//! gradients and the noise, the schedule is Opacus's, the accountant agrees with Opacus's
//! `RDPAccountant`, and the budget is enforced before training.

#![allow(clippy::unwrap_used)]

use fedagg_dp::Ledger;
use fedagg_train::dpsgd::DpSgd;
use fedagg_train::local::{Algorithm, LocalConfig};
use fedagg_train::{Arch, Dataset, Net};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Six records of three features, three classes, spread so that some gradients exceed the clip
/// and some do not.
fn records() -> Dataset {
    let features = vec![
        0.1, 0.2, -0.1, //
        2.0, -1.5, 0.7, //
        -0.3, 0.0, 0.4, //
        3.0, 2.5, -2.0, //
        0.05, -0.05, 0.1, //
        -1.0, 1.2, 0.9,
    ];
    Dataset::new(features, vec![0, 1, 2, 0, 1, 2], 3, 3).unwrap()
}

/// Softmax cross-entropy gradient of `Linear(3, 3)` at one record, flat as the model's
/// parameters are (tch creates the bias first, then the weight, row-major `[class][feature]`).
fn gradient(params: &[f32], x: &[f32], y: usize) -> Vec<f64> {
    let (d, c) = (3, 3);
    let logits: Vec<f64> = (0..c)
        .map(|k| {
            f64::from(params[k])
                + (0..d)
                    .map(|j| f64::from(params[c + k * d + j]) * f64::from(x[j]))
                    .sum::<f64>()
        })
        .collect();
    let top = logits.iter().cloned().fold(f64::MIN, f64::max);
    let z: f64 = logits.iter().map(|l| (l - top).exp()).sum();
    let err: Vec<f64> = (0..c)
        .map(|k| (logits[k] - top).exp() / z - if k == y { 1.0 } else { 0.0 })
        .collect();
    let mut g = vec![0.0; d * c + c];
    for k in 0..c {
        g[k] = err[k];
        for j in 0..d {
            g[c + k * d + j] = err[k] * f64::from(x[j]);
        }
    }
    g
}

#[test]
fn one_step_is_the_direct_computation_of_clipping_and_noise() {
    let data = records();
    let mut net = Net::new(Arch::Linear, &data, 5).unwrap();
    let global = net.params().unwrap();
    assert_eq!(global.len(), 12);
    // One epoch of one batch holding every record: q = 1, one step, so the batch is known.
    let cfg = LocalConfig {
        epochs: 1,
        batch_size: 6,
        lr: 0.5,
        momentum: 0.0,
    };
    let dp = DpSgd {
        max_grad_norm: 0.8,
        noise_multiplier: 0.7,
    };
    let s = dp.schedule(data.len(), &cfg).unwrap();
    assert_eq!((s.q, s.steps), (1.0, 1));
    let update = net
        .train_local_dp(
            &global,
            &data,
            &cfg,
            Algorithm::FedAvg,
            None,
            &dp,
            1,
            &mut ChaCha20Rng::seed_from_u64(9),
        )
        .unwrap();
    // Directly: clip each record's gradient, sum, add the noise the same generator draws, divide
    // by the expected batch, step.
    let mut sum = vec![0.0; 12];
    let mut clipped = 0;
    for i in 0..6 {
        let g = gradient(
            &global,
            &data.features[3 * i..3 * i + 3],
            data.labels[i] as usize,
        );
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let scale = if norm > dp.max_grad_norm {
            clipped += 1;
            dp.max_grad_norm / norm
        } else {
            1.0
        };
        for (s, v) in sum.iter_mut().zip(&g) {
            *s += v * scale;
        }
    }
    assert!(
        (1..6).contains(&clipped),
        "{clipped} of 6 clipped: the test needs both kinds"
    );
    fedagg_dp::noise::add_gaussian(&mut sum, 0.7 * 0.8, &mut ChaCha20Rng::seed_from_u64(9))
        .unwrap();
    for (i, (got, s)) in update.delta.iter().zip(&sum).enumerate() {
        let want = -cfg.lr * s / 6.0;
        assert!(
            (f64::from(*got) - want).abs() < 1e-5,
            "parameter {i}: {got} vs {want}"
        );
    }
    // Another noise draw gives another step; the same one repeats exactly.
    let again = net
        .train_local_dp(
            &global,
            &data,
            &cfg,
            Algorithm::FedAvg,
            None,
            &dp,
            1,
            &mut ChaCha20Rng::seed_from_u64(9),
        )
        .unwrap();
    assert_eq!(again.delta, update.delta);
    let other = net
        .train_local_dp(
            &global,
            &data,
            &cfg,
            Algorithm::FedAvg,
            None,
            &dp,
            1,
            &mut ChaCha20Rng::seed_from_u64(10),
        )
        .unwrap();
    assert_ne!(other.delta, update.delta);
}

#[test]
fn dp_sgd_still_learns_with_moderate_noise() {
    let data = Dataset::digits().subset(&(0..400).collect::<Vec<_>>());
    let mut net = Net::new(Arch::Linear, &data, 3).unwrap();
    let global = net.params().unwrap();
    let before = net.evaluate(&data);
    let cfg = LocalConfig {
        epochs: 5,
        batch_size: 40,
        lr: 0.5,
        momentum: 0.0,
    };
    let dp = DpSgd {
        max_grad_norm: 1.0,
        noise_multiplier: 1.0,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let u = net
        .train_local_dp(
            &global,
            &data,
            &cfg,
            Algorithm::FedAvg,
            None,
            &dp,
            2,
            &mut rng,
        )
        .unwrap();
    assert_eq!(u.steps, 50);
    let after = net.evaluate(&data);
    assert!(
        after.accuracy > before.accuracy + 0.3,
        "{before:?} -> {after:?}"
    );
}

/// The schedule is Opacus's `DPDataLoader`'s: `ceil(n / batch)` steps an epoch at
/// `q = 1 / ceil(n / batch)`.
#[test]
fn the_schedule_is_opacus_s() {
    let dp = DpSgd {
        max_grad_norm: 1.0,
        noise_multiplier: 1.0,
    };
    let cfg = |epochs, batch_size| LocalConfig {
        epochs,
        batch_size,
        lr: 0.1,
        momentum: 0.0,
    };
    let s = dp.schedule(100, &cfg(5, 32)).unwrap();
    assert_eq!((s.q, s.steps), (0.25, 20));
    let s = dp.schedule(60, &cfg(3, 20)).unwrap();
    assert_eq!((s.q, s.steps), (1.0 / 3.0, 9));
    assert!(dp.schedule(0, &cfg(1, 1)).is_err());
    assert!(dp.schedule(10, &cfg(0, 1)).is_err());
}

/// One line of `tests/data/opacus-dpsgd.csv`: `q, sigma, steps, delta, epsilon`.
fn opacus() -> Vec<(f64, f64, u64, f64, f64)> {
    include_str!("data/opacus-dpsgd.csv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            (f[0], f[1], f[2] as u64, f[3], f[4])
        })
        .collect()
}

/// Against Opacus 1.6's `RDPAccountant` for the same sampling rates, noise and steps: at its
/// orders (1.1 to 10.9, then 12 to 63) the epsilon agrees to 1e-9; the ledger's own orders are a
/// superset, so its epsilon is never above Opacus's, and within 2 % of it.
#[test]
fn the_accountant_agrees_with_opacus() {
    let mut opacus_orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    opacus_orders.extend((12..64).map(f64::from));
    let cases = opacus();
    assert_eq!(cases.len(), 27);
    for (q, sigma, steps, delta, want) in cases {
        let rdp = fedagg_dp::rdp::compute_rdp(q, sigma, steps, &opacus_orders).unwrap();
        let got = fedagg_dp::rdp::epsilon(&opacus_orders, &rdp, delta)
            .unwrap()
            .epsilon;
        assert!(
            (got / want - 1.0).abs() < 1e-9,
            "q {q} sigma {sigma} steps {steps}: {got} vs Opacus {want}"
        );
        let mut ledger = Ledger::new(1e6, delta).unwrap();
        let charged = ledger.charge_steps(q, sigma, steps).unwrap().epsilon;
        assert!(
            charged <= want * (1.0 + 1e-12) && charged >= want * 0.98,
            "q {q} sigma {sigma} steps {steps}: ledger {charged} vs Opacus {want}"
        );
    }
}

/// The participant's budget is charged for the whole local training before it starts, and a
/// training that would pass it is refused with the ledger unchanged.
#[test]
fn the_record_budget_refuses_a_training_past_it() {
    let dp = DpSgd {
        max_grad_norm: 1.0,
        noise_multiplier: 1.1,
    };
    let cfg = LocalConfig {
        epochs: 2,
        batch_size: 10,
        lr: 0.1,
        momentum: 0.0,
    };
    let mut ledger = Ledger::new(8.0, 1e-5).unwrap();
    let mut rounds = 0;
    let err = loop {
        match dp.charge(&mut ledger, 100, &cfg) {
            Ok(eps) => {
                rounds += 1;
                assert!(eps <= 8.0);
            }
            Err(e) => break e,
        }
    };
    assert!(rounds > 1, "{rounds} trainings");
    assert!(err.to_string().contains("record-level privacy"), "{err}");
    assert_eq!(ledger.rounds(), rounds * 20);
    let direct = fedagg_dp::rdp::epsilon_for(0.1, 1.1, rounds * 20, 1e-5)
        .unwrap()
        .epsilon;
    assert!((ledger.spent().unwrap().epsilon - direct).abs() < 1e-9);
}

/// The private simulation runs each mechanism of the service: with little noise every one of
/// them learns, and under record-level DP a participant stops once its budget is spent.
#[test]
fn private_simulations_learn_and_record_budgets_run_out() {
    use fedagg_train::server::ServerOptimizer;
    use fedagg_train::sim::{simulate_with, DataSource, Privacy, Setup, SimConfig};
    tch::set_num_threads(1);
    let setup = Setup::new(
        &DataSource::SyntheticIid,
        20,
        fedagg_train::partition::Partition::Iid,
        0.2,
        2,
    )
    .unwrap();
    let cfg = SimConfig {
        arch: Arch::Linear,
        local: LocalConfig {
            epochs: 1,
            batch_size: 10,
            lr: 0.05,
            momentum: 0.0,
        },
        algorithm: Algorithm::FedAvg,
        server: ServerOptimizer::FedAvg { lr: 1.0 },
        fraction: 0.5,
        rounds: 6,
        seed: 3,
    };
    let dp = DpSgd {
        max_grad_norm: 1.0,
        noise_multiplier: 0.3,
    };
    for privacy in [
        Privacy::None,
        Privacy::Central {
            clip: 5.0,
            noise_multiplier: 0.05,
        },
        Privacy::Distributed {
            clip: 5.0,
            noise_multiplier: 0.05,
            bits: 24,
            min_survivors: 10,
        },
        Privacy::Records { dp, epsilon: 1e4 },
    ] {
        let (_, h) = simulate_with(&setup, &cfg, &privacy, |_| {}).unwrap();
        assert!(
            h[5].test.accuracy > h[0].test.accuracy.max(0.3),
            "{privacy:?}: {:?}",
            h.iter().map(|m| m.test.accuracy).collect::<Vec<_>>()
        );
    }
    // A budget that covers about two local trainings: the cohorts empty out.
    let s = dp.schedule(setup.clients[0].len(), &cfg.local).unwrap();
    let two = fedagg_dp::rdp::epsilon_for(s.q, 0.3, 2 * s.steps, 1e-5)
        .unwrap()
        .epsilon;
    let (_, h) = simulate_with(
        &setup,
        &cfg,
        &Privacy::Records {
            dp,
            epsilon: two * 1.01,
        },
        |_| {},
    )
    .unwrap();
    let clients: Vec<usize> = h.iter().map(|m| m.clients).collect();
    assert!(clients[0] > 0 && clients[5] < clients[0], "{clients:?}");
}
