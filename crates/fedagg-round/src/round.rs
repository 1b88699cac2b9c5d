//! One open round: its engine, its clock readings and counters, its event log's replay, and the
//! write-ahead steps the shell drives (check, log, apply; prepare a closure, store it, commit).

use fedagg_api::{FederationSpec, Frame, Phase, Role, RoundInfo, RoundRecord, RoundStatus};
use rand_core::{CryptoRng, RngCore};

use crate::engine::{self, is_key_holder, key_holder_member, Closing, Engine, Finished};
use crate::error::{Result, RoundError};
use crate::ledger::DpState;
use crate::plan::RoundParams;

/// One logged event of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An accepted submission.
    Submit {
        /// Cohort index, or a key holder's ([`crate::key_holder_member`]).
        member: u32,
        /// Phase it was accepted in.
        phase: Phase,
        /// The payload (the frame's body).
        body: Vec<u8>,
    },
    /// The phase closed and the next began.
    Close {
        /// Which phase.
        phase: Phase,
    },
}

/// A phase's deadline, as data: when the phase started and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// Start of the phase, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// How long the phase may take, milliseconds.
    pub timeout_ms: i64,
}

impl Deadline {
    /// The instant the phase is due to close.
    pub fn at_ms(&self) -> i64 {
        self.started_ms.saturating_add(self.timeout_ms)
    }

    /// Whether the deadline has passed at `now_ms`.
    pub fn passed(&self, now_ms: i64) -> bool {
        now_ms >= self.at_ms()
    }

    /// Milliseconds left at `now_ms` (0 once passed).
    pub fn remaining_ms(&self, now_ms: i64) -> u64 {
        self.at_ms().saturating_sub(now_ms).max(0) as u64
    }
}

/// Where a round sits in its federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundId {
    /// Federation.
    pub federation_id: i64,
    /// Round number (1, 2, ...).
    pub round: u64,
    /// Model version the round starts from.
    pub base_version: u64,
    /// Opening time, milliseconds since the Unix epoch.
    pub opened_ms: i64,
}

/// A submission that passed every check of its phase: log it, then [`Round::apply`] it.
pub struct Submission {
    member: u32,
    phase: Phase,
    len: usize,
    checked: engine::Checked,
}

impl Submission {
    /// The phase it was checked in.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The member it came from.
    pub fn member(&self) -> u32 {
        self.member
    }
}

/// A phase's closure, computed without changing the round: store what [`Closure::ending`]
/// says, then [`Round::commit`] it.
pub struct Closure {
    phase: Phase,
    at_ms: i64,
    outcome: Closing,
}

/// What a completing round reads from the store: the model it started from, the server
/// optimizer's state stored with it, and (SCAFFOLD) the control variate `c` stored with it
/// (`None`: zero, as before any SCAFFOLD round).
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// The base model.
    pub model: Vec<f32>,
    /// The server optimizer's stored state.
    pub optimizer: Option<crate::optimizer::OptimizerState>,
    /// The control variate stored with the base model.
    pub controls: Option<Vec<f32>>,
}

/// How a round ended, as the store records it.
#[derive(Debug, Clone)]
// One per round, moved once into the store: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Ending {
    /// A new model version.
    Completed {
        /// The version number.
        version: u64,
        /// The model: the aggregate applied to the base by the round's server optimizer.
        model: Vec<f32>,
        /// The server optimizer's state after this round, stored with the model.
        optimizer: crate::optimizer::OptimizerState,
        /// SCAFFOLD: the server's control variate `c` after this round, stored with the model.
        controls: Option<Vec<f32>>,
        /// The privacy state after the round (DP mode): the ledger charged, the next clip norm.
        ledger: Option<DpState>,
        /// The record.
        record: RoundRecord,
    },
    /// No aggregate; the record says why.
    Failed {
        /// The record.
        record: RoundRecord,
    },
}

impl Ending {
    /// The record, either way.
    pub fn record(&self) -> &RoundRecord {
        match self {
            Ending::Completed { record, .. } | Ending::Failed { record } => record,
        }
    }

    /// The round's status after it.
    pub fn status(&self) -> RoundStatus {
        match self {
            Ending::Completed { .. } => RoundStatus::Completed,
            Ending::Failed { .. } => RoundStatus::Failed,
        }
    }
}

impl Closure {
    /// The phase it closes.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether it ends the round.
    pub fn ends_round(&self) -> bool {
        !matches!(self.outcome, Closing::Next(_))
    }

    /// The aggregate, when it finished the round.
    pub fn finished(&self) -> Option<&Finished> {
        match &self.outcome {
            Closing::Finished(f) => Some(f),
            _ => None,
        }
    }

    /// Why the round failed, when it did.
    pub fn failure(&self) -> Option<&str> {
        match &self.outcome {
            Closing::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// An open round.
pub struct Round {
    id: RoundId,
    spec: FederationSpec,
    params: RoundParams,
    engine: Engine,
    phase_started_ms: i64,
    revision: u64,
    bytes: u64,
    ended: bool,
}

impl Round {
    /// A round at its first phase. `public_key` is the key holder's stored key (HE modes),
    /// `ledger` the federation's ledger before this round (DP mode).
    pub fn new(
        id: RoundId,
        spec: FederationSpec,
        params: RoundParams,
        public_key: Option<&str>,
        ledger: Option<DpState>,
    ) -> Result<Self> {
        let engine = Engine::new(
            &spec,
            (id.federation_id, id.round),
            &params,
            public_key,
            ledger,
        )?;
        Ok(Round {
            id,
            spec,
            params,
            engine,
            phase_started_ms: id.opened_ms,
            revision: 1,
            bytes: 0,
            ended: false,
        })
    }

    /// Feed logged events to the round (after a restart, or to catch up with another replica);
    /// the current phase started at `phase_started_ms`. Returns how many events it applied.
    /// Non-final closures draw no randomness; `rng` is there for the engine's interface.
    pub fn replay<R: RngCore + CryptoRng>(
        &mut self,
        events: impl IntoIterator<Item = Event>,
        phase_started_ms: i64,
        rng: &mut R,
    ) -> Result<u64> {
        let mut n = 0;
        for ev in events {
            match ev {
                Event::Submit {
                    member,
                    phase,
                    body,
                } => {
                    if self.engine.phase() != phase {
                        return Err(RoundError::Internal(format!(
                            "event log submits in {phase} while the round is in {}",
                            self.engine.phase()
                        )));
                    }
                    let s = self.check(member, &body)?;
                    self.apply(s)?;
                }
                Event::Close { phase } => {
                    if self.engine.phase() != phase {
                        return Err(RoundError::Internal(format!(
                            "event log closes {phase} while the round is in {}",
                            self.engine.phase()
                        )));
                    }
                    let c = self.prepare_close(rng, phase_started_ms);
                    if c.ends_round() {
                        return Err(RoundError::Internal(
                            "a logged close ended the round".into(),
                        ));
                    }
                    self.commit(c)?;
                }
            }
            n += 1;
        }
        self.phase_started_ms = phase_started_ms;
        Ok(n)
    }

    /// Where the round sits.
    pub fn id(&self) -> &RoundId {
        &self.id
    }

    /// Its federation's spec.
    pub fn spec(&self) -> &FederationSpec {
        &self.spec
    }

    /// Its parameters.
    pub fn params(&self) -> &RoundParams {
        &self.params
    }

    /// The current phase (`done` once ended).
    pub fn phase(&self) -> Phase {
        if self.ended {
            Phase::Done
        } else {
            self.engine.phase()
        }
    }

    /// Changes whenever anything observable changes (starts at 1; one more per event).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Bytes of submissions accepted.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the round has ended (its ending is stored).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The current phase's deadline.
    pub fn deadline(&self) -> Deadline {
        Deadline {
            started_ms: self.phase_started_ms,
            timeout_ms: (self.spec.phase_timeout_secs as i64).saturating_mul(1000),
        }
    }

    /// Submissions accepted in the current phase.
    pub fn received(&self) -> usize {
        self.engine.received()
    }

    /// Submissions the current phase waits for.
    pub fn expected(&self) -> usize {
        self.engine.expected()
    }

    /// Whether the current phase should close at `now_ms`: every expected member answered, or
    /// the deadline passed.
    pub fn due(&self, now_ms: i64) -> bool {
        !self.ended && (self.received() >= self.expected() || self.deadline().passed(now_ms))
    }

    /// The member index of a caller: its cohort index, or its key holder's index.
    pub fn member_of(&self, role: Role, participant_id: Option<i64>) -> Result<u32> {
        match role {
            Role::KeyHolder => participant_id
                .and_then(key_holder_member)
                .ok_or_else(|| RoundError::Forbidden("a key holder without an id".into())),
            Role::Participant => {
                let pid = participant_id.unwrap_or(-1);
                self.params.member(pid).ok_or_else(|| {
                    RoundError::Forbidden(format!(
                        "participant {pid} is not in the cohort of round {}",
                        self.id.round
                    ))
                })
            }
            Role::Admin => Err(RoundError::Forbidden("admins do not submit".into())),
        }
    }

    /// The payload of a submission's frame, checked against the current phase's frame kind
    /// and the round number.
    pub fn payload<'a>(&self, member: u32, frame: &'a [u8]) -> Result<&'a [u8]> {
        self.check_open()?;
        if self.engine.key_holder_phase() != is_key_holder(member) {
            let who = if is_key_holder(member) {
                Role::KeyHolder
            } else {
                Role::Participant
            };
            return Err(RoundError::WrongPhase(format!(
                "phase {} takes no submission from a {who}",
                self.phase()
            )));
        }
        let kind = self.engine.submission_kind(&self.spec.mode);
        Ok(Frame::decode(frame, kind, self.id.round)?)
    }

    fn check_open(&self) -> Result<()> {
        if self.ended {
            return Err(RoundError::WrongPhase(format!(
                "round {} of federation {} has ended",
                self.id.round, self.id.federation_id
            )));
        }
        Ok(())
    }

    /// Check a submission's payload from `member` for the current phase, changing nothing.
    pub fn check(&self, member: u32, payload: &[u8]) -> Result<Submission> {
        self.check_open()?;
        let checked = self.engine.check(member, payload)?;
        Ok(Submission {
            member,
            phase: self.engine.phase(),
            len: payload.len(),
            checked,
        })
    }

    /// Record a checked submission (once it is logged).
    pub fn apply(&mut self, s: Submission) -> Result<()> {
        if s.phase != self.engine.phase() || self.ended {
            return Err(RoundError::Internal(format!(
                "a submission checked in {} applied in {}",
                s.phase,
                self.phase()
            )));
        }
        self.engine.apply(s.member, s.checked)?;
        self.bytes += s.len as u64;
        self.revision += 1;
        Ok(())
    }

    /// Whether `member` submitted in the current phase.
    pub fn has_submitted(&self, member: u32) -> bool {
        !self.ended && self.engine.has_submitted(member)
    }

    /// The largest submission frame the current phase accepts, header included: the service
    /// refuses a longer body before reading it.
    pub fn max_submission(&self) -> usize {
        fedagg_api::FRAME_HEADER + self.engine.max_submission()
    }

    /// The server's message for `member` in the current phase, as a frame.
    pub fn download(&self, member: u32) -> Result<Vec<u8>> {
        self.check_open()?;
        let payload = self.engine.download(member).ok_or_else(|| {
            RoundError::WrongPhase(format!(
                "nothing to download for member {member} in phase {}",
                self.phase()
            ))
        })?;
        let kind = self.engine.inbox_kind(&self.spec.mode);
        Ok(Frame::encode(kind, self.id.round, &payload))
    }

    /// Close the current phase at `now_ms`, on copies: the round is unchanged until
    /// [`Round::commit`].
    pub fn prepare_close<R: RngCore + CryptoRng>(&self, rng: &mut R, now_ms: i64) -> Closure {
        let outcome = if self.ended {
            Closing::Failed("the round has ended".into())
        } else {
            self.engine.prepare_close(rng)
        };
        Closure {
            phase: self.engine.phase(),
            at_ms: now_ms,
            outcome,
        }
    }

    /// What the store must record for a closure that ends the round (`None`: the phase closed
    /// and the next began; log an [`Event::Close`]). `base` reads the round's [`Base`], needed
    /// only when the round completes.
    pub fn ending(
        &self,
        c: &Closure,
        base: impl FnOnce() -> Result<Base>,
    ) -> Result<Option<Ending>> {
        let duration_secs = (c.at_ms - self.id.opened_ms).max(0) as f64 / 1000.0;
        let cohort = self.engine.cohort() as u32;
        Ok(Some(match &c.outcome {
            Closing::Next(_) => return Ok(None),
            Closing::Failed(reason) => Ending::Failed {
                record: failure_record(reason.clone(), cohort, self.bytes, duration_secs),
            },
            Closing::Finished(done) => {
                let base = base()?;
                if base.model.len() != self.spec.vector_len || done.update.len() != base.model.len()
                {
                    return Err(RoundError::Internal(format!(
                        "base model of {} values, aggregate of {}, federation of {}",
                        base.model.len(),
                        done.update.len(),
                        self.spec.vector_len
                    )));
                }
                let controls = crate::optimizer::scaffold_controls(
                    &self.spec,
                    &self.params,
                    done.control_sum.as_deref(),
                    base.controls,
                )?;
                let version = self.id.base_version + 1;
                let epsilon_spent = done
                    .ledger
                    .as_ref()
                    .map(crate::ledger::epsilon)
                    .transpose()?;
                let (model, optimizer) = crate::optimizer::step(
                    crate::optimizer::optimizer_of(&self.spec, &self.params),
                    base.model,
                    &done.update,
                    self.id.base_version,
                    base.optimizer,
                )?;
                Ending::Completed {
                    version,
                    model,
                    optimizer,
                    controls,
                    ledger: done.ledger.clone(),
                    record: RoundRecord {
                        participants: done.participants,
                        dropouts: cohort.saturating_sub(done.participants),
                        bytes_received: self.bytes,
                        epsilon_spent,
                        model_version: Some(version),
                        failure: None,
                        duration_secs,
                    },
                }
            }
        }))
    }

    /// Install a closure once the store has it: the next phase begins, or the round ends.
    pub fn commit(&mut self, c: Closure) -> Result<()> {
        if c.phase != self.engine.phase() || self.ended {
            return Err(RoundError::Internal(format!(
                "a closure of {} committed in {}",
                c.phase,
                self.phase()
            )));
        }
        match c.outcome {
            Closing::Next(next) => {
                self.engine.commit(next)?;
                self.phase_started_ms = c.at_ms;
            }
            Closing::Finished(_) | Closing::Failed(_) => self.ended = true,
        }
        self.revision += 1;
        Ok(())
    }

    /// The round as `member` sees it at `now_ms`.
    pub fn info(&self, member: Option<u32>, now_ms: i64) -> RoundInfo {
        RoundInfo {
            federation_id: self.id.federation_id,
            round: self.id.round,
            status: RoundStatus::Open,
            phase: self.phase(),
            revision: self.revision,
            deadline_in_ms: Some(self.deadline().remaining_ms(now_ms)),
            cohort: self.params.cohort.len() as u32,
            member: member.filter(|&m| !is_key_holder(m)),
            submitted: member.is_some_and(|m| self.has_submitted(m)),
            received: self.received() as u32,
            expected: self.expected() as u32,
            base_model_version: self.id.base_version,
            secagg: self.params.secagg.clone(),
            record: None,
        }
    }
}

/// An ended round as a participant (`participant_id`) sees it.
pub fn ended_info(
    id: &RoundId,
    status: RoundStatus,
    params: &RoundParams,
    record: Option<RoundRecord>,
    participant_id: Option<i64>,
) -> RoundInfo {
    RoundInfo {
        federation_id: id.federation_id,
        round: id.round,
        status,
        phase: Phase::Done,
        revision: u64::MAX,
        deadline_in_ms: None,
        cohort: params.cohort.len() as u32,
        member: participant_id.and_then(|p| params.member(p)),
        submitted: false,
        received: 0,
        expected: 0,
        base_model_version: id.base_version,
        secagg: params.secagg.clone(),
        record,
    }
}

/// The record of a round that failed for `reason`.
pub fn failure_record(reason: String, cohort: u32, bytes: u64, duration_secs: f64) -> RoundRecord {
    RoundRecord {
        participants: 0,
        dropouts: cohort,
        bytes_received: bytes,
        epsilon_spent: None,
        model_version: None,
        failure: Some(reason),
        duration_secs,
    }
}
