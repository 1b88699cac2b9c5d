//! What clients read: federations and rounds, and long polls that wait for them to change.

use std::sync::Arc;
use std::time::Duration;

use fedagg_api::{
    Federation, FederationList, RoundInfo, RoundList, RoundMetrics, RoundRecord, RoundStatus,
    RoundSummary,
};
use fedagg_round::{RoundId, RoundParams};

use super::App;
use crate::auth::Principal;
use crate::error::ApiError;

impl App {
    /// The federation as reported to clients.
    pub fn federation(&self, fid: i64) -> Result<Federation, ApiError> {
        let (row, spec) = self.federation_spec(fid)?;
        let privacy = Self::ledger_of(&row)?
            .map(|l| fedagg_round::ledger::privacy(&l))
            .transpose()?;
        Ok(Federation {
            id: row.id,
            open_round: self.open_round_number(fid)?,
            participants: self.store.contributors(fid)?.len() as u32,
            has_public_key: row.public_key.is_some(),
            model_version: row.model_version,
            server_optimizer: Self::optimizer_of(&row)?
                .unwrap_or(fedagg_api::ServerOptimizer::Fedavg { lr: spec.server_lr }),
            spec,
            privacy,
        })
    }

    /// `Ok` when federation `fid` exists (404 otherwise): one row read, no report built.
    pub fn check_federation(&self, fid: i64) -> Result<(), ApiError> {
        self.federation_spec(fid).map(drop)
    }

    /// The number of the federation's open round, if any.
    fn open_round_number(&self, fid: i64) -> Result<Option<u64>, ApiError> {
        if self.store.is_shared() {
            return Ok(self
                .store
                .latest_round(fid)?
                .filter(|r| r.status == RoundStatus::Open)
                .map(|r| r.round));
        }
        Ok(self.slots().get(&fid).map(|s| s.round))
    }

    /// A round as `who` sees it (`None`: no member view).
    pub fn round_info(
        &self,
        fid: i64,
        round: u64,
        who: Option<&Principal>,
    ) -> Result<RoundInfo, ApiError> {
        if let Ok(slot) = self.slot(fid, round) {
            let st = slot.lock();
            if st.live() {
                let member = who.and_then(|w| st.round.member_of(w.role, w.participant_id).ok());
                return Ok(st.round.info(member, self.now_ms()));
            }
        }
        let row = self
            .store
            .round(fid, round)?
            .ok_or_else(|| ApiError::not_found(format!("no round {round} in federation {fid}")))?;
        Self::stored_info(&row, who)
    }

    /// A round as its stored row describes it (an ended round, or one open on another replica).
    fn stored_info(
        row: &crate::store::RoundRow,
        who: Option<&Principal>,
    ) -> Result<RoundInfo, ApiError> {
        let (fid, round) = (row.federation_id, row.round);
        let params = RoundParams::from_text(&row.params)?;
        let record: Option<RoundRecord> = row
            .record
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| ApiError::internal(format!("stored record: {e}")))?;
        let id = RoundId {
            federation_id: fid,
            round,
            base_version: row.base_version,
            opened_ms: row.opened_ms,
        };
        Ok(fedagg_round::ended_info(
            &id,
            row.status,
            &params,
            record,
            who.and_then(|w| w.participant_id),
        ))
    }

    /// Every federation, ascending by id.
    pub fn federations(&self) -> Result<FederationList, ApiError> {
        let federations = self
            .store
            .federation_ids()?
            .into_iter()
            .map(|id| self.federation(id))
            .collect::<Result<_, _>>()?;
        Ok(FederationList { federations })
    }

    /// Up to `limit` rounds of federation `fid` numbered below `before`, newest first, as the
    /// admin sees them (an open round live), with the metrics the operator reported.
    pub fn rounds(&self, fid: i64, before: Option<u64>, limit: u32) -> Result<RoundList, ApiError> {
        self.check_federation(fid)?;
        let rounds = self
            .store
            .rounds(fid, before, limit)?
            .into_iter()
            .map(|(row, metrics)| {
                let info = match row.status {
                    RoundStatus::Open => self.round_info(fid, row.round, None)?,
                    _ => Self::stored_info(&row, None)?,
                };
                let metrics = metrics
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| ApiError::internal(format!("stored metrics: {e}")))?;
                Ok(RoundSummary {
                    info,
                    opened_ms: row.opened_ms,
                    metrics,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(RoundList { rounds })
    }

    /// Store what the operator reports on round `round`'s model (replacing an earlier report).
    pub fn set_round_metrics(
        &self,
        fid: i64,
        round: u64,
        metrics: &RoundMetrics,
    ) -> Result<(), ApiError> {
        metrics.check().map_err(ApiError::invalid)?;
        self.check_federation(fid)?;
        let json = serde_json::to_string(metrics)
            .map_err(|e| ApiError::internal(format!("metrics: {e}")))?;
        if self.store.set_round_metrics(fid, round, &json)? {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "no round {round} in federation {fid}"
            )))
        }
    }

    /// The open round, else the latest one.
    pub fn current_round(&self, fid: i64) -> Result<Option<u64>, ApiError> {
        if let Some(r) = self.open_round_number(fid)? {
            return Ok(Some(r));
        }
        Ok(self.store.latest_round(fid)?.map(|r| r.round))
    }

    /// Long poll on federation `fid`: wait until `check` yields a value or `wait` passes (then
    /// the last value). `check` reads the store, so it runs on the blocking pool.
    pub async fn wait_for<T: Send + 'static>(
        &self,
        fid: i64,
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
        let mut rx = self.subscribe(fid);
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
