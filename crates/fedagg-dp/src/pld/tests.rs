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
            let composed = one.self_compose(steps).unwrap();
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

/// Checks our epsilon against each of `cases` (dp-accounting's), to 1e-3 relative, with PLDs of
/// up to `max_points` grid points.
fn agree(cases: Vec<(f64, f64, u64, f64, f64)>, max_points: usize) {
    let mut done = std::collections::BTreeMap::new();
    for (q, sigma, steps, delta, want) in cases {
        let key = (q.to_bits(), sigma.to_bits(), steps);
        let directions = done.entry(key).or_insert_with(|| {
            let (r, a) = Pld::sampled_gaussian(q, sigma, DEFAULT_INTERVAL).unwrap();
            // Without sampling the two directions are mirror images: one suffices.
            let both = if q < 1.0 { vec![r, a] } else { vec![r] };
            both.into_iter()
                .map(|d| d.self_compose_within(steps, max_points).unwrap())
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

/// Against dp-accounting 0.6's PLD accountant (add/remove, its default grid of 1e-4), on the
/// grid the vectors hold: q in {1, 0.1, 0.01}, sigma in {0.6, 1, 2, 4}, delta in {1e-5, 1e-7},
/// at 1 and 100 steps, and at 10^4 steps where q = 0.01 (seconds of work). The other 10^4-step
/// vectors take minutes: `.ci/run` runs them in a release build (the test below).
#[test]
fn the_pld_agrees_with_dp_accounting() {
    let cases: Vec<_> = vectors()
        .into_iter()
        .filter(|c| c.2 <= 100 || c.0 <= 0.01)
        .collect();
    assert!(cases.len() >= 56, "{} vectors", cases.len());
    agree(cases, MAX_POINTS);
}

/// The 10^4-step vectors at q = 0.1 and q = 1 (where dp-accounting could compute them: without
/// sampling, sigma 1 and 0.6 exhaust its memory). Without sampling at sigma 2 (epsilon about
/// 1,460) the composition needs 10^7 grid points, past what a ledger allows itself
/// ([`MAX_POINTS`]): the test lifts that limit, to check the algorithm there too.
#[test]
#[ignore = "minutes of FFTs: run by .ci/run in a release build"]
fn the_pld_agrees_with_dp_accounting_over_10_000_steps() {
    let cases: Vec<_> = vectors()
        .into_iter()
        .filter(|c| c.2 > 100 && c.0 > 0.01)
        .collect();
    assert!(cases.len() >= 12, "{} vectors", cases.len());
    agree(cases, 4 * MAX_POINTS);
}

/// Where a PLD would not fit its grid it is refused, never cut short: 10^4 steps without
/// sampling at sigma 0.6 (epsilon in the thousands; the closed form is the reference there).
#[test]
fn a_composition_past_the_grid_is_refused() {
    let err = epsilon_for(1.0, 0.6, 10_000, 1e-5, DEFAULT_INTERVAL).unwrap_err();
    assert!(err.to_string().contains("pld grid points"), "{err}");
    assert!(Pld::sampled_gaussian(1.0, 0.001, DEFAULT_INTERVAL).is_err());
}

/// Rounds with different parameters compose: the history's epsilon lies between each run's
/// alone and, at q = 1, equals the closed form of the combined Gaussian.
#[test]
fn a_history_composes_its_runs() {
    let run = |q, sigma, rounds| GaussianRounds { q, sigma, rounds };
    let d = 1e-5;
    // Without sampling, Gaussians compose exactly: 1/s^2 = 1/2^2 * 3 + 1/4^2 * 4 = 1.
    let h = [run(1.0, 2.0, 3), run(1.0, 4.0, 4)];
    let got = epsilon_of(&h, d, DEFAULT_INTERVAL).unwrap();
    let exact = gaussian_epsilon(1.0, 1, d).unwrap();
    assert!(got >= exact && got <= exact * 1.001, "{got} vs {exact}");
    let h = [run(0.1, 1.0, 10), run(0.01, 2.0, 50)];
    let got = epsilon_of(&h, d, DEFAULT_INTERVAL).unwrap();
    let a = epsilon_for(0.1, 1.0, 10, d, DEFAULT_INTERVAL).unwrap();
    let b = epsilon_for(0.01, 2.0, 50, d, DEFAULT_INTERVAL).unwrap();
    assert!(got > a.max(b) && got < a + b, "{got}: {a} and {b}");
    assert_eq!(epsilon_of(&[], d, DEFAULT_INTERVAL).unwrap(), 0.0);
    assert_eq!(
        epsilon_of(&[run(0.1, 1.0, 0)], d, DEFAULT_INTERVAL).unwrap(),
        0.0
    );
}
