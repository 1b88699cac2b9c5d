//! The fedagg client SDK: what a partner app embeds to contribute model updates.
//!
//! Its central choice is that the SDK drives the very same sans-IO protocol machines as the
//! server and the in-memory tests (`fedagg-secagg`'s client states, `fedagg-paillier`'s packing),
//! and only adds HTTP, waiting and retries around them. An update never leaves the process in the
//! clear in the SecAgg and Paillier modes; in DP mode it is sent for clipping and noising.
//!
//! ```no_run
//! # async fn run() -> Result<(), fedagg_client::Error> {
//! use fedagg_client::Client;
//! // Enroll once with the bundle the operator gave you (the code and the fingerprints this
//! // client pins: it then refuses parameters or keys from the server that differ); keep the
//! // token and `client.pin()`.
//! let (client, enrolled) = Client::enroll("http://127.0.0.1:8470", "fe_....9f2c...").await?;
//! let (version, global) = client.model().await?;
//! let update: Vec<f32> = global.iter().map(|w| -0.01 * w).collect(); // train locally here
//! let outcome = client.contribute(&update, 32).await?;
//! println!("round {} ended: {:?} (model v{version} -> {:?})", outcome.round, outcome.status,
//!          outcome.record.as_ref().and_then(|r| r.model_version));
//! # let _ = enrolled; Ok(()) }
//! ```
//!
//! A participant that trains with record-level DP (DP-SGD, `fedagg_train::dpsgd`) keeps its own
//! budget in a [`RecordBudget`], charged durably before each local training; its epsilon is
//! about one record, beside the federation's participant-level one (`Federation::privacy`).
//!
//! In a SCAFFOLD federation each update travels with the participant's control-variate delta
//! ([`Contribute::control_delta`]), the server publishes its control variate with each model
//! ([`Client::server_controls`]), and the participant keeps its own in a [`LocalControls`] file.
//!
//! [`set_threads`] lets SecAgg's key agreements and masking and Paillier's encryption use several
//! cores; what is sent is the same, bit for bit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use fedagg_api::trust::Pin;
use fedagg_api::{
    f32_bytes, f32_values, routes, EnrollRequest, Enrolled, ErrorBody, Federation, FederationSpec,
    Frame, FrameKind, Mode, Phase, PublicKeyBody, Roster, RoundInfo, RoundRecord, RoundStatus,
    OCTET_STREAM,
};
use fedagg_paillier::{Packing, PublicKey};
use fedagg_quant::QuantParams;
use fedagg_secagg::ClientId;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};
use reqwest::Method;
use serde::de::DeserializeOwned;

mod admin;
mod credentials;
mod encryptor;
mod identity;
mod keyholder;
mod record;
mod scaffold;
mod transport;

pub use admin::Admin;
pub use credentials::{read_enrollment, write_enrollment};
pub use fedagg_api as api;
pub use identity::{write_secret, Identity};
pub use keyholder::KeyHolder;
pub use record::RecordBudget;
pub use scaffold::LocalControls;
pub use transport::Transport;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached (after retries).
    #[error("transport: {0}")]
    Transport(String),
    /// The server's certificate was refused (unknown authority, wrong name, wrong pin), or the
    /// transport settings are unusable. Never retried.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server refused the request.
    #[error("server answered {status}: {error}: {detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Kind from the JSON body.
        error: String,
        /// Detail from the JSON body.
        detail: String,
    },
    /// The local protocol step failed (bad server message, quantization, encryption).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server described the federation, a round's safety parameters or the public key
    /// differently from what was pinned at enrollment (see `fedagg_api::trust`): nothing was
    /// sent. Never retried.
    #[error("refused, differs from what was pinned: {0}")]
    Untrusted(String),
    /// The round ended without us, or failed.
    #[error("round {round}: {reason}")]
    Round {
        /// Round number.
        round: u64,
        /// Why.
        reason: String,
    },
    /// Waiting took longer than allowed.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    /// Whether retrying may succeed: the server was unreachable, failed (5xx) or asked to wait
    /// (429). The SDK retries these itself, a few times with backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// Where a contribution is.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Round.
    pub round: u64,
    /// What just happened, e.g. `joined`, `sent advertise_keys`, `round completed`.
    pub step: String,
    /// The phase whose message this client has just sent and the server has accepted, if that
    /// is what happened.
    pub sent: Option<Phase>,
}

/// Progress callback.
pub type OnProgress = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Retry policy for transient errors (transport failures, 5xx, 429).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// First backoff.
    pub initial: Duration,
    /// Largest backoff.
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

/// Options of one contribution.
#[derive(Clone, Default)]
pub struct Contribute {
    /// Called at every step.
    pub progress: Option<OnProgress>,
    /// Give up waiting after this long (default: 1 hour).
    pub timeout: Option<Duration>,
    /// SCAFFOLD: the participant's control-variate delta `c_i+ - c_i`, required exactly by a
    /// SCAFFOLD federation. It is protected like the update ([`scaffold`](crate::LocalControls)).
    pub control_delta: Option<Vec<f32>>,
}

/// How a round ended for this client.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Round number.
    pub round: u64,
    /// Final status.
    pub status: RoundStatus,
    /// The round record.
    pub record: Option<RoundRecord>,
}

/// HTTP plumbing shared by every role.
#[derive(Clone)]
struct Http {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    retry: Retry,
}

enum Body {
    None,
    Json(serde_json::Value),
    /// Reference-counted, so a retry resends without copying the body.
    Octets(bytes::Bytes),
}

impl Http {
    fn new(base: &str, token: Option<String>, transport: &Transport) -> Result<Self> {
        let http = transport.client(base)?;
        Ok(Http {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            retry: Retry::default(),
        })
    }

    async fn once(&self, method: &Method, path: &str, body: &Body) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path))
            .timeout(Duration::from_secs(600));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Octets(b) => req
                .header(reqwest::header::CONTENT_TYPE, OCTET_STREAM)
                .body(b.clone()),
        };
        let resp = req.send().await.map_err(|e| {
            if transport::is_tls_refusal(&e) {
                Error::Tls(transport::describe(&e))
            } else {
                Error::Transport(e.to_string())
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let (error, detail) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => (b.error, b.detail),
            Err(_) => (status.to_string(), text),
        };
        Err(Error::Api {
            status: status.as_u16(),
            error,
            detail,
        })
    }

    /// Send with retries on transient errors. Every mutating route of the server is idempotent
    /// for an identical body, so retrying a POST is safe.
    async fn send(&self, method: Method, path: &str, body: Body) -> Result<reqwest::Response> {
        let mut delay = self.retry.initial;
        let mut attempt = 1;
        loop {
            match self.once(&method, path, &body).await {
                Err(e) if e.is_transient() && attempt < self.retry.attempts => {
                    tracing::debug!(%e, attempt, "retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max);
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn json<T: DeserializeOwned>(&self, method: Method, path: &str, body: Body) -> Result<T> {
        self.send(method, path, body)
            .await?
            .json()
            .await
            .map_err(|e| Error::Transport(e.to_string()))
    }

    async fn octets(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self
            .send(Method::GET, path, Body::None)
            .await?
            .bytes()
            .await
            .map_err(|e| Error::Transport(e.to_string()))?
            .to_vec())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Body> {
    serde_json::to_value(v)
        .map(Body::Json)
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// A participant (or key holder) of one federation.
#[derive(Clone)]
pub struct Client {
    http: Http,
    federation_id: i64,
    participant_id: i64,
    pin: Pin,
    identity: Option<Arc<Identity>>,
}

impl Client {
    /// Redeem an enrollment bundle (`EnrollmentCode::bundle`: the code and the fingerprints to
    /// pin), and check the federation the server describes against the pinned fingerprint. The
    /// returned [`Enrolled`] carries the token to keep, and [`Client::pin`] what to keep beside
    /// it for [`Client::connect`]. A bare code without fingerprints is refused.
    pub async fn enroll(base_url: &str, bundle: &str) -> Result<(Client, Enrolled)> {
        Self::enroll_with(base_url, bundle, &Transport::default()).await
    }

    /// [`Client::enroll`] with transport settings (a CA file, a certificate pin).
    pub async fn enroll_with(
        base_url: &str,
        bundle: &str,
        transport: &Transport,
    ) -> Result<(Client, Enrolled)> {
        let (code, pin) =
            fedagg_api::trust::split_bundle(bundle).map_err(|e| Error::Untrusted(e.0))?;
        let http = Http::new(base_url, None, transport)?;
        let identity = Identity::generate();
        let e: Enrolled = http
            .json(
                Method::POST,
                routes::ENROLL,
                to_json(&EnrollRequest {
                    code: code.into(),
                    identity_key: Some(identity.public_hex()),
                })?,
            )
            .await?;
        let client = Client {
            http: Http {
                token: Some(e.token.clone()),
                ..http
            },
            federation_id: e.federation_id,
            participant_id: e.participant_id,
            pin,
            identity: Some(Arc::new(identity)),
        };
        client.federation().await?;
        Ok((client, e))
    }

    /// A client for a token obtained earlier, with the pin from enrollment.
    pub fn connect(
        base_url: &str,
        token: &str,
        federation_id: i64,
        participant_id: i64,
        pin: Pin,
    ) -> Result<Client> {
        Self::connect_with(
            base_url,
            token,
            federation_id,
            participant_id,
            pin,
            &Transport::default(),
        )
    }

    /// [`Client::connect`] with transport settings (a CA file, a certificate pin).
    pub fn connect_with(
        base_url: &str,
        token: &str,
        federation_id: i64,
        participant_id: i64,
        pin: Pin,
        transport: &Transport,
    ) -> Result<Client> {
        Ok(Client {
            http: Http::new(base_url, Some(token.to_string()), transport)?,
            federation_id,
            participant_id,
            pin,
            identity: None,
        })
    }

    /// The identity this member enrolled with (from [`Client::enroll`], or given with
    /// [`Client::with_identity`] after [`Client::connect`]); save it with [`Identity::save`].
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// Use the identity this member enrolled with (read back with [`Identity::load`]).
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// The federation's roster as its enrollment authority signed it, checked against the
    /// authority's key in the pinned spec: each member's identity key, by participant id.
    pub async fn roster(&self) -> Result<std::collections::BTreeMap<i64, VerifyingKey>> {
        let fed = self.federation().await?;
        let authority = fed.spec.roster_authority.ok_or_else(|| {
            Error::Untrusted("the pinned federation has no roster authority".into())
        })?;
        let roster: Roster = self
            .http
            .json(Method::GET, &self.fpath(routes::ROSTER, &[]), Body::None)
            .await?;
        let signed = roster.signed.ok_or_else(|| {
            Error::Untrusted("the enrollment authority has not signed a roster yet".into())
        })?;
        fedagg_api::trust::verify_roster(&authority, self.federation_id, &signed)
            .map_err(|e| Error::Untrusted(e.0))
    }

    /// What this member pinned at enrollment (its text form is what to store beside the token).
    pub fn pin(&self) -> Pin {
        self.pin
    }

    /// Replace the retry policy.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.http.retry = retry;
        self
    }

    /// Participant id.
    pub fn participant_id(&self) -> i64 {
        self.participant_id
    }

    /// A route of this client's federation.
    fn fpath(&self, route: &str, rest: &[&(dyn std::fmt::Display + Sync)]) -> String {
        let mut args: Vec<&(dyn std::fmt::Display + Sync)> = vec![&self.federation_id];
        args.extend_from_slice(rest);
        routes::fill(route, &args)
    }

    /// The federation, checked against the pinned fingerprint.
    pub async fn federation(&self) -> Result<Federation> {
        let fed: Federation = self
            .http
            .json(
                Method::GET,
                &self.fpath(routes::FEDERATION, &[]),
                Body::None,
            )
            .await?;
        self.pin
            .check_federation(self.federation_id, &fed.spec)
            .map_err(|e| Error::Untrusted(e.0))?;
        Ok(fed)
    }

    /// The current global model: `(version, values)`.
    pub async fn model(&self) -> Result<(u64, Vec<f32>)> {
        let fed = self.federation().await?;
        let v = fed.model_version;
        let bytes = self
            .http
            .octets(&format!("{}?version={v}", self.fpath(routes::MODEL, &[])))
            .await?;
        let payload =
            Frame::decode(&bytes, FrameKind::F32, v).map_err(|e| Error::Protocol(e.to_string()))?;
        let values =
            f32_values(payload, fed.spec.vector_len).map_err(|e| Error::Protocol(e.to_string()))?;
        Ok((v, values))
    }

    /// SCAFFOLD's server control variate `c` stored with model `version` (read it with the
    /// model of that version, [`Client::model`]).
    pub async fn server_controls(&self, version: u64) -> Result<Vec<f32>> {
        let fed = self.federation().await?;
        let bytes = self
            .http
            .octets(&format!(
                "{}?version={version}",
                self.fpath(routes::CONTROLS, &[])
            ))
            .await?;
        let payload = Frame::decode(&bytes, FrameKind::F32, version)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        f32_values(payload, fed.spec.vector_len).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// A round, long-polling up to `wait` for a revision above `after`.
    pub async fn round(&self, round: u64, after: Option<u64>, wait: Duration) -> Result<RoundInfo> {
        let mut path = format!(
            "{}?wait={}",
            self.fpath(routes::ROUND, &[&round]),
            wait.as_secs()
        );
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.http.json(Method::GET, &path, Body::None).await
    }

    /// Wait for a round numbered above `after` (long polling), up to `wait`.
    pub async fn next_round(&self, after: u64, wait: Duration) -> Result<Option<RoundInfo>> {
        let path = format!(
            "{}?after={after}&wait={}",
            self.fpath(routes::CURRENT_ROUND, &[]),
            wait.as_secs()
        );
        match self.http.json(Method::GET, &path, Body::None).await {
            Ok(r) => Ok(Some(r)),
            Err(Error::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The key holder's public key in the field of `mode`, checked against the pinned
    /// fingerprint.
    async fn public_key(&self, mode: &Mode) -> Result<String> {
        let body: PublicKeyBody = self
            .http
            .json(
                Method::GET,
                &self.fpath(routes::PUBLIC_KEY, &[]),
                Body::None,
            )
            .await?;
        let key = match mode {
            Mode::Lattice { .. } => body.lattice,
            _ => body.paillier,
        }
        .ok_or_else(|| Error::Protocol(format!("no {} key in the answer", mode.name())))?;
        self.pin
            .check_key(mode, &key)
            .map_err(|e| Error::Untrusted(e.0))?;
        Ok(key)
    }

    #[cfg(feature = "lattice")]
    async fn lattice_encrypt(
        &self,
        mode: &Mode,
        quant: &QuantParams,
        values: Vec<u64>,
    ) -> Result<Vec<u8>> {
        let pk = self.public_key(mode).await?;
        let params = fedagg_lattice::LatticeParams::new(quant)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let bytes = hex::decode(pk).map_err(|e| Error::Protocol(format!("public key: {e}")))?;
        let pk = fedagg_lattice::PublicKey::from_bytes(&bytes, params)
            .map_err(|e| Error::Protocol(format!("public key: {e}")))?;
        let mut enc_rng =
            ChaCha20Rng::from_rng(OsRng).map_err(|e| Error::Protocol(e.to_string()))?;
        offload(move || {
            pk.encrypt_on(&values, &mut enc_rng, crypto_threads())
                .map(|ct| ct.to_bytes())
        })
        .await?
        .map_err(|e| Error::Protocol(e.to_string()))
    }

    #[cfg(not(feature = "lattice"))]
    async fn lattice_encrypt(
        &self,
        _mode: &Mode,
        _quant: &QuantParams,
        _values: Vec<u64>,
    ) -> Result<Vec<u8>> {
        Err(Error::Protocol(
            "this SDK was built without the lattice mode (cargo feature `lattice`)".into(),
        ))
    }

    async fn submit(&self, round: u64, kind: FrameKind, payload: &[u8]) -> Result<()> {
        let body = Frame::encode(kind, round, payload);
        self.http
            .send(
                Method::POST,
                &self.fpath(routes::SUBMISSIONS, &[&round]),
                Body::Octets(body.into()),
            )
            .await
            .map(drop)
    }

    async fn inbox(&self, round: u64, kind: FrameKind) -> Result<Vec<u8>> {
        let bytes = self
            .http
            .octets(&self.fpath(routes::INBOX, &[&round]))
            .await?;
        Frame::decode(&bytes, kind, round)
            .map(<[u8]>::to_vec)
            .map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Wait until the round is in `phase` (or has ended, which is an error unless `phase` is
    /// `done`).
    async fn await_phase(&self, info: &mut RoundInfo, phase: Phase, until: Instant) -> Result<()> {
        loop {
            if info.status != RoundStatus::Open {
                if phase == Phase::Done {
                    return Ok(());
                }
                let reason = info
                    .record
                    .as_ref()
                    .and_then(|r| r.failure.clone())
                    .unwrap_or_else(|| format!("ended before phase {phase}"));
                return Err(Error::Round {
                    round: info.round,
                    reason,
                });
            }
            if info.phase == phase {
                return Ok(());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!("waiting for phase {phase}")));
            }
            *info = self
                .round(
                    info.round,
                    Some(info.revision),
                    left.min(Duration::from_secs(30)),
                )
                .await?;
        }
    }

    /// Find the open round this client is a member of (waiting for one to open).
    async fn join(&self, until: Instant) -> Result<RoundInfo> {
        let mut after = 0;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout("waiting for a round to open".into()));
            }
            match self
                .next_round(after, left.min(Duration::from_secs(30)))
                .await?
            {
                Some(r) if r.status == RoundStatus::Open && r.member.is_some() && !r.submitted => {
                    return Ok(r)
                }
                Some(r) if r.status == RoundStatus::Open => after = r.round,
                Some(r) => after = r.round,
                None => {}
            }
        }
    }

    /// Contribute `update` with `weight` (for example the local sample count) to the next round
    /// this client is in, and wait for its outcome. The DP modes (`dp`, `secagg_dp`) weigh every
    /// update alike (one clipped update is what a participant's privacy is measured against), so
    /// there `weight` must be 1: any other weight is refused, never silently dropped.
    pub async fn contribute(&self, update: &[f32], weight: u64) -> Result<Outcome> {
        self.contribute_with(update, weight, Contribute::default())
            .await
    }

    /// [`Client::contribute`] with options.
    pub async fn contribute_with(
        &self,
        update: &[f32],
        weight: u64,
        opts: Contribute,
    ) -> Result<Outcome> {
        let until = Instant::now() + opts.timeout.unwrap_or(Duration::from_secs(3600));
        let fed = self.federation().await?;
        let spec = &fed.spec;
        if matches!(spec.mode, Mode::SecaggDp { .. } | Mode::Dp { .. }) && weight != 1 {
            return Err(Error::Protocol(format!(
                "the {} mode weighs every update alike (its sensitivity is one clipped update): \
                 contribute with weight 1, not {weight}",
                spec.mode.name()
            )));
        }
        let control_delta = opts.control_delta.as_deref();
        spec.check_update(update, control_delta)
            .map_err(Error::Protocol)?;
        let mut info = self.join(until).await?;
        let round = info.round;
        let report = |step: String, sent: Option<Phase>| {
            if let Some(p) = &opts.progress {
                p(&Progress { round, step, sent });
            }
        };
        report("joined".into(), None);
        let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|e| Error::Protocol(e.to_string()))?;
        match &spec.mode {
            Mode::Dp { .. } => {
                let values = spec
                    .plain_update(update, control_delta)
                    .map_err(Error::Protocol)?;
                self.submit(
                    round,
                    spec.mode.submission_kind(Phase::Submit),
                    &f32_bytes(&values),
                )
                .await?;
                report("sent update".into(), Some(Phase::Submit));
            }
            Mode::Paillier { .. } => {
                let quant = quant_of(spec)?;
                let pk = paillier_public(&self.public_key(&spec.mode).await?)?;
                checked_key(&pk)?;
                let values = spec
                    .encode_quantized(&quant, update, control_delta, weight, &mut rng)
                    .map_err(Error::Protocol)?;
                let packing =
                    Packing::new(&pk, &quant).map_err(|e| Error::Protocol(e.to_string()))?;
                let mut enc_rng =
                    ChaCha20Rng::from_rng(OsRng).map_err(|e| Error::Protocol(e.to_string()))?;
                let body = offload(move || {
                    encryptor::encrypt(&packing, &pk, &values, &mut enc_rng, crypto_threads())
                        .map(|cts| fedagg_paillier::encode_ciphertexts(&pk, &cts))
                })
                .await?
                .map_err(|e| Error::Protocol(e.to_string()))?;
                let body = self.signed(spec, round, body)?;
                self.submit(round, spec.mode.submission_kind(Phase::Submit), &body)
                    .await?;
                report("sent ciphertexts".into(), Some(Phase::Submit));
            }
            Mode::Lattice { .. } => {
                let quant = quant_of(spec)?;
                let values = spec
                    .encode_quantized(&quant, update, control_delta, weight, &mut rng)
                    .map_err(Error::Protocol)?;
                let body = self.lattice_encrypt(&spec.mode, &quant, values).await?;
                let body = self.signed(spec, round, body)?;
                self.submit(round, spec.mode.submission_kind(Phase::Submit), &body)
                    .await?;
                report("sent ciphertexts".into(), Some(Phase::Submit));
            }
            Mode::Secagg { .. } => {
                let quant = quant_of(spec)?;
                let values = spec
                    .encode_quantized(&quant, update, control_delta, weight, &mut rng)
                    .map_err(Error::Protocol)?;
                self.secagg(&mut info, spec, &values, until, &report, &mut rng)
                    .await?;
            }
            Mode::SecaggDp { .. } => {
                let update = spec
                    .plain_update(update, control_delta)
                    .map_err(Error::Protocol)?;
                let values = ddg_values(spec, &info, &update).await?;
                self.secagg(&mut info, spec, &values, until, &report, &mut rng)
                    .await?;
            }
        }
        self.await_phase(&mut info, Phase::Done, until).await?;
        report(format!("round {:?}", info.status), None);
        Ok(Outcome {
            round,
            status: info.status,
            record: info.record,
        })
    }

    /// Under verified decryption, the ciphertexts followed by this member's signature over
    /// them (`fedagg_api::contributions`); otherwise the ciphertexts.
    fn signed(&self, spec: &FederationSpec, round: u64, body: Vec<u8>) -> Result<Vec<u8>> {
        if !spec.verified_decryption() {
            return Ok(body);
        }
        let identity = self.identity.as_ref().ok_or_else(|| {
            Error::Protocol(
                "this federation verifies contributions: the member needs the identity it \
                 enrolled with (Client::with_identity)"
                    .into(),
            )
        })?;
        Ok(identity.sign_contribution(self.federation_id, round, &body))
    }

    async fn secagg(
        &self,
        info: &mut RoundInfo,
        spec: &FederationSpec,
        values: &[u64],
        until: Instant,
        report: &(dyn Fn(String, Option<Phase>) + Sync),
        rng: &mut ChaCha20Rng,
    ) -> Result<()> {
        let p = |e: fedagg_secagg::Error| Error::Protocol(e.to_string());
        let round = info.round;
        let session = info
            .secagg
            .clone()
            .ok_or_else(|| Error::Protocol("secagg round without session parameters".into()))?;
        let member = info
            .member
            .ok_or_else(|| Error::Protocol("not a member of this round".into()))?;
        // Against a malicious server: the members' identities from the roster the pinned
        // authority signed, and this member's own identity to sign with.
        let malicious = spec.mode.malicious_server();
        let (roster, identity) = if malicious {
            let identity = self.identity.as_ref().ok_or_else(|| {
                Error::Protocol(
                    "this federation runs against a malicious server: give the client its \
                     identity (Client::with_identity)"
                        .into(),
                )
            })?;
            (Some(self.roster().await?), Some(identity.signing_key()))
        } else {
            (None, None)
        };
        // Graph, threshold, cohort size and modulus from the pinned spec, not the server's word.
        let cfg = Arc::new(
            session
                .verified_config(spec, roster.as_ref())
                .map_err(|e| Error::Untrusted(format!("round {round}: {e}")))?,
        );
        let mode = &spec.mode;
        self.await_phase(info, Phase::AdvertiseKeys, until).await?;
        let (st, msg) =
            fedagg_secagg::client::start(cfg, ClientId(member), identity, rng).map_err(p)?;
        self.submit(round, mode.submission_kind(Phase::AdvertiseKeys), &msg)
            .await?;
        report("sent advertise_keys".into(), Some(Phase::AdvertiseKeys));
        self.await_phase(info, Phase::ShareKeys, until).await?;
        let keys = self.inbox(round, mode.inbox_kind(Phase::ShareKeys)).await?;
        let (st, msg) = st.share_keys(&keys, rng).map_err(p)?;
        self.submit(round, mode.submission_kind(Phase::ShareKeys), &msg)
            .await?;
        report("sent share_keys".into(), Some(Phase::ShareKeys));
        self.await_phase(info, Phase::MaskedInput, until).await?;
        let shares = self
            .inbox(round, mode.inbox_kind(Phase::MaskedInput))
            .await?;
        let values = values.to_vec();
        let (mut st, msg) = offload(move || st.mask(&shares, &values))
            .await?
            .map_err(p)?;
        self.submit(round, mode.submission_kind(Phase::MaskedInput), &msg)
            .await?;
        report("sent masked_input".into(), Some(Phase::MaskedInput));
        if malicious {
            // Sign the survivor set the server announces (one set per session, at most).
            self.await_phase(info, Phase::ConsistencyCheck, until)
                .await?;
            let request = self
                .inbox(round, mode.inbox_kind(Phase::ConsistencyCheck))
                .await?;
            let msg = st.sign_consistency(&request).map_err(p)?;
            self.submit(round, mode.submission_kind(Phase::ConsistencyCheck), &msg)
                .await?;
            report(
                "sent consistency_check".into(),
                Some(Phase::ConsistencyCheck),
            );
        }
        self.await_phase(info, Phase::Unmask, until).await?;
        let request = self.inbox(round, mode.inbox_kind(Phase::Unmask)).await?;
        let msg = st.unmask(&request).map_err(p)?;
        self.submit(round, mode.submission_kind(Phase::Unmask), &msg)
            .await?;
        report("sent unmask".into(), Some(Phase::Unmask));
        Ok(())
    }
}

/// Run CPU-heavy work (masking, encryption, decryption) off the async runtime's threads.
async fn offload<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Protocol(format!("worker: {e}")))
}

/// A Paillier key of at least 2048 bits: a weaker one, from a server or a key holder, is refused.
fn checked_key(pk: &PublicKey) -> Result<&PublicKey> {
    pk.check_service_size().map_err(|_| {
        Error::Protocol(format!(
            "a {}-bit Paillier key is too weak: the minimum is {} bits",
            pk.bits(),
            fedagg_paillier::MIN_SERVICE_KEY_BITS
        ))
    })?;
    Ok(pk)
}

/// The Paillier key participants encrypt under, from a single key holder's key text or a
/// threshold key's.
fn paillier_public(text: &str) -> Result<PublicKey> {
    let pk = if fedagg_paillier::is_threshold_key(text) {
        fedagg_paillier::ThresholdKey::from_text(text).map(|k| k.public().clone())
    } else {
        PublicKey::from_text(text)
    };
    pk.map_err(|e| Error::Protocol(format!("public key: {e}")))
}

/// A member's values under SecAgg with distributed DP: its update clipped, rotated, rounded and
/// noised with parameters derived from the pinned spec, so that the server chooses none of them
/// (the round's rotation seed, a hash of the session id, affects only how flat the values are).
async fn ddg_values(spec: &FederationSpec, info: &RoundInfo, update: &[f32]) -> Result<Vec<u64>> {
    let ddg = spec.ddg().map_err(Error::Untrusted)?;
    let seed = info
        .secagg
        .as_ref()
        .ok_or_else(|| Error::Protocol("secagg round without a session".into()))?
        .rotation_seed()
        .map_err(Error::Protocol)?;
    let update = update.to_vec();
    let mut noise = ChaCha20Rng::from_rng(OsRng).map_err(|e| Error::Protocol(e.to_string()))?;
    offload(move || ddg.encode(&update, &seed, &mut noise))
        .await?
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// Bound the threads this process uses for its cryptography: SecAgg's key agreements with the
/// neighbours and its masking, Paillier's and the lattice mode's encryption, and a key holder's
/// Paillier decryption (1 until set; `fedagg serve` in the same process sets its own count, every
/// core by default). What is sent is the same, bit for bit, whatever the number
/// (the randomness comes from the same generator): only the time changes.
pub fn set_threads(n: usize) {
    fedagg_secagg::crypto::set_threads(n);
}

pub(crate) fn crypto_threads() -> usize {
    fedagg_secagg::crypto::threads()
}

fn quant_of(spec: &FederationSpec) -> Result<QuantParams> {
    spec.quant().map_err(Error::Protocol)
}
