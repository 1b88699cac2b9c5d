//! Known answers for the mask stream, from independent implementations: OpenSSL 3.0's
//! AES-256-CTR (`openssl enc -aes-256-ctr -K <key> -iv 00..00 -nosalt` over zero bytes) and
//! Python's `hmac`/`hashlib` for HKDF-SHA256 (RFC 5869). They pin the masks across any change of
//! AES backend or crate version: the same seed must give the same stream.
//! `scripts/secagg/mask_kat.py` recomputes them.
#![allow(clippy::unwrap_used)]

use fedagg_secagg::crypto::{apply_masks, keystream, MaskStream};
use fedagg_secagg::{ClientId, Modulus};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_keystream_is_aes_256_ctr_from_a_zero_counter() {
    let key: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    let mut out = [0u8; 48];
    keystream(&key, &mut out);
    let openssl = hex(
        "a73c5576667b7b43a23a9fd930b5465d1f681792a7c4073b9ae1f7a3c6773983\
         c679db19bd5515e51f2ae40c7730aafa",
    );
    assert_eq!(out.to_vec(), openssl);
}

/// A pair mask: key `HKDF-SHA256(salt = session, ikm = agreed, info = label || lo || hi)` (ids as
/// u32 LE, lower first), then 5 keystream bytes per element (k = 33) little-endian, cut to 33
/// bits; added by the lower id, subtracted by the higher.
#[test]
fn a_pair_mask_is_the_hkdf_keyed_stream_cut_to_k_bits() {
    let (agreed, session) = ([7u8; 32], [9u8; 32]);
    let python: [u64; 6] = [
        8_433_754_569,
        4_686_130_349,
        1_623_871_480,
        8_571_471_665,
        3_306_093_495,
        1_036_170_432,
    ];
    let modulus = Modulus::new(33).unwrap();
    let (lo, hi) = (ClientId(3), ClientId(11));
    let mut added = vec![0u64; 6];
    apply_masks(
        &mut added,
        &mut [MaskStream::pair_mask(&agreed, &session, lo, hi, false)],
        modulus,
    );
    assert_eq!(added, python);
    // The other side of the pair (same key whichever id comes first) subtracts it.
    let mut subtracted = vec![0u64; 6];
    apply_masks(
        &mut subtracted,
        &mut [MaskStream::pair_mask(&agreed, &session, hi, lo, true)],
        modulus,
    );
    let want: Vec<u64> = python
        .iter()
        .map(|m| ((1u64 << 33) - m) % (1 << 33))
        .collect();
    assert_eq!(subtracted, want);
}

/// Masks longer than the chunk the expansion works in (1024 elements), ending mid-block, are
/// contiguous keystreams cut into elements, added or subtracted modulo `2^k`: the chunking, the
/// final partial block and the narrower sums used up to 32 bits change nothing.
#[test]
fn long_masks_are_contiguous_keystreams_summed_modulo_2_k() {
    let keys = [[5u8; 32], [6u8; 32], [7u8; 32]];
    let subtract = [false, true, false];
    for bits in [8, 20, 32, 33, 64] {
        let modulus = Modulus::new(bits).unwrap();
        let b = modulus.bytes_per_element();
        let m = 3001;
        let start: Vec<u64> = (0..m as u64).map(|i| (i * 7919) & modulus.mask()).collect();
        let mut want = start.clone();
        for (key, &sub) in keys.iter().zip(&subtract) {
            let mut stream = vec![0u8; m * b];
            keystream(key, &mut stream);
            for (a, w) in want.iter_mut().zip(stream.chunks_exact(b)) {
                let mut le = [0u8; 8];
                le[..b].copy_from_slice(w);
                let x = u64::from_le_bytes(le);
                *a = if sub {
                    a.wrapping_sub(x)
                } else {
                    a.wrapping_add(x)
                } & modulus.mask();
            }
        }
        let mut got = start;
        let mut streams: Vec<MaskStream> = keys
            .iter()
            .zip(&subtract)
            .map(|(key, &sub)| MaskStream::from_key(key, sub))
            .collect();
        apply_masks(&mut got, &mut streams, modulus);
        assert_eq!(got, want, "{bits} bits");
    }
}
