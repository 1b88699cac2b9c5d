//! Rounds: opening one, reading it (long polls), submissions and the per-member inbox.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use fedagg_api::{routes, Accepted, ErrorBody, RoundInfo, RoundList, RoundMetrics, RoundStatus};
use serde::Deserialize;

use super::{blocking, octet, read_body, require_octet, AppState, JsonBody};
use crate::app::App;
use crate::auth::{access, Caller, FedPath, RoundPath};
use crate::error::ApiError;

/// Open the federation's next round.
#[utoipa::path(post, path = routes::ROUNDS, tag = "rounds",
    params(FedPath), security(("bearer" = [])),
    responses(
        (status = 201, description = "Opened", body = RoundInfo),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 409, description = "A round is open, too few members, no public key yet, or the privacy budget is spent", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn open_round(
    State(app): AppState,
    caller: Caller<access::Admin, FedPath>,
) -> Result<(StatusCode, Json<RoundInfo>), ApiError> {
    let fid = caller.path.fid;
    let info = blocking(move || app.open_round(fid)).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Most rounds in one page of the list.
const MAX_PAGE: u32 = 1000;

/// Query of the round list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Only rounds numbered below this (the next page: the last round listed).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    before: Option<u64>,
    /// Rounds in the page, newest first (100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The federation's rounds, newest first, with the metrics the operator reported on each.
#[utoipa::path(get, path = routes::ROUNDS, tag = "rounds",
    params(FedPath, PageQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of rounds", body = RoundList),
        (status = 400, description = "Bad id or query", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn list_rounds(
    State(app): AppState,
    caller: Caller<access::Admin, FedPath>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoundList>, ApiError> {
    let fid = caller.path.fid;
    let q = q?.0;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_PAGE}"
        )));
    }
    if q.before.is_some_and(|b| b > i64::MAX as u64) {
        return Err(ApiError::bad_request("before must be at most 2^63 - 1"));
    }
    Ok(Json(
        blocking(move || app.rounds(fid, q.before, limit)).await?,
    ))
}

/// Report metrics measured on the model a round produced (shown on the dashboard).
#[utoipa::path(put, path = routes::ROUND_METRICS, tag = "rounds",
    params(RoundPath), request_body = RoundMetrics, security(("bearer" = [])),
    responses(
        (status = 204, description = "Stored, replacing an earlier report"),
        (status = 400, description = "Bad id or body", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A value out of range", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn put_round_metrics(
    State(app): AppState,
    caller: Caller<access::Admin, RoundPath>,
    body: JsonBody<RoundMetrics>,
) -> Result<StatusCode, ApiError> {
    let RoundPath { fid, round } = caller.path;
    let metrics = body?.0;
    blocking(move || app.set_round_metrics(fid, round, &metrics)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Longest `wait` a client may ask for, in seconds (the server's `max_wait_secs` caps it).
const MAX_WAIT_SECS: u64 = 3600;

/// Long-poll query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// Answer as soon as there is something after this: a round number for `rounds/current`,
    /// a revision for a round.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    after: Option<u64>,
    /// Longest wait, in seconds (capped by the server's `max_wait_secs`).
    #[param(minimum = 0, maximum = 3600)]
    wait: Option<u64>,
}

impl WaitQuery {
    fn parse(
        q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
        app: &App,
    ) -> Result<(Option<u64>, Duration), ApiError> {
        let q = q?.0;
        if q.after.is_some_and(|a| a > i64::MAX as u64) {
            return Err(ApiError::bad_request("after must be at most 2^63 - 1"));
        }
        let wait = q.wait.unwrap_or(0);
        if wait > MAX_WAIT_SECS {
            return Err(ApiError::bad_request(format!(
                "wait must be at most {MAX_WAIT_SECS} seconds"
            )));
        }
        Ok((
            q.after,
            Duration::from_secs(wait.min(app.config.max_wait_secs)),
        ))
    }
}

/// The open round, else the latest one; with `wait`, waits for a round later than `after`.
#[utoipa::path(get, path = routes::CURRENT_ROUND, tag = "rounds",
    params(FedPath, WaitQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The round as the caller sees it", body = RoundInfo),
        (status = 400, description = "Bad id or query", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin nor a member", body = ErrorBody),
        (status = 404, description = "No such federation, or no round after `after` yet", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn current_round(
    State(app): AppState,
    caller: Caller<access::Reader, FedPath>,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoundInfo>, ApiError> {
    let fid = caller.path.fid;
    let (after, wait) = WaitQuery::parse(q, &app)?;
    let after = after.unwrap_or(0);
    let a = app.clone();
    blocking(move || a.check_federation(fid)).await?;
    let who = caller.who;
    let a = app.clone();
    let info = app
        .wait_for(fid, wait, move || match a.current_round(fid)? {
            Some(r) if r > after => Ok((Some(a.round_info(fid, r, Some(&who))?), true)),
            _ => Ok((None, false)),
        })
        .await?;
    info.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no round after {after} yet")))
}

/// A round as the caller sees it; with `wait`, waits until its revision passes `after`.
#[utoipa::path(get, path = routes::ROUND, tag = "rounds",
    params(RoundPath, WaitQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "The round", body = RoundInfo),
        (status = 400, description = "Bad id or query", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin nor a member", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn get_round(
    State(app): AppState,
    caller: Caller<access::Reader, RoundPath>,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RoundInfo>, ApiError> {
    let RoundPath { fid, round } = caller.path;
    let (after, wait) = WaitQuery::parse(q, &app)?;
    let who = caller.who;
    let a = app.clone();
    let info = app
        .wait_for(fid, wait, move || {
            let info = a.round_info(fid, round, Some(&who))?;
            let ready = after.is_none_or(|r| info.revision > r || info.status != RoundStatus::Open);
            Ok((info, ready))
        })
        .await?;
    Ok(Json(info))
}

/// The caller's message for the round's current phase: a frame of the mode's kind.
#[utoipa::path(post, path = routes::SUBMISSIONS, tag = "rounds",
    params(RoundPath), security(("bearer" = [])),
    request_body(content_type = "application/octet-stream", description = "A frame of the phase's kind for this round"),
    responses(
        (status = 200, description = "Accepted and stored (or an identical retry)", body = Accepted),
        (status = 400, description = "Bad id or frame, or a message the protocol refuses", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not a member of the federation or of the round's cohort", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 409, description = "Another phase, the round has ended, or a different submission was already accepted", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/octet-stream", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "Shutting down, or the store is unavailable", body = ErrorBody)))]
pub(crate) async fn submit(
    State(app): AppState,
    caller: Caller<access::Contributor, RoundPath>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Accepted>, ApiError> {
    let RoundPath { fid, round } = caller.path;
    require_octet(&headers)?;
    let a = app.clone();
    let limit = blocking(move || a.submission_limit(fid, round)).await?;
    // Bodies are read only while holding an upload slot: with many clients uploading at once,
    // the rest wait in TCP backpressure instead of n bodies of m values sitting in memory.
    let _slot = app
        .upload_slots
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("shutting down"))?;
    let body = read_body(&headers, body, limit).await?;
    let who = caller.who;
    let a = app.clone();
    Ok(Json(
        blocking(move || a.submit(fid, round, &who, &body)).await?,
    ))
}

/// The server's message for the caller in the current phase (a frame), e.g. the shares
/// addressed to a SecAgg member or the aggregate for the key holder.
#[utoipa::path(get, path = routes::INBOX, tag = "rounds",
    params(RoundPath), security(("bearer" = [])),
    responses(
        (status = 200, description = "A frame of the phase's kind", content_type = "application/octet-stream"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not a member of the federation or of the round's cohort", body = ErrorBody),
        (status = 404, description = "No such round", body = ErrorBody),
        (status = 409, description = "Nothing for the caller in this phase, or the round has ended", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn inbox(
    State(app): AppState,
    caller: Caller<access::Contributor, RoundPath>,
) -> Result<Response, ApiError> {
    let RoundPath { fid, round } = caller.path;
    let who = caller.who;
    Ok(octet(
        blocking(move || app.download(fid, round, &who)).await?,
    ))
}
