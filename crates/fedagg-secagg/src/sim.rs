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

/// The plumbing every phase shares: the hook, the clock, and the bookkeeping of times and errors.
struct Driver<'r, 'h> {
    hook: Option<&'r mut Hook<'h>>,
    clock: Clock<'r>,
    timings: Timings,
    errors: ClientErrors,
}

impl Driver<'_, '_> {
    fn pass(&mut self, phase: Phase, c: ClientId, dir: Direction, mut m: Vec<u8>) -> Vec<u8> {
        if let Some(h) = self.hook.as_mut() {
            h(phase, c, dir, &mut m);
        }
        m
    }

    /// One client's turn: it handles the server's message (if any) and its reply goes to the
    /// server. Returns the client's next state if both sides accepted.
    fn turn<N>(
        &mut self,
        phase: Phase,
        label: &'static str,
        c: ClientId,
        incoming: Option<Vec<u8>>,
        client: impl FnOnce(&[u8]) -> Result<(N, Vec<u8>), Error>,
        server: impl FnOnce(&[u8]) -> Result<(), Error>,
    ) -> Option<N> {
        let msg = incoming.map(|m| self.pass(phase, c, Direction::ToClient, m));
        let t0 = (self.clock)();
        let r = client(msg.as_deref().unwrap_or(&[]));
        add(&mut self.timings.clients, label, (self.clock)() - t0);
        let (next, reply) = match r {
            Ok(x) => x,
            Err(e) => {
                self.errors.push((c, phase, e));
                return None;
            }
        };
        let reply = self.pass(phase, c, Direction::ToServer, reply);
        let t0 = (self.clock)();
        let r = server(&reply);
        add(&mut self.timings.server, label, (self.clock)() - t0);
        match r {
            Ok(()) => Some(next),
            Err(e) => {
                self.errors.push((c, phase, e));
                None
            }
        }
    }

    /// The server closes a phase.
    fn close<S>(
        &mut self,
        label: &'static str,
        f: impl FnOnce() -> Result<S, Error>,
    ) -> Result<S, Error> {
        let t0 = (self.clock)();
        let r = f();
        add(&mut self.timings.server, label, (self.clock)() - t0);
        r
    }
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
    hook: Option<&mut Hook<'_>>,
    clock: Clock<'_>,
    rng: &mut R,
) -> Outcome {
    let mut d = Driver {
        hook,
        clock,
        timings: Timings::default(),
        errors: Vec::new(),
    };
    let result = drive(&cfg, inputs, drops, identities, &mut d, rng);
    Outcome {
        result,
        client_errors: d.errors,
        timings: d.timings,
    }
}

fn drive<R: RngCore + CryptoRng>(
    cfg: &Arc<SessionConfig>,
    inputs: &[Vec<u64>],
    drops: &BTreeMap<ClientId, DropPoint>,
    identities: Option<Vec<SigningKey>>,
    d: &mut Driver<'_, '_>,
    rng: &mut R,
) -> Result<Aggregate, Error> {
    let n = cfg.graph().n();
    let mut ids: Vec<Option<SigningKey>> = match identities {
        Some(keys) => keys.into_iter().map(Some).collect(),
        None => (0..n).map(|_| None).collect(),
    };
    let mut rngs: BTreeMap<ClientId, ChaCha20Rng> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            (ClientId(i), ChaCha20Rng::from_seed(seed))
        })
        .collect();
    let gone = |c: ClientId, p: DropPoint| drops.get(&c).is_some_and(|x| *x <= p);

    // Round 0
    let mut server = CollectingKeys::new(Arc::clone(cfg));
    let mut waiting: BTreeMap<ClientId, ExpectKeyList> = BTreeMap::new();
    for (&c, rng_c) in rngs.iter_mut() {
        if gone(c, DropPoint::BeforeAdvertise) {
            continue;
        }
        let identity = ids.get_mut(c.0 as usize).and_then(Option::take);
        let label = "0-advertise";
        let next = d.turn(
            Phase::AdvertiseKeys,
            label,
            c,
            None,
            |_| client::start(Arc::clone(cfg), c, identity, rng_c),
            |m| server.receive(c, m),
        );
        waiting.extend(next.map(|s| (c, s)));
    }
    let (mut server, out) = d.close("0-advertise", || server.finish())?;

    // Round 1
    let mut sharing: BTreeMap<ClientId, ExpectShares> = BTreeMap::new();
    for (c, msg) in out {
        let (Some(state), Some(rng_c)) = (waiting.remove(&c), rngs.get_mut(&c)) else {
            continue;
        };
        if gone(c, DropPoint::AfterAdvertise) {
            continue;
        }
        let next = d.turn(
            Phase::ShareKeys,
            "1-share-keys",
            c,
            Some(msg),
            |m| state.share_keys(m, rng_c),
            |m| server.receive(c, m),
        );
        sharing.extend(next.map(|s| (c, s)));
    }
    let (mut server, out) = d.close("1-share-keys", || server.finish())?;

    // Round 2
    let mut unmasking: BTreeMap<ClientId, ExpectUnmask> = BTreeMap::new();
    for (c, msg) in out {
        let Some(state) = sharing.remove(&c) else {
            continue;
        };
        if gone(c, DropPoint::AfterShareKeys) {
            continue;
        }
        let input = inputs.get(c.0 as usize).map(Vec::as_slice).unwrap_or(&[]);
        let next = d.turn(
            Phase::MaskedInputCollection,
            "2-masked-input",
            c,
            Some(msg),
            |m| state.mask(m, input),
            |m| server.receive(c, m),
        );
        unmasking.extend(next.map(|s| (c, s)));
    }
    let after = d.close("2-masked-input", || server.finish())?;
    unmask_rounds(after, unmasking, drops, d)
}

/// Rounds 3 (malicious-server mode only) and 4 of [`drive`]: the survivors' consistency
/// signatures, then their unmasking shares, and the server's aggregate.
fn unmask_rounds(
    after: AfterMasking,
    mut unmasking: BTreeMap<ClientId, ExpectUnmask>,
    drops: &BTreeMap<ClientId, DropPoint>,
    d: &mut Driver<'_, '_>,
) -> Result<Aggregate, Error> {
    let gone = |c: ClientId| {
        drops
            .get(&c)
            .is_some_and(|x| *x <= DropPoint::AfterMaskedInput)
    };
    // Round 3 (malicious-server mode only)
    let (mut server, out) = match after {
        AfterMasking::Unmasking(s, out) => (s, out),
        AfterMasking::ConsistencyCheck(mut s, out) => {
            for (c, msg) in out {
                let Some(state) = unmasking.get_mut(&c) else {
                    continue;
                };
                if gone(c) {
                    continue;
                }
                d.turn(
                    Phase::ConsistencyCheck,
                    "3-consistency",
                    c,
                    Some(msg),
                    |m| state.sign_consistency(m).map(|r| ((), r)),
                    |m| s.receive(c, m),
                );
            }
            d.close("3-consistency", || s.finish())?
        }
    };

    // Round 4
    for (c, msg) in out {
        let Some(state) = unmasking.remove(&c) else {
            continue;
        };
        if gone(c) {
            continue;
        }
        d.turn(
            Phase::Unmasking,
            "4-unmask",
            c,
            Some(msg),
            |m| state.unmask(m).map(|r| ((), r)),
            |m| server.receive(c, m),
        );
    }
    d.close("4-unmask", || server.finish())
}
