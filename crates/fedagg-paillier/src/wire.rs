//! Compact ciphertext vectors: a header, then fixed-width big-endian ciphertexts.
//!
//! Layout: `b"PA"`, version 1, type 1, the ciphertext width `w = 2 ceil(|n|/8)` (u32 LE), the count
//! (u32 LE), then `count x w` bytes. The decoder checks the size limit first, then the header
//! against the key, then every ciphertext (a unit below `n^2`), and rejects trailing bytes.

use num_bigint::BigUint;

use crate::{Ciphertext, Error, PublicKey};

const HEADER: [u8; 4] = [b'P', b'A', 1, 1];

/// Bytes of `count` ciphertexts under `pk`, encoded.
pub fn encoded_len(pk: &PublicKey, count: usize) -> usize {
    12 + pk.ciphertext_bytes().saturating_mul(count)
}

/// Encode ciphertexts under `pk`.
pub fn encode_ciphertexts(pk: &PublicKey, cts: &[Ciphertext]) -> Vec<u8> {
    let w = pk.ciphertext_bytes();
    let mut out = Vec::with_capacity(12 + w * cts.len());
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&(w as u32).to_le_bytes());
    out.extend_from_slice(&(cts.len() as u32).to_le_bytes());
    for c in cts {
        let b = c.0.to_bytes_be();
        out.extend(std::iter::repeat_n(0u8, w - b.len()));
        out.extend_from_slice(&b);
    }
    out
}

/// Decode at most `max_count` ciphertexts under `pk`, validating each.
pub fn decode_ciphertexts(
    pk: &PublicKey,
    bytes: &[u8],
    max_count: usize,
) -> Result<Vec<Ciphertext>, Error> {
    let w = pk.ciphertext_bytes();
    let limit = 12 + w.saturating_mul(max_count);
    if bytes.len() > limit {
        return Err(Error::Malformed(format!(
            "{} bytes exceed the limit of {limit}",
            bytes.len()
        )));
    }
    let (head, rest) = bytes
        .split_at_checked(12)
        .ok_or_else(|| Error::Malformed("truncated header".into()))?;
    let (magic, nums) = head.split_at(4);
    if magic != HEADER {
        return Err(Error::Malformed("bad header or version".into()));
    }
    let (wb, cb) = nums.split_at(4);
    let width = u32::from_le_bytes(
        wb.try_into()
            .map_err(|_| Error::Malformed("header".into()))?,
    ) as usize;
    let count = u32::from_le_bytes(
        cb.try_into()
            .map_err(|_| Error::Malformed("header".into()))?,
    ) as usize;
    if width != w {
        return Err(Error::Malformed(format!(
            "ciphertext width {width}, this key uses {w}"
        )));
    }
    if count > max_count || rest.len() != count * w {
        return Err(Error::Malformed(format!(
            "{count} ciphertexts do not match {} body bytes (at most {max_count} allowed)",
            rest.len()
        )));
    }
    rest.chunks_exact(w)
        .map(|c| pk.ciphertext(BigUint::from_bytes_be(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keygen;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn round_trip_and_refusals() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let sk = keygen(512, &mut rng).unwrap();
        let pk = sk.public();
        let cts: Vec<Ciphertext> = (0..5u32)
            .map(|i| pk.encrypt(&BigUint::from(i), &mut rng).unwrap())
            .collect();
        let bytes = encode_ciphertexts(pk, &cts);
        assert_eq!(bytes.len(), 12 + 5 * 128);
        assert_eq!(decode_ciphertexts(pk, &bytes, 5).unwrap(), cts);
        assert!(decode_ciphertexts(pk, &bytes, 4).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_ciphertexts(pk, &trailing, 10).is_err());
        let mut zero = bytes.clone();
        zero[12..12 + 128].fill(0);
        assert_eq!(
            decode_ciphertexts(pk, &zero, 5),
            Err(Error::InvalidCiphertext)
        );
        let mut big = bytes.clone();
        big[12..12 + 128].fill(0xff);
        assert_eq!(
            decode_ciphertexts(pk, &big, 5),
            Err(Error::InvalidCiphertext)
        );
        assert!(decode_ciphertexts(pk, &bytes[..11], 5).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(junk in proptest::collection::vec(any::<u8>(), 0..400), keep in any::<bool>()) {
            let mut rng = ChaCha20Rng::seed_from_u64(9);
            let sk = keygen(512, &mut rng).unwrap();
            let mut m = junk;
            if keep && m.len() >= 12 {
                m[..4].copy_from_slice(&HEADER);
                m[4..8].copy_from_slice(&128u32.to_le_bytes());
            }
            let _ = decode_ciphertexts(sk.public(), &m, 3);
        }
    }
}
