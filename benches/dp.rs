//! Criterion benchmarks of the DP mode: clipping and noising a 10^7-value update, and the
//! accountant over 10^4 rounds; and the plaintext baseline every mode is compared with (adding
//! one f32 update into a running sum, `plain/add`, 10^3 to 10^7 values); and a participant's cost
//! of distributed DP (`ddg/encode`: clip, rotate, scale, round and noise, 10^3 to 2.5 x 10^7
//! values, which SecAgg then masks; compare `secagg/mask` in the SecAgg bench).
//! `FEDAGG_BENCH_QUICK=1` shrinks the update to 10^5 values, the baseline and `ddg` to 10^3.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fedagg_dp::clip::clip_l2;
use fedagg_dp::noise::add_gaussian;
use fedagg_dp::rdp::{compute_rdp, default_orders, epsilon};
use fedagg_dp::Ledger;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn m() -> usize {
    if std::env::var_os("FEDAGG_BENCH_QUICK").is_some() {
        100_000
    } else {
        10_000_000
    }
}

fn clip_and_noise(c: &mut Criterion) {
    let m = m();
    let label = if m == 10_000_000 {
        "1e7".to_string()
    } else {
        m.to_string()
    };
    let mut g = c.benchmark_group("dp");
    g.sample_size(10);
    g.throughput(Throughput::Elements(m as u64));
    let update: Vec<f32> = (0..m).map(|i| ((i % 1000) as f32 - 500.0) * 1e-3).collect();
    g.bench_function(format!("clip/m={label}"), |b| {
        b.iter_batched_ref(
            || update.clone(),
            |u| clip_l2(u, 1.0).expect("valid clip"),
            BatchSize::LargeInput,
        )
    });
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut sum = vec![0f64; m];
    g.bench_function(format!("noise/m={label}"), |b| {
        b.iter(|| add_gaussian(&mut sum, 1.1, &mut rng).expect("valid std"))
    });
    g.finish();
}

/// The server's plaintext cost per client: one update added into the f32 running sum.
fn plain_add(c: &mut Criterion) {
    let sizes: &[usize] = if std::env::var_os("FEDAGG_BENCH_QUICK").is_some() {
        &[1_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    };
    let mut g = c.benchmark_group("plain");
    for &m in sizes {
        let update: Vec<f32> = (0..m).map(|i| ((i % 1000) as f32 - 500.0) * 1e-3).collect();
        let mut sum = vec![0f32; m];
        g.throughput(Throughput::Elements(m as u64));
        g.bench_function(format!("add/m=1e{}", m.ilog10()), |b| {
            b.iter(|| {
                for (s, u) in sum.iter_mut().zip(&update) {
                    *s += *u;
                }
                std::hint::black_box(&sum);
            })
        });
    }
    g.finish();
}

fn accountant(c: &mut Criterion) {
    let mut g = c.benchmark_group("dp/accountant");
    g.sample_size(10);
    let orders = default_orders();
    g.bench_function("epsilon/steps=1e4", |b| {
        b.iter(|| {
            let rdp = compute_rdp(0.01, 1.1, 10_000, &orders).expect("valid parameters");
            epsilon(&orders, &rdp, 1e-5).expect("valid delta")
        })
    });
    // One more round on a ledger that already holds 10^4 heterogeneous rounds.
    let mut ledger = Ledger::new(1e9, 1e-5).expect("valid budget");
    for i in 0..10_000u32 {
        let sigma = 1.0 + f64::from(i % 7) * 0.1;
        ledger.charge(0.01, sigma).expect("within budget");
    }
    g.bench_function("ledger/charge/after=1e4", |b| {
        b.iter_batched_ref(
            || ledger.clone(),
            |l| l.charge(0.01, 1.1).expect("within budget"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A participant's distributed DP encoding at 20 bits, 100 clients at most, at least 10
/// survivors, z = 1: the rotation, the conditional rounding and one discrete Gaussian per value.
fn ddg_encode(c: &mut Criterion) {
    use fedagg_dp::ddg::DdgParams;
    let sizes: &[usize] = if std::env::var_os("FEDAGG_BENCH_QUICK").is_some() {
        &[1_000]
    } else {
        &[1_000, 100_000, 1_000_000, 25_000_000]
    };
    let mut g = c.benchmark_group("ddg");
    g.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for &m in sizes {
        let p = DdgParams::new(m, 1.0, 1.0, 20, 10, 100).expect("valid parameters");
        let update: Vec<f32> = (0..m).map(|i| ((i % 1000) as f32 - 500.0) * 1e-5).collect();
        g.throughput(Throughput::Elements(m as u64));
        g.bench_function(format!("encode/m={m}"), |b| {
            b.iter(|| p.encode(&update, &[3; 32], &mut rng).expect("encodes"))
        });
    }
    g.finish();
}

criterion_group!(benches, clip_and_noise, plain_add, accountant, ddg_encode);
criterion_main!(benches);
