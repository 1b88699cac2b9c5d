//! The operator's side of the SDK: federations, enrollment codes, rounds, models, tokens and
//! the server optimizer, over the admin routes.

use std::time::{Duration, Instant};

use fedagg_api::{
    f32_bytes, f32_values, routes, Enrolled, EnrollmentCode, EnrollmentCodeRequest, Federation,
    FederationList, FederationSpec, Frame, FrameKind, Role, Roster, RoundInfo, RoundList,
    RoundMetrics, RoundStatus, RoundSummary, ServerOptimizer, SignedRoster,
};
use reqwest::{Method, StatusCode};

use crate::{to_json, Body, Error, Http, Result, Transport};

/// The operator's side: federations, enrollment codes, rounds.
#[derive(Clone)]
pub struct Admin {
    http: Http,
}

impl Admin {
    /// An admin client with the admin token.
    pub fn new(base_url: &str, token: &str) -> Result<Self> {
        Self::with_transport(base_url, token, &Transport::default())
    }

    /// [`Admin::new`] with transport settings (a CA file, a certificate pin).
    pub fn with_transport(base_url: &str, token: &str, transport: &Transport) -> Result<Self> {
        Ok(Admin {
            http: Http::new(base_url, Some(token.into()), transport)?,
        })
    }

    /// Create a federation.
    pub async fn create_federation(&self, spec: &FederationSpec) -> Result<Federation> {
        self.http
            .json(Method::POST, routes::FEDERATIONS, to_json(spec)?)
            .await
    }

    /// A federation.
    pub async fn federation(&self, id: i64) -> Result<Federation> {
        self.http
            .json(
                Method::GET,
                &routes::fill(routes::FEDERATION, &[&id]),
                Body::None,
            )
            .await
    }

    /// Every federation, ascending by id.
    pub async fn federations(&self) -> Result<Vec<Federation>> {
        let list: FederationList = self
            .http
            .json(Method::GET, routes::FEDERATIONS, Body::None)
            .await?;
        Ok(list.federations)
    }

    /// Up to `limit` rounds of federation `id` numbered below `before`, newest first.
    pub async fn rounds(
        &self,
        id: i64,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<RoundSummary>> {
        let mut path = format!("{}?limit={limit}", routes::fill(routes::ROUNDS, &[&id]));
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let list: RoundList = self.http.json(Method::GET, &path, Body::None).await?;
        Ok(list.rounds)
    }

    /// Report metrics measured on the model round `round` of federation `id` produced.
    pub async fn report_metrics(&self, id: i64, round: u64, metrics: &RoundMetrics) -> Result<()> {
        self.http
            .send(
                Method::PUT,
                &routes::fill(routes::ROUND_METRICS, &[&id, &round]),
                to_json(metrics)?,
            )
            .await
            .map(drop)
    }

    /// Set federation `id`'s server optimizer (refused with 409 while a round is open).
    pub async fn set_server_optimizer(&self, id: i64, opt: &ServerOptimizer) -> Result<()> {
        self.http
            .send(
                Method::PUT,
                &routes::fill(routes::SERVER_OPTIMIZER, &[&id]),
                to_json(opt)?,
            )
            .await
            .map(drop)
    }

    /// Replace participant `pid`'s token (the old one stops working at once); the new token is
    /// in the answer.
    pub async fn rotate_token(&self, id: i64, pid: i64) -> Result<Enrolled> {
        self.http
            .json(
                Method::POST,
                &routes::fill(routes::TOKEN, &[&id, &pid]),
                Body::None,
            )
            .await
    }

    /// Federation `id`'s roster: who enrolled with which identity key, and the signed roster.
    pub async fn roster(&self, id: i64) -> Result<Roster> {
        self.http
            .json(
                Method::GET,
                &routes::fill(routes::ROSTER, &[&id]),
                Body::None,
            )
            .await
    }

    /// Store a roster signed by federation `id`'s enrollment authority.
    pub async fn put_roster(&self, id: i64, signed: &SignedRoster) -> Result<()> {
        self.http
            .send(
                Method::PUT,
                &routes::fill(routes::ROSTER, &[&id]),
                to_json(signed)?,
            )
            .await
            .map(drop)
    }

    /// Set the initial model (before the first round).
    pub async fn set_initial_model(&self, id: i64, model: &[f32]) -> Result<()> {
        self.http
            .send(
                Method::PUT,
                &routes::fill(routes::MODEL, &[&id]),
                Body::Octets(Frame::encode(FrameKind::F32, 0, &f32_bytes(model)).into()),
            )
            .await
            .map(drop)
    }

    /// A single-use enrollment code.
    pub async fn enrollment_code(&self, id: i64, role: Role) -> Result<EnrollmentCode> {
        self.enrollment_code_labelled(id, role, None).await
    }

    /// A single-use enrollment code whose member the server records under `label`.
    pub async fn enrollment_code_labelled(
        &self,
        id: i64,
        role: Role,
        label: Option<&str>,
    ) -> Result<EnrollmentCode> {
        let label = label.map(str::to_string);
        self.http
            .json(
                Method::POST,
                &routes::fill(routes::ENROLLMENT_CODES, &[&id]),
                to_json(&EnrollmentCodeRequest { role, label })?,
            )
            .await
    }

    /// Open the next round.
    pub async fn open_round(&self, id: i64) -> Result<RoundInfo> {
        self.http
            .json(
                Method::POST,
                &routes::fill(routes::ROUNDS, &[&id]),
                Body::None,
            )
            .await
    }

    /// A round, long-polling up to `wait` for a revision above `after`.
    pub async fn round(
        &self,
        id: i64,
        round: u64,
        after: Option<u64>,
        wait: Duration,
    ) -> Result<RoundInfo> {
        let mut path = format!(
            "{}?wait={}",
            routes::fill(routes::ROUND, &[&id, &round]),
            wait.as_secs()
        );
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.http.json(Method::GET, &path, Body::None).await
    }

    /// Wait until a round has ended.
    pub async fn wait_round(&self, id: i64, round: u64, timeout: Duration) -> Result<RoundInfo> {
        let until = Instant::now() + timeout;
        let mut info = self.round(id, round, None, Duration::ZERO).await?;
        while info.status == RoundStatus::Open {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!("round {round} still open")));
            }
            info = self
                .round(
                    id,
                    round,
                    Some(info.revision),
                    left.min(Duration::from_secs(30)),
                )
                .await?;
        }
        Ok(info)
    }

    /// Model bytes of a version.
    pub async fn model(&self, id: i64, version: u64) -> Result<Vec<f32>> {
        let fed = self.federation(id).await?;
        let bytes = self
            .http
            .octets(&format!(
                "{}?version={version}",
                routes::fill(routes::MODEL, &[&id])
            ))
            .await?;
        let payload = Frame::decode(&bytes, FrameKind::F32, version)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        f32_values(payload, fed.spec.vector_len).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Raw request (tests of the HTTP surface): method, path, optional JSON or octets.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        json: Option<serde_json::Value>,
        octets: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let body = match (json, octets) {
            (Some(j), _) => Body::Json(j),
            (None, Some(o)) => Body::Octets(o.into()),
            _ => Body::None,
        };
        match self.http.once(&method, path, &body).await {
            Ok(r) => {
                let s = r.status();
                Ok((
                    s,
                    r.bytes()
                        .await
                        .map_err(|e| Error::Transport(e.to_string()))?
                        .to_vec(),
                ))
            }
            Err(e) => Err(e),
        }
    }
}
