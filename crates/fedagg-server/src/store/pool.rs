//! PostgreSQL connections: a small pool, TLS (rustls, verified against a CA file or the system
//! roots), and the connection a thread pins while it holds a federation lock.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Mutex;

use super::schema::PG_MAX_IDLE;
use super::sql::chain;
use super::StoreError;

/// PostgreSQL connections for reuse. There is no hard cap: concurrent database work is bounded by
/// the server's blocking threads and upload slots, and PostgreSQL's `max_connections` refuses
/// beyond that with a clear error.
pub(crate) struct Pool {
    pub(crate) id: u64,
    pub(crate) config: postgres::Config,
    /// TLS (with `sslmode=require`), else plain TCP.
    pub(crate) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pub(crate) idle: Mutex<Vec<postgres::Client>>,
}

impl Pool {
    pub(crate) fn get(&self) -> Result<postgres::Client, StoreError> {
        while let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            if !c.is_closed() {
                return Ok(c);
            }
        }
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        }
        .map_err(|e| StoreError::unavailable(format!("database unavailable: {}", chain(&e))))
    }

    pub(crate) fn put(&self, c: postgres::Client) {
        if c.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < PG_MAX_IDLE {
            idle.push(c);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing a synchronous client blocks on its own runtime, which panics on an async
        // worker thread (where the last `Arc<App>` may go): close them on a plain thread.
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("fedagg-pg-close".into())
                .spawn(move || drop(idle));
        }
    }
}

/// A TLS connector trusting the certificates in `ca_file`, or the system's roots.
pub(crate) fn tls_connector(
    ca_file: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let bad = |what: String| StoreError::config(format!("database TLS: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(bad(format!("{} holds no certificate", path.display())));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(bad(
                    "no system root certificates found; set the database CA file".into(),
                ));
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The connection a thread holds while it holds a federation lock: every query the thread runs
/// meanwhile goes through it, so a locked section never waits for a second connection.
pub(crate) struct Pinned {
    pub(crate) pool: u64,
    pub(crate) client: postgres::Client,
    pub(crate) depth: u32,
}

thread_local! {
    pub(crate) static PINNED: RefCell<Option<Pinned>> = const { RefCell::new(None) };
}
