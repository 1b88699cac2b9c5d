//! Shamir secret sharing of 32-byte secrets over GF(2^8), byte-wise.
//!
//! Written here rather than taken from `sharks`: that crate draws the polynomial coefficients from
//! `1..=255`, never zero, so a single share of a threshold-2 sharing excludes one value of every
//! secret byte. Here every coefficient is uniform over the field, multiplication is a branch-free
//! shift-and-add (no log tables indexed by secret data), and inversion is `a^254`. Sharing
//! evaluates the 32 bytes as four words of eight elements, branching only on the public point:
//! about 8 times faster than byte by byte, and the same shares.
//!
//! A share is its evaluation point `x` (1..=255, so at most 255 shares per secret) and 32 bytes.
//! Which `x` a holder gets is fixed by the neighbour graph, not carried in the share, so a sender
//! cannot give two holders the same point.

use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// Secret and share length in bytes.
pub const SECRET_LEN: usize = 32;

/// Multiplication in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, in constant time.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0u8;
    for _ in 0..8 {
        r ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    r
}

/// Inverse as a^254 (0 maps to 0, never used: callers pass distinct non-zero points).
fn inv(a: u8) -> u8 {
    let a2 = mul(a, a);
    let a4 = mul(a2, a2);
    let a8 = mul(a4, a4);
    let a16 = mul(a8, a8);
    let a32 = mul(a16, a16);
    let a64 = mul(a32, a32);
    let a128 = mul(a64, a64);
    // 254 = 128 + 64 + 32 + 16 + 8 + 4 + 2
    mul(mul(mul(mul(mul(mul(a128, a64), a32), a16), a8), a4), a2)
}

/// Split `secret` into shares at the points `xs` (distinct, non-zero) with threshold `t`: any `t`
/// shares reconstruct it, `t - 1` reveal nothing. The returned shares are in the order of `xs`.
pub fn split<R: RngCore + CryptoRng>(
    secret: &[u8; SECRET_LEN],
    t: usize,
    xs: &[u8],
    rng: &mut R,
) -> Vec<Zeroizing<[u8; SECRET_LEN]>> {
    debug_assert!(t >= 1 && t <= xs.len());
    // coeffs[d][i]: coefficient of x^d for byte i; coeffs[0] is the secret.
    let mut coeffs = Zeroizing::new(vec![[0u8; SECRET_LEN]; t]);
    coeffs[0] = *secret;
    for c in coeffs.iter_mut().skip(1) {
        rng.fill_bytes(c);
    }
    // Horner's rule on all 32 bytes at once, as four words of eight field elements.
    let packed: Zeroizing<Vec<[u64; 4]>> = Zeroizing::new(coeffs.iter().map(pack).collect());
    xs.iter()
        .map(|&x| {
            let mut acc = Zeroizing::new([0u64; 4]);
            for c in packed.iter().rev() {
                for (a, w) in acc.iter_mut().zip(c) {
                    *a = mul_public(*a, x) ^ w;
                }
            }
            let mut y = Zeroizing::new([0u8; SECRET_LEN]);
            for (chunk, a) in y.chunks_exact_mut(8).zip(acc.iter()) {
                chunk.copy_from_slice(&a.to_le_bytes());
            }
            y
        })
        .collect()
}

/// 32 bytes as four little-endian words of eight field elements each.
fn pack(bytes: &[u8; SECRET_LEN]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *word = u64::from_le_bytes(b);
    }
    w
}

/// Eight packed field elements times 2 (`x`), branch-free.
fn xtime(v: u64) -> u64 {
    ((v & 0x7f7f_7f7f_7f7f_7f7f) << 1) ^ (((v >> 7) & 0x0101_0101_0101_0101) * 0x1b)
}

/// Eight packed field elements (secret) times the evaluation point `x` (public: fixed by the
/// neighbour graph), so branching on `x`'s bits leaks nothing about the elements.
fn mul_public(mut v: u64, x: u8) -> u64 {
    let mut r = 0u64;
    for bit in 0..8 {
        if (x >> bit) & 1 == 1 {
            r ^= v;
        }
        v = xtime(v);
    }
    r
}

/// Reconstruct the secret from shares `(x, y)` with distinct non-zero `x`. Uses every share
/// given; the caller checks the count against the threshold and verifies the result.
pub fn combine(shares: &[(u8, &[u8; SECRET_LEN])]) -> Zeroizing<[u8; SECRET_LEN]> {
    let mut out = Zeroizing::new([0u8; SECRET_LEN]);
    for (i, &(xi, yi)) in shares.iter().enumerate() {
        // Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
        let mut num = 1u8;
        let mut den = 1u8;
        for (j, &(xj, _)) in shares.iter().enumerate() {
            if i != j {
                num = mul(num, xj);
                den = mul(den, xj ^ xi);
            }
        }
        let mut lambda = mul(num, inv(den));
        for (o, y) in out.iter_mut().zip(yi.iter()) {
            *o ^= mul(lambda, *y);
        }
        lambda.zeroize();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn field_inverse() {
        assert_eq!(mul(0x53, 0xca), 0x01); // FIPS-197 section 4.2 example pair
        assert_eq!(mul(0x57, 0x83), 0xc1); // FIPS-197 section 4.2
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "a = {a}");
        }
    }

    /// The packed multiplication by a public point is the field's, lane by lane.
    #[test]
    fn packed_multiplication_is_the_fields() {
        let mut rng = ChaCha20Rng::from_seed([6; 32]);
        for x in 0..=255u8 {
            let v = rng.next_u64();
            let got = mul_public(v, x).to_le_bytes();
            for (lane, byte) in v.to_le_bytes().iter().enumerate() {
                assert_eq!(got[lane], mul(*byte, x), "x = {x}, lane {lane}");
            }
        }
    }

    #[test]
    fn any_t_shares_reconstruct_and_fewer_do_not() {
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let xs: Vec<u8> = (1..=10).collect();
        let shares = split(&secret, 4, &xs, &mut rng);
        for start in 0..7 {
            let pick: Vec<(u8, &[u8; 32])> =
                (start..start + 4).map(|i| (xs[i], &*shares[i])).collect();
            assert_eq!(*combine(&pick), secret);
        }
        // All 10 shares also reconstruct (over-determined but consistent).
        let all: Vec<(u8, &[u8; 32])> = xs.iter().zip(&shares).map(|(x, s)| (*x, &**s)).collect();
        assert_eq!(*combine(&all), secret);
        let three: Vec<(u8, &[u8; 32])> = all[..3].to_vec();
        assert_ne!(*combine(&three), secret);
        // A tampered share changes the result.
        let mut bad = *shares[0];
        bad[5] ^= 1;
        let mut pick = all[..4].to_vec();
        pick[0].1 = &bad;
        assert_ne!(*combine(&pick), secret);
    }

    #[test]
    fn max_points() {
        let mut rng = ChaCha20Rng::from_seed([8; 32]);
        let secret = [0xab; 32];
        let xs: Vec<u8> = (1..=255).collect();
        let shares = split(&secret, 255, &xs, &mut rng);
        let all: Vec<(u8, &[u8; 32])> = xs.iter().zip(&shares).map(|(x, s)| (*x, &**s)).collect();
        assert_eq!(*combine(&all), secret);
    }

    #[test]
    fn single_share_of_threshold_two_is_uniform_per_byte() {
        // The flaw that ruled out `sharks`: with non-zero coefficients y != secret always.
        let mut rng = ChaCha20Rng::from_seed([9; 32]);
        let secret = [0u8; 32];
        let mut seen_equal = false;
        for _ in 0..200 {
            let s = split(&secret, 2, &[1, 2], &mut rng);
            seen_equal |= s[0].contains(&0);
        }
        assert!(seen_equal);
    }
}
