//! Planning a round: who is in its cohort (uniform, or Poisson sampling for the DP modes), whether
//! the DP budget allows it, and the SecAgg session it runs (graph and threshold from the threat
//! model).

use std::collections::BTreeMap;

use fedagg_api::{FederationSpec, Mode, SecaggSession};
use fedagg_secagg::GraphParams;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RoundError};
use crate::ledger::DpState;

/// A round's fixed parameters, stored when it opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundParams {
    /// Participant ids of the cohort, ascending; a member's index is its position.
    pub cohort: Vec<i64>,
    /// SecAgg session (SecAgg mode).
    pub secagg: Option<SecaggSession>,
    /// Under verified decryption (Paillier and lattice with a roster authority), each cohort
    /// member's identity key (hex), from the verified roster, in cohort order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
    /// The DP modes: what the noised sum is divided by, the expected cohort (`sampling_rate`
    /// times the participants it was sampled from, at most `max_clients`). A fixed denominator
    /// releases nothing about how many took part (DP-FedAvg's estimator); dividing by the
    /// realised count would release that count without accounting for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<f64>,
    /// The server optimizer the round applies to its aggregate, as set when it opened (`None`:
    /// FedAvg at the spec's `server_lr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_optimizer: Option<fedagg_api::ServerOptimizer>,
    /// SCAFFOLD: the participants the cohort was drawn from, the `N` of the server's control
    /// step (`c += (1/N) * sum delta c_i`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u32>,
}

impl RoundParams {
    /// The stored text.
    pub fn to_text(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| RoundError::Internal(e.to_string()))
    }

    /// From the stored text.
    pub fn from_text(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| RoundError::Internal(format!("stored round params: {e}")))
    }

    /// A participant's index in the cohort.
    pub fn member(&self, participant_id: i64) -> Option<u32> {
        self.cohort
            .binary_search(&participant_id)
            .ok()
            .map(|i| i as u32)
    }
}

/// Identity keys (hex) by participant id, from a roster the shell verified under the
/// federation's `roster_authority`.
pub type Identities = BTreeMap<i64, String>;

/// Plan the next round of `spec` among the enrolled `contributors`, with the federation's
/// `ledger` (DP mode) and, against a malicious server or under verified decryption, the verified
/// roster's `identities` (only members on it can take part: nobody could check another's
/// identity). Refuses a round that cannot run: too few participants, a DP budget that one more
/// round would exceed, a cohort no SecAgg graph protects, no signed roster where one is needed.
pub fn plan<R: RngCore + CryptoRng>(
    spec: &FederationSpec,
    mut contributors: Vec<i64>,
    identities: Option<&Identities>,
    ledger: Option<&DpState>,
    rng: &mut R,
) -> Result<RoundParams> {
    let signed = spec.mode.malicious_server() || spec.verified_decryption();
    let roster = match (signed, identities) {
        (false, _) => None,
        (true, None) => {
            return Err(RoundError::Conflict(
                "the enrollment authority has not signed a roster (`fedagg authority \
                 sign-roster`)"
                    .into(),
            ))
        }
        (true, Some(ids)) => {
            contributors.retain(|p| ids.contains_key(p));
            Some(ids)
        }
    };
    let denominator = match spec.mode {
        Mode::SecaggDp { sampling_rate, .. } | Mode::Dp { sampling_rate, .. } => {
            Some((sampling_rate * contributors.len() as f64).min(f64::from(spec.max_clients)))
        }
        _ => None,
    };
    let population = spec
        .scaffold
        .then(|| u32::try_from(contributors.len()).unwrap_or(u32::MAX));
    let cohort = select_cohort(spec, contributors, rng);
    if !matches!(spec.mode, Mode::Dp { .. }) && cohort.len() < spec.min_clients as usize {
        return Err(RoundError::Conflict(format!(
            "{} participants enrolled, the federation requires {}",
            cohort.len(),
            spec.min_clients
        )));
    }
    check_budget(spec, ledger)?;
    let identities: Vec<String> = roster.map_or_else(Vec::new, |ids| {
        cohort.iter().filter_map(|p| ids.get(p).cloned()).collect()
    });
    if spec.mode.is_secagg() {
        let mut session = secagg_session(spec, cohort.len() as u32, rng)?;
        if roster.is_some() {
            session.cohort = cohort.clone();
            session.identities = identities;
        }
        return Ok(RoundParams {
            cohort,
            secagg: Some(session),
            identities: Vec::new(),
            denominator,
            server_optimizer: None,
            population,
        });
    }
    Ok(RoundParams {
        cohort,
        secagg: None,
        identities,
        denominator,
        server_optimizer: None,
        population,
    })
}

/// The cohort, ascending: a uniformly random subset of at most `max_clients`, or (DP) Poisson
/// sampling at the rate the accountant assumes.
pub fn select_cohort<R: RngCore + CryptoRng>(
    spec: &FederationSpec,
    mut contributors: Vec<i64>,
    rng: &mut R,
) -> Vec<i64> {
    shuffle(&mut contributors, rng);
    let max = spec.max_clients as usize;
    let mut cohort: Vec<i64> = match spec.mode.sampling_rate() {
        Some(sampling_rate) => {
            let threshold = (sampling_rate * (u64::MAX as f64)) as u64;
            contributors
                .into_iter()
                .filter(|_| sampling_rate >= 1.0 || rng.next_u64() < threshold)
                .take(max)
                .collect()
        }
        _ => contributors.into_iter().take(max).collect(),
    };
    cohort.sort_unstable();
    cohort
}

/// Refuse a DP round that could spend more than the budget: with distributed DP, at its worst
/// case, the fewest survivors the noise is calibrated for.
fn check_budget(spec: &FederationSpec, ledger: Option<&DpState>) -> Result<()> {
    let Some(l) = ledger.map(|s| &s.ledger) else {
        return Ok(());
    };
    let internal = |e: fedagg_dp::Error| RoundError::Internal(e.to_string());
    let next = match spec.mode {
        // (a PLD that outgrows its grid after many rounds refuses the round, as a spent budget)
        Mode::Dp {
            sampling_rate,
            noise_multiplier,
            ..
        } => l
            .preview(sampling_rate, noise_multiplier, 1)
            .map_err(|e| RoundError::Conflict(format!("privacy accountant: {e}")))?,
        Mode::SecaggDp { sampling_rate, .. } => {
            let ddg = spec.ddg().map_err(RoundError::Invalid)?;
            let curve = ddg
                .rdp(spec.min_clients, sampling_rate, l.orders())
                .map_err(internal)?;
            l.preview_curve(&curve).map_err(internal)?
        }
        _ => return Ok(()),
    };
    if next.epsilon > l.budget() {
        return Err(RoundError::Conflict(format!(
            "one more round would spend epsilon {:.4}, over the budget {}",
            next.epsilon,
            l.budget()
        )));
    }
    Ok(())
}

/// A fresh SecAgg session for a cohort of `n`: graph and threshold from the threat model (which
/// each member recomputes from its pinned spec: `SecaggSession::verified_config`), a random
/// session id and graph seed.
fn secagg_session<R: RngCore + CryptoRng>(
    spec: &FederationSpec,
    n: u32,
    rng: &mut R,
) -> Result<SecaggSession> {
    let threat = spec
        .mode
        .threat_model()
        .ok_or_else(|| RoundError::Invalid("not a SecAgg federation".into()))?;
    let gp = GraphParams::derive(n, &threat).map_err(|e| RoundError::Conflict(e.to_string()))?;
    let (_, modulus_bits) = spec.secagg_vector().map_err(RoundError::Invalid)?;
    let mut sid = [0u8; 32];
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut sid);
    rng.fill_bytes(&mut seed);
    Ok(SecaggSession {
        session_id: hex::encode(sid),
        n,
        half_degree: gp.half_degree,
        graph_seed: hex::encode(seed),
        threshold: gp.threshold as u32,
        modulus_bits,
        cohort: Vec::new(),
        identities: Vec::new(),
    })
}

/// Fisher-Yates with an unbiased bounded draw.
fn shuffle<T, R: RngCore>(v: &mut [T], rng: &mut R) {
    for i in (1..v.len()).rev() {
        let bound = (i + 1) as u64;
        let zone = u64::MAX - (u64::MAX % bound);
        let j = loop {
            let x = rng.next_u64();
            if x < zone {
                break (x % bound) as usize;
            }
        };
        v.swap(i, j);
    }
}
