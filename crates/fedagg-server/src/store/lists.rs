//! What operators list and set: the federations, a federation's rounds newest first, the figures
//! an operator reports on a round (its model's accuracy and loss, for the dashboard), and the
//! server optimizer with its state.

use super::sql::Val;
use super::{RoundRow, Store, StoreError};
use crate::testing::Write;

impl Store {
    /// Every federation's id, ascending.
    pub fn federation_ids(&self) -> Result<Vec<i64>, StoreError> {
        self.with(|c| {
            c.query("SELECT id FROM federations ORDER BY id", &[])?
                .into_iter()
                .map(|mut r| r.int(0))
                .collect()
        })
    }

    /// Up to `limit` rounds of federation `fid` numbered below `before` (all when `None`),
    /// newest first, each with the metrics JSON an operator reported on it.
    pub fn rounds(
        &self,
        fid: i64,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(RoundRow, Option<String>)>, StoreError> {
        let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT {}, metrics FROM rounds WHERE federation_id = ?1 AND round < ?2
                     ORDER BY round DESC LIMIT ?3",
                    Self::ROUND_COLS
                ),
                params![fid, before, i64::from(limit)],
            )?
            .into_iter()
            .map(|mut r| {
                let metrics = r.opt_text(8)?;
                Ok((Self::round_from(r)?, metrics))
            })
            .collect()
        })
    }

    /// Store the metrics JSON an operator reports on round `round`; `false` when there is no
    /// such round.
    pub fn set_round_metrics(
        &self,
        fid: i64,
        round: u64,
        metrics: &str,
    ) -> Result<bool, StoreError> {
        self.tx(|c| {
            let n = c.exec(
                "UPDATE rounds SET metrics = ?3 WHERE federation_id = ?1 AND round = ?2",
                params![fid, round, metrics],
            )?;
            self.faults.check(Write::Metrics)?;
            Ok(n == 1)
        })
    }

    /// Set the server optimizer (JSON) of federation `fid`.
    pub fn set_optimizer(&self, fid: i64, optimizer: &str) -> Result<(), StoreError> {
        self.tx(|c| {
            c.exec(
                "UPDATE federations SET optimizer = ?2 WHERE id = ?1",
                params![fid, optimizer],
            )?;
            self.faults.check(Write::Optimizer)
        })
    }

    /// SCAFFOLD: the control variate stored with model `version`: `None` when there is no such
    /// model, `Some(None)` when none was stored with it (zero: before any SCAFFOLD round).
    pub fn model_controls(
        &self,
        fid: i64,
        version: u64,
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        self.with(|c| {
            c.first(
                "SELECT controls FROM models WHERE federation_id = ?1 AND version = ?2",
                params![fid, version],
            )?
            .map(|mut r| r.opt_blob(0))
            .transpose()
        })
    }

    /// The server optimizer's stored state after the federation's current model.
    pub fn optimizer_state(&self, fid: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            Ok(c.first(
                "SELECT optimizer_state FROM federations WHERE id = ?1",
                params![fid],
            )?
            .map(|mut r| r.opt_blob(0))
            .transpose()?
            .flatten())
        })
    }
}
