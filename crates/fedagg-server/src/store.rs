//! Durable state in SQLite: federations, models, participants, tokens, rounds, and the round
//! event log.
//!
//! Recovery works by replay: every accepted submission and every phase closure of an open round is
//! an event, written (and synced: WAL with `synchronous = FULL`) before the client gets its 2xx.
//! After a crash the server rebuilds each open round by feeding its events, in order, to a fresh
//! engine. The SQL stays portable (no SQLite-only functions in queries) so that a PostgreSQL
//! backend can implement the same methods.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::ApiError;

/// Schema migrations, applied in order; `meta.schema_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE federations (
    id INTEGER PRIMARY KEY,
    spec TEXT NOT NULL,
    model_version INTEGER NOT NULL DEFAULT 0,
    public_key TEXT,
    ledger TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE models (
    federation_id INTEGER NOT NULL REFERENCES federations(id),
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (federation_id, version)
);
CREATE TABLE participants (
    id INTEGER PRIMARY KEY,
    federation_id INTEGER NOT NULL REFERENCES federations(id),
    role TEXT NOT NULL,
    label TEXT,
    enrolled_ms INTEGER NOT NULL
);
CREATE TABLE tokens (
    hash BLOB PRIMARY KEY,
    role TEXT NOT NULL,
    federation_id INTEGER,
    participant_id INTEGER
);
CREATE TABLE enrollment_codes (
    hash BLOB PRIMARY KEY,
    federation_id INTEGER NOT NULL REFERENCES federations(id),
    role TEXT NOT NULL,
    label TEXT,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE rounds (
    federation_id INTEGER NOT NULL REFERENCES federations(id),
    round INTEGER NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    base_version INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    phase_started_ms INTEGER NOT NULL,
    record TEXT,
    PRIMARY KEY (federation_id, round)
);
CREATE TABLE events (
    federation_id INTEGER NOT NULL,
    round INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    member INTEGER,
    phase TEXT NOT NULL,
    body BLOB,
    digest BLOB,
    PRIMARY KEY (federation_id, round, seq)
);
CREATE INDEX events_member ON events (federation_id, round, member, phase);
"#];

/// A federation row.
#[derive(Debug, Clone)]
pub struct FederationRow {
    /// Id.
    pub id: i64,
    /// Spec as JSON.
    pub spec: String,
    /// Current model version.
    pub model_version: u64,
    /// Paillier public key text, once published.
    pub public_key: Option<String>,
    /// Privacy ledger as JSON (DP mode).
    pub ledger: Option<String>,
}

/// A token row.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Role name.
    pub role: String,
    /// Federation (none for admin).
    pub federation_id: Option<i64>,
    /// Participant (none for admin).
    pub participant_id: Option<i64>,
}

/// A round row.
#[derive(Debug, Clone)]
pub struct RoundRow {
    /// Federation.
    pub federation_id: i64,
    /// Round number.
    pub round: u64,
    /// `open`, `completed` or `failed`.
    pub status: String,
    /// Round parameters as JSON.
    pub params: String,
    /// Model version the round started from.
    pub base_version: u64,
    /// Opening time (ms since the epoch).
    pub opened_ms: i64,
    /// Start of the current phase (ms since the epoch).
    pub phase_started_ms: i64,
    /// Outcome JSON, once ended.
    pub record: Option<String>,
}

/// One logged event of a round.
#[derive(Debug)]
pub enum Event {
    /// An accepted submission.
    Submit {
        /// Cohort index, or `u32::MAX` for the key holder.
        member: u32,
        /// Phase it was accepted in.
        phase: String,
        /// The payload.
        body: Vec<u8>,
    },
    /// The phase closed.
    Close {
        /// Which phase.
        phase: String,
    },
}

/// What a completed round writes, in one transaction.
pub struct Completion<'a> {
    /// Federation.
    pub federation_id: i64,
    /// Round.
    pub round: u64,
    /// New model (version, f32 LE bytes), if the round produced one.
    pub model: Option<(u64, &'a [u8])>,
    /// New ledger JSON (DP mode).
    pub ledger: Option<String>,
    /// `completed` or `failed`.
    pub status: &'a str,
    /// Outcome JSON.
    pub record: String,
}

/// The SQLite store. One connection behind a mutex: SQLite serialises writers anyway, and every
/// call is short.
pub struct Store {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> ApiError {
    ApiError::internal(format!("database: {e}"))
}

impl Store {
    /// Open (or create) the database file and run pending migrations.
    pub fn open(path: &Path) -> Result<Self, ApiError> {
        let conn = Connection::open(path).map_err(db)?;
        Self::init(conn)
    }

    /// An in-memory database (tests, benches).
    pub fn in_memory() -> Result<Self, ApiError> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(mut conn: Connection) -> Result<Self, ApiError> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        .map_err(db)?;
        let tx = conn.transaction().map_err(db)?;
        let done: usize = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if done > MIGRATIONS.len() {
            return Err(ApiError::internal(format!(
                "database schema version {done} is newer than this server ({})",
                MIGRATIONS.len()
            )));
        }
        for m in &MIGRATIONS[done..] {
            tx.execute_batch(m).map_err(db)?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![MIGRATIONS.len().to_string()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A value from the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, ApiError> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db)
    }

    /// Set a meta value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), ApiError> {
        self.conn()
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(db)
    }

    /// Create a federation with its initial model (version 0).
    pub fn create_federation(
        &self,
        spec: &str,
        ledger: Option<&str>,
        model: &[u8],
        now_ms: i64,
    ) -> Result<i64, ApiError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        tx.execute(
            "INSERT INTO federations (spec, ledger, created_ms) VALUES (?1, ?2, ?3)",
            params![spec, ledger, now_ms],
        )
        .map_err(db)?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO models (federation_id, version, data) VALUES (?1, 0, ?2)",
            params![id, model],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    /// A federation by id.
    pub fn federation(&self, id: i64) -> Result<Option<FederationRow>, ApiError> {
        self.conn()
            .query_row(
                "SELECT id, spec, model_version, public_key, ledger FROM federations WHERE id = ?1",
                [id],
                |r| {
                    Ok(FederationRow {
                        id: r.get(0)?,
                        spec: r.get(1)?,
                        model_version: r.get::<_, i64>(2)? as u64,
                        public_key: r.get(3)?,
                        ledger: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    /// Every federation id.
    pub fn federation_ids(&self) -> Result<Vec<i64>, ApiError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT id FROM federations ORDER BY id")
            .map_err(db)?;
        let ids = st
            .query_map([], |r| r.get(0))
            .map_err(db)?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(db)?;
        Ok(ids)
    }

    /// Publish the key holder's public key.
    pub fn set_public_key(&self, id: i64, key: &str) -> Result<(), ApiError> {
        self.conn()
            .execute(
                "UPDATE federations SET public_key = ?2 WHERE id = ?1",
                params![id, key],
            )
            .map(drop)
            .map_err(db)
    }

    /// Replace the model of version `version` (only before any round used it).
    pub fn put_model(&self, id: i64, version: u64, data: &[u8]) -> Result<(), ApiError> {
        self.conn()
            .execute(
                "UPDATE models SET data = ?3 WHERE federation_id = ?1 AND version = ?2",
                params![id, version as i64, data],
            )
            .map(drop)
            .map_err(db)
    }

    /// A model version's bytes.
    pub fn model(&self, id: i64, version: u64) -> Result<Option<Vec<u8>>, ApiError> {
        self.conn()
            .query_row(
                "SELECT data FROM models WHERE federation_id = ?1 AND version = ?2",
                params![id, version as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    /// Make `hash` the only admin token: earlier admin tokens (a previous configured one, or
    /// the one generated on first start) stop working. One transaction.
    pub fn replace_admin_token(&self, hash: &[u8]) -> Result<(), ApiError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        tx.execute(
            "DELETE FROM tokens WHERE role = 'admin' AND hash <> ?1",
            [hash],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, 'admin', NULL, NULL) ON CONFLICT (hash) DO NOTHING",
            [hash],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Store a token hash.
    pub fn insert_token(
        &self,
        hash: &[u8],
        role: &str,
        federation_id: Option<i64>,
        participant_id: Option<i64>,
    ) -> Result<(), ApiError> {
        self.conn()
            .execute(
                "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, ?2, ?3, ?4)",
                params![hash, role, federation_id, participant_id],
            )
            .map(drop)
            .map_err(db)
    }

    /// Look a token up by its hash.
    pub fn token(&self, hash: &[u8]) -> Result<Option<(Vec<u8>, TokenRow)>, ApiError> {
        self.conn()
            .query_row(
                "SELECT hash, role, federation_id, participant_id FROM tokens WHERE hash = ?1",
                [hash],
                |r| {
                    Ok((
                        r.get(0)?,
                        TokenRow {
                            role: r.get(1)?,
                            federation_id: r.get(2)?,
                            participant_id: r.get(3)?,
                        },
                    ))
                },
            )
            .optional()
            .map_err(db)
    }

    /// Replace a participant's tokens by a new one (rotation).
    pub fn rotate_token(&self, participant_id: i64, hash: &[u8]) -> Result<(), ApiError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let (role, fid): (String, i64) = tx
            .query_row(
                "SELECT role, federation_id FROM participants WHERE id = ?1",
                [participant_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db)?;
        tx.execute(
            "DELETE FROM tokens WHERE participant_id = ?1",
            [participant_id],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, ?2, ?3, ?4)",
            params![hash, role, fid, participant_id],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Store an enrollment code hash.
    pub fn insert_code(
        &self,
        hash: &[u8],
        federation_id: i64,
        role: &str,
        label: Option<&str>,
    ) -> Result<(), ApiError> {
        self.conn()
            .execute(
                "INSERT INTO enrollment_codes (hash, federation_id, role, label) VALUES (?1, ?2, ?3, ?4)",
                params![hash, federation_id, role, label],
            )
            .map(drop)
            .map_err(db)
    }

    /// Redeem an unused code: create the participant and its token in one transaction.
    /// Returns `(participant id, federation id, role)`, or `None` if the code is unknown or used.
    pub fn enroll(
        &self,
        code_hash: &[u8],
        token_hash: &[u8],
        now_ms: i64,
    ) -> Result<Option<(i64, i64, String)>, ApiError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let row: Option<(i64, String, Option<String>)> = tx
            .query_row(
                "SELECT federation_id, role, label FROM enrollment_codes WHERE hash = ?1 AND used = 0",
                [code_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((fid, role, label)) = row else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE enrollment_codes SET used = 1 WHERE hash = ?1",
            [code_hash],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO participants (federation_id, role, label, enrolled_ms) VALUES (?1, ?2, ?3, ?4)",
            params![fid, role, label, now_ms],
        )
        .map_err(db)?;
        let pid = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, role, fid, pid],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Some((pid, fid, role)))
    }

    /// A participant's federation and role.
    pub fn participant(&self, id: i64) -> Result<Option<(i64, String)>, ApiError> {
        self.conn()
            .query_row(
                "SELECT federation_id, role FROM participants WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)
    }

    /// Participant ids with role `participant` in a federation, ascending.
    pub fn contributors(&self, federation_id: i64) -> Result<Vec<i64>, ApiError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT id FROM participants WHERE federation_id = ?1 AND role = 'participant' ORDER BY id",
            )
            .map_err(db)?;
        let ids = st
            .query_map([federation_id], |r| r.get(0))
            .map_err(db)?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(db)?;
        Ok(ids)
    }

    /// Open a round.
    pub fn insert_round(&self, r: &RoundRow) -> Result<(), ApiError> {
        self.conn()
            .execute(
                "INSERT INTO rounds (federation_id, round, status, params, base_version, opened_ms, phase_started_ms)
                 VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6)",
                params![
                    r.federation_id,
                    r.round as i64,
                    r.params,
                    r.base_version as i64,
                    r.opened_ms,
                    r.phase_started_ms
                ],
            )
            .map(drop)
            .map_err(db)
    }

    fn round_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoundRow> {
        Ok(RoundRow {
            federation_id: r.get(0)?,
            round: r.get::<_, i64>(1)? as u64,
            status: r.get(2)?,
            params: r.get(3)?,
            base_version: r.get::<_, i64>(4)? as u64,
            opened_ms: r.get(5)?,
            phase_started_ms: r.get(6)?,
            record: r.get(7)?,
        })
    }

    const ROUND_COLS: &'static str =
        "federation_id, round, status, params, base_version, opened_ms, phase_started_ms, record";

    /// A round.
    pub fn round(&self, federation_id: i64, round: u64) -> Result<Option<RoundRow>, ApiError> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {} FROM rounds WHERE federation_id = ?1 AND round = ?2",
                    Self::ROUND_COLS
                ),
                params![federation_id, round as i64],
                Self::round_from,
            )
            .optional()
            .map_err(db)
    }

    /// The latest round of a federation.
    pub fn latest_round(&self, federation_id: i64) -> Result<Option<RoundRow>, ApiError> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {} FROM rounds WHERE federation_id = ?1 ORDER BY round DESC LIMIT 1",
                    Self::ROUND_COLS
                ),
                [federation_id],
                Self::round_from,
            )
            .optional()
            .map_err(db)
    }

    /// Every round still open (to resume after a restart).
    pub fn open_rounds(&self) -> Result<Vec<RoundRow>, ApiError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!(
                "SELECT {} FROM rounds WHERE status = 'open' ORDER BY federation_id",
                Self::ROUND_COLS
            ))
            .map_err(db)?;
        let rows = st
            .query_map([], Self::round_from)
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(rows)
    }

    fn next_seq(tx: &Transaction<'_>, federation_id: i64, round: u64) -> rusqlite::Result<i64> {
        tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE federation_id = ?1 AND round = ?2",
            params![federation_id, round as i64],
            |r| r.get(0),
        )
    }

    /// Log an accepted submission (durable when this returns).
    pub fn append_submit(
        &self,
        federation_id: i64,
        round: u64,
        member: u32,
        phase: &str,
        body: &[u8],
        digest: &[u8],
    ) -> Result<(), ApiError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let seq = Self::next_seq(&tx, federation_id, round).map_err(db)?;
        tx.execute(
            "INSERT INTO events (federation_id, round, seq, kind, member, phase, body, digest)
             VALUES (?1, ?2, ?3, 'submit', ?4, ?5, ?6, ?7)",
            params![
                federation_id,
                round as i64,
                seq,
                member,
                phase,
                body,
                digest
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Log a phase closure and the new phase's start time.
    pub fn append_close(
        &self,
        federation_id: i64,
        round: u64,
        phase: &str,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let seq = Self::next_seq(&tx, federation_id, round).map_err(db)?;
        tx.execute(
            "INSERT INTO events (federation_id, round, seq, kind, phase) VALUES (?1, ?2, ?3, 'close', ?4)",
            params![federation_id, round as i64, seq, phase],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE rounds SET phase_started_ms = ?3 WHERE federation_id = ?1 AND round = ?2",
            params![federation_id, round as i64, now_ms],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// The digest of a member's accepted submission in a phase, if any (idempotent retries).
    pub fn submission_digest(
        &self,
        federation_id: i64,
        round: u64,
        member: u32,
        phase: &str,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        self.conn()
            .query_row(
                "SELECT digest FROM events WHERE federation_id = ?1 AND round = ?2 AND member = ?3
                 AND phase = ?4 AND kind = 'submit'",
                params![federation_id, round as i64, member, phase],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)
    }

    /// A round's events in order.
    pub fn events(&self, federation_id: i64, round: u64) -> Result<Vec<Event>, ApiError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT kind, member, phase, body FROM events WHERE federation_id = ?1 AND round = ?2 ORDER BY seq",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![federation_id, round as i64], |r| {
                let kind: String = r.get(0)?;
                let phase: String = r.get(2)?;
                Ok(if kind == "submit" {
                    Event::Submit {
                        member: r.get::<_, Option<u32>>(1)?.unwrap_or(u32::MAX),
                        phase,
                        body: r.get::<_, Option<Vec<u8>>>(3)?.unwrap_or_default(),
                    }
                } else {
                    Event::Close { phase }
                })
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(rows)
    }

    /// End a round: new model, ledger, status and record together; the round's event bodies are
    /// dropped (the aggregate replaces them).
    pub fn complete_round(&self, c: &Completion<'_>) -> Result<(), ApiError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        if let Some((version, data)) = c.model {
            tx.execute(
                "INSERT INTO models (federation_id, version, data) VALUES (?1, ?2, ?3)",
                params![c.federation_id, version as i64, data],
            )
            .map_err(db)?;
            tx.execute(
                "UPDATE federations SET model_version = ?2 WHERE id = ?1",
                params![c.federation_id, version as i64],
            )
            .map_err(db)?;
        }
        if let Some(ledger) = &c.ledger {
            tx.execute(
                "UPDATE federations SET ledger = ?2 WHERE id = ?1",
                params![c.federation_id, ledger],
            )
            .map_err(db)?;
        }
        tx.execute(
            "UPDATE rounds SET status = ?3, record = ?4 WHERE federation_id = ?1 AND round = ?2",
            params![c.federation_id, c.round as i64, c.status, c.record],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE events SET body = NULL WHERE federation_id = ?1 AND round = ?2",
            params![c.federation_id, c.round as i64],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn migrations_are_idempotent_and_events_replay_in_order() {
        let dir = std::env::temp_dir().join(format!("fedagg-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        {
            let s = Store::open(&path).unwrap();
            let f = s.create_federation("{}", None, &[1, 2], 5).unwrap();
            s.insert_round(&RoundRow {
                federation_id: f,
                round: 1,
                status: "open".into(),
                params: "{}".into(),
                base_version: 0,
                opened_ms: 1,
                phase_started_ms: 1,
                record: None,
            })
            .unwrap();
            s.append_submit(f, 1, 3, "submit", b"abc", b"d1").unwrap();
            s.append_close(f, 1, "submit", 9).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.meta("schema_version").unwrap().as_deref(), Some("1"));
        let ev = s.events(1, 1).unwrap();
        assert!(matches!(&ev[0], Event::Submit { member: 3, body, .. } if body == b"abc"));
        assert!(matches!(&ev[1], Event::Close { phase } if phase == "submit"));
        assert_eq!(s.open_rounds().unwrap().len(), 1);
        assert_eq!(s.round(1, 1).unwrap().unwrap().phase_started_ms, 9);
        assert_eq!(
            s.submission_digest(1, 1, 3, "submit").unwrap().as_deref(),
            Some(&b"d1"[..])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
