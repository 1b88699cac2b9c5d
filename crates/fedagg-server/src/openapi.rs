//! The OpenAPI 3.1 document, generated from the API types (`fedagg-api`'s schemas) and the
//! handlers' annotations: the server serves it at `/v1/openapi.json`, and `docs/openapi.json`
//! is this document (a test fails when it is not current; `scripts/api-reference.py` rewrites
//! it and `docs/api.md`).

use std::sync::OnceLock;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fedagg",
        description = "Privacy-preserving aggregation for federated learning. JSON for control \
            messages, application/octet-stream frames for vectors. Every error is \
            {error, detail} with a 4xx/5xx status. Ids in paths lie in 1..=2^63-1.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        routes::health,
        routes::openapi,
        routes::metrics,
        routes::dashboard,
        routes::dashboard_js,
        routes::dashboard_css,
        routes::create_federation,
        routes::list_federations,
        routes::get_federation,
        routes::get_model,
        routes::get_controls,
        routes::put_model,
        routes::put_server_optimizer,
        routes::create_code,
        routes::enroll,
        routes::rotate_token,
        routes::put_public_key,
        routes::get_public_key,
        routes::get_roster,
        routes::put_roster,
        routes::open_round,
        routes::list_rounds,
        routes::current_round,
        routes::get_round,
        routes::put_round_metrics,
        routes::submit,
        routes::inbox,
    ),
    modifiers(&Finish),
    tags(
        (name = "service", description = "Health, this document, metrics and the dashboard"),
        (name = "federations", description = "Federations and their models"),
        (name = "enrollment", description = "Enrollment codes, tokens and the key holder's key"),
        (name = "rounds", description = "Rounds, submissions and inboxes"),
    )
)]
struct ApiDoc;

/// What the annotations cannot say: the `bearer` security scheme the authenticated operations
/// name, and that every request body is required.
struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.put, &mut item.post].into_iter().flatten() {
                if let Some(body) = &mut op.request_body {
                    body.required = Some(utoipa::openapi::Required::True);
                }
            }
        }
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc
}

/// The document as pretty-printed JSON with a final newline, computed once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut s = document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    })
}
