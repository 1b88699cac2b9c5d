//! Federations, their model, enrollment, tokens and the key holder's public key.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use fedagg_api::{
    routes, EnrollRequest, Enrolled, EnrollmentCode, EnrollmentCodeRequest, ErrorBody, Federation,
    FederationList, FederationSpec, PublicKeyBody, Roster, ServerOptimizer, SignedRoster,
};
use serde::Deserialize;

use super::{blocking, octet, read_body, require_octet, AppState, JsonBody};
use crate::auth::{access, Caller, FedPath, ParticipantPath};
use crate::error::ApiError;

/// Create a federation, with an all-zero initial model.
#[utoipa::path(post, path = routes::FEDERATIONS, tag = "federations",
    request_body = FederationSpec, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Federation),
        (status = 400, description = "The body is not a FederationSpec", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Fields in range but inconsistent (for example min_clients > max_clients), or a mode's own constraint", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn create_federation(
    State(app): AppState,
    _caller: Caller<access::Admin>,
    body: JsonBody<FederationSpec>,
) -> Result<(StatusCode, Json<Federation>), ApiError> {
    let spec = body?.0;
    let f = blocking(move || app.create_federation(spec)).await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// Every federation, ascending by id.
#[utoipa::path(get, path = routes::FEDERATIONS, tag = "federations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The federations", body = FederationList),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn list_federations(
    State(app): AppState,
    _caller: Caller<access::Admin>,
) -> Result<Json<FederationList>, ApiError> {
    Ok(Json(blocking(move || app.federations()).await?))
}

/// A federation: its spec, model version, open round, members and privacy spent.
#[utoipa::path(get, path = routes::FEDERATION, tag = "federations",
    params(FedPath), security(("bearer" = [])),
    responses(
        (status = 200, description = "The federation", body = Federation),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin nor a member", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn get_federation(
    State(app): AppState,
    caller: Caller<access::Reader, FedPath>,
) -> Result<Json<Federation>, ApiError> {
    let fid = caller.path.fid;
    Ok(Json(blocking(move || app.federation(fid)).await?))
}

/// Set the server optimizer the federation's next rounds apply to their aggregate (FedAvg,
/// FedAvgM, FedAdam, FedYogi), between rounds. Its state starts afresh when the kind changes.
#[utoipa::path(put, path = routes::SERVER_OPTIMIZER, tag = "federations",
    params(FedPath), request_body = ServerOptimizer, security(("bearer" = [])),
    responses(
        (status = 204, description = "Set; the next round applies it"),
        (status = 400, description = "Bad id or body", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 409, description = "A round is open", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A hyperparameter out of range", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn put_server_optimizer(
    State(app): AppState,
    caller: Caller<access::Admin, FedPath>,
    body: JsonBody<serde_json::Map<String, serde_json::Value>>,
) -> Result<StatusCode, ApiError> {
    let fid = caller.path.fid;
    // An object only: serde would also read an internally tagged enum from an array.
    let opt: ServerOptimizer = serde_json::from_value(serde_json::Value::Object(body?.0))
        .map_err(|e| ApiError::bad_request(format!("the body is not a ServerOptimizer: {e}")))?;
    blocking(move || app.set_server_optimizer(fid, &opt)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET .../model`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ModelQuery {
    /// Model version (0 is the initial model); the current one when absent.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    version: Option<u64>,
}

/// A model version, as an F32 frame whose round field is the version.
#[utoipa::path(get, path = routes::MODEL, tag = "federations",
    params(FedPath, ModelQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "F32 frame", content_type = "application/octet-stream"),
        (status = 400, description = "Bad id or query", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin nor a member", body = ErrorBody),
        (status = 404, description = "No such federation or model version", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn get_model(
    State(app): AppState,
    caller: Caller<access::Reader, FedPath>,
    q: Result<Query<ModelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (fid, version) = (caller.path.fid, version_of(q)?);
    Ok(octet(
        blocking(move || app.model_frame(fid, version)).await?,
    ))
}

/// The model version a `GET .../model` or `.../controls` query names.
fn version_of(
    q: Result<Query<ModelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Option<u64>, ApiError> {
    let version = q?.0.version;
    if version.is_some_and(|v| v > i64::MAX as u64) {
        return Err(ApiError::bad_request("version must be at most 2^63 - 1"));
    }
    Ok(version)
}

/// SCAFFOLD's server control variate `c` stored with a model version, as an F32 frame of
/// `vector_len` values whose round field is the version (zeros before the first SCAFFOLD round).
#[utoipa::path(get, path = routes::CONTROLS, tag = "federations",
    params(FedPath, ModelQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "F32 frame", content_type = "application/octet-stream"),
        (status = 400, description = "Bad id or query", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin nor a member", body = ErrorBody),
        (status = 404, description = "No such federation or model version", body = ErrorBody),
        (status = 409, description = "The federation does not use SCAFFOLD", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn get_controls(
    State(app): AppState,
    caller: Caller<access::Reader, FedPath>,
    q: Result<Query<ModelQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (fid, version) = (caller.path.fid, version_of(q)?);
    Ok(octet(
        blocking(move || app.controls_frame(fid, version)).await?,
    ))
}

/// Replace the initial model (version 0), before the first round.
#[utoipa::path(put, path = routes::MODEL, tag = "federations",
    params(FedPath), security(("bearer" = [])),
    request_body(content_type = "application/octet-stream", description = "F32 frame for round 0 with vector_len values"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Bad id or frame", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 409, description = "A round has already run", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/octet-stream", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn put_model(
    State(app): AppState,
    caller: Caller<access::Admin, FedPath>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let fid = caller.path.fid;
    require_octet(&headers)?;
    let a = app.clone();
    let limit = blocking(move || a.model_limit(fid)).await?;
    let body = read_body(&headers, body, limit).await?;
    blocking(move || app.set_initial_model(fid, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A single-use enrollment code for a participant or the key holder.
#[utoipa::path(post, path = routes::ENROLLMENT_CODES, tag = "enrollment",
    params(FedPath), request_body = EnrollmentCodeRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "The code, shown once", body = EnrollmentCode),
        (status = 400, description = "Bad id or body", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 409, description = "A participant code of a Paillier or lattice federation before its key is published (the code pins the key)", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A code for the admin role", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn create_code(
    State(app): AppState,
    caller: Caller<access::Admin, FedPath>,
    body: JsonBody<EnrollmentCodeRequest>,
) -> Result<(StatusCode, Json<EnrollmentCode>), ApiError> {
    let fid = caller.path.fid;
    let req = body?.0;
    let code = blocking(move || app.enrollment_code(fid, req.role, req.label.as_deref())).await?;
    Ok((StatusCode::CREATED, Json(code)))
}

/// Redeem an enrollment code for a bearer token (no token needed: the code is the credential).
#[utoipa::path(post, path = routes::ENROLL, tag = "enrollment",
    request_body = EnrollRequest,
    responses(
        (status = 201, description = "Enrolled; the token is shown once", body = Enrolled),
        (status = 400, description = "The body is not an EnrollRequest", body = ErrorBody),
        (status = 401, description = "Unknown or already used code", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "An identity key that is not an Ed25519 point", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn enroll(
    State(app): AppState,
    body: JsonBody<EnrollRequest>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let req = body?.0;
    let e = blocking(move || app.enroll(&req.code, req.identity_key.as_deref())).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// Replace a participant's token: the admin for anyone, a participant for itself.
#[utoipa::path(post, path = routes::TOKEN, tag = "enrollment",
    params(ParticipantPath), security(("bearer" = [])),
    responses(
        (status = 200, description = "The new token, shown once; the old one no longer works", body = Enrolled),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Neither the admin nor that participant", body = ErrorBody),
        (status = 404, description = "No such participant in the federation", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn rotate_token(
    State(app): AppState,
    caller: Caller<access::SelfOrAdmin, ParticipantPath>,
) -> Result<Json<Enrolled>, ApiError> {
    let ParticipantPath { fid, pid } = caller.path;
    Ok(Json(blocking(move || app.rotate_token(fid, pid)).await?))
}

/// Publish the key holder's public key (Paillier or lattice federations), outside rounds.
#[utoipa::path(put, path = routes::PUBLIC_KEY, tag = "enrollment",
    params(FedPath), request_body = PublicKeyBody, security(("bearer" = [])),
    responses(
        (status = 204, description = "Published"),
        (status = 400, description = "Bad id, body or key", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the federation's key holder", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 409, description = "A round is open, or the mode has no key holder", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A key too weak or of the wrong shape for the federation", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn put_public_key(
    State(app): AppState,
    caller: Caller<access::KeyHolder, FedPath>,
    body: JsonBody<PublicKeyBody>,
) -> Result<StatusCode, ApiError> {
    let fid = caller.path.fid;
    let body = body?.0;
    blocking(move || app.set_public_key(fid, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The key holder's public key, in the field of the federation's mode.
#[utoipa::path(get, path = routes::PUBLIC_KEY, tag = "enrollment",
    params(FedPath), security(("bearer" = [])),
    responses(
        (status = 200, description = "The key", body = PublicKeyBody),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin nor a member", body = ErrorBody),
        (status = 404, description = "No such federation, or no key published yet", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn get_public_key(
    State(app): AppState,
    caller: Caller<access::Reader, FedPath>,
) -> Result<Json<PublicKeyBody>, ApiError> {
    let fid = caller.path.fid;
    Ok(Json(blocking(move || app.public_key(fid)).await?))
}

/// The federation's roster: who enrolled with which identity key, and the roster its enrollment
/// authority signed last.
#[utoipa::path(get, path = routes::ROSTER, tag = "enrollment",
    params(FedPath), security(("bearer" = [])),
    responses(
        (status = 200, description = "The roster", body = Roster),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin nor a member", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn get_roster(
    State(app): AppState,
    caller: Caller<access::Reader, FedPath>,
) -> Result<Json<Roster>, ApiError> {
    let fid = caller.path.fid;
    Ok(Json(blocking(move || app.roster(fid)).await?))
}

/// Store a roster signed by the federation's enrollment authority (checked against its
/// `roster_authority` and the enrolled identity keys); it replaces the previous one.
#[utoipa::path(put, path = routes::ROSTER, tag = "enrollment",
    params(FedPath), request_body = SignedRoster, security(("bearer" = [])),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Bad id or body", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "No such federation", body = ErrorBody),
        (status = 408, description = "The body did not arrive in time", body = ErrorBody),
        (status = 409, description = "The federation has no roster authority", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "The signature does not verify, or a member is not enrolled with that key", body = ErrorBody),
        (status = 500, description = "The store failed (for example, a full disk); nothing was changed, retry", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody)))]
pub(crate) async fn put_roster(
    State(app): AppState,
    caller: Caller<access::Admin, FedPath>,
    body: JsonBody<SignedRoster>,
) -> Result<StatusCode, ApiError> {
    let fid = caller.path.fid;
    let body = body?.0;
    blocking(move || app.set_roster(fid, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}
