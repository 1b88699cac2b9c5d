//! The big-integer arithmetic of the hot paths (exponentiations, and the fixed-base table's
//! multiplications), on one of two backends chosen at build time:
//!
//! - `num-bigint` (the default): pure Rust.
//! - GMP through `rug` (cargo feature `gmp`): about twice as fast on every operation here
//!   (docs/paillier.md), at the price of a C build of GMP (it needs `m4`) and GMP's LGPL-3.0.
//!
//! Keys, ciphertexts and the wire format stay `BigUint` either way; values cross to GMP once per
//! exponentiation or per table walk, which costs microseconds against milliseconds of work.
//! Neither backend is constant-time.

use num_bigint::BigUint;

#[cfg(not(feature = "gmp"))]
mod imp {
    use num_bigint::BigUint;
    use num_traits::One;

    /// The integer type the fixed-base table is kept in.
    pub type Fast = BigUint;

    pub fn from_big(x: &BigUint) -> Fast {
        x.clone()
    }

    pub fn into_big(x: Fast) -> BigUint {
        x
    }

    pub fn one() -> Fast {
        BigUint::one()
    }

    pub fn mul_mod(a: &Fast, b: &Fast, m: &Fast) -> Fast {
        (a * b) % m
    }

    pub fn pow_mod(base: &BigUint, exp: &BigUint, m: &BigUint) -> BigUint {
        base.modpow(exp, m)
    }

    pub const NAME: &str = "num-bigint";
}

#[cfg(feature = "gmp")]
mod imp {
    use num_bigint::BigUint;
    use rug::integer::Order;
    use rug::Integer;

    /// The integer type the fixed-base table is kept in.
    pub type Fast = Integer;

    pub fn from_big(x: &BigUint) -> Fast {
        Integer::from_digits(&x.to_u64_digits(), Order::Lsf)
    }

    pub fn into_big(x: Fast) -> BigUint {
        BigUint::from_bytes_le(&x.to_digits::<u8>(Order::Lsf))
    }

    pub fn one() -> Fast {
        Integer::from(1)
    }

    pub fn mul_mod(a: &Fast, b: &Fast, m: &Fast) -> Fast {
        // Operands are non-negative, so `%` is already the least non-negative residue.
        Integer::from(a * b) % m
    }

    pub fn pow_mod(base: &BigUint, exp: &BigUint, m: &BigUint) -> BigUint {
        let (b, e, m_) = (from_big(base), from_big(exp), from_big(m));
        match b.pow_mod(&e, &m_) {
            Ok(r) => into_big(r),
            // Only a negative exponent without an inverse fails; ours are never negative.
            Err(_) => base.modpow(exp, m),
        }
    }

    pub const NAME: &str = "GMP";
}

pub(crate) use imp::{from_big, into_big, mul_mod, one, Fast};

/// `base^exp mod m`.
pub(crate) fn pow_mod(base: &BigUint, exp: &BigUint, m: &BigUint) -> BigUint {
    imp::pow_mod(base, exp, m)
}

/// The backend this build uses (`"num-bigint"` or `"GMP"`).
pub const BACKEND: &str = imp::NAME;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::prime::{random_below, random_bits};
    use rand_core::SeedableRng;

    #[test]
    fn backend_agrees_with_num_bigint() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        for bits in [64u64, 1000, 4096] {
            let m = random_bits(bits, &mut rng) | BigUint::from(1u32);
            let a = random_below(&m, &mut rng);
            let b = random_below(&m, &mut rng);
            let e = random_bits(bits / 2, &mut rng);
            assert_eq!(pow_mod(&a, &e, &m), a.modpow(&e, &m));
            let prod = into_big(mul_mod(&from_big(&a), &from_big(&b), &from_big(&m)));
            assert_eq!(prod, (&a * &b) % &m);
            assert_eq!(into_big(from_big(&a)), a);
        }
        assert_eq!(into_big(one()), BigUint::from(1u32));
    }
}
