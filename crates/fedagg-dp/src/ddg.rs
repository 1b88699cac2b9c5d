//! Distributed DP under secure aggregation: the distributed discrete Gaussian mechanism (DDG) of
//! Kairouz, Liu and Steinke (ICML 2021).
//!
//! Each participant, on its own update:
//! 1. clips it to L2 norm `C` and pads it with zeros to a power of two `d`;
//! 2. rotates it: sign flips drawn from a public per-round seed, then the Walsh-Hadamard
//!    transform divided by `sqrt(d)`. The map is orthogonal, so the norm is kept, and it spreads
//!    the vector's mass evenly over the coordinates;
//! 3. multiplies by the scale `s` and rounds each coordinate stochastically, repeating the
//!    rounding until the rounded vector's norm is within [`DdgParams::sensitivity`] (conditional
//!    randomized rounding with `beta = exp(-1/2)`, so the bound holds with certainty);
//! 4. adds discrete Gaussian noise `N_Z(0, sigma^2)` to every coordinate ([`DiscreteGaussian`],
//!    the exact sampler of Canonne, Kamath and Steinke);
//! 5. reduces modulo `2^bits`, which is what SecAgg masks and sums.
//!
//! The server centres the unmasked sum modulo `2^bits`, divides by `s` and undoes the rotation
//! ([`DdgParams::decode_sum`]). It never holds a sum without the noise of every survivor.
//!
//! **Why the discrete Gaussian, not Skellam.** The crate has an exact, integer-only sampler for
//! it, driven by the caller's CSPRNG, and the sum of independent discrete Gaussians has the
//! privacy bound of Kairouz et al. (their Theorem 1 and Proposition 14), which [`DdgParams::rdp`]
//! implements. Skellam sums stay Skellam and its RDP is simpler, but it needs an exact Poisson
//! sampler for means up to `2^40`, which would be new code on the protocol's path for a gain of
//! a few percent in noise at the parameters used here.
//!
//! **Calibration against dropouts.** Every parameter is a function of the federation's spec
//! alone (each participant recomputes them from the spec it pinned, so the server cannot lower
//! the noise): the local noise is `sigma = z C s / sqrt(n_min)`, with `n_min` the fewest
//! survivors a round may aggregate, so any sum the server can see carries at least the noise of
//! a central Gaussian with multiplier `z`. The accountant then charges the survivors actually in
//! the sum ([`DdgParams::rdp`] with their number), which has at least that much noise.
//!
//! **Bits.** The scale is the largest that keeps the sum inside `2^bits`: each coordinate of the
//! aggregate of `n_max` clients is sub-Gaussian with variance proxy
//! `v = (n_max C s)^2 / d + n_max / 4 + n_max sigma^2` (the rotated signal at its worst, when all
//! updates point the same way; the rounding errors; the noise), and `s` is chosen so that the
//! union bound `2 d exp(-(2^(bits-1))^2 / (2 v))` on any coordinate wrapping around is at most
//! [`WRAP_TARGET`]. Wrap-around changes the aggregate, not its privacy: the modular sum is a
//! function of the noisy sum (post-processing), so it is a utility bound
//! ([`DdgParams::wrap_probability`]), not part of epsilon.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::noise::DiscreteGaussian;
use crate::special::log_add;
use crate::{check_positive, check_rate, Error};

/// Conditional randomized rounding's `beta`: each rounding attempt lands within the bound with
/// probability at least `1 - beta` (Kairouz et al.'s choice, `exp(-1/2)`).
pub const BETA: f64 = 0.606_530_659_712_633_4;

/// The union bound on any coordinate of a round's aggregate wrapping around that the scale is
/// chosen for, at the federation's largest cohort.
pub const WRAP_TARGET: f64 = 1.0 / (1u64 << 20) as f64;

/// Rounding attempts before giving up (each fails with probability at most `beta`, so this never
/// happens unless the parameters are wrong).
const MAX_ROUNDING_ATTEMPTS: usize = 10_000;

/// Bits of the modular sum.
pub const MIN_BITS: u32 = 8;
/// At most 62 bits, so that centred sums fit an `i64` with room to spare.
pub const MAX_BITS: u32 = 62;

/// One federation's distributed discrete Gaussian, derived from its spec alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdgParams {
    clip: f64,
    noise_multiplier: f64,
    vector_len: usize,
    dim: usize,
    bits: u32,
    scale: f64,
    noise: DiscreteGaussian,
    min_survivors: u32,
    max_clients: u32,
}

/// The smallest power of two at least `len`.
pub fn padded_dim(len: usize) -> Result<usize, Error> {
    len.checked_next_power_of_two()
        .filter(|_| len > 0)
        .ok_or(Error::InvalidParameter {
            name: "vector length",
            value: len as f64,
            expected: "a length from 1 to 2^63",
        })
}

impl DdgParams {
    /// The parameters for updates of `vector_len` values clipped to L2 norm `clip`, central noise
    /// multiplier `noise_multiplier` over at least `min_survivors` survivors, sums modulo
    /// `2^bits` of at most `max_clients` updates.
    pub fn new(
        vector_len: usize,
        clip: f64,
        noise_multiplier: f64,
        bits: u32,
        min_survivors: u32,
        max_clients: u32,
    ) -> Result<Self, Error> {
        check_positive("clip", clip)?;
        check_positive("noise multiplier", noise_multiplier)?;
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(Error::InvalidParameter {
                name: "bits",
                value: f64::from(bits),
                expected: "8 to 62 bits",
            });
        }
        if min_survivors == 0 || min_survivors > max_clients {
            return Err(Error::InvalidParameter {
                name: "minimum survivors",
                value: f64::from(min_survivors),
                expected: "1 to the largest cohort",
            });
        }
        let dim = padded_dim(vector_len)?;
        let (d, n, n_min) = (dim as f64, f64::from(max_clients), f64::from(min_survivors));
        let half = (2.0f64).powi(bits as i32 - 1);
        let spread = 2.0 * (2.0 * d / WRAP_TARGET).ln();
        let room = half * half / spread - n / 4.0;
        let per_scale = n * n * clip * clip / d + n * (noise_multiplier * clip).powi(2) / n_min;
        if room <= 0.0 {
            return Err(Error::InvalidParameter {
                name: "bits",
                value: f64::from(bits),
                expected: "enough bits for the rounding errors of the largest cohort",
            });
        }
        let scale = (room / per_scale).sqrt();
        let sigma2 = (noise_multiplier * clip * scale).powi(2) / n_min;
        let noise = sigma_squared(sigma2)?;
        Ok(DdgParams {
            clip,
            noise_multiplier,
            vector_len,
            dim,
            bits,
            scale,
            noise,
            min_survivors,
            max_clients,
        })
    }

    /// The padded (rotated) dimension: a power of two, the number of values SecAgg sums.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bits of the modular sum.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The scale `s`: integers per unit of the rotated update.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Each participant's noise, `sigma^2` of its discrete Gaussian (integer units).
    pub fn local_sigma_squared(&self) -> f64 {
        self.noise.sigma_squared()
    }

    /// The fewest survivors a round may aggregate, which the local noise is calibrated for.
    pub fn min_survivors(&self) -> u32 {
        self.min_survivors
    }

    /// The L2 sensitivity in integer units: the norm every rounded update stays within.
    pub fn sensitivity(&self) -> f64 {
        rounded_l2_bound(self.clip * self.scale, BETA, self.dim)
    }

    /// The union bound on any coordinate of a sum of `n` updates wrapping around modulo
    /// `2^bits`.
    pub fn wrap_probability(&self, n: u32) -> f64 {
        let (d, n) = (self.dim as f64, f64::from(n));
        let s = self.scale;
        let v = (n * self.clip * s).powi(2) / d + n / 4.0 + n * self.noise.sigma_squared();
        let half = (2.0f64).powi(self.bits as i32 - 1);
        (2.0 * d * (-half * half / (2.0 * v)).exp()).min(1.0)
    }

    /// A participant's contribution: `update` clipped, rotated with `rotation_seed`, scaled,
    /// rounded, noised and reduced modulo `2^bits`.
    pub fn encode<R: RngCore + CryptoRng>(
        &self,
        update: &[f32],
        rotation_seed: &[u8; 32],
        rng: &mut R,
    ) -> Result<Vec<u64>, Error> {
        if update.len() != self.vector_len {
            return Err(Error::LengthMismatch {
                expected: self.vector_len,
                actual: update.len(),
            });
        }
        let mut v: Vec<f64> = Vec::with_capacity(self.dim);
        for (index, &x) in update.iter().enumerate() {
            if !x.is_finite() {
                return Err(Error::NonFinite { index });
            }
            v.push(f64::from(x));
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let shrink = if norm > self.clip {
            self.clip / norm
        } else {
            1.0
        };
        for x in &mut v {
            *x *= shrink * self.scale;
        }
        v.resize(self.dim, 0.0);
        rotate(&mut v, rotation_seed);
        let rounded = round_within(&v, self.sensitivity(), rng)?;
        let mask = self.mask();
        Ok(rounded
            .into_iter()
            .map(|x| (x.wrapping_add(self.noise.sample(rng)) as u64) & mask)
            .collect())
    }

    /// The sum of the survivors' contributions (modulo `2^bits`) back in update units, divided
    /// by `denominator`: centred, unscaled, rotated back and cut to the update's length.
    pub fn decode_sum(
        &self,
        sum: &[u64],
        rotation_seed: &[u8; 32],
        denominator: f64,
    ) -> Result<Vec<f64>, Error> {
        if sum.len() != self.dim {
            return Err(Error::LengthMismatch {
                expected: self.dim,
                actual: sum.len(),
            });
        }
        check_positive("denominator", denominator)?;
        let (mask, half) = (self.mask(), 1u64 << (self.bits - 1));
        let mut v: Vec<f64> = sum
            .iter()
            .map(|&x| {
                let x = x & mask;
                let centred = if x >= half {
                    -((mask - x + 1) as f64)
                } else {
                    x as f64
                };
                centred / self.scale
            })
            .collect();
        rotate_back(&mut v, rotation_seed);
        v.truncate(self.vector_len);
        for x in &mut v {
            *x /= denominator;
        }
        Ok(v)
    }

    /// RDP at each of `orders` of one round whose sum holds `survivors` contributions, with
    /// clients sampled at rate `q` (Kairouz et al., Theorem 1 with Proposition 14; sampled with
    /// the general bound of Zhu and Wang 2019, Theorem 5, which needs integer orders: a
    /// fractional order is charged its ceiling's RDP, which is larger).
    pub fn rdp(&self, survivors: u32, q: f64, orders: &[f64]) -> Result<Vec<f64>, Error> {
        check_rate(q)?;
        if survivors < self.min_survivors {
            return Err(Error::InvalidParameter {
                name: "survivors",
                value: f64::from(survivors),
                expected: "at least the minimum the noise is calibrated for",
            });
        }
        let bound = DdgBound::new(
            self.sensitivity(),
            self.noise.sigma_squared(),
            survivors,
            self.dim,
        );
        orders
            .iter()
            .map(|&a| {
                if !(a.is_finite() && a > 1.0) {
                    return Err(Error::InvalidParameter {
                        name: "order",
                        value: a,
                        expected: "a finite order above 1",
                    });
                }
                Ok(bound.sampled(q, a.ceil().max(2.0) as u64))
            })
            .collect()
    }

    fn mask(&self) -> u64 {
        (1u64 << self.bits) - 1
    }
}

/// A discrete Gaussian with `sigma^2` as close as the sampler's fractions allow: `num / 2^k`
/// with both below `2^40`.
fn sigma_squared(sigma2: f64) -> Result<DiscreteGaussian, Error> {
    let limit = (1u64 << 40) as f64;
    if !(sigma2.is_finite() && sigma2 >= 1.0 / limit && sigma2 < limit / 2.0) {
        return Err(Error::InvalidParameter {
            name: "local sigma^2",
            value: sigma2,
            expected: "2^-40 to 2^39 integer units: change bits or the noise multiplier",
        });
    }
    let k = (39 - sigma2.log2().ceil() as i32).clamp(0, 39);
    let den = 1u64 << k;
    let num = (sigma2 * den as f64).round() as u64;
    DiscreteGaussian::new(num.max(1), den)
}

/// The L2 norm bound after conditional randomized rounding of a vector of norm at most `norm`
/// in `d` dimensions (Kairouz et al., Theorem 1).
pub fn rounded_l2_bound(norm: f64, beta: f64, d: usize) -> f64 {
    let d = d as f64;
    let plain = norm + d.sqrt();
    if beta <= 0.0 {
        return plain;
    }
    let squared =
        norm * norm + d / 4.0 + (2.0 * (1.0 / beta).ln()).sqrt() * (norm + d.sqrt() / 2.0);
    plain.min(squared.sqrt())
}

/// Round each value up with probability equal to its fractional part, again until the rounded
/// vector's L2 norm is at most `bound`.
fn round_within<R: RngCore>(v: &[f64], bound: f64, rng: &mut R) -> Result<Vec<i64>, Error> {
    let mut out = vec![0i64; v.len()];
    for _ in 0..MAX_ROUNDING_ATTEMPTS {
        let mut norm2 = 0.0;
        for (o, &x) in out.iter_mut().zip(v) {
            let floor = x.floor();
            let up = ((rng.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < x - floor;
            let r = floor + f64::from(u8::from(up));
            norm2 += r * r;
            *o = r as i64;
        }
        if norm2 <= bound * bound {
            return Ok(out);
        }
    }
    Err(Error::InvalidParameter {
        name: "rounding bound",
        value: bound,
        expected: "a bound that conditional rounding reaches",
    })
}

/// The public sign flips of a round: one bit per coordinate from ChaCha20 keyed by the seed.
fn flip_signs(v: &mut [f64], seed: &[u8; 32]) {
    let mut prg = ChaCha20Rng::from_seed(*seed);
    for chunk in v.chunks_mut(64) {
        let bits = prg.next_u64();
        for (i, x) in chunk.iter_mut().enumerate() {
            if bits >> i & 1 == 1 {
                *x = -*x;
            }
        }
    }
}

/// The Walsh-Hadamard transform in place, divided by `sqrt(len)` (orthogonal and its own
/// inverse). `v.len()` is a power of two.
fn hadamard(v: &mut [f64]) {
    let n = v.len();
    let mut h = 1;
    while h < n {
        for block in v.chunks_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (x, y) in a.iter_mut().zip(b) {
                let (s, t) = (*x + *y, *x - *y);
                *x = s;
                *y = t;
            }
        }
        h *= 2;
    }
    let norm = 1.0 / (n as f64).sqrt();
    for x in v {
        *x *= norm;
    }
}

/// The randomized Hadamard rotation `H D / sqrt(d)` of a padded vector.
pub fn rotate(v: &mut [f64], seed: &[u8; 32]) {
    flip_signs(v, seed);
    hadamard(v);
}

/// The inverse of [`rotate`]: `D H / sqrt(d)`.
pub fn rotate_back(v: &mut [f64], seed: &[u8; 32]) {
    hadamard(v);
    flip_signs(v, seed);
}

/// The privacy of one unsampled sum of `n` discrete Gaussians (Kairouz et al.), in the terms of
/// their Proposition 14: sensitivities over the sum's standard deviation, and the inflation
/// `tau` from adding discrete (rather than continuous) Gaussians.
#[derive(Debug, Clone, Copy)]
pub struct DdgBound {
    l2: f64,
    l1: f64,
    tau: f64,
    dim: f64,
}

impl DdgBound {
    /// For L2 sensitivity `sensitivity` (integer units; the L1 sensitivity follows, as
    /// `sensitivity * min(sqrt(d), sensitivity)` for integer vectors), `n` contributions each
    /// with noise `N_Z(0, sigma2)`, in `dim` dimensions.
    pub fn new(sensitivity: f64, sigma2: f64, n: u32, dim: usize) -> Self {
        let d = dim as f64;
        let l1_sensitivity = sensitivity * d.sqrt().min(sensitivity);
        let total = (f64::from(n) * sigma2).sqrt();
        let pi2 = core::f64::consts::PI * core::f64::consts::PI;
        let tau = 10.0
            * (1..n)
                .map(|k| {
                    let k = f64::from(k);
                    (-2.0 * pi2 * sigma2 * k / (k + 1.0)).exp()
                })
                .sum::<f64>();
        DdgBound {
            l2: sensitivity / total,
            l1: l1_sensitivity / total,
            tau,
            dim: d,
        }
    }

    /// RDP at integer order `alpha` without sampling.
    pub fn unsampled(&self, alpha: u64) -> f64 {
        let (a, l2, l1, tau, d) = (alpha as f64, self.l2, self.l1, self.tau, self.dim);
        let first = a / 2.0 * l2 * l2 + tau * d;
        let second = a / 2.0 * (l2 * l2 + 2.0 * l1 * tau + tau * tau * d);
        let third = a / 2.0 * (l2 + d.sqrt() * tau).powi(2);
        first.min(second).min(third)
    }

    /// RDP at integer order `alpha >= 2` with Poisson sampling at rate `q` (Zhu and Wang 2019,
    /// Theorem 5), or the unsampled RDP where that is smaller.
    pub fn sampled(&self, q: f64, alpha: u64) -> f64 {
        let plain = self.unsampled(alpha);
        if q >= 1.0 {
            return plain;
        }
        let a = alpha as f64;
        let (lq, l1q) = (q.ln(), (-q).ln_1p());
        let mut acc = (a - 1.0) * l1q + (a * q - q + 1.0).ln();
        let mut log_binom = 0.0;
        for l in 1..=alpha {
            log_binom += ((alpha - l + 1) as f64).ln() - (l as f64).ln();
            if l < 2 {
                continue;
            }
            let lf = l as f64;
            let weight = if l == 2 { 0.0 } else { 3.0f64.ln() };
            let term =
                weight + log_binom + lf * lq + (a - lf) * l1q + (lf - 1.0) * self.unsampled(l);
            acc = log_add(acc, term);
        }
        (acc / (a - 1.0)).min(plain)
    }
}

#[cfg(test)]
mod tests;
