//! Durable state: federations, models, participants, tokens, rounds, and the round event log, in
//! SQLite (the default: one file) or PostgreSQL (chosen by a `postgres://` database URL, for
//! several server replicas sharing one database).
//!
//! Recovery works by replay: every accepted submission and every phase closure of an open round is
//! an event, written (and synced: SQLite in WAL mode with `synchronous = FULL`, PostgreSQL with its
//! default synchronous commit) before the client gets its 2xx. After a crash the server rebuilds
//! each open round by feeding its events, in order, to a fresh engine. Replicas sharing PostgreSQL
//! use the same log to catch up with each other (see [`crate::app`]); [`Store::lock_federation`]
//! serialises the writers of one federation across processes.
//!
//! Every query is written once, in SQL both engines accept (`?N` placeholders, rewritten to `$N`
//! for PostgreSQL; `RETURNING` instead of `last_insert_rowid`), against the small [`Sql`]
//! interface; only the schema text differs.
//!
//! Modules: [`schema`] (the migrations, one text for both engines), `sql` (the small row mapper
//! both engines implement), `pool` (PostgreSQL connections, TLS, pinned connections), the
//! queries, and [`StoreError`], which the service maps to HTTP statuses in `crate::error`.

#[macro_use]
mod sql;
mod error;
mod lists;
mod pool;
mod queries;
mod roster;
mod rows;
pub mod schema;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use postgres::GenericClient;
use rusqlite::Connection;

pub use error::StoreError;
pub use rows::{Completion, FederationRow, RoundRow, TokenRow};

use pool::{tls_connector, Pinned, Pool, PINNED};
use schema::{for_postgres, LOCK_CLASS, MIGRATIONS, SETUP_LOCK};
use sql::{lite_err, pg_err, Lite, Pg, Sql, Val};

enum Backend {
    /// One connection behind a mutex: SQLite serialises writers anyway, and every call is short.
    /// The file lock (`<database>.lock`) keeps a second server off the file for as long as this
    /// one runs.
    Sqlite {
        conn: Mutex<Connection>,
        _lock: std::fs::File,
    },
    Postgres(Box<Pool>),
}

/// The store.
pub struct Store {
    backend: Backend,
    /// Writes tests make fail ([`crate::testing::Faults`]); never armed in production.
    pub(crate) faults: crate::testing::Faults,
}

/// Holds a federation's cross-replica lock (PostgreSQL) until dropped; nothing with SQLite, where
/// one process owns the file. Not `Send`: the lock belongs to the thread's pinned connection.
pub struct FederationLock<'a> {
    store: &'a Store,
    key: i64,
    _thread: PhantomData<*const ()>,
}

impl Drop for FederationLock<'_> {
    fn drop(&mut self) {
        let Backend::Postgres(pool) = &self.store.backend else {
            return;
        };
        let released = PINNED.with(|p| {
            let mut p = p.borrow_mut();
            let pin = p.as_mut()?;
            if let Err(e) = pin
                .client
                .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            {
                // Closing the session releases every lock it holds.
                tracing::error!(error = %e, "releasing a federation lock failed; closing the connection");
                *p = None;
                return None;
            }
            pin.depth -= 1;
            if pin.depth == 0 {
                p.take()
            } else {
                None
            }
        });
        if let Some(pin) = released {
            pool.put(pin.client);
        }
    }
}

impl Store {
    /// Open (or create) a SQLite database file and run pending migrations. Refused while
    /// another server (or another `Store` in this process) has the file open: two servers on
    /// one SQLite file would each drive their own copy of every round.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let lock = Self::lock_file(path)?;
        let conn = Connection::open(path).map_err(lite_err)?;
        Self::sqlite(conn, lock)
    }

    /// An exclusive lock on `<path>.lock`, held by the returned file until it is dropped (the
    /// operating system releases it if the process dies).
    fn lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock_path = std::path::PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Config(format!("opening {}: {e}", lock_path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Config(format!(
                "{} is in use by another fedagg server (it holds {}); several servers share \
                 one database only with PostgreSQL",
                path.display(),
                lock_path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Config(format!(
                "locking {}: {e}",
                lock_path.display()
            ))),
        }
    }

    fn sqlite(conn: Connection, lock: std::fs::File) -> Result<Self, StoreError> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(lite_err)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(lite_err)?;
        let store = Store {
            faults: Default::default(),
            backend: Backend::Sqlite {
                conn: Mutex::new(conn),
                _lock: lock,
            },
        };
        store.migrate(|m| m.to_string(), None)?;
        Ok(store)
    }

    /// Connect to PostgreSQL (a `postgres://user:password@host:port/database` URL, or the
    /// key-value form) and run pending migrations. Blocking: call it off the async threads.
    ///
    /// With `sslmode=require` in the URL every connection uses TLS and verifies the server's
    /// certificate and host name against `ca_file` (PEM) or, without one, the system's roots
    /// (stricter than libpq's `require`, which checks neither). Otherwise connections are plain
    /// TCP, for a database on loopback or a private network.
    pub fn postgres(url: &str, ca_file: Option<&Path>) -> Result<Self, StoreError> {
        static POOLS: AtomicU64 = AtomicU64::new(1);
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::config(format!("database URL: {e}")))?;
        let tls =
            match (config.get_ssl_mode(), ca_file) {
                (postgres::config::SslMode::Require, ca) => Some(tls_connector(ca)?),
                (_, Some(_)) => return Err(StoreError::config(
                    "a database CA file is set but the database URL does not say sslmode=require",
                )),
                _ => None,
            };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("fedagg");
        }
        let pool = Pool {
            id: POOLS.fetch_add(1, Ordering::Relaxed),
            config,
            tls,
            idle: Mutex::new(Vec::new()),
        };
        // Fail at start, with the reason, rather than at the first request.
        pool.put(pool.get()?);
        let store = Store {
            faults: Default::default(),
            backend: Backend::Postgres(Box::new(pool)),
        };
        // Replicas starting together migrate one at a time.
        store.migrate(for_postgres, Some("SELECT pg_advisory_xact_lock(?1)"))?;
        Ok(store)
    }

    /// True when several server processes may share this store (PostgreSQL): the service then
    /// takes the federation lock around writes and catches up with the event log before reads.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    fn migrate(&self, dialect: fn(&str) -> String, lock: Option<&str>) -> Result<(), StoreError> {
        let migrations = MIGRATIONS;
        self.tx(|c| {
            if let Some(l) = lock {
                c.first(l, params![LOCK_CLASS])?;
            }
            c.exec(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                &[],
            )?;
            let done: usize =
                match c.first("SELECT value FROM meta WHERE key = 'schema_version'", &[])? {
                    Some(mut r) => r.text(0)?.parse().unwrap_or(0),
                    None => 0,
                };
            if done > migrations.len() {
                return Err(StoreError::internal(format!(
                    "database schema version {done} is newer than this server ({})",
                    migrations.len()
                )));
            }
            for m in &migrations[done..] {
                let m = dialect(m);
                for stmt in m.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    c.exec(stmt, &[])?;
                }
            }
            c.exec(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![migrations.len().to_string().as_str()],
            )?;
            Ok(())
        })
    }

    /// Run `f` on a connection: the thread's pinned one under a federation lock, else the
    /// SQLite connection or one from the pool.
    fn run<T>(
        &self,
        in_tx: bool,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        fn on<C: GenericClient, T>(
            client: &mut C,
            in_tx: bool,
            f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
        ) -> Result<T, StoreError> {
            if !in_tx {
                return f(&mut Pg(client));
            }
            let mut tx = client.transaction().map_err(pg_err)?;
            let v = f(&mut Pg(&mut tx))?;
            tx.commit().map_err(pg_err)?;
            Ok(v)
        }
        match &self.backend {
            Backend::Sqlite { conn, .. } => {
                // A panic while holding the lock cannot leave SQLite inconsistent (transactions
                // roll back), so a poisoned lock is still usable.
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                if !in_tx {
                    return f(&mut Lite(&conn));
                }
                let tx = conn.transaction().map_err(lite_err)?;
                let v = f(&mut Lite(&tx))?;
                tx.commit().map_err(lite_err)?;
                Ok(v)
            }
            Backend::Postgres(pool) => {
                let pinned =
                    PINNED.with(|p| p.borrow().as_ref().is_some_and(|pin| pin.pool == pool.id));
                if pinned {
                    return PINNED.with(|p| match p.borrow_mut().as_mut() {
                        Some(pin) => on(&mut pin.client, in_tx, f),
                        None => Err(StoreError::internal("pinned connection vanished")),
                    });
                }
                let mut client = pool.get()?;
                let v = on(&mut client, in_tx, f);
                pool.put(client);
                v
            }
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(false, f)
    }

    fn tx<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run(true, f)
    }

    /// Take a federation's lock, waiting for other replicas that hold it (PostgreSQL advisory
    /// lock on a connection pinned to this thread until the guard drops; re-entrant). With SQLite
    /// this does nothing: one process owns the file and serialises in memory.
    pub fn lock_federation(&self, federation_id: i64) -> Result<FederationLock<'_>, StoreError> {
        self.lock_key(LOCK_CLASS | (federation_id & 0xffff_ffff))
    }

    /// The lock of start-up work that must run once across replicas (generating the admin
    /// token). Same rules as [`Store::lock_federation`].
    pub fn lock_setup(&self) -> Result<FederationLock<'_>, StoreError> {
        self.lock_key(SETUP_LOCK)
    }

    fn lock_key(&self, key: i64) -> Result<FederationLock<'_>, StoreError> {
        let guard = |key| FederationLock {
            store: self,
            key,
            _thread: PhantomData,
        };
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(guard(0));
        };
        let nested = PINNED.with(|p| match p.borrow_mut().as_mut() {
            Some(pin) if pin.pool == pool.id => {
                pin.depth += 1;
                Some(pin.client.execute("SELECT pg_advisory_lock($1)", &[&key]))
            }
            _ => None,
        });
        match nested {
            Some(Ok(_)) => Ok(guard(key)),
            Some(Err(e)) => {
                // Undo the depth we added; the guard is not built, so Drop does not run.
                PINNED.with(|p| {
                    if let Some(pin) = p.borrow_mut().as_mut() {
                        pin.depth -= 1;
                    }
                });
                Err(pg_err(e))
            }
            None => {
                let mut client = pool.get()?;
                client
                    .execute("SELECT pg_advisory_lock($1)", &[&key])
                    .map_err(pg_err)?;
                PINNED.with(|p| {
                    *p.borrow_mut() = Some(Pinned {
                        pool: pool.id,
                        client,
                        depth: 1,
                    })
                });
                Ok(guard(key))
            }
        }
    }
}
