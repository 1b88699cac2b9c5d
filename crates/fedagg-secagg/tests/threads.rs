//! The server's unmasking and a client's masking on several threads give the same vectors, bit
//! for bit, as on one.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use fedagg_quant::Modulus;
use fedagg_secagg::crypto::{
    agreement_threads, apply_masks, apply_masks_on, set_threads, threads_for, MaskStream,
};
use fedagg_secagg::sim::{run_round, Direction, DropPoint};
use fedagg_secagg::{ClientId, Graph, Phase, SessionConfig};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn streams(keys: &[[u8; 32]], subtract: &[bool]) -> Vec<MaskStream> {
    keys.iter()
        .zip(subtract)
        .map(|(k, s)| MaskStream::from_key(k, *s))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_number_of_threads_gives_the_one_thread_sum(
        keys in prop::collection::vec(any::<[u8; 32]>(), 0..12),
        subtract in prop::collection::vec(any::<bool>(), 12),
        start in prop::collection::vec(any::<u64>(), 1..5000),
        bits in prop::sample::select(vec![8u32, 17, 32, 45, 64]),
        threads in 1usize..5,
    ) {
        let modulus = Modulus::new(bits).unwrap();
        let start: Vec<u64> = start.iter().map(|x| x & modulus.mask()).collect();
        let mut one = start.clone();
        let mut one_streams = streams(&keys, &subtract);
        apply_masks(&mut one, &mut one_streams, modulus);
        let mut many = start.clone();
        let mut many_streams = streams(&keys, &subtract);
        apply_masks_on(&mut many, &mut many_streams, modulus, threads);
        prop_assert_eq!(&one, &many);
        // The streams end where the one-thread pass leaves them: a second vector gets the same
        // (fresh) masks from both.
        apply_masks(&mut one, &mut one_streams, modulus);
        apply_masks(&mut many, &mut many_streams, modulus);
        prop_assert_eq!(one, many);
    }
}

/// Every message the clients send in a round, in the order sent, and the aggregate.
type RoundBytes = (Vec<(Phase, ClientId, Vec<u8>)>, Vec<u64>);

/// One round of `n` clients on a complete graph, from a fixed seed, with clients 2 and 5 dropping
/// after sharing their keys, on `threads` threads.
fn round_on(threads: usize, n: u32, m: usize, modulus: Modulus) -> RoundBytes {
    set_threads(threads);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let cfg = SessionConfig::new([3; 32], Graph::complete(n).unwrap(), 4, modulus, m, None);
    let cfg = Arc::new(cfg.unwrap());
    let inputs: Vec<Vec<u64>> = (0..u64::from(n))
        .map(|i| (0..m as u64).map(|j| i * j).collect())
        .collect();
    let mut sent = Vec::new();
    let mut hook = |phase: Phase, id: ClientId, dir: Direction, msg: &mut Vec<u8>| {
        if dir == Direction::ToServer {
            sent.push((phase, id, msg.clone()));
        }
    };
    let drops: BTreeMap<ClientId, DropPoint> = [2, 5]
        .into_iter()
        .map(|i| (ClientId(i), DropPoint::AfterShareKeys))
        .collect();
    let out = run_round(
        cfg,
        &inputs,
        &drops,
        None,
        Some(&mut hook),
        &Instant::now,
        &mut rng,
    );
    let agg = out.result.unwrap();
    assert_eq!(agg.dropped_after_sharing, [ClientId(2), ClientId(5)]);
    (sent, agg.sum)
}

/// Whole rounds from the same seed on one thread and on three: every message each client sends
/// (its sealed shares, its masked input), and the aggregate (with its reconstructions and the
/// dropped clients' pairwise masks), are the same bytes. (The only test in this binary that sets
/// the process-wide count.)
/// - 8 clients with vectors long enough that masking and unmasking do start three threads
///   (small ones stay on one: `threads_for`);
/// - 24 clients with short vectors, whose 23 agreements a round each client splits over two
///   threads (`agreement_threads`).
#[test]
fn a_round_masks_and_unmasks_the_same_on_any_number_of_threads() {
    const M: usize = 400_000;
    let modulus = Modulus::new(32).unwrap();
    // A client masks with its 7 neighbours' streams and its own; the server unmasks with the 6
    // survivors' self masks and the 2 dropped clients' 6 pairwise masks each.
    assert_eq!(threads_for(M, 8, modulus, 3), 3);
    assert_eq!(threads_for(M, 6 + 2 * 6, modulus, 3), 3);
    assert_eq!(agreement_threads(23, 3), 2);
    let one = round_on(1, 8, M, modulus);
    let three = round_on(3, 8, M, modulus);
    let many_one = round_on(1, 24, 1000, modulus);
    let many_three = round_on(3, 24, 1000, modulus);
    set_threads(1);
    let masked = |r: &RoundBytes| {
        r.0.iter()
            .filter(|(p, _, _)| *p == Phase::MaskedInputCollection)
            .count()
    };
    assert_eq!(masked(&one), 6);
    assert_eq!(masked(&many_one), 22);
    let mut want = vec![0u64; M];
    for i in [0u64, 1, 3, 4, 6, 7] {
        for (j, w) in want.iter_mut().enumerate() {
            *w = (*w + i * j as u64) & 0xffff_ffff;
        }
    }
    assert_eq!(one.1, want);
    assert_eq!(one, three);
    assert_eq!(many_one, many_three);
}
