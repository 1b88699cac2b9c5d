//! Replicas sharing a PostgreSQL store, and the periodic tick.
//!
//! Each replica keeps its own copy of the open round and brings it up to date from the shared
//! event log before it acts: writers (submissions, phase closures, opening a round) first take
//! the federation's lock in the database, then replay the events other replicas logged since,
//! then act and log; readers replay without the lock. Sequence numbers are taken under the lock,
//! so every replica sees the same prefix of one log and the rounds, which are deterministic in
//! their logged inputs, agree. A round ends exactly once: the replica that closes the last phase
//! writes the result, and the others drop their copy when the log says the round is over. Long
//! polls on one replica learn of another's events from the 200 ms tick.

use std::sync::Arc;

use fedagg_api::RoundStatus;

use super::{rng, App, Slot};
use crate::error::ApiError;

impl App {
    /// Shared store: bring this replica's copy of a federation's open round up to date with the
    /// log, loading a round another replica opened and dropping one another replica ended.
    /// Returns the open round, if any.
    pub(super) fn sync(&self, fid: i64) -> Result<Option<Arc<Slot>>, ApiError> {
        let local = self.slots().get(&fid).cloned();
        // Held from reading the log to applying it: no other thread applies the same events.
        let st = local.as_ref().map(|s| s.lock());
        let log = self
            .store
            .latest_round_log(fid, |round| match (&local, &st) {
                (Some(s), Some(st)) if s.round == round => st.round.revision() - 1,
                _ => 0,
            })?;
        let Some((row, events)) = log.filter(|(r, _)| r.status == RoundStatus::Open) else {
            if let (Some(slot), Some(mut st)) = (&local, st) {
                st.gone = true;
                drop(st);
                self.forget(slot);
                self.bump(fid);
            }
            return Ok(None);
        };
        match (&local, st) {
            (Some(slot), Some(mut st)) if slot.round == row.round => {
                if !st.live() {
                    return Ok(None);
                }
                return match st.round.replay(events, row.phase_started_ms, &mut rng()?) {
                    Ok(n) => {
                        drop(st);
                        if n > 0 {
                            self.bump(fid);
                        }
                        Ok(Some(slot.clone()))
                    }
                    Err(e) => {
                        // The copy may be half-updated: drop it, the next call rebuilds it whole.
                        st.gone = true;
                        drop(st);
                        self.forget(slot);
                        Err(e.into())
                    }
                };
            }
            // A stale copy (another round) is replaced below; release it first.
            (_, st) => drop(st),
        }
        let slot = Arc::new(Slot::new(self.rebuild(&row, events)?));
        {
            let mut slots = self.slots();
            slots.insert(fid, slot.clone());
            self.count_open(slots.len());
        }
        self.bump(fid);
        Ok(Some(slot))
    }

    /// Close every phase that is due: its deadline passed, or every expected member answered
    /// but storing the closure failed earlier. Called periodically. With a shared store it also
    /// picks up what other replicas did (new rounds, events, ends) and wakes long polls.
    pub fn tick(&self) {
        if self.store.is_shared() {
            if let Err(e) = self.tick_shared() {
                tracing::warn!(error = %e, "catching up with the shared store failed");
            }
            return;
        }
        let now = self.now_ms();
        let slots: Vec<Arc<Slot>> = self.slots().values().cloned().collect();
        for slot in slots {
            let mut st = slot.lock();
            if st.live() && st.round.due(now) {
                self.advance(&slot, &mut st);
                drop(st);
                self.bump(slot.federation_id);
            }
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
            let due = |slot: &Slot| {
                let st = slot.lock();
                st.live() && st.round.due(self.now_ms())
            };
            let Some(slot) = self.sync(fid)? else {
                continue;
            };
            if !due(&slot) {
                continue;
            }
            // Another replica may be closing it right now: decide again under the lock.
            let _lock = self.store.lock_federation(fid)?;
            if let Some(slot) = self.sync(fid)? {
                let mut st = slot.lock();
                if st.live() && st.round.due(self.now_ms()) {
                    self.advance(&slot, &mut st);
                    drop(st);
                    self.bump(fid);
                }
            }
        }
        Ok(())
    }
}
