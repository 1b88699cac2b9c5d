//! The privacy budget of one federation at a fixed delta, refusing rounds that would exceed it.
//! Plain data, so the server can persist and reload it.
//!
//! The ledger always keeps the cumulative RDP curve, and, while every round charged is a sampled
//! Gaussian, their history by `(q, sigma)`, which the PLD accountant composes. Its
//! [`Accountant`] says which epsilon is enforced. A ledger on RDP reports RDP's; one on PLD
//! reports both. The PLD epsilon is computed when a round is charged (up to a second of FFTs for
//! thousands of rounds, so only where it is enforced) and kept, so that reading it costs nothing.

use crate::pld::{self, GaussianRounds};
use crate::rdp::{compute_rdp, default_orders, epsilon, Spent};
use crate::{check_delta, check_positive, Accountant, Error};

/// A history of sampled Gaussian rounds and its PLD epsilon, if computed.
type History = (Vec<GaussianRounds>, Option<f64>);

/// Cumulative RDP curve, sampled Gaussian history, budget and delta. Reload one with
/// [`Ledger::restore`] from the values its accessors return.
#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    budget: f64,
    delta: f64,
    orders: Vec<f64>,
    rdp: Vec<f64>,
    rounds: u64,
    accountant: Accountant,
    /// The sampled Gaussian rounds charged; `None` once a round of another mechanism (an RDP
    /// curve only) was charged, when the PLD no longer applies.
    gaussian: Option<Vec<GaussianRounds>>,
    /// The PLD epsilon of `gaussian`, computed when it last changed.
    pld: Option<f64>,
}

/// The epsilon a ledger has spent, or would after a round: the one its accountant enforces, and
/// each accountant's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epsilons {
    /// The enforced accountant's epsilon.
    pub epsilon: f64,
    /// The RDP accountant's.
    pub rdp: f64,
    /// The PLD accountant's, where it enforces the budget (every round a sampled Gaussian).
    pub pld: Option<f64>,
}

impl Ledger {
    /// A fresh ledger with budget `epsilon` at `delta`, over the default orders, enforced by RDP.
    pub fn new(budget_epsilon: f64, delta: f64) -> Result<Self, Error> {
        Self::with_accountant(budget_epsilon, delta, Accountant::Rdp)
    }

    /// A fresh ledger whose budget `accountant` enforces.
    pub fn with_accountant(
        budget_epsilon: f64,
        delta: f64,
        accountant: Accountant,
    ) -> Result<Self, Error> {
        check_positive("epsilon budget", budget_epsilon)?;
        check_delta(delta)?;
        let orders = default_orders();
        Ok(Ledger {
            budget: budget_epsilon,
            delta,
            rdp: vec![0.0; orders.len()],
            orders,
            rounds: 0,
            accountant,
            gaussian: Some(Vec::new()),
            pld: Some(0.0),
        })
    }

    /// Rebuild a persisted RDP ledger, validating every field; its history of sampled Gaussian
    /// rounds is unknown unless [`Ledger::with_history`] restores it.
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
        let fresh = rounds == 0;
        Ok(Ledger {
            budget: budget_epsilon,
            delta,
            orders,
            rdp,
            rounds,
            accountant: Accountant::Rdp,
            gaussian: fresh.then(Vec::new),
            pld: fresh.then_some(0.0),
        })
    }

    /// A restored ledger with its accountant, and the history of sampled Gaussian rounds and its
    /// PLD epsilon as [`Ledger::gaussian`] and [`Ledger::epsilons`] returned them (`None`: not
    /// all rounds were sampled Gaussians). Refuses a history whose rounds do not add up to the
    /// rounds charged, and a PLD accountant without a history.
    pub fn with_history(
        mut self,
        accountant: Accountant,
        gaussian: Option<Vec<GaussianRounds>>,
        pld: Option<f64>,
    ) -> Result<Self, Error> {
        if let Some(runs) = &gaussian {
            for r in runs {
                crate::check_rate(r.q)?;
                check_positive("sigma", r.sigma)?;
            }
            let total = runs.iter().try_fold(0u64, |a, r| a.checked_add(r.rounds));
            if total != Some(self.rounds) {
                return Err(Error::InvalidParameter {
                    name: "gaussian rounds",
                    value: total.map_or(f64::INFINITY, |t| t as f64),
                    expected: "as many rounds as were charged",
                });
            }
        }
        if let Some(e) = pld.filter(|e| e.is_nan() || *e < 0.0) {
            return Err(Error::InvalidParameter {
                name: "pld epsilon",
                value: e,
                expected: "a non-negative value",
            });
        }
        if accountant == Accountant::Pld && (gaussian.is_none() || pld.is_none()) {
            return Err(Error::Unsupported(
                "the PLD accountant needs the history of sampled Gaussian rounds, and it is unknown",
            ));
        }
        self.accountant = accountant;
        self.pld = gaussian.as_ref().and(pld);
        self.gaussian = gaussian;
        Ok(self)
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
    /// The accountant that enforces the budget.
    pub fn accountant(&self) -> Accountant {
        self.accountant
    }
    /// The sampled Gaussian rounds charged, by parameters; `None` once another mechanism was.
    pub fn gaussian(&self) -> Option<&[GaussianRounds]> {
        self.gaussian.as_deref()
    }

    /// RDP epsilon spent so far (with the order that attains it).
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

    /// Epsilon spent so far, under both accountants.
    pub fn epsilons(&self) -> Result<Epsilons, Error> {
        Ok(self.report(self.spent()?.epsilon, self.pld))
    }

    fn report(&self, rdp: f64, pld: Option<f64>) -> Epsilons {
        let epsilon = match (self.accountant, pld) {
            (Accountant::Pld, Some(p)) => p,
            // A PLD ledger always has its history (`with_history`, `charge_curve` refuse else).
            _ => rdp,
        };
        Epsilons { epsilon, rdp, pld }
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

    /// The Gaussian history after `steps` more rounds at `(q, sigma)`, and its PLD epsilon when
    /// the PLD enforces the budget (an error past [`pld::MAX_POINTS`]).
    fn gaussian_after(&self, q: f64, sigma: f64, steps: u64) -> Result<Option<History>, Error> {
        let Some(runs) = &self.gaussian else {
            return Ok(None);
        };
        let mut runs = runs.clone();
        match runs.iter_mut().find(|r| r.q == q && r.sigma == sigma) {
            Some(r) => r.rounds = r.rounds.saturating_add(steps),
            None => runs.push(GaussianRounds {
                q,
                sigma,
                rounds: steps,
            }),
        }
        let eps = match self.accountant {
            Accountant::Pld => Some(pld::epsilon_of(&runs, self.delta, pld::DEFAULT_INTERVAL)?),
            Accountant::Rdp => None,
        };
        Ok(Some((runs, eps)))
    }

    /// Epsilon after `steps` more rounds at `(q, sigma)`, without charging. The PLD epsilon is
    /// computed only when the PLD accountant enforces the budget (it is the costlier one).
    pub fn preview(&self, q: f64, sigma: f64, steps: u64) -> Result<Epsilons, Error> {
        let rdp = self.after(&compute_rdp(q, sigma, steps, &self.orders)?)?.1;
        let pld = match self.accountant {
            Accountant::Pld => self.gaussian_after(q, sigma, steps)?.and_then(|(_, e)| e),
            Accountant::Rdp => None,
        };
        Ok(self.report(rdp.epsilon, pld))
    }

    /// Epsilon after one more round whose RDP at [`orders`](Self::orders) is `add` (any
    /// mechanism, such as [`crate::ddg`]'s), without charging.
    pub fn preview_curve(&self, add: &[f64]) -> Result<Epsilons, Error> {
        self.check_curve()?;
        let rdp = self.after(add)?.1;
        Ok(self.report(rdp.epsilon, None))
    }

    /// Charge one round at `(q, sigma)` if the result stays within the budget (under the
    /// enforcing accountant); otherwise refuse and leave the ledger unchanged. Both epsilons are
    /// computed.
    pub fn charge(&mut self, q: f64, sigma: f64) -> Result<Epsilons, Error> {
        self.charge_steps(q, sigma, 1)
    }

    /// Charge `steps` runs at `(q, sigma)` at once (DP-SGD's steps of one local training), as
    /// [`Ledger::charge`]: all of them, or none if the result would pass the budget. They count
    /// as `steps` [`rounds`](Self::rounds).
    pub fn charge_steps(&mut self, q: f64, sigma: f64, steps: u64) -> Result<Epsilons, Error> {
        let add = compute_rdp(q, sigma, steps, &self.orders)?;
        let (total, rdp) = self.after(&add)?;
        let gaussian = self.gaussian_after(q, sigma, steps)?;
        let after = self.report(rdp.epsilon, gaussian.as_ref().and_then(|g| g.1));
        self.check_budget(after.epsilon)?;
        self.rdp = total;
        self.rounds = self.rounds.saturating_add(steps);
        self.pld = after.pld;
        self.gaussian = gaussian.map(|g| g.0);
        Ok(after)
    }

    /// Charge one round whose RDP at [`orders`](Self::orders) is `add`, if the result stays
    /// within the budget; otherwise refuse and leave the ledger unchanged. The PLD no longer
    /// applies after it, so a ledger the PLD accountant enforces refuses it.
    pub fn charge_curve(&mut self, add: &[f64]) -> Result<Epsilons, Error> {
        self.check_curve()?;
        let (total, spent) = self.after(add)?;
        self.check_budget(spent.epsilon)?;
        self.rdp = total;
        self.rounds = self.rounds.saturating_add(1);
        self.gaussian = None;
        self.pld = None;
        Ok(self.report(spent.epsilon, None))
    }

    fn check_curve(&self) -> Result<(), Error> {
        if self.accountant == Accountant::Pld {
            return Err(Error::Unsupported(
                "the PLD accountant takes only sampled Gaussian rounds; account this mechanism \
                 with RDP",
            ));
        }
        Ok(())
    }

    fn check_budget(&self, after: f64) -> Result<(), Error> {
        if after > self.budget {
            return Err(Error::BudgetExceeded {
                spent: self.epsilons()?.epsilon,
                after,
                budget: self.budget,
                delta: self.delta,
            });
        }
        Ok(())
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
        .unwrap()
        .with_history(
            l.accountant(),
            l.gaussian().map(<[_]>::to_vec),
            l.epsilons().unwrap().pld,
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
        let (x, y) = (a.charge(0.1, 1.3).unwrap(), b.charge_curve(&curve).unwrap());
        assert_eq!((x.epsilon, x.rdp), (y.epsilon, y.rdp));
        assert_eq!(a.rdp(), b.rdp());
        assert_eq!(
            a.preview(0.1, 1.3, 1).unwrap(),
            b.preview_curve(&curve).unwrap()
        );
    }

    #[test]
    fn a_pld_ledger_enforces_the_pld_epsilon_and_reports_both() {
        let (q, sigma, delta) = (0.1, 1.0, 1e-5);
        let mut rdp = Ledger::new(3.0, delta).unwrap();
        let mut pld = Ledger::with_accountant(3.0, delta, Accountant::Pld).unwrap();
        let (mut by_rdp, mut by_pld) = (0u64, 0u64);
        while rdp.charge(q, sigma).is_ok() {
            by_rdp += 1;
        }
        let err = loop {
            match pld.charge(q, sigma) {
                Ok(e) => {
                    by_pld += 1;
                    assert_eq!(e.epsilon, e.pld.unwrap());
                    assert!(e.pld.unwrap() < e.rdp, "{e:?}");
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::BudgetExceeded { .. }), "{err}");
        // The tighter accountant affords more rounds of the same mechanism.
        assert!(by_pld > by_rdp, "{by_pld} rounds by PLD, {by_rdp} by RDP");
        let spent = pld.epsilons().unwrap();
        let direct = pld::epsilon_for(q, sigma, by_pld, delta, pld::DEFAULT_INTERVAL).unwrap();
        assert_eq!(spent.pld, Some(direct));
        assert!(spent.epsilon <= 3.0 && spent.rdp > 3.0, "{spent:?}");
        // The RDP ledger keeps the history, but spends no FFTs on a PLD it does not enforce.
        let r = rdp.epsilons().unwrap();
        assert_eq!((r.epsilon, r.pld), (r.rdp, None));
        assert_eq!(rdp.gaussian().unwrap()[0].rounds, by_rdp);
        assert_eq!(
            pld.gaussian().unwrap(),
            &[GaussianRounds {
                q,
                sigma,
                rounds: by_pld
            }]
        );
        // A preview under PLD computes the PLD epsilon; under RDP it need not.
        assert!(pld.preview(q, sigma, 1).unwrap().epsilon > 3.0);
        assert_eq!(rdp.preview(q, sigma, 1).unwrap().pld, None);
    }

    #[test]
    fn rounds_with_other_parameters_compose_and_persist() {
        let mut l = Ledger::with_accountant(100.0, 1e-5, Accountant::Pld).unwrap();
        l.charge(0.1, 1.0).unwrap();
        l.charge(0.01, 2.0).unwrap();
        l.charge(0.1, 1.0).unwrap();
        let runs = l.gaussian().unwrap().to_vec();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].rounds, 2);
        let want = pld::epsilon_of(&runs, 1e-5, pld::DEFAULT_INTERVAL).unwrap();
        assert_eq!(l.epsilons().unwrap().pld, Some(want));
        // Composition of the two runs lies between each alone and their sum.
        let one = pld::epsilon_for(0.1, 1.0, 2, 1e-5, pld::DEFAULT_INTERVAL).unwrap();
        assert!(want > one, "{want} vs {one}");
        let copy = Ledger::restore(
            l.budget(),
            l.delta(),
            l.orders().to_vec(),
            l.rdp().to_vec(),
            l.rounds(),
        )
        .unwrap()
        .with_history(Accountant::Pld, Some(runs.clone()), Some(want))
        .unwrap();
        assert_eq!(copy, l);
        // A history that does not add up, or a PLD ledger without one, is refused.
        let restore = || {
            Ledger::restore(
                l.budget(),
                l.delta(),
                l.orders().to_vec(),
                l.rdp().to_vec(),
                l.rounds(),
            )
            .unwrap()
        };
        assert!(restore()
            .with_history(Accountant::Pld, Some(runs[..1].to_vec()), Some(want))
            .is_err());
        assert!(restore().with_history(Accountant::Pld, None, None).is_err());
        assert!(restore()
            .with_history(Accountant::Rdp, Some(runs), Some(-1.0))
            .is_err());
        // A ledger stored without its history reports only RDP.
        assert_eq!(restore().epsilons().unwrap().pld, None);
    }

    #[test]
    fn another_mechanism_ends_the_pld_and_a_pld_ledger_refuses_it() {
        let mut l = Ledger::new(100.0, 1e-5).unwrap();
        l.charge(0.1, 1.0).unwrap();
        assert!(l.gaussian().is_some());
        let curve = compute_rdp(0.1, 1.0, 1, l.orders()).unwrap();
        let e = l.charge_curve(&curve).unwrap();
        assert_eq!(e.pld, None);
        assert_eq!(l.gaussian(), None);
        assert_eq!(l.epsilons().unwrap().pld, None);
        let mut p = Ledger::with_accountant(100.0, 1e-5, Accountant::Pld).unwrap();
        let err = p.charge_curve(&curve).unwrap_err();
        assert!(err.to_string().contains("only sampled Gaussian"), "{err}");
        assert!(p.preview_curve(&curve).is_err());
        assert_eq!(p.rounds(), 0);
    }

    #[test]
    fn a_pld_past_its_grid_is_refused_under_pld_and_unreported_under_rdp() {
        // sigma = 0.01 without sampling: losses span about +-6000, 1.2e8 grid points.
        let mut r = Ledger::new(1e9, 1e-5).unwrap();
        let e = r.charge(1.0, 0.01).unwrap();
        assert_eq!(e.pld, None);
        assert_eq!(r.rounds(), 1);
        let mut p = Ledger::with_accountant(1e9, 1e-5, Accountant::Pld).unwrap();
        let err = p.charge(1.0, 0.01).unwrap_err();
        assert!(err.to_string().contains("pld grid points"), "{err}");
        assert!(p.preview(1.0, 0.01, 1).is_err());
        assert_eq!(p.rounds(), 0);
    }
}
