//! Round orchestration: opening rounds, accepting submissions durably, closing phases when every
//! expected member answered or the deadline passed, applying aggregates to the global model, and
//! resuming open rounds after a restart by replaying their event logs.
//!
//! The round logic itself is `fedagg-round`'s [`Round`], driven write-ahead: a submission is
//! checked, logged, then applied; a phase closure is prepared, stored, then committed. A store
//! write that fails therefore leaves the round exactly as it was; the next tick retries a closure.
//!
//! Several replicas can serve one federation when they share a PostgreSQL store
//! ([`Store::is_shared`]); see [`replica`] for how they stay in step.
//!
//! - `members`: enrollment, tokens, the public key and model downloads;
//! - `rounds`: opening a round, submissions, downloads, closing phases and ending rounds;
//! - [`replica`]: catching up with the shared log, and the periodic tick;
//! - `view`: what clients read (federations, rounds) and long polls.

mod members;
mod optimizer;
mod replica;
mod rounds;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use fedagg_api::{f32_bytes, f32_values, Federation, FederationSpec, Frame, FrameKind, Mode};
use fedagg_round::ledger::DpState;
use fedagg_round::{Round, RoundId, RoundParams};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{Completion, FederationRow, RoundRow, Store};

/// The service's clock: milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Now.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
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
    clock: Box<dyn Clock>,
    rounds: Mutex<HashMap<i64, Arc<Slot>>>,
    /// Per federation: bumped whenever something observable about it changes.
    changed: Mutex<HashMap<i64, watch::Sender<u64>>>,
}

/// An open round in memory.
struct Slot {
    federation_id: i64,
    round: u64,
    state: Mutex<SlotState>,
}

struct SlotState {
    round: Round,
    /// This copy is no longer the live round (it ended here or on another replica, or a replay
    /// failed half-way): the next access reloads from the store.
    gone: bool,
}

impl SlotState {
    fn live(&self) -> bool {
        !self.gone && !self.round.ended()
    }
}

impl Slot {
    fn new(round: Round) -> Self {
        let id = *round.id();
        Slot {
            federation_id: id.federation_id,
            round: id.round,
            state: Mutex::new(SlotState { round, gone: false }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A CSPRNG seeded from the OS for one operation.
fn rng() -> Result<ChaCha20Rng, ApiError> {
    ChaCha20Rng::from_rng(OsRng).map_err(|e| ApiError::internal(format!("OS randomness: {e}")))
}

impl App {
    /// Build the state on the system clock and resume the rounds the store has open.
    pub fn new(config: Config, store: Store) -> Result<Arc<Self>, ApiError> {
        Self::with_clock(config, store, Box::new(SystemClock))
    }

    /// [`App::new`] on another clock (tests move time by hand).
    pub fn with_clock(
        config: Config,
        store: Store,
        clock: Box<dyn Clock>,
    ) -> Result<Arc<Self>, ApiError> {
        let app = Arc::new(App {
            store,
            upload_slots: tokio::sync::Semaphore::new(config.max_concurrent_uploads),
            config,
            metrics: Metrics::default(),
            clock,
            rounds: Mutex::new(HashMap::new()),
            changed: Mutex::new(HashMap::new()),
        });
        for row in app.store.open_rounds()? {
            app.resume(row)?;
        }
        app.count_open(app.slots().len());
        Ok(app)
    }

    /// Rebuild an open round after a restart, or record it as failed if its log cannot be
    /// replayed.
    fn resume(&self, row: RoundRow) -> Result<(), ApiError> {
        let (fid, r) = (row.federation_id, row.round);
        let events = self.store.events(fid, r);
        match events
            .map_err(ApiError::from)
            .and_then(|ev| self.rebuild(&row, ev))
        {
            Ok(round) => {
                tracing::info!(federation = fid, round = r, "resumed open round");
                self.slots().insert(fid, Arc::new(Slot::new(round)));
            }
            Err(e) => {
                tracing::error!(federation = fid, round = r, error = %e, "cannot resume round");
                let record = fedagg_round::failure_record(
                    format!("could not resume after restart: {e}"),
                    0,
                    0,
                    0.0,
                );
                self.store.complete_round(&Completion {
                    federation_id: fid,
                    round: r,
                    model: None,
                    ledger: None,
                    optimizer_state: None,
                    controls: None,
                    status: fedagg_api::RoundStatus::Failed,
                    record: to_json(&record)?,
                })?;
            }
        }
        Ok(())
    }

    /// Now, on the service's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<i64, Arc<Slot>>> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_open(&self, n: usize) {
        self.metrics.set("fedagg_open_rounds", &[], n as f64);
    }

    /// Wake the long polls on federation `fid`: something observable about it changed.
    pub fn bump(&self, fid: i64) {
        self.channel(fid).send_modify(|v| *v += 1);
    }

    /// Subscribe to federation `fid`'s "something changed" notifications (long polling). Each
    /// federation has its own channel, so a change wakes only the polls on its federation.
    pub fn subscribe(&self, fid: i64) -> watch::Receiver<u64> {
        self.channel(fid).subscribe()
    }

    fn channel(&self, fid: i64) -> watch::Sender<u64> {
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(fid)
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    fn federation_spec(&self, fid: i64) -> Result<(FederationRow, FederationSpec), ApiError> {
        let row = self
            .store
            .federation(fid)?
            .ok_or_else(|| ApiError::not_found(format!("no federation {fid}")))?;
        let spec = serde_json::from_str(&row.spec)
            .map_err(|e| ApiError::internal(format!("stored spec: {e}")))?;
        Ok((row, spec))
    }

    fn ledger_of(row: &FederationRow) -> Result<Option<DpState>, ApiError> {
        Ok(row
            .ledger
            .as_deref()
            .map(fedagg_round::ledger::from_text)
            .transpose()?)
    }

    /// Replay an open round's events into a fresh round.
    fn rebuild(&self, row: &RoundRow, events: Vec<fedagg_round::Event>) -> Result<Round, ApiError> {
        let (frow, spec) = self.federation_spec(row.federation_id)?;
        let params = RoundParams::from_text(&row.params)?;
        let id = RoundId {
            federation_id: row.federation_id,
            round: row.round,
            base_version: row.base_version,
            opened_ms: row.opened_ms,
        };
        let mut round = Round::new(
            id,
            spec,
            params,
            frow.public_key.as_deref(),
            Self::ledger_of(&frow)?,
        )?;
        round.replay(events, row.phase_started_ms, &mut rng()?)?;
        Ok(round)
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
        self.count_open(slots.len());
    }

    /// Create a federation with an all-zero initial model.
    pub fn create_federation(&self, spec: FederationSpec) -> Result<Federation, ApiError> {
        fedagg_round::spec::validate(&spec)?;
        let ledger = fedagg_round::spec::initial_ledger(&spec)?
            .map(|l| fedagg_round::ledger::to_text(&l))
            .transpose()?;
        let text = to_json(&spec)?;
        let model = f32_bytes(&vec![0.0; spec.vector_len]);
        let id = self
            .store
            .create_federation(&text, ledger.as_deref(), &model, self.now_ms())?;
        self.federation(id)
    }

    /// The size of an initial model's frame: the header and `vector_len` f32 values.
    pub fn model_limit(&self, fid: i64) -> Result<usize, ApiError> {
        let (_, spec) = self.federation_spec(fid)?;
        Ok(fedagg_api::FRAME_HEADER + 4 * spec.vector_len)
    }

    /// Replace the initial model (before the first round).
    pub fn set_initial_model(&self, fid: i64, body: &[u8]) -> Result<(), ApiError> {
        let (row, spec) = self.federation_spec(fid)?;
        if row.model_version != 0 || self.store.latest_round(fid)?.is_some() {
            return Err(ApiError::conflict(
                "the initial model can only be set before the first round",
            ));
        }
        let payload = Frame::decode(body, FrameKind::F32, 0)?;
        f32_values(payload, spec.vector_len)?;
        Ok(self.store.put_model(fid, 0, payload)?)
    }

    /// Publish the key holder's public key (checked against the federation's mode), before or
    /// between rounds.
    pub fn set_public_key(
        &self,
        fid: i64,
        body: &fedagg_api::PublicKeyBody,
    ) -> Result<(), ApiError> {
        let fed = self.federation(fid)?;
        let mode = &fed.spec.mode;
        let stored = match (mode, &body.paillier, &body.lattice) {
            (Mode::Paillier { .. }, Some(text), None) => fedagg_round::paillier_key(text)?,
            (Mode::Lattice { .. }, None, Some(hex_key)) => {
                fedagg_round::lattice_key(&fed.spec, hex_key)?
            }
            (mode, ..) if mode.is_he() => {
                return Err(ApiError::bad_request(format!(
                    "a {} federation takes exactly the `{}` field",
                    mode.name(),
                    mode.name()
                )))
            }
            _ => {
                return Err(ApiError::conflict(
                    "this federation's mode has no key holder",
                ))
            }
        };
        if fed.open_round.is_some() {
            return Err(ApiError::conflict("the key cannot change during a round"));
        }
        self.store.set_public_key(fid, &stored)?;
        self.bump(fid);
        Ok(())
    }
}

/// JSON text of a value the service stores.
fn to_json<T: serde::Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_change_wakes_only_the_long_polls_on_its_federation() {
        let dir = std::env::temp_dir().join(format!("fedagg-app-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("t.db")).unwrap();
        let app = App::new(Config::default(), store).unwrap();
        let (mut a, mut b) = (app.subscribe(1), app.subscribe(2));
        a.borrow_and_update();
        b.borrow_and_update();
        app.bump(2);
        assert!(!a.has_changed().unwrap());
        assert!(b.has_changed().unwrap());
        drop(app);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
