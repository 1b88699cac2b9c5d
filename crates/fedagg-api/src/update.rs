//! The layout of a submitted update, which participants and the server must agree on.
//!
//! A participant submits its model update (`vector_len` values); under SCAFFOLD
//! ([`FederationSpec::scaffold`]) its control-variate delta follows, so that the delta goes
//! through exactly the protection of the update: masked under SecAgg, encrypted under Paillier
//! and lattice, clipped and noised with it in the DP modes (one clip norm bounds the pair, so a
//! round's sensitivity, and what the ledger charges, stay as they were).
//!
//! The quantized modes (SecAgg, Paillier, lattice) encode `[w, w*q(update)..., q(delta)...]`: the
//! model part is weighted (the aggregate decodes to the weighted mean), the control part is not,
//! since SCAFFOLD's server step is `c += (1/N) * sum_i delta c_i` over the federation's `N`
//! participants, whatever their sample counts. Its sum of `n` contributions is at most
//! `n * levels`, within the headroom the weights already size.

use fedagg_quant::QuantParams;
use rand_core::{CryptoRng, RngCore};

use crate::FederationSpec;

/// A round's aggregate, split: the update to apply to the model, and under SCAFFOLD the sum of
/// the participants' control-variate deltas.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The (weighted, or DP-noised) mean model update.
    pub update: Vec<f32>,
    /// SCAFFOLD: the sum of the contributions' control-variate deltas.
    pub control_sum: Option<Vec<f64>>,
}

impl FederationSpec {
    /// Check that `control_delta` is given exactly under SCAFFOLD, and that both have the
    /// model's length.
    pub fn check_update(
        &self,
        update: &[f32],
        control_delta: Option<&[f32]>,
    ) -> Result<(), String> {
        if update.len() != self.vector_len {
            return Err(format!(
                "update has {} values, the federation's model has {}",
                update.len(),
                self.vector_len
            ));
        }
        match (self.scaffold, control_delta) {
            (true, None) => {
                Err("a SCAFFOLD federation takes each update with its control-variate delta".into())
            }
            (false, Some(_)) => Err(
                "the federation does not use SCAFFOLD: contribute without a control-variate delta"
                    .into(),
            ),
            (true, Some(d)) if d.len() != self.vector_len => Err(format!(
                "control-variate delta has {} values, the federation's model has {}",
                d.len(),
                self.vector_len
            )),
            _ => Ok(()),
        }
    }

    /// What the plain DP modes take: the update, then under SCAFFOLD its control delta.
    pub fn plain_update(
        &self,
        update: &[f32],
        control_delta: Option<&[f32]>,
    ) -> Result<Vec<f32>, String> {
        self.check_update(update, control_delta)?;
        let mut v = Vec::with_capacity(self.update_len());
        v.extend_from_slice(update);
        v.extend_from_slice(control_delta.unwrap_or_default());
        Ok(v)
    }

    /// The quantized modes' encoding: `[w, w*q(update)..., q(control_delta)...]`.
    pub fn encode_quantized<R: RngCore + CryptoRng>(
        &self,
        quant: &QuantParams,
        update: &[f32],
        control_delta: Option<&[f32]>,
        weight: u64,
        rng: &mut R,
    ) -> Result<Vec<u64>, String> {
        self.check_update(update, control_delta)?;
        let mut values = quant
            .encode_weighted(update, weight, rng)
            .map_err(|e| e.to_string())?;
        if let Some(d) = control_delta {
            values.extend(quant.quantize(d, rng).map_err(|e| e.to_string())?);
        }
        Ok(values)
    }

    /// Decode the quantized modes' sum of `n` contributions.
    pub fn decode_quantized(
        &self,
        quant: &QuantParams,
        sum: &[u64],
        n: u64,
    ) -> Result<Aggregate, String> {
        let model = QuantParams::encoded_len(self.vector_len);
        if sum.len() != QuantParams::encoded_len(self.update_len()) {
            return Err(format!(
                "an aggregate of {} values, the federation's updates encode to {}",
                sum.len(),
                QuantParams::encoded_len(self.update_len())
            ));
        }
        let (mean, _w) = quant
            .decode_weighted_mean(&sum[..model])
            .map_err(|e| e.to_string())?;
        let control_sum = if self.scaffold {
            Some(
                quant
                    .decode_sum(&sum[model..], n)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        Ok(Aggregate {
            update: mean.iter().map(|&x| x as f32).collect(),
            control_sum,
        })
    }

    /// Split the DP modes' aggregate, a noised sum divided by `divisor`: the model part as it is,
    /// and under SCAFFOLD the control part multiplied back into a sum.
    pub fn split_mean(&self, mean: &[f64], divisor: f64) -> Result<Aggregate, String> {
        if mean.len() != self.update_len() {
            return Err(format!(
                "an aggregate of {} values, the federation's updates have {}",
                mean.len(),
                self.update_len()
            ));
        }
        let (model, controls) = mean.split_at(self.vector_len);
        Ok(Aggregate {
            update: model.iter().map(|&x| x as f32).collect(),
            control_sum: self
                .scaffold
                .then(|| controls.iter().map(|&x| x * divisor).collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn spec(scaffold: bool) -> FederationSpec {
        FederationSpec {
            name: "t".into(),
            vector_len: 3,
            mode: crate::Mode::Secagg {
                clip: 4.0,
                levels: 1 << 20,
                max_weight: 100,
                dropout_rate: 0.1,
                corrupt_fraction: 0.05,
                malicious_server: false,
            },
            min_clients: 3,
            max_clients: 10,
            phase_timeout_secs: 60,
            server_lr: 1.0,
            auto_rounds: false,
            roster_authority: None,
            scaffold,
        }
    }

    #[test]
    fn the_model_part_is_a_weighted_mean_and_the_control_part_a_plain_sum() {
        let s = spec(true);
        let quant = s.quant().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = s
            .encode_quantized(
                &quant,
                &[1.0, 0.0, -1.0],
                Some(&[2.0, 0.5, 0.0]),
                1,
                &mut rng,
            )
            .unwrap();
        let b = s
            .encode_quantized(
                &quant,
                &[-1.0, 2.0, 1.0],
                Some(&[-1.0, 0.5, 3.0]),
                3,
                &mut rng,
            )
            .unwrap();
        assert_eq!(a.len(), QuantParams::encoded_len(6));
        let m = quant.modulus();
        let mut sum = a.clone();
        m.add_assign(&mut sum, &b);
        let agg = s.decode_quantized(&quant, &sum, 2).unwrap();
        let step = quant.step() as f32;
        let want_update = [-0.5, 1.5, 0.5];
        let want_sum = [1.0, 1.0, 3.0];
        for (x, w) in agg.update.iter().zip(want_update) {
            assert!((x - w).abs() <= step, "{agg:?}");
        }
        for (x, w) in agg.control_sum.unwrap().iter().zip(want_sum) {
            assert!((x - w).abs() <= 2.0 * quant.step(), "{x} {w}");
        }
    }

    #[test]
    fn a_delta_is_required_exactly_under_scaffold() {
        let quant = spec(false).quant().unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let u = [0.0f32; 3];
        assert!(spec(true)
            .encode_quantized(&quant, &u, None, 1, &mut rng)
            .is_err());
        assert!(spec(false)
            .encode_quantized(&quant, &u, Some(&u), 1, &mut rng)
            .is_err());
        assert!(spec(true)
            .encode_quantized(&quant, &u, Some(&[0.0; 2]), 1, &mut rng)
            .is_err());
        assert!(spec(true).plain_update(&u, Some(&u)).unwrap().len() == 6);
        // A decoder refuses an aggregate of another layout.
        let plain = spec(false)
            .encode_quantized(&quant, &u, None, 1, &mut rng)
            .unwrap();
        assert!(spec(true).decode_quantized(&quant, &plain, 1).is_err());
        let split = spec(true)
            .split_mean(&[1.0, 2.0, 3.0, 0.5, 0.25, 0.0], 4.0)
            .unwrap();
        assert_eq!(split.update, vec![1.0, 2.0, 3.0]);
        assert_eq!(split.control_sum, Some(vec![2.0, 1.0, 0.0]));
    }
}
