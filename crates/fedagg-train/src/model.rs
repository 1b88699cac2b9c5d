//! Models in tch's `nn`, an MLP, a small CNN and logistic regression, with their parameters seen as one flat `f32`
//! vector: the form in which fedagg moves models and updates. Checkpoints are safetensors.

use std::path::Path;

use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::data::Dataset;
use crate::{Error, Result};

/// A model architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `Linear(d, h) - ReLU - Dropout(0.2) - Linear(h, h/2) - ReLU - Linear(h/2, classes)`, the
    /// guide's `SimpleNet`.
    Mlp {
        /// Width of the first hidden layer.
        hidden: usize,
    },
    /// Two 3x3 convolutions (16 and 32 channels, ReLU, 2x2 max-pool each), then
    /// `Linear(.., 64) - ReLU - Linear(64, classes)`. Needs image-shaped data.
    Cnn,
    /// `Linear(d, classes)`: multinomial logistic regression, FedProx's model for its
    /// Synthetic(alpha, beta) data.
    Linear,
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mlp" => Ok(Arch::Mlp { hidden: 256 }),
            "cnn" => Ok(Arch::Cnn),
            "linear" => Ok(Arch::Linear),
            _ => match s.strip_prefix("mlp") {
                Some(h) => h
                    .parse()
                    .map(|hidden| Arch::Mlp { hidden })
                    .map_err(|_| format!("unknown model {s:?}")),
                None => Err(format!("unknown model {s:?} (mlp, mlpN, cnn, linear)")),
            },
        }
    }
}

/// A network with its variables.
pub struct Net {
    vs: nn::VarStore,
    module: nn::SequentialT,
    vars: Vec<Tensor>,
    input: Vec<i64>,
    /// The architecture.
    pub arch: Arch,
}

impl Net {
    /// Build a network for `data`'s shape, its weights initialised from `seed`.
    pub fn new(arch: Arch, data: &Dataset, seed: u64) -> Result<Self> {
        let _rng = crate::TORCH_RNG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tch::manual_seed(seed as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let (module, input) = match arch {
            Arch::Mlp { hidden } => {
                if hidden < 2 {
                    return Err(Error::Config("MLP hidden width must be at least 2".into()));
                }
                let d = data.dim as i64;
                let h = hidden as i64;
                let m = nn::seq_t()
                    .add(nn::linear(&root / "fc1", d, h, Default::default()))
                    .add_fn(|x| x.relu())
                    .add_fn_t(|x, train| x.dropout(0.2, train))
                    .add(nn::linear(&root / "fc2", h, h / 2, Default::default()))
                    .add_fn(|x| x.relu())
                    .add(nn::linear(
                        &root / "fc3",
                        h / 2,
                        data.classes as i64,
                        Default::default(),
                    ));
                (m, vec![-1, d])
            }
            Arch::Linear => {
                let d = data.dim as i64;
                let m = nn::seq_t().add(nn::linear(
                    &root / "fc",
                    d,
                    data.classes as i64,
                    Default::default(),
                ));
                (m, vec![-1, d])
            }
            Arch::Cnn => {
                let (c, h, w) = data.image.ok_or_else(|| {
                    Error::Config("the CNN needs image data (digits or IDX images)".into())
                })?;
                if h < 4 || w < 4 {
                    return Err(Error::Config(format!(
                        "image {h}x{w} too small for the CNN"
                    )));
                }
                let conv = nn::ConvConfig {
                    padding: 1,
                    ..Default::default()
                };
                let flat = (32 * (h / 4) * (w / 4)) as i64;
                let m = nn::seq_t()
                    .add(nn::conv2d(&root / "conv1", c as i64, 16, 3, conv))
                    .add_fn(|x| x.relu().max_pool2d_default(2))
                    .add(nn::conv2d(&root / "conv2", 16, 32, 3, conv))
                    .add_fn(|x| x.relu().max_pool2d_default(2).flatten(1, -1))
                    .add(nn::linear(&root / "fc1", flat, 64, Default::default()))
                    .add_fn(|x| x.relu())
                    .add(nn::linear(
                        &root / "fc2",
                        64,
                        data.classes as i64,
                        Default::default(),
                    ));
                (m, vec![-1, c as i64, h as i64, w as i64])
            }
        };
        let vars = vs.trainable_variables();
        Ok(Net {
            vs,
            module,
            vars,
            input,
            arch,
        })
    }

    /// Number of parameters (the length of the flat vector).
    pub fn num_params(&self) -> usize {
        self.vars.iter().map(Tensor::numel).sum()
    }

    /// The parameters as one flat vector, in the order the layers were built.
    pub fn params(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.num_params()];
        let mut off = 0;
        for v in &self.vars {
            let n = v.numel();
            v.detach()
                .contiguous()
                .f_copy_data(&mut out[off..off + n], n)?;
            off += n;
        }
        Ok(out)
    }

    /// Overwrite the parameters from a flat vector.
    pub fn set_params(&mut self, flat: &[f32]) -> Result<()> {
        if flat.len() != self.num_params() {
            return Err(Error::Config(format!(
                "model has {} parameters, got {}",
                self.num_params(),
                flat.len()
            )));
        }
        let mut off = 0;
        tch::no_grad(|| {
            for v in &mut self.vars {
                let n = v.numel();
                let src = Tensor::from_slice(&flat[off..off + n]).view(v.size().as_slice());
                v.copy_(&src);
                off += n;
            }
        });
        Ok(())
    }

    /// Logits for a batch of rows (`[n, dim]` features).
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.module.forward_t(&x.view(self.input.as_slice()), train)
    }

    /// Mean cross-entropy loss and accuracy on `data`.
    pub fn evaluate(&self, data: &Dataset) -> Eval {
        if data.is_empty() {
            return Eval::default();
        }
        let (x, y) = tensors(data);
        tch::no_grad(|| {
            let logits = self.forward(&x, false);
            let loss = logits.cross_entropy_for_logits(&y).double_value(&[]);
            let accuracy = logits.accuracy_for_logits(&y).double_value(&[]);
            Eval { loss, accuracy }
        })
    }

    /// Save the parameters as a safetensors file (layer names as keys).
    pub fn save(&self, path: &Path) -> Result<()> {
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            return Err(Error::Config(format!(
                "{}: checkpoints are safetensors files (.safetensors)",
                path.display()
            )));
        }
        self.vs.save(path).map_err(Error::Torch)
    }

    /// Load parameters saved by [`Net::save`] into a network of the same architecture.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        self.vs.load(path).map_err(Error::Torch)
    }

    pub(crate) fn sgd(&self, lr: f64, momentum: f64) -> Result<nn::Optimizer> {
        nn::Sgd {
            momentum,
            ..Default::default()
        }
        .build(&self.vs, lr)
        .map_err(Error::Torch)
    }

    pub(crate) fn vars(&self) -> &[Tensor] {
        &self.vars
    }
}

/// Loss and accuracy of a model on a data set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Eval {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
}

/// Features and labels as tensors.
pub(crate) fn tensors(data: &Dataset) -> (Tensor, Tensor) {
    let x = Tensor::from_slice(&data.features).view([data.len() as i64, data.dim as i64]);
    let y = Tensor::from_slice(&data.labels).to_kind(Kind::Int64);
    (x, y)
}

/// Split a flat vector into tensors shaped like the network's variables.
pub(crate) fn shaped(net: &Net, flat: &[f32]) -> Vec<Tensor> {
    let mut off = 0;
    net.vars()
        .iter()
        .map(|v| {
            let n = v.numel();
            let t = Tensor::from_slice(&flat[off..off + n]).view(v.size().as_slice());
            off += n;
            t
        })
        .collect()
}
