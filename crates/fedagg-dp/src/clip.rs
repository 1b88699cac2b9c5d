//! L2 clipping of a client's update, over the whole vector or per named layer.

use crate::{check_positive, Error};

fn l2(v: &[f32]) -> Result<f64, Error> {
    let mut s = 0f64;
    for (index, &x) in v.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite { index });
        }
        s += f64::from(x) * f64::from(x);
    }
    Ok(s.sqrt())
}

fn scale_to(v: &mut [f32], norm: f64, clip: f64) {
    if norm > clip {
        // Scale in f64 and round down a hair so the f32 result never exceeds the bound.
        let factor = clip / norm * (1.0 - 4.0 * f64::from(f32::EPSILON));
        for x in v.iter_mut() {
            *x = (f64::from(*x) * factor) as f32;
        }
    }
}

/// Scale `update` so that its L2 norm is at most `clip`; returns the norm before clipping.
/// Refuses `clip <= 0` and non-finite values (leaving `update` untouched).
pub fn clip_l2(update: &mut [f32], clip: f64) -> Result<f64, Error> {
    check_positive("clip norm C", clip)?;
    let norm = l2(update)?;
    scale_to(update, norm, clip);
    Ok(norm)
}

/// One named slice of a flat update (a layer's tensor), with its own clip norm.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The layer's name.
    pub name: String,
    /// Number of values.
    pub len: usize,
    /// Its clip norm.
    pub clip: f64,
}

/// Clip each layer of a flat `update` to its own norm; returns the pre-clip norms in layer order.
/// The whole update then has norm at most `sqrt(sum C_l^2)`, its sensitivity.
pub fn clip_per_layer(update: &mut [f32], layers: &[Layer]) -> Result<Vec<f64>, Error> {
    let total: usize = layers.iter().map(|l| l.len).sum();
    if total != update.len() {
        return Err(Error::LengthMismatch {
            expected: total,
            actual: update.len(),
        });
    }
    for l in layers {
        check_positive("layer clip norm", l.clip)?;
    }
    l2(update)?;
    let mut norms = Vec::with_capacity(layers.len());
    let mut rest = update;
    for l in layers {
        let (head, tail) = rest.split_at_mut(l.len);
        let n = l2(head)?;
        scale_to(head, n, l.clip);
        norms.push(n);
        rest = tail;
    }
    Ok(norms)
}

/// The L2 sensitivity of a per-layer clipped update: `sqrt(sum C_l^2)`.
pub fn per_layer_sensitivity(layers: &[Layer]) -> f64 {
    layers.iter().map(|l| l.clip * l.clip).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refusals() {
        assert!(clip_l2(&mut [1.0], 0.0).is_err());
        assert!(clip_l2(&mut [1.0], f64::NAN).is_err());
        let mut v = [1.0, f32::INFINITY];
        assert_eq!(clip_l2(&mut v, 1.0), Err(Error::NonFinite { index: 1 }));
        assert_eq!(v[0], 1.0);
        let layers = [Layer {
            name: "a".into(),
            len: 3,
            clip: 1.0,
        }];
        assert!(matches!(
            clip_per_layer(&mut [0.0; 2], &layers),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn small_updates_are_untouched_and_norms_reported() {
        let mut v = [3.0f32, 4.0];
        assert_eq!(clip_l2(&mut v, 10.0).unwrap(), 5.0);
        assert_eq!(v, [3.0, 4.0]);
        assert_eq!(clip_l2(&mut v, 1.0).unwrap(), 5.0);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn clipped_norm_never_exceeds_the_bound(
            v in proptest::collection::vec(-1e6f32..1e6, 0..200),
            clip in 1e-3f64..1e3,
        ) {
            let mut w = v.clone();
            let before = clip_l2(&mut w, clip).unwrap();
            let after = l2(&w).unwrap();
            prop_assert!(after <= clip, "{} > {}", after, clip);
            if before <= clip {
                prop_assert_eq!(w, v);
            } else {
                // Direction preserved.
                for (a, b) in w.iter().zip(&v) {
                    prop_assert!(a.signum() == b.signum() || *a == 0.0);
                }
            }
        }

        #[test]
        fn per_layer_bounds_hold(
            v in proptest::collection::vec(-100f32..100.0, 10),
            c1 in 0.01f64..10.0,
            c2 in 0.01f64..10.0,
        ) {
            let layers = [
                Layer { name: "w".into(), len: 6, clip: c1 },
                Layer { name: "b".into(), len: 4, clip: c2 },
            ];
            let mut w = v;
            clip_per_layer(&mut w, &layers).unwrap();
            prop_assert!(l2(&w[..6]).unwrap() <= c1);
            prop_assert!(l2(&w[6..]).unwrap() <= c2);
            prop_assert!(l2(&w).unwrap() <= per_layer_sensitivity(&layers));
        }
    }
}
