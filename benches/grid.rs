//! The overhead grid: what each mode costs a client, the server and the key holder per round, and
//! what it puts on the wire, against the model size (10^3 to 2.5 x 10^7 values, ResNet-50's
//! size), the number of clients (10, 100, 1000) and the dropout rate (0, 10, 30 %), beside
//! plaintext FedAvg.
//!
//! A round's cost is a sum of per-value operations whose counts the protocol fixes, so criterion
//! measures those operations, with the library code the SDK and the server run, at every model
//! size, and `scripts/bench-report.sh` composes each (mode, m, n, dropout) cell from them:
//!
//! - plaintext: client `grid/plain/encode` (the f32 frame), server n x `grid/plain/add`;
//! - DP: client as plaintext; server (survivors) x `grid/dp/accept` (decode, clip, add) plus one
//!   `grid/dp/noise`;
//! - SecAgg (per element width b of the cohort's modulus): client `grid/secagg/encode` (quantize, weight, write the message) plus (k + 1) mask streams
//!   (`grid/secagg/stream`, 8 streams per iteration), k the neighbourhood the service derives for
//!   (n, dropout); server (survivors) x `grid/secagg/add` (read the message, add) plus the
//!   unmasking streams: one self mask
//!   per survivor and the pairwise masks of each dropped client with its surviving neighbours
//!   (and on every core, from `grid/secagg/stream/.../threads=N`: the server unmasks on all);
//! - SecAgg with distributed DP (`secagg_dp`, 16 bits per coordinate): client `grid/ddg/encode`
//!   (clip, rotate, round, add the discrete Gaussian share) plus (k + 1) `grid/ddg/stream` mask
//!   streams over the padded vector; server (survivors) x `grid/ddg/add` plus the unmasking
//!   streams as in SecAgg, and one `grid/ddg/decode` (centre, unscale, rotate back);
//! - Paillier (2048-bit): `grid/paillier/{encrypt,add,decrypt}/n=.../m=1e4` (the slot width, so
//!   the values per ciphertext, depends on n), scaled by the ciphertext count to larger m.
//!
//! Bytes on the wire come from the real encoders: frame sizes for plaintext, DP and Paillier, and
//! for SecAgg every message of a simulated round (`fedagg_secagg::sim`) counted per client, in
//! and out; they are written to `<criterion dir>/grid-wire.json` (`grid-wire-quick.json` in a quick run).
//!
//! `cargo bench --no-default-features --bench grid` runs it all (about 15 minutes on two cores);
//! `FEDAGG_BENCH_QUICK=1` keeps m = 10^3 and 10^4 with a 1024-bit key.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fedagg_api::{f32_bytes, f32_values, Frame, FrameKind, Mode, SecaggSession};
use fedagg_paillier::{keygen, Ciphertext, Packing, PrivateKey};
use fedagg_quant::QuantParams;
use fedagg_secagg::crypto::{apply_masks, apply_masks_on, MaskStream};
use fedagg_secagg::sim::{run_round, Direction, DropPoint};
use fedagg_secagg::wire::{check_masked_input, encode_masked_input};
use fedagg_secagg::{Adversary, ClientId, Graph, GraphParams, Phase, SessionConfig, ThreatModel};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

#[path = "support/results.rs"]
mod results;
use results::{quick, thread_counts};

const CLIENTS: [u32; 3] = [10, 100, 1000];
const DROPOUTS: [u32; 3] = [0, 10, 30];
/// Mask streams per `grid/secagg/stream` iteration.
const STREAMS: u32 = 8;

fn sizes() -> Vec<usize> {
    if quick() {
        vec![1_000, 10_000]
    } else {
        vec![1_000, 10_000, 100_000, 1_000_000, 10_000_000, 25_000_000]
    }
}

fn label(m: usize) -> String {
    match m {
        25_000_000 => "2.5e7".into(),
        _ => format!("1e{}", m.ilog10()),
    }
}

/// The quantization the service uses for a federation of `n` clients (clip 1, T = 2^16,
/// weights up to 100).
fn secagg_mode(dropout_pct: u32) -> Mode {
    Mode::Secagg {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
        dropout_rate: f64::from(dropout_pct) / 100.0,
        corrupt_fraction: 0.05,
        malicious_server: false,
    }
}

fn quant(n: u32) -> QuantParams {
    secagg_mode(0)
        .quant(u64::from(n))
        .expect("a quantized mode")
        .expect("valid quantization")
}

/// The graph the service derives for a cohort of n with this dropout rate.
fn graph(n: u32, dropout_pct: u32) -> GraphParams {
    let threat = ThreatModel {
        dropout_rate: f64::from(dropout_pct) / 100.0,
        corrupt_fraction: 0.05,
        adversary: Adversary::Curious,
        ..ThreatModel::default()
    };
    GraphParams::derive(n, &threat).expect("derivable")
}

fn update(m: usize) -> Vec<f32> {
    (0..m)
        .map(|i| ((i % 2001) as f32 - 1000.0) * 1e-3)
        .collect()
}

fn plain_and_dp(c: &mut Criterion) {
    let mut g = c.benchmark_group("grid");
    g.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for m in sizes() {
        let u = update(m);
        let frame = Frame::encode(FrameKind::F32, 1, &f32_bytes(&u));
        g.throughput(Throughput::Elements(m as u64));
        g.bench_function(format!("plain/encode/m={}", label(m)), |b| {
            b.iter(|| Frame::encode(FrameKind::F32, 1, &f32_bytes(&u)))
        });
        // The plaintext server: decode the frame and add the update into the running sum.
        let mut acc = vec![0f64; m];
        g.bench_function(format!("plain/add/m={}", label(m)), |b| {
            b.iter(|| {
                let payload = Frame::decode(&frame, FrameKind::F32, 1).expect("frame");
                let v = f32_values(payload, m).expect("values");
                for (a, x) in acc.iter_mut().zip(&v) {
                    *a += f64::from(*x);
                }
            })
        });
        // The DP server: the same, with the update clipped first.
        g.bench_function(format!("dp/accept/m={}", label(m)), |b| {
            b.iter(|| {
                let payload = Frame::decode(&frame, FrameKind::F32, 1).expect("frame");
                let mut v = f32_values(payload, m).expect("values");
                fedagg_dp::clip::clip_l2(&mut v, 1.0).expect("clip");
                for (a, x) in acc.iter_mut().zip(&v) {
                    *a += f64::from(*x);
                }
            })
        });
        g.bench_function(format!("dp/noise/m={}", label(m)), |b| {
            b.iter(|| fedagg_dp::noise::add_gaussian(&mut acc, 1.0, &mut rng).expect("noise"))
        });
    }
    g.finish();
}

/// The SecAgg operations depend on the modulus only through its element width (4 bytes up to 32
/// bits, 5 above: the modulus grows with the cohort), so each is measured once per width, with the
/// quantization of the largest cohort of that width.
fn secagg(c: &mut Criterion) {
    let mut g = c.benchmark_group("grid");
    g.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut widths = BTreeMap::new();
    for n in CLIENTS {
        let q = quant(n);
        widths.insert(q.modulus().bytes_per_element(), q);
    }
    for (bytes, q) in widths {
        let modulus = q.modulus();
        for m in sizes() {
            let u = update(m);
            let id = |op: &str| format!("secagg/{op}/b={bytes}/m={}", label(m));
            // A session for vectors of this size (the graph does not matter to these costs).
            let cfg = SessionConfig::new(
                [5; 32],
                Graph::complete(2).expect("graph"),
                2,
                modulus,
                m + 1,
                None,
            )
            .expect("session");
            g.throughput(Throughput::Elements(m as u64));
            // Client, besides the masks: quantize and weight, then write the masked input.
            g.bench_function(id("encode"), |b| {
                b.iter(|| {
                    let x = q.encode_weighted(&u, 37, &mut rng).expect("encodes");
                    encode_masked_input(&x, modulus)
                })
            });
            let mut acc = vec![0u64; m + 1];
            let x = q.encode_weighted(&u, 37, &mut rng).expect("encodes");
            let msg = encode_masked_input(&x, modulus);
            // Server, per survivor: check the masked input, then add it into the sum straight
            // from its bytes (the server's check and apply).
            g.bench_function(id("add"), |b| {
                b.iter(|| {
                    let y = check_masked_input(&cfg, &msg).expect("checks");
                    y.add_into(&mut acc)
                })
            });
            let fresh = || -> Vec<MaskStream> {
                (0..STREAMS)
                    .map(|i| MaskStream::from_key(&[i as u8; 32], i % 2 == 0))
                    .collect()
            };
            // On one core, then on every core for the server's unmasking on all of them (the
            // report composes an "all cores" server time from it).
            for (threads, suffix) in thread_counts() {
                g.bench_function(format!("{}{suffix}", id("stream")), |b| {
                    b.iter(|| apply_masks_on(&mut acc, &mut fresh(), modulus, threads))
                });
            }
        }
    }
    g.finish();
}

/// Bits per coordinate of the distributed DP cells (the paper's "16 or fewer").
const DDG_BITS: u32 = 16;

/// The distributed DP of the grid: clip 1, z = 1 over 80 survivors, 16 bits, at most 100.
fn ddg_params(m: usize) -> fedagg_dp::ddg::DdgParams {
    fedagg_dp::ddg::DdgParams::new(m, 1.0, 1.0, DDG_BITS, 80, 100).expect("valid parameters")
}

/// SecAgg with distributed DP: the participant's encoding, and the masking, adding and decoding
/// of the padded vector at 16 bits (2-byte elements).
fn ddg(c: &mut Criterion) {
    let mut g = c.benchmark_group("grid");
    g.sample_size(10);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let seed = [9u8; 32];
    for m in sizes() {
        let p = ddg_params(m);
        let dim = p.dim();
        let modulus = fedagg_secagg::Modulus::new(DDG_BITS).expect("modulus");
        let u = update(m);
        g.throughput(Throughput::Elements(m as u64));
        g.bench_function(format!("ddg/encode/m={}", label(m)), |b| {
            b.iter(|| p.encode(&u, &seed, &mut rng).expect("encodes"))
        });
        let x = p.encode(&u, &seed, &mut rng).expect("encodes");
        let msg = encode_masked_input(&x, modulus);
        let cfg = SessionConfig::new(
            [5; 32],
            Graph::complete(2).expect("graph"),
            2,
            modulus,
            dim,
            None,
        )
        .expect("session");
        let mut acc = vec![0u64; dim];
        g.bench_function(format!("ddg/add/m={}", label(m)), |b| {
            b.iter(|| {
                let y = check_masked_input(&cfg, &msg).expect("checks");
                y.add_into(&mut acc)
            })
        });
        g.bench_function(format!("ddg/stream/m={}", label(m)), |b| {
            b.iter(|| {
                let mut streams: Vec<MaskStream> = (0..STREAMS)
                    .map(|i| MaskStream::from_key(&[i as u8; 32], i % 2 == 0))
                    .collect();
                apply_masks(&mut acc, &mut streams, modulus)
            })
        });
        g.bench_function(format!("ddg/decode/m={}", label(m)), |b| {
            b.iter(|| p.decode_sum(&x, &seed, 100.0).expect("decodes"))
        });
    }
    g.finish();
}

/// The Paillier key of the grid (2048 bits; 1024 when quick), made once.
fn paillier_key() -> PrivateKey {
    let bits = if quick() { 1024 } else { 2048 };
    keygen(bits, &mut ChaCha20Rng::seed_from_u64(u64::from(bits))).expect("key")
}

fn paillier(c: &mut Criterion, sk: &PrivateKey) {
    let bits = sk.public().bits();
    let pk = sk.public();
    let m = if quick() { 1_000 } else { 10_000 };
    let u = update(m);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut g = c.benchmark_group("grid");
    g.sample_size(10);
    for n in CLIENTS {
        let q = quant(n);
        let packing = Packing::new(pk, &q).expect("fits the key");
        let values = q.encode_weighted(&u, 37, &mut rng).expect("encodes");
        let id = |op: &str| format!("paillier/{op}/{bits}/n={n}/m={}", label(m));
        g.throughput(Throughput::Elements(m as u64));
        g.bench_function(id("encrypt"), |b| {
            b.iter(|| {
                let cts = packing.encrypt(pk, &values, &mut rng).expect("encrypts");
                fedagg_paillier::encode_ciphertexts(pk, &cts)
            })
        });
        let cts = packing.encrypt(pk, &values, &mut rng).expect("encrypts");
        let wire = fedagg_paillier::encode_ciphertexts(pk, &cts);
        let count = cts.len();
        g.bench_function(id("add"), |b| {
            b.iter_batched(
                || vec![pk.zero(); count],
                |mut acc: Vec<Ciphertext>| {
                    let got =
                        fedagg_paillier::decode_ciphertexts(pk, &wire, count).expect("decodes");
                    for (a, c) in acc.iter_mut().zip(&got) {
                        pk.add_assign(a, c);
                    }
                    acc
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(id("decrypt"), |b| {
            b.iter(|| packing.decrypt(sk, &cts, m + 1).expect("decrypts"))
        });
    }
    g.finish();
}

/// Bytes per client and round, from the real encoders, written beside criterion's results.
/// Bytes up and down per client (averaged over the cohort, frame headers included) in one
/// simulated SecAgg round of `n` clients, `pct` % of whom drop after sharing keys, at `m` values.
fn secagg_round_bytes(
    n: u32,
    pct: u32,
    gp: &GraphParams,
    m: usize,
    rng: &mut ChaCha20Rng,
) -> (f64, f64) {
    let q = quant(n);
    let mut sid = [0u8; 32];
    rng.fill_bytes(&mut sid);
    let session = SecaggSession {
        session_id: hex::encode(sid),
        n,
        half_degree: gp.half_degree,
        graph_seed: hex::encode([7u8; 32]),
        threshold: gp.threshold as u32,
        modulus_bits: q.modulus().bits(),
        cohort: Vec::new(),
        identities: Vec::new(),
    };
    let cfg = Arc::new(session.config(m).expect("session"));
    let u = update(m);
    let inputs: Vec<Vec<u64>> = (0..n)
        .map(|_| q.encode_weighted(&u, 37, rng).expect("encodes"))
        .collect();
    let dropped = n * pct / 100;
    let drops: BTreeMap<ClientId, DropPoint> = (0..dropped)
        .map(|i| (ClientId(i), DropPoint::AfterShareKeys))
        .collect();
    let (mut up, mut down) = (0u64, 0u64);
    let mut hook = |_: Phase, _: ClientId, d: Direction, bytes: &mut Vec<u8>| {
        // Each message travels in a frame with a 24-byte header.
        let len = (bytes.len() + fedagg_api::FRAME_HEADER) as u64;
        match d {
            Direction::ToServer => up += len,
            Direction::ToClient => down += len,
        }
    };
    let clock = Instant::now;
    let outcome = run_round(cfg, &inputs, &drops, None, Some(&mut hook), &clock, rng);
    outcome.result.expect("the round completes");
    (up as f64 / f64::from(n), down as f64 / f64::from(n))
}

fn wire(sk: &PrivateKey) {
    let mut out = BTreeMap::new();
    let pk = sk.public();
    let bits = pk.bits();
    for m in sizes() {
        let f32_frame = Frame::encode(FrameKind::F32, 1, &f32_bytes(&vec![0.0; m])).len();
        out.insert(
            format!("plain/m={}", label(m)),
            serde_json::json!({"up": f32_frame, "down": f32_frame}),
        );
        for n in CLIENTS {
            let packing = Packing::new(pk, &quant(n)).expect("fits the key");
            let count = packing.ciphertexts_for(m + 1);
            let up = Frame::encode(
                FrameKind::Paillier,
                1,
                &fedagg_paillier::encode_ciphertexts(pk, &vec![pk.zero(); count]),
            )
            .len();
            out.insert(
                format!("paillier/{bits}/n={n}/m={}", label(m)),
                serde_json::json!({"up": up, "down": f32_frame, "ciphertexts": count, "slots": packing.slots()}),
            );
        }
    }
    // SecAgg with distributed DP: the masked input of the padded vector at 16 bits; the other
    // messages are SecAgg's (below), independent of m.
    for m in sizes() {
        let p = ddg_params(m);
        let modulus = fedagg_secagg::Modulus::new(DDG_BITS).expect("modulus");
        let masked = Frame::encode(
            FrameKind::Secagg,
            1,
            &encode_masked_input(&vec![0u64; p.dim()], modulus),
        )
        .len();
        out.insert(
            format!("ddg/m={}", label(m)),
            serde_json::json!({
                "masked_input": masked,
                "dim": p.dim(),
                "bits": DDG_BITS,
                "element_bytes": modulus.bytes_per_element(),
                "bytes_per_coordinate": masked as f64 / m as f64,
            }),
        );
    }
    // SecAgg: every message of a simulated round, per client (averaged), at two sizes; the
    // masked input grows linearly with m and nothing else does.
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    // (A round of 1000 simulated clients takes seconds: the quick run stops at 100.)
    let cohorts: &[u32] = if quick() { &CLIENTS[..2] } else { &CLIENTS };
    for &n in cohorts {
        for pct in DROPOUTS {
            let gp = graph(n, pct);
            let mut fit = Vec::new();
            for m in [1_000usize, 2_000] {
                let (up, down) = secagg_round_bytes(n, pct, &gp, m, &mut rng);
                fit.push((m as f64, up, down));
            }
            let (m0, u0, d0) = fit[0];
            let (m1, u1, d1) = fit[1];
            let (su, sd) = ((u1 - u0) / (m1 - m0), (d1 - d0) / (m1 - m0));
            let k = gp.half_degree.map_or(n - 1, |h| 2 * h);
            for m in sizes() {
                let mf = m as f64;
                out.insert(
                    format!("secagg/n={n}/dropout={pct}%/m={}", label(m)),
                    serde_json::json!({
                        "up": (u0 + su * (mf - m0)).round(),
                        "down": (d0 + sd * (mf - m0)).round() + (Frame::encode(FrameKind::F32, 1, &[]).len() + 4 * m) as f64,
                        "k": k,
                        "threshold": gp.threshold,
                        "element_bytes": quant(n).modulus().bytes_per_element(),
                        // what the client sends besides its masked input
                        "fixed_up": (u0 - su * m0).round(),
                    }),
                );
            }
        }
    }
    let text = serde_json::to_string_pretty(&out).expect("json");
    results::write_beside_results("grid-wire", &text);
}

fn all(c: &mut Criterion) {
    let sk = paillier_key();
    let t = Instant::now();
    wire(&sk);
    eprintln!("grid: wire sizes in {:.1} s", t.elapsed().as_secs_f64());
    plain_and_dp(c);
    secagg(c);
    ddg(c);
    paillier(c, &sk);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = all
}
criterion_main!(benches);
