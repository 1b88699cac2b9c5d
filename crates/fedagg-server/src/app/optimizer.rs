//! The server optimizer a federation applies to each round's aggregate: setting it between
//! rounds, and reading it back. The round captures it when it opens (`RoundParams`), so a
//! round's ending never depends on a setting that changed meanwhile, and every replica replays
//! the same step.

use fedagg_api::ServerOptimizer;

use super::App;
use crate::error::ApiError;
use crate::store::FederationRow;

impl App {
    /// Set federation `fid`'s server optimizer; refused while a round is open (that round
    /// applies the optimizer it opened with, and the next one the new setting).
    pub fn set_server_optimizer(&self, fid: i64, opt: &ServerOptimizer) -> Result<(), ApiError> {
        opt.check().map_err(ApiError::invalid)?;
        let _lock = self.store.lock_federation(fid)?;
        self.check_federation(fid)?;
        if self.has_open_round(fid)? {
            return Err(ApiError::conflict(
                "the server optimizer cannot change while a round is open",
            ));
        }
        let json = serde_json::to_string(opt)
            .map_err(|e| ApiError::internal(format!("server optimizer: {e}")))?;
        self.store.set_optimizer(fid, &json)?;
        self.bump(fid);
        Ok(())
    }

    /// The server optimizer an operator set, if any.
    pub(super) fn optimizer_of(row: &FederationRow) -> Result<Option<ServerOptimizer>, ApiError> {
        row.optimizer
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| ApiError::internal(format!("stored server optimizer: {e}")))
    }
}
