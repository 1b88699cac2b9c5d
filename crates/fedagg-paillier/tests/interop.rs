//! Interoperability with python-paillier (`phe`), an independent implementation: we decrypt its
//! ciphertexts (committed vectors), and it decrypts ours (a script in the repo, run here when
//! python3 and phe are installed; otherwise the test reports the skip loudly).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

use fedagg_paillier::{keygen, PrivateKey, PublicKey};
use num_bigint::BigUint;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn hex(s: &str) -> BigUint {
    BigUint::parse_bytes(s.as_bytes(), 16).unwrap()
}

/// A public key for `n` alone: decryption does not use `hs`, so any unit serves.
fn public_for(n: BigUint) -> PublicKey {
    let n_sq = &n * &n;
    let hs = (&n - 4u32).modpow(&n, &n_sq); // (-2^2)^n
    PublicKey::from_parts(n, hs).unwrap()
}

#[test]
fn we_decrypt_python_paillier_ciphertexts() {
    let text = include_str!("vectors/phe.txt");
    let mut keys = 0;
    let mut checked = 0;
    let mut lines = text.lines().filter(|l| !l.starts_with('#')).peekable();
    while let Some(line) = lines.next() {
        assert!(line.starts_with("key "), "{line}");
        let n = hex(lines.next().unwrap().strip_prefix("n ").unwrap());
        let p = hex(lines.next().unwrap().strip_prefix("p ").unwrap());
        let q = hex(lines.next().unwrap().strip_prefix("q ").unwrap());
        let sk = PrivateKey::from_primes(public_for(n), p, q).unwrap();
        keys += 1;
        while let Some(l) = lines.peek() {
            if !l.starts_with("pt ") {
                break;
            }
            let parts: Vec<&str> = lines.next().unwrap().split(' ').collect();
            let (m, c) = (hex(parts[1]), hex(parts[3]));
            let c = sk.public().ciphertext(c).unwrap();
            assert_eq!(sk.decrypt(&c).unwrap(), m);
            checked += 1;
        }
    }
    assert_eq!((keys, checked), (2, 20));
}

#[test]
fn python_paillier_decrypts_ours() {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let sk = keygen(1024, &mut rng).unwrap();
    let pk = sk.public();
    let n = pk.n().clone();
    let plaintexts = [
        BigUint::from(0u32),
        BigUint::from(1u32),
        &n - 1u32,
        BigUint::from(u64::MAX),
        &n / 3u32,
    ];
    let (p, q) = sk.primes();
    let mut file = format!("n {n:x}\np {p:x}\nq {q:x}\n");
    for (i, m) in plaintexts.iter().enumerate() {
        // alternate DJN and textbook encryption
        let c = if i % 2 == 0 {
            pk.encrypt(m, &mut rng).unwrap()
        } else {
            pk.encrypt_textbook(m, &mut rng).unwrap()
        };
        file.push_str(&format!("ct {:x}\n", c.as_biguint()));
    }
    let path = std::env::temp_dir().join(format!("fedagg-phe-{}.txt", std::process::id()));
    std::fs::write(&path, file).unwrap();
    // (the manifest folder at run time: a test binary built from another checkout that shares
    // the target folder must still find this checkout's script)
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let script = format!("{dir}/../../scripts/paillier/phe_decrypt.py");
    let out = Command::new("python3").arg(script).arg(&path).output();
    let _ = std::fs::remove_file(&path);
    let skip = |why: &str| {
        eprintln!("\n*** SKIPPED python_paillier_decrypts_ours: {why} ***");
        eprintln!("*** install it with: python3 -m pip install phe==1.5.0 ***\n");
    };
    let out = match out {
        Ok(o) => o,
        Err(e) => return skip(&format!("python3 could not run ({e})")),
    };
    if out.status.code() == Some(3) {
        return skip("the phe package is not installed");
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<BigUint> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(hex)
        .collect();
    assert_eq!(got, plaintexts);
}
