//! Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy, NeurIPS 2021): the clip norm follows
//! a target quantile of the clients' update norms, estimated privately.
//!
//! Each client reports `b = 1[norm <= C] - 1/2` (sensitivity 1/2) alongside its clipped update.
//! The server releases `b_bar = (sum b + N(0, sigma_b^2)) / m + 1/2`, clamped to `[0, 1]`, and sets
//! `C <- C exp(-eta (b_bar - gamma))` for the *next* round; this round's noise uses the current `C`.
//! The two releases are Gaussian mechanisms with multipliers `z_delta` and `2 sigma_b`, which
//! compose like one with `1/z^2 = 1/z_delta^2 + 1/(2 sigma_b)^2`: the ledger is charged with the
//! effective `z`, and the update noise uses [`update_noise_multiplier`].

use rand_core::{CryptoRng, RngCore};

use crate::noise::Gaussian;
use crate::{check_positive, Error};

/// The noise multiplier for the updates, `z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`, so that
/// together with the quantile release the round costs as much as a Gaussian with multiplier `z`.
/// Refused unless `z < 2 sigma_b`.
pub fn update_noise_multiplier(z: f64, sigma_b: f64) -> Result<f64, Error> {
    check_positive("noise multiplier", z)?;
    check_positive("count noise sigma_b", sigma_b)?;
    let inv = z.powi(-2) - (2.0 * sigma_b).powi(-2);
    if inv <= 0.0 {
        return Err(Error::InvalidParameter {
            name: "noise multiplier",
            value: z,
            expected: "a multiplier below 2 sigma_b, the quantile release's own",
        });
    }
    Ok(inv.powf(-0.5))
}

/// The state of an adaptively clipped federation.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveClip {
    clip: f64,
    target_quantile: f64,
    learning_rate: f64,
    sigma_b: f64,
}

impl AdaptiveClip {
    /// Start at clip `initial`, tracking the `target_quantile` of unclipped norms (in (0, 1)),
    /// with geometric learning rate `learning_rate` and count noise `sigma_b` (TF's default:
    /// `expected clients / 20`).
    pub fn new(
        initial: f64,
        target_quantile: f64,
        learning_rate: f64,
        sigma_b: f64,
    ) -> Result<Self, Error> {
        check_positive("initial clip", initial)?;
        check_positive("learning rate", learning_rate)?;
        check_positive("sigma_b", sigma_b)?;
        if !(target_quantile > 0.0 && target_quantile < 1.0) {
            return Err(Error::InvalidParameter {
                name: "target quantile",
                value: target_quantile,
                expected: "a fraction in (0, 1)",
            });
        }
        Ok(AdaptiveClip {
            clip: initial,
            target_quantile,
            learning_rate,
            sigma_b,
        })
    }

    /// The clip norm for this round.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// The count noise standard deviation.
    pub fn sigma_b(&self) -> f64 {
        self.sigma_b
    }

    /// A client's report for a pre-clip norm: `+1/2` if not clipped, `-1/2` if clipped.
    pub fn indicator(&self, norm: f64) -> f64 {
        if norm <= self.clip {
            0.5
        } else {
            -0.5
        }
    }

    /// Close a round: noise the sum of reports, estimate the unclipped fraction, move the clip.
    /// Returns the released (noisy, clamped) fraction.
    pub fn update<R: RngCore + CryptoRng>(
        &mut self,
        indicator_sum: f64,
        expected_clients: f64,
        rng: &mut R,
    ) -> Result<f64, Error> {
        check_positive("expected clients", expected_clients)?;
        if !indicator_sum.is_finite() {
            return Err(Error::InvalidParameter {
                name: "indicator sum",
                value: indicator_sum,
                expected: "a finite sum",
            });
        }
        let noisy = indicator_sum + self.sigma_b * Gaussian::new(rng).sample();
        let fraction = (noisy / expected_clients + 0.5).clamp(0.0, 1.0);
        self.clip *= (-self.learning_rate * (fraction - self.target_quantile)).exp();
        Ok(fraction)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::noise::Gaussian;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn noise_split_composes_back_to_z() {
        let z = 1.0;
        let zd = update_noise_multiplier(z, 5.0).unwrap();
        assert!(zd > z);
        assert!((zd.powi(-2) + 10f64.powi(-2) - 1.0).abs() < 1e-12);
        assert!(update_noise_multiplier(10.0, 5.0).is_err());
    }

    #[test]
    fn clip_tracks_the_target_quantile() {
        // Norms are |N(0,1)| * 4: the median norm is 4 * 0.6745 = 2.698.
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let m = 200.0;
        let mut a = AdaptiveClip::new(0.1, 0.5, 0.2, m / 20.0).unwrap();
        for _ in 0..300 {
            let norms: Vec<f64> = {
                let mut g = Gaussian::new(&mut rng);
                (0..200).map(|_| 4.0 * g.sample().abs()).collect()
            };
            let sum: f64 = norms.iter().map(|&n| a.indicator(n)).sum();
            a.update(sum, m, &mut rng).unwrap();
        }
        assert!((a.clip() - 2.698).abs() < 0.35, "clip {}", a.clip());
    }

    #[test]
    fn refusals() {
        assert!(AdaptiveClip::new(0.0, 0.5, 0.2, 1.0).is_err());
        assert!(AdaptiveClip::new(1.0, 1.0, 0.2, 1.0).is_err());
        assert!(AdaptiveClip::new(1.0, 0.5, -0.2, 1.0).is_err());
        let mut a = AdaptiveClip::new(1.0, 0.5, 0.2, 1.0).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        assert!(a.update(f64::NAN, 10.0, &mut rng).is_err());
        assert!(a.update(1.0, 0.0, &mut rng).is_err());
    }
}
