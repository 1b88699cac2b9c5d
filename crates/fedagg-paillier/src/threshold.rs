//! Threshold Paillier: any `t` of `k` key holders decrypt together, fewer learn nothing.
//!
//! This is Shoup's threshold RSA (Eurocrypt 2000) as Damgård and Jurik (PKC 2001) apply it to
//! Paillier, with `s = 1` and a trusted dealer who runs once, offline (`fedagg keygen --holders k
//! --threshold t`), and then forgets the factorization:
//!
//! - `n = p q` with safe primes `p = 2p' + 1`, `q = 2q' + 1`; `m = p' q'`.
//! - The secret `d` is `0 (mod m)` and `1 (mod n)`; the dealer shares it with a random polynomial
//!   `f` of degree `t - 1` over the integers mod `n m`, `f(0) = d`: holder `i` gets `s_i = f(i)`.
//! - A partial decryption of `c` is `c_i = c^(2 Δ s_i) mod n^2`, `Δ = k!`. From any `t` of them,
//!   `prod c_i^(2 μ_i) = c^(4 Δ^2 d)` with the integer Lagrange coefficients
//!   `μ_i = Δ prod_(j != i) j / (j - i)`, which is `1 + 4 Δ^2 M n (mod n^2)`: the plaintext `M`
//!   follows without anyone holding `d`.
//! - Each partial decryption carries Shoup's non-interactive proof (Fiat-Shamir, SHA-256) that
//!   `log_(c^4) c_i^2 = log_v v_i`, where `v` is a random square and `v_i = v^(Δ s_i)` is holder
//!   `i`'s public verification key. Whoever combines checks every proof first, so a holder that
//!   returns anything but its true share's decryption is caught and named, and `t` honest holders
//!   always suffice.
//!
//! The public key `(n, hs)` is an ordinary Paillier key: participants encrypt exactly as with a
//! single key holder (DJN encryption works unchanged, its base `hs` being an `n`-th residue).
//!
//! Limits: the dealer sees the whole key while it deals (it must be trusted, then erase it), and
//! `t` colluding holders can decrypt anything, which is what a threshold means. Two groups of
//! `t` holders sharing only corrupt members could decrypt two different sums of one round;
//! [`deal`] therefore refuses `2 t <= k`, and the docs state the assumption (fewer than
//! `2 t - k` corrupt holders) under which one round yields one sum.

use core::fmt;

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, Zero};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use crate::arith::pow_mod;
use crate::keys::{check_bits, wipe};
use crate::prime::{coprime, is_probable_prime, random_below, random_bits, small_primes};
use crate::{Ciphertext, Error, PublicKey};

/// A secret integer, overwritten with zeros when dropped (num-bigint's integers do not zeroize).
struct Wiped(BigUint);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl core::ops::Deref for Wiped {
    type Target = BigUint;
    fn deref(&self) -> &BigUint {
        &self.0
    }
}

/// Most key holders a threshold key has (`Δ = k!` grows quickly, and so do the key files).
pub const MAX_HOLDERS: u16 = 16;

/// Bits of the Fiat-Shamir challenge.
const CHALLENGE_BITS: u64 = 256;
/// Extra bits of the proof's nonce over the secret and the challenge: the proof hides the share
/// up to a statistical distance of `2^-128`.
const HIDING_BITS: u64 = 128;

/// The public side of a threshold key: the Paillier key participants encrypt under, the
/// threshold, and each holder's verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdKey {
    public: PublicKey,
    threshold: u16,
    /// `v`, a random square modulo `n^2`.
    v: BigUint,
    /// `v_i = v^(Δ s_i) mod n^2` for holders `1..=k`.
    verification: Vec<BigUint>,
    /// `Δ = k!`.
    delta: BigUint,
}

/// One holder's share. No `Clone`; `Debug` prints only its index; zeroized on drop.
pub struct KeyShare {
    key: ThresholdKey,
    index: u16,
    share: BigUint,
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        wipe(&mut self.share);
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("index", &self.index)
            .field("threshold", &self.key.threshold)
            .field("holders", &self.key.holders())
            .finish_non_exhaustive()
    }
}

/// One holder's decryption shares of a ciphertext vector, with one proof that all are correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialDecryption {
    /// The holder's index, `1..=k`.
    pub index: u16,
    /// `c_j^(2 Δ s_i) mod n^2` for each ciphertext `c_j`.
    pub(crate) values: Vec<BigUint>,
    /// Fiat-Shamir challenge `e` and response `z = r + e Δ s_i` of the batched proof.
    pub(crate) challenge: BigUint,
    pub(crate) response: BigUint,
}

impl PartialDecryption {
    /// Ciphertexts this partial decryption covers.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// Whether it covers no ciphertext.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn factorial(k: u16) -> BigUint {
    (1..=u32::from(k)).fold(BigUint::one(), |acc, i| acc * i)
}

/// Check `1 < t <= k <= MAX_HOLDERS` and `2 t > k`.
pub fn check_threshold(holders: u16, threshold: u16) -> Result<(), Error> {
    if !(2..=MAX_HOLDERS).contains(&holders) || threshold < 2 || threshold > holders {
        return Err(Error::Threshold(format!(
            "{threshold} of {holders} holders: use 2 to {MAX_HOLDERS} holders and a threshold \
             from 2 to their number"
        )));
    }
    if 2 * threshold <= holders {
        return Err(Error::Threshold(format!(
            "{threshold} of {holders} holders: the threshold must be a majority, or two groups \
             of holders could decrypt two different sums of one round"
        )));
    }
    Ok(())
}

/// A random safe prime `p = 2p' + 1` of exactly `bits` bits with its top two bits set (so a
/// product of two has exactly `2 bits` bits): a sieve on `p'` and `p` together by the small
/// primes, then a base-2 Fermat test of each, then Miller-Rabin on both.
pub fn random_safe_prime<R: RngCore + CryptoRng>(bits: u64, rng: &mut R) -> BigUint {
    const STEPS: u32 = 1 << 16;
    let primes = small_primes();
    let two = BigUint::from(2u32);
    loop {
        // p' of bits - 1 bits, top two bits set, odd.
        let mut q = random_bits(bits - 1, rng);
        q.set_bit(bits - 3, true);
        q.set_bit(0, true);
        let mut rem: Vec<u32> = primes
            .iter()
            .map(|&r| (&q % r).try_into().unwrap_or(0))
            .collect();
        for _ in 0..STEPS {
            // Neither p' nor 2p' + 1 divisible by a small prime (other than itself).
            let sieved = primes
                .iter()
                .zip(&rem)
                .all(|(&r, &x)| x != 0 && (2 * x + 1) % r != 0);
            if sieved && q.bits() == bits - 1 {
                let p = &q * 2u32 + 1u32;
                if pow_mod(&two, &(&q - 1u32), &q).is_one()
                    && pow_mod(&two, &(&p - 1u32), &p).is_one()
                    && is_probable_prime(&q, rng)
                    && is_probable_prime(&p, rng)
                {
                    return p;
                }
            }
            q += 2u32;
            for (x, &r) in rem.iter_mut().zip(&primes) {
                *x = (*x + 2) % r;
            }
        }
    }
}

/// Two primes written one per line in hex, `#` lines ignored (the format the
/// `threshold_keygen` example prints, which test and benchmark fixtures pin to skip the search).
pub fn primes_from_text(text: &str) -> Option<(BigUint, BigUint)> {
    let mut it = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| BigUint::parse_bytes(l.as_bytes(), 16));
    Some((it.next()??, it.next()??))
}

/// Deal a threshold key of `bits` bits to `holders` key holders, any `threshold` of whom can
/// decrypt: safe primes, then [`deal_from_primes`]. The caller must erase nothing else: the
/// factorization lives only inside this call.
pub fn deal<R: RngCore + CryptoRng>(
    bits: u32,
    holders: u16,
    threshold: u16,
    rng: &mut R,
) -> Result<(ThresholdKey, Vec<KeyShare>), Error> {
    check_bits(bits)?;
    check_threshold(holders, threshold)?;
    let half = u64::from(bits / 2);
    loop {
        let p = Wiped(random_safe_prime(half, rng));
        let q = Wiped(random_safe_prime(half, rng));
        if *p == *q {
            continue;
        }
        return deal_from_primes(&p, &q, holders, threshold, rng);
    }
}

/// Deal a threshold key from the safe primes `p` and `q` (checked).
pub fn deal_from_primes<R: RngCore + CryptoRng>(
    p: &BigUint,
    q: &BigUint,
    holders: u16,
    threshold: u16,
    rng: &mut R,
) -> Result<(ThresholdKey, Vec<KeyShare>), Error> {
    check_threshold(holders, threshold)?;
    let safe = |x: &BigUint, rng: &mut R| {
        x.is_odd() && is_probable_prime(x, rng) && is_probable_prime(&(x >> 1u32), rng)
    };
    if p == q || !safe(p, rng) || !safe(q, rng) {
        return Err(Error::Malformed(
            "p and q must be distinct safe primes".into(),
        ));
    }
    let n = p * q;
    check_bits(n.bits() as u32)?;
    let m = Wiped((p >> 1u32) * (q >> 1u32));
    let nm = Wiped(&n * &*m);
    // d = 0 mod m, 1 mod n: d = m (m^-1 mod n).
    let m_inv = Wiped(
        m.modinv(&n)
            .ok_or_else(|| Error::Malformed("m is not invertible modulo n".into()))?,
    );
    let d = Wiped((&*m * &*m_inv) % &*nm);
    let coefficients: Vec<Wiped> = (1..threshold)
        .map(|_| Wiped(random_below(&nm, rng)))
        .collect();
    let public = PublicKey::with_djn_base(n, rng)?;
    let n_sq = public.n_squared();
    let v = loop {
        let r = random_below(n_sq, rng);
        if coprime(&r, public.n()) {
            break (&r * &r) % n_sq;
        }
    };
    let delta = factorial(holders);
    let mut shares = Vec::with_capacity(usize::from(holders));
    let mut verification = Vec::with_capacity(usize::from(holders));
    for i in 1..=holders {
        // Horner: f(i) mod n m.
        let x = BigUint::from(i);
        let mut s = BigUint::zero();
        for a in coefficients.iter().rev() {
            s = (s * &x + &**a) % &*nm;
        }
        s = (s * &x + &*d) % &*nm;
        verification.push(pow_mod(&v, &(&delta * &s), n_sq));
        shares.push((i, s));
    }
    let key = ThresholdKey {
        public,
        threshold,
        v,
        verification,
        delta,
    };
    let shares = shares
        .into_iter()
        .map(|(index, share)| KeyShare {
            key: key.clone(),
            index,
            share,
        })
        .collect();
    Ok((key, shares))
}

fn hash_ints<'a>(h: &mut Sha256, xs: impl IntoIterator<Item = &'a BigUint>) {
    for x in xs {
        let bytes = x.to_bytes_be();
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
}

/// The batched statement of holder `index` for ciphertexts `cts` and decryption shares `values`:
/// `U = prod u_j^(ρ_j)` and `W = prod w_j^(ρ_j)` with `u_j = c_j^4`, `w_j = c_i,j^2` and 128-bit
/// weights `ρ_j` hashed from everything. All of these are squares, whose group has no small
/// subgroup, so one proof that `log_U W = log_v v_i` shows every `log_(u_j) w_j = log_v v_i` but
/// with probability about `2^-128` (small-exponent batch verification, Bellare, Garay and Rabin,
/// Eurocrypt 1998). Also returns the digest that binds the proof to the whole vector.
fn batch(
    key: &ThresholdKey,
    index: u16,
    cts: &[Ciphertext],
    values: &[BigUint],
) -> (BigUint, BigUint, [u8; 32]) {
    let n_sq = key.public.n_squared();
    let four = BigUint::from(4u32);
    let us: Vec<BigUint> = cts.iter().map(|c| pow_mod(&c.0, &four, n_sq)).collect();
    let ws: Vec<BigUint> = values.iter().map(|x| (x * x) % n_sq).collect();
    let mut h = Sha256::new();
    h.update(b"fedagg threshold paillier batch v1");
    h.update(index.to_be_bytes());
    hash_ints(&mut h, [key.public.n(), &key.v]);
    hash_ints(&mut h, key.verification_key(index));
    hash_ints(&mut h, us.iter().chain(&ws));
    let digest: [u8; 32] = h.finalize().into();
    let (mut big_u, mut big_w) = (BigUint::one(), BigUint::one());
    for (j, (u, w)) in us.iter().zip(&ws).enumerate() {
        let mut hj = Sha256::new();
        hj.update(digest);
        hj.update((j as u64).to_be_bytes());
        let rho = BigUint::from_bytes_be(&hj.finalize()[..16]);
        big_u = (big_u * pow_mod(u, &rho, n_sq)) % n_sq;
        big_w = (big_w * pow_mod(w, &rho, n_sq)) % n_sq;
    }
    (big_u, big_w, digest)
}

fn challenge(digest: &[u8; 32], values: [&BigUint; 4]) -> BigUint {
    let mut h = Sha256::new();
    h.update(b"fedagg threshold paillier proof v1");
    h.update(digest);
    hash_ints(&mut h, values);
    BigUint::from_bytes_be(&h.finalize())
}

impl ThresholdKey {
    /// Build a threshold key from its parts, checked for shape: `1 < t <= k`, `2 t > k`, `v` and
    /// every verification key a unit below `n^2`.
    pub fn from_parts(
        public: PublicKey,
        threshold: u16,
        v: BigUint,
        verification: Vec<BigUint>,
    ) -> Result<Self, Error> {
        let holders = u16::try_from(verification.len())
            .map_err(|_| Error::Threshold("too many verification keys".into()))?;
        check_threshold(holders, threshold)?;
        let unit = |x: &BigUint| !x.is_zero() && x < public.n_squared() && coprime(x, public.n());
        if !unit(&v) || !verification.iter().all(unit) {
            return Err(Error::Malformed(
                "verification keys are not units modulo n^2".into(),
            ));
        }
        Ok(ThresholdKey {
            public,
            threshold,
            v,
            verification,
            delta: factorial(holders),
        })
    }

    /// The Paillier key participants encrypt under.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
    /// Partial decryptions needed to decrypt.
    pub fn threshold(&self) -> u16 {
        self.threshold
    }
    /// Key holders.
    pub fn holders(&self) -> u16 {
        self.verification.len() as u16
    }
    /// The verification base `v`.
    pub fn v(&self) -> &BigUint {
        &self.v
    }
    /// Holder `index`'s verification key `v^(Δ s_i)`, for `index` in `1..=k`.
    pub fn verification_key(&self, index: u16) -> Option<&BigUint> {
        self.verification.get(usize::from(index).checked_sub(1)?)
    }
    /// All verification keys, holder 1 first.
    pub fn verification_keys(&self) -> &[BigUint] {
        &self.verification
    }

    /// Bits of a proof's nonce: the secret `Δ s_i` (below `Δ n m < Δ n^2`), the challenge, and
    /// the hiding margin.
    pub(crate) fn nonce_bits(&self) -> u64 {
        self.public.n_squared().bits() + self.delta.bits() + CHALLENGE_BITS + HIDING_BITS
    }

    /// Check `partial`'s proof against the ciphertexts `cts` it claims to decrypt.
    pub fn verify(&self, cts: &[Ciphertext], partial: &PartialDecryption) -> Result<(), Error> {
        let bad = |why: &str| Error::Threshold(format!("holder {}: {why}", partial.index));
        let vk = self
            .verification_key(partial.index)
            .ok_or_else(|| bad("no such holder"))?;
        if partial.values.len() != cts.len() {
            return Err(bad("its decryption shares do not match the ciphertexts"));
        }
        let n_sq = self.public.n_squared();
        let unit = |x: &BigUint| !x.is_zero() && x < n_sq && coprime(x, self.public.n());
        if !partial.values.iter().all(unit) {
            return Err(bad("a decryption share is not a unit modulo n^2"));
        }
        if partial.challenge.bits() > CHALLENGE_BITS
            || partial.response.bits() > self.nonce_bits() + 1
        {
            return Err(bad("its proof is out of range"));
        }
        let (big_u, big_w, digest) = batch(self, partial.index, cts, &partial.values);
        let e = &partial.challenge;
        let z = &partial.response;
        let inv = |x: &BigUint| -> Result<BigUint, Error> {
            pow_mod(x, e, n_sq)
                .modinv(n_sq)
                .ok_or_else(|| bad("a value has no inverse"))
        };
        let a = (pow_mod(&big_u, z, n_sq) * inv(&big_w)?) % n_sq;
        let b = (pow_mod(&self.v, z, n_sq) * inv(vk)?) % n_sq;
        if challenge(&digest, [&big_u, &big_w, &a, &b]) != *e {
            return Err(bad("its proof of correct decryption does not verify"));
        }
        Ok(())
    }

    /// Combine partial decryptions of one ciphertext vector from at least `t` distinct holders
    /// (the first `t` by index are used; check each with [`ThresholdKey::verify`] first) into
    /// the plaintexts.
    pub fn combine(&self, partials: &[&PartialDecryption]) -> Result<Vec<BigUint>, Error> {
        let mut chosen: Vec<&PartialDecryption> = partials.to_vec();
        chosen.sort_by_key(|p| p.index);
        chosen.dedup_by_key(|p| p.index);
        if chosen.len() < usize::from(self.threshold) {
            return Err(Error::Threshold(format!(
                "{} distinct partial decryptions, {} are needed",
                chosen.len(),
                self.threshold
            )));
        }
        chosen.truncate(usize::from(self.threshold));
        let len = chosen.first().map_or(0, |p| p.values.len());
        if chosen.iter().any(|p| p.values.len() != len) {
            return Err(Error::Threshold(
                "partial decryptions of vectors of different lengths".into(),
            ));
        }
        let n = self.public.n();
        let n_sq = self.public.n_squared();
        // 2 μ_i as (magnitude, negative), with μ_i = Δ prod_(j != i) j / (j - i), an integer.
        let delta = BigInt::from_biguint(Sign::Plus, self.delta.clone());
        let exponents: Vec<(BigUint, bool)> = chosen
            .iter()
            .map(|p| {
                let i = i64::from(p.index);
                let (mut num, mut den) = (delta.clone(), BigInt::one());
                for other in chosen.iter().filter(|o| o.index != p.index) {
                    let j = i64::from(other.index);
                    num *= j;
                    den *= j - i;
                }
                let mu = num / den;
                (
                    (mu.abs() * 2u32).to_biguint().unwrap_or_default(),
                    mu.is_negative(),
                )
            })
            .collect();
        let scale = (&self.delta * &self.delta * 4u32) % n;
        let inv = scale
            .modinv(n)
            .ok_or_else(|| Error::Threshold("4 Δ^2 is not invertible modulo n".into()))?;
        (0..len)
            .map(|j| {
                let mut acc = BigUint::one();
                for (p, (exp, negative)) in chosen.iter().zip(&exponents) {
                    let value = p
                        .values
                        .get(j)
                        .ok_or_else(|| Error::Threshold("a partial decryption is short".into()))?;
                    let mut term = pow_mod(value, exp, n_sq);
                    if *negative {
                        term = term.modinv(n_sq).ok_or_else(|| {
                            Error::Threshold("a decryption share has no inverse".into())
                        })?;
                    }
                    acc = (acc * term) % n_sq;
                }
                // acc = 1 + 4 Δ^2 M n (mod n^2)
                if !(&acc % n).is_one() {
                    return Err(Error::Threshold(
                        "the partial decryptions do not combine to a plaintext".into(),
                    ));
                }
                Ok((((acc - 1u32) / n) * &inv) % n)
            })
            .collect()
    }
}

impl KeyShare {
    /// A share from its parts (checked: `index` in `1..=k`, `v^(Δ share)` equal to the holder's
    /// verification key).
    pub fn from_parts(key: ThresholdKey, index: u16, share: BigUint) -> Result<Self, Error> {
        let vk = key
            .verification_key(index)
            .ok_or_else(|| Error::Malformed(format!("no holder {index} in this key")))?
            .clone();
        let share = KeyShare { key, index, share };
        let expected = pow_mod(
            &share.key.v,
            &(&share.key.delta * &share.share),
            share.key.public.n_squared(),
        );
        if expected != vk {
            return Err(Error::Malformed(
                "the share does not match its verification key".into(),
            ));
        }
        Ok(share)
    }

    /// The threshold key this share belongs to.
    pub fn key(&self) -> &ThresholdKey {
        &self.key
    }
    /// This holder's index, `1..=k`.
    pub fn index(&self) -> u16 {
        self.index
    }
    /// The secret share (for the key file writer).
    pub(crate) fn secret(&self) -> &BigUint {
        &self.share
    }

    /// This holder's partial decryptions of `cts`, with one proof that all are correct.
    pub fn partial_decrypt<R: RngCore + CryptoRng>(
        &self,
        cts: &[Ciphertext],
        rng: &mut R,
    ) -> PartialDecryption {
        let key = &self.key;
        let n_sq = key.public.n_squared();
        let secret = Wiped(&key.delta * &self.share); // Δ s_i
        let twice = Wiped(&*secret * 2u32);
        let values: Vec<BigUint> = cts.iter().map(|c| pow_mod(&c.0, &twice, n_sq)).collect();
        let (big_u, big_w, digest) = batch(key, self.index, cts, &values);
        let r = Wiped(random_bits(key.nonce_bits(), rng));
        let a = pow_mod(&big_u, &r, n_sq);
        let b = pow_mod(&key.v, &r, n_sq);
        let challenge = challenge(&digest, [&big_u, &big_w, &a, &b]);
        let response = &*r + &challenge * &*secret;
        PartialDecryption {
            index: self.index,
            values,
            challenge,
            response,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// A 512-bit key dealt to five holders, three needed (small primes for speed).
    fn dealt(seed: u64) -> (ThresholdKey, Vec<KeyShare>, ChaCha20Rng) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let p = random_safe_prime(256, &mut rng);
        let q = loop {
            let q = random_safe_prime(256, &mut rng);
            if q != p {
                break q;
            }
        };
        let (key, shares) = deal_from_primes(&p, &q, 5, 3, &mut rng).unwrap();
        (key, shares, rng)
    }

    #[test]
    fn safe_primes_are_safe_and_of_the_size_asked_for() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for bits in [64u64, 128, 256] {
            let p = random_safe_prime(bits, &mut rng);
            assert_eq!(p.bits(), bits);
            assert!(p.bit(bits - 2));
            assert!(is_probable_prime(&p, &mut rng));
            assert!(is_probable_prime(&(&p >> 1u32), &mut rng));
        }
    }

    #[test]
    fn any_three_of_five_decrypt_and_fewer_cannot() {
        let (key, shares, mut rng) = dealt(2);
        let pk = key.public().clone();
        let ms = [
            BigUint::from(123_456_789u64) << 200u32,
            BigUint::zero(),
            pk.n() - 1u32,
        ];
        let cts: Vec<Ciphertext> = ms
            .iter()
            .map(|m| pk.encrypt(m, &mut rng).unwrap())
            .collect();
        let partials: Vec<_> = shares
            .iter()
            .map(|s| s.partial_decrypt(&cts, &mut rng))
            .collect();
        for p in &partials {
            assert_eq!(p.len(), 3);
            key.verify(&cts, p).unwrap();
        }
        for subset in [[0usize, 1, 2], [0, 2, 4], [1, 3, 4], [2, 3, 4]] {
            let chosen: Vec<_> = subset.iter().map(|&i| &partials[i]).collect();
            assert_eq!(key.combine(&chosen).unwrap(), ms, "{subset:?}");
        }
        let two: Vec<_> = partials.iter().take(2).collect();
        assert!(matches!(key.combine(&two), Err(Error::Threshold(_))));
        // The same holder twice is one holder.
        let dup = vec![&partials[0], &partials[0], &partials[1]];
        assert!(key.combine(&dup).is_err());
        // Sums decrypt like sums.
        let c2 = pk.encrypt(&BigUint::from(7u32), &mut rng).unwrap();
        let sum = [pk.add(&cts[0], &c2)];
        let ps: Vec<_> = shares[2..]
            .iter()
            .map(|s| s.partial_decrypt(&sum, &mut rng))
            .collect();
        assert_eq!(
            key.combine(&ps.iter().collect::<Vec<_>>()).unwrap(),
            [&ms[0] + 7u32]
        );
    }

    #[test]
    fn a_wrong_partial_decryption_is_caught_by_its_proof() {
        let (key, shares, mut rng) = dealt(3);
        let pk = key.public().clone();
        let cts: Vec<Ciphertext> = (40..44u32)
            .map(|m| pk.encrypt(&BigUint::from(m), &mut rng).unwrap())
            .collect();
        let good = shares[0].partial_decrypt(&cts, &mut rng);
        key.verify(&cts, &good).unwrap();
        // Decryption shares of other ciphertexts, or of fewer, or one shifted by a plaintext,
        // or two swapped, or claimed under another holder's index: none verifies.
        let mut others = cts.clone();
        others[3] = pk.encrypt(&BigUint::from(1u32), &mut rng).unwrap();
        assert!(key.verify(&others, &good).is_err());
        assert!(key.verify(&cts[..3], &good).is_err());
        for j in 0..4 {
            let mut shifted = good.clone();
            shifted.values[j] = (&shifted.values[j] * (pk.n() + 1u32)) % pk.n_squared();
            assert!(key.verify(&cts, &shifted).is_err(), "{j}");
        }
        let mut swapped = good.clone();
        swapped.values.swap(0, 1);
        assert!(key.verify(&cts, &swapped).is_err());
        let mut renamed = good.clone();
        renamed.index = 2;
        assert!(key.verify(&cts, &renamed).is_err());
        let mut unknown = good.clone();
        unknown.index = 6;
        assert!(key.verify(&cts, &unknown).is_err());
        let mut big = good;
        big.response <<= 4000u32;
        assert!(key.verify(&cts, &big).is_err());
    }

    #[test]
    fn thresholds_and_shares_are_checked() {
        for (k, t) in [(1, 1), (2, 1), (5, 2), (4, 2), (17, 10), (3, 4)] {
            assert!(check_threshold(k, t).is_err(), "{t} of {k}");
        }
        for (k, t) in [(2, 2), (3, 2), (5, 3), (16, 9)] {
            check_threshold(k, t).unwrap();
        }
        let (key, shares, mut rng) = dealt(4);
        let s = &shares[1];
        assert!(KeyShare::from_parts(key.clone(), 2, s.secret().clone()).is_ok());
        assert!(KeyShare::from_parts(key.clone(), 3, s.secret().clone()).is_err());
        assert!(KeyShare::from_parts(key.clone(), 9, s.secret().clone()).is_err());
        assert!(format!("{s:?}").contains("index: 2"));
        assert!(!format!("{s:?}").contains(&s.secret().to_string()));
        // Not safe primes.
        let p = crate::prime::random_blum_prime(256, &mut rng);
        let q = random_safe_prime(256, &mut rng);
        assert!(deal_from_primes(&p, &q, 3, 2, &mut rng).is_err());
    }
}
