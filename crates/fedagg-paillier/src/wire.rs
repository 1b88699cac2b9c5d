//! Compact ciphertext vectors: a header, then fixed-width big-endian ciphertexts.
//!
//! Layout: `b"PA"`, version 1, type 1, the ciphertext width `w = 2 ceil(|n|/8)` (u32 LE), the count
//! (u32 LE), then `count x w` bytes. The decoder checks the size limit first, then the header
//! against the key, then every ciphertext (a unit below `n^2`), and rejects trailing bytes.
//!
//! A threshold key holder's partial decryption of a ciphertext vector: `b"PA"`, version 1, type
//! 2, the holder's index (u16 LE), two zero bytes, the value width `w` (u32 LE), the response
//! width `z` (u32 LE), the count (u32 LE), then each ciphertext's decryption share (`w` bytes),
//! the proof's challenge (32 bytes) and response (`z` bytes), all big-endian. The decoder checks
//! the same way; the proof itself is checked by [`crate::ThresholdKey::verify`].

use num_bigint::BigUint;

use crate::threshold::{PartialDecryption, ThresholdKey};
use crate::{Ciphertext, Error, PublicKey};

const HEADER: [u8; 4] = [b'P', b'A', 1, 1];
const PARTIALS_HEADER: [u8; 4] = [b'P', b'A', 1, 2];
const PARTIALS_HEAD_LEN: usize = 20;
const CHALLENGE_BYTES: usize = 32;

fn response_bytes(key: &ThresholdKey) -> usize {
    (key.nonce_bits() as usize + 1).div_ceil(8)
}

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

/// Bytes of a partial decryption of `count` ciphertexts under `key`, encoded.
pub fn partials_len(key: &ThresholdKey, count: usize) -> usize {
    PARTIALS_HEAD_LEN
        + key.public().ciphertext_bytes().saturating_mul(count)
        + CHALLENGE_BYTES
        + response_bytes(key)
}

fn put(out: &mut Vec<u8>, x: &BigUint, width: usize) {
    let b = x.to_bytes_be();
    out.extend(std::iter::repeat_n(0u8, width.saturating_sub(b.len())));
    out.extend_from_slice(&b[b.len().saturating_sub(width)..]);
}

/// Encode a holder's partial decryption of a ciphertext vector.
pub fn encode_partials(key: &ThresholdKey, partial: &PartialDecryption) -> Vec<u8> {
    let (w, z) = (key.public().ciphertext_bytes(), response_bytes(key));
    let mut out = Vec::with_capacity(partials_len(key, partial.values.len()));
    out.extend_from_slice(&PARTIALS_HEADER);
    out.extend_from_slice(&partial.index.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    for x in [w, z, partial.values.len()] {
        out.extend_from_slice(&(x as u32).to_le_bytes());
    }
    for v in &partial.values {
        put(&mut out, v, w);
    }
    put(&mut out, &partial.challenge, CHALLENGE_BYTES);
    put(&mut out, &partial.response, z);
    out
}

/// Decode a partial decryption of exactly `count` ciphertexts under `key` (shapes only: verify
/// it against the ciphertexts before using it).
pub fn decode_partials(
    key: &ThresholdKey,
    bytes: &[u8],
    count: usize,
) -> Result<PartialDecryption, Error> {
    let bad = |why: String| Error::Malformed(format!("partial decryption: {why}"));
    let expected = partials_len(key, count);
    if bytes.len() != expected {
        return Err(bad(format!("{} bytes, expected {expected}", bytes.len())));
    }
    let (head, rest) = bytes.split_at(PARTIALS_HEAD_LEN);
    let u32_at = |i: usize| {
        head.get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u32::from_le_bytes(b) as usize)
    };
    if head.get(..4) != Some(&PARTIALS_HEADER[..]) || head.get(6..8) != Some(&[0, 0][..]) {
        return Err(bad("bad header or version".into()));
    }
    let index = head
        .get(4..6)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_le_bytes);
    if key.verification_key(index).is_none() {
        return Err(bad(format!("no holder {index} in this key")));
    }
    let (w, z) = (key.public().ciphertext_bytes(), response_bytes(key));
    if u32_at(8) != w || u32_at(12) != z || u32_at(16) != count {
        return Err(bad(
            "widths or count do not match this key and vector".into()
        ));
    }
    let (values, proof) = rest.split_at(w * count);
    let (e, r) = proof.split_at(CHALLENGE_BYTES);
    Ok(PartialDecryption {
        index,
        values: values.chunks_exact(w).map(BigUint::from_bytes_be).collect(),
        challenge: BigUint::from_bytes_be(e),
        response: BigUint::from_bytes_be(r),
    })
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

    #[test]
    fn partials_round_trip_and_refusals() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let p = crate::threshold::random_safe_prime(256, &mut rng);
        let q = crate::threshold::random_safe_prime(256, &mut rng);
        let (key, shares) = crate::threshold::deal_from_primes(&p, &q, 3, 2, &mut rng).unwrap();
        let cts: Vec<Ciphertext> = (0..3u32)
            .map(|i| key.public().encrypt(&BigUint::from(i), &mut rng).unwrap())
            .collect();
        let part = shares[1].partial_decrypt(&cts, &mut rng);
        let bytes = encode_partials(&key, &part);
        assert_eq!(bytes.len(), partials_len(&key, 3));
        let back = decode_partials(&key, &bytes, 3).unwrap();
        assert_eq!(back, part);
        key.verify(&cts, &back).unwrap();
        assert!(decode_partials(&key, &bytes, 2).is_err());
        assert!(decode_partials(&key, &bytes[..bytes.len() - 1], 3).is_err());
        let mut other = bytes.clone();
        other[4] = 7; // holder 7
        assert!(decode_partials(&key, &other, 3).is_err());
        let mut version = bytes.clone();
        version[3] = 1;
        assert!(decode_partials(&key, &version, 3).is_err());
        let mut junk = bytes;
        junk[25] ^= 0xff; // a decryption share: decodes, fails its proof
        assert!(key
            .verify(&cts, &decode_partials(&key, &junk, 3).unwrap())
            .is_err());
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
