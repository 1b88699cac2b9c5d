#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;

/// One line of `tests/data/pld-vectors.txt`: `q sigma steps delta epsilon`.
fn vectors() -> Vec<(f64, f64, u64, f64, f64)> {
    include_str!("../../tests/data/pld-vectors.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<f64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
            (f[0], f[1], f[2] as u64, f[3], f[4])
        })
        .collect()
}

#[test]
fn the_fft_convolution_is_the_direct_one() {
    let a = [0.1, 0.2, 0.3, 0.4];
    let b = [0.5, 0.25, 0.25];
    let direct: Vec<f64> = (0..6)
        .map(|k| {
            (0..4)
                .filter(|&i| k >= i && k - i < 3)
                .map(|i| a[i] * b[k - i])
                .sum()
        })
        .collect();
    for (x, y) in convolve(&a, &b).iter().zip(&direct) {
        assert!((x - y).abs() < 1e-15, "{x} vs {y}");
    }
    let sq = convolve(&a, &a);
    assert!((sq[3] - 2.0 * (0.1 * 0.4 + 0.2 * 0.3)).abs() < 1e-15);
}

#[test]
fn a_discretised_round_is_a_distribution_that_never_undercounts_delta() {
    for (q, sigma) in [(1.0, 1.0), (0.1, 0.6), (0.01, 2.0)] {
        let (remove, add) = Pld::sampled_gaussian(q, sigma, 1e-3).unwrap();
        for (pld, exact) in [
            (
                &remove,
                &(|e| remove_delta(q, sigma, e)) as &dyn Fn(f64) -> f64,
            ),
            (&add, &|e| add_delta(q, sigma, e)),
        ] {
            let mass: f64 = pld.pmf.iter().sum::<f64>() + pld.infinity;
            assert!(
                (mass - 1.0).abs() < 1e-9,
                "q {q} sigma {sigma}: mass {mass}"
            );
            for eps in [0.0, 0.05, 0.3, 1.0, 2.5] {
                let (got, want) = (pld.delta(eps), exact(eps));
                // Never below, beyond the rounding of summing the masses.
                assert!(
                    got >= want * (1.0 - 1e-10) - 1e-15,
                    "q {q}: delta({eps}) {got} < {want}"
                );
                assert!(
                    got <= want * 1.01 + 1e-12,
                    "q {q}: delta({eps}) {got} vs {want}"
                );
            }
        }
    }
}

/// At `q = 1` the exact epsilon is known in closed form: the PLD never reports less, and stays
/// within 1e-3 of it.
#[test]
fn without_sampling_the_pld_is_never_below_the_exact_gaussian() {
    for sigma in [0.6, 1.0, 2.0, 4.0] {
        // Without sampling both directions are the same Gaussian: one suffices.
        let (one, _) = Pld::sampled_gaussian(1.0, sigma, DEFAULT_INTERVAL).unwrap();
        for steps in [1u64, 10, 100] {
            // (100 steps at sigma 0.6 is the dp-accounting test's work already)
            if sigma < 1.0 && steps == 100 {
                continue;
            }
            let composed = one.self_compose(steps);
            for delta in [1e-5, 1e-7] {
                let exact = gaussian_epsilon(sigma, steps, delta).unwrap();
                let pld = composed.epsilon(delta);
                assert!(pld >= exact, "sigma {sigma} steps {steps}: {pld} < {exact}");
                assert!(
                    pld <= exact * (1.0 + 1e-3),
                    "sigma {sigma} steps {steps}: {pld} vs {exact}"
                );
            }
        }
    }
    // The closed form itself: sigma = 1, one step, delta at its epsilon.
    let eps = gaussian_epsilon(1.0, 1, 1e-5).unwrap();
    assert!((remove_delta(1.0, 1.0, eps) / 1e-5 - 1.0).abs() < 1e-6);
}

/// Against dp-accounting 0.6's PLD accountant (add/remove, its default grid of 1e-4), on the
/// grid the vectors hold: q in {1, 0.1, 0.01}, sigma in {0.6, 1, 2, 4}, delta in {1e-5, 1e-7},
/// at 1 and 100 steps (see `scripts/pld-vectors.py` for 10^4).
#[test]
fn the_pld_agrees_with_dp_accounting() {
    let cases = vectors();
    assert!(cases.len() >= 48, "{} vectors", cases.len());
    let mut done = std::collections::BTreeMap::new();
    for (q, sigma, steps, delta, want) in cases {
        let key = (q.to_bits(), sigma.to_bits(), steps);
        let directions = done.entry(key).or_insert_with(|| {
            let (r, a) = Pld::sampled_gaussian(q, sigma, DEFAULT_INTERVAL).unwrap();
            // Without sampling the two directions are mirror images: one suffices.
            let both = if q < 1.0 { vec![r, a] } else { vec![r] };
            both.into_iter()
                .map(|d| d.self_compose(steps))
                .collect::<Vec<_>>()
        });
        let got = directions
            .iter()
            .map(|d| d.epsilon(delta))
            .fold(0.0, f64::max);
        assert!(
            (got / want - 1.0).abs() < 1e-3,
            "q {q} sigma {sigma} steps {steps} delta {delta}: {got} vs {want}"
        );
    }
}
