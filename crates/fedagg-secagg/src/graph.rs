//! Who shares secrets and masks with whom: the complete graph (Bonawitz et al.) or a randomly
//! permuted Harary graph (SecAgg+, Bell et al.), and the derivation of its degree and threshold
//! from the threat model.
//!
//! A Harary graph `H(2h, n)` puts the clients on a ring and joins each to the `h` nearest on either
//! side. The ring order is a permutation drawn from a 256-bit seed (Fisher-Yates driven by
//! ChaCha20, with rejection sampling so every permutation is equally likely); the random labels are
//! what makes the corrupt and dropped clients land in a neighbourhood as if sampled without
//! replacement, which the parameter derivation below assumes. A client's *neighbourhood* includes
//! itself: it is the set its two secrets are shared over, so its size `w = 2h + 1` (or `n` for the
//! complete graph) is at most 255, the number of non-zero points of GF(2^8).

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{error::Error, ClientId};

/// Largest neighbourhood (self included): the number of Shamir evaluation points in GF(2^8).
pub const MAX_NEIGHBOURHOOD: usize = 255;

/// The neighbour graph of one session. Both sides build it from the same `(n, half_degree, seed)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    n: u32,
    /// `None` for the complete graph.
    half_degree: Option<u32>,
    /// position -> client, and client -> position on the ring.
    order: Vec<u32>,
    position: Vec<u32>,
}

impl Graph {
    /// The complete graph on `n` clients (`2 <= n <= 255`).
    pub fn complete(n: u32) -> Result<Self, Error> {
        if !(2..=MAX_NEIGHBOURHOOD as u32).contains(&n) {
            return Err(Error::InvalidParameters(format!(
                "complete graph needs 2..=255 clients, got {n}"
            )));
        }
        Ok(Graph {
            n,
            half_degree: None,
            order: (0..n).collect(),
            position: (0..n).collect(),
        })
    }

    /// The Harary graph `H(2h, n)` with ring order drawn from `seed`. Needs `2h + 1 < n` (else use
    /// the complete graph) and `2h + 1 <= 255`.
    pub fn harary(n: u32, half_degree: u32, seed: &[u8; 32]) -> Result<Self, Error> {
        let w = 2 * u64::from(half_degree) + 1;
        if half_degree == 0 || w >= u64::from(n) || w > MAX_NEIGHBOURHOOD as u64 {
            return Err(Error::InvalidParameters(format!(
                "harary graph needs 1 <= h, 2h + 1 < n and 2h + 1 <= 255; got n = {n}, h = {half_degree}"
            )));
        }
        let mut order: Vec<u32> = (0..n).collect();
        let mut rng = ChaCha20Rng::from_seed(*seed);
        for i in (1..order.len()).rev() {
            let j = uniform_below(&mut rng, i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut position = vec![0u32; n as usize];
        for (p, &c) in order.iter().enumerate() {
            position[c as usize] = p as u32;
        }
        Ok(Graph {
            n,
            half_degree: Some(half_degree),
            order,
            position,
        })
    }

    /// Number of clients.
    pub fn n(&self) -> u32 {
        self.n
    }

    /// Whether this is the complete graph.
    pub fn is_complete(&self) -> bool {
        self.half_degree.is_none()
    }

    /// Neighbourhood size `w`, the client itself included.
    pub fn neighbourhood_size(&self) -> usize {
        match self.half_degree {
            None => self.n as usize,
            Some(h) => 2 * h as usize + 1,
        }
    }

    /// Whether `c` is a client of this graph.
    pub fn contains(&self, c: ClientId) -> bool {
        c.0 < self.n
    }

    /// The neighbourhood of `c` (itself included), sorted by id.
    pub fn neighbourhood(&self, c: ClientId) -> Vec<ClientId> {
        let mut out: Vec<ClientId> = match self.half_degree {
            None => (0..self.n).map(ClientId).collect(),
            Some(h) => {
                let p = i64::from(self.position[c.0 as usize]);
                let n = i64::from(self.n);
                (-i64::from(h)..=i64::from(h))
                    .map(|d| ClientId(self.order[(p + d).rem_euclid(n) as usize]))
                    .collect()
            }
        };
        out.sort_unstable();
        out
    }

    /// Whether `a` and `b` are neighbours (or equal).
    pub fn are_neighbours(&self, a: ClientId, b: ClientId) -> bool {
        match self.half_degree {
            None => self.contains(a) && self.contains(b),
            Some(h) => {
                let n = i64::from(self.n);
                let d = (i64::from(self.position[a.0 as usize])
                    - i64::from(self.position[b.0 as usize]))
                .rem_euclid(n);
                d <= i64::from(h) || n - d <= i64::from(h)
            }
        }
    }

    /// The Shamir evaluation point at which `holder` holds a share of `owner`'s secrets: distinct
    /// within `owner`'s neighbourhood and known to everyone, so it never travels on the wire.
    pub fn share_point(&self, owner: ClientId, holder: ClientId) -> u8 {
        match self.half_degree {
            // n <= 255, so id + 1 fits.
            None => (holder.0 + 1) as u8,
            Some(h) => {
                let n = i64::from(self.n);
                let mut d = (i64::from(self.position[holder.0 as usize])
                    - i64::from(self.position[owner.0 as usize]))
                .rem_euclid(n);
                if d > i64::from(h) {
                    d -= n;
                }
                // d in [-h, h] -> 1..=2h+1 <= 255
                (d + i64::from(h) + 1) as u8
            }
        }
    }
}

/// Uniform integer in `[0, bound)` by rejection sampling (Lemire's multiply-shift with rejection).
fn uniform_below(rng: &mut ChaCha20Rng, bound: u64) -> u64 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(bound);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// What the round must withstand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThreatModel {
    /// Fraction of clients the adversary controls, `0 <= gamma < 1`.
    pub corrupt_fraction: f64,
    /// Fraction of clients expected to drop out, `0 <= delta < 1`.
    pub dropout_rate: f64,
    /// Whether the server only follows the protocol (`Curious`) or may lie about who dropped
    /// (`SemiMalicious`).
    pub adversary: Adversary,
    /// Statistical security: the chance that the adversary can unmask an honest client, or that
    /// honest survivors split into groups, is at most `2^-security_bits` over the whole cohort.
    pub security_bits: u32,
    /// Correctness: the chance that some client's secrets cannot be reconstructed because too few
    /// of its neighbours survive the expected dropout is at most `2^-correctness_bits`.
    pub correctness_bits: u32,
}

/// The server's adversarial power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adversary {
    /// Honest but curious server, colluding with the corrupt clients.
    Curious,
    /// The server may additionally send different clients different dropout lists.
    SemiMalicious,
}

impl Default for ThreatModel {
    /// Google's production defaults: 2^-40 security, 2^-20 failure; 5 % corrupt, 10 % dropout.
    fn default() -> Self {
        ThreatModel {
            corrupt_fraction: 0.05,
            dropout_rate: 0.10,
            adversary: Adversary::Curious,
            security_bits: 40,
            correctness_bits: 20,
        }
    }
}

/// Graph shape and threshold chosen for a cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphParams {
    /// `None`: complete graph; `Some(h)`: Harary graph of degree `2h`.
    pub half_degree: Option<u32>,
    /// Shares needed to reconstruct a client's secret.
    pub threshold: usize,
}

impl GraphParams {
    /// Derive the smallest neighbourhood and a threshold meeting `threat` for `n` clients.
    ///
    /// For an honest client `u`, the corrupt clients among its `2h` others follow a hypergeometric
    /// law `HG(n - 1, C, 2h)` with `C = ceil(gamma n)`, and the dropped ones `HG(n - 1, D, 2h)` with
    /// `D = ceil(delta n)`. With a union bound over the `n` clients we require:
    /// - security, curious server: `P[corrupt >= t] <= 2^-sigma / n` (the adversary never holds
    ///   `t` shares of an honest client's secret);
    /// - security, semi-malicious server: `P[corrupt >= 2t - w] <= 2^-sigma / n` (so the server
    ///   cannot collect `t` shares of both secrets of one client by lying to two halves);
    /// - correctness: `P[2h - dropped < t] <= 2^-eta / n`;
    /// - connectivity of the honest survivors: the ring is cut only if `h` consecutive positions
    ///   are all corrupt or dropped, which has probability at most
    ///   `n x prod_{i<h} (C + D - i)/(n - i) <= 2^-sigma`.
    ///
    /// For `n` up to 255 the complete graph is used when no neighbourhood of at most `n / 2` works; its
    /// threshold is chosen from the same conditions with the counts exact. Thresholds are at
    /// least 2.
    pub fn derive(n: u32, threat: &ThreatModel) -> Result<Self, Error> {
        let g = threat.corrupt_fraction;
        let d = threat.dropout_rate;
        if !(g.is_finite() && d.is_finite() && (0.0..1.0).contains(&g) && (0.0..1.0).contains(&d)) {
            return Err(Error::InvalidParameters(format!(
                "corrupt fraction {g} and dropout rate {d} must lie in [0, 1)"
            )));
        }
        if n < 2 {
            return Err(Error::InvalidParameters(format!("{n} clients are too few")));
        }
        let corrupt = (g * f64::from(n)).ceil() as u64;
        let dropped = (d * f64::from(n)).ceil() as u64;
        let n64 = u64::from(n);
        let ln_sec = -(f64::from(threat.security_bits) * core::f64::consts::LN_2) - (n as f64).ln();
        let ln_cor =
            -(f64::from(threat.correctness_bits) * core::f64::consts::LN_2) - (n as f64).ln();
        let max_h = ((MAX_NEIGHBOURHOOD as u64 - 1) / 2).min((n64.saturating_sub(2)) / 2);
        for h in 1..=max_h {
            let others = 2 * h;
            let w = others + 1;
            // A sparse graph only pays when it is at most half the cohort; below that the
            // complete graph is as cheap and needs no statistical argument.
            if 2 * w > n64 && n64 <= MAX_NEIGHBOURHOOD as u64 {
                break;
            }
            // smallest t with the security tail small enough
            let t_sec = (1..=w).find(|&t| {
                let bad_from = match threat.adversary {
                    Adversary::Curious => t,
                    Adversary::SemiMalicious => (2 * t).saturating_sub(w),
                };
                bad_from > 0 && ln_tail_ge(n64 - 1, corrupt, others, bad_from) <= ln_sec
            });
            let Some(t) = t_sec.map(|t| t.max(2)) else {
                continue;
            };
            // correctness: P[others - X_d < t] = P[X_d > others - t] = P[X_d >= others - t + 1]
            if t > others || ln_tail_ge(n64 - 1, dropped, others, others - t + 1) > ln_cor {
                continue;
            }
            if ln_ring_cut(n64, corrupt + dropped, h)
                > -(f64::from(threat.security_bits) * core::f64::consts::LN_2)
            {
                continue;
            }
            return Ok(GraphParams {
                half_degree: Some(h as u32),
                threshold: t as usize,
            });
        }
        if n as usize <= MAX_NEIGHBOURHOOD {
            // Complete graph: counts are exact. Survivors among the others: n - 1 - D.
            let t = match threat.adversary {
                Adversary::Curious => corrupt + 1,
                Adversary::SemiMalicious => (n64 + corrupt) / 2 + 1,
            }
            .max(2);
            if t <= n64 - 1 - dropped.min(n64 - 1) {
                return Ok(GraphParams {
                    half_degree: None,
                    threshold: t as usize,
                });
            }
        }
        Err(Error::InvalidParameters(format!(
            "no neighbourhood of at most 255 clients meets the threat model for n = {n} \
             (corrupt {g}, dropout {d}, {:?})",
            threat.adversary
        )))
    }

    /// Build the graph these parameters describe.
    pub fn graph(&self, n: u32, seed: &[u8; 32]) -> Result<Graph, Error> {
        match self.half_degree {
            None => Graph::complete(n),
            Some(h) => Graph::harary(n, h, seed),
        }
    }
}

/// ln P[X >= a] for X ~ Hypergeometric(population N, successes K, draws m).
fn ln_tail_ge(pop: u64, succ: u64, draws: u64, a: u64) -> f64 {
    let succ = succ.min(pop);
    let hi = draws.min(succ);
    if a > hi {
        return f64::NEG_INFINITY;
    }
    let lo = draws.saturating_sub(pop - succ);
    let a = a.max(lo);
    // log pmf at x = a, then the ratio recursion upward; sum with log-sum-exp.
    let ln_pmf_a = ln_choose(succ, a) + ln_choose(pop - succ, draws - a) - ln_choose(pop, draws);
    let mut terms = vec![ln_pmf_a];
    let mut cur = ln_pmf_a;
    for x in a..hi {
        let num = ((succ - x) as f64) * ((draws - x) as f64);
        let den = ((x + 1) as f64) * ((pop - succ - draws + x + 1) as f64);
        cur += (num / den).ln();
        terms.push(cur);
    }
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// ln C(a, b), exactly summed (b is small here).
fn ln_choose(a: u64, b: u64) -> f64 {
    if b > a {
        return f64::NEG_INFINITY;
    }
    let b = b.min(a - b);
    (0..b)
        .map(|i| ((a - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// ln of the union bound on `h` consecutive ring positions all being bad.
fn ln_ring_cut(n: u64, bad: u64, h: u64) -> f64 {
    if bad < h {
        return f64::NEG_INFINITY;
    }
    (n as f64).ln()
        + (0..h)
            .map(|i| ((bad - i) as f64).ln() - ((n - i) as f64).ln())
            .sum::<f64>()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hypergeometric_tail_matches_direct_sum() {
        // N = 20, K = 7, m = 5: P[X >= 3] by direct enumeration.
        let c = |a: u64, b: u64| ln_choose(a, b).exp();
        let direct: f64 = (3..=5).map(|x| c(7, x) * c(13, 5 - x)).sum::<f64>() / c(20, 5);
        assert!((ln_tail_ge(20, 7, 5, 3).exp() - direct).abs() < 1e-12);
        assert_eq!(ln_tail_ge(20, 2, 5, 3), f64::NEG_INFINITY);
        assert!((ln_tail_ge(20, 7, 5, 0).exp() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn harary_neighbourhoods_are_symmetric_and_points_distinct() {
        let g = Graph::harary(50, 3, &[1; 32]).unwrap();
        for u in 0..50 {
            let nb = g.neighbourhood(ClientId(u));
            assert_eq!(nb.len(), 7);
            assert!(nb.contains(&ClientId(u)));
            let points: HashSet<u8> = nb.iter().map(|&v| g.share_point(ClientId(u), v)).collect();
            assert_eq!(points.len(), 7);
            assert!(points.iter().all(|&p| (1..=7).contains(&p)));
            for v in 0..50 {
                let adj = g.are_neighbours(ClientId(u), ClientId(v));
                assert_eq!(adj, nb.contains(&ClientId(v)));
                assert_eq!(adj, g.are_neighbours(ClientId(v), ClientId(u)));
            }
        }
        // Different seeds give different graphs; the same seed the same graph.
        assert_eq!(g, Graph::harary(50, 3, &[1; 32]).unwrap());
        assert_ne!(g, Graph::harary(50, 3, &[2; 32]).unwrap());
    }

    #[test]
    fn graph_shapes_are_validated() {
        assert!(Graph::complete(1).is_err());
        assert!(Graph::complete(256).is_err());
        assert!(Graph::harary(10, 5, &[0; 32]).is_err());
        assert!(Graph::harary(1000, 128, &[0; 32]).is_err());
        assert!(Graph::harary(1000, 0, &[0; 32]).is_err());
    }

    #[test]
    fn derived_parameters() {
        let t = ThreatModel::default();
        // Small cohorts fall back to the complete graph.
        let p = GraphParams::derive(10, &t).unwrap();
        assert_eq!(p.half_degree, None);
        assert!(p.threshold >= 2 && p.threshold <= 8);
        // Large cohorts get a neighbourhood far below n.
        for n in [1_000u32, 10_000, 1_000_000] {
            let p = GraphParams::derive(n, &t).unwrap();
            let h = p.half_degree.unwrap();
            assert!(2 * h < 255 && (2 * h + 1) * 4 < n, "n {n}: {p:?}");
            assert!(p.threshold > 1 && p.threshold <= 2 * h as usize);
        }
        // Degree grows with n.
        let a = GraphParams::derive(1_000, &t).unwrap().half_degree.unwrap();
        let b = GraphParams::derive(1_000_000, &t)
            .unwrap()
            .half_degree
            .unwrap();
        assert!(b >= a);
        // Infeasible threat models are refused with a reason.
        let bad = ThreatModel {
            corrupt_fraction: 0.5,
            dropout_rate: 0.45,
            ..t
        };
        assert!(GraphParams::derive(100_000, &bad).is_err());
        assert!(GraphParams::derive(
            100,
            &ThreatModel {
                dropout_rate: 1.5,
                ..t
            }
        )
        .is_err());
    }
}
