//! Lattice bytes from peers: a key holder's public key and a participant's ciphertext vector,
//! then what the service does with them (add into the sum, decrypt, encrypt under the key).
#![no_main]

use std::sync::OnceLock;

use fedagg_lattice::{keygen, CiphertextVector, LatticeParams, PublicKey, SecretKey, LWE_DIMENSION};
use fedagg_quant::QuantParams;
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Values per ciphertext vector: a whole chunk's worth would make every execution slow.
const LEN: usize = 3;

fn keys() -> &'static (SecretKey, PublicKey) {
    static KEYS: OnceLock<(SecretKey, PublicKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let quant = QuantParams::with_minimal_modulus(1.0, 1 << 10, 16, 8).expect("quant");
        let params = LatticeParams::new(&quant).expect("params");
        keygen(params, &mut ChaCha20Rng::seed_from_u64(3))
    })
}

fuzz_target!(|data: &[u8]| {
    let (sk, pk) = keys();
    // As sent: the decoders refuse every wrong length, header and count.
    let _ = PublicKey::from_bytes(data, pk.params());
    let _ = CiphertextVector::from_bytes(data, LEN);
    // Past those checks, any words: the sum, the decryption and an encryption under a key made of
    // them must not panic.
    let mut ct = vec![b'L', b'A', 1, 1];
    ct.extend_from_slice(&(LEN as u64).to_le_bytes());
    ct.extend_from_slice(data);
    ct.resize(CiphertextVector::encoded_len(LEN), 0);
    if let Ok(c) = CiphertextVector::from_bytes(&ct, LEN) {
        let mut sum = pk.zeros(LEN);
        if sum.add_assign(&c).is_ok() {
            let _ = sk.decrypt(&sum);
        }
    }
    let mut key = vec![b'L', b'K', 1, 1];
    key.extend_from_slice(data);
    key.resize(4 + 8 * 2 * LWE_DIMENSION, 0);
    if let Ok(k) = PublicKey::from_bytes(&key, pk.params()) {
        let _ = k.encrypt(&[1, 2, 3], &mut ChaCha20Rng::seed_from_u64(4));
    }
});
