//! Test support: a fresh PostgreSQL database per test, on the server named by
//! `FEDAGG_TEST_POSTGRES` (a URL whose role may create databases, e.g.
//! `postgres://fedagg:fedagg@127.0.0.1:5432/postgres`). `.ci/run` starts one and sets it.
//! And [`Faults`]: store writes a test makes fail.

use std::sync::{Arc, Mutex};

/// The store writes a round depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Logging an accepted submission.
    Submit,
    /// Logging a phase closure.
    Close,
    /// Writing a round's end (model, ledger, record) in one transaction.
    Complete,
    /// Storing the metrics an operator reports on a round.
    Metrics,
    /// Setting a federation's server optimizer.
    Optimizer,
}

/// Fault injection: the next write of the armed kind fails inside its transaction, after its
/// statements ran and before the commit, as a full disk or a lost database connection would.
/// The server's own store holds one; tests reach it through `Server::faults`.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<Option<Write>>>);

impl Faults {
    /// Make the next `w` fail.
    pub fn fail_next(&self, w: Write) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
    }

    /// Whether a fault is still armed (the write it waits for has not happened).
    pub fn armed(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Fail if `w` is armed (and disarm it).
    pub(crate) fn check(&self, w: Write) -> Result<(), crate::store::StoreError> {
        let mut armed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *armed == Some(w) {
            *armed = None;
            return Err(crate::store::StoreError::Internal(format!(
                "{w:?}: database or disk is full (injected)"
            )));
        }
        Ok(())
    }
}

/// The variable naming the test server.
pub const ENV: &str = "FEDAGG_TEST_POSTGRES";

/// An empty database, dropped (connections closed) with the guard.
pub struct TestDatabase {
    /// URL of the new database, for [`crate::Config::database_url`] or `Store::postgres`.
    pub url: String,
    server: String,
    name: String,
}

/// Run `f` on a plain thread: the synchronous PostgreSQL client must not run on an async one.
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| "database helper thread panicked".to_string())
}

impl TestDatabase {
    /// A new database, or `Ok(None)` when `FEDAGG_TEST_POSTGRES` is unset outside CI (the caller
    /// says it skipped). Under CI (`CI` set) an unset variable is an error: the PostgreSQL half
    /// of the suite must run there.
    pub fn create(tag: &str) -> Result<Option<Self>, String> {
        let Ok(server) = std::env::var(ENV) else {
            if std::env::var_os("CI").is_some() {
                return Err(format!("{ENV} is not set under CI"));
            }
            return Ok(None);
        };
        let name = format!(
            "fedagg_t_{}_{}_{}",
            tag.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(24)
                .collect::<String>()
                .to_ascii_lowercase(),
            std::process::id(),
            rand_core::RngCore::next_u32(&mut rand_core::OsRng)
        );
        let url = with_dbname(&server, &name)?;
        let (s, n) = (server.clone(), name.clone());
        off_runtime(move || -> Result<(), String> {
            let mut c = postgres::Client::connect(&s, postgres::NoTls)
                .map_err(|e| format!("{ENV}: {e}"))?;
            c.batch_execute(&format!("CREATE DATABASE {n}"))
                .map_err(|e| format!("CREATE DATABASE {n}: {e}"))
        })??;
        Ok(Some(TestDatabase { url, server, name }))
    }
}

impl TestDatabase {
    /// [`TestDatabase::create`] for a test: `None` after saying loudly that `test` was skipped;
    /// panics on an error (or an unset variable under CI).
    pub fn for_test(test: &str) -> Option<Self> {
        match Self::create(test) {
            Ok(Some(db)) => Some(db),
            Ok(None) => {
                eprintln!("SKIPPED (loudly): {ENV} is not set, {test} not run against PostgreSQL");
                None
            }
            Err(e) => panic!("{test}: {e}"),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (s, n) = (self.server.clone(), self.name.clone());
        let _ = off_runtime(move || {
            if let Ok(mut c) = postgres::Client::connect(&s, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)"));
            }
        });
    }
}

/// `url` with its database name replaced.
fn with_dbname(url: &str, name: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{ENV} must be a postgres:// URL"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let host = rest.split_once('/').map_or(rest, |(h, _)| h);
    Ok(format!("{scheme}://{host}/{name}{query}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn database_name_replaced_keeping_the_rest() {
        assert_eq!(
            super::with_dbname(
                "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable",
                "x"
            )
            .unwrap(),
            "postgres://u:p@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(
            super::with_dbname("postgresql://u@h", "y").unwrap(),
            "postgresql://u@h/y"
        );
    }
}
