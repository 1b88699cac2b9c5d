//! Whole rounds in memory: exact sums, dropouts at every phase, thresholds, refusals, tampering,
//! SecAgg+ at n = 1000, the weighted mean, and the malicious-server mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use fedagg_quant::{Modulus, QuantParams};
use fedagg_secagg::client;
use fedagg_secagg::server::{AfterMasking, CollectingKeys};
use fedagg_secagg::sim::{run_round, Direction, DropPoint, Hook, Outcome};
use fedagg_secagg::{
    ClientId, Error, Graph, GraphParams, Phase, SessionConfig, SigningKey, ThreatModel,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn session_id(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

fn complete(n: u32, t: usize, len: usize, bits: u32, r: &mut ChaCha20Rng) -> Arc<SessionConfig> {
    let cfg = SessionConfig::new(
        session_id(r),
        Graph::complete(n).unwrap(),
        t,
        Modulus::new(bits).unwrap(),
        len,
        None,
    );
    Arc::new(cfg.unwrap())
}

fn derived(n: u32, len: usize, r: &mut ChaCha20Rng) -> Arc<SessionConfig> {
    let p = GraphParams::derive(n, &ThreatModel::default()).unwrap();
    let seed = session_id(r);
    let graph = p.graph(n, &seed).unwrap();
    let cfg = SessionConfig::new(
        session_id(r),
        graph,
        p.threshold,
        Modulus::new(32).unwrap(),
        len,
        None,
    );
    Arc::new(cfg.unwrap())
}

fn random_inputs(cfg: &SessionConfig, r: &mut ChaCha20Rng) -> Vec<Vec<u64>> {
    let mask = cfg.modulus().mask();
    (0..cfg.graph().n())
        .map(|_| (0..cfg.vector_len()).map(|_| r.next_u64() & mask).collect())
        .collect()
}

fn plain_sum(cfg: &SessionConfig, inputs: &[Vec<u64>], included: &[ClientId]) -> Vec<u64> {
    let mut acc = vec![0u64; cfg.vector_len()];
    for c in included {
        cfg.modulus().add_assign(&mut acc, &inputs[c.0 as usize]);
    }
    acc
}

/// One in-memory round with the real clock.
fn round(
    cfg: &Arc<SessionConfig>,
    inputs: &[Vec<u64>],
    drops: &BTreeMap<ClientId, DropPoint>,
    keys: Option<Vec<SigningKey>>,
    hook: Option<&mut Hook<'_>>,
    r: &mut ChaCha20Rng,
) -> Outcome {
    run_round(Arc::clone(cfg), inputs, drops, keys, hook, &Instant::now, r)
}

/// A hook that applies `edit` to the one message of `phase` between `client` and the server
/// going in direction `dir`.
fn at(
    phase: Phase,
    client: u32,
    dir: Direction,
    mut edit: impl FnMut(&mut Vec<u8>),
) -> impl FnMut(Phase, ClientId, Direction, &mut Vec<u8>) {
    move |p, c, d, m| {
        if p == phase && c == ClientId(client) && d == dir {
            edit(m)
        }
    }
}

/// Run a round and check the exact sum of the counted inputs.
fn check(cfg: Arc<SessionConfig>, drops: &BTreeMap<ClientId, DropPoint>, seed: u64) -> Outcome {
    let mut r = rng(seed);
    let inputs = random_inputs(&cfg, &mut r);
    let out = round(&cfg, &inputs, drops, None, None, &mut r);
    if let Ok(agg) = &out.result {
        assert_eq!(agg.sum, plain_sum(&cfg, &inputs, &agg.included));
        let want: Vec<ClientId> = (0..cfg.graph().n())
            .map(ClientId)
            .filter(|c| {
                drops
                    .get(c)
                    .is_none_or(|d| *d >= DropPoint::AfterMaskedInput)
            })
            .collect();
        assert_eq!(agg.included, want);
    }
    out
}

fn drops(list: &[(u32, DropPoint)]) -> BTreeMap<ClientId, DropPoint> {
    list.iter().map(|&(c, d)| (ClientId(c), d)).collect()
}

// 1. Exact sums without dropouts.

#[test]
fn exact_sum_without_dropouts_small_to_large() {
    for (n, len) in [
        (3u32, 1usize),
        (3, 100_000),
        (5, 1000),
        (20, 10_000),
        (100, 100),
    ] {
        let mut r = rng(n as u64);
        let cfg = complete(n, (n as usize / 2) + 1, len, 32, &mut r);
        let out = check(cfg, &BTreeMap::new(), 1);
        assert!(out.result.is_ok(), "n {n}: {:?}", out.result.err());
        assert!(out.client_errors.is_empty());
    }
}

#[test]
fn exact_sum_without_dropouts_secagg_plus_300() {
    let mut r = rng(300);
    let cfg = derived(300, 1000, &mut r);
    assert!(!cfg.graph().is_complete());
    let out = check(cfg, &BTreeMap::new(), 2);
    assert_eq!(out.result.unwrap().included.len(), 300);
}

#[test]
fn exact_sum_for_every_modulus_width() {
    for bits in [1u32, 7, 8, 13, 32, 33, 63, 64] {
        let mut r = rng(bits as u64);
        let cfg = complete(4, 3, 257, bits, &mut r);
        assert!(
            check(cfg, &BTreeMap::new(), 3).result.is_ok(),
            "bits {bits}"
        );
    }
}

// 2. Dropouts at each phase.

#[test]
fn dropouts_at_every_phase_still_give_the_survivors_sum() {
    let mut r = rng(20);
    let cfg = complete(20, 10, 500, 32, &mut r);
    let d = drops(&[
        (0, DropPoint::BeforeAdvertise),
        (3, DropPoint::AfterAdvertise),
        (4, DropPoint::AfterAdvertise),
        (7, DropPoint::AfterShareKeys),
        (8, DropPoint::AfterShareKeys),
        (11, DropPoint::AfterMaskedInput),
        (19, DropPoint::AfterMaskedInput),
    ]);
    let out = check(cfg, &d, 4);
    let agg = out.result.unwrap();
    assert_eq!(agg.included.len(), 15);
    assert_eq!(agg.dropped_after_sharing, vec![ClientId(7), ClientId(8)]);
}

#[test]
fn early_dropouts_do_not_fail_the_round() {
    // Flower's SecAgg+ fails here: clients gone before sharing have no shares to ask for.
    let mut r = rng(21);
    let cfg = complete(10, 5, 10, 32, &mut r);
    let d = drops(&[
        (1, DropPoint::AfterAdvertise),
        (2, DropPoint::BeforeAdvertise),
    ]);
    assert_eq!(check(cfg, &d, 5).result.unwrap().included.len(), 8);
}

#[test]
fn survives_with_exactly_threshold_responders() {
    let mut r = rng(22);
    let cfg = complete(10, 6, 50, 32, &mut r);
    // 6 unmask: 4 masked-input senders vanish afterwards.
    let d = drops(
        &(0..4)
            .map(|c| (c, DropPoint::AfterMaskedInput))
            .collect::<Vec<_>>(),
    );
    assert_eq!(check(cfg, &d, 6).result.unwrap().included.len(), 10);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_dropout_sets(points in proptest::collection::vec(0u8..5, 12), seed in any::<u64>()) {
        let n = 12u32;
        let t = 6usize;
        let mut r = rng(seed);
        let cfg = complete(n, t, 33, 32, &mut r);
        let d: BTreeMap<ClientId, DropPoint> = points.iter().enumerate().filter_map(|(i, p)| {
            let dp = match p {
                0 => DropPoint::BeforeAdvertise,
                1 => DropPoint::AfterAdvertise,
                2 => DropPoint::AfterShareKeys,
                3 => DropPoint::AfterMaskedInput,
                _ => return None,
            };
            Some((ClientId(i as u32), dp))
        }).collect();
        let alive_after = |p: DropPoint| (0..n).filter(|c| d.get(&ClientId(*c)).is_none_or(|x| *x > p)).count();
        let feasible = alive_after(DropPoint::BeforeAdvertise) >= t
            && alive_after(DropPoint::AfterAdvertise) >= t
            && alive_after(DropPoint::AfterShareKeys) >= t
            && alive_after(DropPoint::AfterMaskedInput) >= t;
        let out = check(cfg, &d, seed);
        prop_assert_eq!(out.result.is_ok(), feasible, "{:?}", out.result.err());
        if let Err(e) = out.result {
            prop_assert!(matches!(e, Error::BelowThreshold { .. }), "{}", e);
        }
    }
}

// 3. Below the threshold at any phase.

#[test]
fn below_threshold_aborts_in_each_phase() {
    let cases = [
        (DropPoint::BeforeAdvertise, Phase::AdvertiseKeys),
        (DropPoint::AfterAdvertise, Phase::ShareKeys),
        (DropPoint::AfterShareKeys, Phase::MaskedInputCollection),
        (DropPoint::AfterMaskedInput, Phase::Unmasking),
    ];
    for (i, (point, phase)) in cases.into_iter().enumerate() {
        let mut r = rng(30 + i as u64);
        let cfg = complete(8, 5, 16, 32, &mut r);
        let d = drops(&(0..4).map(|c| (c, point)).collect::<Vec<_>>());
        let err = check(cfg, &d, 7).result.unwrap_err();
        match &err {
            Error::BelowThreshold {
                phase: p,
                have,
                need,
                ..
            } => {
                assert_eq!(*p, phase);
                assert_eq!(*need, 5);
                assert!(*have < 5);
            }
            other => panic!("expected below-threshold, got {other}"),
        }
        assert!(err.to_string().contains("below the threshold 5"), "{err}");
    }
}

// 4. Refused unmask requests, and late masked inputs.

/// Encode an unmask request by hand, as a malicious server would.
fn unmask_request(survivors: &[u32], dropped: &[u32]) -> Vec<u8> {
    let mut v = b"SA\x01\x08".to_vec();
    for list in [survivors, dropped] {
        v.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for c in list {
            v.extend_from_slice(&c.to_le_bytes());
        }
    }
    v
}

#[test]
fn client_refuses_bad_unmask_requests() {
    // Client 0 is attacked; 1 dropped after sharing, 2 dropped before sharing (unknown to 0).
    let all: Vec<u32> = (0..8).collect();
    let honest_survivors: Vec<u32> = all.iter().copied().filter(|c| *c != 1 && *c != 2).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("lists this client as dropped", {
            let s: Vec<u32> = honest_survivors
                .iter()
                .copied()
                .filter(|c| *c != 0)
                .collect();
            unmask_request(&s, &[0, 1])
        }),
        (
            "unknown client 2",
            unmask_request(&honest_survivors, &[1, 2]),
        ),
        ("not strictly increasing", {
            let mut s = honest_survivors.clone();
            s.insert(2, s[1]);
            unmask_request(&s, &[1])
        }),
        ("both dropped and surviving", {
            let s: Vec<u32> = all.iter().copied().filter(|c| *c != 2).collect();
            unmask_request(&s, &[1])
        }),
        (
            "does not account for every neighbour",
            unmask_request(&honest_survivors, &[]),
        ),
    ];
    for (expect, forged) in cases {
        let mut r = rng(40);
        let cfg = complete(8, 4, 8, 32, &mut r);
        let inputs = random_inputs(&cfg, &mut r);
        let d = drops(&[
            (1, DropPoint::AfterShareKeys),
            (2, DropPoint::AfterAdvertise),
        ]);
        let mut hook = at(
            Phase::Unmasking,
            0,
            Direction::ToClient,
            |m: &mut Vec<u8>| {
                *m = forged.clone();
            },
        );
        let out = round(&cfg, &inputs, &d, None, Some(&mut hook), &mut r);
        let (who, phase, err) = &out.client_errors[0];
        assert_eq!((*who, *phase), (ClientId(0), Phase::Unmasking));
        assert!(matches!(err, Error::Protocol(_)), "{err}");
        assert!(err.to_string().contains(expect), "{expect}: {err}");
        // The others still finish the round without client 0's shares.
        let agg = out.result.unwrap();
        assert_eq!(agg.sum, plain_sum(&cfg, &inputs, &agg.included));
    }
}

#[test]
fn server_refuses_masked_input_from_a_client_declared_dropped() {
    let mut r = rng(41);
    let cfg = complete(5, 3, 4, 32, &mut r);
    let mut server = CollectingKeys::new(Arc::clone(&cfg));
    let mut states = Vec::new();
    for i in 0..5 {
        let (s, m) = client::start(Arc::clone(&cfg), ClientId(i), None, &mut r).unwrap();
        server.receive(ClientId(i), &m).unwrap();
        states.push(s);
    }
    let (mut server, out) = server.finish().unwrap();
    let mut next = Vec::new();
    for ((c, m), s) in out.into_iter().zip(states) {
        let (s, reply) = s.share_keys(&m, &mut r).unwrap();
        server.receive(c, &reply).unwrap();
        next.push(s);
    }
    let (mut server, out) = server.finish().unwrap();
    let mut late = None;
    for ((c, m), s) in out.into_iter().zip(next) {
        let (_, masked) = s.mask(&m, &[1, 2, 3, 4]).unwrap();
        if c == ClientId(4) {
            late = Some(masked);
        } else {
            server.receive(c, &masked).unwrap();
            // A retry of the same input is refused as a duplicate, never added twice.
            assert_eq!(
                server.receive(c, &masked),
                Err(Error::Duplicate {
                    client: c,
                    phase: Phase::MaskedInputCollection
                })
            );
        }
    }
    let AfterMasking::Unmasking(mut server, _) = server.finish().unwrap() else {
        panic!("no consistency check in this mode")
    };
    assert_eq!(
        server.receive(ClientId(4), &late.unwrap()),
        Err(Error::DeclaredDropped(ClientId(4)))
    );
}

// 5. Tampered, replayed and misaddressed shares.

fn capture_forwarded(seed: u64) -> (Arc<SessionConfig>, Vec<u8>) {
    let mut r = rng(seed);
    let cfg = complete(6, 3, 4, 32, &mut r);
    let inputs = random_inputs(&cfg, &mut r);
    let mut captured = Vec::new();
    let mut hook = at(
        Phase::MaskedInputCollection,
        0,
        Direction::ToClient,
        |m: &mut Vec<u8>| {
            captured = m.clone();
        },
    );
    let out = round(
        &cfg,
        &inputs,
        &BTreeMap::new(),
        None,
        Some(&mut hook),
        &mut r,
    );
    drop(hook);
    assert!(out.result.is_ok());
    (cfg, captured)
}

fn run_with_forwarded_hook(seed: u64, edit: impl Fn(&mut Vec<u8>)) -> Outcome {
    let mut r = rng(seed);
    let cfg = complete(6, 3, 4, 32, &mut r);
    let inputs = random_inputs(&cfg, &mut r);
    let mut hook = at(
        Phase::MaskedInputCollection,
        0,
        Direction::ToClient,
        |m: &mut Vec<u8>| {
            edit(m);
        },
    );
    let out = round(
        &cfg,
        &inputs,
        &BTreeMap::new(),
        None,
        Some(&mut hook),
        &mut r,
    );
    if let Ok(agg) = &out.result {
        assert_eq!(agg.sum, plain_sum(&cfg, &inputs, &agg.included));
    }
    out
}

#[test]
fn tampered_share_ciphertext_is_rejected() {
    // Header 4, count 4, then (sender 4, ciphertext 80) entries: flip a ciphertext byte.
    let out = run_with_forwarded_hook(50, |m| m[8 + 4 + 10] ^= 0x40);
    assert_eq!(out.client_errors[0].0, ClientId(0));
    assert_eq!(out.client_errors[0].2, Error::Decryption);
    assert!(out.result.is_ok());
}

#[test]
fn misaddressed_share_is_rejected() {
    // Swap the ciphertexts of the first two senders: each is bound to its real sender.
    let out = run_with_forwarded_hook(51, |m| {
        let (a, b) = m.split_at_mut(92);
        a[12..92].swap_with_slice(&mut b[4..84]);
    });
    assert_eq!(out.client_errors[0].2, Error::Decryption);
}

#[test]
fn shares_replayed_from_an_earlier_session_are_rejected() {
    let (_, old) = capture_forwarded(52);
    let out = run_with_forwarded_hook(53, |m| *m = old.clone());
    let err = &out.client_errors[0].2;
    assert!(
        matches!(err, Error::Decryption | Error::Protocol(_)),
        "{err}"
    );
    assert_eq!(out.client_errors[0].0, ClientId(0));
}

#[test]
fn shares_forwarded_twice_are_rejected() {
    let out = run_with_forwarded_hook(54, |m| {
        let entry = m[8..92].to_vec();
        let count = u32::from_le_bytes(m[4..8].try_into().unwrap()) + 1;
        m[4..8].copy_from_slice(&count.to_le_bytes());
        m.splice(8..8, entry);
    });
    assert!(matches!(out.client_errors[0].2, Error::Protocol(_)));
}

#[test]
fn server_refuses_shares_not_addressed_to_the_live_neighbours() {
    let mut r = rng(55);
    let cfg = complete(5, 3, 4, 32, &mut r);
    let inputs = random_inputs(&cfg, &mut r);
    let mut hook = at(
        Phase::ShareKeys,
        2,
        Direction::ToServer,
        |m: &mut Vec<u8>| {
            // Drop the last ciphertext and fix the count: one neighbour is left out.
            m.truncate(m.len() - 84);
            let count = u32::from_le_bytes(m[36..40].try_into().unwrap()) - 1;
            m[36..40].copy_from_slice(&count.to_le_bytes());
        },
    );
    let out = round(
        &cfg,
        &inputs,
        &BTreeMap::new(),
        None,
        Some(&mut hook),
        &mut r,
    );
    assert_eq!(out.client_errors[0].0, ClientId(2));
    assert!(out.client_errors[0]
        .2
        .to_string()
        .contains("live neighbours"));
    let agg = out.result.unwrap();
    assert_eq!(agg.included.len(), 4);
    assert_eq!(agg.sum, plain_sum(&cfg, &inputs, &agg.included));
}

#[test]
fn low_order_public_key_is_refused() {
    let mut r = rng(56);
    let cfg = complete(4, 3, 4, 32, &mut r);
    let inputs = random_inputs(&cfg, &mut r);
    let mut hook = at(
        Phase::AdvertiseKeys,
        3,
        Direction::ToServer,
        |m: &mut Vec<u8>| {
            m[4..36].copy_from_slice(&[0u8; 32]); // the identity point: all-zero agreement
        },
    );
    let out = round(
        &cfg,
        &inputs,
        &BTreeMap::new(),
        None,
        Some(&mut hook),
        &mut r,
    );
    assert!(out
        .client_errors
        .iter()
        .any(|(_, _, e)| e.to_string().contains("low-order")));
}

// 6. SecAgg+ at n = 1000.

#[test]
fn secagg_plus_thousand_clients_with_dropouts() {
    let mut r = rng(1000);
    let cfg = derived(1000, 64, &mut r);
    let w = cfg.graph().neighbourhood_size();
    assert!(w * 10 < 1000, "neighbourhood {w}");
    let d: BTreeMap<ClientId, DropPoint> = (0..1000u32)
        .filter(|c| c % 40 == 7)
        .map(|c| {
            let p = match c % 3 {
                0 => DropPoint::AfterAdvertise,
                1 => DropPoint::AfterShareKeys,
                _ => DropPoint::AfterMaskedInput,
            };
            (ClientId(c), p)
        })
        .collect();
    let inputs = random_inputs(&cfg, &mut r);
    let mut max_keys = 0usize;
    let mut hook = |phase: Phase, _c: ClientId, dir: Direction, m: &mut Vec<u8>| {
        if phase == Phase::ShareKeys && dir == Direction::ToClient {
            let count = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
            max_keys = max_keys.max(count);
        }
    };
    let out = round(&cfg, &inputs, &d, None, Some(&mut hook), &mut r);
    let agg = out.result.unwrap();
    assert!(out.client_errors.is_empty());
    assert_eq!(agg.sum, plain_sum(&cfg, &inputs, &agg.included));
    assert_eq!(agg.included.len(), 1000 - 17);
    assert!(max_keys <= w, "a client talked to {max_keys} > {w}");
}

// 7. The weighted mean.

#[test]
fn weighted_mean_through_secagg_within_quantization_bound() {
    let mut r = rng(70);
    let n = 12u32;
    let m = 200usize;
    let quant = QuantParams::new(1.0, 1 << 12, 1 << 8, 1 << 10, 32).unwrap();
    let cfg = complete(n, 7, QuantParams::encoded_len(m), 32, &mut r);
    let updates: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            (0..m)
                .map(|j| (i as f32 * 0.37 + j as f32 * 0.11).sin() * 1.3)
                .collect()
        })
        .collect();
    let weights: Vec<u64> = (0..n as u64).map(|i| 1 + i * 17 % 256).collect();
    let inputs: Vec<Vec<u64>> = updates
        .iter()
        .zip(&weights)
        .map(|(u, &w)| quant.encode_weighted(u, w, &mut r).unwrap())
        .collect();
    let d = drops(&[
        (2, DropPoint::AfterShareKeys),
        (5, DropPoint::AfterMaskedInput),
    ]);
    let out = round(&cfg, &inputs, &d, None, None, &mut r);
    let agg = out.result.unwrap();
    let (mean, total) = quant.decode_weighted_mean(&agg.sum).unwrap();
    let included: BTreeSet<u32> = agg.included.iter().map(|c| c.0).collect();
    assert!(!included.contains(&2) && included.contains(&5));
    let w_sum: u64 = included.iter().map(|&i| weights[i as usize]).sum();
    assert_eq!(total, w_sum);
    for (j, got) in mean.iter().enumerate() {
        let want: f64 = included
            .iter()
            .map(|&i| {
                weights[i as usize] as f64 * f64::from(updates[i as usize][j]).clamp(-1.0, 1.0)
            })
            .sum::<f64>()
            / w_sum as f64;
        assert!(
            (got - want).abs() <= quant.step(),
            "coordinate {j}: {got} vs {want}"
        );
    }
}

// Malicious-server mode: signed keys and the consistency check.

fn identities(n: u32, r: &mut ChaCha20Rng) -> Vec<SigningKey> {
    (0..n).map(|_| SigningKey::generate(r)).collect()
}

fn signed_session(
    n: u32,
    t: usize,
    keys: &[SigningKey],
    r: &mut ChaCha20Rng,
) -> Arc<SessionConfig> {
    let vks = keys.iter().map(SigningKey::verifying_key).collect();
    Arc::new(
        SessionConfig::new(
            session_id(r),
            Graph::complete(n).unwrap(),
            t,
            Modulus::new(32).unwrap(),
            16,
            Some(vks),
        )
        .unwrap(),
    )
}

#[test]
fn consistency_check_round_with_dropouts() {
    let mut r = rng(80);
    let keys = identities(9, &mut r);
    let cfg = signed_session(9, 5, &keys, &mut r);
    let inputs = random_inputs(&cfg, &mut r);
    let d = drops(&[
        (1, DropPoint::AfterShareKeys),
        (4, DropPoint::AfterMaskedInput),
    ]);
    let out = round(&cfg, &inputs, &d, Some(keys), None, &mut r);
    let agg = out.result.unwrap();
    assert!(out.client_errors.is_empty(), "{:?}", out.client_errors);
    assert_eq!(agg.included.len(), 8);
    assert_eq!(agg.sum, plain_sum(&cfg, &inputs, &agg.included));
}

#[test]
fn a_server_showing_different_survivor_sets_is_caught() {
    let mut r = rng(81);
    let keys = identities(6, &mut r);
    let cfg = signed_session(6, 4, &keys, &mut r);
    let inputs = random_inputs(&cfg, &mut r);
    // Tell client 3 that client 5 did not survive: its signature is then on another set.
    let mut hook = at(
        Phase::ConsistencyCheck,
        3,
        Direction::ToClient,
        |m: &mut Vec<u8>| {
            m.truncate(m.len() - 4);
            m[4..8].copy_from_slice(&5u32.to_le_bytes());
        },
    );
    let out = round(
        &cfg,
        &inputs,
        &BTreeMap::new(),
        Some(keys),
        Some(&mut hook),
        &mut r,
    );
    assert!(out
        .client_errors
        .iter()
        .any(|(c, _, e)| *c == ClientId(3) && *e == Error::BadSignature(ClientId(3))));
    assert!(out.result.is_ok());
}

/// A floor on the survivor sets (distributed DP's `min_clients`): with 3 of 9 gone before masking,
/// 6 survivors are enough for the threshold of 5 but below a floor of 7, so no member signs the
/// survivor set or answers the unmask request, and the round yields nothing; at or below the
/// survivors it is unchanged.
#[test]
fn members_refuse_to_unmask_a_survivor_set_below_the_floor() {
    let d = drops(&[
        (1, DropPoint::AfterShareKeys),
        (4, DropPoint::AfterShareKeys),
        (7, DropPoint::AfterShareKeys),
    ]);
    for signed in [true, false] {
        let mut r = rng(90);
        let keys = identities(9, &mut r);
        let base = if signed {
            signed_session(9, 5, &keys, &mut r)
        } else {
            complete(9, 5, 16, 32, &mut r)
        };
        let keys = signed.then_some(keys);
        let inputs = random_inputs(&base, &mut r);
        let floored = Arc::new((*base).clone().with_min_survivors(7));
        let out = round(&floored, &inputs, &d, keys.clone(), None, &mut r);
        assert!(
            out.result.is_err(),
            "signed {signed}: a sum of 6 was unmasked"
        );
        let refusals = out
            .client_errors
            .iter()
            .filter(|(_, _, e)| {
                matches!(
                    e,
                    Error::BelowThreshold {
                        have: 6,
                        need: 7,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(refusals, 6, "signed {signed}: {:?}", out.client_errors);
        let fine = Arc::new((*base).clone().with_min_survivors(6));
        let agg = round(&fine, &inputs, &d, keys, None, &mut r)
            .result
            .unwrap();
        assert_eq!(agg.included.len(), 6);
        assert_eq!(agg.sum, plain_sum(&fine, &inputs, &agg.included));
    }
}

#[test]
fn forged_advertised_keys_are_refused_in_malicious_mode() {
    let mut r = rng(82);
    let keys = identities(5, &mut r);
    let cfg = signed_session(5, 3, &keys, &mut r);
    let inputs = random_inputs(&cfg, &mut r);
    let mut hook = at(
        Phase::AdvertiseKeys,
        1,
        Direction::ToServer,
        |m: &mut Vec<u8>| {
            m[10] ^= 1;
        },
    );
    let out = round(
        &cfg,
        &inputs,
        &BTreeMap::new(),
        Some(keys),
        Some(&mut hook),
        &mut r,
    );
    assert_eq!(out.client_errors[0].2, Error::BadSignature(ClientId(1)));
    assert_eq!(out.result.unwrap().included.len(), 4);
}

// Wire robustness: nothing a peer sends can panic a machine.

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_server(
        junk in proptest::collection::vec(any::<u8>(), 0..600),
        kind in 1u8..=9,
        keep_header in any::<bool>(),
    ) {
        let mut r = rng(90);
        let cfg = complete(5, 3, 8, 32, &mut r);
        let mut msg = junk;
        if keep_header && msg.len() >= 4 {
            msg[..4].copy_from_slice(&[b'S', b'A', 1, kind]);
        }
        let mut server = CollectingKeys::new(Arc::clone(&cfg));
        let _ = server.receive(ClientId(0), &msg);
        let _ = server.receive(ClientId(9), &msg);
        let mut states = Vec::new();
        for i in 1..5 {
            let (s, m) = client::start(Arc::clone(&cfg), ClientId(i), None, &mut r).unwrap();
            server.receive(ClientId(i), &m).unwrap();
            states.push(s);
        }
        let (mut server, out) = server.finish().unwrap();
        let _ = server.receive(ClientId(1), &msg);
        let mut next = Vec::new();
        for ((c, m), s) in out.into_iter().zip(states) {
            if c == ClientId(1) {
                prop_assert!(s.share_keys(&msg, &mut r).is_err() || msg == m);
                continue;
            }
            let (s, reply) = s.share_keys(&m, &mut r).unwrap();
            server.receive(c, &reply).unwrap();
            next.push(s);
        }
        let _ = server.receive(ClientId(2), &msg);
        let (mut server, out) = server.finish().unwrap();
        let _ = server.receive(ClientId(2), &msg);
        let mut waiting = Vec::new();
        for ((c, m), s) in out.into_iter().zip(next) {
            let (s, reply) = s.mask(&m, &[0; 8]).unwrap();
            server.receive(c, &reply).unwrap();
            waiting.push(s);
        }
        let AfterMasking::Unmasking(mut server, _) = server.finish().unwrap() else {
            panic!("no consistency check in this mode")
        };
        let _ = server.receive(ClientId(2), &msg);
        for s in waiting {
            let _ = s.unmask(&msg);
        }
    }
}
