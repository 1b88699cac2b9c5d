//! One round over loopback per mode and model size: a real `fedagg serve` process, 100 SDK
//! clients in this process. Reports the server's wall time for the round (open to end), the
//! server process's peak resident memory (VmHWM), and bytes received per client against a plain
//! f32 upload.
//!
//! Not a criterion bench: one round is one long measurement. `cargo bench --bench service` runs
//! the full table (minutes); `-- --test` or `FEDAGG_BENCH_QUICK=1` runs a small smoke round.
//! `FEDAGG_BENCH_CLIENTS=25,100` and `FEDAGG_BENCH_SIZES=1000000` choose the grid (several client
//! counts show that server memory does not grow with n); `FEDAGG_BENCH_MODES=dp,secagg` the modes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fedagg_api::{FederationSpec, Mode, Role, RoundStatus};
use fedagg_client::{Admin, Client, KeyHolder};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[path = "../tests/support/serve.rs"]
mod serve;

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn mode(name: &str) -> Mode {
    match name {
        "secagg" => Mode::Secagg {
            clip: 1.0,
            levels: 1 << 16,
            max_weight: 100,
            dropout_rate: 0.1,
            corrupt_fraction: 0.05,
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
        },
    }
}

async fn round(name: &str, n: usize, m: usize) {
    let dir = std::env::temp_dir().join(format!("fedagg-bench-{}-{name}-{m}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let served = serve::spawn(
        &dir,
        "127.0.0.1:0",
        ADMIN,
        &[("FEDAGG_MAX_BODY_BYTES", (1u64 << 31).to_string())],
    );
    let (pid, base) = (served.child.id(), served.base.clone());
    let admin = Admin::new(&base, ADMIN).unwrap();
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
        let kh = KeyHolder::new(c, fedagg_paillier::keygen(2048, &mut rng).unwrap());
        kh.publish().await.unwrap();
        key_holder = Some(kh);
    }
    let mut clients = Vec::new();
    for _ in 0..n {
        let code = admin
            .enrollment_code(fed.id, Role::Participant)
            .await
            .unwrap();
        clients.push(Client::enroll(&base, &code.bundle).await.unwrap().0);
    }
    let info = admin.open_round(fed.id).await.unwrap();
    let kh_task = key_holder.map(|kh| {
        tokio::spawn(async move {
            kh.decrypt_round(info.round, Duration::from_secs(7200))
                .await
        })
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(async move {
                let mut rng = ChaCha20Rng::seed_from_u64(i as u64);
                let u: Vec<f32> = (0..m)
                    .map(|_| (rng.next_u32() as f32 / u32::MAX as f32) * 0.02 - 0.01)
                    .collect();
                c.contribute(&u, 10).await
            })
        })
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
    assert_eq!(info.status, RoundStatus::Completed);
    let rec = info.record.unwrap();
    let per_client = rec.bytes_received as f64 / f64::from(rec.participants);
    println!(
        "| {name:8} | {n:4} | {m:>9} | {:8.2} | {:9.0} | {:12.0} | {:5.2}x |",
        rec.duration_secs,
        peak_rss_mib(pid),
        per_client,
        per_client / (4.0 * m as f64)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--test") || std::env::var_os("FEDAGG_BENCH_QUICK").is_some();
    let (clients, sizes): (Vec<usize>, Vec<usize>) = if quick {
        (vec![10], vec![1000])
    } else {
        (
            list("FEDAGG_BENCH_CLIENTS", &[100]),
            list("FEDAGG_BENCH_SIZES", &[100_000, 1_000_000]),
        )
    };
    let only = std::env::var("FEDAGG_BENCH_MODES").unwrap_or_else(|_| "dp,secagg,paillier".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("| mode     | n    | params    | round s  | server MiB | bytes/client | vs f32 |");
    println!("|----------|------|-----------|----------|-----------|--------------|--------|");
    for name in only.split(',') {
        for &m in &sizes {
            for &n in &clients {
                if name == "paillier" && m > 100_000 {
                    println!("| paillier | {n:4} | {m:>9} | not run: ~32 s of client CPU per client (docs/service.md) |");
                    continue;
                }
                rt.block_on(round(name, n, m));
            }
        }
    }
}

/// A comma-separated list of numbers from the environment, or the default.
fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.split(',').map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}
