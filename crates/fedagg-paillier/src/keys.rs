//! Keys, encryption, CRT decryption and the homomorphic operations.

use core::fmt;

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, Zero};
use rand_core::{CryptoRng, RngCore};

use crate::arith::pow_mod;
use crate::prime::{coprime, random_below, random_bits, random_blum_prime};
use crate::subgroup::SUBGROUP_MASK_BITS;
use crate::Error;

/// Smallest key `keygen` makes (the crate's own tests use it for speed).
pub const MIN_KEY_BITS: u32 = 512;

/// Smallest key the service, the SDK and `fedagg keygen` accept: 2048 bits (about 112-bit
/// security; 3072 for 128).
pub const MIN_SERVICE_KEY_BITS: u32 = 2048;

impl PublicKey {
    /// Refuse a modulus below [`MIN_SERVICE_KEY_BITS`].
    pub fn check_service_size(&self) -> Result<(), Error> {
        if self.bits() < MIN_SERVICE_KEY_BITS {
            return Err(Error::KeySize(self.bits()));
        }
        Ok(())
    }
}

/// Statistical distance parameter for the DJN exponent: `r` has `ceil(|n|/2) + 128` bits, or
/// a subgroup key's `2 SUBGROUP_BITS + 128`.
pub(crate) const DJN_EXTRA_BITS: u64 = 128;

/// The standard DJN exponent length for modulus `n`: `ceil(|n|/2) + 128` bits.
fn standard_mask_bits(n: &BigUint) -> u64 {
    n.bits().div_ceil(2) + DJN_EXTRA_BITS
}

/// A Paillier ciphertext, an element of `Z_{n^2}^*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ciphertext(pub(crate) BigUint);

impl Ciphertext {
    /// The ciphertext as an integer.
    pub fn as_biguint(&self) -> &BigUint {
        &self.0
    }
}

/// The public key: `n`, `hs = (-x^2)^n mod n^2` for DJN encryption, and the length of the DJN
/// exponent `r` in `hs^r`: `ceil(|n|/2) + 128` bits, or a subgroup key's shorter one
/// ([`PublicKey::with_mask_bits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    n: BigUint,
    n_sq: BigUint,
    hs: BigUint,
    mask_bits: u64,
}

/// The private key. No `Clone`; `Debug` prints only the public part; zeroized on drop.
pub struct PrivateKey {
    public: PublicKey,
    p: BigUint,
    q: BigUint,
    p_sq: BigUint,
    q_sq: BigUint,
    /// The decryption exponents: `p - 1` and `q - 1`, or a subgroup key's prime orders `a` and
    /// `b`, which also kill every DJN mask.
    e_p: BigUint,
    e_q: BigUint,
    /// `(e_p q)^{-1} mod p` and `(e_q p)^{-1} mod q`: `L_p(g^{e_p} mod p^2)^{-1}` for `g = n + 1`.
    hp: BigUint,
    hq: BigUint,
    /// `q^{-1} mod p` for recombination.
    q_inv_p: BigUint,
    /// Whether `e_p, e_q` are a subgroup key's orders (written to the key file).
    subgroup: bool,
}

pub(crate) fn wipe(x: &mut BigUint) {
    // Overwrite the limbs in place (assign_from_slice clears and refills the same buffer).
    let zeros = vec![0u32; (x.bits() as usize).div_ceil(32)];
    x.assign_from_slice(&zeros);
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        for x in [
            &mut self.p,
            &mut self.q,
            &mut self.p_sq,
            &mut self.q_sq,
            &mut self.e_p,
            &mut self.e_q,
            &mut self.hp,
            &mut self.hq,
            &mut self.q_inv_p,
        ] {
            wipe(x);
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("n_bits", &self.public.n.bits())
            .finish_non_exhaustive()
    }
}

pub(crate) fn check_bits(bits: u32) -> Result<(), Error> {
    if !(MIN_KEY_BITS..=8192).contains(&bits) || !bits.is_multiple_of(256) {
        return Err(Error::KeySize(bits));
    }
    Ok(())
}

/// Generate a key pair with an `bits`-bit modulus `n = p q` (2048 is the default size, 3072
/// for 128-bit security), `p = q = 3 (mod 4)`, `gcd(p - 1, q - 1) = 2`.
pub fn keygen<R: RngCore + CryptoRng>(bits: u32, rng: &mut R) -> Result<PrivateKey, Error> {
    check_bits(bits)?;
    let half = u64::from(bits / 2);
    loop {
        let p = random_blum_prime(half, rng);
        let q = random_blum_prime(half, rng);
        if p == q {
            continue;
        }
        let g = (&p - 1u32).gcd(&(&q - 1u32));
        if g != BigUint::from(2u32) {
            continue;
        }
        let n = &p * &q;
        if n.bits() != u64::from(bits) {
            continue;
        }
        let public = PublicKey::with_djn_base(n, rng)?;
        return PrivateKey::from_primes(public, p, q);
    }
}

impl PublicKey {
    /// A public key from `n` and `hs`, checked for shape: `n` odd of a supported size, `hs` a unit
    /// below `n^2`.
    pub fn from_parts(n: BigUint, hs: BigUint) -> Result<Self, Error> {
        check_bits(n.bits() as u32)?;
        if n.is_even() {
            return Err(Error::Malformed("modulus n is even".into()));
        }
        let n_sq = &n * &n;
        if hs >= n_sq || !coprime(&hs, &n) {
            return Err(Error::Malformed("hs is not a unit modulo n^2".into()));
        }
        let mask_bits = standard_mask_bits(&n);
        Ok(PublicKey {
            n,
            n_sq,
            hs,
            mask_bits,
        })
    }

    /// The same key with DJN exponents of `bits` bits. Only a subgroup key
    /// ([`crate::keygen_subgroup`]) shortens them: `hs` then has an order `a b` of
    /// `2 SUBGROUP_BITS` bits, and `r` of `2 SUBGROUP_BITS + 128` bits is within `2^-128` of
    /// uniform modulo it, so `hs^r` is distributed as with the standard length, at 640 bits
    /// instead of 1152 for a 2048-bit key. Lengths below that or above the standard one are
    /// refused, whoever wrote the key file.
    pub fn with_mask_bits(mut self, bits: u64) -> Result<Self, Error> {
        let standard = standard_mask_bits(&self.n);
        if !(SUBGROUP_MASK_BITS..=standard).contains(&bits) {
            return Err(Error::Malformed(format!(
                "DJN exponents of {bits} bits: a {}-bit key takes {SUBGROUP_MASK_BITS} to \
                 {standard}",
                self.n.bits()
            )));
        }
        self.mask_bits = bits;
        Ok(self)
    }

    /// Bits of the DJN exponent `r` of each mask `hs^r`.
    pub fn mask_bits(&self) -> u64 {
        self.mask_bits
    }

    /// Whether the exponent has its standard length, `ceil(|n|/2) + 128` bits.
    pub(crate) fn standard_masks(&self) -> bool {
        self.mask_bits == standard_mask_bits(&self.n)
    }

    /// The public key of modulus `n` with a fresh DJN base `hs = (-x^2)^n mod n^2`, `x` a random
    /// unit.
    pub(crate) fn with_djn_base<R: RngCore + CryptoRng>(
        n: BigUint,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let n_sq = &n * &n;
        let x = loop {
            let x = random_below(&n, rng);
            if coprime(&x, &n) {
                break x;
            }
        };
        let minus_x2 = &n - (&x * &x) % &n;
        let hs = pow_mod(&minus_x2, &n, &n_sq);
        PublicKey::from_parts(n, hs)
    }

    /// The modulus `n`.
    pub fn n(&self) -> &BigUint {
        &self.n
    }
    /// `n^2`.
    pub fn n_squared(&self) -> &BigUint {
        &self.n_sq
    }
    /// The DJN base `hs`.
    pub fn hs(&self) -> &BigUint {
        &self.hs
    }
    /// Bits of `n`.
    pub fn bits(&self) -> u32 {
        self.n.bits() as u32
    }
    /// Bytes of one serialized ciphertext: `2 ceil(|n| / 8)`.
    pub fn ciphertext_bytes(&self) -> usize {
        2 * (self.n.bits() as usize).div_ceil(8)
    }

    fn check_plaintext(&self, m: &BigUint) -> Result<(), Error> {
        if m >= &self.n {
            Err(Error::PlaintextTooLarge)
        } else {
            Ok(())
        }
    }

    /// `(1 + m n) mod n^2`, which is `g^m` for `g = n + 1`.
    fn g_pow(&self, m: &BigUint) -> BigUint {
        (m * &self.n + 1u32) % &self.n_sq
    }

    /// A fresh DJN mask `hs^r`, `r` of [`PublicKey::mask_bits`] bits. Callers may precompute
    /// these offline and use [`PublicKey::encrypt_with_mask`].
    pub fn random_mask<R: RngCore + CryptoRng>(&self, rng: &mut R) -> BigUint {
        let r = random_bits(self.mask_bits, rng);
        pow_mod(&self.hs, &r, &self.n_sq)
    }

    /// Encrypt with a precomputed mask from [`PublicKey::random_mask`] (one multiplication).
    /// Each mask must be used once.
    pub fn encrypt_with_mask(&self, m: &BigUint, mask: &BigUint) -> Result<Ciphertext, Error> {
        self.check_plaintext(m)?;
        Ok(Ciphertext((self.g_pow(m) * mask) % &self.n_sq))
    }

    /// DJN encryption (the default; see the crate docs for its extra assumption).
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        m: &BigUint,
        rng: &mut R,
    ) -> Result<Ciphertext, Error> {
        self.check_plaintext(m)?;
        let mask = self.random_mask(rng);
        self.encrypt_with_mask(m, &mask)
    }

    /// Textbook Paillier encryption, `(1 + m n) r^n mod n^2` with `r` uniform in `Z_n^*`.
    pub fn encrypt_textbook<R: RngCore + CryptoRng>(
        &self,
        m: &BigUint,
        rng: &mut R,
    ) -> Result<Ciphertext, Error> {
        self.check_plaintext(m)?;
        let r = loop {
            let r = random_below(&self.n, rng);
            if coprime(&r, &self.n) {
                break r;
            }
        };
        Ok(Ciphertext(
            (self.g_pow(m) * pow_mod(&r, &self.n, &self.n_sq)) % &self.n_sq,
        ))
    }

    /// Check that `c` is a unit below `n^2` (what decoders call on untrusted input).
    pub fn ciphertext(&self, c: BigUint) -> Result<Ciphertext, Error> {
        if c.is_zero() || c >= self.n_sq || !coprime(&c, &self.n) {
            return Err(Error::InvalidCiphertext);
        }
        Ok(Ciphertext(c))
    }

    /// Homomorphic addition: decrypts to `m_a + m_b mod n`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext((&a.0 * &b.0) % &self.n_sq)
    }

    /// `acc += c` in place.
    pub fn add_assign(&self, acc: &mut Ciphertext, c: &Ciphertext) {
        acc.0 = (&acc.0 * &c.0) % &self.n_sq;
    }

    /// Scalar multiplication: decrypts to `k m mod n`.
    pub fn mul_scalar(&self, c: &Ciphertext, k: &BigUint) -> Ciphertext {
        Ciphertext(pow_mod(&c.0, k, &self.n_sq))
    }

    /// Re-randomisation: the same plaintext under fresh randomness.
    pub fn rerandomize<R: RngCore + CryptoRng>(&self, c: &Ciphertext, rng: &mut R) -> Ciphertext {
        Ciphertext((&c.0 * self.random_mask(rng)) % &self.n_sq)
    }

    /// An encryption of zero with no randomness: the identity for sums.
    pub fn zero(&self) -> Ciphertext {
        Ciphertext(BigUint::one())
    }
}

impl PrivateKey {
    /// Rebuild a private key from its primes (checked against `public`).
    pub fn from_primes(public: PublicKey, p: BigUint, q: BigUint) -> Result<Self, Error> {
        let (e_p, e_q) = (&p - 1u32, &q - 1u32);
        Self::with_exponents(public, p, q, e_p, e_q, false)
    }

    /// Rebuild a subgroup key ([`crate::keygen_subgroup`]) from its primes and orders
    /// `a | p - 1`, `b | q - 1`, checked against `public`: `hs` must lie in the subgroup they
    /// give, or decryption would be wrong.
    pub fn from_subgroup(
        public: PublicKey,
        p: BigUint,
        q: BigUint,
        a: BigUint,
        b: BigUint,
    ) -> Result<Self, Error> {
        let divides = |o: &BigUint, x: &BigUint| o > &BigUint::one() && ((x - 1u32) % o).is_zero();
        if p < BigUint::from(3u32)
            || q < BigUint::from(3u32)
            || !divides(&a, &p)
            || !divides(&b, &q)
        {
            return Err(Error::Malformed(
                "subgroup orders do not divide p - 1 and q - 1".into(),
            ));
        }
        let key =
            Self::with_exponents(public.with_mask_bits(SUBGROUP_MASK_BITS)?, p, q, a, b, true)?;
        let hs = key.public.hs();
        if !pow_mod(&(hs % &key.p_sq), &key.e_p, &key.p_sq).is_one()
            || !pow_mod(&(hs % &key.q_sq), &key.e_q, &key.q_sq).is_one()
        {
            return Err(Error::Malformed(
                "hs is not in the subgroup of the key's orders".into(),
            ));
        }
        Ok(key)
    }

    fn with_exponents(
        public: PublicKey,
        p: BigUint,
        q: BigUint,
        e_p: BigUint,
        e_q: BigUint,
        subgroup: bool,
    ) -> Result<Self, Error> {
        if &p * &q != public.n || p == q || p < BigUint::from(3u32) || q < BigUint::from(3u32) {
            return Err(Error::Malformed("primes do not factor n".into()));
        }
        let inv = |a: &BigUint, m: &BigUint| -> Result<BigUint, Error> {
            a.modinv(m)
                .ok_or_else(|| Error::Malformed("key values are not invertible".into()))
        };
        let hp = inv(&((&e_p % &p) * (&q % &p) % &p), &p)?;
        let hq = inv(&((&e_q % &q) * (&p % &q) % &q), &q)?;
        let q_inv_p = inv(&(&q % &p), &p)?;
        Ok(PrivateKey {
            p_sq: &p * &p,
            q_sq: &q * &q,
            public,
            p,
            q,
            e_p,
            e_q,
            hp,
            hq,
            q_inv_p,
            subgroup,
        })
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The prime factors `(p, q)` (for serialization by the key file writer).
    pub fn primes(&self) -> (&BigUint, &BigUint) {
        (&self.p, &self.q)
    }

    /// A subgroup key's orders `(a, b)` ([`crate::keygen_subgroup`]), or `None` for a standard
    /// key.
    pub fn subgroup_orders(&self) -> Option<(&BigUint, &BigUint)> {
        self.subgroup.then_some((&self.e_p, &self.e_q))
    }

    /// CRT decryption: `m_p = L_p(c^e_p mod p^2) hp mod p`, likewise mod `q`, recombined; `e_p`
    /// is `p - 1`, or a subgroup key's order `a`.
    ///
    /// Every unit decrypts under a standard key. Under a subgroup key, a ciphertext whose
    /// `c^a mod p^2` is not `1 (mod p)` has a part outside the subgroup, and is refused with
    /// [`Error::OutsideSubgroup`] rather than decrypted to garbage.
    pub fn decrypt(&self, c: &Ciphertext) -> Result<BigUint, Error> {
        let mp = Self::half(&c.0, &self.p, &self.p_sq, &self.e_p, &self.hp)?;
        let mq = Self::half(&c.0, &self.q, &self.q_sq, &self.e_q, &self.hq)?;
        // m = mq + q ((mp - mq) q^{-1} mod p)
        let diff = (&mp + &self.p - (&mq % &self.p)) % &self.p;
        let h = (diff * &self.q_inv_p) % &self.p;
        Ok(mq + h * &self.q)
    }

    fn half(
        c: &BigUint,
        p: &BigUint,
        p_sq: &BigUint,
        e: &BigUint,
        hp: &BigUint,
    ) -> Result<BigUint, Error> {
        let x = pow_mod(&(c % p_sq), e, p_sq);
        if x.is_zero() {
            return Err(Error::InvalidCiphertext);
        }
        let (l, rem) = (x - 1u32).div_rem(p);
        if !rem.is_zero() {
            return Err(Error::OutsideSubgroup);
        }
        Ok((l * hp) % p)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn round_trip_and_homomorphisms() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sk = keygen(512, &mut rng).unwrap();
        let pk = sk.public();
        assert_eq!(pk.bits(), 512);
        let n = pk.n().clone();
        for m in [
            BigUint::zero(),
            BigUint::one(),
            &n - 1u32,
            BigUint::from(123_456u32),
        ] {
            let c = pk.encrypt(&m, &mut rng).unwrap();
            assert_eq!(sk.decrypt(&c).unwrap(), m);
            let t = pk.encrypt_textbook(&m, &mut rng).unwrap();
            assert_eq!(sk.decrypt(&t).unwrap(), m);
            assert_ne!(c, t);
            let r = pk.rerandomize(&c, &mut rng);
            assert_ne!(r, c);
            assert_eq!(sk.decrypt(&r).unwrap(), m);
        }
        let a = BigUint::from(40u32);
        let b = &n - 2u32;
        let ca = pk.encrypt(&a, &mut rng).unwrap();
        let cb = pk.encrypt(&b, &mut rng).unwrap();
        assert_eq!(sk.decrypt(&pk.add(&ca, &cb)).unwrap(), BigUint::from(38u32)); // wraps mod n
        assert_eq!(
            sk.decrypt(&pk.mul_scalar(&ca, &BigUint::from(7u32)))
                .unwrap(),
            BigUint::from(280u32)
        );
        assert_eq!(sk.decrypt(&pk.zero()).unwrap(), BigUint::zero());
        assert_eq!(pk.encrypt(&n, &mut rng), Err(Error::PlaintextTooLarge));
        assert!(format!("{sk:?}").contains("n_bits"));
        assert!(!format!("{sk:?}").contains(&sk.primes().0.to_string()));
    }

    #[test]
    fn invalid_ciphertexts_and_keys_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let sk = keygen(512, &mut rng).unwrap();
        let pk = sk.public();
        assert!(pk.ciphertext(BigUint::zero()).is_err());
        assert!(pk.ciphertext(pk.n_squared().clone()).is_err());
        assert!(pk.ciphertext(sk.primes().0.clone()).is_err());
        assert!(pk.ciphertext(BigUint::from(2u32)).is_ok());
        assert_eq!(keygen(500, &mut rng).err(), Some(Error::KeySize(500)));
        assert!(PublicKey::from_parts(pk.n() + 1u32, pk.hs().clone()).is_err());
        let (p, q) = sk.primes();
        assert!(PrivateKey::from_primes(pk.clone(), p.clone(), p.clone()).is_err());
        assert!(PrivateKey::from_primes(pk.clone(), q.clone(), p.clone()).is_ok());
    }

    #[test]
    fn wipe_zeroes_in_place() {
        let mut x = BigUint::from(u64::MAX) << 100u32;
        wipe(&mut x);
        assert!(x.is_zero());
    }
}
