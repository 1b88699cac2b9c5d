//! The server's side of a round, one type per phase. The server learns only the sum of the
//! survivors' inputs: it keeps a running sum of masked inputs (memory independent of the cohort
//! size) and removes the masks from the shares clients reveal in Unmasking.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use subtle::ConstantTimeEq;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::client::{SHARE_MASK_KEY, SHARE_SELF_SEED};
use crate::crypto::{self, MaskStream, SHARE_CIPHERTEXT_LEN};
use crate::error::{protocol, Error};
use crate::shamir;
use crate::wire::{self, Kind, Reader, Writer};
use crate::{ClientId, Phase, SessionConfig};

/// Messages to send at the start of the next phase, one per addressed client.
pub type Outbox = Vec<(ClientId, Vec<u8>)>;

#[derive(Clone, Copy)]
struct Advertised {
    c_pk: [u8; 32],
    s_pk: [u8; 32],
    sig: Option<[u8; 64]>,
}

/// Require that every owner in `owners` still has at least `t` live neighbours (itself counted
/// when alive), and that at least `t` clients are alive at all.
fn check_alive(
    cfg: &SessionConfig,
    owners: &BTreeSet<ClientId>,
    alive: &BTreeSet<ClientId>,
    phase: Phase,
) -> Result<(), Error> {
    let t = cfg.threshold();
    if alive.len() < t {
        return Err(Error::BelowThreshold {
            phase,
            have: alive.len(),
            need: t,
            what: "clients remaining".into(),
        });
    }
    let graph = cfg.graph();
    if graph.is_complete() {
        return Ok(()); // every neighbourhood is the whole alive set
    }
    for &u in owners {
        let have = graph
            .neighbourhood(u)
            .iter()
            .filter(|v| alive.contains(v))
            .count();
        if have < t {
            return Err(Error::BelowThreshold {
                phase,
                have,
                need: t,
                what: format!("live neighbours of client {u}"),
            });
        }
    }
    Ok(())
}

fn expect_member(set: &BTreeSet<ClientId>, c: ClientId, phase: Phase) -> Result<(), Error> {
    if set.contains(&c) {
        Ok(())
    } else {
        Err(Error::UnexpectedSender { client: c, phase })
    }
}

/// A validated AdvertiseKeys, ready for [`CollectingKeys::apply`].
pub struct CheckedKeys {
    from: ClientId,
    keys: Advertised,
}

/// A validated ShareKeys, ready for [`CollectingShares::apply`].
pub struct CheckedShares {
    from: ClientId,
    commitment: [u8; 32],
    entries: Vec<(ClientId, Vec<u8>)>,
}

/// A validated masked input, ready for [`CollectingMasked::apply`].
pub struct CheckedMasked {
    from: ClientId,
    y: wire::MaskedInput,
}

/// A validated consistency signature, ready for [`CollectingSignatures::apply`].
pub struct CheckedSignature {
    from: ClientId,
    sig: [u8; 64],
}

/// A validated unmasking response, ready for [`Unmasking::apply`]: (owner, survived, share
/// point, share) per share.
pub struct CheckedUnmask {
    from: ClientId,
    shares: Vec<(ClientId, bool, u8, Zeroizing<[u8; 32]>)>,
}

/// Round 0: collecting AdvertiseKeys.
pub struct CollectingKeys {
    cfg: Arc<SessionConfig>,
    keys: BTreeMap<ClientId, Advertised>,
}

impl CollectingKeys {
    /// A fresh round for `cfg`.
    pub fn new(cfg: Arc<SessionConfig>) -> Self {
        CollectingKeys {
            cfg,
            keys: BTreeMap::new(),
        }
    }

    /// The session.
    pub fn config(&self) -> &Arc<SessionConfig> {
        &self.cfg
    }

    /// Clients heard from so far.
    pub fn received(&self) -> usize {
        self.keys.len()
    }

    /// Accept one client's AdvertiseKeys.
    pub fn receive(&mut self, from: ClientId, msg: &[u8]) -> Result<(), Error> {
        let checked = self.check(from, msg)?;
        self.apply(checked);
        Ok(())
    }

    /// Validate one client's AdvertiseKeys without changing the state (a server logs it, then
    /// [`apply`](Self::apply)s it).
    pub fn check(&self, from: ClientId, msg: &[u8]) -> Result<CheckedKeys, Error> {
        let cfg = &*self.cfg;
        let phase = Phase::AdvertiseKeys;
        if !cfg.graph().contains(from) {
            return Err(Error::UnexpectedSender {
                client: from,
                phase,
            });
        }
        if self.keys.contains_key(&from) {
            return Err(Error::Duplicate {
                client: from,
                phase,
            });
        }
        let mut r = Reader::new(
            msg,
            Kind::AdvertiseKeys,
            wire::max_len(Kind::AdvertiseKeys, cfg),
            cfg,
        )?;
        let c_pk: [u8; 32] = r.array()?;
        let s_pk: [u8; 32] = r.array()?;
        let sig = match (r.u8()?, cfg.identity(from)) {
            (0, None) => None,
            (1, Some(vk)) => {
                let sig: [u8; 64] = r.array()?;
                let t = crypto::advertise_transcript(cfg.session_id(), from, &c_pk, &s_pk);
                crypto::verify(vk, &t, &sig, from)?;
                Some(sig)
            }
            (0, Some(_)) => return Err(protocol("the session requires signed keys")),
            (f, _) => return Err(crate::error::malformed(format!("bad signature flag {f}"))),
        };
        r.end()?;
        if c_pk == s_pk {
            return Err(protocol("the two advertised keys are equal"));
        }
        Ok(CheckedKeys {
            from,
            keys: Advertised { c_pk, s_pk, sig },
        })
    }

    /// Record a checked AdvertiseKeys.
    pub fn apply(&mut self, checked: CheckedKeys) {
        self.keys.insert(checked.from, checked.keys);
    }

    /// Close round 0: the responders form U1; each gets its live neighbours' keys. The state is
    /// left as it was, so a server can keep it until the closure is durable.
    pub fn finish(&self) -> Result<(CollectingShares, Outbox), Error> {
        let cfg = &*self.cfg;
        let u1: BTreeSet<ClientId> = self.keys.keys().copied().collect();
        check_alive(cfg, &u1, &u1, Phase::AdvertiseKeys)?;
        let signed = cfg.identities().is_some();
        let mut out = Vec::with_capacity(u1.len());
        for &u in &u1 {
            let nb: Vec<ClientId> = cfg
                .graph()
                .neighbourhood(u)
                .into_iter()
                .filter(|v| u1.contains(v))
                .collect();
            let mut w = Writer::new(Kind::KeyList, 4 + nb.len() * 132);
            w.u32(nb.len() as u32);
            for v in nb {
                if let Some(k) = self.keys.get(&v) {
                    w.id(v);
                    w.bytes(&k.c_pk);
                    w.bytes(&k.s_pk);
                    if let (true, Some(sig)) = (signed, k.sig) {
                        w.bytes(&sig);
                    }
                }
            }
            out.push((u, w.finish()));
        }
        Ok((
            CollectingShares {
                cfg: Arc::clone(&self.cfg),
                keys: self.keys.clone(),
                inbox: BTreeMap::new(),
                commitments: BTreeMap::new(),
            },
            out,
        ))
    }
}

/// Round 1: collecting encrypted shares, to be forwarded.
pub struct CollectingShares {
    cfg: Arc<SessionConfig>,
    keys: BTreeMap<ClientId, Advertised>,
    /// recipient -> (sender, ciphertext)
    inbox: BTreeMap<ClientId, Vec<(ClientId, Vec<u8>)>>,
    commitments: BTreeMap<ClientId, [u8; 32]>,
}

impl CollectingShares {
    /// Clients heard from so far.
    pub fn received(&self) -> usize {
        self.commitments.len()
    }

    /// Clients expected in this phase (U1).
    pub fn expected(&self) -> BTreeSet<ClientId> {
        self.keys.keys().copied().collect()
    }

    /// Accept one client's ShareKeys: one ciphertext for each live neighbour, no more, no less.
    pub fn receive(&mut self, from: ClientId, msg: &[u8]) -> Result<(), Error> {
        let checked = self.check(from, msg)?;
        self.apply(checked);
        Ok(())
    }

    /// Validate one client's ShareKeys without changing the state.
    pub fn check(&self, from: ClientId, msg: &[u8]) -> Result<CheckedShares, Error> {
        let cfg = &*self.cfg;
        let phase = Phase::ShareKeys;
        if !self.keys.contains_key(&from) {
            return Err(Error::UnexpectedSender {
                client: from,
                phase,
            });
        }
        if self.commitments.contains_key(&from) {
            return Err(Error::Duplicate {
                client: from,
                phase,
            });
        }
        let mut r = Reader::new(
            msg,
            Kind::ShareKeys,
            wire::max_len(Kind::ShareKeys, cfg),
            cfg,
        )?;
        let commitment: [u8; 32] = r.array()?;
        let count = r.count(4 + SHARE_CIPHERTEXT_LEN, cfg.graph().neighbourhood_size())?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let v = r.id()?;
            if entries.last().is_some_and(|(l, _)| *l >= v) {
                return Err(protocol(format!("shares repeat or misorder recipient {v}")));
            }
            entries.push((v, r.take(SHARE_CIPHERTEXT_LEN)?.to_vec()));
        }
        r.end()?;
        let expected: Vec<ClientId> = cfg
            .graph()
            .neighbourhood(from)
            .into_iter()
            .filter(|v| *v != from && self.keys.contains_key(v))
            .collect();
        if entries.len() != expected.len()
            || entries.iter().zip(&expected).any(|((a, _), b)| a != b)
        {
            return Err(protocol(
                "shares are not addressed to exactly the live neighbours of the sender",
            ));
        }
        Ok(CheckedShares {
            from,
            commitment,
            entries,
        })
    }

    /// Record a checked ShareKeys.
    pub fn apply(&mut self, checked: CheckedShares) {
        let from = checked.from;
        for (v, ct) in checked.entries {
            self.inbox.entry(v).or_default().push((from, ct));
        }
        self.commitments.insert(from, checked.commitment);
    }

    /// Close round 1: the senders form U2; each gets the shares addressed to it. The state is
    /// left as it was.
    pub fn finish(&self) -> Result<(CollectingMasked, Outbox), Error> {
        let cfg = &*self.cfg;
        let u2: BTreeSet<ClientId> = self.commitments.keys().copied().collect();
        check_alive(cfg, &u2, &u2, Phase::ShareKeys)?;
        let mut out = Vec::with_capacity(u2.len());
        for &u in &u2 {
            let mut items = self.inbox.get(&u).cloned().unwrap_or_default();
            items.retain(|(s, _)| u2.contains(s));
            items.sort_by_key(|(s, _)| *s);
            let mut w = Writer::new(Kind::ForwardedShares, 4 + items.len() * 84);
            w.u32(items.len() as u32);
            for (s, ct) in items {
                w.id(s);
                w.bytes(&ct);
            }
            out.push((u, w.finish()));
        }
        let s_pks = self
            .keys
            .iter()
            .filter(|(c, _)| u2.contains(c))
            .map(|(c, k)| (*c, k.s_pk))
            .collect();
        Ok((
            CollectingMasked {
                core: Core {
                    sum: vec![0; cfg.vector_len()],
                    cfg: Arc::clone(&self.cfg),
                    s_pks,
                    commitments: self.commitments.clone(),
                    u2,
                    u3: BTreeSet::new(),
                },
            },
            out,
        ))
    }
}

/// What the server keeps from round 2 on.
#[derive(Clone)]
struct Core {
    cfg: Arc<SessionConfig>,
    s_pks: BTreeMap<ClientId, [u8; 32]>,
    commitments: BTreeMap<ClientId, [u8; 32]>,
    u2: BTreeSet<ClientId>,
    u3: BTreeSet<ClientId>,
    sum: Vec<u64>,
}

impl Core {
    /// A masked input after round 2 closed: refused, naming a sender declared dropped.
    fn refuse_late(&self, from: ClientId, msg: &[u8]) -> Result<(), Error> {
        if wire::peek_kind(msg) == Ok(Kind::MaskedInput)
            && self.u2.contains(&from)
            && !self.u3.contains(&from)
        {
            return Err(Error::DeclaredDropped(from));
        }
        Ok(())
    }

    fn unmask_requests(&self, consistency: Option<&BTreeMap<ClientId, [u8; 64]>>) -> Outbox {
        let graph = self.cfg.graph();
        let u3: Vec<ClientId> = self.u3.iter().copied().collect();
        let recipients: Vec<ClientId> = match consistency {
            Some(sigs) => sigs.keys().copied().collect(),
            None => u3.clone(),
        };
        recipients
            .into_iter()
            .map(|u| {
                let nb = graph.neighbourhood(u);
                let survivors: Vec<ClientId> =
                    nb.iter().copied().filter(|v| self.u3.contains(v)).collect();
                let dropped: Vec<ClientId> = nb
                    .iter()
                    .copied()
                    .filter(|v| self.u2.contains(v) && !self.u3.contains(v))
                    .collect();
                let mut w = Writer::new(Kind::UnmaskRequest, 8 + 4 * nb.len());
                w.ids(&survivors);
                w.ids(&dropped);
                if let Some(sigs) = consistency {
                    w.ids(&u3);
                    w.u32(sigs.len() as u32);
                    for (c, s) in sigs {
                        w.id(*c);
                        w.bytes(s);
                    }
                }
                (u, w.finish())
            })
            .collect()
    }

    fn into_unmasking(
        self,
        consistency: Option<&BTreeMap<ClientId, [u8; 64]>>,
    ) -> (Unmasking, Outbox) {
        let out = self.unmask_requests(consistency);
        let expected = out.iter().map(|(c, _)| *c).collect();
        (
            Unmasking {
                core: self,
                expected,
                responded: BTreeSet::new(),
                self_seed_shares: BTreeMap::new(),
                mask_key_shares: BTreeMap::new(),
            },
            out,
        )
    }
}

/// Round 2: collecting masked inputs into a running sum.
pub struct CollectingMasked {
    core: Core,
}

/// What follows round 2: the consistency check (malicious-server mode) or unmasking.
pub enum AfterMasking {
    /// Round 3, with the survivor set to sign.
    ConsistencyCheck(CollectingSignatures, Outbox),
    /// Round 4, with the unmask requests.
    Unmasking(Unmasking, Outbox),
}

impl CollectingMasked {
    /// Clients heard from so far.
    pub fn received(&self) -> usize {
        self.core.u3.len()
    }

    /// Clients expected in this phase (U2).
    pub fn expected(&self) -> &BTreeSet<ClientId> {
        &self.core.u2
    }

    /// Accept one masked input and add it to the running sum.
    pub fn receive(&mut self, from: ClientId, msg: &[u8]) -> Result<(), Error> {
        let checked = self.check(from, msg)?;
        self.apply(checked);
        Ok(())
    }

    /// Validate one masked input without changing the state.
    pub fn check(&self, from: ClientId, msg: &[u8]) -> Result<CheckedMasked, Error> {
        let phase = Phase::MaskedInputCollection;
        let core = &self.core;
        expect_member(&core.u2, from, phase)?;
        if core.u3.contains(&from) {
            return Err(Error::Duplicate {
                client: from,
                phase,
            });
        }
        let y = wire::check_masked_input(&core.cfg, msg)?;
        Ok(CheckedMasked { from, y })
    }

    /// Add a checked masked input to the running sum.
    pub fn apply(&mut self, checked: CheckedMasked) {
        let core = &mut self.core;
        checked.y.add_into(&mut core.sum);
        core.u3.insert(checked.from);
    }

    /// Close round 2: the senders form U3; from now on the others are dropped and a late masked
    /// input of theirs is refused. The state is left as it was.
    pub fn finish(&self) -> Result<AfterMasking, Error> {
        let core = self.core.clone();
        check_alive(&core.cfg, &core.u2, &core.u3, Phase::MaskedInputCollection)?;
        if core.cfg.identities().is_some() {
            let u3: Vec<ClientId> = core.u3.iter().copied().collect();
            let mut w = Writer::new(Kind::ConsistencyRequest, 4 + 4 * u3.len());
            w.ids(&u3);
            let msg = w.finish();
            let out = u3.iter().map(|&c| (c, msg.clone())).collect();
            Ok(AfterMasking::ConsistencyCheck(
                CollectingSignatures {
                    core,
                    sigs: BTreeMap::new(),
                },
                out,
            ))
        } else {
            let (next, out) = core.into_unmasking(None);
            Ok(AfterMasking::Unmasking(next, out))
        }
    }
}

/// Round 3 (malicious-server mode): collecting signatures on the survivor set.
pub struct CollectingSignatures {
    core: Core,
    sigs: BTreeMap<ClientId, [u8; 64]>,
}

impl CollectingSignatures {
    /// Clients expected to sign (U3).
    pub fn expected(&self) -> &BTreeSet<ClientId> {
        &self.core.u3
    }

    /// Accept one signature on U3.
    pub fn receive(&mut self, from: ClientId, msg: &[u8]) -> Result<(), Error> {
        let checked = self.check(from, msg)?;
        self.apply(checked);
        Ok(())
    }

    /// Validate one signature on U3 without changing the state.
    pub fn check(&self, from: ClientId, msg: &[u8]) -> Result<CheckedSignature, Error> {
        let phase = Phase::ConsistencyCheck;
        self.core.refuse_late(from, msg)?;
        expect_member(&self.core.u3, from, phase)?;
        if self.sigs.contains_key(&from) {
            return Err(Error::Duplicate {
                client: from,
                phase,
            });
        }
        let cfg = &*self.core.cfg;
        let mut r = Reader::new(
            msg,
            Kind::ConsistencySignature,
            wire::max_len(Kind::ConsistencySignature, cfg),
            cfg,
        )?;
        let sig: [u8; 64] = r.array()?;
        r.end()?;
        let u3: Vec<ClientId> = self.core.u3.iter().copied().collect();
        let vk = cfg
            .identity(from)
            .ok_or_else(|| protocol("no identity key for sender"))?;
        crypto::verify(
            vk,
            &crypto::consistency_transcript(cfg.session_id(), &u3),
            &sig,
            from,
        )?;
        Ok(CheckedSignature { from, sig })
    }

    /// Record a checked signature.
    pub fn apply(&mut self, checked: CheckedSignature) {
        self.sigs.insert(checked.from, checked.sig);
    }

    /// Close round 3: the signers are asked to unmask, each shown every signature. The state is
    /// left as it was.
    pub fn finish(&self) -> Result<(Unmasking, Outbox), Error> {
        let signers: BTreeSet<ClientId> = self.sigs.keys().copied().collect();
        check_alive(
            &self.core.cfg,
            &self.core.u2,
            &signers,
            Phase::ConsistencyCheck,
        )?;
        Ok(self.core.clone().into_unmasking(Some(&self.sigs)))
    }
}

type ShareList = Vec<(u8, Zeroizing<[u8; 32]>)>;

/// `f` for each of `ids` on up to `threads` threads, each taking a contiguous run: the streams in
/// the order of `ids`, and the first error in that order, as on one thread.
fn streams_on<F>(ids: &[ClientId], threads: usize, f: F) -> Result<Vec<MaskStream>, Error>
where
    F: Fn(ClientId, &mut Vec<MaskStream>) -> Result<(), Error> + Sync,
{
    fedagg_par::try_concat_runs(ids, threads, |part| {
        let mut out = Vec::new();
        for &v in part {
            f(v, &mut out)?;
        }
        Ok(out)
    })
}

/// Round 4: collecting shares and removing the masks.
pub struct Unmasking {
    core: Core,
    expected: BTreeSet<ClientId>,
    responded: BTreeSet<ClientId>,
    self_seed_shares: BTreeMap<ClientId, ShareList>,
    mask_key_shares: BTreeMap<ClientId, ShareList>,
}

/// The outcome of a round: the sum of the counted inputs and who was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Sum of the inputs of `included`, modulo `2^k`.
    pub sum: Vec<u64>,
    /// Clients whose inputs are in the sum (U3).
    pub included: Vec<ClientId>,
    /// Clients that shared keys but whose inputs are not in the sum (U2 \ U3).
    pub dropped_after_sharing: Vec<ClientId>,
}

impl Unmasking {
    /// Clients asked to unmask.
    pub fn expected(&self) -> &BTreeSet<ClientId> {
        &self.expected
    }

    /// Accept one client's shares. The share kinds must match the server's own record: self-seed
    /// shares for survivors, mask-key shares for dropped clients, exactly as requested.
    pub fn receive(&mut self, from: ClientId, msg: &[u8]) -> Result<(), Error> {
        let checked = self.check(from, msg)?;
        self.apply(checked);
        Ok(())
    }

    /// Validate one client's shares without changing the state.
    pub fn check(&self, from: ClientId, msg: &[u8]) -> Result<CheckedUnmask, Error> {
        let phase = Phase::Unmasking;
        self.core.refuse_late(from, msg)?;
        expect_member(&self.expected, from, phase)?;
        if self.responded.contains(&from) {
            return Err(Error::Duplicate {
                client: from,
                phase,
            });
        }
        let cfg = &*self.core.cfg;
        let graph = cfg.graph();
        let mut r = Reader::new(
            msg,
            Kind::UnmaskResponse,
            wire::max_len(Kind::UnmaskResponse, cfg),
            cfg,
        )?;
        let count = r.count(37, graph.neighbourhood_size())?;
        let expected: Vec<ClientId> = graph
            .neighbourhood(from)
            .into_iter()
            .filter(|v| self.core.u2.contains(v))
            .collect();
        if count != expected.len() {
            return Err(protocol(format!(
                "{count} shares where {} were requested",
                expected.len()
            )));
        }
        let mut parsed = Vec::with_capacity(count);
        for &want in &expected {
            let v = r.id()?;
            if v != want {
                return Err(protocol(format!(
                    "share for client {v} where {want} was requested"
                )));
            }
            let kind = r.u8()?;
            let survived = self.core.u3.contains(&v);
            let right = if survived {
                SHARE_SELF_SEED
            } else {
                SHARE_MASK_KEY
            };
            if kind != right {
                return Err(protocol(format!("wrong kind of share for client {v}")));
            }
            let y = Zeroizing::new(r.array::<32>()?);
            parsed.push((v, survived, y));
        }
        r.end()?;
        let shares = parsed
            .into_iter()
            .map(|(v, survived, y)| (v, survived, graph.share_point(v, from), y))
            .collect();
        Ok(CheckedUnmask { from, shares })
    }

    /// Record a checked response's shares.
    pub fn apply(&mut self, checked: CheckedUnmask) {
        for (v, survived, x, y) in checked.shares {
            let book = if survived {
                &mut self.self_seed_shares
            } else {
                &mut self.mask_key_shares
            };
            book.entry(v).or_default().push((x, y));
        }
        self.responded.insert(checked.from);
    }

    /// Close round 4: reconstruct every needed secret, verify it, and remove the masks.
    pub fn finish(&self) -> Result<Aggregate, Error> {
        self.aggregate()
    }

    /// What [`Unmasking::finish`] returns, without consuming the state (so a server can retry
    /// after more responses arrive, or measure the computation).
    pub fn aggregate(&self) -> Result<Aggregate, Error> {
        let core = &self.core;
        let cfg = Arc::clone(&core.cfg);
        let t = cfg.threshold();
        let session = cfg.session_id();
        let enough =
            |shares: Option<&ShareList>, v: ClientId| -> Result<Zeroizing<[u8; 32]>, Error> {
                let shares = shares.map(Vec::as_slice).unwrap_or(&[]);
                if shares.len() < t {
                    return Err(Error::BelowThreshold {
                        phase: Phase::Unmasking,
                        have: shares.len(),
                        need: t,
                        what: format!("shares of client {v}"),
                    });
                }
                let pick: Vec<(u8, &[u8; 32])> =
                    shares.iter().take(t).map(|(x, y)| (*x, &**y)).collect();
                Ok(shamir::combine(&pick))
            };

        // Reconstruction and the dropped clients' agreements are per client: spread over the
        // threads too (the streams' order does not change the sum).
        let threads = crypto::threads();
        let survivors: Vec<ClientId> = core.u3.iter().copied().collect();
        let mut streams = streams_on(&survivors, threads, |v, out| {
            let seed = enough(self.self_seed_shares.get(&v), v)?;
            let commitment = crypto::commit_self_seed(session, v, &seed);
            let want = core.commitments.get(&v).ok_or(Error::Reconstruction(v))?;
            if !bool::from(commitment.ct_eq(want)) {
                return Err(Error::Reconstruction(v));
            }
            out.push(MaskStream::self_mask(&seed, session, v, true));
            Ok(())
        })?;
        let dropped: Vec<ClientId> = core.u2.difference(&core.u3).copied().collect();
        streams.extend(streams_on(&dropped, threads, |v, out| {
            let sk = StaticSecret::from(*enough(self.mask_key_shares.get(&v), v)?);
            let pk = core.s_pks.get(&v).ok_or(Error::Reconstruction(v))?;
            if crypto::public_of(&sk) != *pk {
                return Err(Error::Reconstruction(v));
            }
            for w in cfg.graph().neighbourhood(v) {
                if w == v || !core.u3.contains(&w) {
                    continue;
                }
                let w_pk = core.s_pks.get(&w).ok_or(Error::Reconstruction(w))?;
                let agreed = crypto::agree(&sk, w_pk)?;
                // w added its mask if w < v: take it off again.
                out.push(MaskStream::pair_mask(&agreed, session, w, v, w < v));
            }
            Ok(())
        })?);
        let mut sum = core.sum.clone();
        crypto::apply_masks_threaded(&mut sum, &mut streams, cfg.modulus());
        Ok(Aggregate {
            sum,
            included: core.u3.iter().copied().collect(),
            dropped_after_sharing: dropped,
        })
    }
}
