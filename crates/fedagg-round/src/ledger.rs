//! A DP federation's durable privacy state as the store keeps it (JSON): the accountant's
//! ledger and, with adaptive clipping, the clip norm of the next round; and the privacy report
//! built from it.

use fedagg_api::{Accountant, PrivacySpent};
use fedagg_dp::pld::GaussianRounds;
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

/// The state as persisted. A ledger stored before adaptive clipping existed has no `clip`; one
/// stored before the PLD accountant has no accountant (RDP) and no history (its PLD epsilon is
/// then unknown).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateJson {
    budget: f64,
    delta: f64,
    orders: Vec<f64>,
    rdp: Vec<f64>,
    rounds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clip: Option<f64>,
    #[serde(default, skip_serializing_if = "Accountant::is_rdp")]
    accountant: Accountant,
    /// The sampled Gaussian rounds charged, as `[q, sigma, rounds]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gaussian: Option<Vec<(f64, f64, u64)>>,
    /// Their PLD epsilon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pld: Option<f64>,
}

fn accountant_of(l: &Ledger) -> Accountant {
    match l.accountant() {
        fedagg_dp::Accountant::Rdp => Accountant::Rdp,
        fedagg_dp::Accountant::Pld => Accountant::Pld,
    }
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
        accountant: accountant_of(l),
        gaussian: l
            .gaussian()
            .map(|runs| runs.iter().map(|r| (r.q, r.sigma, r.rounds)).collect()),
        pld: l
            .epsilons()
            .map_err(|e| RoundError::Internal(e.to_string()))?
            .pld,
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
    let refused = |e: fedagg_dp::Error| RoundError::Internal(format!("stored ledger refused: {e}"));
    let mut ledger =
        Ledger::restore(j.budget, j.delta, j.orders, j.rdp, j.rounds).map_err(refused)?;
    if j.gaussian.is_some() || !j.accountant.is_rdp() {
        let runs = j.gaussian.map(|runs| {
            runs.into_iter()
                .map(|(q, sigma, rounds)| GaussianRounds { q, sigma, rounds })
                .collect()
        });
        ledger = ledger
            .with_history(j.accountant.into(), runs, j.pld)
            .map_err(refused)?;
    }
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
