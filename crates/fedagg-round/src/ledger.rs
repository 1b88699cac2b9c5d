//! A DP federation's durable privacy state as the store keeps it (JSON): the accountant's
//! ledger and, with adaptive clipping, the clip norm of the next round; and the privacy report
//! built from it.

use fedagg_api::PrivacySpent;
use fedagg_dp::Ledger;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RoundError};

/// A DP federation's privacy state, written with the model when a round completes.
#[derive(Debug, Clone, PartialEq)]
pub struct DpState {
    /// The accountant's ledger.
    pub ledger: Ledger,
    /// Adaptive clipping: the clip norm the next round uses.
    pub clip: Option<f64>,
}

/// The state as persisted. A ledger stored before adaptive clipping existed has no `clip`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateJson {
    budget: f64,
    delta: f64,
    orders: Vec<f64>,
    rdp: Vec<f64>,
    rounds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clip: Option<f64>,
}

/// The stored text of a state.
pub fn to_text(s: &DpState) -> Result<String> {
    let l = &s.ledger;
    serde_json::to_string(&StateJson {
        budget: l.budget(),
        delta: l.delta(),
        orders: l.orders().to_vec(),
        rdp: l.rdp().to_vec(),
        rounds: l.rounds(),
        clip: s.clip,
    })
    .map_err(|e| RoundError::Internal(e.to_string()))
}

/// A state from its stored text (validated).
pub fn from_text(text: &str) -> Result<DpState> {
    let j: StateJson = serde_json::from_str(text)
        .map_err(|e| RoundError::Internal(format!("stored ledger: {e}")))?;
    if j.clip.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
        return Err(RoundError::Internal(format!(
            "stored clip norm {:?} is not positive",
            j.clip
        )));
    }
    let ledger = Ledger::restore(j.budget, j.delta, j.orders, j.rdp, j.rounds)
        .map_err(|e| RoundError::Internal(format!("stored ledger refused: {e}")))?;
    Ok(DpState {
        ledger,
        clip: j.clip,
    })
}

/// Epsilon spent so far (0 before the first charged round).
pub fn epsilon(s: &DpState) -> Result<f64> {
    let l = &s.ledger;
    if l.rounds() == 0 {
        return Ok(0.0);
    }
    Ok(l.spent()
        .map_err(|e| RoundError::Internal(e.to_string()))?
        .epsilon)
}

/// What the federation reports of its privacy state.
pub fn privacy(s: &DpState) -> Result<PrivacySpent> {
    Ok(PrivacySpent {
        epsilon: epsilon(s)?,
        delta: s.ledger.delta(),
        epsilon_budget: s.ledger.budget(),
        rounds: s.ledger.rounds(),
        clip: s.clip,
    })
}
