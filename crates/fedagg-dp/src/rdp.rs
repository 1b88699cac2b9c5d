//! Rényi DP of the Poisson-subsampled Gaussian mechanism, its composition, and the conversion to
//! (epsilon, delta).
//!
//! Per order `alpha` (Mironov, Talwar, Zhang 2019, section 3.3): `RDP(alpha) = ln(A_alpha) /
//! (alpha - 1)`, with `A_alpha` a finite binomial sum for integer orders and, for fractional ones,
//! two series split at `z0 = sigma^2 ln(1/q - 1) + 1/2`, summed *with their signs* (as Opacus does,
//! which agrees with a 40-digit computation; `dp_accounting` adds absolute values and so
//! overestimates at orders near 1). The series stops when both new terms fall below `e^-30`, and
//! an order whose series does not converge in 10 000 terms is excluded (its RDP is infinite).
//!
//! The conversion is the one of Balle et al. 2020 (Theorem 21), with `dp_accounting`'s guards:
//! orders at or below 1.01 are skipped, `epsilon = 0` when `delta^2 + expm1(-RDP) > 0`, and
//! epsilon is never negative.

use crate::special::{ln_erfc, log_add, log_sub};
use crate::{check_delta, check_positive, check_rate, Error};

/// The order grid: 1.1, 1.2, ..., 10.9, then 11 ... 63, then 128, 256, 512, 1024 (the grid of
/// `dp_accounting`, 156 orders). The large orders let small epsilons (about 0.1 at delta 1e-5)
/// be certified.
pub fn default_orders() -> Vec<f64> {
    let mut v: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    v.extend((11..64).map(f64::from));
    v.extend([128.0, 256.0, 512.0, 1024.0]);
    v
}

const MAX_SERIES_TERMS: usize = 10_000;

fn log_a_integer(q: f64, sigma: f64, alpha: u64) -> f64 {
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let mut log_binom = 0.0;
    let mut acc = f64::NEG_INFINITY;
    for i in 0..=alpha {
        if i > 0 {
            log_binom += ((alpha - i + 1) as f64).ln() - (i as f64).ln();
        }
        let fi = i as f64;
        let s =
            log_binom + fi * lq + (alpha - i) as f64 * l1q + (fi * fi - fi) / (2.0 * sigma * sigma);
        acc = log_add(acc, s);
    }
    acc
}

fn log_a_fractional(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (lq, l1q) = (q.ln(), (-q).ln_1p());
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let s2 = core::f64::consts::SQRT_2 * sigma;
    let (mut a0, mut a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    // binom(alpha, i) as sign and log of magnitude, built up term by term
    let mut log_coef = 0.0;
    let mut positive = true;
    for i in 0..MAX_SERIES_TERMS {
        if i > 0 {
            let factor = (alpha - i as f64 + 1.0) / i as f64;
            if factor == 0.0 {
                return log_add(a0, a1);
            }
            positive ^= factor < 0.0;
            log_coef += factor.abs().ln();
        }
        let fi = i as f64;
        let j = alpha - fi;
        let t0 = log_coef + fi * lq + j * l1q;
        let t1 = log_coef + j * lq + fi * l1q;
        let e0 = 0.5f64.ln() + ln_erfc((fi - z0) / s2);
        let e1 = 0.5f64.ln() + ln_erfc((z0 - j) / s2);
        let s0 = t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + e0;
        let s1 = t1 + (j * j - j) / (2.0 * sigma * sigma) + e1;
        if positive {
            a0 = log_add(a0, s0);
            a1 = log_add(a1, s1);
        } else {
            match (log_sub(a0, s0), log_sub(a1, s1)) {
                (Some(x), Some(y)) => {
                    a0 = x;
                    a1 = y;
                }
                _ => return f64::INFINITY, // numerically broken: exclude the order
            }
        }
        if s0.max(s1) < -30.0 {
            return log_add(a0, a1);
        }
    }
    f64::INFINITY
}

/// RDP at order `alpha` of one step of the Gaussian mechanism with noise multiplier `sigma`,
/// Poisson-subsampled at rate `q`. Infinite where the order is excluded.
pub fn rdp_sampled_gaussian(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    if !alpha.is_finite() {
        return f64::INFINITY;
    }
    let log_a = if alpha.fract() == 0.0 && alpha < 1e7 {
        log_a_integer(q, sigma, alpha as u64)
    } else {
        log_a_fractional(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

/// RDP over `orders` of `steps` compositions of the subsampled Gaussian, validated.
pub fn compute_rdp(q: f64, sigma: f64, steps: u64, orders: &[f64]) -> Result<Vec<f64>, Error> {
    check_rate(q)?;
    check_positive("sigma", sigma)?;
    for &a in orders {
        if !(a.is_finite() && a > 1.0) {
            return Err(Error::InvalidParameter {
                name: "order",
                value: a,
                expected: "a finite order above 1",
            });
        }
    }
    Ok(orders
        .iter()
        .map(|&a| rdp_sampled_gaussian(q, sigma, a) * steps as f64)
        .collect())
}

/// Epsilon at `delta` from an RDP curve, and the order that attains it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    /// The epsilon.
    pub epsilon: f64,
    /// The optimal order (NaN if every order was excluded).
    pub order: f64,
    /// Whether the optimum sits at the first or last order: the grid should then be extended.
    pub at_grid_edge: bool,
}

/// Convert an RDP curve to (epsilon, delta) with the improved conversion.
pub fn epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> Result<Spent, Error> {
    check_delta(delta)?;
    if orders.len() != rdp.len() || orders.is_empty() {
        return Err(Error::InvalidParameter {
            name: "rdp",
            value: rdp.len() as f64,
            expected: "one value per order",
        });
    }
    let mut best = Spent {
        epsilon: f64::INFINITY,
        order: f64::NAN,
        at_grid_edge: false,
    };
    let mut best_idx = None;
    for (i, (&a, &r)) in orders.iter().zip(rdp).enumerate() {
        if a <= 1.01 || r.is_nan() || r == f64::INFINITY {
            continue;
        }
        let eps = if delta * delta + (-r).exp_m1() > 0.0 {
            0.0
        } else {
            (r + ((a - 1.0) / a).ln() - (delta.ln() + a.ln()) / (a - 1.0)).max(0.0)
        };
        if eps < best.epsilon {
            best.epsilon = eps;
            best.order = a;
            best_idx = Some(i);
        }
    }
    best.at_grid_edge = matches!(best_idx, Some(i) if i == 0 || i + 1 == orders.len());
    Ok(best)
}

/// Epsilon of `steps` rounds of the subsampled Gaussian over the default orders.
pub fn epsilon_for(q: f64, sigma: f64, steps: u64, delta: f64) -> Result<Spent, Error> {
    let orders = default_orders();
    let rdp = compute_rdp(q, sigma, steps, &orders)?;
    epsilon(&orders, &rdp, delta)
}

/// The smallest noise multiplier whose RDP epsilon after `steps` rounds at rate `q` is at most
/// `target_epsilon` at `delta`, found by bisection to within `tolerance` in epsilon: the result
/// satisfies `target - tolerance <= epsilon(sigma) <= target` (or sigma is pinned to 1e-9 relative
/// precision). Errors when even sigma = 10^6 does not meet the target.
/// [`crate::Accountant::calibrate_sigma`] does the same under either accountant.
pub fn calibrate_sigma(
    target_epsilon: f64,
    delta: f64,
    q: f64,
    steps: u64,
    tolerance: f64,
) -> Result<f64, Error> {
    check_rate(q)?;
    let orders = default_orders();
    crate::calibrate(target_epsilon, delta, tolerance, |sigma| {
        let rdp = compute_rdp(q, sigma, steps, &orders)?;
        Ok(epsilon(&orders, &rdp, delta)?.epsilon)
    })
}
