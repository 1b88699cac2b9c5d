//! What operators list and report: the federations, a federation's rounds, and the metrics an
//! operator reports on a round's model (which the dashboard charts beside the privacy spent).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Federation, RoundInfo};

/// Every federation of the service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FederationList {
    /// Ascending by id.
    pub federations: Vec<Federation>,
}

/// Figures an operator measured on the model a round produced (for example on a held-out set).
/// The server stores and shows them; it cannot check them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundMetrics {
    /// Accuracy, a fraction from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub accuracy: Option<f64>,
    /// Loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1e12)]
    pub loss: Option<f64>,
}

impl RoundMetrics {
    /// Refuse values out of range (JSON has no NaN, but it has 1e400, which parses as infinity).
    pub fn check(&self) -> Result<(), String> {
        if let Some(a) = self.accuracy.filter(|a| !(0.0..=1.0).contains(a)) {
            return Err(format!("accuracy must be a fraction from 0 to 1, not {a}"));
        }
        if let Some(l) = self.loss.filter(|l| !(0.0..=1e12).contains(l)) {
            return Err(format!("loss must be from 0 to 1e12, not {l}"));
        }
        Ok(())
    }
}

/// One round of a federation's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoundSummary {
    /// The round as the admin sees it (live while it is open).
    pub info: RoundInfo,
    /// When it opened, in milliseconds since the Unix epoch.
    pub opened_ms: i64,
    /// What the operator reported on its model, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<RoundMetrics>,
}

/// A page of a federation's rounds, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoundList {
    /// Newest first.
    pub rounds: Vec<RoundSummary>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metrics_out_of_range_or_unknown_are_refused() {
        let m = |a: Option<f64>, l: Option<f64>| RoundMetrics {
            accuracy: a,
            loss: l,
        };
        assert!(m(Some(0.9), Some(0.3)).check().is_ok());
        assert!(m(None, None).check().is_ok());
        assert!(m(Some(1.5), None).check().is_err());
        assert!(m(Some(-0.1), None).check().is_err());
        assert!(m(None, Some(-1.0)).check().is_err());
        assert!(m(None, Some(f64::INFINITY)).check().is_err());
        assert!(serde_json::from_str::<RoundMetrics>(r#"{"acc": 0.5}"#).is_err());
        let back: RoundMetrics = serde_json::from_str(r#"{"accuracy": 0.5}"#).unwrap();
        assert_eq!(back, m(Some(0.5), None));
    }
}
