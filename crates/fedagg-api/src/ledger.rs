//! A privacy ledger ([`fedagg_dp::Ledger`]) as JSON: the form in which the server stores a DP
//! federation's budget and a participant keeps its record-level one
//! (`fedagg_client::RecordBudget`). Every field is validated on the way back in.

use fedagg_dp::pld::GaussianRounds;
use fedagg_dp::Ledger;
use serde::{Deserialize, Serialize};

use crate::Accountant;

/// A ledger as stored. One written before the PLD accountant has no `accountant` (RDP) and no
/// history (its PLD epsilon is then unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerJson {
    /// Budget.
    pub budget: f64,
    /// Delta.
    pub delta: f64,
    /// RDP orders.
    pub orders: Vec<f64>,
    /// Cumulative RDP at each order.
    pub rdp: Vec<f64>,
    /// Mechanism runs charged.
    pub rounds: u64,
    /// The accountant that enforces the budget.
    #[serde(default, skip_serializing_if = "Accountant::is_rdp")]
    pub accountant: Accountant,
    /// The sampled Gaussian runs charged, as `[q, sigma, runs]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gaussian: Option<Vec<(f64, f64, u64)>>,
    /// Their PLD epsilon (under the PLD accountant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pld: Option<f64>,
}

/// The API's name of a ledger's accountant.
pub fn accountant_of(l: &Ledger) -> Accountant {
    match l.accountant() {
        fedagg_dp::Accountant::Rdp => Accountant::Rdp,
        fedagg_dp::Accountant::Pld => Accountant::Pld,
    }
}

impl LedgerJson {
    /// The stored form of `l`.
    pub fn of(l: &Ledger) -> Result<Self, fedagg_dp::Error> {
        Ok(LedgerJson {
            budget: l.budget(),
            delta: l.delta(),
            orders: l.orders().to_vec(),
            rdp: l.rdp().to_vec(),
            rounds: l.rounds(),
            accountant: accountant_of(l),
            gaussian: l
                .gaussian()
                .map(|runs| runs.iter().map(|r| (r.q, r.sigma, r.rounds)).collect()),
            pld: l.epsilons()?.pld,
        })
    }

    /// The ledger, validated.
    pub fn ledger(self) -> Result<Ledger, fedagg_dp::Error> {
        let l = Ledger::restore(self.budget, self.delta, self.orders, self.rdp, self.rounds)?;
        if self.gaussian.is_none() && self.accountant.is_rdp() {
            return Ok(l);
        }
        let runs = self.gaussian.map(|runs| {
            runs.into_iter()
                .map(|(q, sigma, rounds)| GaussianRounds { q, sigma, rounds })
                .collect()
        });
        l.with_history(self.accountant.into(), runs, self.pld)
    }
}
