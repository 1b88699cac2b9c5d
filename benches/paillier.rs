//! Criterion benchmarks of Paillier: single operations at 2048 and 3072 bits, packed vectors
//! (client encryption, server addition of N vectors, key-holder decryption) against m, the key
//! holder's extra work under verified decryption, and threshold decryption (partial decryption,
//! its proof's check, combination). Dealing a threshold key (safe primes) is timed by
//! `fedagg-paillier`'s `threshold_keygen` example: seconds to minutes a run.
//! `FEDAGG_BENCH_QUICK=1` keeps only small sizes; `FEDAGG_BENCH_PAILLIER_1E6=1` adds 10^6 values.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fedagg_paillier::{keygen, keygen_subgroup, Ciphertext, Packing, PrivateKey};
use fedagg_quant::QuantParams;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn quick() -> bool {
    std::env::var_os("FEDAGG_BENCH_QUICK").is_some()
}

fn key(bits: u32) -> PrivateKey {
    keygen(bits, &mut ChaCha20Rng::seed_from_u64(u64::from(bits))).expect("valid key size")
}

fn subgroup_key(bits: u32) -> PrivateKey {
    keygen_subgroup(bits, &mut ChaCha20Rng::seed_from_u64(u64::from(bits) + 1))
        .expect("valid key size")
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("paillier");
    g.sample_size(10);
    let sizes: &[u32] = if quick() { &[1024] } else { &[2048, 3072] };
    for &bits in sizes {
        let sk = key(bits);
        let pk = sk.public();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let m = pk.n() - 12345u32;
        if bits <= 2048 {
            g.bench_function(format!("keygen/{bits}"), |b| {
                b.iter(|| keygen(bits, &mut rng))
            });
        }
        let enc = pk.encryptor();
        g.bench_function(format!("encrypt/{bits}/djn-fixed-base"), |b| {
            b.iter(|| enc.encrypt(&m, &mut rng))
        });
        // A subgroup key's public key: 640-bit DJN exponents instead of |n|/2 + 128.
        let sub = subgroup_key(bits);
        let sub_enc = sub.public().encryptor();
        g.bench_function(format!("encrypt/{bits}/djn-fixed-base-subgroup"), |b| {
            b.iter(|| sub_enc.encrypt(&m, &mut rng))
        });
        g.bench_function(format!("encrypt/{bits}/djn"), |b| {
            b.iter(|| pk.encrypt(&m, &mut rng))
        });
        g.bench_function(format!("encrypt/{bits}/textbook"), |b| {
            b.iter(|| pk.encrypt_textbook(&m, &mut rng))
        });
        let mask = pk.random_mask(&mut rng);
        g.bench_function(format!("encrypt/{bits}/precomputed-mask"), |b| {
            b.iter(|| pk.encrypt_with_mask(&m, &mask))
        });
        let ct = pk.encrypt(&m, &mut rng).expect("plaintext below n");
        g.bench_function(format!("decrypt/{bits}/crt"), |b| {
            b.iter(|| sk.decrypt(&ct))
        });
        // A subgroup key: the same CRT decryption with 256-bit exponents.
        let sub_m = sub.public().n() - 12345u32;
        let ct = sub
            .public()
            .encrypt(&sub_m, &mut rng)
            .expect("plaintext below n");
        g.bench_function(format!("decrypt/{bits}/subgroup"), |b| {
            b.iter(|| sub.decrypt(&ct))
        });
        g.bench_function(format!("add/{bits}"), |b| b.iter(|| pk.add(&ct, &ct)));
    }
    g.finish();
}

fn label(m: usize) -> String {
    format!("1e{}", (m as f64).log10().round() as u32)
}

/// The SDK's encryption from its second update on (the table kept from the first), under a
/// standard key and a subgroup key (whose first update, table built, is also timed), and the key
/// holder's decryption with a subgroup key, each on one core and on all.
fn kept_table_and_subgroup(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    packing: &Packing,
    (pk, sub): (&fedagg_paillier::PublicKey, &PrivateKey),
    values: &[u64],
    rng: &mut ChaCha20Rng,
) {
    let (bits, m) = (pk.bits(), values.len());
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let kept = pk.encryptor();
    let sub_kept = sub.public().encryptor();
    let sub_cts = packing
        .encrypt(sub.public(), values, rng)
        .expect("encrypts");
    for threads in [1, cores] {
        let id = format!("encrypt-kept-table/{bits}/m={}/threads={threads}", label(m));
        g.bench_function(id, |b| {
            b.iter(|| packing.encrypt_with_on(&kept, values, rng, threads))
        });
        let id = format!(
            "encrypt-blocks-subgroup/{bits}/m={}/threads={threads}",
            label(m)
        );
        g.bench_function(id, |b| {
            b.iter(|| packing.encrypt_on(sub.public(), values, rng, threads))
        });
        let id = format!(
            "encrypt-kept-table-subgroup/{bits}/m={}/threads={threads}",
            label(m)
        );
        g.bench_function(id, |b| {
            b.iter(|| packing.encrypt_with_on(&sub_kept, values, rng, threads))
        });
        let id = format!("decrypt-subgroup/{bits}/m={}/threads={threads}", label(m));
        g.bench_function(id, |b| {
            b.iter(|| packing.decrypt_on(sub, &sub_cts, m, threads))
        });
    }
}

fn packed(c: &mut Criterion) {
    let sk = key(if quick() { 1024 } else { 2048 });
    let pk = sk.public();
    let sub = subgroup_key(pk.bits());
    // BatchCrypt-like: T = 2^12, weights up to 16, up to 1000 clients: 26-bit slots, 78 per ct.
    let quant = QuantParams::with_minimal_modulus(1.0, 1 << 12, 16, 1000).expect("fits");
    let packing = Packing::new(pk, &quant).expect("fits the key");
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("paillier/packed");
    g.sample_size(10);
    let mut sizes = if quick() {
        vec![1_000]
    } else {
        vec![1_000, 10_000, 100_000]
    };
    // 10^6 values: about 20 minutes for the group on two cores, so only when asked
    // (`FEDAGG_BENCH_PAILLIER_1E6=1 cargo bench --bench paillier -- 'm=1e6'`).
    if std::env::var_os("FEDAGG_BENCH_PAILLIER_1E6").is_some() {
        sizes.push(1_000_000);
    }
    for &m in &sizes {
        let values: Vec<u64> = (0..m as u64)
            .map(|i| (i * 2654435761) % (1 << 16))
            .collect();
        g.throughput(Throughput::Elements(m as u64));
        g.bench_function(format!("encrypt/{}/m={}", pk.bits(), label(m)), |b| {
            b.iter(|| packing.encrypt(pk, &values, &mut rng))
        });
        // The client's path: blocks of ciphertexts on every core (the same ciphertexts).
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        for threads in [1, cores] {
            let id = format!(
                "encrypt-blocks/{}/m={}/threads={threads}",
                pk.bits(),
                label(m)
            );
            g.bench_function(id, |b| {
                b.iter(|| packing.encrypt_on(pk, &values, &mut rng, threads))
            });
        }
        kept_table_and_subgroup(&mut g, &packing, (pk, &sub), &values, &mut rng);
        let cts = packing.encrypt(pk, &values, &mut rng).expect("encrypts");
        for n in [10usize, 100] {
            if m > 10_000 && n == 100 {
                continue; // 100 x 1283 additions: measured at m = 1e4 and scaled in the docs
            }
            g.bench_function(format!("add/{}/m={}/n={n}", pk.bits(), label(m)), |b| {
                b.iter_batched(
                    || vec![pk.zero(); cts.len()],
                    |mut acc: Vec<Ciphertext>| {
                        for _ in 0..n {
                            for (a, c) in acc.iter_mut().zip(&cts) {
                                pk.add_assign(a, c);
                            }
                        }
                        acc
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        g.bench_function(format!("decrypt/{}/m={}", pk.bits(), label(m)), |b| {
            b.iter(|| packing.decrypt(&sk, &cts, m))
        });
    }
    g.finish();
    let per_value = pk.ciphertext_bytes() as f64 / packing.slots() as f64;
    eprintln!(
        "wire: {} bytes per ciphertext, {} values per ciphertext: {per_value:.2} bytes per value \
         (f32: 4, ratio {:.2})",
        pk.ciphertext_bytes(),
        packing.slots(),
        per_value / 4.0
    );
}

/// Verified decryption: what the key holder adds to decrypting the sum of `n` contributions of
/// `m` values (checking each signature, decoding each vector, adding them up), against the
/// decryption itself.
fn verified(c: &mut Criterion) {
    use fedagg_api::contributions::Contribution;
    use fedagg_api::contributions::{sign_contribution, split_signed, verify_contributions};
    let sk = key(if quick() { 1024 } else { 2048 });
    let pk = sk.public();
    let quant = QuantParams::with_minimal_modulus(1.0, 1 << 12, 16, 1000).expect("fits");
    let packing = Packing::new(pk, &quant).expect("fits the key");
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let m = if quick() { 1_000 } else { 10_000 };
    let values: Vec<u64> = (0..m as u64)
        .map(|i| (i * 2654435761) % (1 << 16))
        .collect();
    let one = fedagg_paillier::encode_ciphertexts(
        pk,
        &packing.encrypt(pk, &values, &mut rng).expect("encrypts"),
    );
    let mut g = c.benchmark_group("paillier/verified");
    g.sample_size(10);
    for n in [10usize, 100] {
        let mut roster = std::collections::BTreeMap::new();
        let entries: Vec<Contribution> = (0..n as i64)
            .map(|p| {
                let id = ed25519_dalek::SigningKey::generate(&mut rng);
                roster.insert(p, id.verifying_key());
                let signed = sign_contribution(&id, 1, 7, &one);
                let (_, signature) = split_signed(&signed).expect("signed");
                Contribution {
                    participant: p,
                    ciphertexts: one.clone(),
                    signature,
                }
            })
            .collect();
        let count = packing.ciphertexts_for(m);
        let bytes = fedagg_api::contributions::encode_contributions(&entries).len();
        eprintln!(
            "verified/n={n}/m={}: the key holder downloads {bytes} bytes",
            label(m)
        );
        g.bench_function(format!("signatures/m={}/n={n}", label(m)), |b| {
            b.iter(|| verify_contributions(1, 7, &entries, &roster, n).expect("verifies"))
        });
        g.bench_function(
            format!("check-and-add/{}/m={}/n={n}", pk.bits(), label(m)),
            |b| {
                b.iter(|| {
                    verify_contributions(1, 7, &entries, &roster, n).expect("verifies");
                    let mut acc: Option<Vec<Ciphertext>> = None;
                    for e in &entries {
                        let cts = fedagg_paillier::decode_ciphertexts(pk, &e.ciphertexts, count)
                            .expect("decodes");
                        match &mut acc {
                            None => acc = Some(cts),
                            Some(acc) => acc
                                .iter_mut()
                                .zip(&cts)
                                .for_each(|(a, c)| pk.add_assign(a, c)),
                        }
                    }
                    acc
                })
            },
        );
    }
    let cts =
        fedagg_paillier::decode_ciphertexts(pk, &one, packing.ciphertexts_for(m)).expect("decodes");
    g.bench_function(format!("decrypt/{}/m={}", pk.bits(), label(m)), |b| {
        b.iter(|| packing.decrypt(&sk, &cts, m))
    });
    g.finish();
}

/// Threshold decryption, 3 of 5 holders, from pinned safe primes: per ciphertext vector of 16
/// (one batched proof each), a holder's partial decryption, its check, and combining three.
fn threshold(c: &mut Criterion) {
    use fedagg_paillier::threshold::{deal_from_primes, primes_from_text};
    let fixtures: &[(u32, &str)] = &[
        (
            2048,
            include_str!("../crates/fedagg-paillier/tests/data/safe-primes-2048.txt"),
        ),
        (
            3072,
            include_str!("../crates/fedagg-paillier/tests/data/safe-primes-3072.txt"),
        ),
    ];
    let mut g = c.benchmark_group("paillier/threshold");
    g.sample_size(10);
    let count: u32 = if quick() { 2 } else { 16 };
    for &(bits, text) in fixtures.iter().take(if quick() { 1 } else { 2 }) {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (p, q) = primes_from_text(text).expect("two primes");
        let (key, shares) = deal_from_primes(&p, &q, 5, 3, &mut rng).expect("safe primes");
        let pk = key.public();
        let cts: Vec<Ciphertext> = (0..count)
            .map(|i| pk.encrypt(&(pk.n() - 1u32 - i), &mut rng).expect("below n"))
            .collect();
        let partials: Vec<_> = shares[..3]
            .iter()
            .map(|s| s.partial_decrypt(&cts, &mut rng))
            .collect();
        g.bench_function(format!("partial-decrypt/{bits}/cts={count}"), |b| {
            b.iter(|| shares[0].partial_decrypt(&cts, &mut rng))
        });
        g.bench_function(format!("verify/{bits}/cts={count}"), |b| {
            b.iter(|| key.verify(&cts, &partials[0]).expect("verifies"))
        });
        let refs: Vec<_> = partials.iter().collect();
        g.bench_function(format!("combine-3-of-5/{bits}/cts={count}"), |b| {
            b.iter(|| key.combine(&refs).expect("combines"))
        });
    }
    g.finish();
}

criterion_group!(benches, single, packed, verified, threshold);
criterion_main!(benches);
