//! The server side of each mode behind one interface: check a member's submission for the
//! current phase, apply it, say how many are expected, and close the phase.
//!
//! Every change is two steps, so the shell can make it durable in between (write-ahead): `check`
//! validates and decodes without touching the state, `apply` records what was checked and cannot
//! fail on good input; `prepare_close` computes the next phase (or the round's outcome) on copies,
//! and `commit` installs it. A failed write therefore leaves the engine exactly as it was.
//!
//! Engines hold no IO and no clock, and are deterministic given the same events, so a restarted
//! server (or another replica) rebuilds one by replaying the round's log. The only randomness,
//! DP noise, is drawn when the final phase closes, whose outcome is stored and never replayed.

mod dp;
mod he;
mod secagg;

use fedagg_api::{FederationSpec, FrameKind, Mode, Phase};
use rand_core::{CryptoRng, RngCore};

pub use he::{lattice_key, paillier_key};

use crate::error::{Result, RoundError};
use crate::ledger::DpState;
use crate::plan::RoundParams;

/// Member index of a key holder's submissions as logged before key holders had their own
/// (one key holder per federation); still a key holder's index when replayed.
pub const KEY_HOLDER: u32 = u32::MAX;

/// Key holders' member indices start here, above every cohort index: key holder `p` (its
/// participant id) is `KEY_HOLDERS + p`, so that each of a threshold key's holders submits
/// once.
pub const KEY_HOLDERS: u32 = 1 << 31;

/// Whether member index `member` is a key holder's.
pub fn is_key_holder(member: u32) -> bool {
    member >= KEY_HOLDERS
}

/// The member index of the key holder with participant id `participant_id`.
pub fn key_holder_member(participant_id: i64) -> Option<u32> {
    u32::try_from(participant_id)
        .ok()
        .filter(|&p| p < KEY_HOLDER - KEY_HOLDERS)
        .map(|p| KEY_HOLDERS + p)
}

/// What a finished round hands back.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The aggregated update to apply to the model (a weighted mean for the quantized modes, the
    /// noised mean for the DP modes).
    pub update: Vec<f32>,
    /// SCAFFOLD: the sum of the contributions' control-variate deltas (noised in the DP modes).
    pub control_sum: Option<Vec<f64>>,
    /// Contributions in the aggregate.
    pub participants: u32,
    /// The privacy state after this round (DP modes): the ledger charged, the next clip norm.
    pub ledger: Option<DpState>,
}

/// What closing a phase leads to.
pub(crate) enum Step<N> {
    /// The next phase, to install once the closure is durable.
    Next(N),
    /// The round's aggregate.
    Finished(Finished),
}

/// A mode's round state.
pub(crate) enum Engine {
    Secagg(Box<secagg::SecaggEngine>),
    He(Box<he::HeEngine>),
    Dp(Box<dp::DpEngine>),
}

/// A submission that passed every check of its phase, ready to log and apply.
pub(crate) enum Checked {
    Secagg(secagg::Checked),
    He(he::Checked),
    Dp(dp::Checked),
}

/// The state a closed phase leads to, held until the closure is durable.
pub(crate) enum Next {
    Secagg(Box<secagg::Next>),
    He(he::Next),
}

/// The outcome of closing a phase, computed without changing the engine.
pub(crate) enum Closing {
    Next(Next),
    Finished(Finished),
    Failed(String),
}

impl<N> Step<N> {
    fn map(self, f: impl FnOnce(N) -> Next) -> Closing {
        match self {
            Step::Next(n) => Closing::Next(f(n)),
            Step::Finished(done) => Closing::Finished(done),
        }
    }
}

fn closing<N>(r: Result<Step<N>, String>, f: impl FnOnce(N) -> Next) -> Closing {
    match r {
        Ok(step) => step.map(f),
        Err(reason) => Closing::Failed(reason),
    }
}

impl Engine {
    /// A fresh engine for round `id = (federation, round)` of `spec` with `params`. `public_key`
    /// is the key holder's stored key text (HE modes); `ledger` the DP ledger before this round.
    pub(crate) fn new(
        spec: &FederationSpec,
        id: (i64, u64),
        params: &RoundParams,
        public_key: Option<&str>,
        ledger: Option<DpState>,
    ) -> Result<Self> {
        let n = params.cohort.len();
        let min = spec.min_clients as usize;
        let quant = || spec.quant().map_err(RoundError::Invalid);
        let key = || {
            public_key.ok_or_else(|| {
                RoundError::Conflict("the key holder has not published a key".into())
            })
        };
        Ok(match spec.mode {
            Mode::Secagg { .. } | Mode::SecaggDp { .. } => {
                let s = params
                    .secagg
                    .as_ref()
                    .ok_or_else(|| RoundError::Internal("secagg round without a session".into()))?;
                Engine::Secagg(Box::new(secagg::SecaggEngine::new(
                    spec,
                    s,
                    ledger,
                    params.denominator,
                    n,
                )?))
            }
            Mode::Paillier { .. } | Mode::Lattice { .. } => Engine::He(Box::new(
                he::HeEngine::new(spec, id, params, quant()?, key()?)?,
            )),
            Mode::Dp { .. } => Engine::Dp(Box::new(dp::DpEngine::new(
                spec,
                ledger.ok_or_else(|| RoundError::Internal("dp round without a ledger".into()))?,
                n,
                min,
                params.denominator,
            )?)),
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        match self {
            Engine::Secagg(e) => e.phase(),
            Engine::He(e) => e.phase(),
            Engine::Dp(e) => e.phase(),
        }
    }

    /// The largest submission payload the current phase accepts, in bytes.
    pub(crate) fn max_submission(&self) -> usize {
        match self {
            Engine::Secagg(e) => e.max_submission(),
            Engine::He(e) => e.max_submission(),
            Engine::Dp(e) => e.max_submission(),
        }
    }

    /// The frame kind a submission carries in the current phase of a round of `mode`.
    pub(crate) fn submission_kind(&self, mode: &Mode) -> FrameKind {
        match self {
            Engine::He(e) => e.submission_kind(),
            _ => None,
        }
        .unwrap_or_else(|| mode.submission_kind(self.phase()))
    }

    /// The frame kind of the server's message to a member in the current phase.
    pub(crate) fn inbox_kind(&self, mode: &Mode) -> FrameKind {
        match self {
            Engine::He(e) => e.inbox_kind(),
            _ => None,
        }
        .unwrap_or_else(|| mode.inbox_kind(self.phase()))
    }

    /// Whether the key holder (rather than participants) submits in the current phase.
    pub(crate) fn key_holder_phase(&self) -> bool {
        matches!(self, Engine::He(e) if e.key_holder_phase())
    }

    pub(crate) fn expected(&self) -> usize {
        match self {
            Engine::Secagg(e) => e.expected(),
            Engine::He(e) => e.expected(),
            Engine::Dp(e) => e.expected(),
        }
    }

    pub(crate) fn received(&self) -> usize {
        match self {
            Engine::Secagg(e) => e.submitted().len(),
            Engine::He(e) => e.received(),
            Engine::Dp(e) => e.submitted().len(),
        }
    }

    pub(crate) fn has_submitted(&self, member: u32) -> bool {
        match self {
            Engine::Secagg(e) => e.submitted().contains(&member),
            Engine::He(e) => e.has_submitted(member),
            Engine::Dp(e) => e.submitted().contains(&member),
        }
    }

    pub(crate) fn cohort(&self) -> usize {
        match self {
            Engine::Secagg(e) => e.cohort(),
            Engine::He(e) => e.cohort(),
            Engine::Dp(e) => e.cohort(),
        }
    }

    pub(crate) fn check(&self, member: u32, payload: &[u8]) -> Result<Checked> {
        if self.has_submitted(member) {
            return Err(RoundError::Duplicate(format!(
                "member {member} already submitted in phase {}",
                self.phase()
            )));
        }
        Ok(match self {
            Engine::Secagg(e) => Checked::Secagg(e.check(member, payload)?),
            Engine::He(e) => Checked::He(e.check(member, payload)?),
            Engine::Dp(e) => Checked::Dp(e.check(member, payload)?),
        })
    }

    pub(crate) fn apply(&mut self, member: u32, checked: Checked) -> Result<()> {
        match (self, checked) {
            (Engine::Secagg(e), Checked::Secagg(c)) => e.apply(member, c),
            (Engine::He(e), Checked::He(c)) => e.apply(member, c),
            (Engine::Dp(e), Checked::Dp(c)) => {
                e.apply(member, c);
                Ok(())
            }
            _ => Err(RoundError::Internal(
                "a submission checked for another mode".into(),
            )),
        }
    }

    /// The server's message for `member` in the current phase (SecAgg), or the encrypted
    /// aggregate for the key holder (HE).
    pub(crate) fn download(&self, member: u32) -> Option<Vec<u8>> {
        match self {
            Engine::Secagg(e) => e.download(member).map(<[u8]>::to_vec),
            Engine::He(e) => e.download(member),
            Engine::Dp(_) => None,
        }
    }

    pub(crate) fn prepare_close<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Closing {
        match self {
            Engine::Secagg(e) => closing(e.prepare_close(), |n| Next::Secagg(Box::new(n))),
            Engine::He(e) => closing(e.prepare_close(), Next::He),
            Engine::Dp(e) => closing(e.prepare_close(rng), |n| match n {}),
        }
    }

    pub(crate) fn commit(&mut self, next: Next) -> Result<()> {
        match (self, next) {
            (Engine::Secagg(e), Next::Secagg(n)) => e.commit(*n),
            (Engine::He(e), Next::He(n)) => e.commit(n),
            _ => {
                return Err(RoundError::Internal(
                    "a phase closure prepared for another mode".into(),
                ))
            }
        }
        Ok(())
    }
}
