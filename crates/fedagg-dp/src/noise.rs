//! Noise samplers driven by a caller's CSPRNG: the continuous Gaussian for float aggregates, and
//! the exact discrete Gaussian of Canonne, Kamath and Steinke (NeurIPS 2020) for integer ones.

use rand_core::{CryptoRng, RngCore};

use crate::{check_positive, Error};

/// A uniform double in (0, 1] from 53 random bits.
fn unit_open_closed<R: RngCore>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal samples by the Box-Muller transform, two per pair of uniforms.
pub struct Gaussian<'r, R> {
    rng: &'r mut R,
    spare: Option<f64>,
}

impl<'r, R: RngCore + CryptoRng> Gaussian<'r, R> {
    /// A sampler drawing from `rng`.
    pub fn new(rng: &'r mut R) -> Self {
        Gaussian { rng, spare: None }
    }

    /// One N(0, 1) sample.
    pub fn sample(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * unit_open_closed(self.rng).ln()).sqrt();
        let theta = 2.0 * core::f64::consts::PI * unit_open_closed(self.rng);
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// Add `N(0, std^2)` independently to every value of `sum` (the Gaussian mechanism with
/// `std = sigma x C`).
pub fn add_gaussian<R: RngCore + CryptoRng>(
    sum: &mut [f64],
    std: f64,
    rng: &mut R,
) -> Result<(), Error> {
    check_positive("noise standard deviation", std)?;
    let mut g = Gaussian::new(rng);
    for x in sum.iter_mut() {
        *x += std * g.sample();
    }
    Ok(())
}

/// Uniform integer in `[0, d)`, `d > 0`, by rejection.
fn uniform_below<R: RngCore>(rng: &mut R, d: u128) -> u128 {
    let bits = 128 - (d - 1).leading_zeros();
    let mask = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    loop {
        let x = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        if x < d {
            return x;
        }
    }
}

/// Bernoulli(n / d), exactly.
fn bernoulli<R: RngCore>(rng: &mut R, n: u128, d: u128) -> bool {
    uniform_below(rng, d) < n
}

/// Bernoulli(exp(-n / d)), exactly (CKS 2020, Algorithm 1).
fn bernoulli_exp<R: RngCore>(rng: &mut R, n: u128, d: u128) -> bool {
    if n <= d {
        let mut k: u128 = 1;
        loop {
            let Some(dk) = d.checked_mul(k) else {
                return k % 2 == 1;
            };
            if !bernoulli(rng, n, dk) {
                return k % 2 == 1;
            }
            k += 1;
        }
    }
    for _ in 0..n / d {
        if !bernoulli_exp(rng, 1, 1) {
            return false;
        }
    }
    bernoulli_exp(rng, n % d, d)
}

/// Discrete Laplace with scale `t` (CKS 2020, Algorithm 2 with s = 1).
fn discrete_laplace<R: RngCore>(rng: &mut R, t: u128) -> i128 {
    loop {
        let u = uniform_below(rng, t);
        if !bernoulli_exp(rng, u, t) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(rng, 1, 1) {
            v += 1;
        }
        let Some(x) = v.checked_mul(t).and_then(|vt| vt.checked_add(u)) else {
            continue;
        };
        let negative = bernoulli(rng, 1, 2);
        if negative && x == 0 {
            continue;
        }
        let x = i128::try_from(x).unwrap_or(i128::MAX);
        return if negative { -x } else { x };
    }
}

/// The discrete Gaussian on the integers with parameter `sigma^2 = num / den`, sampled exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscreteGaussian {
    num: u128,
    den: u128,
    t: u128,
}

impl DiscreteGaussian {
    /// `sigma^2 = num / den` exactly. `num`, `den` in `1..2^40`.
    pub fn new(num: u64, den: u64) -> Result<Self, Error> {
        let limit = 1u64 << 40;
        if num == 0 || den == 0 || num >= limit || den >= limit {
            return Err(Error::InvalidParameter {
                name: "discrete gaussian sigma^2",
                value: num as f64 / den.max(1) as f64,
                expected: "num / den with num and den in 1..2^40",
            });
        }
        let (num, den) = (u128::from(num), u128::from(den));
        // t = floor(sigma) + 1: the smallest t with t^2 den > num.
        let mut t = (num as f64 / den as f64).sqrt().floor() as u128 + 1;
        while t * t * den <= num {
            t += 1;
        }
        while t > 1 && (t - 1) * (t - 1) * den > num {
            t -= 1;
        }
        Ok(DiscreteGaussian { num, den, t })
    }

    /// `sigma` given as a float, represented as `round(sigma^2 x 2^20) / 2^20`. Needs
    /// `2^-10 <= sigma < 2^10`.
    pub fn from_sigma(sigma: f64) -> Result<Self, Error> {
        check_positive("sigma", sigma)?;
        let den = 1u64 << 20;
        let num = (sigma * sigma * den as f64).round();
        if !(1.0..(1u64 << 40) as f64).contains(&num) {
            return Err(Error::InvalidParameter {
                name: "sigma",
                value: sigma,
                expected: "a value in [2^-10, 2^10)",
            });
        }
        Self::new(num as u64, den)
    }

    /// The variance parameter `sigma^2` (the variance itself is slightly below it).
    pub fn sigma_squared(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// One sample (CKS 2020, Algorithm 3).
    pub fn sample<R: RngCore + CryptoRng>(&self, rng: &mut R) -> i64 {
        let (num, den, t) = (self.num, self.den, self.t);
        loop {
            let y = discrete_laplace(rng, t);
            // gamma = (|y| - sigma^2/t)^2 / (2 sigma^2) = (|y| t den - num)^2 / (2 t^2 den num)
            let a = y
                .unsigned_abs()
                .checked_mul(t)
                .and_then(|v| v.checked_mul(den));
            let Some(a) = a else { continue };
            let diff = a.abs_diff(num);
            let n = diff.checked_mul(diff);
            let d = (2 * t * t)
                .checked_mul(den)
                .and_then(|v| v.checked_mul(num));
            let (Some(n), Some(d)) = (n, d) else { continue };
            if bernoulli_exp(rng, n, d) {
                return i64::try_from(y).unwrap_or(if y < 0 { i64::MIN } else { i64::MAX });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::special::normal_cdf;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// Kolmogorov-Smirnov statistic of sorted samples against a CDF.
    fn ks(sorted: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
        let n = sorted.len() as f64;
        sorted
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn gaussian_moments_and_ks() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let n = 200_000;
        let mut g = Gaussian::new(&mut rng);
        let mut xs: Vec<f64> = (0..n).map(|_| g.sample()).collect();
        let nf = n as f64;
        let mean = xs.iter().sum::<f64>() / nf;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / nf;
        let skew = xs.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / nf / var.powf(1.5);
        let kurt = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / nf / (var * var);
        // Standard errors: mean 1/sqrt(n) = 0.0022, var sqrt(2/n) = 0.0032, skew sqrt(6/n) =
        // 0.0055, kurtosis sqrt(24/n) = 0.011; allow 5 of each.
        assert!(mean.abs() < 0.011, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "var {var}");
        assert!(skew.abs() < 0.028, "skew {skew}");
        assert!((kurt - 3.0).abs() < 0.055, "kurtosis {kurt}");
        xs.sort_by(f64::total_cmp);
        let d = ks(&xs, normal_cdf);
        // Critical value at significance 0.001: 1.95 / sqrt(n).
        assert!(d < 1.95 / nf.sqrt(), "KS statistic {d}");
        // The test can fail: a uniform sample is far from normal.
        let mut u: Vec<f64> = (0..n).map(|i| (i as f64 / nf - 0.5) * 3.46).collect();
        u.sort_by(f64::total_cmp);
        assert!(ks(&u, normal_cdf) > 1.95 / nf.sqrt());
    }

    #[test]
    fn add_gaussian_scales_and_validates() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let mut v = vec![10.0; 100_000];
        add_gaussian(&mut v, 3.0, &mut rng).unwrap();
        let mean = v.iter().sum::<f64>() / 1e5;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 1e5).sqrt();
        assert!(
            (mean - 10.0).abs() < 0.05 && (sd - 3.0).abs() < 0.05,
            "{mean} {sd}"
        );
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(add_gaussian(&mut v, bad, &mut rng).is_err());
        }
    }

    fn discrete_pmf(sigma2: f64, range: i64) -> Vec<(i64, f64)> {
        let w: Vec<(i64, f64)> = (-range..=range)
            .map(|k| (k, (-(k * k) as f64 / (2.0 * sigma2)).exp()))
            .collect();
        let z: f64 = w.iter().map(|p| p.1).sum();
        w.into_iter().map(|(k, p)| (k, p / z)).collect()
    }

    #[test]
    fn discrete_gaussian_matches_its_pmf() {
        for sigma in [0.7f64, 3.0, 25.0] {
            let dg = DiscreteGaussian::from_sigma(sigma).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(13);
            let n = 60_000usize;
            let mut xs: Vec<i64> = (0..n).map(|_| dg.sample(&mut rng)).collect();
            xs.sort_unstable();
            let pmf = discrete_pmf(dg.sigma_squared(), (sigma * 20.0) as i64 + 20);
            let var_true: f64 = pmf.iter().map(|(k, p)| (*k * *k) as f64 * p).sum();
            let mean = xs.iter().sum::<i64>() as f64 / n as f64;
            let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(
                mean.abs() < 5.0 * (var_true / n as f64).sqrt(),
                "sigma {sigma}: mean {mean}"
            );
            assert!(
                (var / var_true - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt() + 0.01,
                "sigma {sigma}: var {var} vs {var_true}"
            );
            // KS on the step CDF, evaluated at every support point.
            let mut cdf = 0.0;
            let mut d = 0f64;
            let mut idx = 0usize;
            for (k, p) in &pmf {
                cdf += p;
                while idx < n && xs[idx] <= *k {
                    idx += 1;
                }
                d = d.max((cdf - idx as f64 / n as f64).abs());
            }
            assert!(d < 1.95 / (n as f64).sqrt(), "sigma {sigma}: KS {d}");
        }
    }

    #[test]
    fn discrete_gaussian_parameters() {
        assert!(DiscreteGaussian::new(0, 1).is_err());
        assert!(DiscreteGaussian::new(1, 0).is_err());
        assert!(DiscreteGaussian::from_sigma(-1.0).is_err());
        assert!(DiscreteGaussian::from_sigma(1e9).is_err());
        let dg = DiscreteGaussian::new(9, 1).unwrap();
        assert_eq!(dg.t, 4); // floor(3) + 1
        let dg = DiscreteGaussian::new(8, 1).unwrap();
        assert_eq!(dg.t, 3); // floor(2.83) + 1
    }

    #[test]
    fn exact_bernoulli_exp_rate() {
        let mut rng = ChaCha20Rng::seed_from_u64(14);
        for (n, d) in [(1u128, 2u128), (3, 1), (7, 3)] {
            let trials = 100_000;
            let hits = (0..trials)
                .filter(|_| bernoulli_exp(&mut rng, n, d))
                .count() as f64;
            let p = (-(n as f64) / d as f64).exp();
            let se = (p * (1.0 - p) / trials as f64).sqrt();
            assert!((hits / trials as f64 - p).abs() < 5.0 * se, "{n}/{d}");
        }
    }
}
