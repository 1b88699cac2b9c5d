//! Server optimizers: what the server does with a round's aggregated update (the weighted mean
//! of the participants' deltas, a pseudo-gradient with the sign of a step). FedAvg with a server
//! learning rate, FedAvgM (server momentum), and FedAdam and FedYogi (Reddi et al., "Adaptive
//! Federated Optimization", ICLR 2021).
//!
//! One implementation serves both the aggregation service (`fedagg-round` applies it when a
//! round completes, and the server keeps the state durably beside the model) and the
//! in-process simulation (`fedagg-train`), so that the two take bit-identical server steps on
//! the same inputs. The state is kept in `f64`; [`ServerState::to_bytes`] and
//! [`ServerState::from_bytes`] are its stored form. SCAFFOLD's server control step,
//! [`scaffold_step`], is shared the same way.
//!
//! ```
//! use fedagg_optim::{ServerOptimizer, ServerState};
//! let opt = ServerOptimizer::FedAvgM { lr: 1.0, momentum: 0.5 };
//! let mut state = ServerState::new(opt, 1);
//! let mut w = vec![0.0f32];
//! state.apply(&mut w, &[1.0]);
//! state.apply(&mut w, &[1.0]);
//! assert_eq!(w, vec![2.5]); // 1, then 1 + 0.5
//! ```

/// A server optimizer and its hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServerOptimizer {
    /// `w += lr * delta`.
    FedAvg {
        /// Server learning rate (1 is plain FedAvg).
        lr: f64,
    },
    /// Server momentum: `m = momentum * m + delta; w += lr * m`.
    FedAvgM {
        /// Server learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
    },
    /// `m = b1 m + (1 - b1) delta; v = b2 v + (1 - b2) delta^2; w += lr m / (sqrt(v) + tau)`,
    /// with `v` starting at `tau^2` as in the paper.
    FedAdam {
        /// Server learning rate.
        lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Adaptivity (the paper's tau).
        tau: f64,
    },
    /// As FedAdam, with Yogi's second moment:
    /// `v = v - (1 - b2) delta^2 sign(v - delta^2)`.
    FedYogi {
        /// Server learning rate.
        lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Adaptivity (the paper's tau).
        tau: f64,
    },
}

impl std::str::FromStr for ServerOptimizer {
    type Err = String;

    /// A name with the defaults of Reddi et al.'s experiments: `fedavg` (lr 1), `fedavgm` (lr
    /// 1, momentum 0.9), `fedadam` and `fedyogi` (lr 0.01, betas 0.9 and 0.99, tau 1e-3); or
    /// `NAME:LR`, with another server learning rate.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((name, lr)) = s.split_once(':') {
            let lr: f64 = lr
                .parse()
                .map_err(|e| format!("server learning rate {lr:?}: {e}"))?;
            return Ok(name.parse::<ServerOptimizer>()?.with_lr(lr));
        }
        match s {
            "fedavg" => Ok(ServerOptimizer::FedAvg { lr: 1.0 }),
            "fedavgm" => Ok(ServerOptimizer::FedAvgM {
                lr: 1.0,
                momentum: 0.9,
            }),
            "fedadam" => Ok(ServerOptimizer::FedAdam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3,
            }),
            "fedyogi" => Ok(ServerOptimizer::FedYogi {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3,
            }),
            _ => Err(format!(
                "unknown server optimizer {s:?} (fedavg, fedavgm, fedadam, fedyogi)"
            )),
        }
    }
}

impl ServerOptimizer {
    /// The same optimizer with server learning rate `lr`.
    pub fn with_lr(self, lr: f64) -> ServerOptimizer {
        match self {
            ServerOptimizer::FedAvg { .. } => ServerOptimizer::FedAvg { lr },
            ServerOptimizer::FedAvgM { momentum, .. } => ServerOptimizer::FedAvgM { lr, momentum },
            ServerOptimizer::FedAdam {
                beta1, beta2, tau, ..
            } => ServerOptimizer::FedAdam {
                lr,
                beta1,
                beta2,
                tau,
            },
            ServerOptimizer::FedYogi {
                beta1, beta2, tau, ..
            } => ServerOptimizer::FedYogi {
                lr,
                beta1,
                beta2,
                tau,
            },
        }
    }

    /// Its name, as [`std::str::FromStr`] reads it.
    pub fn name(&self) -> &'static str {
        match self {
            ServerOptimizer::FedAvg { .. } => "fedavg",
            ServerOptimizer::FedAvgM { .. } => "fedavgm",
            ServerOptimizer::FedAdam { .. } => "fedadam",
            ServerOptimizer::FedYogi { .. } => "fedyogi",
        }
    }

    /// Refuse hyperparameters outside their ranges: a positive learning rate, momentum and
    /// betas in `[0, 1)`, a positive tau, all finite.
    pub fn check(&self) -> Result<(), String> {
        let unit = |name: &str, x: f64| {
            if (0.0..1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("{name} must lie in [0, 1), not {x}"))
            }
        };
        let lr = match *self {
            ServerOptimizer::FedAvg { lr } => lr,
            ServerOptimizer::FedAvgM { lr, momentum } => {
                unit("momentum", momentum)?;
                lr
            }
            ServerOptimizer::FedAdam {
                lr,
                beta1,
                beta2,
                tau,
            }
            | ServerOptimizer::FedYogi {
                lr,
                beta1,
                beta2,
                tau,
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                if !(tau > 0.0 && tau <= 1e6) {
                    return Err(format!("tau must lie in (0, 1e6], not {tau}"));
                }
                lr
            }
        };
        if lr > 0.0 && lr <= 1e6 {
            Ok(())
        } else {
            Err(format!(
                "the server learning rate must lie in (0, 1e6], not {lr}"
            ))
        }
    }

    /// How many state vectors it keeps: none, the momentum, or both moments.
    pub fn moments(&self) -> usize {
        match self {
            ServerOptimizer::FedAvg { .. } => 0,
            ServerOptimizer::FedAvgM { .. } => 1,
            ServerOptimizer::FedAdam { .. } | ServerOptimizer::FedYogi { .. } => 2,
        }
    }
}

/// A server optimizer with its state for a model of fixed length.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerState {
    opt: ServerOptimizer,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl ServerState {
    /// Fresh state for a model of `len` parameters.
    pub fn new(opt: ServerOptimizer, len: usize) -> Self {
        let (m, v) = match opt {
            ServerOptimizer::FedAvg { .. } => (Vec::new(), Vec::new()),
            ServerOptimizer::FedAvgM { .. } => (vec![0.0; len], Vec::new()),
            ServerOptimizer::FedAdam { tau, .. } | ServerOptimizer::FedYogi { tau, .. } => {
                (vec![0.0; len], vec![tau * tau; len])
            }
        };
        ServerState { opt, m, v }
    }

    /// The optimizer.
    pub fn optimizer(&self) -> ServerOptimizer {
        self.opt
    }

    /// Apply the aggregated update `delta` to `model` (of the length the state was made for).
    pub fn apply(&mut self, model: &mut [f32], delta: &[f32]) {
        match self.opt {
            ServerOptimizer::FedAvg { lr } => {
                for (w, &d) in model.iter_mut().zip(delta) {
                    *w += (lr * f64::from(d)) as f32;
                }
            }
            ServerOptimizer::FedAvgM { lr, momentum } => {
                for ((w, m), &d) in model.iter_mut().zip(&mut self.m).zip(delta) {
                    *m = momentum * *m + f64::from(d);
                    *w += (lr * *m) as f32;
                }
            }
            ServerOptimizer::FedAdam {
                lr,
                beta1,
                beta2,
                tau,
            } => self.adaptive(model, delta, lr, beta1, tau, |v, d2| {
                beta2 * v + (1.0 - beta2) * d2
            }),
            ServerOptimizer::FedYogi {
                lr,
                beta1,
                beta2,
                tau,
            } => self.adaptive(model, delta, lr, beta1, tau, |v, d2| {
                v - (1.0 - beta2) * d2 * (v - d2).signum()
            }),
        }
    }

    /// FedAdam and FedYogi: the same first moment and step, their own second moment.
    fn adaptive(
        &mut self,
        model: &mut [f32],
        delta: &[f32],
        lr: f64,
        beta1: f64,
        tau: f64,
        second: impl Fn(f64, f64) -> f64,
    ) {
        for (((w, m), v), &d) in model
            .iter_mut()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(delta)
        {
            let d = f64::from(d);
            *m = beta1 * *m + (1.0 - beta1) * d;
            *v = second(*v, d * d);
            *w += (lr * *m / (v.sqrt() + tau)) as f32;
        }
    }

    /// The state as bytes: the moments, each value `f64` little-endian (empty for FedAvg).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.m
            .iter()
            .chain(&self.v)
            .flat_map(|x| x.to_le_bytes())
            .collect()
    }

    /// The state of `opt` for a model of `len` parameters from [`ServerState::to_bytes`]'s
    /// bytes; fresh when `bytes` is `None`. Bytes of another length, or a non-finite value, are
    /// an error.
    pub fn from_bytes(
        opt: ServerOptimizer,
        len: usize,
        bytes: Option<&[u8]>,
    ) -> Result<Self, String> {
        let mut s = ServerState::new(opt, len);
        let Some(bytes) = bytes else {
            return Ok(s);
        };
        let want = opt.moments() * len * 8;
        if bytes.len() != want {
            return Err(format!(
                "a stored {} state of {} bytes, for {len} parameters it has {want}",
                opt.name(),
                bytes.len()
            ));
        }
        let mut values = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        for x in s.m.iter_mut().chain(s.v.iter_mut()) {
            *x = values.next().unwrap_or(f64::NAN);
            if !x.is_finite() {
                return Err(format!("a stored {} state holds {x}", opt.name()));
            }
        }
        Ok(s)
    }
}

/// SCAFFOLD's server control variate step (Karimireddy et al. 2020, Algorithm 1):
/// `c += (1/N) * sum_{i in S} delta c_i`, with `control_sum` the sum over the round's
/// contributions and `population` the federation's `N` participants, who all count (one that
/// has not taken part yet holds `c_i = 0`), so that `c` stays the mean of the `c_i`.
pub fn scaffold_step(c: &mut [f32], control_sum: &[f64], population: usize) {
    let scale = 1.0 / population.max(1) as f64;
    for (cj, &s) in c.iter_mut().zip(control_sum) {
        *cj += (s * scale) as f32;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn adam(lr: f64) -> ServerOptimizer {
        ServerOptimizer::FedAdam {
            lr,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        }
    }

    #[test]
    fn fedavg_with_lr_one_adds_the_delta_and_momentum_accumulates() {
        let mut w = vec![1.0f32, 2.0];
        ServerState::new(ServerOptimizer::FedAvg { lr: 1.0 }, 2).apply(&mut w, &[0.5, -1.0]);
        assert_eq!(w, vec![1.5, 1.0]);
        let opt = ServerOptimizer::FedAvgM {
            lr: 1.0,
            momentum: 0.5,
        };
        let mut s = ServerState::new(opt, 1);
        let mut w = vec![0.0f32];
        s.apply(&mut w, &[1.0]);
        s.apply(&mut w, &[1.0]);
        assert_eq!(w, vec![2.5]); // 1 + (0.5 + 1)
    }

    #[test]
    fn fedadam_and_fedyogi_match_the_papers_updates_computed_directly() {
        // Two steps on one coordinate, written out from Reddi et al.'s Algorithm 2.
        let (lr, b1, b2, tau) = (0.1, 0.9, 0.99, 1e-3);
        let (d1, d2) = (2.0f64, -0.5f64);
        let m1 = (1.0 - b1) * d1;
        let m2 = b1 * m1 + (1.0 - b1) * d2;
        let v0 = tau * tau;
        let adam_v1 = b2 * v0 + (1.0 - b2) * d1 * d1;
        let adam_v2 = b2 * adam_v1 + (1.0 - b2) * d2 * d2;
        let yogi_v1 = v0 - (1.0 - b2) * d1 * d1 * (v0 - d1 * d1).signum();
        let yogi_v2 = yogi_v1 - (1.0 - b2) * d2 * d2 * (yogi_v1 - d2 * d2).signum();
        for (opt, v1, v2) in [
            (adam(lr), adam_v1, adam_v2),
            (
                ServerOptimizer::FedYogi {
                    lr,
                    beta1: b1,
                    beta2: b2,
                    tau,
                },
                yogi_v1,
                yogi_v2,
            ),
        ] {
            let mut s = ServerState::new(opt, 1);
            let mut w = vec![0.0f32];
            s.apply(&mut w, &[d1 as f32]);
            let w1 = (lr * m1 / (v1.sqrt() + tau)) as f32;
            assert_eq!(w, vec![w1], "{opt:?}");
            s.apply(&mut w, &[d2 as f32]);
            let w2 = w1 + (lr * m2 / (v2.sqrt() + tau)) as f32;
            assert_eq!(w, vec![w2], "{opt:?}");
        }
    }

    #[test]
    fn out_of_range_hyperparameters_are_refused() {
        assert!(adam(0.01).check().is_ok());
        assert!(adam(0.0).check().is_err());
        assert!(adam(f64::NAN).check().is_err());
        let bad_beta = ServerOptimizer::FedYogi {
            lr: 0.01,
            beta1: 1.0,
            beta2: 0.99,
            tau: 1e-3,
        };
        assert!(bad_beta.check().is_err());
        let bad_momentum = ServerOptimizer::FedAvgM {
            lr: 1.0,
            momentum: -0.1,
        };
        assert!(bad_momentum.check().is_err());
        for name in ["fedavg", "fedavgm", "fedadam", "fedyogi"] {
            let opt: ServerOptimizer = name.parse().unwrap();
            assert_eq!(opt.name(), name);
            assert!(opt.check().is_ok());
        }
        assert!("sgd".parse::<ServerOptimizer>().is_err());
    }

    #[test]
    fn stored_state_of_the_wrong_size_or_not_finite_is_refused() {
        assert!(ServerState::from_bytes(adam(0.1), 2, Some(&[0u8; 24])).is_err());
        let nan = f64::NAN.to_le_bytes().repeat(4);
        assert!(ServerState::from_bytes(adam(0.1), 2, Some(&nan)).is_err());
        let fresh = ServerState::from_bytes(adam(0.1), 2, None).unwrap();
        assert_eq!(fresh, ServerState::new(adam(0.1), 2));
    }

    proptest! {
        /// A state stored after any steps and read back continues exactly as the original.
        #[test]
        fn a_stored_state_continues_bit_for_bit(
            steps in prop::collection::vec(prop::collection::vec(-1.0f32..1.0, 3), 1..5),
            which in 0usize..4,
        ) {
            let opt = [
                ServerOptimizer::FedAvg { lr: 0.7 },
                ServerOptimizer::FedAvgM { lr: 1.0, momentum: 0.9 },
                adam(0.05),
                ServerOptimizer::FedYogi { lr: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 },
            ][which];
            let mut a = ServerState::new(opt, 3);
            let mut wa = vec![0.1f32, -0.2, 0.3];
            for d in &steps {
                a.apply(&mut wa, d);
            }
            let mut b = ServerState::from_bytes(opt, 3, Some(&a.to_bytes())).unwrap();
            let mut wb = wa.clone();
            a.apply(&mut wa, &steps[0]);
            b.apply(&mut wb, &steps[0]);
            prop_assert_eq!(wa, wb);
            prop_assert_eq!(a, b);
        }
    }
}
