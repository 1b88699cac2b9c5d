//! The Paillier fixed-base table a participant keeps between rounds.
//!
//! DJN encryption walks a table of powers of the key's `hs`: at 2048 bits, about 10 MiB built in
//! 160 to 190 ms, against 9 to 19 us a value for the walk itself (a subgroup key's and a standard
//! key's). A participant encrypts under the same
//! key round after round, so the process keeps the table of the last key it used instead of
//! rebuilding it for every update. The ciphertexts are the same either way (the table changes
//! only how `hs^r` is computed).

use std::sync::{Arc, Mutex, PoisonError};

use fedagg_paillier::{Ciphertext, Encryptor, Packing, PublicKey};
use rand_chacha::ChaCha20Rng;

/// Ciphertexts from which building a table pays for itself within one update.
const TABLE_FROM: usize = 32;

/// The last key's table (one federation's key at a time is the common case; another key
/// replaces it).
static KEPT: Mutex<Option<Arc<Encryptor>>> = Mutex::new(None);

/// The kept table for `pk`, if it is the last key used.
fn kept(pk: &PublicKey) -> Option<Arc<Encryptor>> {
    let slot = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    slot.as_ref().filter(|e| e.public_key() == pk).cloned()
}

/// Pack and encrypt `values` under `pk` on `threads` threads, with the kept table when there is
/// one for `pk`, building and keeping it when the update is large enough to pay for it.
pub(crate) fn encrypt(
    packing: &Packing,
    pk: &PublicKey,
    values: &[u64],
    rng: &mut ChaCha20Rng,
    threads: usize,
) -> Result<Vec<Ciphertext>, fedagg_paillier::Error> {
    let enc = match kept(pk) {
        Some(e) => Some(e),
        None if packing.ciphertexts_for(values.len()) >= TABLE_FROM => {
            let e = Arc::new(pk.encryptor_on(threads));
            *KEPT.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&e));
            Some(e)
        }
        None => None,
    };
    match enc {
        Some(e) => packing.encrypt_with_on(&e, values, rng, threads),
        None => packing.encrypt_on(pk, values, rng, threads),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_core::SeedableRng;

    /// The kept table gives the ciphertexts a fresh one would, and is replaced by another key's.
    #[test]
    fn the_kept_table_encrypts_as_a_fresh_one_and_follows_the_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sk = fedagg_paillier::keygen(512, &mut rng).unwrap();
        let pk = sk.public();
        let packing = Packing::with_slot_bits(512, 16).unwrap();
        let len = TABLE_FROM * packing.slots();
        let values: Vec<u64> = (0..len as u64).map(|i| i % 65536).collect();
        let fresh = packing
            .encrypt_on(pk, &values, &mut ChaCha20Rng::seed_from_u64(2), 1)
            .unwrap();
        for _ in 0..2 {
            let got = encrypt(&packing, pk, &values, &mut ChaCha20Rng::seed_from_u64(2), 2);
            assert_eq!(got.unwrap(), fresh);
            assert!(kept(pk).is_some());
        }
        let other = fedagg_paillier::keygen(512, &mut rng).unwrap();
        // A small update under another key: no table built, the old one stays.
        encrypt(&packing, other.public(), &values[..10], &mut rng, 1).unwrap();
        assert!(kept(pk).is_some() && kept(other.public()).is_none());
        encrypt(&packing, other.public(), &values, &mut rng, 1).unwrap();
        assert!(kept(pk).is_none() && kept(other.public()).is_some());
        assert_eq!(
            packing
                .decrypt(
                    &other,
                    &encrypt(&packing, other.public(), &values, &mut rng, 1).unwrap(),
                    len
                )
                .unwrap(),
            values
        );
    }
}
