//! Criterion benchmarks of the SecAgg core: the raw PRG, client key generation, share generation
//! and masking, a client's cost per neighbour piece by piece, and server unmasking. Ids name their parameters, e.g. `secagg/mask/k=32/m=1e6`.
//!
//! Run with `cargo bench --bench secagg`; `FEDAGG_BENCH_QUICK=1` limits the sizes (used by CI to
//! check that the benches still run).

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use fedagg_quant::Modulus;
use fedagg_secagg::client;
use fedagg_secagg::crypto::{self, apply_masks_threaded, keystream, MaskStream};
use fedagg_secagg::server::{AfterMasking, CollectingKeys, Unmasking};
use fedagg_secagg::{shamir, ClientId, Graph, SessionConfig};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[path = "support/results.rs"]
mod results;
use results::{quick, thread_counts};

fn label(m: usize) -> String {
    let e = (m as f64).log10().round() as i32;
    if 10usize.pow(e as u32) == m {
        format!("1e{e}")
    } else {
        m.to_string()
    }
}

fn session(n: u32, t: usize, m: usize, rng: &mut ChaCha20Rng) -> Arc<SessionConfig> {
    let mut id = [0u8; 32];
    rng.fill_bytes(&mut id);
    let graph = Graph::complete(n).expect("valid graph");
    let modulus = Modulus::new(32).expect("valid modulus");
    Arc::new(SessionConfig::new(id, graph, t, modulus, m, None).expect("valid session"))
}

fn sizes() -> Vec<usize> {
    if quick() {
        vec![1_000, 100_000]
    } else {
        vec![1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    }
}

/// OpenSSL's AES-256-CTR on this CPU in bytes a second (`openssl speed`, 16 KiB blocks, one
/// core), the reference our keystream is measured against; `None` without the `openssl` command.
fn openssl_aes256ctr() -> Option<f64> {
    let seconds = if quick() { "1" } else { "3" };
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-evp",
            "aes-256-ctr",
            "-bytes",
            "16384",
            "-seconds",
            seconds,
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    // The last line reads `AES-256-CTR  5440655.36k`: thousands of bytes a second.
    let text = String::from_utf8_lossy(&out.stdout);
    let figure = text.lines().last()?.split_whitespace().last()?;
    figure
        .strip_suffix('k')?
        .parse::<f64>()
        .ok()
        .map(|k| k * 1e3)
}

/// Writes OpenSSL's figures, taken just before and just after the PRG benches, beside criterion's
/// results (`openssl-aes-256-ctr.json`), where `scripts/bench-report.sh` puts them beside ours.
fn record_openssl(before: Option<f64>, after: Option<f64>) {
    let (Some(before), Some(after)) = (before, after) else {
        eprintln!("openssl not found: the PRG's reference is not recorded");
        return;
    };
    let text = serde_json::json!({
        "command": "openssl speed -evp aes-256-ctr -bytes 16384",
        "bytes_per_second": [before.round(), after.round()],
    })
    .to_string();
    results::write_beside_results("openssl-aes-256-ctr", &text);
    eprintln!(
        "openssl aes-256-ctr: {:.2} GB/s before, {:.2} GB/s after",
        before / 1e9,
        after / 1e9
    );
}

/// Raw AES-256-CTR keystream for m 32-bit values: the yardstick masking is measured against,
/// itself measured against OpenSSL's AES-256-CTR just before and after. OpenSSL runs only when a
/// PRG bench does (criterion calls a bench's closure only if the filter selects it), so a run of
/// other benches leaves the recorded reference beside the PRG figures it was taken with.
fn prg(c: &mut Criterion) {
    let mut before = None;
    let mut g = c.benchmark_group("secagg/prg");
    for m in sizes() {
        let mut buf = vec![0u8; 4 * m];
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(
            BenchmarkId::from_parameter(format!("aes256ctr/m={}", label(m))),
            |b| {
                before.get_or_insert_with(openssl_aes256ctr);
                b.iter(|| keystream(&[7u8; 32], &mut buf))
            },
        );
    }
    g.finish();
    if let Some(before) = before {
        record_openssl(before, openssl_aes256ctr());
    }
}

/// Masking m values in Z_2^32 with k pairwise masks plus the self mask.
fn mask(c: &mut Criterion) {
    let modulus = Modulus::new(32).expect("valid modulus");
    let mut g = c.benchmark_group("secagg/mask");
    g.sample_size(10);
    let ks: &[u32] = if quick() { &[16] } else { &[16, 64] };
    for &k in ks {
        for m in sizes() {
            let mut acc = vec![0u64; m];
            g.throughput(Throughput::Bytes(4 * m as u64 * (u64::from(k) + 1)));
            for (threads, suffix) in thread_counts() {
                // A client's masking with `threads` allowed: split only from 4 MiB of keystream
                // a thread (`threads_for`), where a split starts to pay.
                crypto::set_threads(threads);
                g.bench_function(format!("k={k}/m={}{suffix}", label(m)), |b| {
                    b.iter(|| {
                        let mut streams: Vec<MaskStream> = (0..=k)
                            .map(|i| MaskStream::from_key(&[i as u8; 32], i % 2 == 0))
                            .collect();
                        apply_masks_threaded(&mut acc, &mut streams, modulus)
                    })
                });
            }
        }
    }
    crypto::set_threads(1);
    g.finish();
}

/// Client key generation, and share generation (Shamir + encryption) for k neighbours.
fn client_setup(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut g = c.benchmark_group("secagg/client");
    let cfg = session(2, 2, 1, &mut rng);
    g.bench_function("keygen", |b| {
        b.iter(|| client::start(Arc::clone(&cfg), ClientId(0), None, &mut rng))
    });
    for k in [16u32, 64, 254] {
        let cfg = session(k + 1, k as usize / 2 + 1, 1, &mut rng);
        g.bench_function(format!("share_keys/k={k}"), |b| {
            b.iter_batched(
                || {
                    let mut server = CollectingKeys::new(Arc::clone(&cfg));
                    let mut mine = None;
                    for i in 0..=k {
                        let (s, m) = client::start(Arc::clone(&cfg), ClientId(i), None, &mut rng)
                            .expect("start");
                        server.receive(ClientId(i), &m).expect("keys accepted");
                        if i == 0 {
                            mine = Some(s);
                        }
                    }
                    let (_, out) = server.finish().expect("enough clients");
                    (
                        mine.expect("client 0 started"),
                        out.into_iter().next().expect("message").1,
                    )
                },
                |(state, msg)| state.share_keys(&msg, &mut ChaCha20Rng::seed_from_u64(2)),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// Drive n clients of a complete graph up to Unmasking, with `dropped` of them vanishing after
/// sharing keys, and return the server state with every unmask response received.
fn unmasking_state(n: u32, m: usize, dropped: u32, rng: &mut ChaCha20Rng) -> Unmasking {
    let cfg = session(n, (n as usize) / 2 + 1, m, rng);
    let mut server = CollectingKeys::new(Arc::clone(&cfg));
    let mut states = BTreeMap::new();
    for i in 0..n {
        let (s, msg) = client::start(Arc::clone(&cfg), ClientId(i), None, rng).expect("start");
        server.receive(ClientId(i), &msg).expect("keys");
        states.insert(ClientId(i), s);
    }
    let (mut server, out) = server.finish().expect("round 0");
    let mut next = BTreeMap::new();
    for (c, msg) in out {
        let s = states.remove(&c).expect("state");
        let (s, reply) = s.share_keys(&msg, rng).expect("shares");
        server.receive(c, &reply).expect("shares accepted");
        next.insert(c, s);
    }
    let (mut server, out) = server.finish().expect("round 1");
    let input = vec![1u64; m];
    let mut waiting = BTreeMap::new();
    for (c, msg) in out {
        let s = next.remove(&c).expect("state");
        if c.0 < dropped {
            continue;
        }
        let (s, reply) = s.mask(&msg, &input).expect("mask");
        server.receive(c, &reply).expect("masked input accepted");
        waiting.insert(c, s);
    }
    let AfterMasking::Unmasking(mut server, out) = server.finish().expect("round 2") else {
        unreachable!("no consistency check without identities")
    };
    for (c, msg) in out {
        let s = waiting.remove(&c).expect("state");
        server
            .receive(c, &s.unmask(&msg).expect("unmask"))
            .expect("shares accepted");
    }
    server
}

/// Server unmasking for n = 100, m = 10^6 (10^5 when quick) with 0, 10 and 30 % dropouts, on
/// one core and on every core.
fn unmask(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let n = 100u32;
    let m = if quick() { 100_000 } else { 1_000_000 };
    let mut g = c.benchmark_group("secagg/unmask");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    for pct in [0u32, 10, 30] {
        let state = unmasking_state(n, m, n * pct / 100, &mut rng);
        for (threads, suffix) in thread_counts() {
            fedagg_secagg::crypto::set_threads(threads);
            let id = format!("n={n}/m={}/dropout={pct}%{suffix}", label(m));
            g.bench_function(id, |b| b.iter(|| state.aggregate().expect("aggregate")));
        }
    }
    fedagg_secagg::crypto::set_threads(1);
    g.finish();
}

/// Where a client's fixed cost per neighbour goes: its pieces one by one (an X25519 agreement,
/// sealing and opening a share pair, a mask stream's key derivation and key schedule, Shamir's
/// split of one secret over 44 points), and a whole client at k = 43, m = 10^4 (round 1, then
/// round 2 with every neighbour's shares), so that the pieces can be checked against the whole.
fn neighbour(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut g = c.benchmark_group("secagg/neighbour");
    let mine = x25519_dalek::StaticSecret::random_from_rng(&mut rng);
    let theirs = crypto::public_of(&x25519_dalek::StaticSecret::random_from_rng(&mut rng));
    g.bench_function("x25519-agree", |b| b.iter(|| crypto::agree(&mine, &theirs)));
    let agreed = crypto::agree(&mine, &theirs).expect("contributory");
    let sid = [1u8; 32];
    let (a, z) = (ClientId(0), ClientId(1));
    let pair = [9u8; 64];
    g.bench_function("seal-shares", |b| {
        b.iter(|| crypto::seal_shares(&agreed, &sid, a, z, &pair))
    });
    let sealed = crypto::seal_shares(&agreed, &sid, a, z, &pair);
    g.bench_function("open-shares", |b| {
        b.iter(|| crypto::open_shares(&agreed, &sid, a, z, &sealed))
    });
    g.bench_function("mask-stream-setup", |b| {
        b.iter(|| MaskStream::pair_mask(&agreed, &sid, a, z, false))
    });
    let points: Vec<u8> = (1..=44).collect();
    g.bench_function("shamir-split/k=43", |b| {
        b.iter(|| shamir::split(&[5u8; 32], 22, &points, &mut rng))
    });
    g.finish();

    let (k, m) = (43u32, 10_000usize);
    let mut g = c.benchmark_group("secagg/client-round");
    g.sample_size(10);
    let cfg = session(k + 1, k as usize / 2 + 1, m, &mut rng);
    let input = vec![1u64; m];
    // On every core the agreements with the neighbours split over threads
    // (`crypto::agree_each`); the masking at m = 10^4 stays on one.
    for (threads, suffix) in thread_counts() {
        fedagg_secagg::crypto::set_threads(threads);
        g.bench_function(format!("share_keys/k={k}/m={}{suffix}", label(m)), |b| {
            b.iter_batched(
                || key_lists(&cfg, &mut rng).0.remove(0),
                |(state, list)| state.share_keys(&list, &mut ChaCha20Rng::seed_from_u64(4)),
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("mask/k={k}/m={}{suffix}", label(m)), |b| {
            b.iter_batched(
                || until_masking(&cfg, &mut rng),
                |(state, forwarded)| state.mask(&forwarded, &input),
                BatchSize::PerIteration,
            )
        });
    }
    fedagg_secagg::crypto::set_threads(1);
    g.finish();
}

type KeyLists = Vec<(client::ExpectKeyList, Vec<u8>)>;

/// Every client of `cfg` started, with the key list the server sends it; and the server.
fn key_lists(
    cfg: &Arc<SessionConfig>,
    rng: &mut ChaCha20Rng,
) -> (KeyLists, fedagg_secagg::server::CollectingShares) {
    let mut server = CollectingKeys::new(Arc::clone(cfg));
    let mut states = Vec::new();
    for i in 0..cfg.graph().n() {
        let (s, msg) = client::start(Arc::clone(cfg), ClientId(i), None, rng).expect("start");
        server.receive(ClientId(i), &msg).expect("keys accepted");
        states.push(s);
    }
    let (shares, lists) = server.finish().expect("enough clients");
    let lists = states
        .into_iter()
        .zip(lists)
        .map(|(s, (id, list))| {
            assert_eq!(s.id(), id, "key lists in client order");
            (s, list)
        })
        .collect();
    (lists, shares)
}

/// Client 0 after round 1, with the shares its neighbours sent it.
fn until_masking(
    cfg: &Arc<SessionConfig>,
    rng: &mut ChaCha20Rng,
) -> (client::ExpectShares, Vec<u8>) {
    let (lists, mut server) = key_lists(cfg, rng);
    let mut first = None;
    for (i, (state, list)) in lists.into_iter().enumerate() {
        let (next, msg) = state.share_keys(&list, rng).expect("shares");
        server
            .receive(ClientId(i as u32), &msg)
            .expect("shares accepted");
        first.get_or_insert(next);
    }
    let (_, forwarded) = server.finish().expect("enough shares");
    let forwarded = forwarded
        .into_iter()
        .find(|(id, _)| *id == ClientId(0))
        .expect("client 0's shares")
        .1;
    (first.expect("client 0"), forwarded)
}

criterion_group!(benches, prg, mask, client_setup, neighbour, unmask);
criterion_main!(benches);
