//! Fixed-point encoding shared by every fedagg aggregation mode.
//!
//! **Central choice:** the overflow question is answered once, when parameters are built. A
//! [`QuantParams`] only exists if the largest possible aggregate, `n_max x T x max_weight`, fits in
//! the modulus `2^k`; every encoder and decoder downstream can then use wrapping arithmetic without
//! re-checking.
//!
//! The encoding of one update `x` (floats) with weight `w`:
//!
//! 1. clip every value to `[-c, c]`;
//! 2. map `[-c, c]` affinely onto `[0, T]` and round *stochastically* (up with probability equal
//!    to the fractional part), so the expected decoded value equals the clipped input;
//! 3. multiply by the integer weight `w <= max_weight` and prepend `w`, giving
//!    `[w, w*q_1, ..., w*q_m]` in `Z_2^k`.
//!
//! After `N` such vectors are summed (in the clear, under masks or under encryption), element 0 is
//! `W = sum w_i` and element `j` is `sum w_i q_ij`; [`QuantParams::decode_weighted_mean`] removes the
//! offsets and returns the weighted mean, with per-coordinate error at most one quantization step
//! `2c/T` against the weighted mean of the clipped inputs. Only `W` is revealed besides the mean.
//!
//! ```
//! use fedagg_quant::QuantParams;
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::{OsRng, SeedableRng};
//!
//! // clip to [-1, 1], 2^16 levels, weights up to 100, up to 1000 clients, in Z_2^40
//! let p = QuantParams::new(1.0, 1 << 16, 100, 1000, 40)?;
//! let mut rng = ChaCha20Rng::from_rng(OsRng).unwrap();
//! let a = p.encode_weighted(&[0.5, -0.25], 30, &mut rng)?;
//! let b = p.encode_weighted(&[-0.5, 0.75], 10, &mut rng)?;
//! let mut sum = a.clone();
//! p.modulus().add_assign(&mut sum, &b);
//! let (mean, total_weight) = p.decode_weighted_mean(&sum)?;
//! assert_eq!(total_weight, 40);
//! assert!((mean[0] - 0.25).abs() <= p.step());   // (30 * 0.5 + 10 * -0.5) / 40
//! assert!((mean[1] - 0.0).abs() <= p.step());    // (30 * -0.25 + 10 * 0.75) / 40
//! # Ok::<(), fedagg_quant::Error>(())
//! ```
//!
//! The crate does no IO and draws no ambient randomness: the stochastic rounding takes a caller's
//! cryptographically secure RNG.
#![forbid(unsafe_code)]

use core::fmt;
use rand_core::{CryptoRng, RngCore};

/// Errors of this crate. Messages are lowercase and name the offending numbers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The modulus bit width is outside `1..=64`.
    InvalidModulusBits(u32),
    /// A parameter is zero, negative, or not finite.
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// Its value, printed.
        value: String,
    },
    /// `n_max x T x max_weight` does not fit in the modulus.
    Overflow {
        /// Maximum number of contributions.
        max_clients: u64,
        /// Quantization levels `T`.
        levels: u64,
        /// Maximum weight.
        max_weight: u64,
        /// The product, which must be below `2^bits`.
        product: u128,
        /// Modulus bit width.
        bits: u32,
    },
    /// A weight of zero or above `max_weight`.
    WeightOutOfRange {
        /// The weight given.
        weight: u64,
        /// The configured maximum.
        max_weight: u64,
    },
    /// An input value was NaN or infinite.
    NonFinite {
        /// Its index in the input.
        index: usize,
    },
    /// A vector had the wrong length.
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// An aggregate is inconsistent with the parameters (e.g. zero total weight, or a coordinate
    /// larger than `W x T`).
    InvalidAggregate(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidModulusBits(b) => write!(f, "modulus bit width {b} is outside 1..=64"),
            Error::InvalidParameter { name, value } => {
                write!(f, "parameter {name} = {value} must be positive and finite")
            }
            Error::Overflow {
                max_clients,
                levels,
                max_weight,
                product,
                bits,
            } => write!(
                f,
                "aggregate could overflow: max_clients {max_clients} x levels {levels} x max_weight \
                 {max_weight} = {product} does not fit below 2^{bits}"
            ),
            Error::WeightOutOfRange { weight, max_weight } => {
                write!(f, "weight {weight} is outside 1..={max_weight}")
            }
            Error::NonFinite { index } => write!(f, "input value at index {index} is not finite"),
            Error::LengthMismatch { expected, actual } => {
                write!(f, "vector has length {actual}, expected {expected}")
            }
            Error::InvalidAggregate(why) => write!(f, "invalid aggregate: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A power-of-two modulus `2^bits`, `1 <= bits <= 64`. Elements are stored in `u64` and always
/// kept reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Modulus {
    bits: u32,
}

impl Modulus {
    /// `2^bits`; refuses widths outside `1..=64`.
    pub fn new(bits: u32) -> Result<Self, Error> {
        if (1..=64).contains(&bits) {
            Ok(Modulus { bits })
        } else {
            Err(Error::InvalidModulusBits(bits))
        }
    }

    /// The bit width `k`.
    pub fn bits(self) -> u32 {
        self.bits
    }

    /// `2^k - 1`, the largest element.
    pub fn mask(self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }

    /// `2^k` as a `u128`.
    pub fn value(self) -> u128 {
        1u128 << self.bits
    }

    /// Bytes one element takes on the wire and in the mask stream: `ceil(k / 8)`.
    pub fn bytes_per_element(self) -> usize {
        self.bits.div_ceil(8) as usize
    }

    /// Whether `x` is a reduced element.
    pub fn contains(self, x: u64) -> bool {
        x & !self.mask() == 0
    }

    /// `acc += x (mod 2^k)` element-wise. Panics if the lengths differ (a caller bug, never
    /// peer-controlled: wire decoders check lengths first).
    pub fn add_assign(self, acc: &mut [u64], x: &[u64]) {
        assert_eq!(
            acc.len(),
            x.len(),
            "add_assign on vectors of different lengths"
        );
        let mask = self.mask();
        for (a, b) in acc.iter_mut().zip(x) {
            *a = a.wrapping_add(*b) & mask;
        }
    }

    /// `acc -= x (mod 2^k)` element-wise. Panics if the lengths differ.
    pub fn sub_assign(self, acc: &mut [u64], x: &[u64]) {
        assert_eq!(
            acc.len(),
            x.len(),
            "sub_assign on vectors of different lengths"
        );
        let mask = self.mask();
        for (a, b) in acc.iter_mut().zip(x) {
            *a = a.wrapping_sub(*b) & mask;
        }
    }
}

/// Validated quantization parameters. Construct with [`QuantParams::new`], which refuses any
/// configuration whose aggregate could wrap around the modulus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    clip: f64,
    levels: u64,
    max_weight: u64,
    max_clients: u64,
    modulus: Modulus,
}

impl QuantParams {
    /// Parameters for clipping range `[-clip, clip]`, `levels` = T (quantized values lie in
    /// `0..=T`), weights in `1..=max_weight`, at most `max_clients` contributions per aggregate,
    /// in `Z_2^modulus_bits`.
    ///
    /// Refused unless `max_clients x levels x max_weight < 2^modulus_bits`; the error names the
    /// numbers.
    pub fn new(
        clip: f64,
        levels: u64,
        max_weight: u64,
        max_clients: u64,
        modulus_bits: u32,
    ) -> Result<Self, Error> {
        let modulus = Modulus::new(modulus_bits)?;
        if !(clip.is_finite() && clip > 0.0) {
            return Err(Error::InvalidParameter {
                name: "clip",
                value: clip.to_string(),
            });
        }
        for (name, v) in [
            ("levels", levels),
            ("max_weight", max_weight),
            ("max_clients", max_clients),
        ] {
            if v == 0 {
                return Err(Error::InvalidParameter {
                    name,
                    value: "0".into(),
                });
            }
        }
        let overflow = Error::Overflow {
            max_clients,
            levels,
            max_weight,
            product: u128::MAX,
            bits: modulus_bits,
        };
        // u64^3 can exceed u128; checked multiplication reports "does not fit" as overflow.
        let product = (max_clients as u128)
            .checked_mul(levels as u128)
            .and_then(|p| p.checked_mul(max_weight as u128))
            .ok_or(overflow)?;
        if product >= modulus.value() {
            return Err(Error::Overflow {
                max_clients,
                levels,
                max_weight,
                product,
                bits: modulus_bits,
            });
        }
        Ok(QuantParams {
            clip,
            levels,
            max_weight,
            max_clients,
            modulus,
        })
    }

    /// Like [`QuantParams::new`] with the smallest modulus `2^k` that holds the largest
    /// aggregate, so masked vectors and ciphertext slots are no wider than they must be.
    pub fn with_minimal_modulus(
        clip: f64,
        levels: u64,
        max_weight: u64,
        max_clients: u64,
    ) -> Result<Self, Error> {
        let product = (max_clients as u128)
            .saturating_mul(levels as u128)
            .saturating_mul(max_weight as u128);
        let bits = (128 - product.leading_zeros()).max(1);
        Self::new(clip, levels, max_weight, max_clients, bits.min(64))
    }

    /// The clipping bound `c`.
    pub fn clip(&self) -> f64 {
        self.clip
    }
    /// Quantization levels `T`.
    pub fn levels(&self) -> u64 {
        self.levels
    }
    /// Largest admissible weight.
    pub fn max_weight(&self) -> u64 {
        self.max_weight
    }
    /// Largest number of contributions per aggregate.
    pub fn max_clients(&self) -> u64 {
        self.max_clients
    }
    /// The modulus `2^k`.
    pub fn modulus(&self) -> Modulus {
        self.modulus
    }
    /// One quantization step, `2c / T`: the bound on the per-coordinate error of a decoded mean.
    pub fn step(&self) -> f64 {
        2.0 * self.clip / self.levels as f64
    }

    /// Length of an encoded vector for an update of `m` values (the weight slot is prepended).
    pub fn encoded_len(m: usize) -> usize {
        m + 1
    }

    /// Clip and stochastically round one value into `0..=T`.
    fn quantize_one<R: RngCore + CryptoRng>(&self, x: f64, rng: &mut R) -> u64 {
        let clipped = x.clamp(-self.clip, self.clip);
        let scaled = (clipped + self.clip) * (self.levels as f64 / (2.0 * self.clip));
        let floor = scaled.floor();
        let frac = scaled - floor;
        // 53 random bits give a uniform double in [0, 1).
        let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let q = floor as u64 + u64::from(u < frac);
        q.min(self.levels)
    }

    /// Quantize an unweighted update: clip, scale, stochastic rounding; values in `0..=T`.
    pub fn quantize<R: RngCore + CryptoRng>(
        &self,
        update: &[f32],
        rng: &mut R,
    ) -> Result<Vec<u64>, Error> {
        update
            .iter()
            .enumerate()
            .map(|(index, &x)| {
                if x.is_finite() {
                    Ok(self.quantize_one(f64::from(x), rng))
                } else {
                    Err(Error::NonFinite { index })
                }
            })
            .collect()
    }

    /// Encode a weighted update as `[w, w*q_1, ..., w*q_m]`, ready to be masked or encrypted.
    pub fn encode_weighted<R: RngCore + CryptoRng>(
        &self,
        update: &[f32],
        weight: u64,
        rng: &mut R,
    ) -> Result<Vec<u64>, Error> {
        if weight == 0 || weight > self.max_weight {
            return Err(Error::WeightOutOfRange {
                weight,
                max_weight: self.max_weight,
            });
        }
        let mut out = Vec::with_capacity(update.len() + 1);
        out.push(weight);
        for q in self.quantize(update, rng)? {
            // q <= T and w <= max_weight, so the product is below 2^k by construction.
            out.push(q * weight);
        }
        Ok(out)
    }

    /// Decode the sum of `n` unweighted quantized vectors into the sum of the (clipped) inputs,
    /// removing the `n` offsets of `c`.
    pub fn decode_sum(&self, aggregate: &[u64], n: u64) -> Result<Vec<f64>, Error> {
        if n == 0 || n > self.max_clients {
            return Err(Error::InvalidAggregate(format!(
                "contribution count {n} is outside 1..={}",
                self.max_clients
            )));
        }
        let step = self.step();
        let limit = n as u128 * self.levels as u128;
        aggregate
            .iter()
            .map(|&s| {
                if s as u128 > limit {
                    Err(Error::InvalidAggregate(format!(
                        "coordinate {s} exceeds {n} x {}",
                        self.levels
                    )))
                } else {
                    Ok(s as f64 * step - n as f64 * self.clip)
                }
            })
            .collect()
    }

    /// Decode the sum of weighted encodings into `(weighted mean, total weight W)`.
    pub fn decode_weighted_mean(&self, aggregate: &[u64]) -> Result<(Vec<f64>, u64), Error> {
        let (&total_weight, sums) = aggregate
            .split_first()
            .ok_or_else(|| Error::InvalidAggregate("empty aggregate".into()))?;
        if total_weight == 0 {
            return Err(Error::InvalidAggregate("total weight is zero".into()));
        }
        if total_weight as u128 > self.max_clients as u128 * self.max_weight as u128 {
            return Err(Error::InvalidAggregate(format!(
                "total weight {total_weight} exceeds max_clients x max_weight"
            )));
        }
        let limit = total_weight as u128 * self.levels as u128;
        let step = self.step();
        let w = total_weight as f64;
        let mean = sums
            .iter()
            .map(|&s| {
                if s as u128 > limit {
                    Err(Error::InvalidAggregate(format!(
                        "coordinate {s} exceeds total weight {total_weight} x {}",
                        self.levels
                    )))
                } else {
                    Ok(s as f64 / w * step - self.clip)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((mean, total_weight))
    }
}

#[cfg(test)]
mod tests;
