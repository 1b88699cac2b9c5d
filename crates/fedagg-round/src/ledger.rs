//! The DP ledger as the store keeps it (JSON), and the privacy report built from it.

use fedagg_api::PrivacySpent;
use fedagg_dp::Ledger;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RoundError};

/// The privacy ledger as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LedgerJson {
    budget: f64,
    delta: f64,
    orders: Vec<f64>,
    rdp: Vec<f64>,
    rounds: u64,
}

/// The stored text of a ledger.
pub fn to_text(l: &Ledger) -> Result<String> {
    serde_json::to_string(&LedgerJson {
        budget: l.budget(),
        delta: l.delta(),
        orders: l.orders().to_vec(),
        rdp: l.rdp().to_vec(),
        rounds: l.rounds(),
    })
    .map_err(|e| RoundError::Internal(e.to_string()))
}

/// A ledger from its stored text (validated).
pub fn from_text(text: &str) -> Result<Ledger> {
    let j: LedgerJson = serde_json::from_str(text)
        .map_err(|e| RoundError::Internal(format!("stored ledger: {e}")))?;
    Ledger::restore(j.budget, j.delta, j.orders, j.rdp, j.rounds)
        .map_err(|e| RoundError::Internal(format!("stored ledger refused: {e}")))
}

/// Epsilon spent so far (0 before the first charged round).
pub fn epsilon(l: &Ledger) -> Result<f64> {
    if l.rounds() == 0 {
        return Ok(0.0);
    }
    Ok(l.spent()
        .map_err(|e| RoundError::Internal(e.to_string()))?
        .epsilon)
}

/// What the federation reports of its ledger.
pub fn privacy(l: &Ledger) -> Result<PrivacySpent> {
    Ok(PrivacySpent {
        epsilon: epsilon(l)?,
        delta: l.delta(),
        epsilon_budget: l.budget(),
        rounds: l.rounds(),
    })
}
