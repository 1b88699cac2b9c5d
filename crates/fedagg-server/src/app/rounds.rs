//! Opening a round, accepting submissions durably, downloads, and closing phases.

use std::sync::Arc;

use fedagg_api::{f32_bytes, f32_values, Accepted, Frame, Role, RoundInfo, RoundStatus};
use fedagg_round::optimizer::OptimizerState;
use fedagg_round::{Base, Closure, Ending, Round, RoundError, RoundId, RoundParams};
use sha2::{Digest, Sha256};

use super::{rng, to_json, App, Slot, SlotState};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::{Completion, RoundRow, StoreError};

impl App {
    /// Whether federation `fid` has an open round (on any replica: the caller holds its lock).
    pub(super) fn has_open_round(&self, fid: i64) -> Result<bool, ApiError> {
        Ok(if self.store.is_shared() {
            self.sync(fid)?.is_some()
        } else {
            self.slots().contains_key(&fid)
        })
    }

    /// Open the next round of a federation.
    pub fn open_round(&self, fid: i64) -> Result<RoundInfo, ApiError> {
        let _lock = self.store.lock_federation(fid)?;
        if self.has_open_round(fid)? {
            return Err(ApiError::conflict(format!(
                "federation {fid} already has an open round"
            )));
        }
        let (row, spec) = self.federation_spec(fid)?;
        let ledger = Self::ledger_of(&row)?;
        let contributors = self.store.contributors(fid)?;
        let identities = self.verified_roster(fid, &spec)?;
        let mut params = fedagg_round::plan::plan(
            &spec,
            contributors,
            identities.as_ref(),
            ledger.as_ref(),
            &mut rng()?,
        )?;
        params.server_optimizer = Self::optimizer_of(&row)?;
        let number = self.store.latest_round(fid)?.map_or(1, |r| r.round + 1);
        let now = self.now_ms();
        let id = RoundId {
            federation_id: fid,
            round: number,
            base_version: row.model_version,
            opened_ms: now,
        };
        let params_text = params.to_text()?;
        let round = Round::new(id, spec, params, row.public_key.as_deref(), ledger)?;
        let rrow = RoundRow {
            federation_id: fid,
            round: number,
            status: RoundStatus::Open,
            params: params_text,
            base_version: row.model_version,
            opened_ms: now,
            phase_started_ms: now,
            record: None,
        };
        self.store.insert_round(&rrow).map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(format!(
                "round {number} of federation {fid} was opened concurrently"
            )),
            e => e.into(),
        })?;
        {
            // The round's primary key in the store already refused a concurrent opening.
            let mut slots = self.slots();
            slots.insert(fid, Arc::new(Slot::new(round)));
            self.count_open(slots.len());
        }
        tracing::info!(federation = fid, round = number, "round opened");
        self.bump(fid);
        self.round_info(fid, number, None)
    }

    /// The open round `round` of `fid`, brought up to date with the shared log.
    pub(super) fn slot(&self, fid: i64, round: u64) -> Result<Arc<Slot>, ApiError> {
        let slot = if self.store.is_shared() {
            self.sync(fid)?
        } else {
            self.slots().get(&fid).cloned()
        };
        match slot {
            Some(s) if s.round == round => Ok(s),
            _ => Err(RoundError::WrongPhase(format!(
                "round {round} of federation {fid} is not open"
            ))
            .into()),
        }
    }

    /// The largest submission body round `round` of `fid` takes in its current phase (in a
    /// Paillier or lattice round's decryption, also a participant's retried contribution); the
    /// configured maximum when the round is not open (a retry after its end is still answered).
    pub fn submission_limit(&self, fid: i64, round: u64) -> Result<usize, ApiError> {
        let limit = match self.slot(fid, round) {
            Ok(slot) => slot.lock().round.max_submission(),
            Err(_) => self.config.max_body_bytes,
        };
        Ok(limit.min(self.config.max_body_bytes))
    }

    /// Accept one submission (a frame); durable before this returns `Ok`.
    pub fn submit(
        &self,
        fid: i64,
        round: u64,
        who: &Principal,
        body: &[u8],
    ) -> Result<Accepted, ApiError> {
        // Held until the submission is logged: no other replica logs in between.
        let _lock = self.store.lock_federation(fid)?;
        let (_, payload) = Frame::decode_any(body, round)?;
        let digest = Sha256::digest(payload).to_vec();
        let slot = match self.slot(fid, round) {
            Ok(slot) => slot,
            // The round is not open: a retry of something it accepted gets its outcome.
            Err(e) => return self.ended_replay(fid, round, who, &digest)?.ok_or(e),
        };
        let mut st = slot.lock();
        if st.gone {
            drop(st);
            return self
                .ended_replay(fid, round, who, &digest)?
                .ok_or_else(|| RoundError::WrongPhase("the round has ended".into()).into());
        }
        let r = &st.round;
        let member = r.member_of(who.role, who.participant_id)?;
        if let Some(phase) = self.store.submission_phase(fid, round, member, &digest)? {
            return Ok(Accepted {
                phase,
                replay: true,
                record: None,
            });
        }
        let payload = r.payload(member, body)?;
        let phase = r.phase();
        if self
            .store
            .submission_digest(fid, round, member, phase)?
            .is_some()
        {
            return Err(RoundError::Duplicate(format!(
                "member {member} already submitted a different body in phase {phase}"
            ))
            .into());
        }
        // Write-ahead: checked, logged, then applied. A failed write changes nothing.
        let checked = r.check(member, payload)?;
        self.store
            .append_submit(fid, round, member, phase, payload, &digest)?;
        st.round.apply(checked)?;
        let mode = st.round.spec().mode.name();
        self.metrics.add(
            "fedagg_bytes_received_total",
            &[("mode", mode)],
            payload.len() as f64,
        );
        self.metrics.add(
            "fedagg_submissions_total",
            &[("mode", mode), ("phase", phase.as_str())],
            1.0,
        );
        if st.round.due(self.now_ms()) {
            self.advance(&slot, &mut st);
        }
        drop(st);
        self.bump(fid);
        Ok(Accepted {
            phase,
            replay: false,
            record: None,
        })
    }

    /// A retry of a submission to a round that is no longer open: `Some` (a replay, with the
    /// round's outcome) when the store has this caller's submission with this digest.
    fn ended_replay(
        &self,
        fid: i64,
        round: u64,
        who: &Principal,
        digest: &[u8],
    ) -> Result<Option<Accepted>, ApiError> {
        let Some(row) = self.store.round(fid, round)? else {
            return Ok(None);
        };
        let member = match (who.role, who.participant_id) {
            (Role::KeyHolder, Some(pid)) => fedagg_round::key_holder_member(pid),
            (Role::Participant, Some(pid)) => RoundParams::from_text(&row.params)?.member(pid),
            _ => None,
        };
        let Some(member) = member else {
            return Ok(None);
        };
        let Some(phase) = self.store.submission_phase(fid, round, member, digest)? else {
            return Ok(None);
        };
        let record = row
            .record
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| ApiError::internal(format!("stored record: {e}")))?;
        Ok(Some(Accepted {
            phase,
            replay: true,
            record,
        }))
    }

    /// The server's message for the caller in the current phase.
    pub fn download(&self, fid: i64, round: u64, who: &Principal) -> Result<Vec<u8>, ApiError> {
        let slot = self.slot(fid, round)?;
        let st = slot.lock();
        let member = st.round.member_of(who.role, who.participant_id)?;
        Ok(st.round.download(member)?)
    }

    /// Close the current phase (all answered, or the deadline passed). When storing the
    /// outcome fails the round stays as it was, and the next tick tries again.
    pub(super) fn advance(&self, slot: &Arc<Slot>, st: &mut SlotState) {
        let r = &st.round;
        let id = *r.id();
        let phase = r.phase();
        let mode = r.spec().mode.name();
        let now = self.now_ms();
        let mut rng = match rng() {
            Ok(rng) => rng,
            Err(e) => {
                tracing::error!(error = %e, "cannot close a phase");
                return;
            }
        };
        let closure = r.prepare_close(&mut rng, now);
        let stored = r
            .ending(&closure, || self.round_base(r))
            .map_err(ApiError::from)
            .and_then(|ending| match &ending {
                None => Ok(self
                    .store
                    .append_close(id.federation_id, id.round, phase, now)?),
                Some(ending) => self.store_ending(&id, ending),
            });
        if let Err(e) = stored {
            tracing::error!(federation = id.federation_id, round = id.round, %phase, error = %e,
                "storing a phase closure failed; the round stays as it was");
            return;
        }
        let elapsed = (now - r.deadline().started_ms).max(0) as f64 / 1000.0;
        let labels = [("mode", mode), ("phase", phase.as_str())];
        self.metrics
            .add("fedagg_phase_duration_seconds_sum", &labels, elapsed);
        self.metrics
            .add("fedagg_phase_duration_seconds_count", &labels, 1.0);
        self.record_end(&closure, &id, mode, r.params().cohort.len() as u32);
        if let Err(e) = st.round.commit(closure) {
            tracing::error!(error = %e, "committing a stored closure failed; reloading the round");
            st.gone = true;
        }
        if st.round.ended() || st.gone {
            st.gone = true;
            self.forget(slot);
            if st.round.ended() && st.round.spec().auto_rounds {
                if let Err(e) = self.open_round(id.federation_id) {
                    tracing::warn!(federation = id.federation_id, error = %e, "next round not opened");
                }
            }
        } else {
            tracing::info!(federation = id.federation_id, round = id.round, closed = %phase,
                next = %st.round.phase(), "phase closed");
        }
    }

    /// What a completing round builds on: its base model, the server optimizer's stored state
    /// (which the round continues only if it was left at that base), and SCAFFOLD's control
    /// variate stored with the base model.
    fn round_base(&self, r: &Round) -> Result<Base, RoundError> {
        let id = r.id();
        let internal = |e: String| RoundError::Internal(e);
        let base = self
            .store
            .model(id.federation_id, id.base_version)
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| internal("base model missing".into()))?;
        let model = f32_values(&base, r.spec().vector_len).map_err(|e| internal(e.to_string()))?;
        let state = self
            .store
            .optimizer_state(id.federation_id)
            .map_err(|e| internal(e.to_string()))?
            .map(|b| OptimizerState::from_bytes(&b))
            .transpose()?;
        let controls = if r.spec().scaffold {
            self.store
                .model_controls(id.federation_id, id.base_version)
                .map_err(|e| internal(e.to_string()))?
                .flatten()
                .map(|b| f32_values(&b, r.spec().vector_len))
                .transpose()
                .map_err(|e| internal(format!("stored control variate: {e}")))?
        } else {
            None
        };
        Ok(Base {
            model,
            optimizer: state,
            controls,
        })
    }

    /// Write a round's ending in one transaction: model, ledger, status and record.
    fn store_ending(&self, id: &RoundId, ending: &Ending) -> Result<(), ApiError> {
        let (model, ledger, optimizer, controls) = match ending {
            Ending::Completed {
                version,
                model,
                ledger,
                optimizer,
                controls,
                ..
            } => (
                Some((*version, f32_bytes(model))),
                ledger
                    .as_ref()
                    .map(fedagg_round::ledger::to_text)
                    .transpose()?,
                Some(optimizer.to_bytes()),
                controls.as_deref().map(f32_bytes),
            ),
            Ending::Failed { .. } => (None, None, None, None),
        };
        self.store.complete_round(&Completion {
            federation_id: id.federation_id,
            round: id.round,
            model: model.as_ref().map(|(v, b)| (*v, b.as_slice())),
            ledger,
            optimizer_state: optimizer.as_deref(),
            controls: controls.as_deref(),
            status: ending.status(),
            record: to_json(ending.record())?,
        })?;
        Ok(())
    }

    /// Metrics and logs of a stored ending.
    fn record_end(&self, closure: &Closure, id: &RoundId, mode: &str, cohort: u32) {
        let fid = id.federation_id;
        if let Some(reason) = closure.failure() {
            tracing::warn!(federation = fid, round = id.round, %reason, "round failed");
            self.metrics
                .add("fedagg_rounds_failed_total", &[("mode", mode)], 1.0);
        }
        let Some(done) = closure.finished() else {
            return;
        };
        self.metrics
            .add("fedagg_rounds_completed_total", &[("mode", mode)], 1.0);
        self.metrics.add(
            "fedagg_dropouts_total",
            &[("mode", mode)],
            f64::from(cohort.saturating_sub(done.participants)),
        );
        if let Some(eps) = done
            .ledger
            .as_ref()
            .and_then(|l| fedagg_round::ledger::epsilon(l).ok())
        {
            self.metrics.set(
                "fedagg_epsilon_spent",
                &[("federation", &fid.to_string())],
                eps,
            );
        }
        tracing::info!(
            federation = fid,
            round = id.round,
            participants = done.participants,
            version = id.base_version + 1,
            "round completed"
        );
    }
}
