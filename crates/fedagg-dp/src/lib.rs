//! Differential privacy for fedagg: per-client clipping, Gaussian noise on the sum, and an
//! accountant that reports and enforces (epsilon, delta) for the central `dp` mode; the
//! distributed discrete Gaussian that participants add under SecAgg ([`ddg`], the `secagg_dp`
//! mode); and privacy loss distributions ([`pld`]), a tighter accountant for the sampled Gaussian.
//!
//! **Central choice:** the ledger of record is the Rényi-DP accountant of the Poisson-subsampled
//! Gaussian mechanism ([`rdp`]): per order it is a single number, rounds with different parameters
//! compose by adding curves, and the whole state ([`Ledger`]) is a few hundred floats that the
//! server persists with the federation. Conversion to (epsilon, delta) uses the improved bound of
//! Balle et al. 2020 over orders up to 1024. A federation may instead have its budget enforced by
//! the tighter PLD accountant ([`Accountant::Pld`]): the ledger then also keeps its sampled
//! Gaussian rounds by `(q, sigma)` and composes them by PLD, and reports both epsilons.
//! [`Accountant::calibrate_sigma`] calibrates under either.
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

pub use ledger::{Epsilons, Ledger};
pub use rdp::{calibrate_sigma, epsilon_for, Spent};

/// Which accountant measures the privacy a federation spends, and so enforces its budget. A
/// [`Ledger`] reports both where both apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accountant {
    /// Rényi DP ([`rdp`]): any mechanism with an RDP curve (the sampled Gaussian, the distributed
    /// discrete Gaussian), composed by adding curves.
    #[default]
    Rdp,
    /// Privacy loss distributions ([`pld`]): tighter for the sampled Gaussian (often 20 to 40 %
    /// less epsilon), and only for it.
    Pld,
}

impl Accountant {
    /// Epsilon at `delta` after `steps` rounds of the Gaussian mechanism with noise multiplier
    /// `sigma`, Poisson-subsampled at rate `q`.
    pub fn epsilon(self, q: f64, sigma: f64, steps: u64, delta: f64) -> Result<f64, Error> {
        match self {
            Accountant::Rdp => Ok(rdp::epsilon_for(q, sigma, steps, delta)?.epsilon),
            Accountant::Pld => pld::epsilon_for(q, sigma, steps, delta, pld::DEFAULT_INTERVAL),
        }
    }

    /// The smallest noise multiplier whose epsilon after `steps` rounds at rate `q` is at most
    /// `target_epsilon` at `delta` under this accountant, to within `tolerance` in epsilon (as
    /// [`rdp::calibrate_sigma`]).
    pub fn calibrate_sigma(
        self,
        target_epsilon: f64,
        delta: f64,
        q: f64,
        steps: u64,
        tolerance: f64,
    ) -> Result<f64, Error> {
        match self {
            Accountant::Rdp => rdp::calibrate_sigma(target_epsilon, delta, q, steps, tolerance),
            Accountant::Pld => {
                check_rate(q)?;
                calibrate(target_epsilon, delta, tolerance, |sigma| {
                    pld::epsilon_for(q, sigma, steps, delta, pld::DEFAULT_INTERVAL)
                })
            }
        }
    }
}

/// Bisection for the smallest noise multiplier whose `epsilon(sigma)` (non-increasing) is at most
/// `target_epsilon`, to within `tolerance` in epsilon or 1e-9 relative in sigma. Errors when even
/// sigma = 10^6 does not meet the target.
fn calibrate(
    target_epsilon: f64,
    delta: f64,
    tolerance: f64,
    epsilon: impl Fn(f64) -> Result<f64, Error>,
) -> Result<f64, Error> {
    check_positive("target epsilon", target_epsilon)?;
    check_positive("tolerance", tolerance)?;
    check_delta(delta)?;
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut e_hi = epsilon(hi)?;
    while e_hi > target_epsilon {
        lo = hi;
        hi *= 2.0;
        if hi > 1e6 {
            return Err(Error::BudgetTooSmall {
                target_epsilon,
                delta,
            });
        }
        e_hi = epsilon(hi)?;
    }
    while target_epsilon - e_hi > tolerance && hi - lo > 1e-9 * hi {
        let mid = 0.5 * (lo + hi);
        let e_mid = epsilon(mid)?;
        if e_mid <= target_epsilon {
            (hi, e_hi) = (mid, e_mid);
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

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
    /// An operation this ledger or accountant does not support, and why.
    Unsupported(&'static str),
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
            Error::Unsupported(what) => f.write_str(what),
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
