//! The accept loop: HTTP/1.1 connections, in TLS when the server has a certificate, with a
//! header-read timeout (which also closes idle keep-alive connections), a deadline on each
//! request body, and a cap on open connections.
//!
//! One participant could otherwise hold the upload slots by trickling bytes, or the server's
//! file descriptors by opening connections. Beyond `max_connections` a new connection gets one
//! `503` with `Retry-After` and is closed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::error::ApiError;

/// Serve `router` on `listener` until `shutdown`, then let connections in flight finish (for
/// at most the body deadline).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &Config,
    tls: Option<&Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let header_timeout = Duration::from_secs(config.header_timeout_secs);
    let router = router.layer(axum::middleware::from_fn_with_state(
        BodyDeadline::from(config),
        body_deadline,
    ));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors, for instance: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = Arc::clone(&slots).try_acquire_owned().ok();
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
        let (router, watcher) = (router.clone(), graceful.watcher());
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                return serve_connection(stream, router, permit, watcher, header_timeout).await;
            };
            // The handshake gets the header timeout too: a client that stalls in it is dropped.
            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_connection(tls, router, permit, watcher, header_timeout).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("connections still open after 30 s; closing them");
        }
    }
    Ok(())
}

/// Serve one connection (plain or TLS): the router while it holds a connection slot, else one
/// 503 and close.
async fn serve_connection<IO>(
    io: IO,
    router: Router,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let Some(permit) = permit else {
        http.keep_alive(false);
        let _ = http
            .serve_connection(io, hyper::service::service_fn(over_capacity))
            .await;
        return;
    };
    let conn = http.serve_connection(io, TowerToHyperService::new(router));
    let _ = watcher.watch(conn).await;
    drop(permit);
}

/// The server's TLS configuration, replaced in place by [`Tls::reload`] (on SIGHUP): new
/// connections use the new certificate, open ones keep theirs.
#[derive(Clone)]
pub(crate) struct Tls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    current: Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>,
}

impl Tls {
    /// Load the PEM certificate chain and private key.
    pub(crate) fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, String> {
        let config = server_config(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Arc::new(std::sync::RwLock::new(config)),
        })
    }

    fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read the files again; on failure keep serving the old certificate.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }
}

fn server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("tls_cert {} holds no certificate", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("tls_cert and tls_key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn over_capacity(_: hyper::Request<hyper::body::Incoming>) -> Result<Response, Infallible> {
    let mut r =
        ApiError::unavailable_now("too many connections; retry in a second").into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(r)
}

/// How long a request body may take: a base, plus one second per MiB it declares (a floor of
/// 1 MiB/s on the upload rate).
#[derive(Clone, Copy)]
struct BodyDeadline {
    base: Duration,
}

impl From<&Config> for BodyDeadline {
    fn from(c: &Config) -> Self {
        BodyDeadline {
            base: Duration::from_secs(c.body_timeout_secs),
        }
    }
}

async fn body_deadline(
    axum::extract::State(d): axum::extract::State<BodyDeadline>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let limit = d.base + Duration::from_secs(declared >> 20);
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(limit)),
        limit,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// The error a request body gives once its deadline passed.
#[derive(Debug)]
pub(crate) struct BodyTimeout(pub(crate) Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body took longer than {} s",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// A body that fails with [`BodyTimeout`] once its deadline passes.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(f) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(f.map(|r| r.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(self.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
