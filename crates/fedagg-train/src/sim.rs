//! Experiments: a data source split among clients, and an in-process federation that trains
//! with plaintext aggregation (the baseline the private modes are measured against).

use std::path::PathBuf;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::data::{synthetic, synthetic_iid, Dataset, Standardizer};
use crate::local::{Algorithm, Controls, LocalConfig};
use crate::model::{Arch, Eval, Net};
use crate::partition::{shuffle, Partition};
use crate::server::{scaffold_server_update, ServerOptimizer, ServerState};
use crate::{Error, Result};

mod private;
pub use private::Privacy;

/// Where the samples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// The bundled UCI digits.
    Digits,
    /// The bundled UCI breast cancer set (standardised).
    BreastCancer,
    /// FedProx's Synthetic(alpha, beta): 60 features, 10 classes, one generated set per client
    /// (the partition is ignored: the data are federated by construction).
    Synthetic {
        /// Model heterogeneity.
        alpha: f64,
        /// Input heterogeneity.
        beta: f64,
    },
    /// FedProx's Synthetic-IID: the same, with one model and input distribution for every
    /// client.
    SyntheticIid,
    /// A CSV file, label last (standardised).
    Csv(PathBuf),
    /// An IDX image file and label file.
    Idx {
        /// Images.
        images: PathBuf,
        /// Labels.
        labels: PathBuf,
    },
}

/// A federated data set: each client's training data and a held-out test set.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Client `k`'s training samples.
    pub clients: Vec<Dataset>,
    /// The test set.
    pub test: Dataset,
}

impl Setup {
    /// Load `source`, hold out `test_fraction` (stratified) and split the rest among `clients`.
    pub fn new(
        source: &DataSource,
        clients: usize,
        partition: Partition,
        test_fraction: f64,
        seed: u64,
    ) -> Result<Setup> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let generated = match source {
            DataSource::Synthetic { alpha, beta } => {
                Some(synthetic(*alpha, *beta, clients, 60, 10, 20, seed)?)
            }
            DataSource::SyntheticIid => Some(synthetic_iid(clients, 60, 10, 20, seed)?),
            _ => None,
        };
        if let Some(sets) = generated {
            let (mut train, mut tests) = (Vec::new(), Vec::new());
            for s in &sets {
                let (tr, te) = s.split(test_fraction, seed);
                train.push(tr);
                tests.push(te);
            }
            let mut test = tests[0].clone();
            for t in &tests[1..] {
                test.features.extend_from_slice(&t.features);
                test.labels.extend_from_slice(&t.labels);
            }
            return Ok(Setup {
                clients: train,
                test,
            });
        }
        let (all, standardize) = match source {
            DataSource::Digits => (Dataset::digits(), false),
            DataSource::BreastCancer => (Dataset::breast_cancer(), true),
            DataSource::Csv(p) => (Dataset::load_csv(p)?, true),
            DataSource::Idx { images, labels } => (Dataset::load_idx(images, labels)?, false),
            DataSource::Synthetic { .. } | DataSource::SyntheticIid => {
                return Err(Error::Config("synthetic data is generated above".into()))
            }
        };
        let (mut train, mut test) = all.split(test_fraction, seed);
        if standardize {
            let s = Standardizer::fit(&train);
            s.apply(&mut train);
            s.apply(&mut test);
        }
        let parts = partition.split(&train.labels, train.classes, clients, 1, &mut rng)?;
        Ok(Setup {
            clients: parts.iter().map(|p| train.subset(p)).collect(),
            test,
        })
    }

    /// Total training samples.
    pub fn train_samples(&self) -> usize {
        self.clients.iter().map(Dataset::len).sum()
    }
}

/// The seed of one client's local training in one round, derived from the run's seed.
pub fn client_seed(seed: u64, round: usize, client: usize) -> u64 {
    // SplitMix64 finaliser over the three inputs.
    let mut z = seed
        ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (client as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The clients of round `round`: `max(floor(fraction * K), 1)` of `K`, uniformly at random.
pub fn select(clients: usize, fraction: f64, seed: u64, round: usize) -> Vec<usize> {
    let m = ((fraction * clients as f64) as usize).clamp(1, clients.max(1));
    let mut idx: Vec<usize> = (0..clients).collect();
    shuffle(
        &mut idx,
        &mut ChaCha20Rng::seed_from_u64(client_seed(seed, round, usize::MAX)),
    );
    idx.truncate(m);
    idx.sort_unstable();
    idx
}

/// An in-process federated training run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimConfig {
    /// Model.
    pub arch: Arch,
    /// Local optimisation.
    pub local: LocalConfig,
    /// Client-side algorithm.
    pub algorithm: Algorithm,
    /// Server optimizer.
    pub server: ServerOptimizer,
    /// Fraction of clients per round.
    pub fraction: f64,
    /// Rounds.
    pub rounds: usize,
    /// Seed of initial weights, client selection and local training.
    pub seed: u64,
}

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundMetrics {
    /// Round number, from 1.
    pub round: usize,
    /// Clients that trained.
    pub clients: usize,
    /// Mean local training loss.
    pub train_loss: f64,
    /// The global model on the test set after the round.
    pub test: Eval,
}

/// Run federated training with plaintext aggregation, calling `on_round` after every round.
/// Returns the final network.
pub fn simulate(
    setup: &Setup,
    cfg: &SimConfig,
    on_round: impl FnMut(&RoundMetrics),
) -> Result<(Net, Vec<RoundMetrics>)> {
    simulate_with(setup, cfg, &Privacy::None, on_round)
}

/// [`simulate`] with the participants protected as `privacy` says: the mechanisms of the
/// service's DP modes and DP-SGD, run in process (the accounting is the caller's, see
/// `examples/dp_comparison.rs`). The noise comes from a ChaCha20 stream seeded from `cfg.seed`,
/// so that experiments repeat: this is an experiment harness, not a deployment.
pub fn simulate_with(
    setup: &Setup,
    cfg: &SimConfig,
    privacy: &Privacy,
    on_round: impl FnMut(&RoundMetrics),
) -> Result<(Net, Vec<RoundMetrics>)> {
    run(setup, cfg, privacy, None, on_round)
}

/// [`simulate`] on the cohorts another run picked: round `r` (from 1) trains the clients
/// `cohorts[r - 1]` (indices into `setup.clients`), for example the participants the service
/// picked in a `fedagg demo` run, so that the two runs train the same clients from the same
/// seeds. `cfg.rounds` is capped at the cohorts given.
pub fn replay(
    setup: &Setup,
    cfg: &SimConfig,
    cohorts: &[Vec<usize>],
    on_round: impl FnMut(&RoundMetrics),
) -> Result<(Net, Vec<RoundMetrics>)> {
    let k = setup.clients.len();
    if let Some(j) = cohorts.iter().flatten().find(|&&j| j >= k) {
        return Err(Error::Config(format!("cohort member {j} of {k} clients")));
    }
    let cfg = SimConfig {
        rounds: cfg.rounds.min(cohorts.len()),
        ..*cfg
    };
    run(setup, &cfg, &Privacy::None, Some(cohorts), on_round)
}

fn run(
    setup: &Setup,
    cfg: &SimConfig,
    privacy: &Privacy,
    cohorts: Option<&[Vec<usize>]>,
    mut on_round: impl FnMut(&RoundMetrics),
) -> Result<(Net, Vec<RoundMetrics>)> {
    let k = setup.clients.len();
    let first = setup
        .clients
        .first()
        .ok_or_else(|| Error::Config("no clients".into()))?;
    let mut net = Net::new(cfg.arch, first, cfg.seed)?;
    let mut global = net.params()?;
    let mut server = ServerState::new(cfg.server, global.len());
    let scaffold = cfg.algorithm == Algorithm::Scaffold;
    let mut c = vec![0f32; if scaffold { global.len() } else { 0 }];
    let mut ci = vec![c.clone(); if scaffold { k } else { 0 }];
    let mut private = private::Run::new(privacy, setup, cfg, global.len())?;
    let mut history = Vec::with_capacity(cfg.rounds);
    for round in 1..=cfg.rounds {
        let chosen = match cohorts {
            Some(c) => c[round - 1].clone(),
            None => private.select(k, cfg, round),
        };
        let mut updates = Vec::with_capacity(chosen.len());
        for &j in &chosen {
            let controls = if scaffold {
                Some(Controls {
                    server: &c,
                    client: &mut ci[j],
                })
            } else {
                None
            };
            let seed = client_seed(cfg.seed, round, j);
            let data = &setup.clients[j];
            if let Some(u) = private.train(&mut net, &global, data, j, cfg, controls, seed)? {
                updates.push(u);
            }
        }
        if let Some(mean) = private.aggregate(&updates)? {
            server.apply(&mut global, &mean);
        }
        if scaffold {
            let cds: Vec<&[f32]> = updates
                .iter()
                .filter_map(|u| u.control_delta.as_deref())
                .collect();
            scaffold_server_update(&mut c, &cds, k);
        }
        net.set_params(&global)?;
        let m = RoundMetrics {
            round,
            clients: updates.len(),
            train_loss: updates.iter().map(|u| u.loss).sum::<f64>() / updates.len().max(1) as f64,
            test: net.evaluate(&setup.test),
        };
        on_round(&m);
        history.push(m);
    }
    Ok((net, history))
}
