//! Rounds as clients see them: phases, status, SecAgg session parameters, records.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A round's phase, spelled one way on the wire, in the store's event log and in logs.
///
/// SecAgg rounds go through `advertise_keys`, `share_keys`, `masked_input`,
/// `consistency_check` (with `malicious_server` only) and `unmask`;
/// Paillier and lattice rounds through `submit` and `decrypt`; DP rounds through `submit`. A round
/// that ended is in `done`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// SecAgg round 0: participants advertise their two public keys.
    AdvertiseKeys,
    /// SecAgg round 1: participants send encrypted shares for their neighbours.
    ShareKeys,
    /// SecAgg round 2: participants send their masked inputs.
    MaskedInput,
    /// SecAgg round 3, against a malicious server: survivors sign the survivor set.
    ConsistencyCheck,
    /// SecAgg round 4: survivors send the shares that remove the masks.
    Unmask,
    /// Paillier, lattice and DP: participants send their (encrypted or plaintext) updates.
    Submit,
    /// Paillier and lattice: the key holder sends the decrypted aggregate.
    Decrypt,
    /// The round has ended.
    Done,
}

impl Phase {
    /// Every phase, in no particular order.
    pub const ALL: [Phase; 8] = [
        Phase::AdvertiseKeys,
        Phase::ShareKeys,
        Phase::MaskedInput,
        Phase::ConsistencyCheck,
        Phase::Unmask,
        Phase::Submit,
        Phase::Decrypt,
        Phase::Done,
    ];

    /// The wire spelling, e.g. `advertise_keys`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::AdvertiseKeys => "advertise_keys",
            Phase::ShareKeys => "share_keys",
            Phase::MaskedInput => "masked_input",
            Phase::ConsistencyCheck => "consistency_check",
            Phase::Unmask => "unmask",
            Phase::Submit => "submit",
            Phase::Decrypt => "decrypt",
            Phase::Done => "done",
        }
    }

    /// The phase a wire spelling names.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundStatus {
    /// In progress.
    Open,
    /// Ended with a new model version.
    Completed,
    /// Ended without an aggregate; `record.failure` says why.
    Failed,
}

/// The SecAgg session parameters clients need before round 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecaggSession {
    /// Session id (hex, 32 bytes).
    pub session_id: String,
    /// Cohort size n.
    pub n: u32,
    /// Harary half-degree k, or null for the complete graph.
    pub half_degree: Option<u32>,
    /// Graph permutation seed (hex, 32 bytes).
    pub graph_seed: String,
    /// Shamir threshold t.
    pub threshold: u32,
    /// Modulus bits.
    pub modulus_bits: u32,
    /// Against a malicious server: the participant id of each member, by member index (members
    /// check each one's identity on the roster the enrollment authority signed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cohort: Vec<i64>,
    /// Against a malicious server: each member's identity key (hex) as the server took it from
    /// the signed roster, by member index (members use their own verified copy instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
}

impl SecaggSession {
    /// The session configuration both sides derive from these parameters for messages of
    /// `elements` values.
    pub(crate) fn config_with(
        &self,
        elements: usize,
        identities: Option<Vec<ed25519_dalek::VerifyingKey>>,
    ) -> Result<fedagg_secagg::SessionConfig, String> {
        let hex32 = |s: &str, what: &str| -> Result<[u8; 32], String> {
            hex::decode(s)
                .map_err(|e| format!("{what}: {e}"))?
                .try_into()
                .map_err(|_| format!("{what} is not 32 bytes"))
        };
        let seed = hex32(&self.graph_seed, "graph seed")?;
        let graph = match self.half_degree {
            None => fedagg_secagg::Graph::complete(self.n),
            Some(h) => fedagg_secagg::Graph::harary(self.n, h, &seed),
        }
        .map_err(|e| e.to_string())?;
        let modulus = fedagg_quant::Modulus::new(self.modulus_bits).map_err(|e| e.to_string())?;
        fedagg_secagg::SessionConfig::new(
            hex32(&self.session_id, "session id")?,
            graph,
            self.threshold as usize,
            modulus,
            elements,
            identities,
        )
        .map_err(|e| e.to_string())
    }

    /// The session configuration for quantized updates of `vector_len` values (the encoded
    /// vector has one more slot, for the weight), with the identity keys of the session's own
    /// `identities` when it lists them (the server's view).
    pub fn config(&self, vector_len: usize) -> Result<fedagg_secagg::SessionConfig, String> {
        self.config_of(fedagg_quant::QuantParams::encoded_len(vector_len))
    }

    /// The session configuration of a round of `spec` (the server's view, as [`Self::config`]).
    pub fn config_for(
        &self,
        spec: &crate::FederationSpec,
    ) -> Result<fedagg_secagg::SessionConfig, String> {
        self.config_of(spec.secagg_vector()?.0)
    }

    /// The public seed of the round's distributed DP rotation (`secagg_dp`): a hash of the
    /// session id, so that every member and the server rotate alike. It is chosen by nobody in
    /// particular, and it needs no secrecy: it affects how flat the rotated updates are (the
    /// wrap-around bound), never their sensitivity.
    pub fn rotation_seed(&self) -> Result<[u8; 32], String> {
        use sha2::Digest;
        let id = hex::decode(&self.session_id).map_err(|e| format!("session id: {e}"))?;
        let mut h = sha2::Sha256::new();
        h.update(b"fedagg ddg rotation v1");
        h.update(&id);
        Ok(h.finalize().into())
    }

    fn config_of(&self, elements: usize) -> Result<fedagg_secagg::SessionConfig, String> {
        let identities = if self.identities.is_empty() {
            None
        } else {
            let keys = self
                .identities
                .iter()
                .map(|k| crate::trust::identity_key(k).map_err(|e| e.0))
                .collect::<Result<Vec<_>, String>>()?;
            Some(keys)
        };
        self.config_with(elements, identities)
    }
}

/// A round as the server reports it to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoundInfo {
    /// Federation.
    pub federation_id: i64,
    /// Round number (1, 2, ...).
    pub round: u64,
    /// Status.
    pub status: RoundStatus,
    /// Current phase (mode-specific, e.g. `advertise_keys`, `submit`, `decrypt`, `done`).
    pub phase: Phase,
    /// Changes whenever anything observable changes; pass it as `after` to long-poll.
    pub revision: u64,
    /// Milliseconds until the current phase's deadline.
    pub deadline_in_ms: Option<u64>,
    /// Members of the round's cohort.
    pub cohort: u32,
    /// The caller's index in the cohort (participants only).
    pub member: Option<u32>,
    /// Whether the caller has submitted in the current phase.
    pub submitted: bool,
    /// Submissions accepted in the current phase.
    pub received: u32,
    /// Submissions the current phase waits for.
    pub expected: u32,
    /// Model version the round started from.
    pub base_model_version: u64,
    /// SecAgg parameters (SecAgg mode).
    pub secagg: Option<SecaggSession>,
    /// Outcome, once the round ended.
    pub record: Option<RoundRecord>,
}

/// What a finished round records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoundRecord {
    /// Contributions in the aggregate.
    pub participants: u32,
    /// Cohort members that did not make it into the aggregate.
    pub dropouts: u32,
    /// Bytes of submissions received.
    pub bytes_received: u64,
    /// Epsilon spent in total after this round (DP mode).
    pub epsilon_spent: Option<f64>,
    /// Model version produced.
    pub model_version: Option<u64>,
    /// Why the round failed.
    pub failure: Option<String>,
    /// Seconds from open to end.
    pub duration_secs: f64,
}

/// Answer to a submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// Phase the submission was accepted in.
    pub phase: Phase,
    /// True when this exact submission had already been accepted (an idempotent retry), in
    /// this phase or an earlier one of the round.
    pub replay: bool,
    /// The round's outcome, when the retry arrives after the round ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RoundRecord>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn phases_have_one_spelling() {
        for p in Phase::ALL {
            let j = serde_json::to_string(&p).unwrap();
            assert_eq!(j, format!("\"{}\"", p.as_str()));
            assert_eq!(Phase::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::from_str::<Phase>(&j).unwrap(), p);
        }
        assert_eq!(Phase::parse("advertise-keys"), None);
    }
}
