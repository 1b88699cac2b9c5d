//! Round orchestration: opening rounds, accepting submissions durably, closing phases when every
//! expected member answered or the deadline passed, applying aggregates to the global model, and
//! resuming open rounds after a restart by replaying their event logs.
//!
//! Several replicas can serve one federation when they share a PostgreSQL store
//! ([`Store::is_shared`]). Each keeps its own copy of the open round's engine and brings it up to
//! date from the shared event log before it acts: writers (submissions, phase closures, opening a
//! round) first take the federation's lock in the database, then replay the events other
//! replicas logged since, then act and log; readers replay without the lock. Sequence numbers are
//! taken under the lock, so every replica sees the same prefix of one log and the engines, which
//! are deterministic in their logged inputs, agree. A round ends exactly once: the replica that
//! closes the last phase writes the result, and the others drop their copy when the log says the
//! round is over. Long polls on one replica learn of another's events from the 200 ms tick.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fedagg_api::{
    f32_bytes, f32_values, Federation, FederationSpec, Frame, Mode, PrivacySpent, Role, RoundInfo,
    RoundRecord, RoundStatus, SecaggSession,
};
use fedagg_dp::Ledger;
use fedagg_secagg::{Adversary, GraphParams, ThreatModel};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::auth::Principal;
use crate::config::Config;
use crate::engine::{Engine, Finished, LedgerJson, RoundParams, KEY_HOLDER};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{Completion, Event, RoundRow, Store};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Shared service state.
pub struct App {
    /// Storage.
    pub store: Store,
    /// Configuration.
    pub config: Config,
    /// Metrics.
    pub metrics: Metrics,
    /// Submissions whose bodies may be in memory at once.
    pub upload_slots: tokio::sync::Semaphore,
    rounds: Mutex<HashMap<i64, Arc<Slot>>>,
    changed: watch::Sender<u64>,
}

/// An open round in memory.
struct Slot {
    federation_id: i64,
    round: u64,
    spec: FederationSpec,
    params: RoundParams,
    base_version: u64,
    opened_ms: i64,
    state: Mutex<SlotState>,
}

struct SlotState {
    engine: Engine,
    phase_started_ms: i64,
    revision: u64,
    bytes: u64,
    ended: bool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Answer to a submission.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    /// Phase the submission was accepted in.
    pub phase: String,
    /// True when this exact submission had already been accepted (an idempotent retry).
    pub replay: bool,
}

fn parse_spec(text: &str) -> Result<FederationSpec, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::internal(format!("stored spec: {e}")))
}

/// Check a federation spec before creating it.
pub fn validate_spec(spec: &FederationSpec) -> Result<(), ApiError> {
    let bad = |s: String| Err(ApiError::invalid(s));
    if spec.name.trim().is_empty() || spec.name.len() > 200 {
        return bad("name must be 1 to 200 characters".into());
    }
    if spec.vector_len == 0 || spec.vector_len > fedagg_api::MAX_VECTOR_LEN {
        return bad(format!(
            "vector_len {} must lie in 1..={}",
            spec.vector_len,
            fedagg_api::MAX_VECTOR_LEN
        ));
    }
    if spec.min_clients == 0 || spec.min_clients > spec.max_clients {
        return bad(format!(
            "min_clients {} must lie in 1..=max_clients ({})",
            spec.min_clients, spec.max_clients
        ));
    }
    if spec.max_clients > 100_000 {
        return bad("max_clients must be at most 100000".into());
    }
    if spec.phase_timeout_secs == 0 || spec.phase_timeout_secs > 86_400 {
        return bad("phase_timeout_secs must lie in 1..=86400".into());
    }
    if !(spec.server_lr.is_finite() && spec.server_lr > 0.0) {
        return bad("server_lr must be positive".into());
    }
    if !matches!(spec.mode, Mode::Dp { .. }) {
        spec.quant().map_err(ApiError::invalid)?;
    }
    match spec.mode {
        Mode::Secagg {
            dropout_rate,
            corrupt_fraction,
            ..
        } => {
            if spec.min_clients < 2 {
                return bad("secagg needs min_clients >= 2".into());
            }
            // The graph is derived for the actual cohort when a round opens; here the rates
            // only need to be meaningful.
            for (name, v) in [
                ("dropout_rate", dropout_rate),
                ("corrupt_fraction", corrupt_fraction),
            ] {
                if !(0.0..1.0).contains(&v) {
                    return bad(format!("{name} {v} must lie in [0, 1)"));
                }
            }
        }
        Mode::Paillier { .. } => {}
        Mode::Lattice { .. } => {
            #[cfg(feature = "lattice")]
            fedagg_lattice::LatticeParams::new(&spec.quant().map_err(ApiError::invalid)?)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            #[cfg(not(feature = "lattice"))]
            return bad(
                "this server was built without the lattice mode (cargo feature `lattice`)".into(),
            );
        }
        Mode::Dp {
            clip,
            noise_multiplier,
            sampling_rate,
            epsilon_budget,
            delta,
        } => {
            if !(clip.is_finite() && clip > 0.0) {
                return bad("clip must be positive".into());
            }
            if !(noise_multiplier.is_finite() && noise_multiplier > 0.0) {
                return bad("noise_multiplier must be positive".into());
            }
            if !(sampling_rate > 0.0 && sampling_rate <= 1.0) {
                return bad("sampling_rate must lie in (0, 1]".into());
            }
            Ledger::new(epsilon_budget, delta).map_err(|e| ApiError::invalid(e.to_string()))?;
        }
    }
    Ok(())
}

fn threat(dropout_rate: f64, corrupt_fraction: f64) -> ThreatModel {
    ThreatModel {
        dropout_rate,
        corrupt_fraction,
        adversary: Adversary::Curious,
        ..ThreatModel::default()
    }
}

impl App {
    /// Build the state and resume the rounds the store has open.
    pub fn new(config: Config, store: Store) -> Result<Arc<Self>, ApiError> {
        let (changed, _) = watch::channel(0);
        let app = Arc::new(App {
            store,
            upload_slots: tokio::sync::Semaphore::new(config.max_concurrent_uploads),
            config,
            metrics: Metrics::default(),
            rounds: Mutex::new(HashMap::new()),
            changed,
        });
        for row in app.store.open_rounds()? {
            let (fid, r) = (row.federation_id, row.round);
            let events = app.store.events(fid, r);
            match events.and_then(|ev| app.rebuild(row, ev)) {
                Ok(slot) => {
                    tracing::info!(federation = fid, round = r, "resumed open round");
                    app.slots().insert(fid, Arc::new(slot));
                }
                Err(e) => {
                    tracing::error!(federation = fid, round = r, error = %e, "cannot resume round");
                    app.store.complete_round(&Completion {
                        federation_id: fid,
                        round: r,
                        model: None,
                        ledger: None,
                        status: "failed",
                        record: failure_record(
                            format!("could not resume after restart: {e}"),
                            0,
                            0,
                            0.0,
                        ),
                    })?;
                }
            }
        }
        app.metrics
            .set("fedagg_open_rounds", &[], app.slots().len() as f64);
        Ok(app)
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<i64, Arc<Slot>>> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake long-pollers: something observable changed.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Subscribe to "something changed" notifications (long polling).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn federation_spec(
        &self,
        fid: i64,
    ) -> Result<(crate::store::FederationRow, FederationSpec), ApiError> {
        let row = self
            .store
            .federation(fid)?
            .ok_or_else(|| ApiError::not_found(format!("no federation {fid}")))?;
        let spec = parse_spec(&row.spec)?;
        Ok((row, spec))
    }

    fn ledger_of(row: &crate::store::FederationRow) -> Result<Option<Ledger>, ApiError> {
        row.ledger
            .as_deref()
            .map(|l| {
                serde_json::from_str::<LedgerJson>(l)
                    .map_err(|e| ApiError::internal(format!("stored ledger: {e}")))?
                    .to_ledger()
            })
            .transpose()
    }

    /// Replay an open round's events into a fresh engine.
    fn rebuild(&self, row: RoundRow, events: Vec<Event>) -> Result<Slot, ApiError> {
        let (frow, spec) = self.federation_spec(row.federation_id)?;
        let params: RoundParams = serde_json::from_str(&row.params)
            .map_err(|e| ApiError::internal(format!("stored round params: {e}")))?;
        let mut engine = Engine::new(
            &spec,
            &params,
            frow.public_key.as_deref(),
            Self::ledger_of(&frow)?,
        )?;
        let mut bytes = 0u64;
        let revision = 1 + replay(&mut engine, events, &mut bytes)?;
        Ok(Slot {
            federation_id: row.federation_id,
            round: row.round,
            spec,
            params,
            base_version: row.base_version,
            opened_ms: row.opened_ms,
            state: Mutex::new(SlotState {
                engine,
                phase_started_ms: row.phase_started_ms,
                revision,
                bytes,
                ended: false,
            }),
        })
    }

    /// Shared store: bring this replica's copy of a federation's open round up to date with the
    /// log, loading a round another replica opened and dropping one another replica ended.
    /// Returns the open round, if any.
    fn sync(&self, fid: i64) -> Result<Option<Arc<Slot>>, ApiError> {
        let local = self.slots().get(&fid).cloned();
        // Held from reading the log to applying it: no other thread applies the same events.
        let st = local.as_ref().map(|s| s.lock());
        let log = self
            .store
            .latest_round_log(fid, |round| match (&local, &st) {
                (Some(s), Some(st)) if s.round == round => st.revision - 1,
                _ => 0,
            })?;
        let Some((row, events)) = log.filter(|(r, _)| r.status == "open") else {
            if let (Some(slot), Some(mut st)) = (&local, st) {
                st.ended = true;
                drop(st);
                self.forget(slot);
                self.bump();
            }
            return Ok(None);
        };
        match (&local, st) {
            (Some(slot), Some(mut st)) if slot.round == row.round => {
                if st.ended {
                    return Ok(None);
                }
                let mut bytes = st.bytes;
                return match replay(&mut st.engine, events, &mut bytes) {
                    Ok(n) => {
                        st.revision += n;
                        st.bytes = bytes;
                        st.phase_started_ms = row.phase_started_ms;
                        drop(st);
                        if n > 0 {
                            self.bump();
                        }
                        Ok(Some(slot.clone()))
                    }
                    Err(e) => {
                        // The copy may be half-updated: drop it, the next call rebuilds it whole.
                        st.ended = true;
                        drop(st);
                        self.forget(slot);
                        Err(e)
                    }
                };
            }
            // A stale copy (another round) is replaced below; release it first.
            (_, st) => drop(st),
        }
        let slot = Arc::new(self.rebuild(row, events)?);
        {
            let mut slots = self.slots();
            slots.insert(fid, slot.clone());
            self.metrics
                .set("fedagg_open_rounds", &[], slots.len() as f64);
        }
        self.bump();
        Ok(Some(slot))
    }

    /// Remove a round's copy from memory (if it is still the one there).
    fn forget(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots();
        if slots
            .get(&slot.federation_id)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            slots.remove(&slot.federation_id);
        }
        self.metrics
            .set("fedagg_open_rounds", &[], slots.len() as f64);
    }

    /// The number of the federation's open round, if any.
    fn open_round_number(&self, fid: i64) -> Result<Option<u64>, ApiError> {
        if self.store.is_shared() {
            return Ok(self
                .store
                .latest_round(fid)?
                .filter(|r| r.status == "open")
                .map(|r| r.round));
        }
        Ok(self.slots().get(&fid).map(|s| s.round))
    }

    fn reload(&self, slot: &Slot) {
        if let Ok(Some(row)) = self.store.round(slot.federation_id, slot.round) {
            let events = self.store.events(row.federation_id, row.round);
            match events.and_then(|ev| self.rebuild(row, ev)) {
                Ok(fresh) => {
                    self.slots().insert(slot.federation_id, Arc::new(fresh));
                }
                Err(e) => tracing::error!(error = %e, "reload after a storage error failed"),
            }
        }
    }

    /// The federation as reported to clients.
    pub fn federation(&self, fid: i64) -> Result<Federation, ApiError> {
        let (row, spec) = self.federation_spec(fid)?;
        let privacy = Self::ledger_of(&row)?
            .map(|l| -> Result<PrivacySpent, ApiError> {
                let eps = if l.rounds() == 0 {
                    0.0
                } else {
                    l.spent()
                        .map_err(|e| ApiError::internal(e.to_string()))?
                        .epsilon
                };
                Ok(PrivacySpent {
                    epsilon: eps,
                    delta: l.delta(),
                    epsilon_budget: l.budget(),
                    rounds: l.rounds(),
                })
            })
            .transpose()?;
        Ok(Federation {
            id: row.id,
            open_round: self.open_round_number(fid)?,
            participants: self.store.contributors(fid)?.len() as u32,
            has_public_key: row.public_key.is_some(),
            model_version: row.model_version,
            spec,
            privacy,
        })
    }

    /// Create a federation with an all-zero initial model.
    pub fn create_federation(&self, spec: FederationSpec) -> Result<Federation, ApiError> {
        validate_spec(&spec)?;
        let ledger = match spec.mode {
            Mode::Dp {
                epsilon_budget,
                delta,
                ..
            } => {
                let l = Ledger::new(epsilon_budget, delta)
                    .map_err(|e| ApiError::invalid(e.to_string()))?;
                Some(
                    serde_json::to_string(&LedgerJson::from_ledger(&l))
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                )
            }
            _ => None,
        };
        let text = serde_json::to_string(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
        let model = f32_bytes(&vec![0.0; spec.vector_len]);
        let id = self
            .store
            .create_federation(&text, ledger.as_deref(), &model, now_ms())?;
        self.federation(id)
    }

    /// Replace the initial model (before the first round).
    pub fn set_initial_model(&self, fid: i64, body: &[u8]) -> Result<(), ApiError> {
        let (row, spec) = self.federation_spec(fid)?;
        if row.model_version != 0 || self.store.latest_round(fid)?.is_some() {
            return Err(ApiError::conflict(
                "the initial model can only be set before the first round",
            ));
        }
        let payload = Frame::decode(body, fedagg_api::FrameKind::F32, 0)?;
        f32_values(payload, spec.vector_len)?;
        self.store.put_model(fid, 0, payload)
    }

    /// Open the next round of a federation.
    pub fn open_round(&self, fid: i64) -> Result<RoundInfo, ApiError> {
        let _lock = self.store.lock_federation(fid)?;
        let open = if self.store.is_shared() {
            self.sync(fid)?.is_some()
        } else {
            self.slots().contains_key(&fid)
        };
        if open {
            return Err(ApiError::conflict(format!(
                "federation {fid} already has an open round"
            )));
        }
        let (row, spec) = self.federation_spec(fid)?;
        let mut contributors = self.store.contributors(fid)?;
        let mut rng =
            ChaCha20Rng::from_rng(OsRng).map_err(|e| ApiError::internal(e.to_string()))?;
        // Uniformly random cohort when more are enrolled than a round may hold.
        shuffle(&mut contributors, &mut rng);
        let mut cohort: Vec<i64> = match spec.mode {
            Mode::Dp { sampling_rate, .. } => {
                // Poisson sampling with the rate the accountant assumes.
                let threshold = (sampling_rate * (u64::MAX as f64)) as u64;
                contributors
                    .into_iter()
                    .filter(|_| sampling_rate >= 1.0 || rng.next_u64() < threshold)
                    .take(spec.max_clients as usize)
                    .collect()
            }
            _ => contributors
                .into_iter()
                .take(spec.max_clients as usize)
                .collect(),
        };
        cohort.sort_unstable();
        if !matches!(spec.mode, Mode::Dp { .. }) && cohort.len() < spec.min_clients as usize {
            return Err(ApiError::conflict(format!(
                "{} participants enrolled, the federation requires {}",
                cohort.len(),
                spec.min_clients
            )));
        }
        let ledger = Self::ledger_of(&row)?;
        if let (
            Some(l),
            Mode::Dp {
                sampling_rate,
                noise_multiplier,
                ..
            },
        ) = (&ledger, &spec.mode)
        {
            let next = l
                .preview(*sampling_rate, *noise_multiplier, 1)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            if next.epsilon > l.budget() {
                return Err(ApiError::conflict(format!(
                    "one more round would spend epsilon {:.4}, over the budget {}",
                    next.epsilon,
                    l.budget()
                )));
            }
        }
        let secagg = match spec.mode {
            Mode::Secagg {
                dropout_rate,
                corrupt_fraction,
                ..
            } => {
                let n = cohort.len() as u32;
                let gp = GraphParams::derive(n, &threat(dropout_rate, corrupt_fraction))
                    .map_err(|e| ApiError::conflict(e.to_string()))?;
                let quant = spec.quant().map_err(ApiError::invalid)?;
                let mut sid = [0u8; 32];
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut sid);
                rng.fill_bytes(&mut seed);
                Some(SecaggSession {
                    session_id: hex::encode(sid),
                    n,
                    half_degree: gp.half_degree,
                    graph_seed: hex::encode(seed),
                    threshold: gp.threshold as u32,
                    modulus_bits: quant.modulus().bits(),
                })
            }
            _ => None,
        };
        let params = RoundParams { cohort, secagg };
        let engine = Engine::new(&spec, &params, row.public_key.as_deref(), ledger)?;
        let round = self.store.latest_round(fid)?.map_or(1, |r| r.round + 1);
        let now = now_ms();
        let rrow = RoundRow {
            federation_id: fid,
            round,
            status: "open".into(),
            params: serde_json::to_string(&params)
                .map_err(|e| ApiError::internal(e.to_string()))?,
            base_version: row.model_version,
            opened_ms: now,
            phase_started_ms: now,
            record: None,
        };
        self.store.insert_round(&rrow).map_err(|e| {
            if e.status == axum::http::StatusCode::CONFLICT {
                ApiError::conflict(format!(
                    "round {round} of federation {fid} was opened concurrently"
                ))
            } else {
                e
            }
        })?;
        let slot = Arc::new(Slot {
            federation_id: fid,
            round,
            spec,
            params,
            base_version: row.model_version,
            opened_ms: now,
            state: Mutex::new(SlotState {
                engine,
                phase_started_ms: now,
                revision: 1,
                bytes: 0,
                ended: false,
            }),
        });
        {
            // The round's primary key in the store already refused a concurrent opening.
            let mut slots = self.slots();
            slots.insert(fid, slot);
            self.metrics
                .set("fedagg_open_rounds", &[], slots.len() as f64);
        }
        tracing::info!(federation = fid, round, "round opened");
        self.bump();
        self.round_info(fid, round, None)
    }

    fn slot(&self, fid: i64, round: u64) -> Result<Arc<Slot>, ApiError> {
        let slot = if self.store.is_shared() {
            self.sync(fid)?
        } else {
            self.slots().get(&fid).cloned()
        };
        match slot {
            Some(s) if s.round == round => Ok(s),
            _ => Err(ApiError::wrong_phase(format!(
                "round {round} of federation {fid} is not open"
            ))),
        }
    }

    fn member_of(slot: &Slot, who: &Principal) -> Result<u32, ApiError> {
        match who.role {
            Role::KeyHolder => Ok(KEY_HOLDER),
            Role::Participant => {
                let pid = who.participant_id.unwrap_or(-1);
                slot.params
                    .cohort
                    .binary_search(&pid)
                    .map(|i| i as u32)
                    .map_err(|_| {
                        ApiError::forbidden(format!(
                            "participant {pid} is not in the cohort of round {}",
                            slot.round
                        ))
                    })
            }
            Role::Admin => Err(ApiError::forbidden("admins do not submit")),
        }
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
        let slot = self.slot(fid, round)?;
        let member = Self::member_of(&slot, who)?;
        let mut st = slot.lock();
        if st.ended {
            return Err(ApiError::wrong_phase("the round has ended"));
        }
        let phase = st.engine.phase();
        if st.engine.key_holder_phase() != (member == KEY_HOLDER) {
            return Err(ApiError::wrong_phase(format!(
                "phase {phase} takes no submission from a {}",
                who.role
            )));
        }
        let payload = Frame::decode(body, st.engine.frame_kind(), round)?;
        let digest = Sha256::digest(payload).to_vec();
        if let Some(prev) = self.store.submission_digest(fid, round, member, phase)? {
            return if prev == digest {
                Ok(Accepted {
                    phase: phase.into(),
                    replay: true,
                })
            } else {
                Err(ApiError::duplicate(format!(
                    "member {member} already submitted a different body in phase {phase}"
                )))
            };
        }
        st.engine.accept(member, payload)?;
        if let Err(e) = self
            .store
            .append_submit(fid, round, member, phase, payload, &digest)
        {
            // Memory is now ahead of the log: rebuild the round from what is durable.
            drop(st);
            self.reload(&slot);
            return Err(e);
        }
        st.bytes += payload.len() as u64;
        st.revision += 1;
        let mode = slot.spec.mode.name();
        self.metrics.add(
            "fedagg_bytes_received_total",
            &[("mode", mode)],
            payload.len() as f64,
        );
        self.metrics.add(
            "fedagg_submissions_total",
            &[("mode", mode), ("phase", phase)],
            1.0,
        );
        if st.engine.received() >= st.engine.expected() {
            self.advance(&slot, &mut st);
        }
        drop(st);
        self.bump();
        Ok(Accepted {
            phase: phase.into(),
            replay: false,
        })
    }

    /// The server's message for the caller in the current phase.
    pub fn download(&self, fid: i64, round: u64, who: &Principal) -> Result<Vec<u8>, ApiError> {
        let slot = self.slot(fid, round)?;
        let member = Self::member_of(&slot, who)?;
        let st = slot.lock();
        let (kind, payload) = st.engine.download(member)?;
        Ok(Frame::encode(kind, round, &payload))
    }

    /// Close the current phase (all answered, or the deadline passed).
    fn advance(&self, slot: &Slot, st: &mut SlotState) {
        let phase = st.engine.phase();
        let mode = slot.spec.mode.name();
        let now = now_ms();
        self.metrics.add(
            "fedagg_phase_duration_seconds_sum",
            &[("mode", mode), ("phase", phase)],
            (now - st.phase_started_ms).max(0) as f64 / 1000.0,
        );
        self.metrics.add(
            "fedagg_phase_duration_seconds_count",
            &[("mode", mode), ("phase", phase)],
            1.0,
        );
        let mut rng = match ChaCha20Rng::from_rng(OsRng) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "OS randomness unavailable");
                return;
            }
        };
        let outcome = st.engine.close(&mut rng);
        st.revision += 1;
        match outcome {
            Ok(None) => {
                if let Err(e) = self
                    .store
                    .append_close(slot.federation_id, slot.round, phase, now)
                {
                    tracing::error!(error = %e, "logging a phase close failed");
                    self.reload(slot);
                    return;
                }
                st.phase_started_ms = now;
                tracing::info!(
                    federation = slot.federation_id,
                    round = slot.round,
                    closed = phase,
                    next = st.engine.phase(),
                    "phase closed"
                );
            }
            Ok(Some(done)) => self.end_round(slot, st, Ok(done)),
            Err(reason) => self.end_round(slot, st, Err(reason)),
        }
    }

    fn end_round(&self, slot: &Slot, st: &mut SlotState, result: Result<Finished, String>) {
        let fid = slot.federation_id;
        let duration = (now_ms() - slot.opened_ms).max(0) as f64 / 1000.0;
        let cohort = st.engine.cohort() as u32;
        let mode = slot.spec.mode.name();
        let write = match result {
            Ok(done) => self.commit_model(slot, st, done, cohort, duration),
            Err(reason) => {
                tracing::warn!(federation = fid, round = slot.round, %reason, "round failed");
                self.metrics
                    .add("fedagg_rounds_failed_total", &[("mode", mode)], 1.0);
                self.store.complete_round(&Completion {
                    federation_id: fid,
                    round: slot.round,
                    model: None,
                    ledger: None,
                    status: "failed",
                    record: failure_record(reason, cohort, st.bytes, duration),
                })
            }
        };
        if let Err(e) = write {
            tracing::error!(error = %e, "recording the end of a round failed; it stays open");
            return;
        }
        st.ended = true;
        {
            let mut slots = self.slots();
            slots.remove(&fid);
            self.metrics
                .set("fedagg_open_rounds", &[], slots.len() as f64);
        }
        if slot.spec.auto_rounds {
            if let Err(e) = self.open_round(fid) {
                tracing::warn!(federation = fid, error = %e, "next round not opened");
            }
        }
    }

    fn commit_model(
        &self,
        slot: &Slot,
        st: &SlotState,
        done: Finished,
        cohort: u32,
        duration: f64,
    ) -> Result<(), ApiError> {
        let fid = slot.federation_id;
        let base = self
            .store
            .model(fid, slot.base_version)?
            .ok_or_else(|| ApiError::internal("base model missing"))?;
        let base = f32_values(&base, slot.spec.vector_len)?;
        let lr = slot.spec.server_lr as f32;
        let model: Vec<f32> = base
            .iter()
            .zip(&done.update)
            .map(|(w, u)| w + lr * u)
            .collect();
        let version = slot.base_version + 1;
        let (ledger, eps) = match &done.ledger {
            Some(l) => {
                let eps = l
                    .spent()
                    .map_err(|e| ApiError::internal(e.to_string()))?
                    .epsilon;
                (
                    Some(
                        serde_json::to_string(&LedgerJson::from_ledger(l))
                            .map_err(|e| ApiError::internal(e.to_string()))?,
                    ),
                    Some(eps),
                )
            }
            None => (None, None),
        };
        let dropouts = cohort.saturating_sub(done.participants);
        let record = RoundRecord {
            participants: done.participants,
            dropouts,
            bytes_received: st.bytes,
            epsilon_spent: eps,
            model_version: Some(version),
            failure: None,
            duration_secs: duration,
        };
        let bytes = f32_bytes(&model);
        self.store.complete_round(&Completion {
            federation_id: fid,
            round: slot.round,
            model: Some((version, &bytes)),
            ledger,
            status: "completed",
            record: serde_json::to_string(&record)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        })?;
        let mode = slot.spec.mode.name();
        self.metrics
            .add("fedagg_rounds_completed_total", &[("mode", mode)], 1.0);
        self.metrics.add(
            "fedagg_dropouts_total",
            &[("mode", mode)],
            f64::from(dropouts),
        );
        if let Some(e) = eps {
            self.metrics.set(
                "fedagg_epsilon_spent",
                &[("federation", &fid.to_string())],
                e,
            );
        }
        tracing::info!(
            federation = fid,
            round = slot.round,
            participants = done.participants,
            dropouts,
            version,
            "round completed"
        );
        Ok(())
    }

    /// Close every phase whose deadline has passed. Called periodically. With a shared store it
    /// also picks up what other replicas did (new rounds, events, ends) and wakes long polls.
    pub fn tick(&self) {
        if self.store.is_shared() {
            if let Err(e) = self.tick_shared() {
                tracing::warn!(error = %e, "catching up with the shared store failed");
            }
            return;
        }
        let now = now_ms();
        let slots: Vec<Arc<Slot>> = self.slots().values().cloned().collect();
        let mut changed = false;
        for slot in slots {
            let mut st = slot.lock();
            let deadline = st.phase_started_ms + (slot.spec.phase_timeout_secs as i64) * 1000;
            if !st.ended && now >= deadline {
                self.advance(&slot, &mut st);
                changed = true;
            }
        }
        if changed {
            self.bump();
        }
    }

    fn tick_shared(&self) -> Result<(), ApiError> {
        let open = self
            .store
            .open_rounds()?
            .into_iter()
            .map(|r| r.federation_id);
        let mut fids: Vec<i64> = self.slots().keys().copied().chain(open).collect();
        fids.sort_unstable();
        fids.dedup();
        for fid in fids {
            let due = |slot: &Slot, st: &SlotState| {
                !st.ended
                    && now_ms()
                        >= st.phase_started_ms + (slot.spec.phase_timeout_secs as i64) * 1000
            };
            let Some(slot) = self.sync(fid)? else {
                continue;
            };
            if !due(&slot, &slot.lock()) {
                continue;
            }
            // Another replica may be closing it right now: decide again under the lock.
            let _lock = self.store.lock_federation(fid)?;
            if let Some(slot) = self.sync(fid)? {
                let mut st = slot.lock();
                if due(&slot, &st) {
                    self.advance(&slot, &mut st);
                    drop(st);
                    self.bump();
                }
            }
        }
        Ok(())
    }

    /// A round as `who` sees it (`None`: no member view).
    pub fn round_info(
        &self,
        fid: i64,
        round: u64,
        who: Option<&Principal>,
    ) -> Result<RoundInfo, ApiError> {
        if let Ok(slot) = self.slot(fid, round) {
            let member = who.and_then(|w| Self::member_of(&slot, w).ok());
            let st = slot.lock();
            if !st.ended {
                let deadline = st.phase_started_ms + (slot.spec.phase_timeout_secs as i64) * 1000;
                return Ok(RoundInfo {
                    federation_id: fid,
                    round,
                    status: RoundStatus::Open,
                    phase: st.engine.phase().into(),
                    revision: st.revision,
                    deadline_in_ms: Some((deadline - now_ms()).max(0) as u64),
                    cohort: slot.params.cohort.len() as u32,
                    member: member.filter(|&m| m != KEY_HOLDER),
                    submitted: member.is_some_and(|m| st.engine.has_submitted(m)),
                    received: st.engine.received() as u32,
                    expected: st.engine.expected() as u32,
                    base_model_version: slot.base_version,
                    secagg: slot.params.secagg.clone(),
                    record: None,
                });
            }
        }
        let row = self
            .store
            .round(fid, round)?
            .ok_or_else(|| ApiError::not_found(format!("no round {round} in federation {fid}")))?;
        let params: RoundParams = serde_json::from_str(&row.params)
            .map_err(|e| ApiError::internal(format!("stored round params: {e}")))?;
        let record: Option<RoundRecord> = row
            .record
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| ApiError::internal(format!("stored record: {e}")))?;
        let member = who
            .and_then(|w| w.participant_id)
            .and_then(|p| params.cohort.binary_search(&p).ok())
            .map(|i| i as u32);
        Ok(RoundInfo {
            federation_id: fid,
            round,
            status: match row.status.as_str() {
                "completed" => RoundStatus::Completed,
                "failed" => RoundStatus::Failed,
                _ => RoundStatus::Open,
            },
            phase: "done".into(),
            revision: u64::MAX,
            deadline_in_ms: None,
            cohort: params.cohort.len() as u32,
            member,
            submitted: false,
            received: 0,
            expected: 0,
            base_model_version: row.base_version,
            secagg: params.secagg,
            record,
        })
    }

    /// The open round, else the latest one.
    pub fn current_round(&self, fid: i64) -> Result<Option<u64>, ApiError> {
        if let Some(r) = self.open_round_number(fid)? {
            return Ok(Some(r));
        }
        Ok(self.store.latest_round(fid)?.map(|r| r.round))
    }

    /// Long poll: wait until `check` yields a value or `wait` passes (then the last value).
    /// `check` reads the store, so it runs on the blocking pool.
    pub async fn wait_for<T: Send + 'static>(
        &self,
        wait: Duration,
        check: impl Fn() -> Result<(T, bool), ApiError> + Send + Sync + 'static,
    ) -> Result<T, ApiError> {
        let check = Arc::new(check);
        let run = || {
            let c = check.clone();
            async move {
                tokio::task::spawn_blocking(move || c())
                    .await
                    .map_err(|e| ApiError::internal(format!("worker: {e}")))?
            }
        };
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            rx.borrow_and_update();
            let (v, ready) = run().await?;
            if ready {
                return Ok(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(run().await?.0),
            }
        }
    }
}

/// Feed logged events to an engine (replay after a restart, catch-up between replicas); adds the
/// submissions' sizes to `bytes` and returns how many events it applied.
fn replay(engine: &mut Engine, events: Vec<Event>, bytes: &mut u64) -> Result<u64, ApiError> {
    // Non-final closes draw no randomness; `close` still takes an RNG.
    let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut n = 0;
    for ev in events {
        match ev {
            Event::Submit { member, body, .. } => {
                *bytes += body.len() as u64;
                engine.accept(member, &body)?;
            }
            Event::Close { phase } => {
                if engine.phase() != phase {
                    return Err(ApiError::internal(format!(
                        "event log closes {phase} while the engine is in {}",
                        engine.phase()
                    )));
                }
                match engine.close(&mut rng) {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(_) => {
                        return Err(ApiError::internal("a logged close ended the round"))
                    }
                }
            }
        }
        n += 1;
    }
    Ok(n)
}

fn failure_record(reason: String, cohort: u32, bytes: u64, duration: f64) -> String {
    let r = RoundRecord {
        participants: 0,
        dropouts: cohort,
        bytes_received: bytes,
        epsilon_spent: None,
        model_version: None,
        failure: Some(reason),
        duration_secs: duration,
    };
    serde_json::to_string(&r).unwrap_or_default()
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
