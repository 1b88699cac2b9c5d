//! How the SDK reaches the server: HTTPS with rustls (on ring), trusting the system's roots or
//! a CA file, optionally pinning the server certificate's SHA-256; plain `http://` only to a
//! loopback address unless the caller explicitly allows it.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// Transport settings of a [`crate::Client`], [`crate::KeyHolder`] or [`crate::Admin`].
#[derive(Clone, Debug, Default)]
pub struct Transport {
    /// PEM file of the certificate authorities to trust, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server's certificate (DER), required in addition to a valid chain: a
    /// certificate the CA issued to someone else for the same name is refused.
    pub pin_sha256: Option<[u8; 32]>,
    /// Allow plain `http://` to a host other than loopback (the token and every update then
    /// travel in the clear: only for a network that is private end to end).
    pub allow_insecure_http: bool,
}

impl Transport {
    /// A `reqwest` client for `base` with these settings.
    pub(crate) fn client(&self, base: &str) -> Result<reqwest::Client> {
        let url = reqwest::Url::parse(base)
            .map_err(|e| Error::Transport(format!("server URL {base:?}: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_insecure_http || is_loopback(&url) => {}
            "http" => {
                return Err(Error::Transport(format!(
                    "refusing plain http:// to {}: use https://, or allow insecure HTTP explicitly",
                    url.host_str().unwrap_or("?")
                )))
            }
            other => return Err(Error::Transport(format!("unsupported scheme {other}://"))),
        }
        let tls = self.tls_config()?;
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(std::time::Duration::from_secs(10))
            // The server closes a keep-alive connection idle for its header timeout (30 s by
            // default): drop ours sooner, so a request never races that close.
            .pool_idle_timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig> {
        let tls = Error::Tls;
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls(format!("{}: {e}", path.display())))?;
                for cert in certs {
                    let cert = cert.map_err(|e| tls(format!("{}: {e}", path.display())))?;
                    roots.add(cert).map_err(|e| tls(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(tls(format!("{} holds no certificate", path.display())));
                }
            }
            None => roots = system_roots().clone(),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| tls(e.to_string()))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(e.to_string()))?;
        Ok(match self.pin_sha256 {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
            Some(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    inner: verifier,
                    pin,
                }))
                .with_no_client_auth(),
        })
    }
}

/// Whether a request failed because rustls refused the server (a certificate error, not a
/// network one): such failures are not retried.
pub(crate) fn is_tls_refusal(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        // io::Error's `source` skips the error it wraps (tokio-rustls's, inside hyper's): step
        // into it instead.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// The whole chain of an error, for a message that names the TLS reason.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        parts.push(err.to_string());
        cur = err.source();
    }
    parts.join(": ")
}

/// The system's trusted roots, read once per process (every client of a simulation with
/// thousands of participants would otherwise parse them again). Certificates the system cannot
/// parse are skipped, as a browser would.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: std::sync::OnceLock<RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots
    })
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The WebPKI verifier, then the pin on the end-entity certificate.
#[derive(Debug)]
struct Pinned {
    inner: Arc<WebPkiServerVerifier>,
    pin: [u8; 32],
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if bool::from(got.ct_eq(&self.pin)) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate (SHA-256 {}) is not the pinned one",
                hex::encode(got)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let t = Transport::default();
        for ok in [
            "http://127.0.0.1:8470",
            "http://localhost:1",
            "http://[::1]:2",
            "https://example.org",
        ] {
            assert!(t.client(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:8470",
            "http://fedagg.example.org",
            "ftp://127.0.0.1",
        ] {
            assert!(t.client(bad).is_err(), "{bad}");
        }
        let open = Transport {
            allow_insecure_http: true,
            ..Transport::default()
        };
        assert!(open.client("http://10.0.0.5:8470").is_ok());
    }
}
