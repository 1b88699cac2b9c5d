//! Record-level DP at the demo's participants: each trains with DP-SGD (`fedagg_train::dpsgd`)
//! and keeps its own record-level budget in `OUT/records/participant-K.json`
//! ([`fedagg_client::RecordBudget`]), charged before every local training. A participant whose
//! budget cannot cover another training stops taking part.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use fedagg_client::RecordBudget;
use fedagg_train::dpsgd::DpSgd;
use fedagg_train::local::LocalConfig;

use super::lock;

/// Delta of every participant's record-level guarantee.
pub(super) const RECORD_DELTA: f64 = 1e-5;

/// The participants' DP-SGD settings and budgets.
pub(super) struct Records {
    dp: DpSgd,
    budgets: Vec<Mutex<RecordBudget>>,
}

impl Records {
    /// Fresh budgets of `epsilon` for `participants`, in `out/records` (emptied first: a new
    /// federation has new participants).
    pub(super) fn open(
        out: &Path,
        participants: usize,
        dp: DpSgd,
        epsilon: f64,
        accountant: fedagg_api::Accountant,
    ) -> Result<Self> {
        let dir = out.join("records");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let budgets = (0..participants)
            .map(|k| {
                let path = dir.join(format!("participant-{k}.json"));
                RecordBudget::open(path, epsilon, RECORD_DELTA, accountant).map(Mutex::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Records { dp, budgets })
    }

    /// The DP-SGD settings.
    pub(super) fn dp(&self) -> &DpSgd {
        &self.dp
    }

    /// Charge participant `k` for one local training on `records` records, durably; an error
    /// when its budget cannot cover it.
    pub(super) fn charge(&self, k: usize, records: usize, local: &LocalConfig) -> Result<f64> {
        let s = self.dp.schedule(records, local)?;
        let budget = self.budgets.get(k).context("no such participant")?;
        Ok(lock(budget)
            .charge(s.q, self.dp.noise_multiplier, s.steps)?
            .epsilon)
    }

    /// Refuse settings under which some participant (holding `sizes[k]` records) could not afford
    /// even one local training: the demo would otherwise run with nobody taking part.
    pub(super) fn check_affordable(&self, sizes: &[usize], local: &LocalConfig) -> Result<()> {
        for (k, (&n, budget)) in sizes.iter().zip(&self.budgets).enumerate() {
            let s = self.dp.schedule(n, local)?;
            let b = lock(budget);
            let one = b.ledger().preview(s.q, self.dp.noise_multiplier, s.steps)?;
            if one.epsilon > b.ledger().budget() {
                anyhow::bail!(
                    "one local training of participant {k} ({n} records, {} DP-SGD steps at q = \
                     {:.3}) costs record-level epsilon {:.2}, over --record-epsilon-budget {}: \
                     raise the budget or --dp-sgd, or train fewer epochs",
                    s.steps,
                    s.q,
                    one.epsilon,
                    b.ledger().budget()
                );
            }
        }
        Ok(())
    }

    /// The largest record-level epsilon any participant has spent.
    pub(super) fn max_epsilon(&self) -> f64 {
        self.budgets
            .iter()
            .map(|b| lock(b).epsilon())
            .fold(0.0, f64::max)
    }
}
