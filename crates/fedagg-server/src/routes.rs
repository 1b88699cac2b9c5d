//! HTTP routes. Handlers authenticate, check role and federation, then call [`App`]; blocking
//! work (storage, crypto) runs on tokio's blocking pool.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fedagg_api::{
    routes, EnrollRequest, Enrolled, EnrollmentCode, EnrollmentCodeRequest, Federation,
    FederationSpec, Frame, FrameKind, Health, PublicKeyBody, Role, RoundInfo, RoundStatus,
    OCTET_STREAM,
};
use serde::Deserialize;

use crate::app::{Accepted, App};
use crate::auth::{self, authenticate, Principal};
use crate::error::ApiError;

/// The OpenAPI document (checked in as `docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

type AppState = State<Arc<App>>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker: {e}")))?
}

async fn who(app: &Arc<App>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let app = app.clone();
    let headers = headers.clone();
    blocking(move || authenticate(&app.store, &headers)).await
}

fn octet(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM))],
        body,
    )
        .into_response()
}

fn require_octet(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(ct) if ct.starts_with(OCTET_STREAM) => Ok(()),
        other => Err(ApiError::unsupported_media(format!(
            "vector bodies must be {OCTET_STREAM}, got {}",
            other.unwrap_or("no content type")
        ))),
    }
}

/// The router, with body limits, request metrics and JSON errors for unknown routes.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.max_body_bytes;
    Router::new()
        .route(routes::HEALTH, get(health))
        .route(routes::OPENAPI, get(openapi))
        .route(routes::METRICS, get(metrics))
        .route(routes::FEDERATIONS, post(create_federation))
        .route(routes::FEDERATION, get(get_federation))
        .route(routes::MODEL, get(get_model).put(put_model))
        .route(routes::ENROLLMENT_CODES, post(create_code))
        .route(routes::ENROLL, post(enroll))
        .route(routes::TOKEN, post(rotate_token))
        .route(routes::PUBLIC_KEY, put(put_public_key).get(get_public_key))
        .route(routes::ROUNDS, post(open_round))
        .route(routes::CURRENT_ROUND, get(current_round))
        .route(routes::ROUND, get(get_round))
        .route(routes::SUBMISSIONS, post(submit))
        .route(routes::INBOX, get(inbox))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

async fn count_requests(State(app): AppState, req: axum::extract::Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    app.metrics.add(
        "fedagg_http_requests_total",
        &[
            ("method", method.as_str()),
            ("route", &route),
            ("status", resp.status().as_str()),
        ],
        1.0,
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "method_not_allowed",
        detail: format!("{method} is not allowed on this route"),
    }
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn metrics(State(app): AppState) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    Ok(body?.0)
}

async fn create_federation(
    State(app): AppState,
    headers: HeaderMap,
    body: Result<Json<FederationSpec>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Federation>), ApiError> {
    who(&app, &headers).await?.admin()?;
    let spec = json_body(body)?;
    let f = blocking(move || app.create_federation(spec)).await?;
    Ok((StatusCode::CREATED, Json(f)))
}

fn fid_path(
    p: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<i64, ApiError> {
    Ok(p?.0)
}

async fn get_federation(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Federation>, ApiError> {
    let fid = fid_path(fid)?;
    who(&app, &headers).await?.reader(fid)?;
    Ok(Json(blocking(move || app.federation(fid)).await?))
}

#[derive(Deserialize)]
struct ModelQuery {
    version: Option<u64>,
}

async fn get_model(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    q: Result<Query<ModelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let fid = fid_path(fid)?;
    who(&app, &headers).await?.reader(fid)?;
    let version = q?.0.version;
    let body = blocking(move || {
        let v = match version {
            Some(v) => v,
            None => app.federation(fid)?.model_version,
        };
        let data = app
            .store
            .model(fid, v)?
            .ok_or_else(|| ApiError::not_found(format!("no model version {v}")))?;
        Ok(Frame::encode(FrameKind::F32, v, &data))
    })
    .await?;
    Ok(octet(body))
}

async fn put_model(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let fid = fid_path(fid)?;
    who(&app, &headers).await?.admin()?;
    require_octet(&headers)?;
    let body = body?;
    blocking(move || app.set_initial_model(fid, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_code(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<Json<EnrollmentCodeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<EnrollmentCode>), ApiError> {
    let fid = fid_path(fid)?;
    who(&app, &headers).await?.admin()?;
    let req = json_body(body)?;
    if req.role == Role::Admin {
        return Err(ApiError::invalid(
            "enrollment codes grant participant or key_holder",
        ));
    }
    let code = blocking(move || {
        app.federation(fid)?;
        let code = auth::new_secret("fe_");
        app.store
            .insert_code(&auth::hash(&code), fid, req.role, req.label.as_deref())?;
        Ok(EnrollmentCode {
            code,
            federation_id: fid,
            role: req.role,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(code)))
}

async fn enroll(
    State(app): AppState,
    body: Result<Json<EnrollRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let req = json_body(body)?;
    let e = blocking(move || {
        let token = auth::new_secret("ft_");
        let (pid, fid, role) = app
            .store
            .enroll(&auth::hash(&req.code), &auth::hash(&token), app.now_ms())?
            .ok_or_else(|| ApiError::unauthorized("unknown or already used enrollment code"))?;
        app.bump();
        Ok(Enrolled {
            participant_id: pid,
            federation_id: fid,
            role,
            token,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn rotate_token(
    State(app): AppState,
    headers: HeaderMap,
    path: Result<Path<(i64, i64)>, axum::extract::rejection::PathRejection>,
) -> Result<Json<Enrolled>, ApiError> {
    let Path((fid, pid)) = path?;
    let caller = who(&app, &headers).await?;
    // Admins rotate anyone's token; a participant may rotate its own.
    if caller.role != Role::Admin && caller.participant_id != Some(pid) {
        return Err(ApiError::forbidden(
            "only an admin or the participant itself rotates a token",
        ));
    }
    let e = blocking(move || {
        let token = auth::new_secret("ft_");
        let row = app
            .store
            .participant(pid)?
            .filter(|(f, _)| *f == fid)
            .ok_or_else(|| {
                ApiError::not_found(format!("no participant {pid} in federation {fid}"))
            })?;
        app.store.rotate_token(pid, &auth::hash(&token))?;
        Ok(Enrolled {
            participant_id: pid,
            federation_id: fid,
            role: row.1,
            token,
        })
    })
    .await?;
    Ok(Json(e))
}

async fn put_public_key(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    body: Result<Json<PublicKeyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let fid = fid_path(fid)?;
    who(&app, &headers)
        .await?
        .member(fid, Role::KeyHolder, false)?;
    let body = json_body(body)?;
    blocking(move || app.set_public_key(fid, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_public_key(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<PublicKeyBody>, ApiError> {
    let fid = fid_path(fid)?;
    who(&app, &headers).await?.reader(fid)?;
    let body = blocking(move || {
        let fed = app.federation(fid)?;
        let key = app
            .store
            .federation(fid)?
            .ok_or_else(|| ApiError::not_found(format!("no federation {fid}")))?
            .public_key
            .ok_or_else(|| ApiError::not_found("no public key published yet"))?;
        Ok(match fed.spec.mode {
            fedagg_api::Mode::Lattice { .. } => PublicKeyBody {
                lattice: Some(key),
                ..Default::default()
            },
            _ => PublicKeyBody {
                paillier: Some(key),
                ..Default::default()
            },
        })
    })
    .await?;
    Ok(Json(body))
}

async fn open_round(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<(StatusCode, Json<RoundInfo>), ApiError> {
    let fid = fid_path(fid)?;
    who(&app, &headers).await?.admin()?;
    let info = blocking(move || app.open_round(fid)).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

#[derive(Deserialize)]
struct WaitQuery {
    /// Return as soon as the revision exceeds this.
    after: Option<u64>,
    /// Longest wait, seconds.
    wait: Option<u64>,
}

impl WaitQuery {
    fn wait(&self, app: &App) -> Duration {
        Duration::from_secs(self.wait.unwrap_or(0).min(app.config.max_wait_secs))
    }
}

async fn current_round(
    State(app): AppState,
    headers: HeaderMap,
    fid: Result<Path<i64>, axum::extract::rejection::PathRejection>,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoundInfo>, ApiError> {
    let fid = fid_path(fid)?;
    let caller = who(&app, &headers).await?;
    caller.reader(fid)?;
    let q = q?.0;
    // `after` here is a round number: wait for a round later than it.
    let after = q.after.unwrap_or(0);
    let wait = q.wait(&app);
    let a = app.clone();
    let info = app
        .wait_for(wait, move || {
            let r = a.current_round(fid)?;
            match r {
                Some(r) if r > after => Ok((Some(a.round_info(fid, r, Some(&caller))?), true)),
                _ => Ok((None, false)),
            }
        })
        .await?;
    info.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no round after {after} yet")))
}

async fn get_round(
    State(app): AppState,
    headers: HeaderMap,
    path: Result<Path<(i64, u64)>, axum::extract::rejection::PathRejection>,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoundInfo>, ApiError> {
    let Path((fid, round)) = path?;
    let caller = who(&app, &headers).await?;
    caller.reader(fid)?;
    let q = q?.0;
    let wait = q.wait(&app);
    let after = q.after;
    let a = app.clone();
    let info = app
        .wait_for(wait, move || {
            let info = a.round_info(fid, round, Some(&caller))?;
            let ready = after.is_none_or(|r| info.revision > r || info.status != RoundStatus::Open);
            Ok((info, ready))
        })
        .await?;
    Ok(Json(info))
}

async fn submit(
    State(app): AppState,
    headers: HeaderMap,
    path: Result<Path<(i64, u64)>, axum::extract::rejection::PathRejection>,
    body: axum::body::Body,
) -> Result<Json<Accepted>, ApiError> {
    let Path((fid, round)) = path?;
    let caller = who(&app, &headers).await?;
    if caller.role == Role::Admin {
        return Err(ApiError::forbidden("admins do not submit"));
    }
    caller.member(fid, caller.role, false)?;
    require_octet(&headers)?;
    // Bodies are read only while holding an upload slot: with many clients uploading at once,
    // the rest wait in TCP backpressure instead of n bodies of m values sitting in memory.
    let _slot = app
        .upload_slots
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    let body = axum::body::to_bytes(body, app.config.max_body_bytes)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                ApiError::too_large("request body exceeds the configured limit")
            } else {
                ApiError::bad_request(format!("reading the body: {e}"))
            }
        })?;
    let a = app.clone();
    let ack = blocking(move || a.submit(fid, round, &caller, &body)).await?;
    Ok(Json(ack))
}

async fn inbox(
    State(app): AppState,
    headers: HeaderMap,
    path: Result<Path<(i64, u64)>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path((fid, round)) = path?;
    let caller = who(&app, &headers).await?;
    if caller.role == Role::Admin {
        return Err(ApiError::forbidden("admins have no inbox"));
    }
    caller.member(fid, caller.role, false)?;
    let body = blocking(move || app.download(fid, round, &caller)).await?;
    Ok(octet(body))
}
