//! The fixed-base table for DJN encryption: `hs^r` as one multiplication per window of `r`,
//! from a table of `hs`'s powers built once per key.

use num_bigint::BigUint;
use rand_core::{CryptoRng, RngCore};

use crate::arith::{self, Fast};
use crate::prime::random_bits;
use crate::{Ciphertext, Error, PublicKey};

/// The largest fixed-base table [`PublicKey::encryptor`] builds: 16 MiB.
pub const MAX_TABLE_BYTES: usize = 16 << 20;

impl PublicKey {
    /// A DJN encryptor with a fixed-base table for `hs`: each encryption then costs about
    /// `ceil(|r| / w)` multiplications instead of a full exponentiation, for the widest window
    /// `w` of at most 8 bits whose table of `ceil(|r| / w) x (2^w - 1)` values of `2 |n|` bits
    /// fits in [`MAX_TABLE_BYTES`] (6 when none does). At 2048 bits that is `w = 7`, 10.2 MiB
    /// and 21 000 multiplications to build, or with a subgroup key's 640-bit `r`, `w = 8`,
    /// 10 MiB and 20 400; at 3072 bits, `w = 6` (12.8 MiB) and `w = 8` (15 MiB). Worth it from a
    /// few dozen encryptions on.
    pub fn encryptor(&self) -> Encryptor {
        self.encryptor_on(1)
    }

    /// [`PublicKey::encryptor`] with the table's rows built on up to `threads` threads: the same
    /// table whatever the number.
    pub fn encryptor_on(&self, threads: usize) -> Encryptor {
        let exp_bits = self.mask_bits();
        let value_bytes = 2 * (self.bits() as usize).div_ceil(8);
        let table_bytes =
            |w: u32| exp_bits.div_ceil(u64::from(w)) as usize * ((1usize << w) - 1) * value_bytes;
        let window = (6..=8)
            .rev()
            .find(|&w| table_bytes(w) <= MAX_TABLE_BYTES)
            .unwrap_or(6);
        self.encryptor_with_window(window, threads)
    }

    /// [`PublicKey::encryptor_on`] with a `window`-bit window (1 to 16).
    pub(crate) fn encryptor_with_window(&self, window: u32, threads: usize) -> Encryptor {
        let exp_bits = self.mask_bits();
        let windows = exp_bits.div_ceil(u64::from(window)) as usize;
        let per = (1usize << window) - 1;
        let n_sq = arith::from_big(self.n_squared());
        // Row i's base hs^(2^(w i)), w squarings after the previous one (the only sequential
        // part, about 3 % of the work); then the rows, which are independent.
        let mut bases = Vec::with_capacity(windows);
        let mut base = arith::from_big(self.hs());
        for _ in 0..windows {
            let next = (0..window).fold(base.clone(), |b, _| arith::mul_mod(&b, &b, &n_sq));
            bases.push(base);
            base = next;
        }
        let row = |base: &Fast| {
            let mut row = Vec::with_capacity(per);
            row.push(base.clone());
            for j in 1..per {
                let next = arith::mul_mod(&row[j - 1], base, &n_sq);
                row.push(next);
            }
            row
        };
        let table = fedagg_par::map_runs(&bases, threads, |run| {
            run.iter().map(row).collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
        Encryptor {
            pk: self.clone(),
            window,
            table,
            n_sq,
        }
    }
}

/// DJN encryption with a precomputed fixed-base table (see [`PublicKey::encryptor`]). Same
/// ciphertext distribution as [`PublicKey::encrypt`]; table lookups depend on the secret exponent,
/// so like the rest of this crate it is not constant-time.
pub struct Encryptor {
    pk: PublicKey,
    window: u32,
    /// `table[i][j - 1] = hs^(j 2^(w i)) mod n^2`, in the build's fast integers.
    table: Vec<Vec<Fast>>,
    n_sq: Fast,
}

impl Encryptor {
    /// The key this encryptor encrypts under.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// A fresh mask `hs^r`, `r` of [`PublicKey::mask_bits`] bits.
    pub fn random_mask<R: RngCore + CryptoRng>(&self, rng: &mut R) -> BigUint {
        let r = random_bits(self.pk.mask_bits(), rng);
        let digits = r.to_u64_digits();
        let mask = (1u64 << self.window) - 1;
        let mut acc = arith::one();
        for (i, row) in self.table.iter().enumerate() {
            let bit = i as u64 * u64::from(self.window);
            let (word, shift) = ((bit / 64) as usize, bit % 64);
            let lo = digits.get(word).copied().unwrap_or(0) >> shift;
            let hi = if shift + u64::from(self.window) > 64 {
                digits.get(word + 1).copied().unwrap_or(0) << (64 - shift)
            } else {
                0
            };
            let d = ((lo | hi) & mask) as usize;
            if let Some(t) = d.checked_sub(1).and_then(|j| row.get(j)) {
                acc = arith::mul_mod(&acc, t, &self.n_sq);
            }
        }
        arith::into_big(acc)
    }

    /// Encrypt `m < n`.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        m: &BigUint,
        rng: &mut R,
    ) -> Result<Ciphertext, Error> {
        let mask = self.random_mask(rng);
        self.pk.encrypt_with_mask(m, &mask)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keygen;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn fixed_base_encryptor_matches_the_direct_exponentiation() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sk = keygen(512, &mut rng).unwrap();
        let pk = sk.public();
        let enc = pk.encryptor();
        for m in [0u32, 1, 77, 123_456_789] {
            let c = enc.encrypt(&BigUint::from(m), &mut rng).unwrap();
            assert_eq!(sk.decrypt(&c).unwrap(), BigUint::from(m));
        }
        // Same mask as hs^r for the same r, whatever the window (the ones `encryptor` picks,
        // and windows straddling 64-bit words unevenly): replay the RNG.
        for window in [1, 5, 6, 7, 8] {
            // The rows built on several threads are the same table.
            let enc = pk.encryptor_with_window(window, 1);
            assert!(enc.table == pk.encryptor_with_window(window, 3).table);
            let mut a = ChaCha20Rng::seed_from_u64(12);
            let mut b = ChaCha20Rng::seed_from_u64(12);
            for _ in 0..3 {
                assert_eq!(enc.random_mask(&mut a), pk.random_mask(&mut b), "{window}");
            }
        }
    }

    #[test]
    fn the_table_takes_the_widest_window_that_fits() {
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        let sk = keygen(2048, &mut rng).unwrap();
        // 1152-bit exponents: a window of 8 would take 18 MiB.
        let enc = sk.public().encryptor();
        assert_eq!((enc.window, enc.table.len()), (7, 165));
        let short = sk.public().clone().with_mask_bits(640).unwrap().encryptor();
        assert_eq!((short.window, short.table.len()), (8, 80));
        for e in [&enc, &short] {
            let bytes = e.table.len() * e.table[0].len() * 512;
            assert!(bytes <= MAX_TABLE_BYTES, "{bytes}");
        }
    }
}
