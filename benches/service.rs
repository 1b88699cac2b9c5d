//! One round over loopback per mode and model size: a real `fedagg serve` process with its
//! default limits and timeouts, and n SDK clients in this process, all contributing at once.
//! Reports, per round:
//! - the server's wall time for the round (open to end);
//! - p50 and p99 request latency (the server's `fedagg_http_request_duration_seconds` histogram,
//!   interpolated within its buckets as Prometheus' `histogram_quantile` does), over every
//!   request but the long polls, and over the submissions alone;
//! - the server process's CPU seconds during the round (`/proc/<pid>/stat`), and its peak
//!   resident memory (VmHWM);
//! - the requests the server refused (any status of 400 or above) during the round;
//! - bytes received per client against a plain f32 upload.
//!
//! Each round is checked: SecAgg and Paillier give the weighted mean within the quantization
//! step, and DP the mean plus noise of the configured standard deviation.
//!
//! Not a criterion bench: one round is one long measurement. `cargo bench --bench service` runs
//! the full table (minutes); `-- load` runs the load rows (1,000 participants: SecAgg+ at
//! m = 10^4, DP at m = 10^5); `-- --test` or `FEDAGG_BENCH_QUICK=1` runs a small smoke round.
//! `FEDAGG_BENCH_CLIENTS=25,100` and `FEDAGG_BENCH_SIZES=1000000` choose the grid (several client
//! counts show that server memory does not grow with n); `FEDAGG_BENCH_MODES=dp,secagg` the modes
//! (`secagg-malicious`: SecAgg against a malicious server, with the roster's signing and
//! verification timed).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fedagg_api::{routes, FederationSpec, Mode, Role, RoundStatus};
use fedagg_client::{Admin, Client, KeyHolder};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[path = "../tests/support/serve.rs"]
mod serve;

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    // (VmHWM: the peak since the process started)
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user and system) the process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends at the last ')'): utime and stime are the 12th
    // and 13th, in clock ticks (100 a second on Linux).
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    match (fields.get(11), fields.get(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// What the bench reads from `/metrics`: per request class, the duration histogram's bucket
/// counts (cumulative, one per `DURATION_BUCKETS` bound and +Inf), and the refused requests.
#[derive(Default, Clone)]
struct Scrape {
    /// Every request but the long polls on a round.
    all: Vec<f64>,
    /// Submissions.
    submissions: Vec<f64>,
    refused: f64,
}

async fn scrape(base: &str) -> Scrape {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = Scrape {
        all: vec![0.0; BOUNDS.len() + 1],
        submissions: vec![0.0; BOUNDS.len() + 1],
        refused: 0.0,
    };
    let long_polls = [
        format!("method=\"GET\",route=\"{}\"", routes::ROUND),
        format!("method=\"GET\",route=\"{}\"", routes::CURRENT_ROUND),
    ];
    let submissions = format!("method=\"POST\",route=\"{}\"", routes::SUBMISSIONS);
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        if let Some(labels) = series.strip_prefix("fedagg_http_request_duration_seconds_bucket{") {
            let Some((labels, le)) = labels.trim_end_matches('}').rsplit_once(",le=") else {
                continue;
            };
            let le = le.trim_matches('"');
            let i = BOUNDS
                .iter()
                .position(|b| b.to_string() == le)
                .unwrap_or(BOUNDS.len());
            if !long_polls.iter().any(|p| p == labels) {
                out.all[i] += value;
            }
            if labels == submissions {
                out.submissions[i] += value;
            }
        } else if let Some(labels) = series.strip_prefix("fedagg_http_requests_total{") {
            let status = labels
                .split("status=\"")
                .nth(1)
                .and_then(|s| s.get(..3))
                .and_then(|s| s.parse::<u16>().ok());
            if status.is_some_and(|s| s >= 400) {
                out.refused += value;
            }
        }
    }
    out
}

/// The request-duration buckets' upper bounds.
const BOUNDS: [f64; 16] = fedagg_server::DURATION_BUCKETS;

/// The q-quantile in milliseconds of the requests between two scrapes' cumulative buckets,
/// linear within the bucket it falls in.
fn quantile_ms(before: &[f64], after: &[f64], q: f64) -> f64 {
    let counts: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let total = counts[BOUNDS.len()];
    if total == 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let i = counts
        .iter()
        .position(|c| *c >= rank)
        .unwrap_or(BOUNDS.len());
    if i == BOUNDS.len() {
        return BOUNDS[BOUNDS.len() - 1] * 1e3;
    }
    let (lo, below) = if i == 0 {
        (0.0, 0.0)
    } else {
        (BOUNDS[i - 1], counts[i - 1])
    };
    let within = counts[i] - below;
    let frac = if within > 0.0 {
        (rank - below) / within
    } else {
        1.0
    };
    (lo + (BOUNDS[i] - lo) * frac) * 1e3
}

fn mode(name: &str) -> Mode {
    match name {
        "secagg" | "secagg-malicious" => Mode::Secagg {
            clip: 1.0,
            levels: 1 << 16,
            max_weight: 100,
            dropout_rate: 0.1,
            corrupt_fraction: 0.05,
            malicious_server: name == "secagg-malicious",
        },
        "paillier" => Mode::Paillier {
            clip: 1.0,
            levels: 1 << 16,
            max_weight: 100,
        },
        _ => Mode::Dp {
            clip: 1.0,
            noise_multiplier: 1.0,
            sampling_rate: 1.0,
            epsilon_budget: 100.0,
            delta: 1e-5,
            adaptive_clip: None,
            accountant: fedagg_api::Accountant::Rdp,
        },
    }
}

/// Each client's weight: equal weights (the mean is the same), and 1 in the DP mode, which
/// takes no other.
fn weight(name: &str) -> u64 {
    if mode(name).sampling_rate().is_some() {
        1
    } else {
        10
    }
}

async fn round(name: &str, n: usize, m: usize) {
    let dir = std::env::temp_dir().join(format!("fedagg-bench-{}-{name}-{m}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The server's defaults: body limits, timeouts and the connection cap all on.
    let served = serve::spawn(&dir, "127.0.0.1:0", ADMIN, &[]);
    let (pid, base) = (served.child.id(), served.base.clone());
    let admin = Admin::new(&base, ADMIN).unwrap();
    // Against a malicious server: an enrollment authority signs the members' identities.
    let authority = (name == "secagg-malicious").then(fedagg_client::Identity::generate);
    let fed = admin
        .create_federation(&FederationSpec {
            name: "bench".into(),
            vector_len: m,
            mode: mode(name),
            min_clients: (n as u32 * 9) / 10,
            max_clients: n as u32,
            phase_timeout_secs: 3600,
            server_lr: 1.0,
            auto_rounds: false,
            roster_authority: authority.as_ref().map(fedagg_client::Identity::public_hex),
            scaffold: false,
        })
        .await
        .unwrap();
    let mut key_holder = None;
    if name == "paillier" {
        let code = admin
            .enrollment_code(fed.id, Role::KeyHolder)
            .await
            .unwrap();
        let (c, _) = Client::enroll(&base, &code.bundle).await.unwrap();
        let mut rng = ChaCha20Rng::from_entropy();
        let kh = KeyHolder::new(c, fedagg_paillier::keygen(2048, &mut rng).unwrap()).unverified();
        kh.publish().await.unwrap();
        key_holder = Some(kh);
    }
    let clients = enroll(&admin, &base, fed.id, n).await;
    if let Some(a) = &authority {
        roster_costs(&admin, fed.id, a, &clients[0]).await;
    }
    // Updates of L2 norm about 0.5 (below the clip of 1), so the mean is exact before noise.
    let amplitude = (3.0 / m as f64).sqrt() * 0.5;
    let updates: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            let mut rng = ChaCha20Rng::seed_from_u64(i as u64);
            (0..m)
                .map(|_| ((rng.next_u32() as f64 / u32::MAX as f64 * 2.0 - 1.0) * amplitude) as f32)
                .collect()
        })
        .collect();
    let mean = mean_of(&updates);
    let before = scrape(&base).await;
    let cpu_before = cpu_secs(pid);
    let info = admin.open_round(fed.id).await.unwrap();
    let kh_task = key_holder.map(|kh| {
        tokio::spawn(async move {
            kh.decrypt_round(info.round, Duration::from_secs(7200))
                .await
        })
    });
    let weight = weight(name);
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(updates)
        .map(|(c, u)| tokio::spawn(async move { c.contribute(&u, weight).await }))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    if let Some(t) = kh_task {
        t.await.unwrap().unwrap();
    }
    let info = admin
        .wait_round(fed.id, info.round, Duration::from_secs(600))
        .await
        .unwrap();
    let cpu = cpu_secs(pid) - cpu_before;
    let after = scrape(&base).await;
    assert_eq!(info.status, RoundStatus::Completed);
    let rec = info.record.unwrap();
    assert_eq!(rec.participants as usize, n);
    check_aggregate(
        name,
        &admin.model(fed.id, info.round).await.unwrap(),
        &mean,
        n,
    );
    let per_client = rec.bytes_received as f64 / f64::from(rec.participants);
    println!(
        "| {name:8} | {n:4} | {m:>9} | {:8.2} | {:>13} | {:>13} | {cpu:7.1} | {:10.0} | {:7} | {:12.0} | {:5.2}x |",
        rec.duration_secs,
        format!("{:.1} / {:.1}", quantile_ms(&before.all, &after.all, 0.5), quantile_ms(&before.all, &after.all, 0.99)),
        format!("{:.1} / {:.1}", quantile_ms(&before.submissions, &after.submissions, 0.5), quantile_ms(&before.submissions, &after.submissions, 0.99)),
        peak_rss_mib(pid),
        after.refused - before.refused,
        per_client,
        per_client / (4.0 * m as f64)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The coordinate-wise mean of equally weighted updates.
fn mean_of(updates: &[Vec<f32>]) -> Vec<f64> {
    let n = updates.len() as f64;
    (0..updates[0].len())
        .map(|j| updates.iter().map(|u| f64::from(u[j])).sum::<f64>() / n)
        .collect()
}

/// Sign and store federation `fid`'s roster as its authority, then read and verify it as a
/// member does before each round; prints both times.
async fn roster_costs(
    admin: &Admin,
    fid: i64,
    authority: &fedagg_client::Identity,
    member: &Client,
) {
    let t = std::time::Instant::now();
    let enrolled = admin.roster(fid).await.unwrap().enrolled;
    let n = enrolled.len();
    admin
        .put_roster(fid, &authority.sign_roster(fid, enrolled).unwrap())
        .await
        .unwrap();
    let signed = t.elapsed();
    let t = std::time::Instant::now();
    assert_eq!(member.roster().await.unwrap().len(), n);
    println!(
        "  roster of {n}: fetched, signed and stored (server checks it) in {:.1} ms; a member \
         fetches and verifies it in {:.1} ms",
        signed.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
}

/// `n` participants of federation `fid`.
async fn enroll(admin: &Admin, base: &str, fid: i64, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let code = admin.enrollment_code(fid, Role::Participant).await.unwrap();
        clients.push(Client::enroll(base, &code.bundle).await.unwrap().0);
    }
    clients
}

/// The round's model (starting from zeros, server learning rate 1) against the updates' mean.
fn check_aggregate(name: &str, model: &[f32], mean: &[f64], n: usize) {
    let resid: Vec<f64> = model
        .iter()
        .zip(mean)
        .map(|(g, w)| f64::from(*g) - w)
        .collect();
    if name == "dp" {
        // The server adds N(0, (noise_multiplier * clip)^2) to the sum of n updates.
        let want = 1.0 / n as f64;
        let sd = (resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64).sqrt();
        // The sample sd's relative error is about 1/sqrt(2m): allow five of those.
        let tol = 5.0 / (2.0 * resid.len() as f64).sqrt();
        assert!(
            (sd / want - 1.0).abs() < tol,
            "DP noise sd {sd}, configured {want}"
        );
    } else {
        // Within twice the quantization step (clip 1, 2^16 levels).
        let worst = resid.iter().fold(0.0f64, |a, r| a.max(r.abs()));
        assert!(
            worst <= 2.0 * 2.0 / 65536.0,
            "{name}: off the mean by {worst}"
        );
    }
}

fn main() {
    // reqwest (for /metrics) is built with rustls and no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let quick =
        args.iter().any(|a| a == "--test") || std::env::var_os("FEDAGG_BENCH_QUICK").is_some();
    let grid: Vec<(String, usize, usize)> = if quick {
        vec![
            ("dp".into(), 10, 1000),
            ("secagg".into(), 10, 1000),
            ("secagg-malicious".into(), 10, 1000),
        ]
    } else if args.iter().any(|a| a == "load") {
        vec![
            ("secagg".into(), 1000, 10_000),
            ("dp".into(), 1000, 100_000),
        ]
    } else {
        let clients = list("FEDAGG_BENCH_CLIENTS", &[100]);
        let sizes = list("FEDAGG_BENCH_SIZES", &[100_000, 1_000_000]);
        let modes =
            std::env::var("FEDAGG_BENCH_MODES").unwrap_or_else(|_| "dp,secagg,paillier".into());
        let mut grid = Vec::new();
        for name in modes.split(',') {
            for &m in &sizes {
                for &n in &clients {
                    grid.push((name.to_string(), n, m));
                }
            }
        }
        grid
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| mode     | n    | params    | round s  | p50 / p99 ms  | submit p50 / p99 ms | CPU s | server MiB | refused | bytes/client | vs f32 |");
    println!("|----------|------|-----------|----------|---------------|---------------------|-------|------------|---------|--------------|--------|");
    for (name, n, m) in grid {
        if name == "paillier" && m > 100_000 {
            println!("| paillier | {n:4} | {m:>9} | not run: ~32 s of client CPU per client (docs/service.md) |");
            continue;
        }
        rt.block_on(round(&name, n, m));
    }
}

/// A comma-separated list of numbers from the environment, or the default.
fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.split(',').map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}
