//! The store's rows and how it spells roles, round statuses and phases.

use fedagg_api::{Phase, Role, RoundStatus};

use super::StoreError;

/// A role as the store spells it.
pub(super) fn role_text(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Participant => "participant",
        Role::KeyHolder => "key_holder",
    }
}

pub(super) fn parse_role(s: &str) -> Result<Role, StoreError> {
    [Role::Admin, Role::Participant, Role::KeyHolder]
        .into_iter()
        .find(|r| role_text(*r) == s)
        .ok_or_else(|| StoreError::internal(format!("stored role {s:?}")))
}

/// A round status as the store spells it.
pub(super) fn status_text(s: RoundStatus) -> &'static str {
    match s {
        RoundStatus::Open => "open",
        RoundStatus::Completed => "completed",
        RoundStatus::Failed => "failed",
    }
}

pub(super) fn parse_status(s: &str) -> Result<RoundStatus, StoreError> {
    [
        RoundStatus::Open,
        RoundStatus::Completed,
        RoundStatus::Failed,
    ]
    .into_iter()
    .find(|r| status_text(*r) == s)
    .ok_or_else(|| StoreError::internal(format!("stored round status {s:?}")))
}

pub(super) fn parse_phase(s: &str) -> Result<Phase, StoreError> {
    Phase::parse(s).ok_or_else(|| StoreError::internal(format!("stored phase {s:?}")))
}

/// A federation row.
#[derive(Debug, Clone)]
pub struct FederationRow {
    /// Id.
    pub id: i64,
    /// Spec as JSON.
    pub spec: String,
    /// Current model version.
    pub model_version: u64,
    /// Paillier public key text, once published.
    pub public_key: Option<String>,
    /// Privacy ledger as JSON (DP mode).
    pub ledger: Option<String>,
    /// The server optimizer as JSON, once an operator set one.
    pub optimizer: Option<String>,
}

/// A token row.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Role.
    pub role: Role,
    /// Federation (none for admin).
    pub federation_id: Option<i64>,
    /// Participant (none for admin).
    pub participant_id: Option<i64>,
}

/// A round row.
#[derive(Debug, Clone)]
pub struct RoundRow {
    /// Federation.
    pub federation_id: i64,
    /// Round number.
    pub round: u64,
    /// Open or ended.
    pub status: RoundStatus,
    /// Round parameters as JSON.
    pub params: String,
    /// Model version the round started from.
    pub base_version: u64,
    /// Opening time (ms since the epoch).
    pub opened_ms: i64,
    /// Start of the current phase (ms since the epoch).
    pub phase_started_ms: i64,
    /// Outcome JSON, once ended.
    pub record: Option<String>,
}

/// What a completed round writes, in one transaction.
pub struct Completion<'a> {
    /// Federation.
    pub federation_id: i64,
    /// Round.
    pub round: u64,
    /// New model (version, f32 LE bytes), if the round produced one.
    pub model: Option<(u64, &'a [u8])>,
    /// New ledger JSON (DP mode).
    pub ledger: Option<String>,
    /// The server optimizer's state after the new model (`OptimizerState::to_bytes`).
    pub optimizer_state: Option<&'a [u8]>,
    /// SCAFFOLD: the control variate after the new model (f32 LE), stored with it.
    pub controls: Option<&'a [u8]>,
    /// Completed or failed.
    pub status: RoundStatus,
    /// Outcome JSON.
    pub record: String,
}
