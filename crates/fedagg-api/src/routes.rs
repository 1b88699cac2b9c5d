//! Every route of the REST API, written once: the router declares these templates and the SDK
//! fills the same templates with [`fill`], so no route string is written twice.

use std::fmt::Display;

/// `GET`: liveness and version.
pub const HEALTH: &str = "/v1/health";
/// `GET`: the OpenAPI document.
pub const OPENAPI: &str = "/v1/openapi.json";
/// `GET`: Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// `GET`: the dashboard's page (it reads the admin API with the admin token).
pub const DASHBOARD: &str = "/dashboard";
/// `GET`: the dashboard's script.
pub const DASHBOARD_JS: &str = "/dashboard/app.js";
/// `GET`: the dashboard's style sheet.
pub const DASHBOARD_CSS: &str = "/dashboard/app.css";
/// `POST`: create a federation; `GET`: every federation.
pub const FEDERATIONS: &str = "/v1/federations";
/// `GET`: a federation.
pub const FEDERATION: &str = "/v1/federations/{fid}";
/// `GET` a model version, `PUT` the initial model.
pub const MODEL: &str = "/v1/federations/{fid}/model";
/// `GET`: SCAFFOLD's server control variate stored with a model version.
pub const CONTROLS: &str = "/v1/federations/{fid}/controls";
/// `PUT`: the server optimizer (between rounds).
pub const SERVER_OPTIMIZER: &str = "/v1/federations/{fid}/server-optimizer";
/// `POST`: an enrollment code.
pub const ENROLLMENT_CODES: &str = "/v1/federations/{fid}/enrollment-codes";
/// `POST`: redeem an enrollment code.
pub const ENROLL: &str = "/v1/enroll";
/// `POST`: rotate a participant's token.
pub const TOKEN: &str = "/v1/federations/{fid}/participants/{pid}/token";
/// `GET` or `PUT`: the key holder's public key.
pub const PUBLIC_KEY: &str = "/v1/federations/{fid}/public-key";
/// `GET` the roster (who enrolled with which identity key, and the signed roster), or `PUT` a
/// roster the enrollment authority signed.
pub const ROSTER: &str = "/v1/federations/{fid}/roster";
/// `POST`: open a round; `GET`: the rounds, newest first.
pub const ROUNDS: &str = "/v1/federations/{fid}/rounds";
/// `GET`: the open or latest round (long poll).
pub const CURRENT_ROUND: &str = "/v1/federations/{fid}/rounds/current";
/// `GET`: a round (long poll).
pub const ROUND: &str = "/v1/federations/{fid}/rounds/{round}";
/// `PUT`: the metrics an operator reports on a round's model.
pub const ROUND_METRICS: &str = "/v1/federations/{fid}/rounds/{round}/metrics";
/// `POST`: a submission (a frame).
pub const SUBMISSIONS: &str = "/v1/federations/{fid}/rounds/{round}/submissions";
/// `GET`: the server's message for the caller in the current phase (a frame).
pub const INBOX: &str = "/v1/federations/{fid}/rounds/{round}/inbox";

/// Every route.
pub const ALL: [&str; 22] = [
    HEALTH,
    OPENAPI,
    METRICS,
    DASHBOARD,
    DASHBOARD_JS,
    DASHBOARD_CSS,
    FEDERATIONS,
    FEDERATION,
    MODEL,
    CONTROLS,
    SERVER_OPTIMIZER,
    ENROLLMENT_CODES,
    ENROLL,
    TOKEN,
    PUBLIC_KEY,
    ROSTER,
    ROUNDS,
    CURRENT_ROUND,
    ROUND,
    ROUND_METRICS,
    SUBMISSIONS,
    INBOX,
];

/// A template with its `{name}` placeholders replaced by `args`, in order (missing arguments
/// leave the placeholder; extra ones are ignored).
pub fn fill(template: &str, args: &[&(dyn Display + Sync)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    let mut args = args.iter();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        match args.next() {
            Some(a) => out.push_str(&a.to_string()),
            None => out.push_str(&rest[open..open + close + 1]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_placeholders_in_order() {
        assert_eq!(fill(ROUND, &[&3, &7]), "/v1/federations/3/rounds/7");
        assert_eq!(fill(HEALTH, &[]), HEALTH);
        assert_eq!(fill(INBOX, &[&1]), "/v1/federations/1/rounds/{round}/inbox");
    }
}
