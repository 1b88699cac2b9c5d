//! Paillier bytes and texts from peers and operators: key files (single and threshold), share
//! files, ciphertext vectors, and a threshold holder's partial decryption and its proof.
#![no_main]

use std::sync::OnceLock;

use fedagg_paillier::threshold::{deal_from_primes, random_safe_prime};
use fedagg_paillier::{
    decode_ciphertexts, decode_partials, keygen, Ciphertext, KeyShare, PrivateKey, PublicKey,
    ThresholdKey,
};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keygen(512, &mut ChaCha20Rng::seed_from_u64(5)).expect("key"))
}

/// A small threshold key (3 of 4 holders) and two ciphertexts under it.
fn threshold() -> &'static (ThresholdKey, Vec<Ciphertext>) {
    static KEY: OnceLock<(ThresholdKey, Vec<Ciphertext>)> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let p = random_safe_prime(256, &mut rng);
        let q = random_safe_prime(256, &mut rng);
        let (key, _) = deal_from_primes(&p, &q, 4, 3, &mut rng).expect("safe primes");
        let cts = (0..2u32)
            .map(|m| key.public().encrypt(&m.into(), &mut rng).expect("below n"))
            .collect();
        (key, cts)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_ciphertexts(key().public(), data, 8);
    let (tk, cts) = threshold();
    if let Ok(partial) = decode_partials(tk, data, cts.len()) {
        // Whatever decodes is checked, never trusted: a forged proof must not verify.
        assert!(tk.verify(cts, &partial).is_err());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::from_text(text);
        let _ = PrivateKey::from_text(text);
        let _ = ThresholdKey::from_text(text);
        let _ = KeyShare::from_text(text);
    }
});
