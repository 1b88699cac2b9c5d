//! An in-memory round: every client and the server machine, driven against each other with no IO.
//! Tests use it with dropouts and a hook that can alter, drop or replay messages; the CLI's demo
//! and the benchmarks use it to time the protocol.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock, injected: the crate itself never reads time.
pub type Clock<'a> = &'a dyn Fn() -> Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::client::{self, ExpectKeyList, ExpectShares, ExpectUnmask};
use crate::server::{AfterMasking, Aggregate, CollectingKeys};
use crate::{ClientId, Error, Phase, SessionConfig, SigningKey};

/// The last message a client sends before it vanishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropPoint {
    /// Never sends AdvertiseKeys.
    BeforeAdvertise,
    /// Sends AdvertiseKeys, then nothing.
    AfterAdvertise,
    /// Sends its shares, then nothing (its pairwise masks must be removed).
    AfterShareKeys,
    /// Sends its masked input, then nothing (it is counted; others unmask it).
    AfterMaskedInput,
}

/// Direction of a message seen by the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// What the hook sees and may change: phase, client, direction, and the bytes (mutable).
pub type Hook<'a> = dyn FnMut(Phase, ClientId, Direction, &mut Vec<u8>) + 'a;

/// Wall time spent per phase, by all clients together and by the server.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Sum over clients, per phase.
    pub clients: BTreeMap<&'static str, Duration>,
    /// Server, per phase (receives plus `finish`).
    pub server: BTreeMap<&'static str, Duration>,
}

fn add(map: &mut BTreeMap<&'static str, Duration>, k: &'static str, d: Duration) {
    *map.entry(k).or_default() += d;
}

/// A client's refusal, recorded rather than aborting the simulation.
pub type ClientErrors = Vec<(ClientId, Phase, Error)>;

/// Result of a simulated round.
pub struct Outcome {
    /// The aggregate, or the server's reason for aborting.
    pub result: Result<Aggregate, Error>,
    /// Errors clients raised (they then act as dropped).
    pub client_errors: ClientErrors,
    /// Timings.
    pub timings: Timings,
}

/// Run one round. `inputs[i]` is client `i`'s input; `drops` says who vanishes when;
/// `identities` are the clients' signing keys in malicious-server mode; `hook`, if given, sees
/// every message in flight; `clock` returns the current monotonic time and times the phases. Server errors on
/// receipt are returned in `client_errors` too (with the sender's id), because that is what the
/// sender would get back.
pub fn run_round<R: RngCore + CryptoRng>(
    cfg: Arc<SessionConfig>,
    inputs: &[Vec<u64>],
    drops: &BTreeMap<ClientId, DropPoint>,
    identities: Option<Vec<SigningKey>>,
    mut hook: Option<&mut Hook<'_>>,
    clock: Clock<'_>,
    rng: &mut R,
) -> Outcome {
    let mut timings = Timings::default();
    let mut errors: ClientErrors = Vec::new();
    let n = cfg.graph().n();
    let mut ids: Vec<Option<SigningKey>> = match identities {
        Some(keys) => keys.into_iter().map(Some).collect(),
        None => (0..n).map(|_| None).collect(),
    };
    let mut rngs: Vec<ChaCha20Rng> = (0..n)
        .map(|_| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            ChaCha20Rng::from_seed(seed)
        })
        .collect();
    let gone = |c: ClientId, p: DropPoint| drops.get(&c).is_some_and(|d| *d <= p);
    let mut pass = |phase: Phase, c: ClientId, dir: Direction, mut m: Vec<u8>| {
        if let Some(h) = hook.as_mut() {
            h(phase, c, dir, &mut m);
        }
        m
    };
    macro_rules! bail {
        ($e:expr) => {
            return Outcome {
                result: Err($e),
                client_errors: errors,
                timings,
            }
        };
    }

    // Round 0
    let mut server = CollectingKeys::new(Arc::clone(&cfg));
    let mut waiting: BTreeMap<ClientId, ExpectKeyList> = BTreeMap::new();
    for i in 0..n {
        let c = ClientId(i);
        if gone(c, DropPoint::BeforeAdvertise) {
            continue;
        }
        let t0 = clock();
        let identity = ids.get_mut(i as usize).and_then(Option::take);
        let Some(rng_c) = rngs.get_mut(i as usize) else {
            continue;
        };
        let started = client::start(Arc::clone(&cfg), c, identity, rng_c);
        add(&mut timings.clients, "0-advertise", clock() - t0);
        match started {
            Ok((state, msg)) => {
                let msg = pass(Phase::AdvertiseKeys, c, Direction::ToServer, msg);
                let t0 = clock();
                let r = server.receive(c, &msg);
                add(&mut timings.server, "0-advertise", clock() - t0);
                match r {
                    Ok(()) => {
                        waiting.insert(c, state);
                    }
                    Err(e) => errors.push((c, Phase::AdvertiseKeys, e)),
                }
            }
            Err(e) => errors.push((c, Phase::AdvertiseKeys, e)),
        }
    }
    let t0 = clock();
    let finished = server.finish();
    add(&mut timings.server, "0-advertise", clock() - t0);
    let (mut server, out) = match finished {
        Ok(x) => x,
        Err(e) => bail!(e),
    };

    // Round 1
    let mut sharing: BTreeMap<ClientId, ExpectShares> = BTreeMap::new();
    for (c, msg) in out {
        let Some(state) = waiting.remove(&c) else {
            continue;
        };
        if gone(c, DropPoint::AfterAdvertise) {
            continue;
        }
        let msg = pass(Phase::ShareKeys, c, Direction::ToClient, msg);
        let t0 = clock();
        let Some(rng_c) = rngs.get_mut(c.0 as usize) else {
            continue;
        };
        let r = state.share_keys(&msg, rng_c);
        add(&mut timings.clients, "1-share-keys", clock() - t0);
        match r {
            Ok((state, reply)) => {
                let reply = pass(Phase::ShareKeys, c, Direction::ToServer, reply);
                let t0 = clock();
                let r = server.receive(c, &reply);
                add(&mut timings.server, "1-share-keys", clock() - t0);
                match r {
                    Ok(()) => {
                        sharing.insert(c, state);
                    }
                    Err(e) => errors.push((c, Phase::ShareKeys, e)),
                }
            }
            Err(e) => errors.push((c, Phase::ShareKeys, e)),
        }
    }
    let t0 = clock();
    let finished = server.finish();
    add(&mut timings.server, "1-share-keys", clock() - t0);
    let (mut server, out) = match finished {
        Ok(x) => x,
        Err(e) => bail!(e),
    };

    // Round 2
    let mut unmasking: BTreeMap<ClientId, ExpectUnmask> = BTreeMap::new();
    for (c, msg) in out {
        let Some(state) = sharing.remove(&c) else {
            continue;
        };
        if gone(c, DropPoint::AfterShareKeys) {
            continue;
        }
        let msg = pass(Phase::MaskedInputCollection, c, Direction::ToClient, msg);
        let input = inputs.get(c.0 as usize).map(Vec::as_slice).unwrap_or(&[]);
        let t0 = clock();
        let r = state.mask(&msg, input);
        add(&mut timings.clients, "2-masked-input", clock() - t0);
        match r {
            Ok((state, reply)) => {
                let reply = pass(Phase::MaskedInputCollection, c, Direction::ToServer, reply);
                let t0 = clock();
                let r = server.receive(c, &reply);
                add(&mut timings.server, "2-masked-input", clock() - t0);
                match r {
                    Ok(()) => {
                        unmasking.insert(c, state);
                    }
                    Err(e) => errors.push((c, Phase::MaskedInputCollection, e)),
                }
            }
            Err(e) => errors.push((c, Phase::MaskedInputCollection, e)),
        }
    }
    let t0 = clock();
    let finished = server.finish();
    add(&mut timings.server, "2-masked-input", clock() - t0);
    let after = match finished {
        Ok(x) => x,
        Err(e) => bail!(e),
    };

    // Round 3 (optional)
    let (mut server, out) = match after {
        AfterMasking::Unmasking(s, out) => (s, out),
        AfterMasking::ConsistencyCheck(mut s, out) => {
            for (c, msg) in out {
                let Some(state) = unmasking.get_mut(&c) else {
                    continue;
                };
                if gone(c, DropPoint::AfterMaskedInput) {
                    continue;
                }
                let msg = pass(Phase::ConsistencyCheck, c, Direction::ToClient, msg);
                let t0 = clock();
                let r = state.sign_consistency(&msg);
                add(&mut timings.clients, "3-consistency", clock() - t0);
                match r {
                    Ok(reply) => {
                        let reply = pass(Phase::ConsistencyCheck, c, Direction::ToServer, reply);
                        let t0 = clock();
                        let r = s.receive(c, &reply);
                        add(&mut timings.server, "3-consistency", clock() - t0);
                        if let Err(e) = r {
                            errors.push((c, Phase::ConsistencyCheck, e));
                        }
                    }
                    Err(e) => errors.push((c, Phase::ConsistencyCheck, e)),
                }
            }
            let t0 = clock();
            let finished = s.finish();
            add(&mut timings.server, "3-consistency", clock() - t0);
            match finished {
                Ok(x) => x,
                Err(e) => bail!(e),
            }
        }
    };

    // Round 4
    for (c, msg) in out {
        let Some(state) = unmasking.remove(&c) else {
            continue;
        };
        if gone(c, DropPoint::AfterMaskedInput) {
            continue;
        }
        let msg = pass(Phase::Unmasking, c, Direction::ToClient, msg);
        let t0 = clock();
        let r = state.unmask(&msg);
        add(&mut timings.clients, "4-unmask", clock() - t0);
        match r {
            Ok(reply) => {
                let reply = pass(Phase::Unmasking, c, Direction::ToServer, reply);
                let t0 = clock();
                let r = server.receive(c, &reply);
                add(&mut timings.server, "4-unmask", clock() - t0);
                if let Err(e) = r {
                    errors.push((c, Phase::Unmasking, e));
                }
            }
            Err(e) => errors.push((c, Phase::Unmasking, e)),
        }
    }
    let t0 = clock();
    let result = server.finish();
    add(&mut timings.server, "4-unmask", clock() - t0);
    Outcome {
        result,
        client_errors: errors,
        timings,
    }
}
