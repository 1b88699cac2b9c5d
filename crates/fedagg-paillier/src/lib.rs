//! Paillier additive homomorphic encryption (Paillier 1999) with `g = n + 1`, CRT decryption,
//! the short-exponent encryption of Damgård, Jurik and Nielsen, and packing of many quantized
//! values per ciphertext.
//!
//! **Central choice:** a ciphertext carries a whole slice of the update. Values come from
//! [`fedagg_quant::QuantParams`], which already guarantees that the sum of `max_clients` of them
//! fits in `k` bits; a [`Packing`] therefore gives every value a `k`-bit slot and puts
//! `floor((|n| - 1) / k)` slots in one plaintext, so sums never carry between slots or wrap mod `n`.
//! Negative values need no sign handling: quantization already offsets `[-c, c]` onto `[0, T]`, and
//! decoding removes the offsets.
//!
//! ```
//! use fedagg_paillier::{keygen, Packing};
//! use fedagg_quant::QuantParams;
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::{OsRng, SeedableRng};
//!
//! let mut rng = ChaCha20Rng::from_rng(OsRng).unwrap();
//! let sk = keygen(1024, &mut rng)?; // 2048 in production
//! let pk = sk.public();
//! let quant = QuantParams::with_minimal_modulus(1.0, 1 << 12, 16, 1000).unwrap();
//! let packing = Packing::new(pk, &quant)?;
//!
//! // Two clients encrypt their encoded updates; the server adds ciphertexts slot-wise.
//! let a = quant.encode_weighted(&[0.5, -0.25, 0.0], 3, &mut rng).unwrap();
//! let b = quant.encode_weighted(&[-0.5, 0.75, 1.0], 1, &mut rng).unwrap();
//! let mut sum = packing.encrypt(pk, &a, &mut rng)?;
//! for (acc, c) in sum.iter_mut().zip(&packing.encrypt(pk, &b, &mut rng)?) {
//!     pk.add_assign(acc, c);
//! }
//! // The key holder decrypts only the aggregate and decodes the weighted mean.
//! let aggregate = packing.decrypt(&sk, &sum, a.len())?;
//! let (mean, total_weight) = quant.decode_weighted_mean(&aggregate).unwrap();
//! assert_eq!(total_weight, 4);
//! assert!((mean[0] - 0.25).abs() <= quant.step()); // (3 x 0.5 - 0.5) / 4
//! # Ok::<(), fedagg_paillier::Error>(())
//! ```
//!
//! Encryption:
//! - [`PublicKey::encrypt`] (default) is DJN: `c = (1 + m n) hs^r mod n^2` with `hs = (-x^2)^n` fixed
//!   in the public key and `r` a random `ceil(|n|/2) + 128`-bit exponent. Its semantic security rests
//!   on DCR *plus* the assumption that such short exponents are indistinguishable from full ones
//!   (DJN 2010, section 4.1); keys need `p = q = 3 (mod 4)`, which [`keygen`] ensures.
//! - [`PublicKey::encrypt_textbook`] is `c = (1 + m n) r^n mod n^2` with `r` uniform in `Z_n*`: DCR only,
//!   about twice as slow.
//!
//! Decryption is by CRT with the exponents `p - 1` and `q - 1`; a key from [`keygen_subgroup`]
//! decrypts about four times faster with 256-bit exponents, under an extra assumption and for DJN
//! ciphertexts only (docs/paillier.md). [`Packing::decrypt_on`] spreads a sum's ciphertexts over
//! threads.
//!
//! Constant time: none of the big-integer arithmetic here is constant-time (`num-bigint` is not).
//! Encryption leaks timing about the random exponent and the plaintext's size; decryption leaks
//! timing about the ciphertext and the key. Run decryption where its timing is not observable by
//! an attacker (the key holder's own machine), not as a network oracle.
//!
//! Secrets: [`PrivateKey`] has no `Clone` and prints no secret in `Debug`; its primes and CRT
//! values are overwritten with zeros on drop. Temporaries inside `num-bigint`'s arithmetic are not.
//!
//! The crate does no IO, reads no clock and draws no ambient randomness.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod arith;
mod keyfile;
mod keys;
mod packing;
mod prime;
mod subgroup;
mod table;
pub mod threshold;
mod wire;

pub use arith::BACKEND;
pub use keyfile::{is_key_share, is_threshold_key};
pub use keys::{keygen, Ciphertext, PrivateKey, PublicKey, MIN_KEY_BITS, MIN_SERVICE_KEY_BITS};
/// The big integers of keys, plaintexts and ciphertexts.
pub use num_bigint::BigUint;
pub use packing::Packing;
pub use subgroup::{keygen_subgroup, SUBGROUP_BITS};
pub use table::{Encryptor, MAX_TABLE_BYTES};
pub use threshold::{KeyShare, PartialDecryption, ThresholdKey};
pub use wire::{
    decode_ciphertexts, decode_partials, encode_ciphertexts, encode_partials, encoded_len,
    partials_len,
};

use core::fmt;

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Key size not supported.
    KeySize(u32),
    /// A plaintext is not below `n`.
    PlaintextTooLarge,
    /// A ciphertext is not a unit below `n^2`.
    InvalidCiphertext,
    /// A subgroup key ([`keygen_subgroup`]) was asked to decrypt a ciphertext outside its
    /// subgroup: not (a sum of) DJN encryptions under this key.
    OutsideSubgroup,
    /// Bytes could not be decoded (size, header, field, trailing bytes).
    Malformed(String),
    /// A value does not fit its slot, or a vector does not match its packing.
    Packing(String),
    /// Threshold decryption: a bad threshold, too few or invalid partial decryptions.
    Threshold(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeySize(b) => write!(
                f,
                "key size {b} is not supported: use a multiple of 256 bits from {MIN_KEY_BITS} to 8192"
            ),
            Error::PlaintextTooLarge => f.write_str("plaintext is not below the modulus n"),
            Error::InvalidCiphertext => f.write_str("ciphertext is not a unit modulo n^2"),
            Error::OutsideSubgroup => f.write_str(
                "ciphertext is outside the key's subgroup (not DJN encryptions under this key)",
            ),
            Error::Malformed(why) => write!(f, "malformed paillier data: {why}"),
            Error::Packing(why) => write!(f, "packing: {why}"),
            Error::Threshold(why) => write!(f, "threshold decryption: {why}"),
        }
    }
}

impl std::error::Error for Error {}
