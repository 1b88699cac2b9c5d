//! End-to-end tests of the service: the real server on 127.0.0.1, driven by the real SDK.
//! One test binary for all of them keeps link time down.

#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fedagg::dropout::{self, Vanish};
use fedagg_api::Phase;
use fedagg_api::{FederationSpec, Frame, FrameKind, Mode, Role, RoundStatus};
use fedagg_client::{Admin, Client, Contribute, Error, KeyHolder, Outcome};
use fedagg_server::testing::TestDatabase;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use reqwest::Method;

#[path = "support/serve.rs"]
mod serve;

#[path = "support/api_doc.rs"]
mod api_doc;

#[path = "support/tls.rs"]
mod tls;

#[path = "support/tamper.rs"]
mod tamper;

#[path = "support/verified.rs"]
mod verified;

#[path = "support/ddp.rs"]
mod ddp;

#[path = "support/cli.rs"]
mod cli;

#[path = "support/optimizer.rs"]
mod optimizer;

#[path = "support/scaffold.rs"]
mod scaffold;
use api_doc::{
    assert_statuses_documented, the_document_is_current_and_lists_every_route_and_status,
};
use cli::admin_and_key_holder_run_a_paillier_federation;
use ddp::a_secagg_dp_round_releases_a_noisy_sum_and_stops_at_its_budget;
use optimizer::server_optimizers_step_as_computed_directly_and_survive_a_restart;
#[cfg(feature = "lattice")]
use scaffold::a_lattice_scaffold_round_moves_the_control_variate;
use scaffold::scaffold_server_step_over_rest_equals_the_simulations;
use tamper::{
    a_secagg_round_against_a_malicious_server_gives_the_survivors_mean,
    members_refuse_a_malicious_server_that_deviates,
    members_refuse_a_server_that_drops_keys_for_some_recipients,
    members_refuse_the_previous_rounds_key_lists, members_trust_the_roster_their_authority_signed,
};
use tls::{
    sighup_reloads_the_certificate, the_sdk_reaches_the_server_over_its_own_tls,
    the_sdk_reaches_the_server_through_a_tls_proxy,
};
use verified::{
    an_unverifiable_sum_is_decrypted_only_when_asked, key_holders_decrypt_only_sums_they_verified,
    three_of_five_key_holders_decrypt_with_two_offline,
};

const ADMIN: &str = "test-admin-token-0123456789abcdef";
const OCTET: &str = fedagg_api::OCTET_STREAM;
const METRICS: &str = "test-metrics-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(120);

/// A plain `reqwest` client for raw requests. reqwest's rustls is built without a default
/// crypto provider (the SDK configures ring itself), so install ring as the process default.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "fedagg-it-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Srv {
    base: String,
    admin: Admin,
    faults: fedagg_server::testing::Faults,
    dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Dropped after the server is told to stop.
    _store: Store,
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where a test server keeps its state: every service test runs once against each store.
enum Store {
    Sqlite,
    Postgres(TestDatabase),
}

impl Store {
    /// A fresh PostgreSQL database, or `None` (said loudly) when none is configured outside CI.
    fn postgres(test: &str) -> Option<Store> {
        TestDatabase::for_test(test).map(Store::Postgres)
    }
}

/// `name::sqlite` and `name::postgres` tests running `name(store)`.
macro_rules! on_both_stores {
    ($($(#[$attr:meta])* $name:ident: $threads:literal),* $(,)?) => {$(
        $(#[$attr])*
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn sqlite() {
                super::$name(super::Store::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
            async fn postgres() {
                if let Some(store) = super::Store::postgres(stringify!($name)) {
                    super::$name(store).await
                }
            }
        }
    )*};
}

async fn start(store: Store, max_body_bytes: usize) -> Srv {
    start_with(store, |c| c.max_body_bytes = max_body_bytes).await
}

/// A server on `store` with the test settings, then `tune`'s.
async fn start_with(store: Store, tune: impl FnOnce(&mut fedagg_server::Config)) -> Srv {
    let dir = temp_dir();
    let mut cfg = fedagg_server::Config::default();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.data_dir = dir.clone();
    if let Store::Postgres(db) = &store {
        cfg.database_url = Some(db.url.clone());
    }
    cfg.admin_token = Some(ADMIN.into());
    cfg.metrics_token = Some(METRICS.into());
    cfg.max_wait_secs = 5;
    tune(&mut cfg);
    let server = fedagg_server::Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.addr());
    let faults = server.faults();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    Srv {
        admin: Admin::new(&base, ADMIN).unwrap(),
        faults,
        base,
        dir,
        stop: Some(tx),
        _store: store,
    }
}

fn spec(mode: Mode, m: usize, min: u32, timeout: u64) -> FederationSpec {
    FederationSpec {
        name: "test".into(),
        vector_len: m,
        mode,
        min_clients: min,
        max_clients: 64,
        phase_timeout_secs: timeout,
        server_lr: 1.0,
        auto_rounds: false,
        roster_authority: None,
        scaffold: false,
    }
}

/// A DP mode with room for many rounds.
fn dp_mode() -> Mode {
    Mode::Dp {
        clip: 1.0,
        noise_multiplier: 1.0,
        sampling_rate: 1.0,
        epsilon_budget: 100.0,
        delta: 1e-5,
        adaptive_clip: None,
        accountant: fedagg_api::Accountant::Rdp,
    }
}

/// DP with negligible noise and an unbounded budget: the model shows exactly which updates were
/// aggregated.
fn exact_dp_mode() -> Mode {
    Mode::Dp {
        clip: 100.0,
        noise_multiplier: 1e-6,
        sampling_rate: 1.0,
        epsilon_budget: 1e15,
        delta: 1e-5,
        adaptive_clip: None,
        accountant: fedagg_api::Accountant::Rdp,
    }
}

/// The server's `/metrics` text, read with the admin token.
async fn metrics_text(srv: &Srv) -> String {
    let (_, metrics) = srv
        .admin
        .raw(Method::GET, "/metrics", None, None)
        .await
        .unwrap();
    String::from_utf8(metrics).unwrap()
}

/// `r` is the API error `status` of `kind`.
fn expect(r: Result<(reqwest::StatusCode, Vec<u8>), Error>, status: u16, kind: &str) {
    match r {
        Err(Error::Api {
            status: s, error, ..
        }) => assert_eq!((s, error.as_str()), (status, kind)),
        other => panic!("expected {status}, got {other:?}"),
    }
}

fn secagg(dropout_rate: f64) -> Mode {
    Mode::Secagg {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
        dropout_rate,
        corrupt_fraction: 0.05,
        malicious_server: false,
    }
}

async fn enroll(base: &str, admin: &Admin, fid: i64, n: usize, role: Role) -> Vec<Client> {
    let enrolled = enroll_with_tokens(base, admin, fid, n, role).await;
    enrolled.into_iter().map(|(c, _)| c).collect()
}

/// [`enroll`], keeping each member's token (for raw requests, or to tell members apart).
async fn enroll_with_tokens(
    base: &str,
    admin: &Admin,
    fid: i64,
    n: usize,
    role: Role,
) -> Vec<(Client, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let code = admin.enrollment_code(fid, role).await.unwrap();
        let (c, e) = Client::enroll(base, &code.bundle).await.unwrap();
        assert_eq!(e.role, role);
        out.push((c, e.token));
    }
    out
}

/// Deterministic updates in [-1, 1] with weights in 1..=100.
fn updates(n: usize, m: usize, seed: u64) -> Vec<(Vec<f32>, u64)> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u = (0..m)
                .map(|_| (rng.next_u32() as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32)
                .collect();
            (u, 1 + rng.next_u64() % 100)
        })
        .collect()
}

fn weighted_mean(ups: &[(Vec<f32>, u64)]) -> Vec<f64> {
    let m = ups[0].0.len();
    let w: f64 = ups.iter().map(|(_, w)| *w as f64).sum();
    (0..m)
        .map(|j| {
            ups.iter()
                .map(|(u, wt)| u[j] as f64 * *wt as f64)
                .sum::<f64>()
                / w
        })
        .collect()
}

async fn contribute_all(
    clients: &[Client],
    ups: &[(Vec<f32>, u64)],
    drops: &[Option<Vanish>],
) -> Vec<Result<Option<Outcome>, Error>> {
    let handles: Vec<_> = clients
        .iter()
        .zip(ups)
        .zip(drops)
        .map(|((c, (u, w)), d)| {
            let (c, u, w, d) = (c.clone(), u.clone(), *w, *d);
            tokio::spawn(async move {
                let opts = Contribute {
                    timeout: Some(WAIT),
                    ..Contribute::default()
                };
                dropout::contribute(&c, &u, w, opts, d).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The outcome of a contribution that did not vanish.
fn done(r: &Result<Option<Outcome>, Error>) -> &Outcome {
    r.as_ref().unwrap().as_ref().unwrap()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max);
    assert!(worst <= tol, "max error {worst} above {tol}");
}

/// The model of version 1 is the weighted mean of `included` within one quantization step.
async fn assert_model_is_mean(admin: &Admin, fid: i64, included: &[(Vec<f32>, u64)]) {
    let model = admin.model(fid, 1).await.unwrap();
    assert_close(&model, &weighted_mean(included), STEP);
}

/// Model version `version` is the one before plus the weighted mean of `included` (server
/// learning rate 1), within a few quantization steps.
async fn assert_step_is_mean(admin: &Admin, fid: i64, version: u64, included: &[(Vec<f32>, u64)]) {
    let got = admin.model(fid, version).await.unwrap();
    let prev = admin.model(fid, version - 1).await.unwrap();
    let step: Vec<f32> = got.iter().zip(&prev).map(|(g, p)| g - p).collect();
    assert_close(&step, &weighted_mean(included), 4.0 * STEP);
}

/// The quantization step of `secagg()`/Paillier modes here: 2 / 2^16.
const STEP: f64 = 2.0 / 65536.0;

async fn secagg_round_of_ten_equals_the_plaintext_weighted_mean(store: Store) {
    let srv = start(store, 1 << 26).await;
    let m = 1000;
    let fed = srv
        .admin
        .create_federation(&spec(secagg(0.1), m, 8, 30))
        .await
        .unwrap();
    let clients = enroll(&srv.base, &srv.admin, fed.id, 10, Role::Participant).await;
    let round = srv.admin.open_round(fed.id).await.unwrap();
    assert_eq!(round.round, 1);
    assert_eq!(round.phase, fedagg_api::Phase::AdvertiseKeys);
    let ups = updates(10, m, 1);
    let results = contribute_all(&clients, &ups, &[None; 10]).await;
    for r in &results {
        let o = done(r);
        assert_eq!(o.status, RoundStatus::Completed);
    }
    let record = done(&results[0]).record.clone().unwrap();
    assert_eq!((record.participants, record.dropouts), (10, 0));
    assert_model_is_mean(&srv.admin, fed.id, &ups).await;
    let fed = srv.admin.federation(fed.id).await.unwrap();
    assert_eq!(fed.model_version, 1);
    assert_statuses_documented(&srv).await;
}

async fn secagg_dropouts_at_every_phase_leave_the_survivors_sum(store: Store) {
    let srv = start(store, 1 << 26).await;
    let m = 300;
    let n = 14;
    let fed = srv
        .admin
        .create_federation(&spec(secagg(0.35), m, 5, 3))
        .await
        .unwrap();
    let clients = enroll(&srv.base, &srv.admin, fed.id, n, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    let ups = updates(n, m, 2);
    let mut drops = vec![None; n];
    drops[0] = Some(Vanish::BeforeSending);
    drops[1] = Some(Vanish::After(Phase::AdvertiseKeys));
    drops[2] = Some(Vanish::After(Phase::ShareKeys));
    drops[3] = Some(Vanish::After(Phase::MaskedInput));
    let results = contribute_all(&clients, &ups, &drops).await;
    for r in &results[4..] {
        assert_eq!(done(r).status, RoundStatus::Completed);
    }
    let info = srv.admin.wait_round(fed.id, 1, WAIT).await.unwrap();
    let rec = info.record.unwrap();
    // The one that dropped after sending its masked input is still counted.
    assert_eq!(rec.participants, 11, "{rec:?}");
    assert_eq!(rec.dropouts, 3);
    assert_model_is_mean(&srv.admin, fed.id, &ups[3..]).await;
    assert_statuses_documented(&srv).await;
}

async fn below_threshold_the_round_fails_with_a_reason_and_the_next_one_runs(store: Store) {
    let srv = start(store, 1 << 26).await;
    let m = 50;
    let fed = srv
        .admin
        .create_federation(&spec(secagg(0.1), m, 5, 2))
        .await
        .unwrap();
    let clients = enroll(&srv.base, &srv.admin, fed.id, 10, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    let ups = updates(10, m, 3);
    // Only one client shows up.
    let r = contribute_all(&clients[..1], &ups[..1], &[None]).await;
    assert!(
        matches!(&r[0], Err(Error::Round { round: 1, .. })),
        "{:?}",
        r[0].as_ref().err()
    );
    let info = srv.admin.wait_round(fed.id, 1, WAIT).await.unwrap();
    assert_eq!(info.status, RoundStatus::Failed);
    let reason = info.record.unwrap().failure.unwrap();
    assert!(
        reason.contains("threshold") || reason.contains("requires") || reason.contains("remaining"),
        "{reason}"
    );
    assert_eq!(srv.admin.federation(fed.id).await.unwrap().model_version, 0);

    srv.admin.open_round(fed.id).await.unwrap();
    let results = contribute_all(&clients, &ups, &[None; 10]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
    assert_model_is_mean(&srv.admin, fed.id, &ups).await;
    assert_statuses_documented(&srv).await;
}

/// A Paillier or lattice round: the key holder publishes, the round opens, every client
/// contributes, the key holder decrypts; the model must be the weighted mean.
/// Publish the key holder's key, enroll a participant per update (their codes pin the key), and
/// run one round.
#[cfg(feature = "lattice")]
async fn he_round(srv: &Srv, fid: i64, kh: KeyHolder, ups: &[(Vec<f32>, u64)]) {
    kh.publish().await.unwrap();
    let clients = &enroll(&srv.base, &srv.admin, fid, ups.len(), Role::Participant).await;
    let round = srv.admin.open_round(fid).await.unwrap();
    let key_holder = tokio::spawn(async move { kh.decrypt_round(round.round, WAIT).await });
    let results = contribute_all(clients, ups, &vec![None; clients.len()]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
    assert_eq!(
        key_holder.await.unwrap().unwrap().status,
        RoundStatus::Completed
    );
    assert_model_is_mean(&srv.admin, fid, ups).await;
}

async fn paillier_round_with_a_key_holder_equals_the_plaintext_weighted_mean(store: Store) {
    let srv = start(store, 1 << 26).await;
    let m = 400;
    let mode = Mode::Paillier {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    };
    let fed = srv
        .admin
        .create_federation(&spec(mode, m, 10, 60))
        .await
        .unwrap();
    let code = srv
        .admin
        .enrollment_code(fed.id, Role::KeyHolder)
        .await
        .unwrap();
    let (kh, enrolled) = Client::enroll(&srv.base, &code.bundle).await.unwrap();
    // No key yet: no participant code (it would pin the key), and no round.
    let e = srv
        .admin
        .enrollment_code(fed.id, Role::Participant)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 409, detail, .. } if detail.contains("publish it first")),
        "{e}"
    );
    let e = srv.admin.open_round(fed.id).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 409, .. }), "{e}");
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    // A key under 2048 bits is refused by the SDK, and by the server from anyone else.
    let weak = fedagg_paillier::keygen(1024, &mut rng).unwrap();
    let body = serde_json::json!({ "paillier": weak.public().to_text() });
    let e = KeyHolder::new(kh.clone(), weak)
        .publish()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    let as_kh = Admin::new(&srv.base, &enrolled.token).unwrap();
    let path = fedagg_api::routes::fill(fedagg_api::routes::PUBLIC_KEY, &[&fed.id]);
    expect(
        as_kh.raw(Method::PUT, &path, Some(body), None).await,
        422,
        "invalid",
    );
    // The round's key holder is the `fedagg key-holder` program, with this member's credentials.
    let sk = fedagg_paillier::keygen(2048, &mut rng).unwrap();
    std::fs::create_dir_all(srv.dir.join("keys")).unwrap();
    fedagg_client::write_secret(&srv.dir.join("keys/paillier.key"), sk.to_text().as_bytes())
        .unwrap();
    kh.save_credentials(&srv.dir.join("key-holder.json"))
        .unwrap();
    let daemon = cli::spawn_key_holder(&srv.dir, &["--unverified"]);
    for _ in 0..600 {
        if srv.admin.federation(fed.id).await.unwrap().has_public_key {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ups = updates(10, m, 5);
    let clients = enroll(&srv.base, &srv.admin, fed.id, ups.len(), Role::Participant).await;
    let round = srv.admin.open_round(fed.id).await.unwrap();
    let results = contribute_all(&clients, &ups, &vec![None; clients.len()]).await;
    for r in &results {
        assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
    }
    let info = srv
        .admin
        .wait_round(fed.id, round.round, WAIT)
        .await
        .unwrap();
    assert_eq!(info.record.unwrap().participants, 10);
    assert_model_is_mean(&srv.admin, fed.id, &ups).await;
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert!(
        log.contains("decrypting the server's sum unverified"),
        "{log}"
    );
    drop(daemon);
    assert_statuses_documented(&srv).await;
}

#[cfg(feature = "lattice")]
async fn lattice_round_with_a_key_holder_equals_the_plaintext_weighted_mean(store: Store) {
    let srv = start(store, 1 << 26).await;
    let m = 3000; // two LWE chunks of 2048 values
    let mode = Mode::Lattice {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    };
    // The noise budget bounds the cohort: 64 would be refused (checked below), 16 fits.
    let mut sp = spec(mode, m, 10, 60);
    let e = srv.admin.create_federation(&sp).await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 422, detail, .. } if detail.contains("noise budget")),
        "{e}"
    );
    sp.max_clients = 16;
    let fed = srv.admin.create_federation(&sp).await.unwrap();
    let kh = enroll(&srv.base, &srv.admin, fed.id, 1, Role::KeyHolder)
        .await
        .remove(0);
    let quant = fed.spec.quant().unwrap();
    let params = fedagg_lattice::LatticeParams::new(&quant).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let (sk, pk) = fedagg_lattice::keygen(params, &mut rng);
    // A Paillier key is refused for a lattice federation.
    let wrong = fedagg_paillier::keygen(2048, &mut rng).unwrap();
    let e = KeyHolder::new(kh.clone(), wrong)
        .publish()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Api { status: 400, .. }), "{e}");
    let kh = KeyHolder::lattice(kh, sk, pk).unverified();
    he_round(&srv, fed.id, kh, &updates(10, m, 15)).await;
}

#[cfg(not(feature = "lattice"))]
async fn a_server_without_the_lattice_feature_refuses_lattice_federations(store: Store) {
    let srv = start(store, 1 << 20).await;
    let mode = Mode::Lattice {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    };
    let e = srv
        .admin
        .create_federation(&spec(mode, 10, 3, 60))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 422, detail, .. } if detail.contains("lattice")),
        "{e}"
    );
}

async fn dp_round_adds_the_configured_noise_and_charges_the_ledger(store: Store) {
    let srv = start(store, 1 << 26).await;
    let m = 4000;
    let (clip, sigma, n) = (1.0, 0.8, 10usize);
    let mode = Mode::Dp {
        clip,
        noise_multiplier: sigma,
        sampling_rate: 1.0,
        epsilon_budget: 50.0,
        delta: 1e-5,
        // Adaptive clipping: the count release raises the updates' multiplier a little.
        adaptive_clip: Some(fedagg_api::AdaptiveClipping {
            target_quantile: 0.5,
            learning_rate: 0.2,
            count_stddev: 4.0,
        }),
        accountant: fedagg_api::Accountant::Rdp,
    };
    let fed = srv
        .admin
        .create_federation(&spec(mode, m, n as u32, 60))
        .await
        .unwrap();
    let clients = enroll(&srv.base, &srv.admin, fed.id, n, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    // Small updates (norm below the clip) so the plaintext mean is exact; unweighted.
    let ups: Vec<_> = updates(n, m, 6)
        .into_iter()
        .map(|(u, _)| (u.iter().map(|x| x * 0.01).collect::<Vec<f32>>(), 1))
        .collect();
    // A weight is refused in a DP mode, not silently dropped.
    let err = clients[0].contribute(&ups[0].0, 3).await.unwrap_err();
    assert!(err.to_string().contains("weight 1, not 3"), "{err}");
    let results = contribute_all(&clients, &ups, &[None; 10]).await;
    let rec = done(&results[0]).record.clone().unwrap();
    let eps = rec.epsilon_spent.unwrap();
    assert!(eps > 0.0 && eps < 50.0, "{eps}");
    let model = srv.admin.model(fed.id, 1).await.unwrap();
    let mean: Vec<f64> = (0..m)
        .map(|j| ups.iter().map(|(u, _)| u[j] as f64).sum::<f64>() / n as f64)
        .collect();
    let resid: Vec<f64> = model
        .iter()
        .zip(&mean)
        .map(|(g, w)| *g as f64 - w)
        .collect();
    let avg = resid.iter().sum::<f64>() / m as f64;
    let sd = (resid.iter().map(|r| (r - avg).powi(2)).sum::<f64>() / (m - 1) as f64).sqrt();
    let want = fedagg_dp::adaptive::update_noise_multiplier(sigma, 4.0).unwrap() * clip / n as f64;
    // 4000 samples: the sample sd is within 5 % of the truth with overwhelming probability.
    assert!(
        (sd / want - 1.0).abs() < 0.05,
        "noise sd {sd}, configured {want}"
    );
    assert!(
        avg.abs() < 5.0 * want / (m as f64).sqrt(),
        "noise mean {avg}"
    );
    let fed = srv.admin.federation(fed.id).await.unwrap();
    let p = fed.privacy.unwrap();
    assert_eq!(p.rounds, 1);
    assert!((p.epsilon - eps).abs() < 1e-12);
    // The next round's clip norm moved, and is reported.
    assert!(p.clip.is_some_and(|c| c > 0.0 && c != clip), "{p:?}");
    assert_statuses_documented(&srv).await;
}

async fn auth_is_checked_on_every_route(store: Store) {
    let srv = start(store, 1 << 20).await;
    let a = srv
        .admin
        .create_federation(&spec(secagg(0.1), 10, 3, 30))
        .await
        .unwrap();
    let b = srv
        .admin
        .create_federation(&spec(secagg(0.1), 10, 3, 30))
        .await
        .unwrap();
    let pa = enroll(&srv.base, &srv.admin, a.id, 1, Role::Participant)
        .await
        .remove(0);
    let http = http_client();
    // No token.
    let r = http
        .get(format!("{}/v1/federations/{}", srv.base, a.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: fedagg_api::ErrorBody = r.json().await.unwrap();
    assert_eq!(body.error, "unauthorized");
    // Wrong token.
    let r = http
        .get(format!("{}/v1/federations/{}", srv.base, a.id))
        .bearer_auth("ft_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A participant of A reads A, not B.
    assert!(pa.federation().await.is_ok());
    let other = Client::connect(&srv.base, &token_of(&srv, a.id).await, b.id, 0, pa.pin()).unwrap();
    let e = other.federation().await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 403, .. }), "{e}");
    // A participant cannot call admin routes.
    let tok = token_of(&srv, a.id).await;
    let as_admin = Admin::new(&srv.base, &tok).unwrap();
    for e in [
        as_admin.open_round(a.id).await.unwrap_err(),
        as_admin
            .enrollment_code(a.id, Role::Participant)
            .await
            .unwrap_err(),
        as_admin
            .create_federation(&spec(secagg(0.1), 10, 3, 30))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, Error::Api { status: 403, .. }), "{e}");
    }
    // A used enrollment code does not work twice.
    let code = srv
        .admin
        .enrollment_code(a.id, Role::Participant)
        .await
        .unwrap();
    Client::enroll(&srv.base, &code.bundle).await.unwrap();
    let e = Client::enroll(&srv.base, &code.bundle).await.err().unwrap();
    assert!(matches!(e, Error::Api { status: 401, .. }), "{e}");
    assert_statuses_documented(&srv).await;
}

async fn token_of(srv: &Srv, fid: i64) -> String {
    let code = srv
        .admin
        .enrollment_code(fid, Role::Participant)
        .await
        .unwrap();
    let (_, e) = Client::enroll(&srv.base, &code.bundle).await.unwrap();
    e.token
}

/// POST `frame` to round 1's submissions as `who`; the status and the `Accepted` or error body.
async fn post_frame(who: &Admin, fid: i64, frame: Vec<u8>) -> (u16, serde_json::Value) {
    post_frame_to(who, fid, 1, frame).await
}

/// POST `frame` to a round's submissions as `who`.
async fn post_frame_to(
    who: &Admin,
    fid: i64,
    round: u64,
    frame: Vec<u8>,
) -> (u16, serde_json::Value) {
    let path = fedagg_api::routes::fill(fedagg_api::routes::SUBMISSIONS, &[&fid, &round]);
    match who.raw(Method::POST, &path, None, Some(frame)).await {
        Ok((s, body)) => (s.as_u16(), serde_json::from_slice(&body).unwrap()),
        Err(Error::Api { status, error, .. }) => (status, serde_json::json!({ "error": error })),
        Err(e) => panic!("{e}"),
    }
}

async fn a_retry_is_a_replay_after_its_phase_and_after_the_round(store: Store) {
    let srv = start(store, 1 << 20).await;
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    // SecAgg: four members advertise hand-made keys, so the round moves on to share_keys.
    let fed = srv
        .admin
        .create_federation(&spec(secagg(0.1), 4, 3, 30))
        .await
        .unwrap();
    let mut members = Vec::new();
    for _ in 0..4 {
        members.push(Admin::new(&srv.base, &token_of(&srv, fed.id).await).unwrap());
    }
    srv.admin.open_round(fed.id).await.unwrap();
    let mut sent = Vec::new();
    for m in &members {
        let info = m.round(fed.id, 1, None, Duration::ZERO).await.unwrap();
        let cfg = std::sync::Arc::new(info.secagg.unwrap().config(4).unwrap());
        let id = fedagg_secagg::ClientId(info.member.unwrap());
        let (_, msg) = fedagg_secagg::client::start(cfg, id, None, &mut rng).unwrap();
        let frame = Frame::encode(FrameKind::Secagg, 1, &msg);
        let (s, ack) = post_frame(m, fed.id, frame.clone()).await;
        assert_eq!((s, &ack["replay"]), (200, &serde_json::json!(false)));
        sent.push(frame);
    }
    let info = srv
        .admin
        .round(fed.id, 1, None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(info.phase, Phase::ShareKeys);
    // A lost answer is retried after the phase moved on: a replay, in the phase it was sent in.
    let (s, ack) = post_frame(&members[0], fed.id, sent[0].clone()).await;
    assert_eq!(s, 200, "{ack}");
    assert_eq!(
        (&ack["replay"], &ack["phase"]),
        (
            &serde_json::json!(true),
            &serde_json::json!("advertise_keys")
        )
    );
    // Another member's message is not this member's replay: it is read as a share_keys
    // message, and refused.
    let (s, _) = post_frame(&members[0], fed.id, sent[1].clone()).await;
    assert_eq!(s, 400);

    // DP: after the round ended, a retry is a replay that carries the round's outcome.
    let fed = srv
        .admin
        .create_federation(&spec(dp_mode(), 4, 3, 30))
        .await
        .unwrap();
    let a = Admin::new(&srv.base, &token_of(&srv, fed.id).await).unwrap();
    let b = Admin::new(&srv.base, &token_of(&srv, fed.id).await).unwrap();
    let c = Admin::new(&srv.base, &token_of(&srv, fed.id).await).unwrap();
    srv.admin.open_round(fed.id).await.unwrap();
    let update = |x: f32| Frame::encode(FrameKind::F32, 1, &fedagg_api::f32_bytes(&[x; 4]));
    assert_eq!(post_frame(&a, fed.id, update(0.1)).await.0, 200);
    assert_eq!(post_frame(&b, fed.id, update(0.2)).await.0, 200);
    assert_eq!(post_frame(&c, fed.id, update(0.4)).await.0, 200);
    let end = srv.admin.wait_round(fed.id, 1, WAIT).await.unwrap();
    assert_eq!(end.status, RoundStatus::Completed);
    let (s, ack) = post_frame(&a, fed.id, update(0.1)).await;
    assert_eq!(
        (s, &ack["replay"]),
        (200, &serde_json::json!(true)),
        "{ack}"
    );
    assert_eq!(ack["record"]["participants"], 3, "{ack}");
    let (s, ack) = post_frame(&a, fed.id, update(0.3)).await;
    assert_eq!((s, &ack["error"]), (409, &serde_json::json!("wrong_phase")));
    assert_statuses_documented(&srv).await;
}

async fn metrics_are_private_and_their_series_bounded(store: Store) {
    let srv = start(store, 1 << 16).await;
    // The metrics (each federation's epsilon among them) are for the admin and the scraper.
    let metrics = |token: Option<&'static str>| {
        let mut r = http_client().get(format!("{}/metrics", srv.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(metrics(None).await, 401);
    let member = token_of(
        &srv,
        srv.admin
            .create_federation(&spec(dp_mode(), 4, 3, 30))
            .await
            .unwrap()
            .id,
    )
    .await;
    let member: &'static str = Box::leak(member.into_boxed_str());
    assert_eq!(metrics(Some(member)).await, 403);
    assert_eq!(metrics(Some(METRICS)).await, 200);
    assert_eq!(metrics(Some(ADMIN)).await, 200);
    // Made-up methods share one metric series instead of adding one each.
    let http = http_client();
    for m in ["FOO1", "FOO2", "FOO3"] {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        let r = http
            .request(m, format!("{}/v1/health", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let metrics = metrics_text(&srv).await;
    assert!(!metrics.contains("FOO"), "{metrics}");
    assert!(
        metrics.contains("method=\"OTHER\",route=\"/v1/health\",status=\"405\"} 3"),
        "{metrics}"
    );
    // Every request is timed, in the same bounded series.
    for line in [
        "fedagg_http_request_duration_seconds_count{method=\"OTHER\",route=\"/v1/health\"} 3",
        "fedagg_http_request_duration_seconds_bucket{method=\"OTHER\",route=\"/v1/health\",le=\"+Inf\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_statuses_documented(&srv).await;
}

/// POST `body` to `path` with `token`: the status, and the error kind and detail of an error
/// body. A body refused before it is read may still be on its way when the server answers and
/// closes, so the client may see the connection end instead of the answer (status 0); the
/// server's request metric has the status either way.
async fn raw_post(
    srv: &Srv,
    path: &str,
    token: Option<&str>,
    ctype: &str,
    body: Vec<u8>,
) -> (u16, String, String) {
    let mut r = http_client()
        .post(format!("{}{path}", srv.base))
        .header("content-type", ctype)
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let Ok(r) = r.send().await else {
        return (0, "connection closed".to_string(), String::new());
    };
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    let field = |k: &str| body[k].as_str().unwrap_or("").to_string();
    (status, field("error"), field("detail"))
}

async fn bodies_are_refused_past_their_limits_before_they_are_read(store: Store) {
    let srv = start(store, 1 << 26).await;
    let http = http_client();
    let big_json = |n: usize| format!("{{\"code\": \"{}\"}}", "x".repeat(n)).into_bytes();
    // Unauthenticated: a large enrollment is refused by its size, a large admin request by its
    // missing token, neither after reading it.
    let (s, e, _) = raw_post(
        &srv,
        "/v1/enroll",
        None,
        "application/json",
        big_json(1 << 20),
    )
    .await;
    assert!(
        s == 0 || (s, e.as_str()) == (413, "payload_too_large"),
        "{s} {e}"
    );
    let (s, ..) = raw_post(
        &srv,
        "/v1/federations",
        None,
        "application/json",
        big_json(1 << 20),
    )
    .await;
    assert!(s == 0 || s == 401, "{s}");
    // JSON bodies are small, even the admin's.
    let (s, ..) = raw_post(
        &srv,
        "/v1/federations",
        Some(ADMIN),
        "application/json",
        big_json(100 << 10),
    )
    .await;
    assert!(s == 0 || s == 413, "{s}");
    let metrics = metrics_text(&srv).await;
    for series in [
        r#"method="POST",route="/v1/enroll",status="413"} 1"#,
        r#"method="POST",route="/v1/federations",status="401"} 1"#,
        r#"method="POST",route="/v1/federations",status="413"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} not in\n{metrics}");
    }
    // A submission may be exactly as long as the frame its federation and phase take.
    let m = 100;
    let fed = srv
        .admin
        .create_federation(&spec(dp_mode(), m, 3, 30))
        .await
        .unwrap();
    let member = token_of(&srv, fed.id).await;
    token_of(&srv, fed.id).await;
    srv.admin.open_round(fed.id).await.unwrap();
    let path = fedagg_api::routes::fill(fedagg_api::routes::SUBMISSIONS, &[&fed.id, &1]);
    let frame = Frame::encode(FrameKind::F32, 1, &fedagg_api::f32_bytes(&vec![0.1; m]));
    let mut longer = frame.clone();
    longer.push(0);
    let (s, e, detail) = raw_post(&srv, &path, Some(&member), OCTET, longer).await;
    assert_eq!((s, e.as_str()), (413, "payload_too_large"));
    assert!(
        detail.contains(&format!("at most {} bytes", frame.len())),
        "{detail}"
    );
    let (s, ..) = raw_post(&srv, &path, Some(&member), OCTET, frame).await;
    assert_eq!(s, 200);
    // And an initial model exactly one frame of vector_len values.
    let other = srv
        .admin
        .create_federation(&spec(dp_mode(), m, 3, 30))
        .await
        .unwrap();
    let model = fedagg_api::routes::fill(fedagg_api::routes::MODEL, &[&other.id]);
    let mut req = http
        .put(format!("{}{model}", srv.base))
        .bearer_auth(ADMIN)
        .header("content-type", OCTET)
        .body(vec![0u8; 24 + 4 * m + 1]);
    assert_eq!(req.send().await.unwrap().status(), 413);
    req = http
        .put(format!("{}{model}", srv.base))
        .bearer_auth(ADMIN)
        .header("content-type", OCTET)
        .body(Frame::encode(
            FrameKind::F32,
            0,
            &fedagg_api::f32_bytes(&vec![0.5; m]),
        ));
    assert_eq!(req.send().await.unwrap().status(), 204);
    assert_statuses_documented(&srv).await;
}

/// Read what the server sends on `stream` until it closes the connection (or `limit` passes).
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&got).into_owned())
}

async fn slow_or_too_many_clients_are_cut_off(store: Store) {
    use tokio::io::AsyncWriteExt;
    let srv = start_with(store, |c| {
        c.header_timeout_secs = 1;
        c.body_timeout_secs = 1;
        c.max_connections = 16;
    })
    .await;
    let addr = srv.base.trim_start_matches("http://").to_string();
    // Headers that never end: the connection is closed once the header timeout passes.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .is_some());
    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(answer.is_some_and(|a| a.starts_with("HTTP/1.1 200")));
    // A body that trickles: 408 once its deadline passes, and the upload slot is free again.
    let fed = srv
        .admin
        .create_federation(&spec(dp_mode(), 100, 3, 30))
        .await
        .unwrap();
    let member = token_of(&srv, fed.id).await;
    token_of(&srv, fed.id).await;
    srv.admin.open_round(fed.id).await.unwrap();
    let path = fedagg_api::routes::fill(fedagg_api::routes::SUBMISSIONS, &[&fed.id, &1]);
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {member}\r\n\
         Content-Type: {OCTET}\r\nContent-Length: 424\r\n\r\nFAV"
    );
    trickle.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut trickle, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // Over the connection cap, a new connection gets 503 with Retry-After, then is closed.
    let mut idle = Vec::new();
    for _ in 0..16 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(c);
    }
    let r = http_client()
        .get(format!("{}/v1/health", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    drop(idle);
    // Once they are gone, the server serves again.
    let mut ok = false;
    for _ in 0..50 {
        if http_client()
            .get(format!("{}/v1/health", srv.base))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "the server did not recover its connection slots");
    assert_statuses_documented(&srv).await;
}

async fn a_failed_store_write_leaves_every_round_completable(store: Store) {
    use fedagg_server::testing::Write;
    let srv = start(store, 1 << 20).await;
    // DP with negligible noise, so the model shows exactly which updates were aggregated.
    let m = 8;
    let mode = exact_dp_mode();
    let fed = srv
        .admin
        .create_federation(&spec(mode, m, 3, 30))
        .await
        .unwrap();
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(Admin::new(&srv.base, &token_of(&srv, fed.id).await).unwrap());
    }
    let update = |r: u64, x: f32| Frame::encode(FrameKind::F32, r, &fedagg_api::f32_bytes(&[x; 8]));
    for round in 1..=2u64 {
        srv.admin.open_round(fed.id).await.unwrap();
        // A submission whose write fails is not accepted; its retry is a first acceptance.
        srv.faults.fail_next(Write::Submit);
        let (s, _) = post_frame_to(&members[0], fed.id, round, update(round, 0.1)).await;
        assert_eq!(s, 500);
        assert!(!srv.faults.armed());
        let info = srv
            .admin
            .round(fed.id, round, None, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(info.received, 0);
        let (s, ack) = post_frame_to(&members[0], fed.id, round, update(round, 0.1)).await;
        assert_eq!((s, &ack["replay"]), (200, &serde_json::json!(false)));
        assert_eq!(
            post_frame_to(&members[1], fed.id, round, update(round, 0.2))
                .await
                .0,
            200
        );
        // The last submission is accepted, and writing the round's end fails: the round stays
        // as it was, and the next tick completes it with exactly the three updates.
        srv.faults.fail_next(Write::Complete);
        assert_eq!(
            post_frame_to(&members[2], fed.id, round, update(round, 0.3))
                .await
                .0,
            200
        );
        let end = srv.admin.wait_round(fed.id, round, WAIT).await.unwrap();
        assert!(!srv.faults.armed());
        assert_eq!(end.status, RoundStatus::Completed, "{:?}", end.record);
        assert_eq!(end.record.unwrap().participants, 3);
        let model = srv.admin.model(fed.id, round).await.unwrap();
        assert_eq!(model.len(), m);
        let want = 0.2 * round as f64;
        assert!(
            model.iter().all(|x| (f64::from(*x) - want).abs() < 1e-3),
            "{model:?}"
        );
        let fed = srv.admin.federation(fed.id).await.unwrap();
        assert_eq!(fed.privacy.unwrap().rounds, round);
    }
    // SecAgg: the first phase closure's write fails; the tick retries it and the round ends
    // with every update.
    let fed = srv
        .admin
        .create_federation(&spec(secagg(0.1), 20, 3, 30))
        .await
        .unwrap();
    let clients = enroll(&srv.base, &srv.admin, fed.id, 4, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    srv.faults.fail_next(Write::Close);
    let ups = updates(4, 20, 9);
    let results = contribute_all(&clients, &ups, &[None; 4]).await;
    assert!(!srv.faults.armed());
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
    assert_model_is_mean(&srv.admin, fed.id, &ups).await;
    assert_statuses_documented(&srv).await;
}

async fn bad_control_requests_get_json_errors(store: Store) {
    let srv = start(store, 1 << 16).await;
    // Bad JSON on a JSON route.
    let r = srv
        .admin
        .raw(
            Method::POST,
            "/v1/federations",
            Some(serde_json::json!({"name": 3})),
            None,
        )
        .await;
    expect(r, 400, "bad_request");
    // Well-formed, every field in range, but min_clients > max_clients.
    let mut bad = spec(secagg(0.1), 10, 2, 30);
    bad.min_clients = bad.max_clients + 1;
    let e = srv.admin.create_federation(&bad).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 422, .. }), "{e}");
    // A field out of the range the document states.
    bad.min_clients = 2;
    bad.vector_len = 0;
    let e = srv.admin.create_federation(&bad).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 422, .. }), "{e}");
    // An integral float is an integer; a fraction is not.
    let mut j = serde_json::to_value(spec(secagg(0.1), 10, 3, 30)).unwrap();
    j["max_clients"] = serde_json::json!(64.0);
    let (s, _) = srv
        .admin
        .raw(Method::POST, "/v1/federations", Some(j.clone()), None)
        .await
        .unwrap();
    assert_eq!(s, 201);
    j["max_clients"] = serde_json::json!(64.5);
    let r = srv
        .admin
        .raw(Method::POST, "/v1/federations", Some(j), None)
        .await;
    expect(r, 400, "bad_request");
    // Unknown route.
    expect(
        srv.admin.raw(Method::GET, "/v1/nothing", None, None).await,
        404,
        "not_found",
    );
    // A long poll on a federation that does not exist answers at once.
    let r = srv
        .admin
        .raw(
            Method::GET,
            "/v1/federations/999/rounds/current?wait=5",
            None,
            None,
        )
        .await;
    match r {
        Err(Error::Api { status, detail, .. }) => {
            assert_eq!(status, 404);
            assert!(detail.contains("no federation 999"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_statuses_documented(&srv).await;
}

async fn bad_input_gets_the_documented_4xx_and_the_server_keeps_serving(store: Store) {
    let limit = 1 << 16;
    let srv = start(store, limit).await;
    let m = 100;
    let fed = srv
        .admin
        .create_federation(&spec(dp_mode(), m, 3, 30))
        .await
        .unwrap();
    let token = token_of(&srv, fed.id).await;
    token_of(&srv, fed.id).await; // a second member keeps the round open
    let path = format!("/v1/federations/{}/rounds/1/submissions", fed.id);
    let as_member = Admin::new(&srv.base, &token).unwrap();
    let post = |body: Vec<u8>| {
        let c = as_member.clone();
        let p = path.clone();
        async move { c.raw(Method::POST, &p, None, Some(body)).await }
    };
    let good = Frame::encode(FrameKind::F32, 1, &fedagg_api::f32_bytes(&vec![0.1; m]));
    // No round open yet: wrong phase.
    expect(post(good.clone()).await, 409, "wrong_phase");
    srv.admin.open_round(fed.id).await.unwrap();
    // Wrong vector length.
    let short = Frame::encode(FrameKind::F32, 1, &fedagg_api::f32_bytes(&vec![0.1; m - 1]));
    expect(post(short).await, 400, "bad_request");
    // Garbage.
    expect(
        post(b"definitely not a frame".to_vec()).await,
        400,
        "bad_request",
    );
    // Wrong kind and wrong round in the header.
    expect(
        post(Frame::encode(FrameKind::U64, 1, &[0; 400])).await,
        400,
        "bad_request",
    );
    expect(
        post(Frame::encode(
            FrameKind::F32,
            2,
            &fedagg_api::f32_bytes(&vec![0.1; m]),
        ))
        .await,
        400,
        "bad_request",
    );
    // Oversized.
    expect(post(vec![0; limit + 1]).await, 413, "payload_too_large");
    // The good submission, then an identical retry (accepted once), then a different one.
    let (s, body) = post(good.clone()).await.unwrap();
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"replay\":false"));
    let (s, body) = post(good.clone()).await.unwrap();
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"replay\":true"));
    let other = Frame::encode(FrameKind::F32, 1, &fedagg_api::f32_bytes(&vec![0.2; m]));
    expect(post(other).await, 409, "duplicate");
    // Still serving.
    let (s, _) = srv
        .admin
        .raw(Method::GET, "/v1/health", None, None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    let info = srv
        .admin
        .round(fed.id, 1, None, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((info.received, info.expected), (1, 2));
    // Metrics saw it all.
    let metrics = metrics_text(&srv).await;
    assert!(metrics.contains("fedagg_http_requests_total{"), "{metrics}");
    assert!(metrics.contains("status=\"413\""), "{metrics}");
    assert_statuses_documented(&srv).await;
}

/// Environment for a `fedagg serve` child using `store`. Child servers reach PostgreSQL over
/// TLS (verified against the test CA) when the test cluster has one, so the restart and replica
/// tests also cover `sslmode=require` and `FEDAGG_DATABASE_CA_FILE` end to end.
fn store_env(store: &Store) -> Vec<(&'static str, String)> {
    match store {
        Store::Sqlite => vec![],
        Store::Postgres(db) => match std::env::var("FEDAGG_TEST_POSTGRES_CA") {
            Ok(ca) => vec![
                ("FEDAGG_DATABASE_URL", format!("{}?sslmode=require", db.url)),
                ("FEDAGG_DATABASE_CA_FILE", ca),
            ],
            Err(_) => vec![("FEDAGG_DATABASE_URL", db.url.clone())],
        },
    }
}

async fn sigkill_mid_round_loses_no_accepted_masked_input(store: Store) {
    let dir = temp_dir();
    let env = store_env(&store);
    let mut served = serve::spawn(&dir, "127.0.0.1:0", ADMIN, &env);
    let base = served.base.clone();
    let admin = Admin::new(&base, ADMIN).unwrap();
    let m = 200;
    let n = 6;
    let fed = admin
        .create_federation(&spec(secagg(0.4), m, 3, 6))
        .await
        .unwrap();
    let clients = enroll(&base, &admin, fed.id, n, Role::Participant).await;
    admin.open_round(fed.id).await.unwrap();
    let ups = updates(n, m, 7);
    // Two clients vanish after sharing keys, so the masked-input phase waits for its deadline
    // with four inputs accepted.
    let mut drops = vec![None; n];
    drops[0] = Some(Vanish::After(Phase::ShareKeys));
    drops[1] = Some(Vanish::After(Phase::ShareKeys));
    let run = {
        let clients = clients.clone();
        let ups = ups.clone();
        tokio::spawn(async move { contribute_all(&clients, &ups, &drops).await })
    };
    loop {
        let info = admin.round(fed.id, 1, None, Duration::ZERO).await.unwrap();
        if info.phase == fedagg_api::Phase::MaskedInput && info.received == 4 {
            break;
        }
        assert_eq!(info.status, RoundStatus::Open);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGKILL, then restart on the same address with the same data directory.
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let listen = base.trim_start_matches("http://").to_string();
    let restarted = serve::spawn(&dir, &listen, ADMIN, &env);
    assert_eq!(restarted.base, base);
    let info = admin.round(fed.id, 1, None, Duration::ZERO).await.unwrap();
    assert_eq!(info.status, RoundStatus::Open);
    assert_eq!(
        (info.phase, info.received),
        (fedagg_api::Phase::MaskedInput, 4)
    );
    let results = run.await.unwrap();
    for r in &results[2..] {
        assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
    }
    let info = admin.wait_round(fed.id, 1, WAIT).await.unwrap();
    assert_eq!(info.record.as_ref().unwrap().participants, 4);
    assert_model_is_mean(&admin, fed.id, &ups[2..]).await;
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGKILL a child `fedagg serve` and restart it on the same address and data.
fn kill_and_restart(
    served: &mut serve::Served,
    dir: &std::path::Path,
    env: &[(&str, String)],
) -> serve::Served {
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let listen = served.base.trim_start_matches("http://").to_string();
    let restarted = serve::spawn(dir, &listen, ADMIN, env);
    assert_eq!(restarted.base, served.base);
    restarted
}

async fn sigkill_in_dp_and_paillier_phases_loses_nothing_accepted(store: Store) {
    let dir = temp_dir();
    let env = store_env(&store);
    let mut served = serve::spawn(&dir, "127.0.0.1:0", ADMIN, &env);
    let base = served.base.clone();
    let admin = Admin::new(&base, ADMIN).unwrap();
    // DP, killed in its submit phase with two of three updates accepted.
    let mode = exact_dp_mode();
    let fed = admin
        .create_federation(&spec(mode, 4, 3, 60))
        .await
        .unwrap();
    let mut members = Vec::new();
    for _ in 0..3 {
        let code = admin
            .enrollment_code(fed.id, Role::Participant)
            .await
            .unwrap();
        let (_, e) = Client::enroll(&base, &code.bundle).await.unwrap();
        members.push(Admin::new(&base, &e.token).unwrap());
    }
    admin.open_round(fed.id).await.unwrap();
    let update = |x: f32| Frame::encode(FrameKind::F32, 1, &fedagg_api::f32_bytes(&[x; 4]));
    for (m, x) in members.iter().zip([0.1, 0.2]) {
        assert_eq!(post_frame(m, fed.id, update(x)).await.0, 200);
    }
    let served = kill_and_restart(&mut served, &dir, &env);
    let info = admin.round(fed.id, 1, None, Duration::ZERO).await.unwrap();
    assert_eq!((info.status, info.received), (RoundStatus::Open, 2));
    assert_eq!(post_frame(&members[2], fed.id, update(0.3)).await.0, 200);
    let end = admin.wait_round(fed.id, 1, WAIT).await.unwrap();
    assert_eq!(end.record.unwrap().participants, 3);
    let model = admin.model(fed.id, 1).await.unwrap();
    assert!(model.iter().all(|x| (x - 0.2).abs() < 1e-3), "{model:?}");
    // Paillier, killed in its submit phase and again in its decrypt phase.
    let mode = Mode::Paillier {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    };
    let fed = admin
        .create_federation(&spec(mode, 20, 3, 60))
        .await
        .unwrap();
    let kh = enroll(&base, &admin, fed.id, 1, Role::KeyHolder)
        .await
        .remove(0);
    let sk = fedagg_paillier::keygen(2048, &mut ChaCha20Rng::seed_from_u64(8)).unwrap();
    let served = he_round_through_two_sigkills(
        served,
        &dir,
        &env,
        fed.id,
        KeyHolder::new(kh, sk).unverified(),
    )
    .await;
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One round of a Paillier or lattice federation `fid` (three participants, enrolled here; the
/// key holder not yet published), with the server SIGKILLed and restarted twice: in the submit
/// phase with two ciphertexts accepted, and in the decrypt phase. The SDKs' long polls and the
/// key holder's decryption retry through the restarts; the model is the mean of all three.
async fn he_round_through_two_sigkills(
    mut served: serve::Served,
    dir: &std::path::Path,
    env: &[(&str, String)],
    fid: i64,
    kh: KeyHolder,
) -> serve::Served {
    let admin = Admin::new(&served.base, ADMIN).unwrap();
    kh.publish().await.unwrap();
    let clients = enroll(&served.base, &admin, fid, 3, Role::Participant).await;
    admin.open_round(fid).await.unwrap();
    let m = admin.federation(fid).await.unwrap().spec.vector_len;
    let ups = updates(3, m, 12);
    let first_two = {
        let (clients, ups) = (clients[..2].to_vec(), ups[..2].to_vec());
        tokio::spawn(async move { contribute_all(&clients, &ups, &[None; 2]).await })
    };
    wait_for_phase(&admin, fid, 1, Phase::Submit, 2).await;
    served = kill_and_restart(&mut served, dir, env);
    let info = admin.round(fid, 1, None, Duration::ZERO).await.unwrap();
    assert_eq!((info.phase, info.received), (Phase::Submit, 2));
    let last = {
        let (clients, ups) = (clients[2..].to_vec(), ups[2..].to_vec());
        tokio::spawn(async move { contribute_all(&clients, &ups, &[None]).await })
    };
    wait_for_phase(&admin, fid, 1, Phase::Decrypt, 0).await;
    served = kill_and_restart(&mut served, dir, env);
    let decrypted = kh.decrypt_round(1, WAIT).await.unwrap();
    assert_eq!(decrypted.status, RoundStatus::Completed);
    for r in first_two.await.unwrap().iter().chain(&last.await.unwrap()) {
        assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
    }
    let end = admin.wait_round(fid, 1, WAIT).await.unwrap();
    assert_eq!(end.record.unwrap().participants, 3);
    assert_model_is_mean(&admin, fid, &ups).await;
    served
}

#[cfg(feature = "lattice")]
async fn sigkill_in_lattice_submit_and_decrypt_phases_loses_nothing_accepted(store: Store) {
    let dir = temp_dir();
    let env = store_env(&store);
    let served = serve::spawn(&dir, "127.0.0.1:0", ADMIN, &env);
    let admin = Admin::new(&served.base, ADMIN).unwrap();
    let mode = Mode::Lattice {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    };
    let mut sp = spec(mode, 2100, 3, 60);
    sp.max_clients = 16;
    let fed = admin.create_federation(&sp).await.unwrap();
    let kh = enroll(&served.base, &admin, fed.id, 1, Role::KeyHolder)
        .await
        .remove(0);
    let params = fedagg_lattice::LatticeParams::new(&fed.spec.quant().unwrap()).unwrap();
    let (sk, pk) = fedagg_lattice::keygen(params, &mut ChaCha20Rng::seed_from_u64(9));
    let kh = KeyHolder::lattice(kh, sk, pk).unverified();
    let served = he_round_through_two_sigkills(served, &dir, &env, fed.id, kh).await;
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Wait until round `r` of `fid` is in `phase` with at least `received` submissions in it.
async fn wait_for_phase(admin: &Admin, fid: i64, r: u64, phase: Phase, received: u32) {
    loop {
        let info = admin.round(fid, r, None, Duration::ZERO).await.unwrap();
        assert_eq!(info.status, RoundStatus::Open, "{info:?}");
        if info.phase == phase && info.received >= received {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sigkill_in_secagg_key_and_unmask_phases_loses_nothing_accepted(store: Store) {
    let dir = temp_dir();
    let env = store_env(&store);
    let mut served = serve::spawn(&dir, "127.0.0.1:0", ADMIN, &env);
    let base = served.base.clone();
    let admin = Admin::new(&base, ADMIN).unwrap();
    // Short phases: a member that vanished holds its phase open until the deadline, which the
    // restarted server keeps (it is stored with the phase's start).
    let fed = admin
        .create_federation(&spec(secagg(0.3), 30, 3, 3))
        .await
        .unwrap();
    let clients = enroll(&base, &admin, fed.id, 5, Role::Participant).await;
    let ups = updates(5, 30, 21);
    // Member 0 vanishes in each round; the server is killed in the phase it left open. Vanishing
    // after its masked input, member 0 is still in the sum.
    for (round, vanish, phase, wait_for, included) in [
        (1, Vanish::BeforeSending, Phase::AdvertiseKeys, 4, 4),
        (
            2,
            Vanish::After(Phase::AdvertiseKeys),
            Phase::ShareKeys,
            4,
            4,
        ),
        (3, Vanish::After(Phase::MaskedInput), Phase::Unmask, 1, 5),
    ] {
        admin.open_round(fed.id).await.unwrap();
        let mut drops = vec![None; 5];
        drops[0] = Some(vanish);
        let run = {
            let (clients, ups) = (clients.clone(), ups.clone());
            tokio::spawn(async move { contribute_all(&clients, &ups, &drops).await })
        };
        wait_for_phase(&admin, fed.id, round, phase, wait_for).await;
        served = kill_and_restart(&mut served, &dir, &env);
        let results = run.await.unwrap();
        for r in &results[1..] {
            assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
        }
        let end = admin.wait_round(fed.id, round, WAIT).await.unwrap();
        let rec = end.record.unwrap();
        assert_eq!(
            (rec.participants, rec.dropouts),
            (included, 5 - included),
            "round {round}"
        );
        assert_step_is_mean(&admin, fed.id, round, &ups[5 - included as usize..]).await;
    }
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

on_both_stores! {
    secagg_round_of_ten_equals_the_plaintext_weighted_mean: 4,
    secagg_dropouts_at_every_phase_leave_the_survivors_sum: 4,
    below_threshold_the_round_fails_with_a_reason_and_the_next_one_runs: 4,
    paillier_round_with_a_key_holder_equals_the_plaintext_weighted_mean: 4,
    #[cfg(feature = "lattice")] lattice_round_with_a_key_holder_equals_the_plaintext_weighted_mean: 4,
    #[cfg(not(feature = "lattice"))] a_server_without_the_lattice_feature_refuses_lattice_federations: 2,
    dp_round_adds_the_configured_noise_and_charges_the_ledger: 4,
    a_secagg_dp_round_releases_a_noisy_sum_and_stops_at_its_budget: 4,
    auth_is_checked_on_every_route: 2,
    bad_input_gets_the_documented_4xx_and_the_server_keeps_serving: 2,
    bad_control_requests_get_json_errors: 2,
    the_sdk_reaches_the_server_over_its_own_tls: 4,
    the_sdk_reaches_the_server_through_a_tls_proxy: 4,
    a_failed_store_write_leaves_every_round_completable: 4,
    slow_or_too_many_clients_are_cut_off: 4,
    bodies_are_refused_past_their_limits_before_they_are_read: 2,
    metrics_are_private_and_their_series_bounded: 2,
    a_retry_is_a_replay_after_its_phase_and_after_the_round: 2,
    the_document_is_current_and_lists_every_route_and_status: 2,
    sigkill_mid_round_loses_no_accepted_masked_input: 4,
    sigkill_in_dp_and_paillier_phases_loses_nothing_accepted: 4,
    sigkill_in_secagg_key_and_unmask_phases_loses_nothing_accepted: 4,
    #[cfg(feature = "lattice")] sigkill_in_lattice_submit_and_decrypt_phases_loses_nothing_accepted: 4,
    members_trust_the_roster_their_authority_signed: 2,
    a_secagg_round_against_a_malicious_server_gives_the_survivors_mean: 4,
    members_refuse_a_malicious_server_that_deviates: 4,
    members_refuse_the_previous_rounds_key_lists: 4,
    members_refuse_a_server_that_drops_keys_for_some_recipients: 4,
    three_of_five_key_holders_decrypt_with_two_offline: 4,
    key_holders_decrypt_only_sums_they_verified: 4,
    an_unverifiable_sum_is_decrypted_only_when_asked: 2,
    admin_and_key_holder_run_a_paillier_federation: 4,
    server_optimizers_step_as_computed_directly_and_survive_a_restart: 4,
    scaffold_server_step_over_rest_equals_the_simulations: 4,
    #[cfg(feature = "lattice")] a_lattice_scaffold_round_moves_the_control_variate: 4,
}

/// The SDK against a server that lies about what the member pinned (the store plays no part).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sdk_refuses_a_server_that_weakens_what_it_pinned() {
    tamper::the_sdk_refuses_a_server_that_weakens_what_it_pinned(Store::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_refuses_a_key_the_server_substitutes() {
    tamper::the_sdk_refuses_a_key_the_server_substitutes(Store::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_tls_certificate() {
    sighup_reloads_the_certificate().await
}

/// A load balancer on 127.0.0.1 that sends each request to the next replica in turn (HTTP/1.1,
/// per request, so a client's long poll, submission and download of one phase may each land on
/// a different replica). Like a health-checked balancer, it stops sending to a replica it could
/// not reach, and answers that request 502 (which the SDK retries).
async fn round_robin(replicas: Vec<String>) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    let next = Arc::new(AtomicUsize::new(0));
    let down: Arc<Vec<AtomicBool>> =
        Arc::new(replicas.iter().map(|_| AtomicBool::new(false)).collect());
    let http = http_client();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (next, down, http, replicas) =
            (next.clone(), down.clone(), http.clone(), replicas.clone());
        async move {
            let i = loop {
                let i = next.fetch_add(1, Ordering::Relaxed) % replicas.len();
                if !down[i].load(Ordering::Relaxed) {
                    break i;
                }
            };
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut headers = parts.headers;
            headers.remove(reqwest::header::HOST);
            let sent = http
                .request(parts.method, format!("{}{path}", replicas[i]))
                .headers(headers)
                .body(body)
                .send()
                .await;
            let answer = match sent {
                Ok(r) => {
                    let (status, headers) = (r.status(), r.headers().clone());
                    r.bytes().await.map(|b| (status, headers, b))
                }
                Err(e) => Err(e),
            };
            let Ok((status, headers, bytes)) = answer else {
                down[i].store(true, Ordering::Relaxed);
                return Response::builder()
                    .status(502)
                    .header("content-type", "application/json")
                    .body(Body::from(
                        r#"{"error":"bad_gateway","detail":"replica down"}"#,
                    ))
                    .unwrap();
            };
            let mut out = Response::builder().status(status);
            for (k, v) in &headers {
                out = out.header(k, v);
            }
            out.body(Body::from(bytes)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Two `fedagg serve` processes on one PostgreSQL database, every request alternating between
/// them: rounds opened, advanced by submissions and by deadlines, and completed across
/// replicas produce the same aggregates as one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sharing_postgres_serve_one_federation() {
    let Some(store) = Store::postgres("replicas") else {
        return;
    };
    let env = store_env(&store);
    let (dir_a, dir_b) = (temp_dir(), temp_dir());
    let a = serve::spawn(&dir_a, "127.0.0.1:0", ADMIN, &env);
    let b = serve::spawn(&dir_b, "127.0.0.1:0", ADMIN, &env);
    let base = round_robin(vec![a.base.clone(), b.base.clone()]).await;
    let admin = Admin::new(&base, ADMIN).unwrap();
    let (m, n) = (300, 8);
    let mut sp = spec(secagg(0.3), m, 4, 4);
    sp.auto_rounds = true;
    let fed = admin.create_federation(&sp).await.unwrap();
    let clients = enroll(&base, &admin, fed.id, n, Role::Participant).await;
    admin.open_round(fed.id).await.unwrap();

    // Round 1: two clients vanish mid-protocol, so a deadline (closed by whichever replica's
    // tick gets the lock first) moves the round on.
    let ups = updates(n, m, 11);
    let mut drops = vec![None; n];
    drops[0] = Some(Vanish::After(Phase::AdvertiseKeys));
    drops[1] = Some(Vanish::After(Phase::ShareKeys));
    let results = contribute_all(&clients, &ups, &drops).await;
    for r in &results[2..] {
        assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
    }
    let info = admin.wait_round(fed.id, 1, WAIT).await.unwrap();
    let rec = info.record.unwrap();
    assert_eq!((rec.participants, rec.dropouts), (6, 2), "{rec:?}");
    assert_model_is_mean(&admin, fed.id, &ups[2..]).await;

    // Both replicas report the same ended round, and the round the completing replica opened.
    for replica in [&a.base, &b.base] {
        let direct = Admin::new(replica, ADMIN).unwrap();
        let r1 = direct.round(fed.id, 1, None, Duration::ZERO).await.unwrap();
        assert_eq!(r1.status, RoundStatus::Completed);
        let f = direct.federation(fed.id).await.unwrap();
        assert_eq!((f.model_version, f.open_round), (1, Some(2)));
    }

    // Round 2 (opened automatically): everyone answers; the aggregate starts from model 1.
    let ups2 = updates(n, m, 12);
    let results = contribute_all(&clients, &ups2, &vec![None; n]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
    let info = admin.wait_round(fed.id, 2, WAIT).await.unwrap();
    assert_eq!(info.record.unwrap().participants, n as u32);
    let m1 = admin.model(fed.id, 1).await.unwrap();
    let m2 = admin.model(fed.id, 2).await.unwrap();
    let delta: Vec<f32> = m2.iter().zip(&m1).map(|(x, y)| x - y).collect();
    assert_close(&delta, &weighted_mean(&ups2), 2.0 * STEP);
    // A second opening of the same round on the other replica is refused, not doubled.
    // Round 3 is already open (auto rounds): opening again, on either replica, is refused.
    for _ in 0..2 {
        let e = admin.open_round(fed.id).await;
        assert!(matches!(e, Err(Error::Api { status: 409, .. })), "{e:?}");
    }
    drop((a, b));
    for d in [dir_a, dir_b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Two replicas on PostgreSQL behind the balancer; one is SIGKILLed while the round waits in its
/// masked-input phase. The other replica closes the phase at its deadline and finishes the
/// round, with every input accepted before the kill (on either replica) in the sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_round_leaves_the_other_to_finish_it() {
    let Some(store) = Store::postgres("replica_killed") else {
        return;
    };
    let env = store_env(&store);
    let (dir_a, dir_b) = (temp_dir(), temp_dir());
    let mut a = serve::spawn(&dir_a, "127.0.0.1:0", ADMIN, &env);
    let b = serve::spawn(&dir_b, "127.0.0.1:0", ADMIN, &env);
    let base = round_robin(vec![a.base.clone(), b.base.clone()]).await;
    let admin = Admin::new(&base, ADMIN).unwrap();
    let (m, n) = (200, 6);
    let fed = admin
        .create_federation(&spec(secagg(0.4), m, 3, 5))
        .await
        .unwrap();
    let clients = enroll(&base, &admin, fed.id, n, Role::Participant).await;
    admin.open_round(fed.id).await.unwrap();
    let ups = updates(n, m, 31);
    let mut drops = vec![None; n];
    drops[0] = Some(Vanish::After(Phase::ShareKeys));
    drops[1] = Some(Vanish::After(Phase::ShareKeys));
    let run = {
        let (clients, ups) = (clients.clone(), ups.clone());
        tokio::spawn(async move { contribute_all(&clients, &ups, &drops).await })
    };
    wait_for_phase(&admin, fed.id, 1, Phase::MaskedInput, 4).await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let results = run.await.unwrap();
    for r in &results[2..] {
        assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
    }
    let direct = Admin::new(&b.base, ADMIN).unwrap();
    let info = direct.wait_round(fed.id, 1, WAIT).await.unwrap();
    let rec = info.record.unwrap();
    assert_eq!((rec.participants, rec.dropouts), (4, 2), "{rec:?}");
    assert_model_is_mean(&direct, fed.id, &ups[2..]).await;
    drop((a, b));
    for d in [dir_a, dir_b] {
        let _ = std::fs::remove_dir_all(d);
    }
}
