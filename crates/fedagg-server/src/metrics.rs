//! Prometheus text exposition of the service's counters, gauges and request-duration histogram,
//! without a metrics framework: maps from series (name and labels) to values, rendered on
//! `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counter and gauge series, and histograms.
#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(&'static str, String), f64>>,
    histograms: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

/// Upper bounds (seconds) of the request-duration buckets: from a loopback round trip to a long
/// poll's full wait.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// One histogram series: counts per bucket (not cumulative), sum and count.
#[derive(Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    sum: f64,
    count: u64,
}

const HISTOGRAMS: &[(&str, &str)] = &[(
    "fedagg_http_request_duration_seconds",
    "Time from a request's headers to its response's headers, by method and route",
)];

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

    /// Record one observation of a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&str, &str)], v: f64) {
        let mut histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let h = histograms.entry((name, labels(pairs))).or_default();
        if let Some(i) = DURATION_BUCKETS.iter().position(|le| v <= *le) {
            h.buckets[i] += 1;
        }
        h.sum += v;
        h.count += 1;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        {
            let histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
            for (name, help) in HISTOGRAMS {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
                for ((_, l), h) in histograms.iter().filter(|((n, _), _)| n == name) {
                    let mut cumulative = 0;
                    for (le, c) in DURATION_BUCKETS.iter().zip(h.buckets) {
                        cumulative += c;
                        out.push_str(&format!("{name}_bucket{{{l},le=\"{le}\"}} {cumulative}\n"));
                    }
                    out.push_str(&format!("{name}_bucket{{{l},le=\"+Inf\"}} {}\n", h.count));
                    out.push_str(&format!("{name}_sum{{{l}}} {}\n", h.sum));
                    out.push_str(&format!("{name}_count{{{l}}} {}\n", h.count));
                }
            }
        }
        let series = self.lock();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let m = Metrics::default();
        let name = "fedagg_http_request_duration_seconds";
        for v in [0.0001, 0.003, 0.003, 7.0, 1000.0] {
            m.observe(name, &[("route", "/r")], v);
        }
        let text = m.render();
        let value = |le: &str| {
            let prefix = format!("{name}_bucket{{route=\"/r\",le=\"{le}\"}} ");
            let line = text.lines().find(|l| l.starts_with(&prefix));
            line.and_then(|l| l[prefix.len()..].parse::<u64>().ok())
        };
        assert_eq!(value("0.0005"), Some(1));
        assert_eq!(value("0.0025"), Some(1));
        assert_eq!(value("0.005"), Some(3));
        assert_eq!(value("5"), Some(3));
        assert_eq!(value("10"), Some(4));
        assert_eq!(value("60"), Some(4));
        assert_eq!(value("+Inf"), Some(5));
        assert!(text.contains(&format!("{name}_count{{route=\"/r\"}} 5\n")));
        assert!(text.contains(&format!("# TYPE {name} histogram\n")));
    }
}
