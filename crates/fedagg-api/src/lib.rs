//! The REST contract between `fedagg-server` and `fedagg-client`: every JSON body is a type in this
//! crate, and every vector body is a [`Frame`].
//!
//! The central choice: control messages are JSON (small, self-describing, easy to inspect with
//! curl), while vectors travel as `application/octet-stream` frames with a fixed 24-byte header
//! (magic, version, kind, round, payload length) followed by raw little-endian values or a
//! protocol crate's own wire message. A float never goes through JSON. Decoders check the header
//! against what the caller expects and reject trailing bytes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod contributions;
mod enrollment;
mod federation;
mod frame;
mod integer;
pub mod ledger;
mod operator;
mod privacy;
mod round;
pub mod routes;
pub mod trust;
mod update;

pub use enrollment::{
    EnrollRequest, Enrolled, EnrollmentCode, EnrollmentCodeRequest, PublicKeyBody, Role, Roster,
    RosterEntry, SignedRoster,
};
pub use federation::{Federation, FederationSpec, Mode, PrivacySpent};
pub use frame::{
    f32_bytes, f32_values, u64_bytes, u64_values, Frame, FrameError, FrameKind, FRAME_HEADER,
};
pub use operator::{FederationList, RoundList, RoundMetrics, RoundSummary, ServerOptimizer};
pub use privacy::{Accountant, AdaptiveClipping};
pub use round::{Accepted, Phase, RoundInfo, RoundRecord, RoundStatus, SecaggSession};
pub use update::Aggregate;

/// The `Content-Type` of vector bodies.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Largest model a federation may declare (2^26 values, 256 MiB of f32).
pub const MAX_VECTOR_LEN: usize = 1 << 26;

/// Fewest contributions an aggregate may have: with two, each contributor learns the other's
/// update from the sum.
pub const MIN_CLIENTS: u32 = 3;

/// Largest cohort a federation may declare.
pub const MAX_CLIENTS: u32 = 100_000;

/// Longest phase deadline, in seconds (a day).
pub const MAX_PHASE_TIMEOUT_SECS: u64 = 86_400;

/// Longest federation name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Most quantization levels T (2^24). With [`MAX_WEIGHT`] and [`MAX_CLIENTS`] the largest
/// quantized aggregate stays below 2^63, so every spec within the bounds has a modulus.
pub const MAX_LEVELS: u64 = 1 << 24;

/// Largest client weight (2^22).
pub const MAX_WEIGHT: u64 = 1 << 22;

/// Largest clip bound, quantized or DP.
pub const MAX_CLIP: f64 = 1e12;

/// Largest DP noise multiplier and server learning rate.
pub const MAX_PARAMETER: f64 = 1e6;

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind, e.g. `unauthorized`, `wrong_phase`.
    pub error: String,
    /// What was wrong, for humans.
    pub detail: String,
}

/// Health answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Server version.
    pub version: String,
}
