//! Random primes: trial division by the primes below 2000, then Miller-Rabin with bases drawn
//! from the caller's CSPRNG.

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, Zero};
use rand_core::{CryptoRng, RngCore};

/// Miller-Rabin rounds: error at most 4^-64 for any odd composite, far less for random ones.
const MR_ROUNDS: usize = 64;

pub(crate) fn small_primes() -> Vec<u32> {
    let limit = 2000usize;
    let mut sieve = vec![true; limit];
    let mut out = Vec::new();
    for i in 2..limit {
        if sieve.get(i).copied().unwrap_or(false) {
            out.push(i as u32);
            let mut j = i * i;
            while j < limit {
                if let Some(s) = sieve.get_mut(j) {
                    *s = false;
                }
                j += i;
            }
        }
    }
    out
}

/// A uniform integer with exactly `bits` bits (top bit set).
pub(crate) fn random_bits<R: RngCore + CryptoRng>(bits: u64, rng: &mut R) -> BigUint {
    let bytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    let mut x = BigUint::from_bytes_be(&buf);
    let excess = bytes as u64 * 8 - bits;
    x >>= excess;
    x.set_bit(bits - 1, true);
    buf.fill(0);
    x
}

/// A uniform integer in `[1, bound)`.
pub(crate) fn random_below<R: RngCore + CryptoRng>(bound: &BigUint, rng: &mut R) -> BigUint {
    let bits = bound.bits();
    let bytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; bytes];
    loop {
        rng.fill_bytes(&mut buf);
        let mut x = BigUint::from_bytes_be(&buf);
        x >>= bytes as u64 * 8 - bits;
        if !x.is_zero() && &x < bound {
            return x;
        }
    }
}

/// Miller-Rabin probable-prime test with `MR_ROUNDS` random bases.
pub(crate) fn is_probable_prime<R: RngCore + CryptoRng>(n: &BigUint, rng: &mut R) -> bool {
    let two = BigUint::from(2u32);
    if n < &two {
        return false;
    }
    for p in small_primes() {
        let p = BigUint::from(p);
        if n == &p {
            return true;
        }
        if (n % &p).is_zero() {
            return false;
        }
    }
    let n1 = n - 1u32;
    let s = n1.trailing_zeros().unwrap_or(0);
    let d = &n1 >> s;
    let bound = n - 3u32; // bases in [2, n - 2]
    'rounds: for _ in 0..MR_ROUNDS {
        let a = random_below(&bound, rng) + 1u32;
        let mut x = crate::arith::pow_mod(&a, &d, n);
        if x.is_one() || x == n1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n1 {
                continue 'rounds;
            }
        }
        return false;
    }
    true
}

/// A random prime of exactly `bits` bits with its top two bits set (so a product of two has
/// exactly `2 bits` bits) and `p = 3 (mod 4)`.
pub(crate) fn random_blum_prime<R: RngCore + CryptoRng>(bits: u64, rng: &mut R) -> BigUint {
    let four = BigUint::from(4u32);
    loop {
        let mut c = random_bits(bits, rng);
        c.set_bit(bits - 2, true);
        // force c = 3 mod 4
        c.set_bit(0, true);
        c.set_bit(1, true);
        debug_assert_eq!(&c % &four, BigUint::from(3u32));
        if is_probable_prime(&c, rng) {
            return c;
        }
    }
}

/// A random prime of exactly `bits` bits.
pub(crate) fn random_prime<R: RngCore + CryptoRng>(bits: u64, rng: &mut R) -> BigUint {
    loop {
        let mut c = random_bits(bits, rng);
        c.set_bit(0, true);
        if is_probable_prime(&c, rng) {
            return c;
        }
    }
}

/// A random prime `p = 2 a u + 1` of exactly `bits` bits with its top two bits set and
/// `p = 3 (mod 4)` (`u` odd), so that `Z_p^*` has a subgroup of the odd prime order `a`.
pub(crate) fn random_prime_with_factor<R: RngCore + CryptoRng>(
    bits: u64,
    a: &BigUint,
    rng: &mut R,
) -> BigUint {
    // u in [lo, hi] puts p = 2 a u + 1 in [3 2^(bits-2) + 1, 2^bits - 1].
    let two_a = a << 1u32;
    let lo = ((BigUint::from(3u32) << (bits - 2)) + &two_a - 1u32) / &two_a;
    let hi = ((BigUint::one() << bits) - 2u32) / &two_a;
    let span = &hi - &lo + 2u32; // random_below gives [1, span)
    loop {
        let mut u = &lo + random_below(&span, rng) - 1u32;
        u.set_bit(0, true);
        if u > hi {
            continue;
        }
        let p = &two_a * &u + 1u32;
        if p.bits() == bits && p.bit(bits - 2) && is_probable_prime(&p, rng) {
            return p;
        }
    }
}

/// `gcd(a, b) == 1`.
pub(crate) fn coprime(a: &BigUint, b: &BigUint) -> bool {
    a.gcd(b).is_one()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn known_primes_and_composites() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        // 2^127 - 1 (Mersenne prime), 2^255 - 19, and a Carmichael number 561, and
        // 2^127 - 1 times 2^61 - 1.
        let m127 = (BigUint::one() << 127u32) - 1u32;
        let p25519 = (BigUint::one() << 255u32) - 19u32;
        let m61 = (BigUint::one() << 61u32) - 1u32;
        assert!(is_probable_prime(&m127, &mut rng));
        assert!(is_probable_prime(&p25519, &mut rng));
        assert!(!is_probable_prime(&BigUint::from(561u32), &mut rng));
        assert!(!is_probable_prime(&(&m127 * &m61), &mut rng));
        assert!(!is_probable_prime(&(&p25519 + 2u32), &mut rng)); // 2^255 - 17 = 3 x ...
        assert!(is_probable_prime(&BigUint::from(1999u32), &mut rng));
        assert!(!is_probable_prime(&BigUint::from(1u32), &mut rng));
    }

    #[test]
    fn generated_primes_have_the_shape_asked_for() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for bits in [64u64, 256, 512] {
            let p = random_blum_prime(bits, &mut rng);
            assert_eq!(p.bits(), bits);
            assert!(p.bit(bits - 2));
            assert_eq!(&p % 4u32, BigUint::from(3u32));
            assert!(is_probable_prime(&p, &mut rng));
        }
        // Small and large factors alike (a factor near 2^(k-1) leaves fewer cofactors).
        for _ in 0..8 {
            let a = random_prime(256, &mut rng);
            assert_eq!(a.bits(), 256);
            assert!(is_probable_prime(&a, &mut rng));
            let p = random_prime_with_factor(512, &a, &mut rng);
            assert_eq!(p.bits(), 512);
            assert!(p.bit(510));
            assert_eq!(&p % 4u32, BigUint::from(3u32));
            assert!(((&p - 1u32) % &a).is_zero());
            assert!(is_probable_prime(&p, &mut rng));
        }
        let small = (BigUint::one() << 255u32) + 95u32; // the least prime above 2^255
        assert!(is_probable_prime(&small, &mut rng));
        assert_eq!(random_prime_with_factor(512, &small, &mut rng).bits(), 512);
    }
}
