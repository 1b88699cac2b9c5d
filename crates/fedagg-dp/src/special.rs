//! Special functions the accountant and the sampler tests need, in log space where tails matter.

/// `ln(erfc(x))`, accurate in both tails: `libm::erfc` (musl's, relative error about an ulp)
/// while it does not underflow, then the asymptotic series
/// `erfc(x) ~ exp(-x^2) / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(2x^2)^2 - 15/(2x^2)^3 + ...)`.
pub fn ln_erfc(x: f64) -> f64 {
    if x < 26.0 {
        libm::erfc(x).ln()
    } else {
        let y = 1.0 / (2.0 * x * x);
        // terms (-1)^k (2k-1)!! y^k, k = 0..6; at x >= 26 the next term is below 1e-20
        let mut sum = 1.0;
        let mut term = 1.0;
        for k in 1..7 {
            term *= -((2 * k - 1) as f64) * y;
            sum += term;
        }
        -x * x - (x * core::f64::consts::PI.sqrt()).ln() + sum.ln()
    }
}

/// Standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / core::f64::consts::SQRT_2)
}

/// `ln(e^a + e^b)`.
pub fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// `ln(e^a - e^b)` for `a >= b`; `None` if the difference would be negative.
pub fn log_sub(a: f64, b: f64) -> Option<f64> {
    if a < b {
        return None;
    }
    if b == f64::NEG_INFINITY {
        return Some(a);
    }
    if a == b {
        return Some(f64::NEG_INFINITY);
    }
    let d = (a - b).exp_m1();
    if d.is_infinite() {
        Some(a)
    } else {
        Some(d.ln() + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_erfc_is_continuous_across_the_switch_and_right_in_the_tails() {
        // Reference values from mpmath at 30 digits: log(erfc(x)).
        let cases = [
            (-3.0, 0.6931361352504468),
            (0.0, 0.0),
            (1.0, -1.8496055099332482),
            (5.0, -27.200889545537436),
            (25.0, -628.7920391740716),
            (30.0, -903.9741171106439),
            (100.0, -10005.177585122665),
        ];
        for (x, want) in cases {
            let got = ln_erfc(x);
            assert!(
                ((got - want) / want.abs().max(1e-300)).abs() < 1e-12 || (got - want).abs() < 1e-15,
                "x = {x}: {got} vs {want}"
            );
        }
        let below = ln_erfc(26.0 - 1e-9);
        let above = ln_erfc(26.0);
        assert!((below - above).abs() < 1e-6);
    }

    #[test]
    fn log_arithmetic() {
        assert!((log_add(2f64.ln(), 3f64.ln()) - 5f64.ln()).abs() < 1e-15);
        assert!((log_sub(5f64.ln(), 3f64.ln()).unwrap_or(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(log_sub(1.0, 2.0), None);
        assert_eq!(log_add(f64::NEG_INFINITY, 1.0), 1.0);
    }
}
