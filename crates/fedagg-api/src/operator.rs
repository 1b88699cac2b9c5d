//! What operators list, report and set: the federations, a federation's rounds, the metrics an
//! operator reports on a round's model (which the dashboard charts beside the privacy spent),
//! and the server optimizer a federation applies to each round's aggregate.

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
// (deny_unknown_fields only documents what try_from enforces: no other field.)
#[serde(
    try_from = "serde_json::Map<String, serde_json::Value>",
    deny_unknown_fields
)]
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

/// Only a JSON object, with no other field (serde would also take an array of the values).
impl TryFrom<serde_json::Map<String, serde_json::Value>> for RoundMetrics {
    type Error = String;

    fn try_from(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let mut m = RoundMetrics {
            accuracy: None,
            loss: None,
        };
        for (key, value) in map {
            let x = match &value {
                serde_json::Value::Null => None,
                v => Some(
                    v.as_f64()
                        .ok_or_else(|| format!("{key} must be a number"))?,
                ),
            };
            match key.as_str() {
                "accuracy" => m.accuracy = x,
                "loss" => m.loss = x,
                other => return Err(format!("unknown field `{other}`: accuracy or loss")),
            }
        }
        Ok(m)
    }
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

/// The server optimizer a federation applies to each round's aggregate (the weighted mean of the
/// participants' updates), in every mode: in the DP modes it acts on the noised aggregate, so it
/// spends no privacy. Its state (momentum, moments) is kept beside the model. Without one, a
/// federation applies FedAvg with the spec's `server_lr`. See `fedagg_optim` for the updates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerOptimizer {
    /// `w += lr * delta`.
    Fedavg {
        /// Server learning rate.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        lr: f64,
    },
    /// Server momentum: `m = momentum * m + delta; w += lr * m`.
    Fedavgm {
        /// Server learning rate.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        lr: f64,
        /// Momentum.
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        momentum: f64,
    },
    /// FedAdam (Reddi et al. 2021).
    Fedadam {
        /// Server learning rate.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        lr: f64,
        /// First-moment decay.
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        beta1: f64,
        /// Second-moment decay.
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        beta2: f64,
        /// Adaptivity.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        tau: f64,
    },
    /// FedYogi (Reddi et al. 2021).
    Fedyogi {
        /// Server learning rate.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        lr: f64,
        /// First-moment decay.
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        beta1: f64,
        /// Second-moment decay.
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        beta2: f64,
        /// Adaptivity.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        tau: f64,
    },
}

impl ServerOptimizer {
    /// The optimizer `fedagg_optim` runs.
    pub fn to_optim(self) -> fedagg_optim::ServerOptimizer {
        use fedagg_optim::ServerOptimizer as O;
        match self {
            ServerOptimizer::Fedavg { lr } => O::FedAvg { lr },
            ServerOptimizer::Fedavgm { lr, momentum } => O::FedAvgM { lr, momentum },
            ServerOptimizer::Fedadam {
                lr,
                beta1,
                beta2,
                tau,
            } => O::FedAdam {
                lr,
                beta1,
                beta2,
                tau,
            },
            ServerOptimizer::Fedyogi {
                lr,
                beta1,
                beta2,
                tau,
            } => O::FedYogi {
                lr,
                beta1,
                beta2,
                tau,
            },
        }
    }

    /// The wire form of a `fedagg_optim` optimizer.
    pub fn of(opt: fedagg_optim::ServerOptimizer) -> ServerOptimizer {
        use fedagg_optim::ServerOptimizer as O;
        match opt {
            O::FedAvg { lr } => ServerOptimizer::Fedavg { lr },
            O::FedAvgM { lr, momentum } => ServerOptimizer::Fedavgm { lr, momentum },
            O::FedAdam {
                lr,
                beta1,
                beta2,
                tau,
            } => ServerOptimizer::Fedadam {
                lr,
                beta1,
                beta2,
                tau,
            },
            O::FedYogi {
                lr,
                beta1,
                beta2,
                tau,
            } => ServerOptimizer::Fedyogi {
                lr,
                beta1,
                beta2,
                tau,
            },
        }
    }

    /// Refuse hyperparameters out of range.
    pub fn check(&self) -> Result<(), String> {
        self.to_optim().check()
    }

    /// The optimizer `fedavg`, `fedavgm`, `fedadam` or `fedyogi` with Reddi et al.'s defaults,
    /// or `NAME:LR` with another learning rate (`fedagg_optim`'s names).
    pub fn from_name(name: &str) -> Result<ServerOptimizer, String> {
        name.parse().map(ServerOptimizer::of)
    }

    /// The same optimizer with server learning rate `lr`.
    pub fn with_lr(self, lr: f64) -> ServerOptimizer {
        ServerOptimizer::of(self.to_optim().with_lr(lr))
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
        assert!(serde_json::from_str::<RoundMetrics>("[null, null]").is_err());
        assert!(serde_json::from_str::<RoundMetrics>(r#"{"loss": "x"}"#).is_err());
        let back: RoundMetrics = serde_json::from_str(r#"{"accuracy": 0.5}"#).unwrap();
        assert_eq!(back, m(Some(0.5), None));
    }

    #[test]
    fn server_optimizers_round_trip_to_fedagg_optim_and_are_checked() {
        for name in ["fedavg", "fedavgm", "fedadam", "fedyogi"] {
            let o: fedagg_optim::ServerOptimizer = name.parse().unwrap();
            let wire = ServerOptimizer::of(o);
            assert_eq!(wire.to_optim(), o);
            let json = serde_json::to_value(wire).unwrap();
            assert_eq!(json["kind"], name);
            assert!(wire.check().is_ok());
        }
        let adam = ServerOptimizer::from_name("fedadam").unwrap().with_lr(0.3);
        assert!(
            matches!(adam, ServerOptimizer::Fedadam { lr, beta2, .. } if lr == 0.3 && beta2 == 0.99)
        );
        assert_eq!(ServerOptimizer::from_name("fedadam:0.3"), Ok(adam));
        assert!(ServerOptimizer::from_name("sgd").is_err());
        assert!(ServerOptimizer::from_name("fedadam:fast").is_err());
        let bad: ServerOptimizer =
            serde_json::from_str(r#"{"kind": "fedavgm", "lr": 1.0, "momentum": 1.5}"#).unwrap();
        assert!(bad.check().is_err());
    }
}
