//! Splitting a data set among clients: IID, Dirichlet label skew, quantity skew. Every sample is
//! assigned to exactly one client.
//!
//! The random choices here are for reproducible experiments, not secrets: callers seed them
//! (`ChaCha20Rng::seed_from_u64`) so that a run can be repeated.

use rand_core::RngCore;
use rand_distr::{Distribution, Gamma};

use crate::{Error, Result};

/// How to split samples among clients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Partition {
    /// Uniformly at random, equal sizes (within one).
    Iid,
    /// Label skew: for each class, the shares of the clients are drawn from Dirichlet(alpha).
    /// Smaller alpha, more skew (0.1 is extreme, 100 is close to IID).
    Dirichlet {
        /// Concentration.
        alpha: f64,
    },
    /// Quantity skew: client sizes drawn from Dirichlet(alpha), labels IID.
    Quantity {
        /// Concentration.
        alpha: f64,
    },
}

impl Partition {
    /// Split `labels.len()` samples among `clients` clients, each receiving at least `min_size`
    /// samples. Skewed draws that leave a client below `min_size` are redrawn (up to 1000 times).
    pub fn split<R: RngCore>(
        &self,
        labels: &[i64],
        classes: usize,
        clients: usize,
        min_size: usize,
        rng: &mut R,
    ) -> Result<Vec<Vec<usize>>> {
        let n = labels.len();
        if clients == 0 || clients.saturating_mul(min_size) > n {
            return Err(Error::Config(format!(
                "cannot give {clients} clients {min_size} samples each out of {n}"
            )));
        }
        // Samples of each class, gathered once for every draw below.
        let by_class: Vec<Vec<usize>> = match self {
            Partition::Dirichlet { .. } => (0..classes as i64)
                .map(|c| (0..n).filter(|&i| labels[i] == c).collect())
                .collect(),
            _ => Vec::new(),
        };
        for _ in 0..1000 {
            let parts = match *self {
                Partition::Iid => {
                    let mut idx: Vec<usize> = (0..n).collect();
                    shuffle(&mut idx, rng);
                    let mut parts = vec![Vec::new(); clients];
                    for (i, s) in idx.into_iter().enumerate() {
                        parts[i % clients].push(s);
                    }
                    parts
                }
                Partition::Dirichlet { alpha } => {
                    let mut parts = vec![Vec::new(); clients];
                    for class in &by_class {
                        let mut idx = class.clone();
                        shuffle(&mut idx, rng);
                        let shares = dirichlet(alpha, clients, rng)?;
                        deal(&idx, &shares, &mut parts);
                    }
                    parts
                }
                Partition::Quantity { alpha } => {
                    let mut idx: Vec<usize> = (0..n).collect();
                    shuffle(&mut idx, rng);
                    let shares = dirichlet(alpha, clients, rng)?;
                    let mut parts = vec![Vec::new(); clients];
                    deal(&idx, &shares, &mut parts);
                    parts
                }
            };
            if parts.iter().all(|p| p.len() >= min_size) {
                return Ok(parts);
            }
        }
        Err(Error::Config(format!(
            "{self:?}: no draw in 1000 gave every one of {clients} clients {min_size} samples"
        )))
    }
}

/// Give `idx` out in consecutive runs whose lengths follow `shares` (floors; the last client
/// takes what rounding left).
fn deal(idx: &[usize], shares: &[f64], parts: &mut [Vec<usize>]) {
    let mut start = 0;
    let k = parts.len();
    for (j, part) in parts.iter_mut().enumerate() {
        let take = if j + 1 == k {
            idx.len() - start
        } else {
            ((shares[j] * idx.len() as f64) as usize).min(idx.len() - start)
        };
        part.extend_from_slice(&idx[start..start + take]);
        start += take;
    }
}

/// A draw from the symmetric Dirichlet(alpha) distribution on `k` categories.
pub fn dirichlet<R: RngCore>(alpha: f64, k: usize, rng: &mut R) -> Result<Vec<f64>> {
    let g = Gamma::new(alpha, 1.0)
        .map_err(|e| Error::Config(format!("Dirichlet alpha {alpha}: {e}")))?;
    let mut x: Vec<f64> = (0..k).map(|_| g.sample(rng)).collect();
    let total: f64 = x.iter().sum();
    if total > 0.0 {
        x.iter_mut().for_each(|v| *v /= total);
    } else {
        // Every gamma draw underflowed (tiny alpha): all mass on one category.
        let j = (rng.next_u64() % k as u64) as usize;
        x.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = f64::from(u8::from(i == j)));
    }
    Ok(x)
}

/// Fisher-Yates shuffle, unbiased (rejection sampling for the index).
pub fn shuffle<T, R: RngCore>(v: &mut [T], rng: &mut R) {
    for i in (1..v.len()).rev() {
        let bound = (i + 1) as u64;
        let zone = u64::MAX - u64::MAX % bound;
        let j = loop {
            let r = rng.next_u64();
            if r < zone {
                break (r % bound) as usize;
            }
        };
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn exactly_once(parts: &[Vec<usize>], n: usize) -> bool {
        let mut seen = vec![0u8; n];
        parts.iter().flatten().for_each(|&i| seen[i] += 1);
        seen.iter().all(|&c| c == 1)
    }

    proptest! {
        #[test]
        fn every_sample_goes_to_exactly_one_client(
            seed in any::<u64>(),
            n in 50usize..400,
            classes in 2usize..8,
            clients in 1usize..10,
            alpha in 0.05f64..50.0,
            kind in 0u8..3,
        ) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let labels: Vec<i64> = (0..n).map(|_| (rng.next_u64() % classes as u64) as i64).collect();
            let p = match kind {
                0 => Partition::Iid,
                1 => Partition::Dirichlet { alpha },
                _ => Partition::Quantity { alpha },
            };
            let parts = match p.split(&labels, classes, clients, 1, &mut rng) {
                Ok(parts) => parts,
                // A skewed draw with a tiny alpha may never give every client a sample (most
                // shares are near zero): that is refused, never mis-split. An IID split cannot be.
                Err(Error::Config(msg)) if kind != 0 && msg.contains("no draw in 1000") => {
                    return Ok(());
                }
                Err(e) => return Err(proptest::test_runner::TestCaseError::fail(e.to_string())),
            };
            prop_assert_eq!(parts.len(), clients);
            prop_assert!(exactly_once(&parts, n));
            prop_assert!(parts.iter().all(|p| !p.is_empty()));
            if kind == 0 {
                let (lo, hi) = (n / clients, n.div_ceil(clients));
                prop_assert!(parts.iter().all(|p| p.len() == lo || p.len() == hi));
            }
        }
    }

    #[test]
    fn smaller_alpha_means_more_label_skew() {
        // Average, over clients, of the share of a client's samples in its largest class.
        let d = crate::Dataset::digits();
        let skew = |alpha: f64| {
            let mut rng = ChaCha20Rng::seed_from_u64(11);
            let parts = Partition::Dirichlet { alpha }
                .split(&d.labels, 10, 20, 1, &mut rng)
                .unwrap();
            parts
                .iter()
                .map(|p| {
                    let mut c = [0usize; 10];
                    p.iter().for_each(|&i| c[d.labels[i] as usize] += 1);
                    *c.iter().max().unwrap() as f64 / p.len() as f64
                })
                .sum::<f64>()
                / 20.0
        };
        let (extreme, mild, iid_like) = (skew(0.1), skew(0.5), skew(100.0));
        assert!(
            extreme > mild && mild > iid_like,
            "{extreme} {mild} {iid_like}"
        );
        assert!(iid_like < 0.25 && extreme > 0.6, "{extreme} {iid_like}");
    }

    #[test]
    fn quantity_skew_varies_sizes_and_impossible_requests_are_refused() {
        let labels = vec![0i64; 1000];
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let parts = Partition::Quantity { alpha: 0.5 }
            .split(&labels, 1, 10, 1, &mut rng)
            .unwrap();
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert!(
            sizes.iter().max().unwrap() > &(3 * sizes.iter().min().unwrap()),
            "{sizes:?}"
        );
        assert!(Partition::Iid.split(&labels, 1, 11, 100, &mut rng).is_err());
        assert!(Partition::Dirichlet { alpha: -1.0 }
            .split(&labels, 1, 2, 1, &mut rng)
            .is_err());
    }

    #[test]
    fn dirichlet_draws_sum_to_one() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for alpha in [0.001, 0.1, 1.0, 10.0] {
            let x = dirichlet(alpha, 7, &mut rng).unwrap();
            assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}
