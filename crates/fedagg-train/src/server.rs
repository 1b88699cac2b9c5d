//! Server optimizers applied to the aggregated update (the weighted mean of client deltas,
//! a pseudo-gradient with the sign of a step): FedAvg, FedAvgM and FedAdam (Reddi et al.,
//! "Adaptive Federated Optimization", ICLR 2021), and SCAFFOLD's server control variate.

/// A server optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServerOptimizer {
    /// `w += lr * delta`.
    FedAvg {
        /// Server learning rate (1 is plain FedAvg).
        lr: f64,
    },
    /// Server momentum: `m = beta * m + delta; w += lr * m`.
    FedAvgM {
        /// Server learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
    },
    /// `m = b1 m + (1 - b1) delta; v = b2 v + (1 - b2) delta^2; w += lr * m / (sqrt(v) + tau)`.
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
}

impl std::str::FromStr for ServerOptimizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
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
            _ => Err(format!(
                "unknown server optimizer {s:?} (fedavg, fedavgm, fedadam)"
            )),
        }
    }
}

/// A server optimizer with its state.
#[derive(Clone, Debug)]
pub struct ServerState {
    opt: ServerOptimizer,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl ServerState {
    /// Fresh state for a model of `len` parameters.
    pub fn new(opt: ServerOptimizer, len: usize) -> Self {
        let v = match opt {
            ServerOptimizer::FedAdam { tau, .. } => vec![tau * tau; len],
            _ => Vec::new(),
        };
        ServerState {
            opt,
            m: vec![0.0; len],
            v,
        }
    }

    /// Apply the aggregated update `delta` to `model`.
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
            } => {
                for (((w, m), v), &d) in model
                    .iter_mut()
                    .zip(&mut self.m)
                    .zip(&mut self.v)
                    .zip(delta)
                {
                    let d = f64::from(d);
                    *m = beta1 * *m + (1.0 - beta1) * d;
                    *v = beta2 * *v + (1.0 - beta2) * d * d;
                    *w += (lr * *m / (v.sqrt() + tau)) as f32;
                }
            }
        }
    }
}

/// SCAFFOLD's server control variate: `c += |S|/N * mean_i(delta c_i)`.
pub fn scaffold_server_update(c: &mut [f32], control_deltas: &[&[f32]], total_clients: usize) {
    if control_deltas.is_empty() {
        return;
    }
    let scale = 1.0 / total_clients as f64; // |S|/N * (1/|S|)
    for (j, cj) in c.iter_mut().enumerate() {
        let s: f64 = control_deltas.iter().map(|d| f64::from(d[j])).sum();
        *cj += (s * scale) as f32;
    }
}

/// The weighted mean of client deltas (FedAvg weighting by sample count).
pub fn weighted_mean(deltas: &[(&[f32], usize)]) -> Vec<f32> {
    let len = deltas.first().map_or(0, |d| d.0.len());
    let total: f64 = deltas.iter().map(|d| d.1 as f64).sum();
    let mut out = vec![0f64; len];
    for (d, w) in deltas {
        let w = *w as f64 / total;
        for (o, &v) in out.iter_mut().zip(d.iter()) {
            *o += w * f64::from(v);
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fedavg_with_lr_one_adds_the_delta_and_momentum_accumulates() {
        let mut w = vec![1.0f32, 2.0];
        ServerState::new(ServerOptimizer::FedAvg { lr: 1.0 }, 2).apply(&mut w, &[0.5, -1.0]);
        assert_eq!(w, vec![1.5, 1.0]);
        let mut s = ServerState::new(
            ServerOptimizer::FedAvgM {
                lr: 1.0,
                momentum: 0.5,
            },
            1,
        );
        let mut w = vec![0.0f32];
        s.apply(&mut w, &[1.0]);
        s.apply(&mut w, &[1.0]);
        assert_eq!(w, vec![2.5]); // 1 + (0.5 + 1)
    }

    #[test]
    fn fedadam_first_step_moves_by_about_lr_in_the_delta_direction() {
        let mut s = ServerState::new(
            ServerOptimizer::FedAdam {
                lr: 0.1,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3,
            },
            2,
        );
        let mut w = vec![0.0f32, 0.0];
        s.apply(&mut w, &[2.0, -2.0]);
        // m = 0.2, v ~ 0.04, step = 0.1 * 0.2 / (0.2 + 0.001) ~ 0.0995
        assert!(
            (w[0] - 0.0995).abs() < 1e-3 && (w[1] + 0.0995).abs() < 1e-3,
            "{w:?}"
        );
    }

    #[test]
    fn weighted_mean_weights_by_samples() {
        let m = weighted_mean(&[(&[1.0, 0.0], 1), (&[4.0, 3.0], 2)]);
        assert_eq!(m, vec![3.0, 2.0]);
    }

    #[test]
    fn scaffold_server_control_moves_by_the_fraction_of_clients() {
        let mut c = vec![0.0f32; 2];
        // 2 of 10 clients report; c += (2/10) * mean = sum / 10.
        scaffold_server_update(&mut c, &[&[1.0, 2.0], &[3.0, 4.0]], 10);
        assert!(
            (c[0] - 0.4).abs() < 1e-7 && (c[1] - 0.6).abs() < 1e-7,
            "{c:?}"
        );
    }
}
