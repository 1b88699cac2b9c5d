//! The roster of identity keys: who enrolled with which key, and the roster the federation's
//! enrollment authority signed (stored as its JSON text, checked by the app before it is stored).

use super::sql::Val;
use super::{Store, StoreError};

/// Participants with their identity keys (hex), ascending by id.
type Enrolled = Vec<(i64, String)>;

impl Store {
    /// The participants of federation `fid` that enrolled with an identity key, ascending by
    /// id, and the last signed roster (its JSON text), if any.
    pub fn roster(&self, fid: i64) -> Result<(Enrolled, Option<String>), StoreError> {
        self.with(|c| {
            let enrolled = c
                .query(
                    "SELECT id, identity_key FROM participants
                     WHERE federation_id = ?1 AND identity_key IS NOT NULL ORDER BY id",
                    params![fid],
                )?
                .into_iter()
                .map(|mut r| Ok((r.int(0)?, r.text(1)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let signed = c
                .first(
                    "SELECT signed FROM rosters WHERE federation_id = ?1",
                    params![fid],
                )?
                .map(|mut r| r.text(0))
                .transpose()?;
            Ok((enrolled, signed))
        })
    }

    /// Store federation `fid`'s signed roster (JSON text), replacing the previous one.
    pub fn set_roster(&self, fid: i64, signed: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO rosters (federation_id, signed) VALUES (?1, ?2)
                 ON CONFLICT (federation_id) DO UPDATE SET signed = excluded.signed",
                params![fid, signed],
            )
            .map(drop)
        })
    }
}
