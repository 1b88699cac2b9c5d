#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;
use crate::rdp::epsilon;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const SEED: [u8; 32] = [7; 32];

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

#[test]
fn the_rotation_keeps_the_norm_and_comes_back() {
    let mut r = rng(1);
    let v: Vec<f64> = (0..1024)
        .map(|_| (r.next_u64() % 1000) as f64 - 500.0)
        .collect();
    let mut w = v.clone();
    rotate(&mut w, &SEED);
    let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!((norm(&w) - norm(&v)).abs() < 1e-9 * norm(&v));
    assert_ne!(w, v);
    let mut other = v.clone();
    rotate(&mut other, &[8; 32]);
    assert_ne!(other, w, "the seed picks the rotation");
    rotate_back(&mut w, &SEED);
    for (a, b) in w.iter().zip(&v) {
        assert!((a - b).abs() < 1e-9, "{a} {b}");
    }
}

#[test]
fn the_rotation_flattens_a_spike() {
    // All the mass on one coordinate becomes +-1/sqrt(d) on every one.
    let mut v = vec![0.0; 256];
    v[3] = 1.0;
    rotate(&mut v, &SEED);
    for x in &v {
        assert!((x.abs() - 1.0 / 16.0).abs() < 1e-12);
    }
}

#[test]
fn rounded_bound_is_the_papers() {
    // Theorem 1: min(c + sqrt(d), sqrt(c^2 + d/4 + sqrt(2 ln(1/beta)) (c + sqrt(d)/2))).
    let (c, d) = (100.0, 1024);
    let expect = (c * c + 256.0 + (2.0f64 * (1.0 / BETA).ln()).sqrt() * (c + 16.0)).sqrt();
    assert!((rounded_l2_bound(c, BETA, d) - expect).abs() < 1e-12);
    assert_eq!(rounded_l2_bound(c, 0.0, d), c + 32.0);
}

proptest! {
    #[test]
    fn conditional_rounding_stays_within_its_bound(
        v in proptest::collection::vec(-50.0f64..50.0, 1..64),
        seed in any::<u64>(),
    ) {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let bound = rounded_l2_bound(norm.max(1e-9), BETA, v.len());
        let r = round_within(&v, bound, &mut rng(seed)).unwrap();
        let rn = r.iter().map(|&x| (x * x) as f64).sum::<f64>().sqrt();
        prop_assert!(rn <= bound + 1e-9);
        for (a, b) in r.iter().zip(&v) {
            prop_assert!((*a as f64 - b).abs() < 1.0);
        }
    }
}

fn params(len: usize, bits: u32, min: u32, max: u32) -> DdgParams {
    DdgParams::new(len, 1.0, 1.0, bits, min, max).unwrap()
}

#[test]
fn parameters_follow_from_the_spec_and_refuse_what_cannot_work() {
    let p = params(1000, 20, 10, 100);
    assert_eq!(p.dim(), 1024);
    assert!(p.scale() > 1.0);
    // sigma = z C s / sqrt(n_min), up to the sampler's fraction.
    let want = p.scale().powi(2) / 10.0;
    assert!((p.local_sigma_squared() / want - 1.0).abs() < 1e-9);
    // The scale is the largest that keeps the wrap-around bound at the target.
    assert!((p.wrap_probability(100) / WRAP_TARGET - 1.0).abs() < 1e-6);
    assert!(p.wrap_probability(10) < WRAP_TARGET);
    assert_eq!(p, params(1000, 20, 10, 100), "a pure function of the spec");
    assert!(DdgParams::new(10, 1.0, 1.0, 7, 3, 10).is_err());
    assert!(DdgParams::new(10, 1.0, 1.0, 63, 3, 10).is_err());
    assert!(DdgParams::new(10, 1.0, 1.0, 16, 11, 10).is_err());
    assert!(DdgParams::new(10, 0.0, 1.0, 16, 3, 10).is_err());
    assert!(DdgParams::new(0, 1.0, 1.0, 16, 3, 10).is_err());
    // Too few bits even for the rounding errors of 10^6 clients.
    assert!(DdgParams::new(10, 1.0, 1.0, 8, 3, 1_000_000).is_err());
}

/// Sum of encodings modulo 2^bits, as SecAgg computes it.
fn modular_sum(
    p: &DdgParams,
    updates: &[Vec<f32>],
    seed: &[u8; 32],
    r: &mut ChaCha20Rng,
) -> Vec<u64> {
    let mask = (1u64 << p.bits()) - 1;
    let mut sum = vec![0u64; p.dim()];
    for u in updates {
        let e = p.encode(u, seed, r).unwrap();
        for (s, x) in sum.iter_mut().zip(e) {
            *s = s.wrapping_add(x) & mask;
        }
    }
    sum
}

#[test]
fn the_decoded_sum_is_the_clipped_mean_plus_noise_of_the_calibrated_size() {
    let (m, n) = (100, 10u32);
    let p = DdgParams::new(m, 1.0, 0.5, 24, n, 20).unwrap();
    let mut r = rng(2);
    let updates: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            (0..m)
                .map(|j| ((i as usize * 7 + j) % 11) as f32 / 40.0 - 0.12)
                .collect()
        })
        .collect();
    // The clipped mean, computed directly.
    let mut want = vec![0.0f64; m];
    for u in &updates {
        let norm = u.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let k = if norm > 1.0 { 1.0 / norm } else { 1.0 };
        for (w, x) in want.iter_mut().zip(u) {
            *w += f64::from(*x) * k / f64::from(n);
        }
    }
    let sum = modular_sum(&p, &updates, &SEED, &mut r);
    let got = p.decode_sum(&sum, &SEED, f64::from(n)).unwrap();
    assert_eq!(got.len(), m);
    // The noise of the mean: z C / n per coordinate (0.05), plus rounding; 5 sigma.
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 5.0 * 0.05 + 1e-3, "{g} vs {w}");
    }
    let mse = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).powi(2))
        .sum::<f64>()
        / m as f64;
    assert!(
        mse > 0.0005 && mse < 0.005,
        "noise variance per coordinate {mse}, expected 0.0025"
    );
    assert!(p.decode_sum(&sum[1..], &SEED, 1.0).is_err());
    assert!(p.encode(&[0.0; 3], &SEED, &mut r).is_err());
    assert!(p.encode(&[f32::NAN; 100], &SEED, &mut r).is_err());
}

/// With noise at the analysis's worst case (the fewest survivors), the aggregate's noise
/// variance is `n_min sigma^2` per coordinate, as accounted.
#[test]
fn the_aggregate_noise_has_the_accounted_variance() {
    let (m, n_min) = (512, 5u32);
    let p = DdgParams::new(m, 1.0, 1.0, 20, n_min, 50).unwrap();
    let mut r = rng(3);
    let zeros = vec![vec![0.0f32; m]; n_min as usize];
    let mut samples = Vec::new();
    for round in 0..8u8 {
        let sum = modular_sum(&p, &zeros, &[round; 32], &mut r);
        let half = 1u64 << (p.bits() - 1);
        samples.extend(sum.iter().map(|&x| {
            if x >= half {
                x as f64 - (1u64 << p.bits()) as f64
            } else {
                x as f64
            }
        }));
    }
    let k = samples.len() as f64;
    let var = samples.iter().map(|x| x * x).sum::<f64>() / k;
    let want = f64::from(n_min) * p.local_sigma_squared();
    // Standard error of a variance estimate: sqrt(2 / k), about 2 % here; allow 5 of them.
    assert!(
        (var / want - 1.0).abs() < 5.0 * (2.0 / k).sqrt(),
        "{var} vs {want}"
    );
}

/// Wrap-around is at most as frequent as its bound says, and the test can fail: far past the
/// largest cohort the parameters were made for, sums do wrap.
#[test]
fn wrap_around_is_as_rare_as_its_bound() {
    let (m, max) = (16, 4u32);
    let p = DdgParams::new(m, 1.0, 0.3, 12, 2, max).unwrap();
    let mut r = rng(4);
    // The worst case: every update the same vector of norm C.
    let u: Vec<f32> = (0..m).map(|i| if i % 3 == 0 { 0.5 } else { 0.0 }).collect();
    for (n, trials) in [
        (max, 1000),
        (2 * max, 1000),
        (3 * max, 1000),
        (12 * max, 200),
    ] {
        let bound = p.wrap_probability(n);
        let mut wraps = 0;
        for t in 0..trials {
            let seed = [(t % 251) as u8; 32];
            let half = 1i64 << (p.bits() - 1);
            let mut exact = vec![0i64; p.dim()];
            for _ in 0..n {
                let e = p.encode(&u, &seed, &mut r).unwrap();
                for (s, x) in exact.iter_mut().zip(e) {
                    // Each contribution centred modulo 2^bits is its own exact value here.
                    let x = x as i64;
                    *s += if x >= half { x - 2 * half } else { x };
                }
            }
            wraps += usize::from(exact.iter().any(|&x| x >= half || x < -half));
        }
        let freq = wraps as f64 / f64::from(trials);
        let slack = 4.0 * (bound.min(0.25) / f64::from(trials)).sqrt();
        assert!(
            freq <= bound + slack,
            "n = {n}: wrapped {freq}, bound {bound}"
        );
        if n == 12 * max {
            assert!(freq > 0.5, "n = {n}: {freq}: the check can fail");
        }
    }
}

/// One parsed line of `tests/data/ddg-vectors.txt`.
struct Vector {
    gamma: f64,
    local: f64,
    n: u32,
    clip: f64,
    beta: f64,
    dim: usize,
    q: f64,
    steps: f64,
    delta: f64,
    epsilon: f64,
    rdp: [f64; 6],
}

const VECTOR_ORDERS: [u64; 6] = [2, 3, 8, 32, 128, 256];

fn vectors() -> Vec<Vector> {
    include_str!("../../tests/data/ddg-vectors.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<f64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
            Vector {
                gamma: f[0],
                local: f[1],
                n: f[2] as u32,
                clip: f[3],
                beta: f[4],
                dim: f[5] as usize,
                q: f[6],
                steps: f[7],
                delta: f[8],
                epsilon: f[9],
                rdp: f[10..16].try_into().unwrap(),
            }
        })
        .collect()
}

/// Against the authors' implementation (google-research/federated, distributed_dp), on 144
/// cases: dimensions 16 to 65,536, 3 to 1,000 clients, rates 1 to 0.01 over 1 to 1,000 steps,
/// local noise small enough for the discrete inflation `tau` to matter and large enough not to.
#[test]
fn the_accountant_agrees_with_the_authors_code() {
    let cases = vectors();
    assert_eq!(cases.len(), 144);
    let orders: Vec<f64> = (2..=128).chain([256]).map(|a| a as f64).collect();
    for v in &cases {
        let s = 1.0 / v.gamma;
        let bound = DdgBound::new(
            rounded_l2_bound(v.clip * s, v.beta, v.dim),
            (v.local * s).powi(2),
            v.n,
            v.dim,
        );
        for (a, want) in VECTOR_ORDERS.iter().zip(v.rdp) {
            let got = bound.sampled(v.q, *a) * v.steps;
            assert!(
                (got / want - 1.0).abs() < 1e-9,
                "order {a}: {got} vs {want}"
            );
        }
        let curve: Vec<f64> = orders
            .iter()
            .map(|&a| bound.sampled(v.q, a as u64) * v.steps)
            .collect();
        let eps = epsilon(&orders, &curve, v.delta).unwrap().epsilon;
        assert!(
            (eps / v.epsilon - 1.0).abs() < 1e-9,
            "{eps} vs {}",
            v.epsilon
        );
    }
}

#[test]
fn more_survivors_or_less_sampling_cost_less() {
    let p = params(1000, 20, 10, 100);
    let orders = crate::rdp::default_orders();
    let at = |n: u32, q: f64| p.rdp(n, q, &orders).unwrap();
    let (base, more, sampled) = (at(10, 1.0), at(40, 1.0), at(10, 0.1));
    for i in 0..orders.len() {
        assert!(more[i] < base[i] && sampled[i] <= base[i]);
    }
    assert!(
        p.rdp(9, 1.0, &orders).is_err(),
        "fewer survivors than calibrated for"
    );
    // Large local noise: tau vanishes, and the sum is the Gaussian mechanism with the rounded
    // sensitivity, alpha / (2 z'^2).
    let z = (10.0 * p.local_sigma_squared()).sqrt() / p.sensitivity();
    let plain = at(10, 1.0);
    for (a, r) in orders.iter().zip(&plain) {
        let want = a.ceil().max(2.0) / (2.0 * z * z);
        assert!((r / want - 1.0).abs() < 1e-9, "order {a}");
    }
    // The rounding costs little at this scale: z' is within 1 % of the spec's z = 1.
    assert!((z - 1.0).abs() < 0.01, "{z}");
}
