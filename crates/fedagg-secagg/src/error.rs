//! The crate's error type, grouped as rustls does: malformed messages, peer misbehaviour, too few
//! participants, and misuse of the API by the caller.

use core::fmt;

use crate::ClientId;

/// Which protocol phase an error or threshold refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Round 0: clients advertise their two public keys.
    AdvertiseKeys,
    /// Round 1: clients send encrypted Shamir shares to their neighbours.
    ShareKeys,
    /// Round 2: clients send their masked input.
    MaskedInputCollection,
    /// Round 3 (malicious-server mode): clients sign the set of surviving clients.
    ConsistencyCheck,
    /// Round 4: clients reveal the shares that remove the masks.
    Unmasking,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::AdvertiseKeys => "advertise-keys",
            Phase::ShareKeys => "share-keys",
            Phase::MaskedInputCollection => "masked-input-collection",
            Phase::ConsistencyCheck => "consistency-check",
            Phase::Unmasking => "unmasking",
        })
    }
}

/// Everything that can go wrong in the SecAgg machines. No variant is produced by a panic: every
/// byte a peer sends is checked and refused through this type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A message could not be decoded (size, header, field, or trailing bytes).
    Malformed(String),
    /// A message decoded but its content breaks the protocol (duplicates, unknown ids, a list
    /// that lists this client as dropped, ...). The client or server refuses to continue.
    Protocol(String),
    /// A message arrived from a client that is not (or no longer) part of this phase.
    UnexpectedSender {
        /// The sender.
        client: ClientId,
        /// The phase the server is in.
        phase: Phase,
    },
    /// The client already sent its message for this phase.
    Duplicate {
        /// The sender.
        client: ClientId,
        /// The phase.
        phase: Phase,
    },
    /// A masked input arrived from a client that the server has declared dropped.
    DeclaredDropped(ClientId),
    /// An encrypted share failed to decrypt or authenticate. Deliberately says no more.
    Decryption,
    /// A signature did not verify.
    BadSignature(ClientId),
    /// Fewer than the threshold remain: the round aborts.
    BelowThreshold {
        /// The phase that closed with too few clients.
        phase: Phase,
        /// How many there are.
        have: usize,
        /// How many are needed.
        need: usize,
        /// What was counted.
        what: String,
    },
    /// A reconstructed secret did not match its public key or commitment.
    Reconstruction(ClientId),
    /// Invalid parameters (threshold, graph, vector length, threat model).
    InvalidParameters(String),
    /// The caller passed input that does not fit the session (wrong length, unreduced element).
    InvalidInput(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(why) => write!(f, "malformed message: {why}"),
            Error::Protocol(why) => write!(f, "protocol violation: {why}"),
            Error::UnexpectedSender { client, phase } => {
                write!(f, "client {client} is not expected in phase {phase}")
            }
            Error::Duplicate { client, phase } => {
                write!(f, "client {client} already answered in phase {phase}")
            }
            Error::DeclaredDropped(c) => {
                write!(
                    f,
                    "client {c} was declared dropped; its late message is refused"
                )
            }
            Error::Decryption => f.write_str("encrypted share failed to decrypt"),
            Error::BadSignature(c) => write!(f, "signature of client {c} does not verify"),
            Error::BelowThreshold {
                phase,
                have,
                need,
                what,
            } => write!(
                f,
                "round aborted in phase {phase}: {what} is {have}, below the threshold {need}"
            ),
            Error::Reconstruction(c) => {
                write!(
                    f,
                    "secret of client {c} reconstructed from shares does not verify"
                )
            }
            Error::InvalidParameters(why) => write!(f, "invalid parameters: {why}"),
            Error::InvalidInput(why) => write!(f, "invalid input: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<fedagg_quant::Error> for Error {
    fn from(e: fedagg_quant::Error) -> Self {
        Error::InvalidParameters(e.to_string())
    }
}

pub(crate) fn malformed(why: impl Into<String>) -> Error {
    Error::Malformed(why.into())
}

pub(crate) fn protocol(why: impl Into<String>) -> Error {
    Error::Protocol(why.into())
}
