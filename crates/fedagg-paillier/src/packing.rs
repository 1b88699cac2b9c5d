//! Many quantized values per plaintext, in fixed-width slots that never carry into each other.

use fedagg_quant::QuantParams;
use num_bigint::BigUint;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use zeroize::Zeroizing;

use crate::{Ciphertext, Encryptor, Error, PrivateKey, PublicKey};

/// Ciphertexts per block of [`Packing::encrypt_on`]: the unit of its randomness streams, and so
/// of its work division.
pub const ENCRYPT_BLOCK: usize = 16;

/// The fixed-base table an encryption uses: one the caller kept, or one built for this call when
/// there are enough ciphertexts to pay for it.
enum Table<'a> {
    Kept(&'a Encryptor),
    BuildIfWorth,
}

/// Slot layout for one key and one quantization: `slot_bits` per value, `slots` values per
/// plaintext, slot `i` at bits `[i k, (i + 1) k)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    slot_bits: u32,
    slots: usize,
}

impl Packing {
    /// Slots as wide as the quantization's modulus, which already holds the sum of
    /// `max_clients` weighted values: sums of that many ciphertexts never carry between slots.
    pub fn new(pk: &PublicKey, quant: &QuantParams) -> Result<Self, Error> {
        Self::with_slot_bits(pk.bits(), quant.modulus().bits())
    }

    /// `floor((key_bits - 1) / slot_bits)` slots of `slot_bits` (1..=64) each, so a full
    /// plaintext stays below `2^(key_bits - 1) < n`.
    pub fn with_slot_bits(key_bits: u32, slot_bits: u32) -> Result<Self, Error> {
        if !(1..=64).contains(&slot_bits) || key_bits <= slot_bits {
            return Err(Error::Packing(format!(
                "slot width {slot_bits} does not fit a {key_bits}-bit key"
            )));
        }
        Ok(Packing {
            slot_bits,
            slots: ((key_bits - 1) / slot_bits) as usize,
        })
    }

    /// Values per ciphertext.
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// Bits per slot.
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }
    /// Ciphertexts needed for `len` values.
    pub fn ciphertexts_for(&self, len: usize) -> usize {
        len.div_ceil(self.slots)
    }

    fn max(&self) -> u64 {
        if self.slot_bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.slot_bits) - 1
        }
    }

    /// Pack `values` (each below `2^slot_bits`) into plaintexts.
    pub fn pack(&self, values: &[u64]) -> Result<Vec<BigUint>, Error> {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| **v > self.max()) {
            return Err(Error::Packing(format!(
                "value {v} at index {i} does not fit a {}-bit slot",
                self.slot_bits
            )));
        }
        let k = self.slot_bits as usize;
        Ok(values
            .chunks(self.slots)
            .map(|chunk| {
                let mut digits = vec![0u32; (chunk.len() * k).div_ceil(32) + 2];
                for (i, &v) in chunk.iter().enumerate() {
                    let bit = i * k;
                    let (word, shift) = (bit / 32, bit % 32);
                    let wide = u128::from(v) << shift;
                    for (j, d) in digits.iter_mut().skip(word).take(4).enumerate() {
                        *d |= (wide >> (32 * j)) as u32;
                    }
                }
                BigUint::new(digits)
            })
            .collect())
    }

    /// Read `len` values back from plaintexts (the inverse of [`Packing::pack`], also for sums).
    pub fn unpack(&self, plaintexts: &[BigUint], len: usize) -> Result<Vec<u64>, Error> {
        if plaintexts.len() != self.ciphertexts_for(len) {
            return Err(Error::Packing(format!(
                "{} plaintexts for {len} values, expected {}",
                plaintexts.len(),
                self.ciphertexts_for(len)
            )));
        }
        let k = self.slot_bits as usize;
        let mut out = Vec::with_capacity(len);
        for (ci, pt) in plaintexts.iter().enumerate() {
            if pt.bits() > (self.slots * k) as u64 {
                return Err(Error::Packing("plaintext overflows its slots".into()));
            }
            let digits = pt.to_u32_digits();
            let in_this = (len - ci * self.slots).min(self.slots);
            for i in 0..in_this {
                let bit = i * k;
                let (word, shift) = (bit / 32, bit % 32);
                let mut wide: u128 = 0;
                for j in 0..4 {
                    let d = digits.get(word + j).copied().unwrap_or(0);
                    wide |= u128::from(d) << (32 * j);
                }
                out.push(((wide >> shift) as u64) & self.max());
            }
        }
        Ok(out)
    }

    /// Pack and encrypt (DJN). Builds a fixed-base table when there are enough ciphertexts to pay
    /// for it; a client encrypting several vectors under one key should build an
    /// [`Encryptor`](crate::Encryptor) once and call [`Packing::encrypt_with`].
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        pk: &PublicKey,
        values: &[u64],
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>, Error> {
        self.check_key(pk)?;
        if self.ciphertexts_for(values.len()) >= 32 {
            self.encrypt_with(&pk.encryptor(), values, rng)
        } else {
            self.pack(values)?
                .iter()
                .map(|m| pk.encrypt(m, rng))
                .collect()
        }
    }

    /// Pack and encrypt on up to `threads` threads. The ciphertexts come in blocks of
    /// `ENCRYPT_BLOCK` (16), each encrypted with randomness from its own ChaCha20 stream, keyed by
    /// 32 bytes drawn from `rng` in block order: the same `rng` gives the same ciphertexts
    /// whatever the number of threads. (The keys determine the ciphertexts' randomness, so they
    /// are zeroized after use.)
    pub fn encrypt_on<R: RngCore + CryptoRng>(
        &self,
        pk: &PublicKey,
        values: &[u64],
        rng: &mut R,
        threads: usize,
    ) -> Result<Vec<Ciphertext>, Error> {
        self.encrypt_blocks(pk, Table::BuildIfWorth, values, rng, threads)
    }

    /// [`Packing::encrypt_on`] with a fixed-base encryptor built earlier (a client keeps one per
    /// key, so the table's cost is paid once): the same ciphertexts from the same `rng`.
    pub fn encrypt_with_on<R: RngCore + CryptoRng>(
        &self,
        enc: &Encryptor,
        values: &[u64],
        rng: &mut R,
        threads: usize,
    ) -> Result<Vec<Ciphertext>, Error> {
        self.encrypt_blocks(enc.public_key(), Table::Kept(enc), values, rng, threads)
    }

    fn encrypt_blocks<R: RngCore + CryptoRng>(
        &self,
        pk: &PublicKey,
        table: Table<'_>,
        values: &[u64],
        rng: &mut R,
        threads: usize,
    ) -> Result<Vec<Ciphertext>, Error> {
        self.check_key(pk)?;
        let plaintexts = self.pack(values)?;
        // The table only once the key and the values are known good.
        let built;
        let enc = match table {
            Table::Kept(e) => Some(e),
            Table::BuildIfWorth if plaintexts.len() >= 32 => {
                built = pk.encryptor_on(threads);
                Some(&built)
            }
            Table::BuildIfWorth => None,
        };
        let blocks: Vec<(&[BigUint], Zeroizing<[u8; 32]>)> = plaintexts
            .chunks(ENCRYPT_BLOCK)
            .map(|ms| {
                let mut key = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut key[..]);
                (ms, key)
            })
            .collect();
        let encrypt_run = |group: &[(&[BigUint], Zeroizing<[u8; 32]>)]| {
            let mut out = Vec::new();
            for (ms, key) in group {
                let mut r = ChaCha20Rng::from_seed(**key);
                for m in *ms {
                    out.push(match enc {
                        Some(e) => e.encrypt(m, &mut r)?,
                        None => pk.encrypt(m, &mut r)?,
                    });
                }
            }
            Ok::<_, Error>(out)
        };
        fedagg_par::try_concat_runs(&blocks, threads, encrypt_run)
    }

    /// Pack and encrypt with a prebuilt fixed-base encryptor.
    pub fn encrypt_with<R: RngCore + CryptoRng>(
        &self,
        enc: &Encryptor,
        values: &[u64],
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>, Error> {
        self.check_key(enc.public_key())?;
        self.pack(values)?
            .iter()
            .map(|m| enc.encrypt(m, rng))
            .collect()
    }

    /// Decrypt and unpack `len` values.
    pub fn decrypt(
        &self,
        sk: &PrivateKey,
        cts: &[Ciphertext],
        len: usize,
    ) -> Result<Vec<u64>, Error> {
        self.decrypt_on(sk, cts, len, 1)
    }

    /// [`Packing::decrypt`] on up to `threads` threads, each decrypting a contiguous run of the
    /// ciphertexts: the same values whatever `threads` is.
    pub fn decrypt_on(
        &self,
        sk: &PrivateKey,
        cts: &[Ciphertext],
        len: usize,
        threads: usize,
    ) -> Result<Vec<u64>, Error> {
        self.check_key(sk.public())?;
        let pts = fedagg_par::try_concat_runs(cts, threads, |run| {
            run.iter()
                .map(|c| sk.decrypt(c))
                .collect::<Result<Vec<_>, _>>()
        })?;
        self.unpack(&pts, len)
    }

    fn check_key(&self, pk: &PublicKey) -> Result<(), Error> {
        if (self.slots as u64) * u64::from(self.slot_bits) >= u64::from(pk.bits()) {
            return Err(Error::Packing("layout does not fit this key".into()));
        }
        Ok(())
    }
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
    fn capacity() {
        assert_eq!(Packing::with_slot_bits(2048, 15).unwrap().slots(), 136);
        assert_eq!(Packing::with_slot_bits(2048, 26).unwrap().slots(), 78);
        assert_eq!(Packing::with_slot_bits(3072, 26).unwrap().slots(), 118);
        assert!(Packing::with_slot_bits(64, 64).is_err());
        assert!(Packing::with_slot_bits(2048, 0).is_err());
        let p = Packing::with_slot_bits(2048, 8).unwrap();
        assert!(p.pack(&[256]).is_err());
        assert!(p.unpack(&[], 1).is_err());
    }

    proptest! {
        #[test]
        fn pack_unpack_round_trip(
            bits in 1u32..=64,
            raw in proptest::collection::vec(any::<u64>(), 0..300),
        ) {
            let p = Packing::with_slot_bits(1024, bits).unwrap();
            let values: Vec<u64> = raw.iter().map(|v| if bits == 64 { *v } else { v & ((1 << bits) - 1) }).collect();
            let pts = p.pack(&values).unwrap();
            prop_assert_eq!(pts.len(), p.ciphertexts_for(values.len()));
            prop_assert!(pts.iter().all(|m| m.bits() < 1024));
            prop_assert_eq!(p.unpack(&pts, values.len()).unwrap(), values);
        }
    }

    #[test]
    fn sum_of_packed_encryptions_is_the_slotwise_sum_including_extremes() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sk = keygen(512, &mut rng).unwrap();
        let pk = sk.public();
        // 20 clients, T = 1000 levels, weights up to 3: slot width from the quantization.
        let quant = QuantParams::with_minimal_modulus(1.0, 1000, 3, 20).unwrap();
        let p = Packing::new(pk, &quant).unwrap();
        let len = 3 * p.slots() + 5;
        let mut total = vec![0u64; len];
        let mut acc: Vec<Ciphertext> = vec![pk.zero(); p.ciphertexts_for(len)];
        for client in 0..20u64 {
            // extremes: every value at the top of its range for client 0, zero for client 1
            let values: Vec<u64> = (0..len as u64)
                .map(|i| match client {
                    0 => 3 * 1000,
                    1 => 0,
                    _ => (i * 7 + client * 13) % 3001,
                })
                .collect();
            for (t, v) in total.iter_mut().zip(&values) {
                *t += v;
            }
            let cts = p.encrypt(pk, &values, &mut rng).unwrap();
            for (a, c) in acc.iter_mut().zip(&cts) {
                pk.add_assign(a, c);
            }
        }
        assert_eq!(p.decrypt(&sk, &acc, len).unwrap(), total);
        // Under a subgroup key too, and a textbook ciphertext in the sum is refused.
        let sk = crate::keygen_subgroup(1024, &mut rng).unwrap();
        let pk = sk.public();
        let p = Packing::new(pk, &quant).unwrap();
        let values: Vec<u64> = (0..len as u64).map(|i| i % 3001).collect();
        let mut cts = p.encrypt(pk, &values, &mut rng).unwrap();
        assert_eq!(p.decrypt_on(&sk, &cts, len, 2).unwrap(), values);
        let textbook = pk.encrypt_textbook(&BigUint::from(1u32), &mut rng).unwrap();
        pk.add_assign(&mut cts[1], &textbook);
        assert_eq!(p.decrypt_on(&sk, &cts, len, 2), Err(Error::OutsideSubgroup));
    }

    /// The parallel encryption gives the one-thread ciphertexts, bit for bit, from the same
    /// generator, across block boundaries and with and without the fixed-base table; and they
    /// decrypt.
    #[test]
    fn encryption_on_any_number_of_threads_is_the_same() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let sk = keygen(512, &mut rng).unwrap();
        let pk = sk.public();
        let p = Packing::with_slot_bits(512, 16).unwrap();
        for cts in [3, ENCRYPT_BLOCK + 1, 2 * ENCRYPT_BLOCK + 7] {
            let len = cts * p.slots() - 2;
            let values: Vec<u64> = (0..len as u64).map(|i| (i * 2654435761) % 65536).collect();
            let one = p
                .encrypt_on(pk, &values, &mut ChaCha20Rng::seed_from_u64(9), 1)
                .unwrap();
            assert_eq!(one.len(), cts);
            for threads in [2, 3, 8] {
                let many = p
                    .encrypt_on(pk, &values, &mut ChaCha20Rng::seed_from_u64(9), threads)
                    .unwrap();
                assert_eq!(many, one, "{cts} ciphertexts on {threads} threads");
            }
            assert_eq!(p.decrypt(&sk, &one, len).unwrap(), values);
            for threads in [2, 3, 8] {
                assert_eq!(p.decrypt_on(&sk, &one, len, threads).unwrap(), values);
            }
            // A kept encryptor gives the same ciphertexts (with its table even below 32).
            let kept = pk.encryptor();
            for threads in [1, 3] {
                let with = p
                    .encrypt_with_on(&kept, &values, &mut ChaCha20Rng::seed_from_u64(9), threads)
                    .unwrap();
                assert_eq!(with, one, "kept encryptor, {threads} threads");
            }
            // Fresh randomness from another generator.
            let other = p
                .encrypt_on(pk, &values, &mut ChaCha20Rng::seed_from_u64(10), 2)
                .unwrap();
            assert_ne!(other, one);
        }
    }
}
