//! The OpenAPI document against the running server: the served document is `docs/openapi.json`;
//! every (route, method) the router serves is documented and every other method is refused with
//! 405; and every status the server answered (its `fedagg_http_requests_total` metric counts
//! them by method, route template and status) is listed for that operation.

use std::collections::BTreeSet;

use super::*;

/// `docs/openapi.json`.
pub(super) fn document() -> serde_json::Value {
    // (the manifest folder at run time, as cargo and nextest set it)
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn documented(doc: &serde_json::Value, method: &str, route: &str) -> Option<BTreeSet<u16>> {
    let op = doc["paths"][route][method.to_lowercase()].as_object()?;
    Some(
        op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect(),
    )
}

/// Every status `srv` has answered so far is documented for its operation.
pub(super) async fn assert_statuses_documented(srv: &Srv) {
    let doc = document();
    let metrics = metrics_text(srv).await;
    let label = |line: &str, name: &str| -> String {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        line[start..start + line[start..].find('"').unwrap()].to_string()
    };
    let mut seen = 0;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("fedagg_http_requests_total{"))
    {
        let (method, route) = (label(line, "method"), label(line, "route"));
        let status: u16 = label(line, "status").parse().unwrap();
        if route == "unmatched" {
            assert_eq!(status, 404, "{line}");
            continue;
        }
        match documented(&doc, &method, &route) {
            Some(statuses) => assert!(
                statuses.contains(&status),
                "{method} {route} answered {status}, which the document does not list ({statuses:?})"
            ),
            None => assert_eq!(status, 405, "{method} {route} is served but not documented"),
        }
        seen += 1;
    }
    assert!(seen > 0, "no requests counted:\n{metrics}");
}

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "PATCH", "DELETE"];

/// Requests that try every way in: valid and invalid ids, each kind of token, bad bodies and
/// queries, on every route and method.
async fn probe(srv: &Srv, fid: i64, pid: i64, member: &str, foreign: &str, limit: usize) {
    // No connection reuse: a connection the server closed after refusing an oversized body
    // must not carry the next request.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let doc = document();
    let fill = |route: &str, id: &str| {
        route
            .replace("{fid}", id)
            .replace("{round}", id)
            .replace("{pid}", id)
    };
    let good = |route: &str| {
        route
            .replace("{fid}", &fid.to_string())
            .replace("{round}", "1")
            .replace("{pid}", &pid.to_string())
    };
    for route in fedagg_api::routes::ALL {
        for method in METHODS {
            let is_doc = documented(&doc, method, route).is_some();
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let mut paths: Vec<String> = vec![good(route)];
            if route.contains('{') {
                for id in ["0", "-1", "9223372036854775808", "x", "999999"] {
                    paths.push(fill(route, id));
                }
            }
            let tokens = [
                None,
                Some("ft_unknown"),
                Some(ADMIN),
                Some(member),
                Some(foreign),
            ];
            let bodies: [(Option<&str>, Vec<u8>); 5] = [
                (None, vec![]),
                (Some("application/json"), b"{\"name\": 3}".to_vec()),
                (
                    Some("application/json"),
                    b"{\"code\": \"fe_x\", \"role\": \"admin\"}".to_vec(),
                ),
                (Some("application/octet-stream"), b"not a frame".to_vec()),
                (Some("text/plain"), vec![b'a'; limit + 1]),
            ];
            for (i, path) in paths.iter().enumerate() {
                for (j, token) in tokens.iter().enumerate() {
                    for (k, (ctype, body)) in bodies.iter().enumerate() {
                        // Valid ids get every token and body; the others the admin's, empty.
                        if i > 0 && (j != 2 || k > 0) {
                            continue;
                        }
                        for query in ["", "?version=-1&wait=99999&after=x", "?version=0&after=0"] {
                            if k > 0 && !query.is_empty() {
                                continue;
                            }
                            let mut req =
                                http.request(m.clone(), format!("{}{path}{query}", srv.base));
                            if let Some(t) = token {
                                req = req.bearer_auth(t);
                            }
                            if let Some(c) = ctype {
                                req = req.header("content-type", *c).body(body.clone());
                            }
                            let r = match req.send().await {
                                Ok(r) => r,
                                // The server may answer (and close) before taking all of an
                                // oversized body; its metric still counts the status.
                                Err(e) if k == 4 => {
                                    assert!(e.is_request(), "{method} {path}: {e}");
                                    continue;
                                }
                                Err(e) => panic!("{method} {path}{query}: {e}"),
                            };
                            let status = r.status().as_u16();
                            if !is_doc {
                                assert_eq!(status, 405, "{method} {path}: not documented");
                            }
                            if status >= 400 {
                                let e: fedagg_api::ErrorBody = r.json().await.unwrap_or_else(|e| {
                                    panic!("{method} {path}{query}: {status} without a JSON error body: {e}")
                                });
                                assert!(!e.error.is_empty());
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn the_document_is_current_and_lists_every_route_and_status(store: Store) {
    let limit = 1 << 16;
    let srv = start(store, limit).await;
    let (s, body) = srv
        .admin
        .raw(Method::GET, fedagg_api::routes::OPENAPI, None, None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        served == document(),
        "docs/openapi.json is not the served document: run scripts/api-reference.py"
    );
    // Every route template is documented, with its path parameters.
    for route in fedagg_api::routes::ALL {
        let item = served["paths"][route].as_object();
        assert!(item.is_some(), "{route} is not in the document");
    }
    // A federation with an open round, a member of it, and a member of another one.
    let fed = srv
        .admin
        .create_federation(&spec(dp_mode(), 4, 3, 30))
        .await
        .unwrap();
    let other = srv
        .admin
        .create_federation(&spec(dp_mode(), 4, 3, 30))
        .await
        .unwrap();
    let member = token_of(&srv, fed.id).await;
    token_of(&srv, fed.id).await;
    let foreign = token_of(&srv, other.id).await;
    let pid = srv.admin.federation(fed.id).await.unwrap().participants as i64 + 10;
    probe(&srv, fed.id, pid, &member, &foreign, limit).await;
    assert_statuses_documented(&srv).await;
}
