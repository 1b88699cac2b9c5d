use core::fmt;

use fedagg_quant::QuantParams;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use tfhe::core_crypto::algorithms::lwe_encryption::re_randomization::rerand_encrypt_lwe_compact_ciphertext_list_with_compact_public_key as encrypt_compact;
use tfhe::core_crypto::algorithms::slice_algorithms::slice_binary_semi_reverse_negacyclic_convolution;
use tfhe::core_crypto::commons::math::random::{Seed, Seeder};
use tfhe::core_crypto::prelude::*;
use zeroize::Zeroizing;

/// LWE dimension of the compact public key (and values per public-key multiplication).
pub const LWE_DIMENSION: usize = 2048;
/// log2 of the TUniform noise bound.
pub const NOISE_BOUND_LOG2: u32 = 17;

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The quantization's values are too wide for the noise budget of `max_clients` additions.
    NoiseBudget(String),
    /// A value does not fit `k` bits.
    ValueTooLarge {
        /// Its index.
        index: usize,
    },
    /// Bytes could not be decoded, or shapes do not match.
    Malformed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoiseBudget(why) => write!(f, "noise budget: {why}"),
            Error::ValueTooLarge { index } => {
                write!(f, "value at index {index} exceeds the slot width")
            }
            Error::Malformed(why) => write!(f, "malformed lattice ciphertext: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The message width and addition budget, checked against the noise bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatticeParams {
    bits: u32,
    max_clients: u64,
}

impl LatticeParams {
    /// Values of `quant.modulus().bits()` bits, sums of up to `quant.max_clients()`. Refused
    /// unless `max_clients (2n + 1) 2^17 < 2^(63 - k)`.
    pub fn new(quant: &QuantParams) -> Result<Self, Error> {
        let bits = quant.modulus().bits();
        let max_clients = quant.max_clients();
        let worst =
            u128::from(max_clients) * (2 * LWE_DIMENSION as u128 + 1) * (1u128 << NOISE_BOUND_LOG2);
        if bits >= 63 || worst >= 1u128 << (63 - bits) {
            return Err(Error::NoiseBudget(format!(
                "{max_clients} additions of {bits}-bit values: worst-case noise {worst} must stay \
                 below 2^{}",
                63u32.saturating_sub(bits)
            )));
        }
        Ok(LatticeParams { bits, max_clients })
    }

    /// Bits per value.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    fn delta_shift(&self) -> u32 {
        64 - self.bits
    }
}

/// Adapts the caller's CSPRNG to tfhe's seeder: 128-bit seeds.
struct RngSeeder<'a, R>(&'a mut R);

impl<R: RngCore + CryptoRng> Seeder for RngSeeder<'_, R> {
    fn seed(&mut self) -> Seed {
        let mut b = [0u8; 16];
        self.0.fill_bytes(&mut b);
        Seed(u128::from_le_bytes(b))
    }
    fn is_available() -> bool {
        true
    }
}

fn noise() -> DynamicDistribution<u64> {
    DynamicDistribution::new_t_uniform(NOISE_BOUND_LOG2)
}

/// The key holder's secret key: a binary LWE key. No `Clone`, no `Debug`, zeroized on drop.
pub struct SecretKey {
    key: LweSecretKeyOwned<u64>,
    params: LatticeParams,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.as_mut().zeroize();
    }
}

/// The compact public key participants encrypt with.
#[derive(Clone)]
pub struct PublicKey {
    pk: LweCompactPublicKeyOwned<u64>,
    params: LatticeParams,
}

impl PublicKey {
    /// The parameters the key was made for.
    pub fn params(&self) -> LatticeParams {
        self.params
    }

    /// Serialize: `b"LK"`, version 1, type 1, then the key's `2 * LWE_DIMENSION` words (u64 LE).
    /// About 32 KiB; shareable.
    pub fn to_bytes(&self) -> Vec<u8> {
        let words = self.pk.as_ref();
        let mut out = Vec::with_capacity(4 + 8 * words.len());
        out.extend_from_slice(&[b'L', b'K', 1, 1]);
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Decode a key written by [`PublicKey::to_bytes`], for values and sums sized by `params`.
    pub fn from_bytes(bytes: &[u8], params: LatticeParams) -> Result<Self, Error> {
        let want = 4 + 8 * 2 * LWE_DIMENSION;
        if bytes.len() != want {
            return Err(Error::Malformed(format!(
                "public key of {} bytes, expected {want}",
                bytes.len()
            )));
        }
        if bytes[..4] != [b'L', b'K', 1, 1] {
            return Err(Error::Malformed("public key: bad header or version".into()));
        }
        let words: Vec<u64> = bytes[4..]
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
            .collect();
        // The length is a power of two (checked above), as from_container requires.
        let pk = LweCompactPublicKey::from_container(words, CiphertextModulus::new_native());
        Ok(PublicKey { pk, params })
    }
}

/// Generate a key pair.
pub fn keygen<R: RngCore + CryptoRng>(
    params: LatticeParams,
    rng: &mut R,
) -> (SecretKey, PublicKey) {
    let mut seeder = RngSeeder(rng);
    let mut secret_gen = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
    let mut enc_gen =
        EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), &mut seeder);
    let key = allocate_and_generate_new_binary_lwe_secret_key(
        LweDimension(LWE_DIMENSION),
        &mut secret_gen,
    );
    let pk = allocate_and_generate_new_lwe_compact_public_key(
        &key,
        noise(),
        CiphertextModulus::new_native(),
        &mut enc_gen,
    );
    (SecretKey { key, params }, PublicKey { pk, params })
}

/// An encrypted vector: one compact list per 2048 values.
#[derive(Clone, PartialEq, Eq)]
pub struct CiphertextVector {
    len: usize,
    chunks: Vec<LweCompactCiphertextListOwned<u64>>,
}

fn chunk_shape(count: usize) -> usize {
    lwe_compact_ciphertext_list_size(LweDimension(LWE_DIMENSION), LweCiphertextCount(count))
}

impl PublicKey {
    /// Encrypt `values` (each below `2^k`) on one thread: [`PublicKey::encrypt_on`] with 1.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        values: &[u64],
        rng: &mut R,
    ) -> Result<CiphertextVector, Error> {
        self.encrypt_on(values, rng, 1)
    }

    /// Encrypt `values` (each below `2^k`) on up to `threads` threads.
    ///
    /// Each compact list of 2048 values draws its randomness from its own ChaCha20 stream, keyed
    /// with 32 bytes drawn from `rng` in list order, so the ciphertext is the same bit for bit
    /// whatever `threads` is. The keys are zeroized after use.
    pub fn encrypt_on<R: RngCore + CryptoRng>(
        &self,
        values: &[u64],
        rng: &mut R,
        threads: usize,
    ) -> Result<CiphertextVector, Error> {
        let bits = self.params.bits;
        if let Some(index) = values.iter().position(|v| bits < 64 && *v >> bits != 0) {
            return Err(Error::ValueTooLarge { index });
        }
        let jobs: Vec<(&[u64], Zeroizing<[u8; 32]>)> = values
            .chunks(LWE_DIMENSION)
            .map(|chunk| {
                let mut key = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut key[..]);
                (chunk, key)
            })
            .collect();
        let encrypt_group = |group: &[(&[u64], Zeroizing<[u8; 32]>)]| {
            group
                .iter()
                .map(|(chunk, key)| self.encrypt_chunk(chunk, key))
                .collect::<Vec<_>>()
        };
        let chunks = fedagg_par::map_runs(&jobs, threads, encrypt_group)
            .into_iter()
            .flatten()
            .collect();
        Ok(CiphertextVector {
            len: values.len(),
            chunks,
        })
    }

    /// One compact list of up to 2048 values, its randomness from the stream `key` seeds.
    fn encrypt_chunk(&self, chunk: &[u64], key: &[u8; 32]) -> LweCompactCiphertextListOwned<u64> {
        let mut stream = ChaCha20Rng::from_seed(*key);
        let mut seeder = RngSeeder(&mut stream);
        let mut enc_gen =
            EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), &mut seeder);
        let shift = self.params.delta_shift();
        let encoded =
            PlaintextList::from_container(chunk.iter().map(|v| v << shift).collect::<Vec<u64>>());
        let mut out = LweCompactCiphertextList::new(
            0u64,
            LweDimension(LWE_DIMENSION).to_lwe_size(),
            LweCiphertextCount(chunk.len()),
            CiphertextModulus::new_native(),
        );
        encrypt_compact(
            &self.pk,
            &mut out,
            &encoded,
            noise(),
            noise(),
            enc_gen.noise_generator_mut(),
        );
        out
    }

    /// An encryption of zeros of length `len` with no randomness: the identity for sums.
    pub fn zeros(&self, len: usize) -> CiphertextVector {
        let chunks = (0..len.div_ceil(LWE_DIMENSION))
            .map(|i| {
                let count = (len - i * LWE_DIMENSION).min(LWE_DIMENSION);
                LweCompactCiphertextList::new(
                    0u64,
                    LweDimension(LWE_DIMENSION).to_lwe_size(),
                    LweCiphertextCount(count),
                    CiphertextModulus::new_native(),
                )
            })
            .collect();
        CiphertextVector { len, chunks }
    }
}

impl CiphertextVector {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Homomorphic addition in place: a wrapping add of the raw containers.
    pub fn add_assign(&mut self, other: &CiphertextVector) -> Result<(), Error> {
        if self.len != other.len {
            return Err(Error::Malformed(format!(
                "adding a vector of {} values to one of {}",
                other.len, self.len
            )));
        }
        for (a, b) in self.chunks.iter_mut().zip(&other.chunks) {
            for (x, y) in a.as_mut().iter_mut().zip(b.as_ref()) {
                *x = x.wrapping_add(*y);
            }
        }
        Ok(())
    }

    /// Serialize: `b"LA"`, version 1, type 1, the value count (u64 LE), then every chunk's
    /// container as u64 LE.
    pub fn to_bytes(&self) -> Vec<u8> {
        let words: usize = self.chunks.iter().map(|c| c.as_ref().len()).sum();
        let mut out = Vec::with_capacity(12 + 8 * words);
        out.extend_from_slice(&[b'L', b'A', 1, 1]);
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        for c in &self.chunks {
            for w in c.as_ref() {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Bytes of an encoded vector of `len` values.
    pub fn encoded_len(len: usize) -> usize {
        let words: usize = (0..len.div_ceil(LWE_DIMENSION))
            .map(|i| chunk_shape((len - i * LWE_DIMENSION).min(LWE_DIMENSION)))
            .sum();
        12 + 8 * words
    }

    /// Decode a vector of exactly `expected_len` values (so the size limit follows from it).
    pub fn from_bytes(bytes: &[u8], expected_len: usize) -> Result<Self, Error> {
        let want = Self::encoded_len(expected_len);
        if bytes.len() != want {
            return Err(Error::Malformed(format!(
                "{} bytes, expected {want} for {expected_len} values",
                bytes.len(),
            )));
        }
        let (head, body) = bytes.split_at(12);
        if head.get(..4) != Some(&[b'L', b'A', 1, 1][..]) {
            return Err(Error::Malformed("bad header or version".into()));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(head.get(4..12).unwrap_or(&[0; 8]));
        if u64::from_le_bytes(len_bytes) != expected_len as u64 {
            return Err(Error::Malformed("value count does not match".into()));
        }
        let mut words_iter = body
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        let chunks = (0..expected_len.div_ceil(LWE_DIMENSION))
            .map(|i| {
                let count = (expected_len - i * LWE_DIMENSION).min(LWE_DIMENSION);
                let container: Vec<u64> = words_iter.by_ref().take(chunk_shape(count)).collect();
                LweCompactCiphertextList::from_container(
                    container,
                    LweDimension(LWE_DIMENSION).to_lwe_size(),
                    LweCiphertextCount(count),
                    CiphertextModulus::new_native(),
                )
            })
            .collect();
        Ok(CiphertextVector {
            len: expected_len,
            chunks,
        })
    }
}

impl SecretKey {
    /// Decrypt a (summed) vector straight from its compact lists, and round each value to the
    /// nearest multiple of `2^(64-k)`.
    ///
    /// Ciphertext `j` of a compact list with mask polynomial `a` has mask `a X^j` in
    /// `Z_2^64[X]/(X^N + 1)` (tfhe's expansion). So the products `<a X^j, s>` of a whole list with
    /// the key are the coefficients of one negacyclic product: with `p = a rev(s)`,
    /// `<a X^j, s> = p_(N-1-j)`. One product per 2048 values (tfhe's exact NTT for a binary
    /// operand) replaces expanding each list into 2048 full LWE ciphertexts; its arithmetic does
    /// not depend on the key's bits.
    pub fn decrypt(&self, ct: &CiphertextVector) -> Vec<u64> {
        let shift = self.params.delta_shift();
        let mask = if self.params.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.params.bits) - 1
        };
        let n = LWE_DIMENSION;
        let mut product = Zeroizing::new(vec![0u64; n]);
        let mut out = Vec::with_capacity(ct.len);
        for chunk in &ct.chunks {
            let (masks, bodies) = chunk.get_mask_and_body_list();
            let Some(a) = masks.iter().next() else {
                continue;
            };
            slice_binary_semi_reverse_negacyclic_convolution(
                &mut product[..],
                a.as_ref(),
                self.key.as_ref(),
            );
            out.extend(bodies.as_ref().iter().enumerate().map(|(j, b)| {
                let phase = b.wrapping_sub(product[n - 1 - j]);
                (phase.wrapping_add(1u64 << (shift - 1)) >> shift) & mask
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests;
