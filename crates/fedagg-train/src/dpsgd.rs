//! Record-level DP at a participant: DP-SGD (Abadi et al., CCS 2016) for local training, as
//! Opacus runs it, with the participant's own budget.
//!
//! Each step samples a batch by **Poisson sampling** (every record independently with probability
//! `q`), clips every record's gradient to L2 norm `C` (the per-example gradients come from one
//! backward pass per record, which suits any architecture; in closed form for logistic
//! regression), sums them, adds `N(0, (z C)^2)` to
//! each coordinate and divides by the *expected* batch size `q n`. FedProx's proximal term and
//! SCAFFOLD's correction do not depend on the records, so they are added after the noise. The
//! optimiser is SGD with heavy-ball momentum, as in [`crate::local`].
//!
//! As in Opacus's `DPDataLoader`, an epoch has `ceil(n / batch)` steps and `q = 1 / ceil(n /
//! batch)`. One local training is `epochs * ceil(n / batch)` steps of the sampled Gaussian at
//! `(q, z)`: [`DpSgd::schedule`] says so, and the participant charges its record-level ledger
//! ([`fedagg_dp::Ledger`], under RDP or PLD) for that schedule *before* it trains
//! ([`Net::train_local_dp`] refuses a schedule past the budget and leaves the ledger unchanged).
//! The guarantee is per record of this participant, over every round it trains in; the
//! federation's participant-level guarantee is separate, and composes with it.
//!
//! Randomness: the batches and the noise come from the CSPRNG the caller passes (seed it from
//! `OsRng`); libtorch's generator draws only the dropout masks.

use rand_core::{CryptoRng, RngCore};
use tch::{Kind, Tensor};

use crate::data::Dataset;
use crate::local::{Algorithm, Controls, LocalConfig, LocalUpdate};
use crate::model::{shaped, tensors, Arch, Net};
use crate::{Error, Result};

/// A participant's DP-SGD settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpSgd {
    /// L2 bound `C` on each record's gradient.
    pub max_grad_norm: f64,
    /// Noise multiplier `z`: each step's sum of clipped gradients gets `N(0, (z C)^2)`.
    pub noise_multiplier: f64,
}

/// What one local training costs in privacy: `steps` rounds of the Gaussian mechanism with the
/// noise multiplier, Poisson-subsampled at rate `q`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Sampling rate per step.
    pub q: f64,
    /// Steps.
    pub steps: u64,
}

impl DpSgd {
    /// The schedule of one local training on `records` records with `cfg`.
    pub fn schedule(&self, records: usize, cfg: &LocalConfig) -> Result<Schedule> {
        if records == 0 || cfg.batch_size == 0 || cfg.epochs == 0 {
            return Err(Error::Config(
                "DP-SGD needs records, a batch size and epochs".into(),
            ));
        }
        let per_epoch = records.div_ceil(cfg.batch_size);
        Ok(Schedule {
            q: 1.0 / per_epoch as f64,
            steps: (cfg.epochs * per_epoch) as u64,
        })
    }

    fn check(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !ok(self.max_grad_norm) || !ok(self.noise_multiplier) {
            return Err(Error::Config(format!(
                "DP-SGD needs a positive clip and noise multiplier, not {} and {}",
                self.max_grad_norm, self.noise_multiplier
            )));
        }
        Ok(())
    }

    /// Charge `ledger` for one local training on `records` records, or refuse (the ledger then
    /// unchanged): the participant's record-level epsilon after it.
    pub fn charge(
        &self,
        ledger: &mut fedagg_dp::Ledger,
        records: usize,
        cfg: &LocalConfig,
    ) -> Result<f64> {
        self.check()?;
        let s = self.schedule(records, cfg)?;
        ledger
            .charge_steps(s.q, self.noise_multiplier, s.steps)
            .map(|e| e.epsilon)
            .map_err(|e| Error::Config(format!("record-level privacy: {e}")))
    }
}

/// The sum over `records` of each record's gradient clipped to `clip`, flat, and the sum of
/// their losses: in closed form for logistic regression, else one backward pass per record.
fn clipped_sum(
    net: &Net,
    x: &Tensor,
    y: &Tensor,
    records: &[i64],
    clip: f64,
) -> Result<(Vec<f64>, f64)> {
    if net.arch == Arch::Linear && !records.is_empty() {
        linear_clipped_sum(net, x, y, records, clip)
    } else {
        per_record_clipped_sum(net, x, y, records, clip)
    }
}

/// [`clipped_sum`] for `Linear(d, c)`: record i's gradient is `e_i x_i^T` for the weight and
/// `e_i` for the bias, with `e_i = softmax(W x_i + b) - onehot(y_i)`, so its norm is
/// `|e_i| sqrt(|x_i|^2 + 1)` and the clipped sum is two matrix products.
fn linear_clipped_sum(
    net: &Net,
    x: &Tensor,
    y: &Tensor,
    records: &[i64],
    clip: f64,
) -> Result<(Vec<f64>, f64)> {
    let idx = Tensor::from_slice(records);
    let (xb, yb) = (x.index_select(0, &idx), y.index_select(0, &idx));
    let (sum, losses) = tch::no_grad(|| {
        let logits = net.forward(&xb, true);
        let classes = logits.size()[1];
        let losses = -logits
            .log_softmax(-1, Kind::Float)
            .gather(1, &yb.unsqueeze(1), false)
            .sum(Kind::Double)
            .double_value(&[]);
        let e = logits.softmax(-1, Kind::Float) - yb.one_hot(classes).to_kind(Kind::Float);
        let sq = |t: &Tensor| t.square().sum_dim_intlist(1, false, Kind::Float);
        let norms = (sq(&e) * (sq(&xb) + 1.0)).sqrt();
        let scale = (norms.reciprocal() * clip).clamp_max(1.0);
        let es = e * scale.unsqueeze(1);
        let weight = es.transpose(0, 1).matmul(&xb);
        let bias = es.sum_dim_intlist(0, false, Kind::Float);
        (vec![weight, bias], losses)
    });
    let mut flat = Vec::with_capacity(net.num_params());
    for v in net.vars() {
        let g = sum.iter().find(|g| g.size() == v.size()).ok_or_else(|| {
            Error::Config("a logistic regression variable of no known shape".into())
        })?;
        let n = g.numel();
        let mut out = vec![0f32; n];
        g.contiguous().f_copy_data(&mut out, n)?;
        flat.extend(out.into_iter().map(f64::from));
    }
    Ok((flat, losses))
}

/// [`clipped_sum`] for any architecture: one backward pass per record.
fn per_record_clipped_sum(
    net: &Net,
    x: &Tensor,
    y: &Tensor,
    records: &[i64],
    clip: f64,
) -> Result<(Vec<f64>, f64)> {
    let n = net.num_params();
    let (mut sum, mut flat, mut losses) = (vec![0f64; n], vec![0f32; n], 0.0);
    for &i in records {
        for v in net.vars() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let loss = net
            .forward(&x.narrow(0, i, 1), true)
            .cross_entropy_for_logits(&y.narrow(0, i, 1));
        losses += loss.double_value(&[]);
        loss.backward();
        let mut off = 0;
        for v in net.vars() {
            let k = v.numel();
            let g = v.grad();
            if g.defined() {
                g.contiguous().f_copy_data(&mut flat[off..off + k], k)?;
            } else {
                flat[off..off + k].fill(0.0);
            }
            off += k;
        }
        let norm = flat
            .iter()
            .map(|g| f64::from(*g).powi(2))
            .sum::<f64>()
            .sqrt();
        let scale = if norm > clip { clip / norm } else { 1.0 };
        for (s, g) in sum.iter_mut().zip(&flat) {
            *s += f64::from(*g) * scale;
        }
    }
    Ok((sum, losses))
}

impl Net {
    /// Train from `global` on `data` with DP-SGD and return the update, as
    /// [`Net::train_local`] does without it. The participant must have charged its ledger for
    /// [`DpSgd::schedule`] first ([`DpSgd::charge`]). `rng` draws the batches and the noise;
    /// `seed` only the dropout masks.
    #[allow(clippy::too_many_arguments)]
    pub fn train_local_dp<R: RngCore + CryptoRng>(
        &mut self,
        global: &[f32],
        data: &Dataset,
        cfg: &LocalConfig,
        algorithm: Algorithm,
        controls: Option<Controls<'_>>,
        dp: &DpSgd,
        seed: u64,
        rng: &mut R,
    ) -> Result<LocalUpdate> {
        dp.check()?;
        let schedule = dp.schedule(data.len(), cfg)?;
        let _torch = self.begin(global, algorithm, controls.is_some(), seed)?;
        let (x, y) = tensors(data);
        let correction = self.scaffold_correction(controls.as_ref())?;
        let anchor = shaped(self, global);
        let mut momentum: Vec<Option<Tensor>> = self.vars().iter().map(|_| None).collect();
        let expected = schedule.q * data.len() as f64;
        let threshold = (schedule.q * u64::MAX as f64) as u64;
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for _ in 0..schedule.steps {
            let batch: Vec<i64> = (0..data.len() as i64)
                .filter(|_| schedule.q >= 1.0 || rng.next_u64() < threshold)
                .collect();
            let (mut sum, losses) = clipped_sum(self, &x, &y, &batch, dp.max_grad_norm)?;
            loss_sum += losses;
            seen += batch.len();
            fedagg_dp::noise::add_gaussian(&mut sum, dp.noise_multiplier * dp.max_grad_norm, rng)
                .map_err(|e| Error::Config(e.to_string()))?;
            let grad: Vec<f32> = sum.iter().map(|s| (s / expected) as f32).collect();
            let grads = shaped(self, &grad);
            tch::no_grad(|| {
                for (i, (v, g)) in self.vars().iter().zip(grads).enumerate() {
                    let mut g = g;
                    if let Algorithm::FedProx { mu } = algorithm {
                        g += (v - &anchor[i]) * mu;
                    }
                    if let Some(c) = correction.get(i) {
                        g += c;
                    }
                    let step = match momentum[i].take() {
                        Some(b) if cfg.momentum > 0.0 => b * cfg.momentum + &g,
                        _ => g,
                    };
                    let mut v = v.shallow_clone();
                    let _ = v.g_sub_(&(&step * cfg.lr));
                    momentum[i] = Some(step);
                }
            });
        }
        let loss = loss_sum / seen.max(1) as f64;
        self.finish(global, data, cfg, controls, schedule.steps as usize, loss)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The closed form for logistic regression is the per-record computation, clipped or not.
    #[test]
    fn the_closed_form_equals_one_backward_pass_per_record() {
        let data = crate::Dataset::digits().subset(&(0..50).collect::<Vec<_>>());
        let net = Net::new(Arch::Linear, &data, 7).unwrap();
        let (x, y) = tensors(&data);
        let records: Vec<i64> = (0..50).filter(|i| i % 3 != 1).collect();
        for clip in [0.05, 1.0, 100.0] {
            let (a, la) = linear_clipped_sum(&net, &x, &y, &records, clip).unwrap();
            let (b, lb) = per_record_clipped_sum(&net, &x, &y, &records, clip).unwrap();
            assert!((la - lb).abs() < 1e-4 * lb.abs(), "loss {la} vs {lb}");
            let worst = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-4, "clip {clip}: differ by {worst}");
        }
    }
}
