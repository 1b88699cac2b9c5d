//! Paillier bytes and texts from peers and operators: key files and ciphertext vectors.
#![no_main]

use std::sync::OnceLock;

use fedagg_paillier::{decode_ciphertexts, keygen, PrivateKey, PublicKey};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keygen(512, &mut ChaCha20Rng::seed_from_u64(5)).expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_ciphertexts(key().public(), data, 8);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::from_text(text);
        let _ = PrivateKey::from_text(text);
    }
});
