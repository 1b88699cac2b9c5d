//! The round engine's one error type. It says what went wrong in the round's terms; the service
//! maps each kind to an HTTP status in one place (`fedagg-server`'s `error` module).

use std::fmt;

/// Why the round engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoundError {
    /// A federation spec or round parameter is out of range.
    Invalid(String),
    /// A submission is malformed: a bad frame, a wrong length, refused by a protocol decoder.
    Malformed(String),
    /// The caller may not do this in this round (not in the cohort, the wrong role).
    Forbidden(String),
    /// The round is in another phase than the request needs, or is not open.
    WrongPhase(String),
    /// A different submission from the same member was already accepted in this phase.
    Duplicate(String),
    /// The federation's state forbids it (too few participants, a budget spent, no key yet).
    Conflict(String),
    /// Stored state the engine cannot use (a corrupt record, a log that does not replay).
    Internal(String),
}

impl RoundError {
    /// The machine-readable kind, e.g. `wrong_phase`.
    pub fn kind(&self) -> &'static str {
        match self {
            RoundError::Invalid(_) => "invalid",
            RoundError::Malformed(_) => "bad_request",
            RoundError::Forbidden(_) => "forbidden",
            RoundError::WrongPhase(_) => "wrong_phase",
            RoundError::Duplicate(_) => "duplicate",
            RoundError::Conflict(_) => "conflict",
            RoundError::Internal(_) => "internal",
        }
    }

    /// What was wrong, for humans.
    pub fn detail(&self) -> &str {
        match self {
            RoundError::Invalid(s)
            | RoundError::Malformed(s)
            | RoundError::Forbidden(s)
            | RoundError::WrongPhase(s)
            | RoundError::Duplicate(s)
            | RoundError::Conflict(s)
            | RoundError::Internal(s) => s,
        }
    }
}

impl fmt::Display for RoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.detail())
    }
}

impl std::error::Error for RoundError {}

impl From<fedagg_api::FrameError> for RoundError {
    fn from(e: fedagg_api::FrameError) -> Self {
        RoundError::Malformed(e.to_string())
    }
}

/// A SecAgg protocol refusal in the round's terms.
pub(crate) fn from_secagg(e: fedagg_secagg::Error) -> RoundError {
    match e {
        fedagg_secagg::Error::Duplicate { .. } => RoundError::Duplicate(e.to_string()),
        fedagg_secagg::Error::UnexpectedSender { .. }
        | fedagg_secagg::Error::DeclaredDropped(_) => RoundError::Forbidden(e.to_string()),
        _ => RoundError::Malformed(e.to_string()),
    }
}

/// The round's result type.
pub type Result<T, E = RoundError> = std::result::Result<T, E>;
