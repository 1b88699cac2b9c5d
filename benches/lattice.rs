//! Criterion benchmarks of the lattice (tfhe compact public key) backend: client encryption,
//! (on one core and on all cores), server addition of N vectors, key-holder decryption, against m. Needs `--features lattice`.
//! `FEDAGG_BENCH_QUICK=1` keeps only small sizes.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fedagg_lattice::{keygen, LatticeParams};
use fedagg_quant::QuantParams;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn label(m: usize) -> String {
    format!("1e{}", (m as f64).log10().round() as u32)
}

fn lattice(c: &mut Criterion) {
    let quick = std::env::var_os("FEDAGG_BENCH_QUICK").is_some();
    let quant = QuantParams::with_minimal_modulus(1.0, 1 << 10, 16, 100).expect("fits");
    let params = LatticeParams::new(&quant).expect("within the noise budget");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (sk, pk) = keygen(params, &mut rng);
    let mut g = c.benchmark_group("lattice");
    g.sample_size(10);
    let sizes: &[usize] = if quick {
        &[1_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    for &m in sizes {
        let values: Vec<u64> = (0..m as u64).map(|i| i % (1 << 14)).collect();
        g.throughput(Throughput::Elements(m as u64));
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        for threads in [1, cores] {
            g.bench_function(format!("encrypt/m={}/threads={threads}", label(m)), |b| {
                b.iter(|| {
                    pk.encrypt_on(&values, &mut rng, threads)
                        .expect("values fit")
                })
            });
        }
        let ct = pk.encrypt(&values, &mut rng).expect("values fit");
        for n in [10usize, 100] {
            g.bench_function(format!("add/m={}/n={n}", label(m)), |b| {
                b.iter(|| {
                    let mut acc = pk.zeros(m);
                    for _ in 0..n {
                        acc.add_assign(&ct).expect("same shape");
                    }
                    acc
                })
            });
        }
        if m <= 100_000 || !quick {
            g.bench_function(format!("decrypt/m={}", label(m)), |b| {
                b.iter(|| sk.decrypt(&ct))
            });
        }
        eprintln!(
            "wire: m = {m}: {} bytes ({:.2} per value; f32: 4)",
            ct.to_bytes().len(),
            ct.to_bytes().len() as f64 / m as f64
        );
    }
    g.finish();
}

criterion_group!(benches, lattice);
criterion_main!(benches);
