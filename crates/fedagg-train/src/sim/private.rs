//! The privacy of a simulated federation: the service's central and distributed DP mechanisms
//! and record-level DP-SGD, run in process with the same `fedagg-dp` code the service runs.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::{client_seed, select, Setup, SimConfig};
use crate::dpsgd::DpSgd;
use crate::local::{Controls, LocalUpdate};
use crate::model::Net;
use crate::server::weighted_mean;
use crate::{Error, Result};

/// How a simulated federation protects its participants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Privacy {
    /// None: weighted FedAvg of the plain updates.
    None,
    /// Central DP, the service's `dp` mode: each participant joins a round with probability
    /// `fraction` (Poisson sampling), its update clipped to L2 norm `clip`; the sum gets
    /// `N(0, (z clip)^2)` per coordinate and is divided by the expected cohort.
    Central {
        /// L2 clip of an update.
        clip: f64,
        /// Noise multiplier z.
        noise_multiplier: f64,
    },
    /// Distributed DP, the service's `secagg_dp` mode: the same sampling, and each participant's
    /// update clipped, rotated, rounded and given its discrete Gaussian share
    /// (`fedagg_dp::ddg`), summed modulo `2^bits`. A round with fewer than `min_survivors`
    /// participants releases nothing, as the service refuses it.
    Distributed {
        /// L2 clip of an update.
        clip: f64,
        /// Noise multiplier z of a sum of `min_survivors`.
        noise_multiplier: f64,
        /// Bits per coordinate.
        bits: u32,
        /// The fewest participants a round aggregates, which the noise is calibrated for.
        min_survivors: u32,
    },
    /// Record-level DP at each participant: DP-SGD with `dp`, each participant charging its own
    /// budget of `epsilon` at delta 1e-5 and stopping when a training would pass it; weighted
    /// FedAvg of the updates over uniform cohorts, as without privacy.
    Records {
        /// DP-SGD settings.
        dp: DpSgd,
        /// Each participant's record-level budget.
        epsilon: f64,
    },
}

/// One run's privacy state.
pub(super) struct Run {
    privacy: Privacy,
    rng: ChaCha20Rng,
    /// The expected cohort of the DP modes: `fraction` of the participants.
    expected: f64,
    ddg: Option<fedagg_dp::ddg::DdgParams>,
    /// Record-level ledgers, one per participant.
    ledgers: Vec<fedagg_dp::Ledger>,
}

impl Run {
    pub(super) fn new(
        privacy: &Privacy,
        setup: &Setup,
        cfg: &SimConfig,
        len: usize,
    ) -> Result<Self> {
        let dp = |e: fedagg_dp::Error| Error::Config(e.to_string());
        let k = setup.clients.len();
        let ddg = match *privacy {
            Privacy::Distributed {
                clip,
                noise_multiplier,
                bits,
                min_survivors,
            } => Some(
                fedagg_dp::ddg::DdgParams::new(
                    len,
                    clip,
                    noise_multiplier,
                    bits,
                    min_survivors,
                    k as u32,
                )
                .map_err(dp)?,
            ),
            _ => None,
        };
        let ledgers = match *privacy {
            Privacy::Records { epsilon, .. } => (0..k)
                .map(|_| fedagg_dp::Ledger::new(epsilon, 1e-5))
                .collect::<std::result::Result<_, _>>()
                .map_err(dp)?,
            _ => Vec::new(),
        };
        Ok(Run {
            privacy: *privacy,
            rng: ChaCha20Rng::seed_from_u64(client_seed(cfg.seed, 0, usize::MAX - 1)),
            expected: (cfg.fraction * k as f64).max(1.0),
            ddg,
            ledgers,
        })
    }

    fn sampled(&self) -> bool {
        matches!(
            self.privacy,
            Privacy::Central { .. } | Privacy::Distributed { .. }
        )
    }

    /// The round's participants: Poisson sampling at `fraction` for the DP modes, else
    /// [`select`]'s uniform cohort.
    pub(super) fn select(&mut self, k: usize, cfg: &SimConfig, round: usize) -> Vec<usize> {
        if !self.sampled() {
            return select(k, cfg.fraction, cfg.seed, round);
        }
        let threshold = (cfg.fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        (0..k)
            .filter(|_| cfg.fraction >= 1.0 || self.rng.next_u64() < threshold)
            .collect()
    }

    /// Participant `j`'s local training (DP-SGD under record-level DP, when its budget covers
    /// it; `None` when it does not).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn train(
        &mut self,
        net: &mut Net,
        global: &[f32],
        data: &crate::Dataset,
        j: usize,
        cfg: &SimConfig,
        controls: Option<Controls<'_>>,
        seed: u64,
    ) -> Result<Option<LocalUpdate>> {
        let Privacy::Records { dp, .. } = self.privacy else {
            return net
                .train_local(global, data, &cfg.local, cfg.algorithm, controls, seed)
                .map(Some);
        };
        let ledger = self
            .ledgers
            .get_mut(j)
            .ok_or_else(|| Error::Config("no such participant".into()))?;
        if dp.charge(ledger, data.len(), &cfg.local).is_err() {
            return Ok(None);
        }
        net.train_local_dp(
            global,
            data,
            &cfg.local,
            cfg.algorithm,
            controls,
            &dp,
            seed,
            &mut self.rng,
        )
        .map(Some)
    }

    /// The round's aggregate, or `None` when it releases nothing.
    pub(super) fn aggregate(&mut self, updates: &[LocalUpdate]) -> Result<Option<Vec<f32>>> {
        let dp = |e: fedagg_dp::Error| Error::Config(e.to_string());
        match self.privacy {
            Privacy::None | Privacy::Records { .. } => {
                if updates.is_empty() {
                    return Ok(None);
                }
                let pairs: Vec<(&[f32], usize)> =
                    updates.iter().map(|u| (&u.delta[..], u.samples)).collect();
                Ok(Some(weighted_mean(&pairs)))
            }
            Privacy::Central {
                clip,
                noise_multiplier,
            } => {
                let len = updates.first().map_or(0, |u| u.delta.len());
                let mut sum = vec![0f64; len];
                for u in updates {
                    let mut v = u.delta.clone();
                    fedagg_dp::clip::clip_l2(&mut v, clip).map_err(dp)?;
                    for (s, x) in sum.iter_mut().zip(&v) {
                        *s += f64::from(*x);
                    }
                }
                if len == 0 {
                    return Ok(None);
                }
                fedagg_dp::noise::add_gaussian(&mut sum, noise_multiplier * clip, &mut self.rng)
                    .map_err(dp)?;
                let n = self.expected;
                Ok(Some(sum.iter().map(|s| (s / n) as f32).collect()))
            }
            Privacy::Distributed { min_survivors, .. } => {
                let Some(ddg) = &self.ddg else {
                    return Err(Error::Config(
                        "distributed DP without its parameters".into(),
                    ));
                };
                if updates.len() < min_survivors as usize {
                    return Ok(None);
                }
                let mut seed = [0u8; 32];
                self.rng.fill_bytes(&mut seed);
                let mask = (1u64 << ddg.bits()) - 1;
                let mut sum = vec![0u64; ddg.dim()];
                for u in updates {
                    let enc = ddg.encode(&u.delta, &seed, &mut self.rng).map_err(dp)?;
                    for (s, x) in sum.iter_mut().zip(enc) {
                        *s = s.wrapping_add(x) & mask;
                    }
                }
                let mean = ddg.decode_sum(&sum, &seed, self.expected).map_err(dp)?;
                Ok(Some(mean.into_iter().map(|x| x as f32).collect()))
            }
        }
    }
}
