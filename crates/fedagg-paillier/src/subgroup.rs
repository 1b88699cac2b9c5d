//! Subgroup keys: a DJN base of small prime order, so that the key holder decrypts with 256-bit
//! exponents instead of `p - 1` and `q - 1` (docs/paillier.md says what that trades).

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, Zero};
use rand_core::{CryptoRng, RngCore};

use crate::arith::pow_mod;
use crate::keys::{check_bits, DJN_EXTRA_BITS};
use crate::prime::{random_below, random_prime, random_prime_with_factor};
use crate::{Error, PrivateKey, PublicKey};

/// Bits of each prime order of a subgroup key ([`keygen_subgroup`]): `a | p - 1` and
/// `b | q - 1`. Finding `a` from the public `hs` costs about `sqrt(a)` operations, so this is
/// twice the 128-bit security level.
pub const SUBGROUP_BITS: u64 = 256;

/// Bits of a subgroup key's DJN exponents: `hs` has order `a b`, of `2 SUBGROUP_BITS` bits, and
/// 128 more bits make `r mod a b` statistically uniform ([`PublicKey::with_mask_bits`]).
pub(crate) const SUBGROUP_MASK_BITS: u64 = 2 * SUBGROUP_BITS + DJN_EXTRA_BITS;

/// Generate a *subgroup key*: `n = p q` with `p = 2 a u + 1`, `q = 2 b v + 1` for primes `a, b`
/// of [`SUBGROUP_BITS`] bits, and a DJN base `hs = h^n` with `h` of order `a b` in `Z_n^*`. The
/// ciphertexts have the same form, but the key holder decrypts with the exponents `a` and `b`
/// (256 bits) instead of `p - 1` and `q - 1` (`|n|/2` bits), about four times faster at 2048
/// bits; and participants' DJN exponents shrink to 640 bits from `|n|/2 + 128`, which the public
/// key says ([`PublicKey::mask_bits`], a `mask-bits` line in its file). Keys of 1024 bits and
/// more.
///
/// The price is an assumption beyond DJN's: that the subgroup `<hs>` of order `a b` is
/// indistinguishable from the n-th residues and that `n` stays hard to factor given an element of
/// that order (the setting of Groth, "Cryptography in subgroups of Z_n^*", TCC 2005). And only DJN
/// ciphertexts under this key, and their sums, decrypt: a textbook ciphertext (python-paillier's)
/// is refused with [`Error::OutsideSubgroup`]. Use [`keygen`](crate::keygen) where that
/// interoperability matters.
pub fn keygen_subgroup<R: RngCore + CryptoRng>(
    bits: u32,
    rng: &mut R,
) -> Result<PrivateKey, Error> {
    check_bits(bits)?;
    let half = u64::from(bits / 2);
    if half < 2 * SUBGROUP_BITS {
        return Err(Error::KeySize(bits));
    }
    loop {
        let a = random_prime(SUBGROUP_BITS, rng);
        let b = random_prime(SUBGROUP_BITS, rng);
        if a == b {
            continue;
        }
        let p = random_prime_with_factor(half, &a, rng);
        let q = random_prime_with_factor(half, &b, rng);
        if p == q || (&p - 1u32).gcd(&(&q - 1u32)) != BigUint::from(2u32) {
            continue;
        }
        let n = &p * &q;
        if n.bits() != u64::from(bits) {
            continue;
        }
        // h = h_p (mod p), h_q (mod q), of orders a and b.
        let h_p = element_of_order(&p, &a, rng);
        let h_q = element_of_order(&q, &b, rng);
        let q_inv_p = (&q % &p)
            .modinv(&p)
            .ok_or_else(|| Error::Malformed("q is not invertible mod p".into()))?;
        let h = &h_q + &q * (((&h_p + &p - (&h_q % &p)) % &p * q_inv_p) % &p);
        let hs = pow_mod(&h, &n, &(&n * &n));
        let public = PublicKey::from_parts(n, hs)?;
        return PrivateKey::from_subgroup(public, p, q, a, b);
    }
}

/// An element of order exactly the prime `a` in `Z_p^*` (`a | p - 1`).
fn element_of_order<R: RngCore + CryptoRng>(p: &BigUint, a: &BigUint, rng: &mut R) -> BigUint {
    let cofactor = (p - 1u32) / a;
    loop {
        let y = random_below(p, rng);
        let h = pow_mod(&y, &cofactor, p);
        if !h.is_one() && !h.is_zero() {
            return h;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn a_subgroup_key_decrypts_djn_sums_as_the_full_exponent_does_and_refuses_the_rest() {
        let mut rng = ChaCha20Rng::seed_from_u64(13);
        assert_eq!(
            keygen_subgroup(768, &mut rng).err(),
            Some(Error::KeySize(768))
        );
        let sk = keygen_subgroup(1024, &mut rng).unwrap();
        let pk = sk.public();
        let (p, q) = sk.primes();
        let (a, b) = sk.subgroup_orders().unwrap();
        assert_eq!((a.bits(), b.bits()), (SUBGROUP_BITS, SUBGROUP_BITS));
        assert!(((p - 1u32) % a).is_zero() && ((q - 1u32) % b).is_zero());
        assert_eq!(
            (p % 4u32, q % 4u32),
            (BigUint::from(3u32), BigUint::from(3u32))
        );
        // The same primes with the full exponents: the standard decryption, the oracle.
        let full = PrivateKey::from_primes(pk.clone(), p.clone(), q.clone()).unwrap();
        assert!(full.subgroup_orders().is_none());
        let enc = pk.encryptor();
        let mut sum = pk.zero();
        let mut want = BigUint::zero();
        for m in [BigUint::zero(), BigUint::from(99u32), pk.n() - 1u32] {
            let c = enc.encrypt(&m, &mut rng).unwrap();
            assert_eq!(sk.decrypt(&c).unwrap(), m);
            assert_eq!(full.decrypt(&c).unwrap(), m);
            pk.add_assign(&mut sum, &pk.rerandomize(&c, &mut rng));
            want = (want + m) % pk.n();
        }
        assert_eq!(sk.decrypt(&sum).unwrap(), want);
        assert_eq!(
            sk.decrypt(&pk.mul_scalar(&sum, &BigUint::from(3u32)))
                .unwrap(),
            (&want * 3u32) % pk.n()
        );
        // A textbook ciphertext's r^n is outside the subgroup: refused, also inside a sum.
        let t = pk.encrypt_textbook(&BigUint::from(5u32), &mut rng).unwrap();
        assert_eq!(full.decrypt(&t).unwrap(), BigUint::from(5u32));
        assert_eq!(sk.decrypt(&t), Err(Error::OutsideSubgroup));
        assert_eq!(sk.decrypt(&pk.add(&sum, &t)), Err(Error::OutsideSubgroup));
    }
    #[test]
    fn a_subgroup_key_shortens_the_djn_exponent_and_its_public_file_says_so() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        // 1536 bits: the standard exponent has 896 bits, a subgroup key's 640.
        let sk = keygen_subgroup(1536, &mut rng).unwrap();
        let pk = sk.public();
        assert_eq!(pk.mask_bits(), SUBGROUP_MASK_BITS);
        assert_eq!(SUBGROUP_MASK_BITS, 640);
        let text = pk.to_text();
        assert!(text.ends_with("mask-bits 280\n"), "{text}");
        assert_eq!(&PublicKey::from_text(&text).unwrap(), pk);
        // The private key file rebuilds the same public key.
        let again = PrivateKey::from_text(&sk.to_text()).unwrap();
        assert_eq!(again.public(), pk);
        // A short exponent still decrypts through the subgroup (and sums of them do).
        let enc = pk.encryptor();
        let (x, y) = (BigUint::from(7u32), BigUint::from(35u32));
        let sum = pk.add(
            &enc.encrypt(&x, &mut rng).unwrap(),
            &pk.encrypt(&y, &mut rng).unwrap(),
        );
        assert_eq!(sk.decrypt(&sum).unwrap(), BigUint::from(42u32));
        // The same n and hs under the standard length: a different key, a different file.
        let (n, hs) = (pk.n().clone(), pk.hs().clone());
        let standard = PublicKey::from_parts(n, hs).unwrap();
        assert_eq!(standard.mask_bits(), 896);
        assert_ne!(&standard, pk);
        assert!(!standard.to_text().contains("mask-bits"));
        // Shorter than a subgroup key's, longer than the standard, or the standard written
        // out: refused.
        for bits in ["27f", "381", "380"] {
            let bad = text.replace("mask-bits 280", &format!("mask-bits {bits}"));
            assert!(PublicKey::from_text(&bad).is_err(), "{bits}");
        }
        assert!(PublicKey::from_text(&format!("{text}mask-bits 280\n")).is_err());
    }
}
