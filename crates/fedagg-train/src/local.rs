//! Local training on one client's data: FedAvg (plain local SGD), FedProx (a proximal term) and
//! SCAFFOLD (control variates), each producing the flat update `w_local - w_global`.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tch::Tensor;

use crate::data::Dataset;
use crate::model::{shaped, tensors, Net};
use crate::partition::shuffle;
use crate::{Error, Result};

/// The client side of a federated algorithm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Algorithm {
    /// Local SGD from the global model (McMahan et al. 2017).
    FedAvg,
    /// Local SGD on `loss + mu/2 * ||w - w_global||^2` (Li et al., MLSys 2020).
    FedProx {
        /// Proximal weight.
        mu: f64,
    },
    /// Local SGD with the gradient corrected by `c - c_i` (Karimireddy et al., ICML 2020), and
    /// the client control variate updated by the paper's option II.
    Scaffold,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fedavg" => Ok(Algorithm::FedAvg),
            "scaffold" => Ok(Algorithm::Scaffold),
            "fedprox" => Ok(Algorithm::FedProx { mu: 0.01 }),
            _ => match s.strip_prefix("fedprox:") {
                Some(mu) => mu
                    .parse()
                    .map(|mu| Algorithm::FedProx { mu })
                    .map_err(|_| format!("bad FedProx mu in {s:?}")),
                None => Err(format!(
                    "unknown algorithm {s:?} (fedavg, fedprox, fedprox:MU, scaffold)"
                )),
            },
        }
    }
}

/// Local optimisation settings (the guide's defaults: 5 epochs, batch 32, lr 0.01, momentum 0.9).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalConfig {
    /// Passes over the local data.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// SGD learning rate.
    pub lr: f64,
    /// SGD momentum (0 for plain SGD).
    pub momentum: f64,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            epochs: 5,
            batch_size: 32,
            lr: 0.01,
            momentum: 0.9,
        }
    }
}

/// SCAFFOLD's control variates as one client sees them.
pub struct Controls<'a> {
    /// The server's control variate `c`.
    pub server: &'a [f32],
    /// This client's control variate `c_i`, replaced by `c_i+` after training.
    pub client: &'a mut Vec<f32>,
}

/// What local training produced.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalUpdate {
    /// `w_local - w_global`, flat.
    pub delta: Vec<f32>,
    /// Local samples (the FedAvg weight).
    pub samples: usize,
    /// Mean training loss over all local steps.
    pub loss: f64,
    /// Local SGD steps taken (K).
    pub steps: usize,
    /// SCAFFOLD: `c_i+ - c_i`.
    pub control_delta: Option<Vec<f32>>,
}

impl Net {
    /// SCAFFOLD's correction c - c_i, one tensor per variable, fixed during the local epochs
    /// (none without control variates).
    pub(crate) fn scaffold_correction(
        &self,
        controls: Option<&Controls<'_>>,
    ) -> Result<Vec<Tensor>> {
        let Some(c) = controls else {
            return Ok(Vec::new());
        };
        let n = self.num_params();
        if c.server.len() != n || c.client.len() != n {
            return Err(Error::Config("control variates of the wrong length".into()));
        }
        let diff: Vec<f32> = c
            .server
            .iter()
            .zip(c.client.iter())
            .map(|(a, b)| a - b)
            .collect();
        Ok(shaped(self, &diff))
    }

    /// Train from `global` on `data` and return the update. `seed` fixes the batch order and the
    /// dropout masks (libtorch's generator is global: train one client at a time for runs that
    /// repeat exactly).
    pub fn train_local(
        &mut self,
        global: &[f32],
        data: &Dataset,
        cfg: &LocalConfig,
        algorithm: Algorithm,
        controls: Option<Controls<'_>>,
        seed: u64,
    ) -> Result<LocalUpdate> {
        if data.is_empty() || cfg.batch_size == 0 || cfg.epochs == 0 {
            return Err(Error::Config(
                "local training needs data, a batch size and epochs".into(),
            ));
        }
        let _torch = self.begin(global, algorithm, controls.is_some(), seed)?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (x, y) = tensors(data);
        let anchor = match algorithm {
            Algorithm::FedProx { .. } => shaped(self, global),
            _ => Vec::new(),
        };
        let correction = self.scaffold_correction(controls.as_ref())?;
        let mut opt = self.sgd(cfg.lr, cfg.momentum)?;
        let mut order: Vec<i64> = (0..data.len() as i64).collect();
        let (mut steps, mut loss_sum) = (0usize, 0f64);
        for _ in 0..cfg.epochs {
            shuffle(&mut order, &mut rng);
            for batch in order.chunks(cfg.batch_size) {
                let idx = Tensor::from_slice(batch);
                let logits = self.forward(&x.index_select(0, &idx), true);
                let mut loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
                loss_sum += loss.double_value(&[]);
                if let Algorithm::FedProx { mu } = algorithm {
                    let prox = self
                        .vars()
                        .iter()
                        .zip(&anchor)
                        .map(|(w, w0)| (w - w0).square().sum(tch::Kind::Float))
                        .fold(Tensor::from(0f32), |a, b| a + b);
                    loss += prox * (mu / 2.0);
                }
                opt.zero_grad();
                loss.backward();
                if !correction.is_empty() {
                    tch::no_grad(|| {
                        for (v, c) in self.vars().iter().zip(&correction) {
                            let mut g = v.grad();
                            let _ = g.g_add_(c);
                        }
                    });
                }
                opt.step();
                steps += 1;
            }
        }
        self.finish(
            global,
            data,
            cfg,
            controls,
            steps,
            loss_sum / steps.max(1) as f64,
        )
    }

    /// The start of a local training (plain or DP-SGD): `controls` exactly for SCAFFOLD, the
    /// parameters set to `global`, and libtorch's generator (dropout masks) locked and seeded.
    /// The generator is process-wide: the returned guard holds it for the whole run, so that
    /// concurrent callers cannot interleave draws and a seed repeats exactly.
    pub(crate) fn begin(
        &mut self,
        global: &[f32],
        algorithm: Algorithm,
        controls: bool,
        seed: u64,
    ) -> Result<std::sync::MutexGuard<'static, ()>> {
        if (algorithm == Algorithm::Scaffold) != controls {
            return Err(Error::Config(
                "SCAFFOLD needs control variates, and only SCAFFOLD takes them".into(),
            ));
        }
        self.set_params(global)?;
        let guard = crate::TORCH_RNG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tch::manual_seed(seed as i64);
        Ok(guard)
    }

    /// The end of a local training of `steps` steps: the update from `global`, and SCAFFOLD's
    /// control update.
    pub(crate) fn finish(
        &self,
        global: &[f32],
        data: &Dataset,
        cfg: &LocalConfig,
        controls: Option<Controls<'_>>,
        steps: usize,
        loss: f64,
    ) -> Result<LocalUpdate> {
        let local = self.params()?;
        let delta: Vec<f32> = local.iter().zip(global).map(|(l, g)| l - g).collect();
        // Option II: c_i+ = c_i - c + (x - y_i) / (K lr) = c_i - c - delta / (K lr). With
        // heavy-ball momentum beta the local step is lr / (1 - beta) in the steady state, so
        // that is the lr used here (beta = 0 is the paper's rule exactly); with the raw lr the
        // control variates overshoot by 1 / (1 - beta) and training diverges.
        let scale = (1.0 - cfg.momentum) / (steps as f64 * cfg.lr);
        let control_delta = controls.map(|c| next_controls(c, &delta, scale));
        Ok(LocalUpdate {
            delta,
            samples: data.len(),
            loss,
            steps,
            control_delta,
        })
    }
}

/// Replace `c.client` by c_i+ = c_i - c - delta * `scale`, and return the change c_i+ - c_i.
fn next_controls(c: Controls<'_>, delta: &[f32], scale: f64) -> Vec<f32> {
    let mut cd = Vec::with_capacity(delta.len());
    for ((ci, &cs), &d) in c.client.iter_mut().zip(c.server).zip(delta) {
        let next = *ci - cs - (f64::from(d) * scale) as f32;
        cd.push(next - *ci);
        *ci = next;
    }
    cd
}
