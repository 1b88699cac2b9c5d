//! The dashboard: a read-only page for operators, served as static HTML, JavaScript and CSS
//! embedded in the binary (no CDN, nothing fetched from elsewhere). The files hold no data: the
//! page asks for the admin token and reads everything from the admin API with it, so serving
//! them needs no token. A strict Content-Security-Policy allows only these files and requests to
//! this server.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use fedagg_api::{routes, ErrorBody};

const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");

/// Only this server's own script, style and API; no framing, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The dashboard page (it reads the admin API with the admin token the operator gives it).
#[utoipa::path(get, path = routes::DASHBOARD, tag = "service",
    responses(
        (status = 200, description = "The dashboard's HTML", content_type = "text/html"),
        (status = 405, description = "Not GET", body = ErrorBody)))]
pub(crate) async fn dashboard() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// The dashboard's script.
#[utoipa::path(get, path = routes::DASHBOARD_JS, tag = "service",
    responses(
        (status = 200, description = "JavaScript", content_type = "text/javascript"),
        (status = 405, description = "Not GET", body = ErrorBody)))]
pub(crate) async fn dashboard_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

/// The dashboard's style sheet.
#[utoipa::path(get, path = routes::DASHBOARD_CSS, tag = "service",
    responses(
        (status = 200, description = "CSS", content_type = "text/css"),
        (status = 405, description = "Not GET", body = ErrorBody)))]
pub(crate) async fn dashboard_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}
