//! Additive lattice encryption of quantized vectors, a second homomorphic backend beside Paillier,
//! built on `tfhe`'s core LWE primitives. Compiled only with the `tfhe` feature (tfhe takes about
//! seven minutes to build on two cores).
//!
//! **Central choice:** no bootstrapping, ever. Participants encrypt with a *compact* LWE public key
//! (2048 values per public-key multiplication, 16 bytes per value on the wire), the server adds
//! ciphertexts as raw wrapping `u64` vectors, and the key holder decrypts the sum. Correctness is
//! guaranteed, not probabilistic: the noise distribution is bounded (TUniform), so
//! [`LatticeParams::new`] refuses any quantization whose `max_clients` summed worst-case noises could
//! reach half a plaintext step.
//!
//! Parameters: LWE dimension 2048, TUniform noise with bound `2^17`, native modulus `2^64`: the
//! public-key encryption parameters tfhe 1.8 ships as
//! `V1_8_PARAM_PKE_TO_BIG_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2`, which Zama sizes for 128-bit
//! security. A value of `k` bits is encoded as `v 2^(64-k)`. Decryption error of one ciphertext is
//! at most `(2n + 1) 2^17` (the key's noise times a binary `r`, the body noise, and the mask noise
//! times the binary secret), so a sum of `N` is exact while `N (2n + 1) 2^17 < 2^(63 - k)`.
//!
//! Secrets: the secret key has no `Clone` or `Debug` and is zeroized on drop. The crate's
//! randomness comes from the caller's CSPRNG (128-bit seeds for tfhe's AES-CTR generators).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "tfhe")]
mod imp;
#[cfg(feature = "tfhe")]
pub use imp::*;
