//! A DP federation's durable privacy state as the store keeps it (JSON): the accountant's
//! ledger and, with adaptive clipping, the clip norm of the next round; and the privacy report
//! built from it.

use fedagg_api::ledger::{accountant_of, LedgerJson};
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

/// The state as persisted: the ledger's JSON, and with adaptive clipping the clip norm (a
/// state stored before adaptive clipping existed has none).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateJson {
    #[serde(flatten)]
    ledger: LedgerJson,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clip: Option<f64>,
}

/// The stored text of a state.
pub fn to_text(s: &DpState) -> Result<String> {
    let internal = |e: String| RoundError::Internal(e);
    serde_json::to_string(&StateJson {
        ledger: LedgerJson::of(&s.ledger).map_err(|e| internal(e.to_string()))?,
        clip: s.clip,
    })
    .map_err(|e| internal(e.to_string()))
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
    let ledger = j
        .ledger
        .ledger()
        .map_err(|e| RoundError::Internal(format!("stored ledger refused: {e}")))?;
    Ok(DpState {
        ledger,
        clip: j.clip,
    })
}

/// Epsilon spent so far by the accountant that enforces the budget (0 before the first charged
/// round).
pub fn epsilon(s: &DpState) -> Result<f64> {
    Ok(spent(s)?.epsilon)
}

fn spent(s: &DpState) -> Result<fedagg_dp::Epsilons> {
    s.ledger
        .epsilons()
        .map_err(|e| RoundError::Internal(e.to_string()))
}

/// What the federation reports of its privacy state: both accountants' epsilons where both apply.
pub fn privacy(s: &DpState) -> Result<PrivacySpent> {
    let spent = spent(s)?;
    Ok(PrivacySpent {
        epsilon: spent.epsilon,
        accountant: accountant_of(&s.ledger),
        epsilon_rdp: spent.rdp,
        epsilon_pld: spent.pld,
        delta: s.ledger.delta(),
        epsilon_budget: s.ledger.budget(),
        rounds: s.ledger.rounds(),
        clip: s.clip,
    })
}
