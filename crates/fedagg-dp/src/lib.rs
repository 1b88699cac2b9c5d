//! Differential privacy for fedagg: per-client clipping, Gaussian noise on the sum, and an
//! accountant that reports and enforces (epsilon, delta) for the central `dp` mode; the
//! distributed discrete Gaussian that participants add under SecAgg ([`ddg`], the `secagg_dp`
//! mode); and privacy loss distributions ([`pld`]), a tighter accountant for the sampled Gaussian.
//!
//! **Central choice:** the ledger of record is the Rényi-DP accountant of the Poisson-subsampled
//! Gaussian mechanism ([`rdp`]): per order it is a single number, rounds with different parameters
//! compose by adding curves, and the whole state ([`Ledger`]) is a few hundred floats that the
//! server persists with the federation. Conversion to (epsilon, delta) uses the improved bound of
//! Balle et al. 2020 over orders up to 1024.
//!
//! The mechanism, per round: each client's update is clipped to L2 norm `C` ([`clip`]); the
//! server sums the clipped updates and adds `N(0, (sigma C)^2)` to every coordinate ([`noise`]),
//! drawing from a caller-supplied CSPRNG; the ledger is charged `(q, sigma)` before the round
//! opens and refuses rounds that would exceed the budget. [`adaptive`] lets `C` track a quantile
//! of the update norms (Andrew et al. 2021), with the quantile estimate's privacy cost folded into
//! the effective noise multiplier.
//!
//! Amplification by sampling assumes Poisson sampling of clients at rate `q`. A server that picks
//! exactly `m` clients should account with `q = 1` (no amplification).
//!
//! ```
//! use fedagg_dp::{calibrate_sigma, clip::clip_l2, noise::add_gaussian, Ledger};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::{OsRng, SeedableRng};
//!
//! // Noise for (2, 1e-5)-DP over 100 rounds sampling 5 % of clients, within 0.01 in epsilon.
//! let sigma = calibrate_sigma(2.0, 1e-5, 0.05, 100, 0.01)?;
//! let mut ledger = Ledger::new(2.0, 1e-5)?;
//!
//! // One round: clip two updates to C = 1, sum, noise, charge.
//! let clip = 1.0;
//! let mut a = vec![3.0f32, 4.0];
//! let mut b = vec![0.1f32, -0.2];
//! assert_eq!(clip_l2(&mut a, clip)?, 5.0);
//! clip_l2(&mut b, clip)?;
//! let mut sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| f64::from(x + y)).collect();
//! let mut rng = ChaCha20Rng::from_rng(OsRng).unwrap();
//! add_gaussian(&mut sum, sigma * clip, &mut rng)?;
//! let spent = ledger.charge(0.05, sigma)?;
//! assert!(spent.epsilon < 2.0);
//! # Ok::<(), fedagg_dp::Error>(())
//! ```
//!
//! The crate does no IO, reads no clock and draws no ambient randomness.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod adaptive;
pub mod clip;
pub mod ddg;
pub mod ledger;
pub mod noise;
pub mod pld;
pub mod rdp;
pub mod special;

use core::fmt;

pub use ledger::Ledger;
pub use rdp::{calibrate_sigma, epsilon_for, Spent};

/// Errors of this crate; messages are lowercase and name the offending value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A parameter outside its domain (sigma <= 0, C <= 0, q outside (0, 1], delta outside
    /// (0, 1), non-finite values, ...).
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What was expected.
        expected: &'static str,
    },
    /// The round would take the federation past its budget.
    BudgetExceeded {
        /// Epsilon spent so far.
        spent: f64,
        /// Epsilon after the round.
        after: f64,
        /// The budget.
        budget: f64,
        /// The fixed delta.
        delta: f64,
    },
    /// No noise multiplier up to 10^6 meets the target.
    BudgetTooSmall {
        /// The target epsilon.
        target_epsilon: f64,
        /// The delta.
        delta: f64,
    },
    /// A vector does not match the layout it is used with.
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// An input value is NaN or infinite.
    NonFinite {
        /// Its index.
        index: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidParameter {
                name,
                value,
                expected,
            } => write!(f, "{name} = {value} is invalid: expected {expected}"),
            Error::BudgetExceeded {
                spent,
                after,
                budget,
                delta,
            } => write!(
                f,
                "privacy budget exceeded: epsilon would go from {spent:.4} to {after:.4}, above the \
                 budget {budget} at delta {delta:e}"
            ),
            Error::BudgetTooSmall {
                target_epsilon,
                delta,
            } => write!(
                f,
                "no noise multiplier up to 1e6 reaches epsilon {target_epsilon} at delta {delta:e}"
            ),
            Error::LengthMismatch { expected, actual } => {
                write!(f, "vector has length {actual}, expected {expected}")
            }
            Error::NonFinite { index } => write!(f, "value at index {index} is not finite"),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn check_positive(name: &'static str, v: f64) -> Result<(), Error> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value: v,
            expected: "a positive finite number",
        })
    }
}

pub(crate) fn check_rate(q: f64) -> Result<(), Error> {
    if q.is_finite() && q > 0.0 && q <= 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "sampling rate q",
            value: q,
            expected: "a rate in (0, 1]",
        })
    }
}

pub(crate) fn check_delta(delta: f64) -> Result<(), Error> {
    if delta.is_finite() && delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "delta",
            value: delta,
            expected: "a probability in (0, 1)",
        })
    }
}
