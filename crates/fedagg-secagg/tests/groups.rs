//! Scale-out in memory: a cohort split into SecAgg groups owned by replicas sums exactly.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use fedagg_quant::Modulus;
use fedagg_secagg::groups::{run, split};
use fedagg_secagg::ThreatModel;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn the_groups_sums_add_up_to_the_cohorts_sum_exactly() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let modulus = Modulus::new(20).unwrap();
    let threat = ThreatModel::default();
    let inputs: Vec<Vec<u64>> = (0..90u64)
        .map(|i| {
            (0..50u64)
                .map(|j| (i * 7919 + j * 104_729) & modulus.mask())
                .collect()
        })
        .collect();
    let mut plain = vec![0u64; 50];
    for x in &inputs {
        modulus.add_assign(&mut plain, x);
    }
    let groups = split(90, 3, 20, 50, modulus, &threat, &mut rng).unwrap();
    assert_eq!(groups.iter().map(|g| g.members.len()).sum::<usize>(), 90);
    let combined = run(&groups, &inputs, 2, &Instant::now, &mut rng).unwrap();
    assert_eq!(combined.sum, plain);
    assert_eq!(combined.included, 90);
    assert_eq!(combined.server.len(), 2);
    assert!(combined.server.iter().all(|t| *t > Duration::ZERO));
    // Groups below the least size are refused.
    assert!(split(90, 10, 20, 50, modulus, &threat, &mut rng).is_err());
}
