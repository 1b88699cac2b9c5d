//! Plaintext + central DP: each update is clipped on arrival into a running sum; the noise is
//! drawn and the ledger charged when the round closes.

use std::collections::BTreeSet;

use fedagg_api::{f32_values, Phase};
use fedagg_dp::Ledger;
use rand_core::{CryptoRng, RngCore};

use super::{Finished, Step, KEY_HOLDER};
use crate::error::{Result, RoundError};

/// A checked update, already clipped.
pub(crate) struct Checked(Vec<f32>);

/// DP rounds have one phase: there is never a next one.
pub(crate) enum Next {}

pub(crate) struct DpEngine {
    clip: f64,
    sigma: f64,
    q: f64,
    sum: Vec<f64>,
    submitted: BTreeSet<u32>,
    ledger: Ledger,
    n: usize,
    min: usize,
}

impl DpEngine {
    pub(crate) fn new(
        clip: f64,
        sigma: f64,
        q: f64,
        vector_len: usize,
        ledger: Ledger,
        n: usize,
        min: usize,
    ) -> Self {
        DpEngine {
            clip,
            sigma,
            q,
            sum: vec![0.0; vector_len],
            submitted: BTreeSet::new(),
            ledger,
            n,
            min,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::Submit
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
        if member == KEY_HOLDER {
            return Err(RoundError::Forbidden(
                "the key holder does not contribute".into(),
            ));
        }
        let mut v = f32_values(payload, self.sum.len())?;
        fedagg_dp::clip::clip_l2(&mut v, self.clip)
            .map_err(|e| RoundError::Malformed(e.to_string()))?;
        Ok(Checked(v))
    }

    pub(crate) fn apply(&mut self, member: u32, checked: Checked) {
        for (s, x) in self.sum.iter_mut().zip(&checked.0) {
            *s += f64::from(*x);
        }
        self.submitted.insert(member);
    }

    /// Noise the sum and charge the ledger, on copies: the running sum and the ledger stay as
    /// they were until the outcome is stored.
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
        let mut ledger = self.ledger.clone();
        ledger
            .charge(self.q, self.sigma)
            .map_err(|e| format!("privacy budget: {e}"))?;
        let mut sum = self.sum.clone();
        fedagg_dp::noise::add_gaussian(&mut sum, self.sigma * self.clip, rng)
            .map_err(|e| e.to_string())?;
        let n = count as f64;
        Ok(Step::Finished(Finished {
            update: sum.iter().map(|&s| (s / n) as f32).collect(),
            participants: count as u32,
            ledger: Some(ledger),
        }))
    }
}
