//! Plaintext + central DP: each update is clipped on arrival into a running sum; the noise is
//! drawn and the ledger charged when the round closes. The noised sum is divided by the expected
//! cohort (DP-FedAvg's fixed-denominator estimator), so the release says nothing of how many
//! took part; updates are unweighted, since one clipped update is the sensitivity.
//!
//! With adaptive clipping (Andrew et al., NeurIPS 2021) the clip norm is part of the federation's
//! privacy state: each update also counts whether the norm left it unclipped, and closing the
//! round releases that count with noise and moves the norm for the next round. The updates'
//! noise multiplier is raised so that both releases together cost the federation's multiplier.

use std::collections::BTreeSet;

use fedagg_api::{f32_values, AdaptiveClipping, FederationSpec, Mode, Phase};
use fedagg_dp::adaptive::{update_noise_multiplier, AdaptiveClip};
use rand_core::{CryptoRng, RngCore};

use super::{is_key_holder, Finished, Step};
use crate::error::{Result, RoundError};
use crate::ledger::DpState;

/// A checked update, already clipped, and whether the clip left it as it was.
pub(crate) struct Checked(Vec<f32>, bool);

/// DP rounds have one phase: there is never a next one.
pub(crate) enum Next {}

pub(crate) struct DpEngine {
    /// The federation's spec: the layout of its updates.
    spec: FederationSpec,
    /// This round's clip norm.
    clip: f64,
    /// The federation's noise multiplier: what the ledger is charged.
    sigma: f64,
    /// The multiplier of the updates' noise (`sigma`, or more with adaptive clipping).
    update_sigma: f64,
    q: f64,
    adaptive: Option<AdaptiveClipping>,
    sum: Vec<f64>,
    /// Updates the clip norm left unclipped.
    unclipped: usize,
    submitted: BTreeSet<u32>,
    state: DpState,
    n: usize,
    min: usize,
    /// What the noised sum is divided by: the expected cohort, fixed when the round was planned
    /// (a round planned before the expected cohort was stored divides by the realised count).
    denominator: Option<f64>,
}

impl DpEngine {
    pub(crate) fn new(
        spec: &FederationSpec,
        state: DpState,
        n: usize,
        min: usize,
        denominator: Option<f64>,
    ) -> Result<Self> {
        let Mode::Dp {
            clip,
            noise_multiplier,
            sampling_rate,
            adaptive_clip,
            ..
        } = spec.mode
        else {
            return Err(RoundError::Internal("a dp engine for another mode".into()));
        };
        let (clip, update_sigma) = match &adaptive_clip {
            None => (clip, noise_multiplier),
            Some(a) => (
                state.clip.unwrap_or(clip),
                update_noise_multiplier(noise_multiplier, a.count_stddev)
                    .map_err(|e| RoundError::Invalid(e.to_string()))?,
            ),
        };
        Ok(DpEngine {
            clip,
            sigma: noise_multiplier,
            update_sigma,
            q: sampling_rate,
            adaptive: adaptive_clip,
            sum: vec![0.0; spec.update_len()],
            spec: spec.clone(),
            unclipped: 0,
            submitted: BTreeSet::new(),
            state,
            n,
            min,
            denominator,
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::Submit
    }

    /// The largest submission payload: `update_len` f32 values.
    pub(crate) fn max_submission(&self) -> usize {
        4 * self.sum.len()
    }

    pub(crate) fn expected(&self) -> usize {
        self.n
    }

    pub(crate) fn submitted(&self) -> &BTreeSet<u32> {
        &self.submitted
    }

    pub(crate) fn cohort(&self) -> usize {
        self.n
    }

    pub(crate) fn check(&self, member: u32, payload: &[u8]) -> Result<Checked> {
        if is_key_holder(member) {
            return Err(RoundError::Forbidden(
                "the key holder does not contribute".into(),
            ));
        }
        let mut v = f32_values(payload, self.sum.len())?;
        let norm = fedagg_dp::clip::clip_l2(&mut v, self.clip)
            .map_err(|e| RoundError::Malformed(e.to_string()))?;
        Ok(Checked(v, norm <= self.clip))
    }

    pub(crate) fn apply(&mut self, member: u32, checked: Checked) {
        for (s, x) in self.sum.iter_mut().zip(&checked.0) {
            *s += f64::from(*x);
        }
        self.unclipped += usize::from(checked.1);
        self.submitted.insert(member);
    }

    /// Noise the sum, charge the ledger and (adaptive clipping) move the clip norm, on copies:
    /// the running sum and the privacy state stay as they were until the outcome is stored.
    pub(crate) fn prepare_close<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
    ) -> Result<Step<Next>, String> {
        let count = self.submitted.len();
        if count < self.min.max(1) {
            return Err(format!(
                "{count} updates arrived before the deadline, the federation requires {}",
                self.min
            ));
        }
        let mut state = self.state.clone();
        state
            .ledger
            .charge(self.q, self.sigma)
            .map_err(|e| format!("privacy budget: {e}"))?;
        let mut sum = self.sum.clone();
        fedagg_dp::noise::add_gaussian(&mut sum, self.update_sigma * self.clip, rng)
            .map_err(|e| e.to_string())?;
        if let Some(a) = &self.adaptive {
            state.clip = Some(self.next_clip(a, rng)?);
        }
        let n = self
            .denominator
            .filter(|d| *d > 0.0)
            .unwrap_or(count as f64);
        let mean: Vec<f64> = sum.iter().map(|&s| s / n).collect();
        let aggregate = self.spec.split_mean(&mean, n)?;
        Ok(Step::Finished(Finished {
            update: aggregate.update,
            control_sum: aggregate.control_sum,
            participants: count as u32,
            ledger: Some(state),
        }))
    }

    /// The clip norm of the next round: the count of unclipped updates, centred (each reports
    /// +1/2 or -1/2) and released with noise over the round's cohort, moves this one.
    fn next_clip<R: RngCore + CryptoRng>(
        &self,
        a: &AdaptiveClipping,
        rng: &mut R,
    ) -> Result<f64, String> {
        let mut clip = AdaptiveClip::new(
            self.clip,
            a.target_quantile,
            a.learning_rate,
            a.count_stddev,
        )
        .map_err(|e| e.to_string())?;
        let reports = self.unclipped as f64 - 0.5 * self.submitted.len() as f64;
        clip.update(reports, self.n.max(1) as f64, rng)
            .map_err(|e| e.to_string())?;
        Ok(clip.clip())
    }
}
