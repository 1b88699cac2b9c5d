//! TLS from the SDK to the server, in both set-ups: the server's own TLS (`tls_cert`,
//! `tls_key`, reloaded on SIGHUP), and a TLS-terminating proxy in front of a plain server. The
//! certificates come from a test CA made here with rcgen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fedagg_client::Transport;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use sha2::{Digest, Sha256};

use super::*;

/// A certificate authority.
pub(super) struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate and key, as PEM, and the certificate's SHA-256.
pub(super) struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub sha256: [u8; 32],
}

impl Ca {
    pub(super) fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// The CA's certificate written to `dir/name`.
    pub(super) fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.cert.pem()).unwrap();
        p
    }

    /// A certificate for 127.0.0.1 and localhost.
    pub(super) fn leaf(&self) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            sha256: Sha256::digest(cert.der().as_ref()).into(),
        }
    }
}

impl Leaf {
    /// Write the certificate and key to `dir`; their paths.
    pub(super) fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::write(&c, &self.cert_pem).unwrap();
        std::fs::write(&k, &self.key_pem).unwrap();
        (c, k)
    }
}

fn with_ca(ca: &Path, pin: Option<[u8; 32]>) -> Transport {
    Transport {
        ca_file: Some(ca.to_path_buf()),
        pin_sha256: pin,
        ..Transport::default()
    }
}

async fn reachable(base: &str, t: &Transport) -> Result<(), Error> {
    let admin = Admin::with_transport(base, ADMIN, t)?;
    admin
        .create_federation(&spec(dp_mode(), 4, 3, 30))
        .await
        .map(drop)
}

pub(super) async fn the_sdk_reaches_the_server_over_its_own_tls(store: Store) {
    let dir = temp_dir();
    let (ca, other_ca) = (Ca::new(), Ca::new());
    let leaf = ca.leaf();
    let (cert, key) = leaf.write(&dir);
    let (ca_file, other_file) = (ca.write(&dir, "ca.pem"), other_ca.write(&dir, "other.pem"));
    let srv = start_with(store, |c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key.clone());
    })
    .await;
    let https = srv.base.replacen("http://", "https://", 1);
    // Trusted through the CA file, with or without the right pin.
    reachable(&https, &with_ca(&ca_file, None)).await.unwrap();
    reachable(&https, &with_ca(&ca_file, Some(leaf.sha256)))
        .await
        .unwrap();
    // Refused: another CA, the system's roots, a wrong pin, plain HTTP to the TLS port.
    for t in [
        with_ca(&other_file, None),
        Transport::default(),
        with_ca(&ca_file, Some([7; 32])),
    ] {
        let e = reachable(&https, &t).await.unwrap_err();
        assert!(matches!(e, Error::Tls(_)), "{e}");
    }
    // (one plain request, without the SDK's retries)
    let plain = http_client()
        .get(format!("{}/v1/health", srv.base))
        .send()
        .await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));
    // A whole DP round over TLS through the SDK.
    let t = with_ca(&ca_file, Some(leaf.sha256));
    let admin = Admin::with_transport(&https, ADMIN, &t).unwrap();
    dp_round_over(&https, &admin, &t).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Enroll three participants through `admin` and run one DP round; the model is their mean.
async fn dp_round_over(base: &str, admin: &Admin, t: &Transport) {
    let fed = admin
        .create_federation(&spec(dp_mode(), 4, 3, 30))
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let code = admin
            .enrollment_code(fed.id, Role::Participant)
            .await
            .unwrap();
        clients.push(Client::enroll_with(base, &code.bundle, t).await.unwrap().0);
    }
    admin.open_round(fed.id).await.unwrap();
    let ups: Vec<(Vec<f32>, u64)> = (0..3).map(|i| (vec![0.1 * i as f32; 4], 1)).collect();
    let results = contribute_all(&clients, &ups, &[None; 3]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
    let end = admin.wait_round(fed.id, 1, WAIT).await.unwrap();
    assert_eq!(end.record.unwrap().participants, 3);
}

/// A TLS-terminating proxy on 127.0.0.1 in front of `upstream` (a plain `host:port`).
async fn tls_proxy(leaf: &Leaf, upstream: String) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    format!("https://{addr}")
}

pub(super) async fn the_sdk_reaches_the_server_through_a_tls_proxy(store: Store) {
    let dir = temp_dir();
    let ca = Ca::new();
    let leaf = ca.leaf();
    let ca_file = ca.write(&dir, "ca.pem");
    let srv = start(store, 1 << 20).await;
    let https = tls_proxy(&leaf, srv.base.trim_start_matches("http://").to_string()).await;
    let t = with_ca(&ca_file, Some(leaf.sha256));
    let admin = Admin::with_transport(&https, ADMIN, &t).unwrap();
    dp_round_over(&https, &admin, &t).await;
    // The plain server behind the proxy is on loopback; the SDK would refuse plain HTTP to
    // any other host.
    let e = Admin::new("http://10.255.255.1:8470", ADMIN).err().unwrap();
    assert!(matches!(e, Error::Transport(_)), "{e}");
    assert_statuses_documented(&srv).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `fedagg serve` with TLS as a child process: SIGHUP makes new connections use the new
/// certificate.
pub(super) async fn sighup_reloads_the_certificate() {
    let dir = temp_dir();
    let ca = Ca::new();
    let (first, second) = (ca.leaf(), ca.leaf());
    let (cert, key) = first.write(&dir);
    let ca_file = ca.write(&dir, "ca.pem");
    let env = vec![
        ("FEDAGG_TLS_CERT", cert.display().to_string()),
        ("FEDAGG_TLS_KEY", key.display().to_string()),
    ];
    let served = serve::spawn(&dir.join("data"), "127.0.0.1:0", ADMIN, &env);
    assert!(served.base.starts_with("https://"), "{}", served.base);
    reachable(&served.base, &with_ca(&ca_file, Some(first.sha256)))
        .await
        .unwrap();
    second.write(&dir);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // The reload is asynchronous: wait until a new connection presents the new certificate.
    let mut reloaded = false;
    for _ in 0..100 {
        if reachable(&served.base, &with_ca(&ca_file, Some(second.sha256)))
            .await
            .is_ok()
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the new certificate was not served after SIGHUP");
    assert!(
        reachable(&served.base, &with_ca(&ca_file, Some(first.sha256)))
            .await
            .is_err()
    );
    drop(served);
    std::fs::remove_dir_all(&dir).unwrap();
}
