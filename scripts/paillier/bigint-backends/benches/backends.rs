//! The operations that dominate Paillier at a 2048-bit key, under three big-integer backends:
//! num-bigint 0.4 (what fedagg-paillier uses), GMP through rug (system libgmp), and
//! crypto-bigint 0.6 (heap `BoxedUint` in Montgomery form, constant-time exponentiation).
//!
//! - `modpow/4096/e=2048`: textbook encryption's `r^n mod n^2`
//! - `modpow/4096/e=1152`: DJN's `hs^r mod n^2` with `r` of |n|/2 + 128 bits
//! - `modpow/2048/e=1024`: one half of CRT decryption, `c^(p-1) mod p^2`
//! - `mulmod/4096`: one homomorphic addition, `a * b mod n^2`
//!
//! Operands are random with a fixed seed; moduli are odd (as n^2 and p^2 are). Each backend's
//! result is checked against num-bigint's before timing.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use num_bigint::BigUint;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn random_bytes(rng: &mut ChaCha20Rng, bits: usize, odd: bool) -> Vec<u8> {
    let mut b = vec![0u8; bits / 8];
    rng.fill_bytes(&mut b);
    b[0] |= 0x80;
    if odd {
        *b.last_mut().unwrap() |= 1;
    }
    b
}

struct Case {
    name: String,
    modulus: Vec<u8>,
    base: Vec<u8>,
    exp: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let mut rng = ChaCha20Rng::seed_from_u64(2048);
    let mut make = |mod_bits: usize, exp_bits: usize| {
        let modulus = random_bytes(&mut rng, mod_bits, true);
        let mut base = random_bytes(&mut rng, mod_bits, false);
        base[0] &= 0x3f; // below the modulus
        let exp = random_bytes(&mut rng, exp_bits, false);
        Case {
            name: format!("{mod_bits}/e={exp_bits}"),
            modulus,
            base,
            exp,
        }
    };
    vec![make(4096, 2048), make(4096, 1152), make(2048, 1024)]
}

fn crypto_monty(modulus: &[u8], x: &[u8]) -> BoxedMontyForm {
    let bits = (modulus.len() * 8) as u32;
    let m = BoxedUint::from_be_slice(modulus, bits).unwrap();
    let params = BoxedMontyParams::new_vartime(Odd::new(m).unwrap());
    BoxedMontyForm::new(BoxedUint::from_be_slice(x, bits).unwrap(), params)
}

fn bench_modpow(c: &mut Criterion) {
    let mut group = c.benchmark_group("modpow");
    group.sample_size(20);
    for case in cases() {
        let (m, b, e) = (
            BigUint::from_bytes_be(&case.modulus),
            BigUint::from_bytes_be(&case.base),
            BigUint::from_bytes_be(&case.exp),
        );
        let expected = b.modpow(&e, &m);

        let (rm, rb, re) = (
            rug::Integer::from_digits(&case.modulus, rug::integer::Order::Msf),
            rug::Integer::from_digits(&case.base, rug::integer::Order::Msf),
            rug::Integer::from_digits(&case.exp, rug::integer::Order::Msf),
        );
        let got = rb.clone().pow_mod(&re, &rm).unwrap();
        assert_eq!(got.to_string_radix(16), expected.to_str_radix(16));

        let cb = crypto_monty(&case.modulus, &case.base);
        let ce = BoxedUint::from_be_slice(&case.exp, (case.exp.len() * 8) as u32).unwrap();
        let got = cb.pow(&ce).retrieve();
        assert_eq!(BigUint::from_bytes_be(&got.to_be_bytes()), expected);

        group.bench_function(BenchmarkId::new("num-bigint", &case.name), |bch| {
            bch.iter(|| b.modpow(&e, &m))
        });
        group.bench_function(BenchmarkId::new("rug-gmp", &case.name), |bch| {
            bch.iter(|| rb.clone().pow_mod(&re, &rm).unwrap())
        });
        group.bench_function(BenchmarkId::new("crypto-bigint", &case.name), |bch| {
            bch.iter(|| cb.pow(&ce))
        });
    }
    group.finish();
}

fn bench_mulmod(c: &mut Criterion) {
    let mut group = c.benchmark_group("mulmod");
    let case = &cases()[0];
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut other = random_bytes(&mut rng, 4096, false);
    other[0] &= 0x3f;
    let (m, a, b) = (
        BigUint::from_bytes_be(&case.modulus),
        BigUint::from_bytes_be(&case.base),
        BigUint::from_bytes_be(&other),
    );
    let expected = (&a * &b) % &m;
    let (rm, ra, rb) = (
        rug::Integer::from_digits(&case.modulus, rug::integer::Order::Msf),
        rug::Integer::from_digits(&case.base, rug::integer::Order::Msf),
        rug::Integer::from_digits(&other, rug::integer::Order::Msf),
    );
    let got = rug::Integer::from(&ra * &rb) % &rm;
    assert_eq!(got.to_string_radix(16), expected.to_str_radix(16));
    let (ca, cb) = (crypto_monty(&case.modulus, &case.base), crypto_monty(&case.modulus, &other));
    assert_eq!(BigUint::from_bytes_be(&(&ca * &cb).retrieve().to_be_bytes()), expected);

    group.bench_function("num-bigint/4096", |bch| bch.iter(|| (&a * &b) % &m));
    group.bench_function("rug-gmp/4096", |bch| {
        bch.iter(|| rug::Integer::from(&ra * &rb) % &rm)
    });
    group.bench_function("crypto-bigint/4096", |bch| bch.iter(|| &ca * &cb));
    group.finish();
}

criterion_group!(benches, bench_modpow, bench_mulmod);
criterion_main!(benches);
