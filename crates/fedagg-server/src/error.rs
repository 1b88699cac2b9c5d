//! The one error type of the service, and its mapping to an HTTP status and a JSON
//! `{error, detail}` body. Client errors pass their reason through; internal errors are logged
//! and answered with a generic message.
//!
//! This is the only place that decides statuses: the round engine ([`RoundError`]) and the store
//! ([`StoreError`]) say what went wrong in their own terms, and the `From` impls below map them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fedagg_api::ErrorBody;
use fedagg_round::RoundError;

use crate::store::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable kind.
    pub kind: &'static str,
    /// What was wrong.
    pub detail: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            detail: detail.into(),
        }
    }
    /// 400: the request is malformed (bad JSON, bad frame, wrong length, refused by a protocol
    /// decoder).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }
    /// 401: no or unknown bearer token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    /// 403: the token's role or federation does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    /// 409: the state forbids it (a round already open, a budget exhausted, too few members).
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    /// 413: body over the limit.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }
    /// 415: wrong content type.
    pub fn unsupported_media(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            detail,
        )
    }
    /// 422: well-formed but invalid parameters.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
    }
    /// 500: our fault; the detail is logged, not sent.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
    /// 408: the request body did not arrive in time.
    pub fn timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", detail)
    }
    /// 503 whose detail is sent: a condition the caller should know of (over capacity).
    pub fn unavailable_now(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "over_capacity", detail)
    }
    /// 503: shutting down, or the store is unreachable; the detail is logged, not sent.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.kind,
            self.detail
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Server-side failures are logged, never sent: their detail can name the database, its
        // host or its error text, and the caller may not even be authenticated.
        let detail = if self.kind == "over_capacity" {
            self.detail
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(detail = %self.detail, "unavailable");
            "the service is unavailable; retry shortly".to_string()
        } else if self.status.is_server_error() {
            tracing::error!(detail = %self.detail, "internal error");
            "internal error; the server log has the details".to_string()
        } else {
            self.detail
        };
        (
            self.status,
            Json(ErrorBody {
                error: self.kind.to_string(),
                detail,
            }),
        )
            .into_response()
    }
}

/// axum's own rejections (bad JSON, body over the limit, bad path or query) in our JSON shape.
/// Whether an error was caused by a request body's deadline passing.
pub(crate) fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<crate::serve::BodyTimeout>() {
            return Some(t.to_string());
        }
        cur = err.source();
    }
    None
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if let Some(t) = body_timed_out(&r) {
            return ApiError::timeout(t);
        }
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large(r.body_text());
        }
        if r.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return ApiError::unsupported_media(r.body_text());
        }
        ApiError::bad_request(r.body_text())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("request body exceeds the configured limit")
        } else {
            ApiError::bad_request(r.body_text())
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<RoundError> for ApiError {
    fn from(e: RoundError) -> Self {
        let status = match &e {
            RoundError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RoundError::Malformed(_) => StatusCode::BAD_REQUEST,
            RoundError::Forbidden(_) => StatusCode::FORBIDDEN,
            RoundError::WrongPhase(_) | RoundError::Duplicate(_) | RoundError::Conflict(_) => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.kind(), e.detail())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(d) => ApiError::conflict(d),
            StoreError::NotFound(d) => ApiError::not_found(d),
            StoreError::Unavailable(d) => ApiError::unavailable(d),
            StoreError::Config(d) => ApiError::invalid(d),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<fedagg_api::FrameError> for ApiError {
    fn from(e: fedagg_api::FrameError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn body(e: ApiError) -> (StatusCode, ErrorBody) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn server_side_details_stay_in_the_log() {
        let db = StoreError::Unavailable(
            "connecting to 10.1.2.3:5432: password authentication failed".into(),
        );
        let (status, b) = body(db.into()).await;
        assert_eq!(
            (status, b.error.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        assert!(
            !b.detail.contains("10.1.2.3") && !b.detail.contains("password"),
            "{}",
            b.detail
        );
        let (status, b) = body(ApiError::internal("disk I/O error at /var/lib/fedagg")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!b.detail.contains("/var/lib"), "{}", b.detail);
        // Client errors keep their reason.
        let (_, b) = body(ApiError::conflict("a round is open")).await;
        assert_eq!(b.detail, "a round is open");
    }
}
