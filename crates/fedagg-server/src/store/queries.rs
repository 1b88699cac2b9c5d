//! Every query of the service, written once for both engines.

use fedagg_api::{Phase, Role, RoundStatus};
use fedagg_round::Event;

use super::rows::{parse_phase, parse_role, parse_status, role_text, status_text};
use super::sql::{Row, Sql, Val};
use super::{Completion, FederationRow, RoundRow, Store, StoreError, TokenRow};
use crate::testing::Write;

impl Store {
    /// A value from the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            c.first("SELECT value FROM meta WHERE key = ?1", params![key])?
                .map(|mut r| r.text(0))
                .transpose()
        })
    }

    /// Set a meta value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
        })
    }

    /// Create a federation with its initial model (version 0).
    pub fn create_federation(
        &self,
        spec: &str,
        ledger: Option<&str>,
        model: &[u8],
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.tx(|c| {
            let id = c
                .first(
                    "INSERT INTO federations (spec, ledger, created_ms) VALUES (?1, ?2, ?3) RETURNING id",
                    params![spec, ledger, now_ms],
                )?
                .ok_or_else(|| StoreError::internal("database: no id returned"))?
                .int(0)?;
            c.exec(
                "INSERT INTO models (federation_id, version, data) VALUES (?1, 0, ?2)",
                params![id, model],
            )?;
            Ok(id)
        })
    }

    /// A federation by id.
    pub fn federation(&self, id: i64) -> Result<Option<FederationRow>, StoreError> {
        self.with(|c| {
            c.first(
                "SELECT id, spec, model_version, public_key, ledger, optimizer FROM federations
                 WHERE id = ?1",
                params![id],
            )?
            .map(|mut r| {
                Ok(FederationRow {
                    id: r.int(0)?,
                    spec: r.text(1)?,
                    model_version: r.int(2)? as u64,
                    public_key: r.opt_text(3)?,
                    ledger: r.opt_text(4)?,
                    optimizer: r.opt_text(5)?,
                })
            })
            .transpose()
        })
    }

    /// Publish the key holder's public key.
    pub fn set_public_key(&self, id: i64, key: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE federations SET public_key = ?2 WHERE id = ?1",
                params![id, key],
            )
            .map(drop)
        })
    }

    /// Replace the model of version `version` (only before any round used it).
    pub fn put_model(&self, id: i64, version: u64, data: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "UPDATE models SET data = ?3 WHERE federation_id = ?1 AND version = ?2",
                params![id, version, data],
            )
            .map(drop)
        })
    }

    /// A model version's bytes.
    pub fn model(&self, id: i64, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            Ok(c.first(
                "SELECT data FROM models WHERE federation_id = ?1 AND version = ?2",
                params![id, version],
            )?
            .map(|mut r| r.opt_blob(0))
            .transpose()?
            .flatten())
        })
    }

    /// Make `hash` the only admin token: earlier admin tokens (a previous configured one, or
    /// the one generated on first start) stop working. One transaction.
    pub fn replace_admin_token(&self, hash: &[u8]) -> Result<(), StoreError> {
        self.tx(|c| {
            c.exec(
                "DELETE FROM tokens WHERE role = 'admin' AND hash <> ?1",
                params![hash],
            )?;
            c.exec(
                "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, 'admin', NULL, NULL) ON CONFLICT (hash) DO NOTHING",
                params![hash],
            )
            .map(drop)
        })
    }

    /// Store a token hash.
    pub fn insert_token(
        &self,
        hash: &[u8],
        role: Role,
        federation_id: Option<i64>,
        participant_id: Option<i64>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, ?2, ?3, ?4)",
                params![hash, role_text(role), federation_id, participant_id],
            )
            .map(drop)
        })
    }

    /// Look a token up by its hash.
    pub fn token(&self, hash: &[u8]) -> Result<Option<(Vec<u8>, TokenRow)>, StoreError> {
        self.with(|c| {
            c.first(
                "SELECT hash, role, federation_id, participant_id FROM tokens WHERE hash = ?1",
                params![hash],
            )?
            .map(|mut r| {
                Ok((
                    r.opt_blob(0)?.unwrap_or_default(),
                    TokenRow {
                        role: parse_role(&r.text(1)?)?,
                        federation_id: r.opt_int(2)?,
                        participant_id: r.opt_int(3)?,
                    },
                ))
            })
            .transpose()
        })
    }

    /// Replace a participant's tokens by a new one (rotation).
    pub fn rotate_token(&self, participant_id: i64, hash: &[u8]) -> Result<(), StoreError> {
        self.tx(|c| {
            let mut row = c
                .first(
                    "SELECT role, federation_id FROM participants WHERE id = ?1",
                    params![participant_id],
                )?
                .ok_or_else(|| StoreError::not_found(format!("no participant {participant_id}")))?;
            let (role, fid) = (row.text(0)?, row.int(1)?);
            c.exec(
                "DELETE FROM tokens WHERE participant_id = ?1",
                params![participant_id],
            )?;
            c.exec(
                "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, ?2, ?3, ?4)",
                params![hash, role.as_str(), fid, participant_id],
            )
            .map(drop)
        })
    }

    /// Store an enrollment code hash.
    pub fn insert_code(
        &self,
        hash: &[u8],
        federation_id: i64,
        role: Role,
        label: Option<&str>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO enrollment_codes (hash, federation_id, role, label) VALUES (?1, ?2, ?3, ?4)",
                params![hash, federation_id, role_text(role), label],
            )
            .map(drop)
        })
    }

    /// Redeem an unused code: create the participant and its token in one transaction.
    /// Returns `(participant id, federation id, role)`, or `None` if the code is unknown or used.
    pub fn enroll(
        &self,
        code_hash: &[u8],
        token_hash: &[u8],
        identity_key: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<(i64, i64, Role)>, StoreError> {
        self.tx(|c| {
            // Marking the code used first makes two concurrent redemptions (on two replicas)
            // race on one row: only one sees it unused.
            let Some(mut row) = c.first(
                "UPDATE enrollment_codes SET used = 1 WHERE hash = ?1 AND used = 0
                 RETURNING federation_id, role, label",
                params![code_hash],
            )?
            else {
                return Ok(None);
            };
            let (fid, role, label) = (row.int(0)?, row.text(1)?, row.opt_text(2)?);
            let pid = c
                .first(
                    "INSERT INTO participants (federation_id, role, label, enrolled_ms, identity_key) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    params![fid, role.as_str(), label.as_deref(), now_ms, identity_key],
                )?
                .ok_or_else(|| StoreError::internal("database: no id returned"))?
                .int(0)?;
            c.exec(
                "INSERT INTO tokens (hash, role, federation_id, participant_id) VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, role.as_str(), fid, pid],
            )?;
            Ok(Some((pid, fid, parse_role(&role)?)))
        })
    }

    /// A participant's federation and role.
    pub fn participant(&self, id: i64) -> Result<Option<(i64, Role)>, StoreError> {
        self.with(|c| {
            c.first(
                "SELECT federation_id, role FROM participants WHERE id = ?1",
                params![id],
            )?
            .map(|mut r| Ok((r.int(0)?, parse_role(&r.text(1)?)?)))
            .transpose()
        })
    }

    /// Participant ids with role `participant` in a federation, ascending.
    pub fn contributors(&self, federation_id: i64) -> Result<Vec<i64>, StoreError> {
        self.with(|c| {
            c.query(
                "SELECT id FROM participants WHERE federation_id = ?1 AND role = 'participant' ORDER BY id",
                params![federation_id],
            )?
            .into_iter()
            .map(|mut r| r.int(0))
            .collect()
        })
    }

    /// Open a round. A round of that number already present (another replica opened it) is a
    /// conflict.
    pub fn insert_round(&self, r: &RoundRow) -> Result<(), StoreError> {
        self.with(|c| {
            c.exec(
                "INSERT INTO rounds (federation_id, round, status, params, base_version, opened_ms, phase_started_ms)
                 VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6)",
                params![
                    r.federation_id,
                    r.round,
                    r.params.as_str(),
                    r.base_version,
                    r.opened_ms,
                    r.phase_started_ms
                ],
            )
            .map(drop)
        })
    }

    pub(super) fn round_from(mut r: Row) -> Result<RoundRow, StoreError> {
        Ok(RoundRow {
            federation_id: r.int(0)?,
            round: r.int(1)? as u64,
            status: parse_status(&r.text(2)?)?,
            params: r.text(3)?,
            base_version: r.int(4)? as u64,
            opened_ms: r.int(5)?,
            phase_started_ms: r.int(6)?,
            record: r.opt_text(7)?,
        })
    }

    pub(super) const ROUND_COLS: &'static str =
        "federation_id, round, status, params, base_version, opened_ms, phase_started_ms, record";

    /// A round.
    pub fn round(&self, federation_id: i64, round: u64) -> Result<Option<RoundRow>, StoreError> {
        self.with(|c| {
            c.first(
                &format!(
                    "SELECT {} FROM rounds WHERE federation_id = ?1 AND round = ?2",
                    Self::ROUND_COLS
                ),
                params![federation_id, round],
            )?
            .map(Self::round_from)
            .transpose()
        })
    }

    /// The latest round of a federation.
    pub fn latest_round(&self, federation_id: i64) -> Result<Option<RoundRow>, StoreError> {
        self.with(|c| Self::latest_round_in(c, federation_id))
    }

    fn latest_round_in(
        c: &mut dyn Sql,
        federation_id: i64,
    ) -> Result<Option<RoundRow>, StoreError> {
        c.first(
            &format!(
                "SELECT {} FROM rounds WHERE federation_id = ?1 ORDER BY round DESC LIMIT 1",
                Self::ROUND_COLS
            ),
            params![federation_id],
        )?
        .map(Self::round_from)
        .transpose()
    }

    /// A federation's latest round and, when it is open, its events after the first
    /// `seen(round)`, read from one snapshot: a round another replica completes meanwhile (which
    /// drops its event bodies) is seen either open with its whole log or ended.
    pub fn latest_round_log(
        &self,
        federation_id: i64,
        seen: impl FnOnce(u64) -> u64,
    ) -> Result<Option<(RoundRow, Vec<Event>)>, StoreError> {
        let shared = self.is_shared();
        self.tx(|c| {
            if shared {
                // (SQLite's read transaction is a snapshot already.)
                c.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", &[])?;
            }
            let Some(row) = Self::latest_round_in(c, federation_id)? else {
                return Ok(None);
            };
            let events = if row.status == RoundStatus::Open {
                Self::events_in(c, federation_id, row.round, seen(row.round))?
            } else {
                Vec::new()
            };
            Ok(Some((row, events)))
        })
    }

    /// Every round still open (to resume after a restart, and for replicas to notice rounds
    /// another one opened).
    pub fn open_rounds(&self) -> Result<Vec<RoundRow>, StoreError> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT {} FROM rounds WHERE status = 'open' ORDER BY federation_id",
                    Self::ROUND_COLS
                ),
                &[],
            )?
            .into_iter()
            .map(Self::round_from)
            .collect()
        })
    }

    const NEXT_SEQ: &'static str =
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE federation_id = ?1 AND round = ?2";

    fn next_seq(c: &mut dyn Sql, federation_id: i64, round: u64) -> Result<i64, StoreError> {
        c.first(Self::NEXT_SEQ, params![federation_id, round])?
            .ok_or_else(|| StoreError::internal("database: no sequence number"))?
            .int(0)
    }

    /// Log an accepted submission (durable when this returns).
    pub fn append_submit(
        &self,
        federation_id: i64,
        round: u64,
        member: u32,
        phase: Phase,
        body: &[u8],
        digest: &[u8],
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            let seq = Self::next_seq(c, federation_id, round)?;
            c.exec(
                "INSERT INTO events (federation_id, round, seq, kind, member, phase, body, digest)
                 VALUES (?1, ?2, ?3, 'submit', ?4, ?5, ?6, ?7)",
                params![
                    federation_id,
                    round,
                    seq,
                    member,
                    phase.as_str(),
                    body,
                    digest
                ],
            )?;
            self.faults.check(Write::Submit)
        })
    }

    /// Log a phase closure and the new phase's start time.
    pub fn append_close(
        &self,
        federation_id: i64,
        round: u64,
        phase: Phase,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            let seq = Self::next_seq(c, federation_id, round)?;
            c.exec(
                "INSERT INTO events (federation_id, round, seq, kind, phase) VALUES (?1, ?2, ?3, 'close', ?4)",
                params![federation_id, round, seq, phase.as_str()],
            )?;
            c.exec(
                "UPDATE rounds SET phase_started_ms = ?3 WHERE federation_id = ?1 AND round = ?2",
                params![federation_id, round, now_ms],
            )?;
            self.faults.check(Write::Close)
        })
    }

    /// The digest of a member's accepted submission in a phase, if any (idempotent retries).
    pub fn submission_digest(
        &self,
        federation_id: i64,
        round: u64,
        member: u32,
        phase: Phase,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            Ok(c.first(
                "SELECT digest FROM events WHERE federation_id = ?1 AND round = ?2 AND member = ?3
                 AND phase = ?4 AND kind = 'submit'",
                params![federation_id, round, member, phase.as_str()],
            )?
            .map(|mut r| r.opt_blob(0))
            .transpose()?
            .flatten())
        })
    }

    /// The phase in which `member` had a submission with this digest accepted in the round, if
    /// any: a retry of it is answered as a replay whatever the round's phase is now.
    pub fn submission_phase(
        &self,
        federation_id: i64,
        round: u64,
        member: u32,
        digest: &[u8],
    ) -> Result<Option<Phase>, StoreError> {
        self.with(|c| {
            let Some(mut row) = c.first(
                "SELECT phase FROM events WHERE federation_id = ?1 AND round = ?2 AND member = ?3
                 AND kind = 'submit' AND digest = ?4",
                params![federation_id, round, member, digest],
            )?
            else {
                return Ok(None);
            };
            let text = row.text(0)?;
            Phase::parse(&text)
                .map(Some)
                .ok_or_else(|| StoreError::Internal(format!("stored phase {text:?}")))
        })
    }

    /// A round's events in order.
    pub fn events(&self, federation_id: i64, round: u64) -> Result<Vec<Event>, StoreError> {
        self.events_after(federation_id, round, 0)
    }

    /// A round's events after the first `seen`, in order (events are numbered from 1 without
    /// gaps: sequence numbers are taken under the federation lock).
    pub fn events_after(
        &self,
        federation_id: i64,
        round: u64,
        seen: u64,
    ) -> Result<Vec<Event>, StoreError> {
        self.with(|c| Self::events_in(c, federation_id, round, seen))
    }

    fn events_in(
        c: &mut dyn Sql,
        federation_id: i64,
        round: u64,
        seen: u64,
    ) -> Result<Vec<Event>, StoreError> {
        c.query(
            "SELECT kind, member, phase, body FROM events
             WHERE federation_id = ?1 AND round = ?2 AND seq > ?3 ORDER BY seq",
            params![federation_id, round, seen],
        )?
        .into_iter()
        .map(|mut r| {
            let kind = r.text(0)?;
            let phase = parse_phase(&r.text(2)?)?;
            match kind.as_str() {
                "submit" => Ok(Event::Submit {
                    member: r
                        .opt_int(1)?
                        .and_then(|m| u32::try_from(m).ok())
                        .unwrap_or(fedagg_round::KEY_HOLDER),
                    phase,
                    body: r.opt_blob(3)?.unwrap_or_default(),
                }),
                "close" => Ok(Event::Close { phase }),
                other => Err(StoreError::internal(format!("stored event kind {other:?}"))),
            }
        })
        .collect()
    }

    /// End a round: new model, ledger, status and record together; the round's event bodies are
    /// dropped (the aggregate replaces them).
    pub fn complete_round(&self, c: &Completion<'_>) -> Result<(), StoreError> {
        self.tx(|tx| {
            if let Some((version, data)) = c.model {
                tx.exec(
                    "INSERT INTO models (federation_id, version, data, controls)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![c.federation_id, version, data, c.controls],
                )?;
                tx.exec(
                    "UPDATE federations SET model_version = ?2 WHERE id = ?1",
                    params![c.federation_id, version],
                )?;
            }
            if let Some(state) = c.optimizer_state {
                tx.exec(
                    "UPDATE federations SET optimizer_state = ?2 WHERE id = ?1",
                    params![c.federation_id, state],
                )?;
            }
            if let Some(ledger) = &c.ledger {
                tx.exec(
                    "UPDATE federations SET ledger = ?2 WHERE id = ?1",
                    params![c.federation_id, ledger.as_str()],
                )?;
            }
            tx.exec(
                "UPDATE rounds SET status = ?3, record = ?4 WHERE federation_id = ?1 AND round = ?2",
                params![
                    c.federation_id,
                    c.round,
                    status_text(c.status),
                    c.record.as_str()
                ],
            )?;
            tx.exec(
                "UPDATE events SET body = NULL WHERE federation_id = ?1 AND round = ?2",
                params![c.federation_id, c.round],
            )?;
            self.faults.check(Write::Complete)
        })
    }
}
