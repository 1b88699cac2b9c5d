//! Prometheus text exposition of the service's counters and gauges, without a metrics framework:
//! a map from series (name and labels) to value, rendered on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counter and gauge series.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(&'static str, String), f64>>,
}

const HELP: &[(&str, &str, &str)] = &[
    (
        "fedagg_http_requests_total",
        "counter",
        "HTTP requests by method, route and status",
    ),
    (
        "fedagg_bytes_received_total",
        "counter",
        "Bytes of accepted submissions",
    ),
    (
        "fedagg_submissions_total",
        "counter",
        "Accepted submissions by mode and phase",
    ),
    (
        "fedagg_phase_duration_seconds_sum",
        "counter",
        "Total time spent in each phase",
    ),
    (
        "fedagg_phase_duration_seconds_count",
        "counter",
        "Phases closed",
    ),
    (
        "fedagg_dropouts_total",
        "counter",
        "Cohort members missing from finished aggregates",
    ),
    (
        "fedagg_rounds_completed_total",
        "counter",
        "Rounds that produced a model",
    ),
    (
        "fedagg_rounds_failed_total",
        "counter",
        "Rounds that failed",
    ),
    (
        "fedagg_epsilon_spent",
        "gauge",
        "Privacy spent so far per federation (DP mode)",
    ),
    ("fedagg_open_rounds", "gauge", "Rounds in progress"),
];

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    inner.join(",")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(&'static str, String), f64>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add to a counter.
    pub fn add(&self, name: &'static str, pairs: &[(&str, &str)], v: f64) {
        *self.lock().entry((name, labels(pairs))).or_default() += v;
    }

    /// Set a gauge.
    pub fn set(&self, name: &'static str, pairs: &[(&str, &str)], v: f64) {
        self.lock().insert((name, labels(pairs)), v);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let series = self.lock();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for ((n, l), v) in series.iter() {
                if n == name {
                    if l.is_empty() {
                        out.push_str(&format!("{n} {v}\n"));
                    } else {
                        out.push_str(&format!("{n}{{{l}}} {v}\n"));
                    }
                }
            }
        }
        out
    }
}
