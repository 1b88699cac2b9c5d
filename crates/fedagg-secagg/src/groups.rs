//! Scale-out (`docs/scale-out.md`): one cohort, larger than one server should aggregate alone,
//! split into groups, each a SecAgg round of its own (its own session, graph and threshold, sized
//! for the group), owned by one of several replicas that share one database. The group sums are
//! added in `Z_2^k`, which gives the cohort's sum exactly: every group uses the cohort's modulus,
//! whose headroom the quantization sized for the whole cohort.
//!
//! What a group sum reveals: the sum of that group's inputs, to the replica that owns it (and to
//! whoever sees the group sums). So each group must be a cohort SecAgg would accept on its own:
//! at least the federation's `min_clients` survivors, and large enough that its derived threshold
//! meets the threat model ([`split`] refuses smaller groups).
//!
//! [`run`] is the in-memory simulation of this design: every group's round runs through
//! [`crate::sim::run_round`], groups are dealt to replicas round-robin, and each replica's
//! server time is the sum over its groups, so the per-replica work is measured as if each
//! replica had a machine of its own.

use std::sync::Arc;
use std::time::Duration;

use fedagg_quant::Modulus;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::graph::{GraphParams, ThreatModel};
use crate::{Error, SessionConfig};

/// One group: its session and its members (indices into the cohort's inputs).
pub struct Group {
    /// The group's SecAgg session (graph and threshold derived for its size).
    pub cfg: Arc<SessionConfig>,
    /// The cohort's clients in this group, in order.
    pub members: Vec<usize>,
}

/// Split a cohort of `n` clients into `groups` contiguous groups of sizes differing by at most
/// one, each with a fresh session of `m` values in `modulus` whose graph and threshold are
/// derived for the group's size under `threat`. Refused when a group would be smaller than
/// `min_group` or no graph meets the threat model for it.
pub fn split<R: RngCore + CryptoRng>(
    n: u32,
    groups: u32,
    min_group: u32,
    m: usize,
    modulus: Modulus,
    threat: &ThreatModel,
    rng: &mut R,
) -> Result<Vec<Group>, Error> {
    if groups == 0 || n / groups < min_group.max(2) {
        return Err(Error::InvalidParameters(format!(
            "{n} clients in {groups} groups: fewer than {} in a group",
            min_group.max(2)
        )));
    }
    let mut out = Vec::with_capacity(groups as usize);
    let mut start = 0usize;
    for g in 0..groups {
        let size = n / groups + u32::from(g < n % groups);
        let params = GraphParams::derive(size, threat)?;
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let graph = params.graph(size, &seed)?;
        let mut session = [0u8; 32];
        rng.fill_bytes(&mut session);
        let cfg = SessionConfig::new(session, graph, params.threshold, modulus, m, None)?;
        out.push(Group {
            cfg: Arc::new(cfg),
            members: (start..start + size as usize).collect(),
        });
        start += size as usize;
    }
    Ok(out)
}

/// The cohort's sum from its groups, and the work each replica did.
#[derive(Debug)]
pub struct Combined {
    /// The sum of every included input, in `Z_2^k`.
    pub sum: Vec<u64>,
    /// Inputs in the sum.
    pub included: usize,
    /// Per replica: its server's time over the groups it owns.
    pub server: Vec<Duration>,
    /// Per replica: its groups' clients' time together (each client runs on its own device).
    pub clients: Vec<Duration>,
}

/// Run every group's round, group `g` owned by replica `g % replicas`, and add the group sums;
/// `clock` times the phases, as in [`crate::sim::run_round`]. A group that fails fails the whole
/// (the caller retries it, or the round).
pub fn run<R: RngCore + CryptoRng>(
    groups: &[Group],
    inputs: &[Vec<u64>],
    replicas: usize,
    clock: crate::sim::Clock<'_>,
    rng: &mut R,
) -> Result<Combined, Error> {
    let replicas = replicas.max(1);
    let first = groups
        .first()
        .ok_or_else(|| Error::InvalidParameters("no groups".into()))?;
    let modulus = first.cfg.modulus();
    let mut combined = Combined {
        sum: vec![0; first.cfg.vector_len()],
        included: 0,
        server: vec![Duration::ZERO; replicas],
        clients: vec![Duration::ZERO; replicas],
    };
    for (g, group) in groups.iter().enumerate() {
        let members: Vec<Vec<u64>> = group.members.iter().map(|&i| inputs[i].clone()).collect();
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut group_rng = ChaCha20Rng::from_seed(seed);
        let out = crate::sim::run_round(
            Arc::clone(&group.cfg),
            &members,
            &Default::default(),
            None,
            None,
            clock,
            &mut group_rng,
        );
        let agg = out.result?;
        if agg.sum.len() != combined.sum.len() || group.cfg.modulus() != modulus {
            return Err(Error::InvalidParameters(
                "groups of different layouts".into(),
            ));
        }
        modulus.add_assign(&mut combined.sum, &agg.sum);
        combined.included += agg.included.len();
        let r = g % replicas;
        combined.server[r] += out.timings.server.values().sum::<Duration>();
        combined.clients[r] += out.timings.clients.values().sum::<Duration>();
    }
    Ok(combined)
}
