//! A participant's record-level privacy budget, kept durably.
//!
//! A participant that trains with DP-SGD at home (`fedagg_train::dpsgd`) spends a privacy budget
//! over *its own records*, separate from the federation's participant-level one that the server
//! accounts. [`RecordBudget`] keeps that ledger in a file the caller chooses, charges it before
//! each local training, and writes it (to a temporary file, synced, then renamed over the old
//! one) before the charge returns: a crash can lose a training, never a charge. A training the
//! budget cannot cover is refused and the file left as it was.

use std::path::{Path, PathBuf};

use fedagg_api::ledger::LedgerJson;
use fedagg_api::Accountant;
use fedagg_dp::{Epsilons, Ledger};

use crate::{Error, Result};

/// A record-level ledger in a file.
pub struct RecordBudget {
    path: PathBuf,
    ledger: Ledger,
}

impl RecordBudget {
    /// The budget kept at `path`: read back if the file exists (its budget, delta and
    /// accountant must be those given: a budget is never silently reset or widened), otherwise
    /// a fresh one, written at once.
    pub fn open(
        path: impl Into<PathBuf>,
        epsilon_budget: f64,
        delta: f64,
        accountant: Accountant,
    ) -> Result<Self> {
        let path = path.into();
        let bad = |e: String| Error::Protocol(format!("{}: {e}", path.display()));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let json: LedgerJson =
                    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
                let ledger = json.ledger().map_err(|e| bad(e.to_string()))?;
                if ledger.budget() != epsilon_budget
                    || ledger.delta() != delta
                    || fedagg_api::ledger::accountant_of(&ledger) != accountant
                {
                    return Err(bad(format!(
                        "holds a budget of epsilon {} at delta {:e} ({:?}), not {epsilon_budget} \
                         at {delta:e} ({accountant:?})",
                        ledger.budget(),
                        ledger.delta(),
                        fedagg_api::ledger::accountant_of(&ledger)
                    )));
                }
                Ok(RecordBudget { path, ledger })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ledger = Ledger::with_accountant(epsilon_budget, delta, accountant.into())
                    .map_err(|e| bad(e.to_string()))?;
                let budget = RecordBudget { path, ledger };
                budget.write(&budget.ledger)?;
                Ok(budget)
            }
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// Charge `steps` steps of the sampled Gaussian at `(q, sigma)` (one DP-SGD local
    /// training), durably, or refuse: the record-level epsilons after it.
    pub fn charge(&mut self, q: f64, sigma: f64, steps: u64) -> Result<Epsilons> {
        let mut next = self.ledger.clone();
        let spent = next
            .charge_steps(q, sigma, steps)
            .map_err(|e| Error::Protocol(format!("record-level privacy: {e}")))?;
        self.write(&next)?;
        self.ledger = next;
        Ok(spent)
    }

    /// Epsilon spent so far by the enforcing accountant.
    pub fn epsilon(&self) -> f64 {
        self.ledger.epsilons().map_or(f64::INFINITY, |e| e.epsilon)
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The file it is kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, ledger: &Ledger) -> Result<()> {
        let bad = |e: String| Error::Protocol(format!("{}: {e}", self.path.display()));
        let json = LedgerJson::of(ledger).map_err(|e| bad(e.to_string()))?;
        let text = serde_json::to_vec(&json).map_err(|e| bad(e.to_string()))?;
        crate::identity::replace_durably(&self.path, &text).map_err(|e| bad(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fedagg-record-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn charges_survive_a_restart_and_the_budget_is_never_reset() {
        let d = dir("restart");
        let path = d.join("records.json");
        let mut b = RecordBudget::open(&path, 4.0, 1e-5, Accountant::Rdp).unwrap();
        assert_eq!(b.epsilon(), 0.0);
        let first = b.charge(0.1, 1.1, 20).unwrap().epsilon;
        drop(b);
        let mut b = RecordBudget::open(&path, 4.0, 1e-5, Accountant::Rdp).unwrap();
        assert_eq!(b.epsilon(), first);
        assert_eq!(b.ledger().rounds(), 20);
        // A training past the budget is refused, in memory and on disk.
        let before = std::fs::read(&path).unwrap();
        let err = b.charge(0.1, 1.1, 10_000).unwrap_err();
        assert!(err.to_string().contains("record-level privacy"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(b.epsilon(), first);
        // Opening with another budget, delta or accountant is refused, not a reset.
        for (eps, delta, acc) in [
            (8.0, 1e-5, Accountant::Rdp),
            (4.0, 1e-6, Accountant::Rdp),
            (4.0, 1e-5, Accountant::Pld),
        ] {
            let err = RecordBudget::open(&path, eps, delta, acc).err().unwrap();
            assert!(err.to_string().contains("holds a budget"), "{err}");
        }
        // Under PLD both epsilons are kept.
        let mut p = RecordBudget::open(d.join("pld.json"), 4.0, 1e-5, Accountant::Pld).unwrap();
        let e = p.charge(0.1, 1.1, 20).unwrap();
        assert!(e.pld.unwrap() < e.rdp);
        let p = RecordBudget::open(d.join("pld.json"), 4.0, 1e-5, Accountant::Pld).unwrap();
        assert_eq!(p.epsilon(), e.epsilon);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failed_write_leaves_the_charge_undone() {
        let d = dir("fail");
        let path = d.join("records.json");
        let mut b = RecordBudget::open(&path, 4.0, 1e-5, Accountant::Rdp).unwrap();
        // The temporary file's name taken by a folder: the write fails.
        std::fs::create_dir_all(d.join("records.json.tmp")).unwrap();
        assert!(b.charge(0.1, 1.1, 20).is_err());
        assert_eq!(b.ledger().rounds(), 0);
        std::fs::remove_dir_all(d.join("records.json.tmp")).unwrap();
        b.charge(0.1, 1.1, 20).unwrap();
        assert_eq!(b.ledger().rounds(), 20);
        // A file that is not a ledger is refused.
        std::fs::write(d.join("bad.json"), "{}").unwrap();
        assert!(RecordBudget::open(d.join("bad.json"), 4.0, 1e-5, Accountant::Rdp).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
