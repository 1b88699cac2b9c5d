//! Local training for fedagg through [`tch`] (libtorch, CPU).
//!
//! - [`data`]: the bundled UCI digits and breast-cancer sets, CSV and IDX loaders for users' own
//!   data, and FedProx's Synthetic(alpha, beta) federated data.
//! - [`partition`]: IID, Dirichlet label skew and quantity skew; every sample assigned once.
//! - [`model`]: an MLP, a small CNN and logistic regression, whose parameters travel as one flat `f32` vector;
//!   safetensors checkpoints.
//! - [`local`]: client training for FedAvg, FedProx and SCAFFOLD, producing the flat update.
//! - [`dpsgd`]: the same with record-level DP (DP-SGD: Poisson batches, per-example clipping,
//!   Gaussian noise), charged to the participant's own ledger.
//! - [`server`]: FedAvg, FedAvgM and FedAdam on the aggregated update; SCAFFOLD's server control.
//! - [`sim`]: experiment set-up and an in-process plaintext federation, the baseline that the
//!   private modes (run through the service by `fedagg demo`) are compared with.
//!
//! libtorch is found through `LIBTORCH`, which `scripts/libtorch.sh` and `.cargo/config.toml`
//! provide; this crate's build script adds an rpath so its tests run with nothing exported.
//!
//! ```no_run
//! use fedagg_train::{local::LocalConfig, model::Arch, partition::Partition, sim::*};
//! use fedagg_train::{local::Algorithm, server::ServerOptimizer};
//!
//! let setup = Setup::new(&DataSource::Digits, 20, Partition::Dirichlet { alpha: 0.5 }, 0.2, 1)?;
//! let cfg = SimConfig {
//!     arch: Arch::Mlp { hidden: 256 },
//!     local: LocalConfig::default(),
//!     algorithm: Algorithm::FedAvg,
//!     server: ServerOptimizer::FedAvg { lr: 1.0 },
//!     fraction: 0.1,
//!     rounds: 50,
//!     seed: 1,
//! };
//! let (_net, history) = simulate(&setup, &cfg, |m| println!("{m:?}"))?;
//! println!("final accuracy {:.3}", history.last().map_or(0.0, |m| m.test.accuracy));
//! # Ok::<(), fedagg_train::Error>(())
//! ```

pub mod data;
pub mod dpsgd;
pub mod local;
pub mod model;
pub mod partition;
pub mod server;
pub mod sim;

pub use data::Dataset;
pub use model::{Arch, Eval, Net};

/// Guards libtorch's process-wide random generator: seeding and the draws that follow happen
/// under it, so runs with the same seed repeat exactly even when threads train concurrently.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Errors of data loading, configuration and libtorch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file or data set is malformed.
    #[error("data: {0}")]
    Data(String),
    /// Settings that cannot work together.
    #[error("configuration: {0}")]
    Config(String),
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
