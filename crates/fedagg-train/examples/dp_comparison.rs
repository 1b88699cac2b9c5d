//! DP that is useful, at scale: FedProx's Synthetic-IID federated over 1,000 participants,
//! about 100 per round, multinomial logistic regression; non-private FedAvg against central DP,
//! distributed DP and record-level DP-SGD at a target epsilon (delta 1e-5), each calibrated here
//! with `fedagg-dp`'s accountants. The mechanisms are the service's (`sim::Privacy`).
//!
//! `cargo run --release -p fedagg-train --example dp_comparison -- METHOD [EPSILON] [ROUNDS] [SEED] [CLIP]`
//! with METHOD `none`, `central`, `distributed` or `dpsgd` (defaults: 3, 200, 1, 1.0). Prints CSV,
//! `round,clients,train_loss,test_loss,test_accuracy,epsilon`, and the calibration on stderr.
//!
//! - **central**: Poisson sampling at q = 0.1, updates clipped to L2 norm `CLIP`, the noise
//!   multiplier the smallest that keeps `ROUNDS` rounds within epsilon (RDP).
//! - **distributed**: the same, with each participant's discrete Gaussian share at `BITS` bits
//!   per coordinate, calibrated for `MIN_SURVIVORS` survivors by the distributed discrete
//!   Gaussian's accountant; a round with fewer releases nothing.
//! - **dpsgd**: uniform cohorts of 100 and plain FedAvg, each participant running DP-SGD with a
//!   record-level budget of epsilon, its noise calibrated so that `PARTICIPATIONS` local trainings
//!   of a median-size participant fit (a participant stops when its budget is spent). Its
//!   epsilon protects one *record*; the other two protect a whole participant.
#![allow(missing_docs)]

use fedagg_dp::rdp::{default_orders, epsilon};
use fedagg_dp::Accountant;
use fedagg_train::dpsgd::DpSgd;
use fedagg_train::local::{Algorithm, LocalConfig};
use fedagg_train::partition::Partition;
use fedagg_train::server::ServerOptimizer;
use fedagg_train::sim::{simulate_with, DataSource, Privacy, Setup, SimConfig};
use fedagg_train::Arch;

const CLIENTS: usize = 1000;
const FRACTION: f64 = 0.1;
const DELTA: f64 = 1e-5;
const BITS: u32 = 16;
const MIN_SURVIVORS: u32 = 80;
/// The largest cohort a round may have (the federation's `max_clients`), which sizes the scale
/// against wrap-around: Poisson cohorts at q = 0.1 of 1,000 stay far below it.
const MAX_COHORT: u32 = 200;
/// Local trainings a DP-SGD participant's budget is calibrated for: about the 99.9th percentile
/// of Binomial(200, 0.1).
const PARTICIPATIONS: u64 = 36;
const RECORD_CLIP: f64 = 1.0;

fn local() -> LocalConfig {
    LocalConfig {
        epochs: 1,
        batch_size: 10,
        lr: 0.05,
        momentum: 0.0,
    }
}

/// The smallest noise multiplier whose `epsilon(z)` (falling in z) meets `target`, to 0.1 %;
/// `None` when even z = 10^4 does not (an accountant with a floor).
fn bisect(target: f64, eps: impl Fn(f64) -> f64) -> Option<f64> {
    let (mut lo, mut hi) = (0.05, 0.1);
    while eps(hi) > target {
        lo = hi;
        hi *= 2.0;
        if hi > 1e4 {
            return None;
        }
    }
    while hi - lo > 1e-3 * hi {
        let mid = 0.5 * (lo + hi);
        if eps(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// The privacy of `method` at `target`, and the epsilon spent after a number of rounds.
type Calibrated = (Privacy, Box<dyn Fn(usize) -> f64>);

fn privacy(
    method: &str,
    target: f64,
    rounds: usize,
    setup: &Setup,
    clip: f64,
) -> Result<Calibrated, Box<dyn std::error::Error>> {
    Ok(match method {
        "none" => (Privacy::None, Box::new(|_| 0.0)),
        "central" => {
            let z =
                Accountant::Rdp.calibrate_sigma(target, DELTA, FRACTION, rounds as u64, 1e-3)?;
            let spent = Accountant::Rdp.epsilon(FRACTION, z, rounds as u64, DELTA)?;
            eprintln!("central: noise multiplier {z:.4}, epsilon {spent:.4}");
            (
                Privacy::Central {
                    clip,
                    noise_multiplier: z,
                },
                Box::new(move |r| {
                    Accountant::Rdp
                        .epsilon(FRACTION, z, r as u64, DELTA)
                        .unwrap_or(f64::NAN)
                }),
            )
        }
        "distributed" => distributed(target, rounds, setup, clip)?,
        "dpsgd" => {
            let mut sizes: Vec<usize> = setup.clients.iter().map(|c| c.len()).collect();
            sizes.sort_unstable();
            let median = sizes[sizes.len() / 2];
            let probe = DpSgd {
                max_grad_norm: RECORD_CLIP,
                noise_multiplier: 1.0,
            };
            let s = probe.schedule(median, &local())?;
            let steps = s.steps * PARTICIPATIONS;
            let z = Accountant::Rdp.calibrate_sigma(target, DELTA, s.q, steps, 1e-3)?;
            eprintln!(
                "dpsgd: median participant {median} records, q {:.3}, {} steps a training, \
                 noise multiplier {z:.4} for {PARTICIPATIONS} trainings",
                s.q, s.steps
            );
            (
                Privacy::Records {
                    dp: DpSgd {
                        max_grad_norm: RECORD_CLIP,
                        noise_multiplier: z,
                    },
                    epsilon: target,
                },
                // Record-level: each participant's own cap.
                Box::new(move |_| target),
            )
        }
        other => return Err(format!("unknown method {other:?}").into()),
    })
}

/// Distributed DP at `target`: the noise multiplier from the distributed discrete Gaussian's
/// accountant over `rounds`.
fn distributed(
    target: f64,
    rounds: usize,
    setup: &Setup,
    clip: f64,
) -> Result<Calibrated, Box<dyn std::error::Error>> {
    let len = (setup.clients[0].dim + 1) * setup.clients[0].classes;
    let params =
        move |z: f64| fedagg_dp::ddg::DdgParams::new(len, clip, z, BITS, MIN_SURVIVORS, MAX_COHORT);
    let eps_after = move |z: f64, rounds: usize| -> f64 {
        let orders = default_orders();
        let Ok(p) = params(z) else {
            return f64::INFINITY;
        };
        let Ok(one) = p.rdp(MIN_SURVIVORS, FRACTION, &orders) else {
            return f64::INFINITY;
        };
        let all: Vec<f64> = one.iter().map(|r| r * rounds as f64).collect();
        epsilon(&orders, &all, DELTA).map_or(f64::INFINITY, |s| s.epsilon)
    };
    let eps = |z: f64| eps_after(z, rounds);
    let Some(z) = bisect(target, eps) else {
        return Err(format!(
            "no noise multiplier up to 10^4 reaches epsilon {target}: the distributed \
             discrete Gaussian's accountant (Zhu and Wang's general bound for Poisson \
             sampling, as in the paper's code) spends about {:.2} over {rounds} rounds at \
             q = {FRACTION} whatever the noise",
            eps(1e4)
        )
        .into());
    };
    let p = params(z)?;
    eprintln!(
        "distributed: noise multiplier {z:.4} over {MIN_SURVIVORS} survivors, {BITS} bits, \
         scale {:.1}, wrap-around bound {:.1e} at {MAX_COHORT} survivors, epsilon {:.4}",
        p.scale(),
        p.wrap_probability(MAX_COHORT),
        eps(z)
    );
    Ok((
        Privacy::Distributed {
            clip,
            noise_multiplier: z,
            bits: BITS,
            min_survivors: MIN_SURVIVORS,
        },
        Box::new(move |r| eps_after(z, r)),
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let method = arg(0, "none");
    let target: f64 = arg(1, "3").parse()?;
    let rounds: usize = arg(2, "200").parse()?;
    let seed: u64 = arg(3, "1").parse()?;
    let clip: f64 = arg(4, "1.0").parse()?;
    tch::set_num_threads(1);
    let setup = Setup::new(
        &DataSource::SyntheticIid,
        CLIENTS,
        Partition::Iid,
        0.2,
        seed,
    )?;
    let (privacy, spent) = privacy(&method, target, rounds, &setup, clip)?;
    let cfg = SimConfig {
        arch: Arch::Linear,
        local: local(),
        algorithm: Algorithm::FedAvg,
        server: ServerOptimizer::FedAvg { lr: 1.0 },
        fraction: FRACTION,
        rounds,
        seed,
    };
    println!("round,clients,train_loss,test_loss,test_accuracy,epsilon");
    simulate_with(&setup, &cfg, &privacy, |m| {
        let eps = spent(m.round);
        println!(
            "{},{},{:.4},{:.4},{:.4},{}",
            m.round,
            m.clients,
            m.train_loss,
            m.test.loss,
            m.test.accuracy,
            if method == "none" {
                String::new()
            } else {
                format!("{eps:.4}")
            }
        )
    })?;
    Ok(())
}
