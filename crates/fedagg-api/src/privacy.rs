//! The privacy settings of a DP federation: the accountant that enforces its budget, and
//! adaptive clipping.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The privacy accountant that enforces a DP federation's budget. The privacy report gives the
/// RDP epsilon always, and the PLD one too under `pld`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Accountant {
    /// Rényi DP: composes any mechanism with an RDP curve; the `secagg_dp` mode's accountant.
    #[default]
    Rdp,
    /// Privacy loss distributions (pessimistic, grid step 1e-4): tighter for the sampled Gaussian
    /// of the `dp` mode, so the same budget affords more rounds; about a second of computation
    /// when a round closes.
    Pld,
}

impl Accountant {
    /// Whether this is the default, RDP.
    pub fn is_rdp(&self) -> bool {
        *self == Accountant::Rdp
    }
}

impl std::str::FromStr for Accountant {
    type Err = String;

    /// `rdp` or `pld`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rdp" => Ok(Accountant::Rdp),
            "pld" => Ok(Accountant::Pld),
            _ => Err(format!("unknown accountant {s:?}: expected rdp or pld")),
        }
    }
}

impl From<Accountant> for fedagg_dp::Accountant {
    fn from(a: Accountant) -> Self {
        match a {
            Accountant::Rdp => fedagg_dp::Accountant::Rdp,
            Accountant::Pld => fedagg_dp::Accountant::Pld,
        }
    }
}

/// Adaptive clipping of a DP federation (Andrew, Thakkar, McMahan, Ramaswamy, NeurIPS 2021).
///
/// Each round the server counts the updates its clip norm left unclipped, releases that count
/// with Gaussian noise of standard deviation `count_stddev`, and moves the norm geometrically
/// towards the `target_quantile` for the next round. The release is paid for within the round's
/// privacy: the updates' noise multiplier is raised from z to `(z^-2 - (2 count_stddev)^-2)^-1/2`,
/// so that both releases together cost what one with the federation's `noise_multiplier` z
/// does, and the ledger is charged exactly that. Hence `noise_multiplier < 2 count_stddev`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdaptiveClipping {
    /// Fraction of updates the clip norm should leave unclipped (0.5 follows the median norm).
    #[schema(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    pub target_quantile: f64,
    /// Geometric learning rate of the clip norm per round (the paper's 0.2 by default).
    #[serde(default = "adaptive_learning_rate")]
    #[schema(exclusive_minimum = 0.0, maximum = 10.0, default = 0.2)]
    pub learning_rate: f64,
    /// Standard deviation of the noise on the count of unclipped updates (sigma_b; the paper
    /// suggests the expected number of clients per round over 20).
    #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
    pub count_stddev: f64,
}

fn adaptive_learning_rate() -> f64 {
    0.2
}
