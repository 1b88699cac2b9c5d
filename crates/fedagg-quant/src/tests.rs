//! Unit and property tests of the encoding: bounds, overflow refusal, unbiased rounding,
//! and the weighted-mean error bound.
#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn params() -> QuantParams {
    QuantParams::new(8.0, 1 << 16, 1000, 1000, 48).unwrap()
}

#[test]
fn modulus_bounds() {
    assert_eq!(Modulus::new(0), Err(Error::InvalidModulusBits(0)));
    assert_eq!(Modulus::new(65), Err(Error::InvalidModulusBits(65)));
    let m = Modulus::new(32).unwrap();
    assert_eq!(m.mask(), u32::MAX as u64);
    assert_eq!(m.bytes_per_element(), 4);
    assert_eq!(Modulus::new(64).unwrap().mask(), u64::MAX);
    assert_eq!(Modulus::new(9).unwrap().bytes_per_element(), 2);
    assert!(m.contains(u32::MAX as u64));
    assert!(!m.contains(1 << 32));
}

#[test]
fn modular_add_and_sub_wrap() {
    let m = Modulus::new(8).unwrap();
    let mut acc = vec![250, 3];
    m.add_assign(&mut acc, &[10, 255]);
    assert_eq!(acc, vec![4, 2]);
    m.sub_assign(&mut acc, &[5, 2]);
    assert_eq!(acc, vec![255, 0]);
}

#[test]
fn overflow_is_refused_with_the_numbers() {
    // Flower's defaults: T = 2^22, M = 2^32 leave room for 1024 unweighted clients only.
    assert!(QuantParams::new(8.0, 1 << 22, 1, 1023, 32).is_ok());
    let err = QuantParams::new(8.0, 1 << 22, 1, 1024, 32).unwrap_err();
    assert_eq!(
        err,
        Error::Overflow {
            max_clients: 1024,
            levels: 1 << 22,
            max_weight: 1,
            product: 1 << 32,
            bits: 32
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("1024") && msg.contains("4194304") && msg.contains("2^32"),
        "{msg}"
    );
    assert!(matches!(
        QuantParams::new(1.0, u64::MAX, u64::MAX, u64::MAX, 64),
        Err(Error::Overflow { .. })
    ));
}

#[test]
fn minimal_modulus_is_the_smallest_that_fits() {
    // 1000 x 2^16 x 256 = 16_777_216_000 < 2^34
    let p = QuantParams::with_minimal_modulus(1.0, 1 << 16, 256, 1000).unwrap();
    assert_eq!(p.modulus().bits(), 34);
    assert!(QuantParams::new(1.0, 1 << 16, 256, 1000, 33).is_err());
    assert_eq!(
        QuantParams::with_minimal_modulus(1.0, 1, 1, 1)
            .unwrap()
            .modulus()
            .bits(),
        1
    );
    assert!(QuantParams::with_minimal_modulus(1.0, u64::MAX, 2, 1).is_err());
}

#[test]
fn invalid_parameters_are_refused() {
    for clip in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            QuantParams::new(clip, 16, 1, 1, 32),
            Err(Error::InvalidParameter { name: "clip", .. })
        ));
    }
    assert!(QuantParams::new(1.0, 0, 1, 1, 32).is_err());
    assert!(QuantParams::new(1.0, 1, 0, 1, 32).is_err());
    assert!(QuantParams::new(1.0, 1, 1, 0, 32).is_err());
}

#[test]
fn non_finite_inputs_and_bad_weights_are_refused() {
    let p = params();
    let mut r = rng(1);
    assert_eq!(
        p.quantize(&[0.0, f32::NAN], &mut r),
        Err(Error::NonFinite { index: 1 })
    );
    assert_eq!(
        p.encode_weighted(&[0.0], 0, &mut r),
        Err(Error::WeightOutOfRange {
            weight: 0,
            max_weight: 1000
        })
    );
    assert!(p.encode_weighted(&[0.0], 1001, &mut r).is_err());
}

#[test]
fn clipping_and_extremes() {
    let p = QuantParams::new(1.0, 10, 1, 10, 32).unwrap();
    let mut r = rng(2);
    assert_eq!(
        p.quantize(&[-5.0, -1.0, 1.0, 7.5], &mut r).unwrap(),
        vec![0, 0, 10, 10]
    );
}

#[test]
fn stochastic_rounding_is_unbiased() {
    // x = 0.3 steps above a grid point: the mean of many decodes must converge to x. With 200k
    // draws the standard error of the mean is step * sqrt(0.21 / 200k) ~ 1e-3 steps; allow 5 sigma.
    let p = QuantParams::new(1.0, 10, 1, 1 << 20, 40).unwrap();
    let step = p.step();
    let x = -1.0 + 3.3 * step;
    let draws = 200_000;
    let mut r = rng(3);
    let q = p.quantize(&vec![x as f32; draws], &mut r).unwrap();
    assert!(q.iter().all(|&v| v == 3 || v == 4));
    let decoded = p
        .decode_sum(&[q.iter().sum::<u64>()], draws as u64)
        .unwrap()[0];
    let mean = decoded / draws as f64;
    let sigma = step * (0.3f64 * 0.7 / draws as f64).sqrt();
    assert!(
        (mean - x).abs() < 5.0 * sigma,
        "mean {mean} vs {x}, sigma {sigma}"
    );
}

#[test]
fn decode_sum_removes_offsets() {
    let p = QuantParams::new(2.0, 4, 1, 3, 16).unwrap();
    // Each value on the grid (step 1): -2, 0, 2 -> q = 0, 2, 4; sum = 6, n = 3 -> 0.0.
    let mut r = rng(4);
    let mut acc = vec![0u64];
    for x in [-2.0f32, 0.0, 2.0] {
        let q = p.quantize(&[x], &mut r).unwrap();
        p.modulus().add_assign(&mut acc, &q);
    }
    assert_eq!(p.decode_sum(&acc, 3).unwrap(), vec![0.0]);
    assert!(p.decode_sum(&[13], 3).is_err());
    assert!(p.decode_sum(&acc, 0).is_err());
}

#[test]
fn decode_rejects_impossible_aggregates() {
    let p = params();
    assert!(p.decode_weighted_mean(&[]).is_err());
    assert!(p.decode_weighted_mean(&[0, 1]).is_err());
    assert!(p.decode_weighted_mean(&[1, (1 << 16) + 1]).is_err());
    assert!(p.decode_weighted_mean(&[1_000_001, 0]).is_err());
}

proptest! {
    #[test]
    fn weighted_mean_within_one_step(
        clients in proptest::collection::vec(
            (proptest::collection::vec(-20.0f32..20.0, 6), 1u64..=1000), 1..20),
        seed in any::<u8>(),
    ) {
        let p = params();
        let mut r = rng(seed);
        let mut acc = vec![0u64; 7];
        let mut want = [0f64; 6];
        let mut total = 0u64;
        for (update, w) in &clients {
            let enc = p.encode_weighted(update, *w, &mut r).unwrap();
            p.modulus().add_assign(&mut acc, &enc);
            for (s, x) in want.iter_mut().zip(update) {
                *s += *w as f64 * f64::from(*x).clamp(-p.clip(), p.clip());
            }
            total += w;
        }
        let (mean, w) = p.decode_weighted_mean(&acc).unwrap();
        prop_assert_eq!(w, total);
        for (m, s) in mean.iter().zip(want) {
            let expected = s / total as f64;
            prop_assert!((m - expected).abs() <= p.step() + 1e-9, "{} vs {}", m, expected);
        }
    }

    #[test]
    fn quantized_values_stay_in_range(x in proptest::collection::vec(any::<f32>(), 0..50)) {
        let p = params();
        let finite: Vec<f32> = x.into_iter().filter(|v| v.is_finite()).collect();
        let q = p.quantize(&finite, &mut rng(9)).unwrap();
        prop_assert!(q.iter().all(|&v| v <= p.levels()));
    }
}
