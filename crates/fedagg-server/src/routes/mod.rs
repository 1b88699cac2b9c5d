//! HTTP routes. Every authenticated handler takes a [`Caller`](crate::auth::Caller), which
//! authenticates, parses the path's ids and checks the route's access rule before any body is
//! read; the handler then calls [`App`], with blocking work (storage, crypto) on tokio's blocking
//! pool. Each handler carries its OpenAPI description ([`crate::openapi`] collects them).

mod dashboard;
mod federations;
mod rounds;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use fedagg_api::{routes, ErrorBody, Health, OCTET_STREAM};

use crate::app::App;
use crate::error::ApiError;

pub(crate) use dashboard::*;
pub(crate) use federations::*;
pub(crate) use rounds::*;

type AppState = State<Arc<App>>;

/// A JSON body, read after the caller is authenticated; axum's rejections become [`ApiError`]s.
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker: {e}")))?
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

/// Largest JSON body: every control message is small.
pub(crate) const MAX_JSON_BYTES: usize = 64 << 10;

/// Largest public-key body: a lattice key is 32 KiB, 64 KiB in hex.
const MAX_KEY_BYTES: usize = 256 << 10;
/// Largest signed roster (about 100 bytes per member, for `MAX_CLIENTS` members; the admin's
/// token is checked before it is read).
const MAX_ROSTER_BYTES: usize = 16 << 20;

/// Read a vector body of at most `limit` bytes: refused (413) at once when its declared length
/// is over, and as soon as more than `limit` bytes arrive otherwise.
async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "this body may be at most {limit} bytes (the frame this federation and phase take)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if let Some(t) = crate::error::body_timed_out(&e) {
            ApiError::timeout(t)
        } else if std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::bad_request(format!("reading the body: {e}"))
        }
    })
}

/// The router, with body limits, request metrics and JSON errors for unknown routes. JSON
/// bodies are limited to [`MAX_JSON_BYTES`]; vector bodies to the exact frame they carry.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(routes::HEALTH, get(health))
        .route(routes::OPENAPI, get(openapi))
        .route(routes::METRICS, get(metrics))
        .route(routes::DASHBOARD, get(dashboard))
        .route(routes::DASHBOARD_JS, get(dashboard_js))
        .route(routes::DASHBOARD_CSS, get(dashboard_css))
        .route(
            routes::FEDERATIONS,
            post(create_federation).get(list_federations),
        )
        .route(routes::FEDERATION, get(get_federation))
        .route(routes::MODEL, get(get_model).put(put_model))
        .route(routes::CONTROLS, get(get_controls))
        .route(routes::SERVER_OPTIMIZER, put(put_server_optimizer))
        .route(routes::ENROLLMENT_CODES, post(create_code))
        .route(routes::ENROLL, post(enroll))
        .route(routes::TOKEN, post(rotate_token))
        .route(
            routes::PUBLIC_KEY,
            put(put_public_key)
                .layer(DefaultBodyLimit::max(MAX_KEY_BYTES))
                .get(get_public_key),
        )
        .route(
            routes::ROSTER,
            get(get_roster)
                .put(put_roster)
                .layer(DefaultBodyLimit::max(MAX_ROSTER_BYTES)),
        )
        .route(routes::ROUNDS, post(open_round).get(list_rounds))
        .route(routes::CURRENT_ROUND, get(current_round))
        .route(routes::ROUND, get(get_round))
        .route(routes::ROUND_METRICS, put(put_round_metrics))
        .route(routes::SUBMISSIONS, post(submit))
        .route(routes::INBOX, get(inbox))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .with_state(app)
}

/// A request's method as a metric label: the standard methods, else `OTHER`, so that requests
/// cannot add series without bound.
fn method_label(m: &Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

async fn count_requests(State(app): AppState, req: axum::extract::Request, next: Next) -> Response {
    let method = method_label(req.method());
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    app.metrics.observe(
        "fedagg_http_request_duration_seconds",
        &[("method", method), ("route", &route)],
        started.elapsed().as_secs_f64(),
    );
    // A refused request's body may be unread (refused by its size, or before its sender was
    // authenticated): the connection cannot carry another request, so say it will close.
    if has_body && !resp.status().is_success() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    app.metrics.add(
        "fedagg_http_requests_total",
        &[
            ("method", method),
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

/// Liveness and version.
#[utoipa::path(get, path = routes::HEALTH, tag = "service",
    responses((status = 200, description = "The server is up", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// This document.
#[utoipa::path(get, path = routes::OPENAPI, tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
        .into_response()
}

/// Prometheus metrics (text exposition format), for the admin or the configured
/// `metrics_token`: they include each DP federation's epsilon.
#[utoipa::path(get, path = routes::METRICS, tag = "service", security(("bearer" = [])),
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "text/plain"),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Neither the admin nor the metrics token", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn metrics(
    State(app): AppState,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let a = app.clone();
    blocking(move || crate::auth::metrics_reader(&a, &headers)).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response())
}
