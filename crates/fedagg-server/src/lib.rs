//! The fedagg aggregation service: `fedagg serve`.
//!
//! Its central choice is that every round is an event log. The mode engines (SecAgg, Paillier,
//! DP) are deterministic state machines from the protocol crates; the service writes each accepted
//! submission and each phase closure to its store (SQLite, or PostgreSQL for several replicas)
//! before acknowledging it, and after a crash it rebuilds every open round by replaying its log;
//! replicas sharing PostgreSQL replay each other's events the same way. Memory holds running
//! sums, never the n x m submissions: those live on disk until the round ends.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let config = fedagg_server::Config::load(None, |k| std::env::var(k).ok())?;
//! let server = fedagg_server::Server::start(config).await?;
//! println!("listening on {}", server.addr());
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod app;
mod auth;
mod config;
mod error;
mod metrics;
pub mod openapi;
mod routes;
mod serve;
mod store;
#[doc(hidden)]
pub mod testing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::App;
pub use config::{Config, Storage};
use error::ApiError;
/// The upper bounds (seconds) of `fedagg_http_request_duration_seconds`'s buckets on `/metrics`.
pub use metrics::DURATION_BUCKETS;

/// A bound, initialised server, not yet serving.
pub struct Server {
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    tls: Option<serve::Tls>,
    /// The admin token when this start generated it (shown once).
    pub generated_admin_token: Option<String>,
}

impl Server {
    /// Open the database (creating the data directory for SQLite, connecting to PostgreSQL), set
    /// up the admin token, resume open rounds and bind the listener.
    pub async fn start(config: Config) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        config.validate()?;
        let threads = config.worker_threads();
        fedagg_secagg::crypto::set_threads(threads);
        let (built_for_vaes, cpu_has_vaes) = fedagg_secagg::crypto::vaes();
        if cpu_has_vaes && !built_for_vaes {
            tracing::info!(
                "this CPU has VAES and AVX-512: a build with RUSTFLAGS=\"-C target-cpu=native\" \
                 unmasks SecAgg rounds about twice as fast (docs/deploy.md)"
            );
        }
        tracing::info!(threads, built_for_vaes, cpu_has_vaes, "mask keystream");
        let storage = config.storage()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(serve::Tls::load(cert, key)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let (app, generated_admin_token) =
            tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
                let store = match &storage {
                    Storage::Sqlite(path) => {
                        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                            std::fs::create_dir_all(dir).map_err(|e| {
                                ApiError::internal(format!("creating {}: {e}", dir.display()))
                            })?;
                        }
                        store::Store::open(path)?
                    }
                    Storage::Postgres(url) => {
                        store::Store::postgres(url, config.database_ca_file.as_deref())?
                    }
                };
                tracing::info!(storage = ?storage, "store opened");
                let generated = setup_admin(&store, config.admin_token.as_deref())?;
                Ok((App::new(config, store)?, generated))
            })
            .await??;
        Ok(Server {
            app,
            listener,
            addr,
            tls,
            generated_admin_token,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` or `https://` (with `tls_cert`), and the bound address.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The store's fault injection (tests).
    #[doc(hidden)]
    pub fn faults(&self) -> testing::Faults {
        self.app.store.faults.clone()
    }

    /// Serve until `shutdown` completes, then stop accepting, finish in-flight requests and
    /// return. Phase deadlines are checked every 200 ms.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ticker = {
            let app = self.app.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(200));
                loop {
                    every.tick().await;
                    let a = app.clone();
                    let _ = tokio::task::spawn_blocking(move || a.tick()).await;
                }
            })
        };
        let reloader = self
            .tls
            .clone()
            .map(|tls| tokio::spawn(reload_on_sighup(tls)));
        tracing::info!(addr = %self.addr, tls = self.tls.is_some(), "serving");
        let config = self.app.config.clone();
        let router = routes::router(self.app);
        let r = serve::serve(self.listener, router, &config, self.tls.as_ref(), shutdown).await;
        if let Some(r) = reloader {
            r.abort();
        }
        ticker.abort();
        r
    }
}

/// Reload the TLS certificate and key whenever the process gets SIGHUP.
async fn reload_on_sighup(tls: serve::Tls) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the certificate will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the old certificate")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

/// Store the configured admin token's hash, or generate one when none exists yet.
fn setup_admin(store: &store::Store, configured: Option<&str>) -> Result<Option<String>, ApiError> {
    if let Some(t) = configured {
        // The configured token is the admin token: changing it and restarting rotates it.
        store.replace_admin_token(&auth::hash(t))?;
        store.set_meta("admin_generated", "1")?;
        return Ok(None);
    }
    // Replicas starting together on one PostgreSQL: one generates, the others see its mark.
    let _lock = store.lock_setup()?;
    if store.meta("admin_generated")?.is_some() {
        return Ok(None);
    }
    let t = auth::new_secret("fa_");
    store.insert_token(&auth::hash(&t), fedagg_api::Role::Admin, None, None)?;
    store.set_meta("admin_generated", "1")?;
    Ok(Some(t))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_configured_admin_token_replaces_every_earlier_one() {
        let dir = std::env::temp_dir().join(format!("fedagg-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        let store = store::Store::open(&path).unwrap();
        let valid = |t: &str| store.token(&auth::hash(t)).unwrap().is_some();
        // First start without a token: one is generated, once.
        let generated = setup_admin(&store, None).unwrap().unwrap();
        assert!(valid(&generated));
        assert!(setup_admin(&store, None).unwrap().is_none());
        // Configuring a token revokes the generated one; configuring another rotates it.
        setup_admin(&store, Some("first-admin-token-0123456789")).unwrap();
        assert!(!valid(&generated) && valid("first-admin-token-0123456789"));
        setup_admin(&store, Some("second-admin-token-0123456789")).unwrap();
        assert!(!valid("first-admin-token-0123456789"));
        assert!(valid("second-admin-token-0123456789"));
        // A restart with the same token changes nothing.
        setup_admin(&store, Some("second-admin-token-0123456789")).unwrap();
        assert!(valid("second-admin-token-0123456789"));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
