//! The client's side of a round, one type per state; each transition consumes the state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::crypto::{self, MaskStream, Secret32, SHARE_CIPHERTEXT_LEN};
use crate::error::{malformed, protocol, Error};
use crate::shamir;
use crate::wire::{self, Kind, Reader, Writer};
use crate::{ClientId, SessionConfig, SigningKey};

/// A peer's advertised public keys: for share encryption (`c`) and for masks (`s`).
#[derive(Clone, Copy)]
struct PeerKeys {
    c_pk: [u8; 32],
    s_pk: [u8; 32],
}

/// Start a round: draw the two X25519 key pairs and produce the AdvertiseKeys message.
///
/// In malicious-server mode the session lists identity keys and `identity` must be the signing key
/// whose public half the session lists for `id`.
pub fn start<R: RngCore + CryptoRng>(
    cfg: Arc<SessionConfig>,
    id: ClientId,
    identity: Option<SigningKey>,
    rng: &mut R,
) -> Result<(ExpectKeyList, Vec<u8>), Error> {
    if !cfg.graph().contains(id) {
        return Err(Error::InvalidInput(format!(
            "client {id} is not in the session"
        )));
    }
    match (cfg.identity(id), &identity) {
        (None, None) => {}
        (Some(listed), Some(key)) if key.verifying_key() == *listed => {}
        (Some(_), _) => {
            return Err(Error::InvalidInput(
                "the session requires this client's listed identity signing key".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(Error::InvalidInput(
                "an identity key was given but the session has no identities".into(),
            ))
        }
    }
    let c_sk = StaticSecret::random_from_rng(&mut *rng);
    let s_sk = StaticSecret::random_from_rng(&mut *rng);
    let own = PeerKeys {
        c_pk: crypto::public_of(&c_sk),
        s_pk: crypto::public_of(&s_sk),
    };
    let mut w = Writer::new(Kind::AdvertiseKeys, 129);
    w.bytes(&own.c_pk);
    w.bytes(&own.s_pk);
    match &identity {
        Some(key) => {
            w.u8(1);
            let t = crypto::advertise_transcript(cfg.session_id(), id, &own.c_pk, &own.s_pk);
            w.bytes(&crypto::sign(key, &t));
        }
        None => w.u8(0),
    }
    Ok((
        ExpectKeyList {
            cfg,
            id,
            c_sk,
            s_sk,
            own,
            identity,
        },
        w.finish(),
    ))
}

/// Round 0 sent; waiting for the neighbours' keys.
pub struct ExpectKeyList {
    cfg: Arc<SessionConfig>,
    id: ClientId,
    c_sk: StaticSecret,
    s_sk: StaticSecret,
    own: PeerKeys,
    identity: Option<SigningKey>,
}

impl ExpectKeyList {
    /// This client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The server's key list, checked: ordered, only neighbours, no repeated key, this
    /// client's own keys unaltered, signatures valid (malicious-server mode), and at least the
    /// threshold of entries.
    fn read_key_list(&self, key_list: &[u8]) -> Result<BTreeMap<ClientId, PeerKeys>, Error> {
        let cfg = &*self.cfg;
        let graph = cfg.graph();
        let signed = cfg.identities().is_some();
        let mut r = Reader::new(
            key_list,
            Kind::KeyList,
            wire::max_len(Kind::KeyList, cfg),
            cfg,
        )?;
        let entry_len = 4 + 64 + if signed { 64 } else { 0 };
        let count = r.count(entry_len, graph.neighbourhood_size())?;
        let mut peers: BTreeMap<ClientId, PeerKeys> = BTreeMap::new();
        let mut seen_keys: BTreeSet<[u8; 32]> = BTreeSet::new();
        let mut last: Option<ClientId> = None;
        for _ in 0..count {
            let v = r.id()?;
            if last.is_some_and(|l| l >= v) {
                return Err(protocol(format!(
                    "key list repeats or misorders client {v}"
                )));
            }
            last = Some(v);
            let keys = PeerKeys {
                c_pk: r.array()?,
                s_pk: r.array()?,
            };
            if signed {
                let sig: [u8; 64] = r.array()?;
                let vk = cfg
                    .identity(v)
                    .ok_or_else(|| malformed(format!("no identity for client {v}")))?;
                let t = crypto::advertise_transcript(cfg.session_id(), v, &keys.c_pk, &keys.s_pk);
                crypto::verify(vk, &t, &sig, v)?;
            }
            if !graph.are_neighbours(self.id, v) {
                return Err(protocol(format!(
                    "key list includes client {v}, not a neighbour"
                )));
            }
            if !seen_keys.insert(keys.c_pk) || !seen_keys.insert(keys.s_pk) {
                return Err(protocol(format!(
                    "key list repeats a public key (client {v})"
                )));
            }
            peers.insert(v, keys);
        }
        r.end()?;
        match peers.get(&self.id) {
            Some(k) if k.c_pk == self.own.c_pk && k.s_pk == self.own.s_pk => {}
            _ => return Err(protocol("key list omits or alters this client's own keys")),
        }
        let t = cfg.threshold();
        if peers.len() < t {
            return Err(Error::BelowThreshold {
                phase: crate::Phase::ShareKeys,
                have: peers.len(),
                need: t,
                what: "neighbours with keys".into(),
            });
        }
        Ok(peers)
    }

    /// Round 1: check the key list, draw the self-mask seed, Shamir-share both secrets over the
    /// listed neighbours and encrypt each neighbour's pair of shares to it.
    pub fn share_keys<R: RngCore + CryptoRng>(
        self,
        key_list: &[u8],
        rng: &mut R,
    ) -> Result<(ExpectShares, Vec<u8>), Error> {
        let peers = self.read_key_list(key_list)?;
        let cfg = &*self.cfg;
        let graph = cfg.graph();
        let t = cfg.threshold();

        let b = Secret32::random(rng);
        let s_sk_bytes = Zeroizing::new(self.s_sk.to_bytes());
        let points: Vec<u8> = peers
            .keys()
            .map(|&v| graph.share_point(self.id, v))
            .collect();
        let s_shares = shamir::split(&s_sk_bytes, t, &points, rng);
        let b_shares = shamir::split(b.expose(), t, &points, rng);

        let commitment = crypto::commit_self_seed(cfg.session_id(), self.id, b.expose());
        let mut w = Writer::new(
            Kind::ShareKeys,
            36 + peers.len() * (4 + SHARE_CIPHERTEXT_LEN),
        );
        w.bytes(&commitment);
        w.u32((peers.len() - 1) as u32);
        // Every neighbour's agreement first, on as many threads as pay (the same secrets).
        let others: Vec<[u8; 32]> = peers
            .iter()
            .filter(|&(&v, _)| v != self.id)
            .map(|(_, keys)| keys.c_pk)
            .collect();
        let mut agreements = crypto::agree_each(&self.c_sk, &others)?.into_iter();
        let mut own_shares = None;
        let mut share_keys = BTreeMap::new();
        for (&v, (s, bsh)) in peers.keys().zip(s_shares.iter().zip(&b_shares)) {
            let mut pt = Zeroizing::new([0u8; 64]);
            pt[..32].copy_from_slice(&**s);
            pt[32..].copy_from_slice(&**bsh);
            if v == self.id {
                own_shares = Some(pt);
                continue;
            }
            let agreed = agreements
                .next()
                .ok_or_else(|| protocol("an agreement per neighbour"))?;
            w.id(v);
            w.bytes(&crypto::seal_shares(
                &agreed,
                cfg.session_id(),
                self.id,
                v,
                &pt,
            ));
            share_keys.insert(v, ShareKey(agreed));
        }
        let own_shares = own_shares.ok_or_else(|| protocol("own shares missing"))?;
        let next = ExpectShares {
            cfg: self.cfg,
            id: self.id,
            s_sk: self.s_sk,
            peers,
            share_keys,
            b,
            own_shares,
            identity: self.identity,
        };
        Ok((next, w.finish()))
    }
}

/// Round 1 sent; waiting for the shares other neighbours sent us (with the request for input).
pub struct ExpectShares {
    cfg: Arc<SessionConfig>,
    id: ClientId,
    s_sk: StaticSecret,
    peers: BTreeMap<ClientId, PeerKeys>,
    /// The agreement with each neighbour's encryption key, from round 1.
    share_keys: BTreeMap<ClientId, ShareKey>,
    b: Secret32,
    own_shares: Zeroizing<[u8; 64]>,
    identity: Option<SigningKey>,
}

/// The X25519 secret agreed with one neighbour's encryption key in round 1, kept to open that
/// neighbour's shares in round 2: one agreement per neighbour for both directions instead of two
/// (the profile in docs/secagg.md). No `Clone`, no `Debug`; zeroized on drop.
struct ShareKey(Zeroizing<[u8; 32]>);

/// The two shares one client holds of a neighbour's secrets.
struct HeldShares(Zeroizing<[u8; 64]>);

impl HeldShares {
    fn mask_key_share(&self) -> &[u8] {
        self.0.get(..32).unwrap_or(&[])
    }
    fn self_seed_share(&self) -> &[u8] {
        self.0.get(32..).unwrap_or(&[])
    }
}

impl ExpectShares {
    /// Round 2: decrypt the forwarded shares, then mask `input` (reduced elements of the
    /// session's length) with the self mask and one pairwise mask per neighbour that shared.
    pub fn mask(self, forwarded: &[u8], input: &[u64]) -> Result<(ExpectUnmask, Vec<u8>), Error> {
        let cfg = &*self.cfg;
        let modulus = cfg.modulus();
        if input.len() != cfg.vector_len() {
            return Err(Error::InvalidInput(format!(
                "input has length {}, the session expects {}",
                input.len(),
                cfg.vector_len()
            )));
        }
        if let Some(x) = input.iter().find(|&&x| !modulus.contains(x)) {
            return Err(Error::InvalidInput(format!(
                "input element {x} is not reduced modulo 2^{}",
                modulus.bits()
            )));
        }
        let mut r = Reader::new(
            forwarded,
            Kind::ForwardedShares,
            wire::max_len(Kind::ForwardedShares, cfg),
            cfg,
        )?;
        let count = r.count(4 + SHARE_CIPHERTEXT_LEN, cfg.graph().neighbourhood_size())?;
        let mut held: BTreeMap<ClientId, HeldShares> = BTreeMap::new();
        for _ in 0..count {
            let v = r.id()?;
            let ct = r.take(SHARE_CIPHERTEXT_LEN)?;
            // Every neighbour in our key list but us has its round-1 agreement.
            let Some(ShareKey(agreed)) = self.share_keys.get(&v) else {
                return Err(protocol(format!(
                    "shares from client {v}, not in our key list"
                )));
            };
            if held.contains_key(&v) {
                return Err(protocol(format!("shares from client {v} forwarded twice")));
            }
            let pt = crypto::open_shares(agreed, cfg.session_id(), v, self.id, ct)?;
            held.insert(v, HeldShares(pt));
        }
        r.end()?;
        // U2 from our view: the senders and ourselves.
        if held.len() + 1 < cfg.threshold() {
            return Err(Error::BelowThreshold {
                phase: crate::Phase::MaskedInputCollection,
                have: held.len() + 1,
                need: cfg.threshold(),
                what: "neighbours that shared keys".into(),
            });
        }
        let mut streams = Vec::with_capacity(held.len() + 1);
        streams.push(MaskStream::self_mask(
            self.b.expose(),
            cfg.session_id(),
            self.id,
            false,
        ));
        let pks = held
            .keys()
            .map(|v| self.peers.get(v).map(|keys| keys.s_pk))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| protocol("peer vanished"))?;
        let agreements = crypto::agree_each(&self.s_sk, &pks)?;
        for (&v, agreed) in held.keys().zip(&agreements) {
            // + for the lower id, - for the higher: the pair cancels in the sum.
            streams.push(MaskStream::pair_mask(
                agreed,
                cfg.session_id(),
                self.id,
                v,
                self.id > v,
            ));
        }
        let mut y = input.to_vec();
        // Over the threads `crypto::set_threads` allows: the same vector, bit for bit.
        crypto::apply_masks_threaded(&mut y, &mut streams, modulus);
        let msg = wire::encode_masked_input(&y, modulus);
        held.insert(self.id, HeldShares(self.own_shares));
        Ok((
            ExpectUnmask {
                cfg: self.cfg,
                id: self.id,
                held,
                identity: self.identity,
                signed_survivors: None,
            },
            msg,
        ))
    }
}

/// Round 2 sent; waiting for the unmask request (and, in malicious-server mode, first the
/// consistency request).
pub struct ExpectUnmask {
    cfg: Arc<SessionConfig>,
    id: ClientId,
    /// Shares of every neighbour in U2 (this client included).
    held: BTreeMap<ClientId, HeldShares>,
    identity: Option<SigningKey>,
    signed_survivors: Option<Vec<ClientId>>,
}

/// Share kinds in an unmask response.
pub(crate) const SHARE_SELF_SEED: u8 = 0;
pub(crate) const SHARE_MASK_KEY: u8 = 1;

impl ExpectUnmask {
    /// Round 3 (malicious-server mode): sign the survivor set U3 the server announces. A client
    /// signs at most one set per session.
    pub fn sign_consistency(&mut self, request: &[u8]) -> Result<Vec<u8>, Error> {
        let cfg = &*self.cfg;
        let key = self
            .identity
            .as_ref()
            .ok_or_else(|| Error::InvalidInput("the session has no consistency check".into()))?;
        let mut r = Reader::new(
            request,
            Kind::ConsistencyRequest,
            wire::max_len(Kind::ConsistencyRequest, cfg),
            cfg,
        )?;
        let u3 = r.sorted_ids(cfg.graph().n() as usize)?;
        r.end()?;
        if u3.binary_search(&self.id).is_err() {
            return Err(protocol("survivor set omits this client"));
        }
        let need = cfg.threshold().max(cfg.min_survivors());
        if u3.len() < need {
            return Err(Error::BelowThreshold {
                phase: crate::Phase::ConsistencyCheck,
                have: u3.len(),
                need,
                what: "survivors".into(),
            });
        }
        if let Some(prev) = &self.signed_survivors {
            if *prev != u3 {
                return Err(protocol(
                    "server asked to sign a second, different survivor set",
                ));
            }
        }
        let sig = crypto::sign(key, &crypto::consistency_transcript(cfg.session_id(), &u3));
        self.signed_survivors = Some(u3);
        let mut w = Writer::new(Kind::ConsistencySignature, 64);
        w.bytes(&sig);
        Ok(w.finish())
    }

    /// Round 4: check the request, then reveal self-seed shares of surviving neighbours and
    /// mask-key shares of dropped ones, never both for one client.
    pub fn unmask(self, request: &[u8]) -> Result<Vec<u8>, Error> {
        let cfg = &*self.cfg;
        let w_max = cfg.graph().neighbourhood_size();
        let n = cfg.graph().n() as usize;
        let mut r = Reader::new(
            request,
            Kind::UnmaskRequest,
            wire::max_len(Kind::UnmaskRequest, cfg),
            cfg,
        )?;
        let survivors = r.sorted_ids(w_max)?;
        let dropped = r.sorted_ids(w_max)?;
        let consistency = if cfg.identities().is_some() {
            let u3 = r.sorted_ids(n)?;
            let count = r.count(68, n)?;
            let mut sigs = Vec::with_capacity(count);
            for _ in 0..count {
                sigs.push((r.id()?, r.array::<64>()?));
            }
            Some((u3, sigs))
        } else {
            None
        };
        r.end()?;

        let survivor_set: BTreeSet<ClientId> = survivors.iter().copied().collect();
        if let Some(&both) = dropped.iter().find(|c| survivor_set.contains(c)) {
            return Err(protocol(format!(
                "client {both} is listed as both dropped and surviving"
            )));
        }
        if dropped.contains(&self.id) {
            return Err(protocol("unmask request lists this client as dropped"));
        }
        if let Some(&unknown) = survivors
            .iter()
            .chain(&dropped)
            .find(|c| !self.held.contains_key(c))
        {
            return Err(protocol(format!(
                "unmask request lists unknown client {unknown}"
            )));
        }
        if survivors.len() + dropped.len() != self.held.len() {
            return Err(protocol(
                "unmask request does not account for every neighbour",
            ));
        }
        // Where every client is a neighbour, the survivors named are the sum's whole set.
        let complete = w_max >= n;
        let need = if complete {
            cfg.threshold().max(cfg.min_survivors())
        } else {
            cfg.threshold()
        };
        if survivors.len() < need {
            return Err(Error::BelowThreshold {
                phase: crate::Phase::Unmasking,
                have: survivors.len(),
                need,
                what: "surviving neighbours".into(),
            });
        }
        if let Some((u3, sigs)) = consistency {
            self.check_consistency(&u3, &sigs, &survivor_set)?;
        }

        let mut w = Writer::new(Kind::UnmaskResponse, 4 + self.held.len() * 37);
        w.u32(self.held.len() as u32);
        for (&v, shares) in &self.held {
            w.id(v);
            if survivor_set.contains(&v) {
                w.u8(SHARE_SELF_SEED);
                w.bytes(shares.self_seed_share());
            } else {
                w.u8(SHARE_MASK_KEY);
                w.bytes(shares.mask_key_share());
            }
        }
        Ok(w.finish())
    }

    fn check_consistency(
        &self,
        u3: &[ClientId],
        sigs: &[(ClientId, [u8; 64])],
        survivors: &BTreeSet<ClientId>,
    ) -> Result<(), Error> {
        let cfg = &*self.cfg;
        let signed = self
            .signed_survivors
            .as_ref()
            .ok_or_else(|| protocol("unmask request before the consistency check"))?;
        // The survivor set is public: a plain comparison suffices.
        if signed.as_slice() != u3 {
            return Err(protocol(
                "survivor set differs from the one this client signed",
            ));
        }
        // Our view of survivors must be exactly U3 restricted to the neighbours we hold.
        for v in self.held.keys() {
            if survivors.contains(v) != u3.binary_search(v).is_ok() {
                return Err(protocol(format!(
                    "client {v} is classified against the signed set"
                )));
            }
        }
        let transcript = crypto::consistency_transcript(cfg.session_id(), u3);
        let mut valid = BTreeSet::new();
        for (c, sig) in sigs {
            // The guarantee needs `t` valid signatures on the set this client signed; checking
            // every one of up to n would make the cohort's work grow as n^2 (about 40 s of a
            // 1,000-member round on two cores). A bad signature before then still aborts.
            if valid.len() >= cfg.threshold() {
                break;
            }
            if u3.binary_search(c).is_err() {
                continue;
            }
            let vk = cfg
                .identity(*c)
                .ok_or_else(|| malformed("no identity key"))?;
            crypto::verify(vk, &transcript, sig, *c)?;
            valid.insert(*c);
        }
        if valid.len() < cfg.threshold() {
            return Err(Error::BelowThreshold {
                phase: crate::Phase::ConsistencyCheck,
                have: valid.len(),
                need: cfg.threshold(),
                what: "valid survivor-set signatures".into(),
            });
        }
        Ok(())
    }
}
