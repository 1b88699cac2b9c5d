//! The REST contract between `fedagg-server` and `fedagg-client`: every JSON body is a type in this
//! crate, and every vector body is a [`Frame`].
//!
//! The central choice: control messages are JSON (small, self-describing, easy to inspect with
//! curl), while vectors travel as `application/octet-stream` frames with a fixed 24-byte header
//! (magic, version, kind, round, payload length) followed by raw little-endian values or a
//! protocol crate's own wire message. A float never goes through JSON. Decoders check the header
//! against what the caller expects and reject trailing bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod routes;

/// The `Content-Type` of vector bodies.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Largest model a federation may declare (2^26 values, 256 MiB of f32).
pub const MAX_VECTOR_LEN: usize = 1 << 26;

/// The aggregation mode of a federation, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// Bonawitz et al. secure aggregation (SecAgg+ graph when the cohort is large). The server
    /// sees only the sum of the survivors' quantized, weighted updates.
    Secagg {
        /// Quantization: each update value is clipped to `[-clip, clip]`.
        clip: f64,
        /// Quantization levels T over `[-clip, clip]`.
        levels: u64,
        /// Largest client weight (for example its number of samples, capped).
        max_weight: u64,
        /// Expected fraction of clients that drop out (sizes the threshold and graph).
        dropout_rate: f64,
        /// Fraction of clients that may collude with the server.
        corrupt_fraction: f64,
    },
    /// Packed Paillier encryption under a key held by the key holder, who decrypts only the sum.
    Paillier {
        /// Quantization clip bound.
        clip: f64,
        /// Quantization levels T.
        levels: u64,
        /// Largest client weight.
        max_weight: u64,
    },
    /// Additive lattice (LWE) encryption under the key holder's key (`fedagg-lattice`); the
    /// server must be built with its `lattice` feature.
    Lattice {
        /// Quantization clip bound.
        clip: f64,
        /// Quantization levels T.
        levels: u64,
        /// Largest client weight.
        max_weight: u64,
    },
    /// Plaintext updates, clipped and noised on the server (central DP), charged to a budget.
    Dp {
        /// L2 clipping bound C per client update.
        clip: f64,
        /// Noise multiplier sigma: the sum gets N(0, (sigma C)^2) per coordinate.
        noise_multiplier: f64,
        /// Client sampling rate q used by the accountant.
        sampling_rate: f64,
        /// Total epsilon budget; a round that would exceed it does not open.
        epsilon_budget: f64,
        /// Delta of the (epsilon, delta) guarantee.
        delta: f64,
    },
}

impl Mode {
    /// Whether a key holder decrypts the aggregate (Paillier and lattice).
    pub fn is_he(&self) -> bool {
        matches!(self, Mode::Paillier { .. } | Mode::Lattice { .. })
    }

    /// Short name: `secagg`, `paillier`, `lattice` or `dp`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Secagg { .. } => "secagg",
            Mode::Paillier { .. } => "paillier",
            Mode::Lattice { .. } => "lattice",
            Mode::Dp { .. } => "dp",
        }
    }

    /// Quantization parameters of the quantized modes for `max_clients` contributions; `None`
    /// for DP, which sends floats.
    pub fn quant(&self, max_clients: u64) -> Option<Result<fedagg_quant::QuantParams, String>> {
        match *self {
            Mode::Secagg {
                clip,
                levels,
                max_weight,
                ..
            }
            | Mode::Paillier {
                clip,
                levels,
                max_weight,
            }
            | Mode::Lattice {
                clip,
                levels,
                max_weight,
            } => Some(
                fedagg_quant::QuantParams::with_minimal_modulus(
                    clip,
                    levels,
                    max_weight,
                    max_clients,
                )
                .map_err(|e| e.to_string()),
            ),
            Mode::Dp { .. } => None,
        }
    }
}

/// What an operator asks for when creating a federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederationSpec {
    /// Human-readable name.
    pub name: String,
    /// Number of model parameters (the update length).
    pub vector_len: usize,
    /// Aggregation mode and its parameters.
    pub mode: Mode,
    /// A round fails if fewer contributions than this arrive.
    pub min_clients: u32,
    /// Largest cohort of a round (sizes quantization headroom).
    pub max_clients: u32,
    /// Deadline of each phase, in seconds, counted from the phase's start.
    pub phase_timeout_secs: u64,
    /// Server learning rate applied to the aggregated update.
    #[serde(default = "one")]
    pub server_lr: f64,
    /// Open the next round automatically when one ends.
    #[serde(default)]
    pub auto_rounds: bool,
}

fn one() -> f64 {
    1.0
}

impl FederationSpec {
    /// The quantization both sides use (SecAgg and Paillier): headroom for `max_clients`
    /// contributions in the smallest modulus that holds them. An error for the DP mode.
    pub fn quant(&self) -> Result<fedagg_quant::QuantParams, String> {
        self.mode
            .quant(u64::from(self.max_clients))
            .unwrap_or_else(|| Err(format!("the {} mode is not quantized", self.mode.name())))
    }
}

/// A federation as the server reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Federation {
    /// Identifier.
    pub id: i64,
    /// The spec it was created with.
    pub spec: FederationSpec,
    /// Version of the current global model (0 = initial).
    pub model_version: u64,
    /// The round in progress, if any.
    pub open_round: Option<u64>,
    /// Enrolled participants (contributors).
    pub participants: u32,
    /// Whether the key holder has published a public key (HE modes).
    pub has_public_key: bool,
    /// Privacy spent so far (DP mode).
    pub privacy: Option<PrivacySpent>,
}

/// Spent privacy, as the accountant reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacySpent {
    /// Epsilon spent so far.
    pub epsilon: f64,
    /// Delta.
    pub delta: f64,
    /// Budget.
    pub epsilon_budget: f64,
    /// Rounds charged.
    pub rounds: u64,
}

/// Roles a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operator: creates federations, enrollment codes and rounds.
    Admin,
    /// Contributes updates.
    Participant,
    /// Holds the HE secret key and decrypts aggregates.
    KeyHolder,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Participant => "participant",
            Role::KeyHolder => "key_holder",
        })
    }
}

/// Request for an enrollment code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollmentCodeRequest {
    /// Role the code enrolls (participant or key holder).
    pub role: Role,
    /// Name recorded for the participant (defaults to the participant id).
    #[serde(default)]
    pub label: Option<String>,
}

/// A single-use enrollment code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollmentCode {
    /// The code, shown once.
    pub code: String,
    /// Federation it enrolls into.
    pub federation_id: i64,
    /// Role it grants.
    pub role: Role,
}

/// Body of `POST /v1/enroll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The enrollment code.
    pub code: String,
}

/// Answer to an enrollment: the bearer token is shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// Participant id.
    pub participant_id: i64,
    /// Federation.
    pub federation_id: i64,
    /// Role.
    pub role: Role,
    /// Bearer token.
    pub token: String,
}

/// Body of `PUT /v1/federations/{id}/public-key` (and of its GET): the key holder's public key,
/// in the field of the federation's mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublicKeyBody {
    /// Paillier mode: `fedagg-paillier`'s text form of the public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paillier: Option<String>,
    /// Lattice mode: `fedagg-lattice`'s public key bytes, hex-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lattice: Option<String>,
}

/// A round's phase, spelled one way on the wire, in the store's event log and in logs.
///
/// SecAgg rounds go through `advertise_keys`, `share_keys`, `masked_input` and `unmask`;
/// Paillier and lattice rounds through `submit` and `decrypt`; DP rounds through `submit`. A round
/// that ended is in `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// SecAgg round 0: participants advertise their two public keys.
    AdvertiseKeys,
    /// SecAgg round 1: participants send encrypted shares for their neighbours.
    ShareKeys,
    /// SecAgg round 2: participants send their masked inputs.
    MaskedInput,
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
    pub const ALL: [Phase; 7] = [
        Phase::AdvertiseKeys,
        Phase::ShareKeys,
        Phase::MaskedInput,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl SecaggSession {
    /// The session configuration both sides derive from these parameters for updates of
    /// `vector_len` values (the encoded vector has one more slot, for the weight).
    pub fn config(&self, vector_len: usize) -> Result<fedagg_secagg::SessionConfig, String> {
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
            fedagg_quant::QuantParams::encoded_len(vector_len),
            None,
        )
        .map_err(|e| e.to_string())
    }
}

/// A round as the server reports it to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable kind, e.g. `unauthorized`, `wrong_phase`.
    pub error: String,
    /// What was wrong, for humans.
    pub detail: String,
}

/// Health answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Server version.
    pub version: String,
}

/// What a vector frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Little-endian f32 values: a global model or a DP-mode update.
    F32 = 1,
    /// Little-endian u64 values: a decrypted aggregate.
    U64 = 2,
    /// A `fedagg-secagg` wire message.
    Secagg = 3,
    /// A `fedagg-paillier` ciphertext vector.
    Paillier = 4,
    /// A `fedagg-lattice` ciphertext vector.
    Lattice = 5,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => FrameKind::F32,
            2 => FrameKind::U64,
            3 => FrameKind::Secagg,
            4 => FrameKind::Paillier,
            5 => FrameKind::Lattice,
            _ => return None,
        })
    }
}

/// Frame header length.
pub const FRAME_HEADER: usize = 24;
const MAGIC: &[u8; 3] = b"FAV";
const VERSION: u8 = 1;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than the header, wrong magic or version, or unknown kind.
    BadHeader(String),
    /// Another kind than expected.
    WrongKind {
        /// Expected.
        expected: FrameKind,
        /// Found.
        found: FrameKind,
    },
    /// A round (or model version) other than expected.
    WrongRound {
        /// Expected.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// Declared and actual payload length differ, or the payload is not whole values.
    BadLength(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadHeader(s) => write!(f, "bad frame header: {s}"),
            FrameError::WrongKind { expected, found } => {
                write!(f, "frame kind {found:?} where {expected:?} was expected")
            }
            FrameError::WrongRound { expected, found } => {
                write!(f, "frame is for round {found}, expected {expected}")
            }
            FrameError::BadLength(s) => write!(f, "bad frame length: {s}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A vector body: header plus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Payload kind.
    pub kind: FrameKind,
    /// Round number (or model version for model downloads).
    pub round: u64,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Encode: `"FAV" | version | kind | 3 zero bytes | round u64 LE | payload length u64 LE |
    /// payload`.
    pub fn encode(kind: FrameKind, round: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(kind as u8);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&round.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Decode and check kind and round; returns the payload.
    pub fn decode(bytes: &[u8], kind: FrameKind, round: u64) -> Result<&[u8], FrameError> {
        let (header, payload) = bytes
            .split_at_checked(FRAME_HEADER)
            .ok_or_else(|| FrameError::BadHeader(format!("{} bytes", bytes.len())))?;
        if &header[..3] != MAGIC {
            return Err(FrameError::BadHeader("not a fedagg frame".into()));
        }
        if header[3] != VERSION {
            return Err(FrameError::BadHeader(format!(
                "version {} (this server speaks {VERSION})",
                header[3]
            )));
        }
        let found = FrameKind::from_u8(header[4])
            .ok_or_else(|| FrameError::BadHeader(format!("unknown kind {}", header[4])))?;
        if header[5..8] != [0; 3] {
            return Err(FrameError::BadHeader("reserved bytes are not zero".into()));
        }
        if found != kind {
            return Err(FrameError::WrongKind {
                expected: kind,
                found,
            });
        }
        let r = u64::from_le_bytes(le8(&header[8..16]));
        if r != round {
            return Err(FrameError::WrongRound {
                expected: round,
                found: r,
            });
        }
        let len = u64::from_le_bytes(le8(&header[16..24]));
        if len != payload.len() as u64 {
            return Err(FrameError::BadLength(format!(
                "header says {len} payload bytes, body has {}",
                payload.len()
            )));
        }
        Ok(payload)
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    a
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// f32 values from little-endian bytes; exactly `expected_len` values, all finite.
pub fn f32_values(bytes: &[u8], expected_len: usize) -> Result<Vec<f32>, FrameError> {
    if bytes.len() != expected_len.saturating_mul(4) {
        return Err(FrameError::BadLength(format!(
            "{} bytes, expected {expected_len} f32 values ({} bytes)",
            bytes.len(),
            expected_len.saturating_mul(4)
        )));
    }
    bytes
        .chunks_exact(4)
        .enumerate()
        .map(|(i, c)| {
            let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if x.is_finite() {
                Ok(x)
            } else {
                Err(FrameError::BadLength(format!("value {i} is not finite")))
            }
        })
        .collect()
}

/// Little-endian bytes of u64 values.
pub fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// u64 values from little-endian bytes; exactly `expected_len` values.
pub fn u64_values(bytes: &[u8], expected_len: usize) -> Result<Vec<u64>, FrameError> {
    if bytes.len() != expected_len.saturating_mul(8) {
        return Err(FrameError::BadLength(format!(
            "{} bytes, expected {expected_len} u64 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(le8(c)))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frame_round_trip_and_refusals() {
        let payload = f32_bytes(&[1.0, -2.5, 3.25]);
        let f = Frame::encode(FrameKind::F32, 7, &payload);
        assert_eq!(Frame::decode(&f, FrameKind::F32, 7).unwrap(), &payload[..]);
        assert_eq!(f32_values(&payload, 3).unwrap(), vec![1.0, -2.5, 3.25]);
        assert!(matches!(
            Frame::decode(&f, FrameKind::U64, 7),
            Err(FrameError::WrongKind { .. })
        ));
        assert!(matches!(
            Frame::decode(&f, FrameKind::F32, 8),
            Err(FrameError::WrongRound { .. })
        ));
        let mut longer = f.clone();
        longer.push(0);
        assert!(matches!(
            Frame::decode(&longer, FrameKind::F32, 7),
            Err(FrameError::BadLength(_))
        ));
        assert!(Frame::decode(&f[..10], FrameKind::F32, 7).is_err());
        let mut bad = f.clone();
        bad[0] = b'X';
        assert!(Frame::decode(&bad, FrameKind::F32, 7).is_err());
        assert!(f32_values(&payload, 4).is_err());
        assert!(f32_values(&f32_bytes(&[f32::NAN]), 1).is_err());
        assert_eq!(
            u64_values(&u64_bytes(&[1, u64::MAX]), 2).unwrap(),
            vec![1, u64::MAX]
        );
    }

    #[test]
    fn every_prefix_of_a_frame_is_refused() {
        let f = Frame::encode(FrameKind::Secagg, 1, &[9; 40]);
        for cut in 0..f.len() {
            assert!(
                Frame::decode(&f[..cut], FrameKind::Secagg, 1).is_err(),
                "{cut}"
            );
        }
    }

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

    #[test]
    fn mode_json_is_tagged() {
        let m = Mode::Dp {
            clip: 1.0,
            noise_multiplier: 1.1,
            sampling_rate: 0.1,
            epsilon_budget: 8.0,
            delta: 1e-5,
        };
        let j = serde_json::to_string(&m).unwrap();
        assert!(j.starts_with(r#"{"kind":"dp""#), "{j}");
        assert_eq!(serde_json::from_str::<Mode>(&j).unwrap(), m);
    }
}
