//! The server optimizer at a round's end: the round applies its aggregate to the base model with
//! the optimizer it opened with (`RoundParams::server_optimizer`; FedAvg at the spec's
//! `server_lr` without one), continuing the optimizer's state stored after the base version. The
//! new state is stored with the new model, in the same transaction, so a restarted server or
//! another replica continues from exactly the state that produced the model it reads. SCAFFOLD's
//! control variate moves at the same point, and is stored with the model too.

use fedagg_api::{FederationSpec, ServerOptimizer};
use fedagg_optim::ServerState;

use crate::error::{Result, RoundError};
use crate::plan::RoundParams;

/// The server optimizer's state as the store keeps it: the model version it was left at, the
/// optimizer it belongs to, and its moments (`fedagg_optim::ServerState::to_bytes`).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// The model version this state produced.
    pub version: u64,
    /// The optimizer's name (`fedavg`, `fedavgm`, `fedadam`, `fedyogi`).
    pub optimizer: String,
    /// Its moments.
    pub state: Vec<u8>,
}

impl OptimizerState {
    /// The stored form: the version (u64 little-endian), the name's length (one byte), the name,
    /// then the moments.
    pub fn to_bytes(&self) -> Vec<u8> {
        let name = self.optimizer.as_bytes();
        let mut out = Vec::with_capacity(9 + name.len() + self.state.len());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&self.state);
        out
    }

    /// Read the stored form back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = || RoundError::Internal("a stored optimizer state is malformed".into());
        let (version, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
        let (&n, rest) = rest.split_first().ok_or_else(bad)?;
        let name = rest.get(..usize::from(n)).ok_or_else(bad)?;
        Ok(OptimizerState {
            version: u64::from_le_bytes(*version),
            optimizer: String::from_utf8(name.to_vec()).map_err(|_| bad())?,
            state: rest[usize::from(n)..].to_vec(),
        })
    }
}

/// The optimizer a round applies: the one it opened with, else FedAvg at the spec's
/// `server_lr` (every federation before server optimizers existed).
pub fn optimizer_of(spec: &FederationSpec, params: &RoundParams) -> ServerOptimizer {
    params
        .server_optimizer
        .unwrap_or(ServerOptimizer::Fedavg { lr: spec.server_lr })
}

/// The new model and the optimizer's new state: `update` applied to `base` (model version
/// `base_version`) by `opt`, from `stored` when it is the state this optimizer left at
/// `base_version`, else from a fresh state (the optimizer was just chosen or changed).
pub fn step(
    opt: ServerOptimizer,
    mut base: Vec<f32>,
    update: &[f32],
    base_version: u64,
    stored: Option<OptimizerState>,
) -> Result<(Vec<f32>, OptimizerState)> {
    let opt = opt.to_optim();
    let prior = stored.filter(|s| s.version == base_version && s.optimizer == opt.name());
    let mut state = ServerState::from_bytes(opt, base.len(), prior.as_ref().map(|s| &s.state[..]))
        .map_err(RoundError::Internal)?;
    state.apply(&mut base, update);
    Ok((
        base,
        OptimizerState {
            version: base_version + 1,
            optimizer: opt.name().into(),
            state: state.to_bytes(),
        },
    ))
}

/// SCAFFOLD's control variate after a round: the stored one (zero when none is) moved by the
/// round's sum of control deltas over the population its cohort was drawn from; `None` without
/// SCAFFOLD.
pub(crate) fn scaffold_controls(
    spec: &FederationSpec,
    params: &RoundParams,
    control_sum: Option<&[f64]>,
    stored: Option<Vec<f32>>,
) -> Result<Option<Vec<f32>>> {
    let Some(sum) = control_sum else {
        return Ok(None);
    };
    let mut c = stored.unwrap_or_else(|| vec![0.0; spec.vector_len]);
    if c.len() != spec.vector_len || sum.len() != c.len() {
        return Err(RoundError::Internal(format!(
            "control variate of {} values, control sum of {}, federation of {}",
            c.len(),
            sum.len(),
            spec.vector_len
        )));
    }
    let population = params
        .population
        .map_or(params.cohort.len(), |p| p as usize);
    fedagg_optim::scaffold_step(&mut c, sum, population);
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ADAM: ServerOptimizer = ServerOptimizer::Fedadam {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
    };

    #[test]
    fn a_step_continues_only_the_state_this_optimizer_left_at_the_base_version() {
        let (m1, s1) = step(ADAM, vec![0.0; 2], &[1.0, -1.0], 0, None).unwrap();
        assert_eq!(s1.version, 1);
        assert_eq!(OptimizerState::from_bytes(&s1.to_bytes()).unwrap(), s1);
        // The second step continues the first's moments: as one optimizer doing both steps.
        let (m2, _) = step(ADAM, m1.clone(), &[0.5, 0.5], 1, Some(s1.clone())).unwrap();
        let mut direct = ServerState::new(ADAM.to_optim(), 2);
        let mut w = vec![0.0f32; 2];
        direct.apply(&mut w, &[1.0, -1.0]);
        direct.apply(&mut w, &[0.5, 0.5]);
        assert_eq!(m2, w);
        // A state left at another version, or by another optimizer, is not continued.
        let (fresh, _) = step(ADAM, m1.clone(), &[0.5, 0.5], 1, None).unwrap();
        let (stale, _) = step(ADAM, m1.clone(), &[0.5, 0.5], 2, Some(s1.clone())).unwrap();
        assert_eq!(stale, fresh);
        assert_ne!(fresh, m2);
        let momentum = ServerOptimizer::Fedavgm {
            lr: 1.0,
            momentum: 0.9,
        };
        assert!(step(momentum, m1, &[0.5, 0.5], 1, Some(s1)).is_ok());
        assert!(OptimizerState::from_bytes(&[1, 2, 3]).is_err());
    }
}
