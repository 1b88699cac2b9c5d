//! The privacy budget of one federation: cumulative RDP at a fixed delta, refusing rounds that
//! would exceed the budget. Plain data, so the server can persist and reload it.

use crate::rdp::{compute_rdp, default_orders, epsilon, Spent};
use crate::{check_delta, check_positive, Error};

/// Cumulative RDP curve, budget and delta. Reload one with [`Ledger::restore`] from the values
/// its accessors return.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    budget: f64,
    delta: f64,
    orders: Vec<f64>,
    rdp: Vec<f64>,
    rounds: u64,
}

impl Ledger {
    /// A fresh ledger with budget `epsilon` at `delta`, over the default orders.
    pub fn new(budget_epsilon: f64, delta: f64) -> Result<Self, Error> {
        check_positive("epsilon budget", budget_epsilon)?;
        check_delta(delta)?;
        let orders = default_orders();
        Ok(Ledger {
            budget: budget_epsilon,
            delta,
            rdp: vec![0.0; orders.len()],
            orders,
            rounds: 0,
        })
    }

    /// Rebuild a persisted ledger, validating every field.
    pub fn restore(
        budget_epsilon: f64,
        delta: f64,
        orders: Vec<f64>,
        rdp: Vec<f64>,
        rounds: u64,
    ) -> Result<Self, Error> {
        check_positive("epsilon budget", budget_epsilon)?;
        check_delta(delta)?;
        if orders.len() != rdp.len() || orders.is_empty() {
            return Err(Error::LengthMismatch {
                expected: orders.len(),
                actual: rdp.len(),
            });
        }
        if let Some(&a) = orders.iter().find(|a| !(a.is_finite() && **a > 1.0)) {
            return Err(Error::InvalidParameter {
                name: "order",
                value: a,
                expected: "a finite order above 1",
            });
        }
        if let Some(&r) = rdp.iter().find(|r| r.is_nan() || **r < 0.0) {
            return Err(Error::InvalidParameter {
                name: "rdp",
                value: r,
                expected: "a non-negative value (or infinity)",
            });
        }
        Ok(Ledger {
            budget: budget_epsilon,
            delta,
            orders,
            rdp,
            rounds,
        })
    }

    /// The budget.
    pub fn budget(&self) -> f64 {
        self.budget
    }
    /// The fixed delta.
    pub fn delta(&self) -> f64 {
        self.delta
    }
    /// The orders of the curve.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }
    /// The cumulative RDP curve.
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }
    /// Rounds charged so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Epsilon spent so far.
    pub fn spent(&self) -> Result<Spent, Error> {
        if self.rounds == 0 {
            return Ok(Spent {
                epsilon: 0.0,
                order: f64::NAN,
                at_grid_edge: false,
            });
        }
        epsilon(&self.orders, &self.rdp, self.delta)
    }

    fn after(&self, add: &[f64]) -> Result<(Vec<f64>, Spent), Error> {
        if add.len() != self.orders.len() {
            return Err(Error::LengthMismatch {
                expected: self.orders.len(),
                actual: add.len(),
            });
        }
        if let Some(&r) = add.iter().find(|r| r.is_nan() || **r < 0.0) {
            return Err(Error::InvalidParameter {
                name: "rdp",
                value: r,
                expected: "a non-negative value (or infinity)",
            });
        }
        let total: Vec<f64> = self.rdp.iter().zip(add).map(|(a, b)| a + b).collect();
        let spent = epsilon(&self.orders, &total, self.delta)?;
        Ok((total, spent))
    }

    /// Epsilon after `steps` more rounds at `(q, sigma)`, without charging.
    pub fn preview(&self, q: f64, sigma: f64, steps: u64) -> Result<Spent, Error> {
        Ok(self.after(&compute_rdp(q, sigma, steps, &self.orders)?)?.1)
    }

    /// Epsilon after one more round whose RDP at [`orders`](Self::orders) is `add` (any
    /// mechanism, such as [`crate::ddg`]'s), without charging.
    pub fn preview_curve(&self, add: &[f64]) -> Result<Spent, Error> {
        Ok(self.after(add)?.1)
    }

    /// Charge one round at `(q, sigma)` if the result stays within the budget; otherwise refuse
    /// and leave the ledger unchanged.
    pub fn charge(&mut self, q: f64, sigma: f64) -> Result<Spent, Error> {
        let add = compute_rdp(q, sigma, 1, &self.orders)?;
        self.charge_curve(&add)
    }

    /// Charge one round whose RDP at [`orders`](Self::orders) is `add`, if the result stays
    /// within the budget; otherwise refuse and leave the ledger unchanged.
    pub fn charge_curve(&mut self, add: &[f64]) -> Result<Spent, Error> {
        let (total, spent) = self.after(add)?;
        if spent.epsilon > self.budget {
            return Err(Error::BudgetExceeded {
                spent: self.spent()?.epsilon,
                after: spent.epsilon,
                budget: self.budget,
                delta: self.delta,
            });
        }
        self.rdp = total;
        self.rounds += 1;
        Ok(spent)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rdp::epsilon_for;

    #[test]
    fn charges_compose_and_refuse_past_the_budget() {
        let mut l = Ledger::new(2.0, 1e-5).unwrap();
        assert_eq!(l.spent().unwrap().epsilon, 0.0);
        let mut charged = 0;
        let err = loop {
            match l.charge(0.05, 1.1) {
                Ok(s) => {
                    charged += 1;
                    assert!(s.epsilon <= 2.0);
                }
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, Error::BudgetExceeded { budget, .. } if budget == 2.0),
            "{err}"
        );
        assert!(err.to_string().contains("budget 2"));
        assert_eq!(l.rounds(), charged);
        // Composition by addition equals the closed form for `charged` steps.
        let direct = epsilon_for(0.05, 1.1, charged, 1e-5).unwrap().epsilon;
        assert!((l.spent().unwrap().epsilon - direct).abs() < 1e-9 * direct);
        // Refusal left it unchanged; a persisted copy reloads to the same state.
        let copy = Ledger::restore(
            l.budget(),
            l.delta(),
            l.orders().to_vec(),
            l.rdp().to_vec(),
            l.rounds(),
        )
        .unwrap();
        assert_eq!(copy, l);
        assert!(l.preview(0.05, 1.1, 1).unwrap().epsilon > 2.0);
    }

    #[test]
    fn invalid_inputs_are_refused() {
        assert!(Ledger::new(0.0, 1e-5).is_err());
        assert!(Ledger::new(1.0, 0.0).is_err());
        assert!(Ledger::new(1.0, 1.0).is_err());
        assert!(Ledger::new(f64::INFINITY, 1e-5).is_err());
        let mut l = Ledger::new(1.0, 1e-5).unwrap();
        assert!(l.charge(0.0, 1.0).is_err());
        assert!(l.charge(1.5, 1.0).is_err());
        assert!(l.charge(0.5, 0.0).is_err());
        assert!(l.charge(0.5, f64::NAN).is_err());
        assert!(Ledger::restore(1.0, 1e-5, vec![2.0], vec![], 0).is_err());
        assert!(Ledger::restore(1.0, 1e-5, vec![2.0], vec![-1.0], 0).is_err());
        assert!(Ledger::restore(1.0, 1e-5, vec![0.5], vec![0.0], 0).is_err());
        assert!(l.charge_curve(&[0.0]).is_err(), "one value per order");
        let mut bad = vec![0.0; l.orders().len()];
        bad[3] = f64::NAN;
        assert!(l.charge_curve(&bad).is_err());
        assert_eq!(l.rounds(), 0);
    }

    #[test]
    fn a_curve_charges_like_the_mechanism_it_comes_from() {
        let mut a = Ledger::new(10.0, 1e-5).unwrap();
        let mut b = a.clone();
        let curve = compute_rdp(0.1, 1.3, 1, a.orders()).unwrap();
        assert_eq!(a.charge(0.1, 1.3).unwrap(), b.charge_curve(&curve).unwrap());
        assert_eq!(a, b);
        assert_eq!(
            a.preview(0.1, 1.3, 1).unwrap(),
            b.preview_curve(&curve).unwrap()
        );
    }
}
