//! The server side of each mode behind one interface: accept a member's submission for the
//! current phase, say how many are expected, close the phase, and finish into an aggregate.
//!
//! Engines hold no IO and no clock. They are rebuilt after a restart by replaying the round's
//! event log, so `accept` and `close` must be deterministic given the same events (the only
//! randomness, DP noise, is drawn in the final close, whose result is committed atomically and
//! never replayed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedagg_api::{f32_values, u64_values, FederationSpec, FrameKind, Mode, SecaggSession};
use fedagg_dp::Ledger;
use fedagg_paillier::{Ciphertext, Packing, PublicKey};
use fedagg_quant::QuantParams;
use fedagg_secagg::server::{
    AfterMasking, CollectingKeys, CollectingMasked, CollectingShares, Unmasking,
};
use fedagg_secagg::ClientId;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Member index used for the key holder's submissions.
pub const KEY_HOLDER: u32 = u32::MAX;

/// A round's fixed parameters, persisted as JSON when it opens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundParams {
    /// Participant ids of the cohort; a member's index is its position.
    pub cohort: Vec<i64>,
    /// SecAgg session (SecAgg mode).
    pub secagg: Option<SecaggSession>,
}

/// The privacy ledger as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerJson {
    budget: f64,
    delta: f64,
    orders: Vec<f64>,
    rdp: Vec<f64>,
    rounds: u64,
}

impl LedgerJson {
    /// Snapshot a ledger.
    pub fn from_ledger(l: &Ledger) -> Self {
        LedgerJson {
            budget: l.budget(),
            delta: l.delta(),
            orders: l.orders().to_vec(),
            rdp: l.rdp().to_vec(),
            rounds: l.rounds(),
        }
    }
    /// Rebuild (validated).
    pub fn to_ledger(&self) -> Result<Ledger, ApiError> {
        Ledger::restore(
            self.budget,
            self.delta,
            self.orders.clone(),
            self.rdp.clone(),
            self.rounds,
        )
        .map_err(|e| ApiError::internal(format!("stored ledger refused: {e}")))
    }
}

/// What a finished round hands back.
pub struct Finished {
    /// The aggregated update to apply to the model (a weighted mean for the quantized modes, the
    /// noised mean for DP).
    pub update: Vec<f32>,
    /// Contributions in the aggregate.
    pub participants: u32,
    /// The ledger after charging this round (DP mode).
    pub ledger: Option<Ledger>,
}

/// A mode's round state.
pub enum Engine {
    /// SecAgg / SecAgg+.
    Secagg(Box<SecaggEngine>),
    /// A key holder's homomorphic encryption: packed Paillier or lattice.
    He(Box<HeEngine>),
    /// Plaintext + central DP.
    Dp(Box<DpEngine>),
}

impl Engine {
    /// A fresh engine for a round of `spec` with `params`. `public_key` is the Paillier key text;
    /// `ledger` the DP ledger before this round.
    pub fn new(
        spec: &FederationSpec,
        params: &RoundParams,
        public_key: Option<&str>,
        ledger: Option<Ledger>,
    ) -> Result<Self, ApiError> {
        let n = params.cohort.len();
        let min = spec.min_clients as usize;
        match spec.mode {
            Mode::Secagg { .. } => {
                let quant = quant(spec)?;
                let s = params
                    .secagg
                    .as_ref()
                    .ok_or_else(|| ApiError::internal("secagg round without a session"))?;
                let cfg = s.config(spec.vector_len).map_err(ApiError::invalid)?;
                Ok(Engine::Secagg(Box::new(SecaggEngine {
                    quant,
                    state: SaState::Keys(CollectingKeys::new(Arc::new(cfg))),
                    outbox: BTreeMap::new(),
                    submitted: BTreeSet::new(),
                    n,
                    min,
                })))
            }
            Mode::Paillier { .. } => {
                let quant = quant(spec)?;
                let text = public_key
                    .ok_or_else(|| ApiError::conflict("the key holder has not published a key"))?;
                let pk = PublicKey::from_text(text)
                    .map_err(|e| ApiError::internal(format!("stored public key: {e}")))?;
                let packing = Packing::new(&pk, &quant)
                    .map_err(|e| ApiError::invalid(format!("packing: {e}")))?;
                let ciphertexts =
                    packing.ciphertexts_for(QuantParams::encoded_len(spec.vector_len));
                let scheme = Scheme::Paillier {
                    pk,
                    ciphertexts,
                    acc: None,
                };
                Ok(Engine::He(Box::new(HeEngine::new(
                    quant, spec, scheme, n, min,
                ))))
            }
            Mode::Lattice { .. } => {
                let text = public_key
                    .ok_or_else(|| ApiError::conflict("the key holder has not published a key"))?;
                let scheme = lattice_scheme(spec, text)?;
                Ok(Engine::He(Box::new(HeEngine::new(
                    quant(spec)?,
                    spec,
                    scheme,
                    n,
                    min,
                ))))
            }
            Mode::Dp {
                clip,
                noise_multiplier,
                sampling_rate,
                ..
            } => Ok(Engine::Dp(Box::new(DpEngine {
                clip,
                sigma: noise_multiplier,
                q: sampling_rate,
                sum: vec![0.0; spec.vector_len],
                count: 0,
                submitted: BTreeSet::new(),
                ledger: ledger.ok_or_else(|| ApiError::internal("dp round without a ledger"))?,
                n,
                min,
            }))),
        }
    }

    /// Current phase name.
    pub fn phase(&self) -> &'static str {
        match self {
            Engine::Secagg(e) => match e.state {
                SaState::Keys(_) => "advertise_keys",
                SaState::Shares(_) => "share_keys",
                SaState::Masked(_) => "masked_input",
                SaState::Unmask(_) => "unmask",
                SaState::Done => "done",
            },
            Engine::He(e) => {
                if e.decrypting {
                    "decrypt"
                } else {
                    "submit"
                }
            }
            Engine::Dp(_) => "submit",
        }
    }

    /// The frame kind submissions carry in the current phase.
    pub fn frame_kind(&self) -> FrameKind {
        match self {
            Engine::Secagg(_) => FrameKind::Secagg,
            Engine::He(e) if e.decrypting => FrameKind::U64,
            Engine::He(e) => e.scheme.kind(),
            Engine::Dp(_) => FrameKind::F32,
        }
    }

    /// Whether the key holder (rather than participants) submits in the current phase.
    pub fn key_holder_phase(&self) -> bool {
        matches!(self, Engine::He(e) if e.decrypting)
    }

    /// Submissions expected in the current phase.
    pub fn expected(&self) -> usize {
        match self {
            Engine::Secagg(e) => match &e.state {
                SaState::Keys(_) => e.n,
                SaState::Shares(s) => s.expected().len(),
                SaState::Masked(s) => s.expected().len(),
                SaState::Unmask(s) => s.expected().len(),
                SaState::Done => 0,
            },
            Engine::He(e) => {
                if e.decrypting {
                    1
                } else {
                    e.n
                }
            }
            Engine::Dp(e) => e.n,
        }
    }

    /// Submissions accepted in the current phase.
    pub fn received(&self) -> usize {
        match self {
            Engine::Secagg(e) => e.submitted.len(),
            Engine::He(e) => {
                if e.decrypting {
                    usize::from(e.decrypted.is_some())
                } else {
                    e.submitted.len()
                }
            }
            Engine::Dp(e) => e.submitted.len(),
        }
    }

    /// Whether `member` submitted in the current phase.
    pub fn has_submitted(&self, member: u32) -> bool {
        match self {
            Engine::Secagg(e) => e.submitted.contains(&member),
            Engine::He(e) if e.decrypting => member == KEY_HOLDER && e.decrypted.is_some(),
            Engine::He(e) => e.submitted.contains(&member),
            Engine::Dp(e) => e.submitted.contains(&member),
        }
    }

    /// Accept one submission (the frame payload) from `member`.
    pub fn accept(&mut self, member: u32, payload: &[u8]) -> Result<(), ApiError> {
        if self.has_submitted(member) {
            return Err(ApiError::duplicate(format!(
                "member {member} already submitted in phase {}",
                self.phase()
            )));
        }
        match self {
            Engine::Secagg(e) => e.accept(member, payload),
            Engine::He(e) => e.accept(member, payload),
            Engine::Dp(e) => e.accept(member, payload),
        }
    }

    /// The server's message for `member` in the current phase (SecAgg), or the encrypted
    /// aggregate for the key holder (Paillier).
    pub fn download(&self, member: u32) -> Result<(FrameKind, Vec<u8>), ApiError> {
        match self {
            Engine::Secagg(e) => e
                .outbox
                .get(&member)
                .map(|m| (FrameKind::Secagg, m.clone()))
                .ok_or_else(|| {
                    ApiError::wrong_phase(format!(
                        "no message for member {member} in phase {}",
                        self.phase()
                    ))
                }),
            Engine::He(e) if e.decrypting && member == KEY_HOLDER => {
                Ok((e.scheme.kind(), e.scheme.encode_sum()))
            }
            _ => Err(ApiError::wrong_phase(format!(
                "nothing to download in phase {}",
                self.phase()
            ))),
        }
    }

    /// Close the current phase. `Ok(None)`: the next phase began. `Ok(Some)`: the round is
    /// finished. `Err(reason)`: the round failed.
    pub fn close<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
    ) -> Result<Option<Finished>, String> {
        match self {
            Engine::Secagg(e) => e.close(),
            Engine::He(e) => e.close(),
            Engine::Dp(e) => e.close(rng).map(Some),
        }
    }

    /// Size of the round's cohort (the record's dropouts are this minus the participants).
    pub fn cohort(&self) -> usize {
        match self {
            Engine::Secagg(e) => e.n,
            Engine::He(e) => e.n,
            Engine::Dp(e) => e.n,
        }
    }
}

fn quant(spec: &FederationSpec) -> Result<QuantParams, ApiError> {
    spec.quant().map_err(ApiError::invalid)
}

enum SaState {
    Keys(CollectingKeys),
    Shares(CollectingShares),
    Masked(CollectingMasked),
    Unmask(Unmasking),
    Done,
}

/// SecAgg: the sans-IO server machine plus the messages waiting for each member.
pub struct SecaggEngine {
    quant: QuantParams,
    state: SaState,
    outbox: BTreeMap<u32, Vec<u8>>,
    submitted: BTreeSet<u32>,
    n: usize,
    min: usize,
}

fn protocol_error(e: fedagg_secagg::Error) -> ApiError {
    match e {
        fedagg_secagg::Error::Duplicate { .. } => ApiError::duplicate(e.to_string()),
        fedagg_secagg::Error::UnexpectedSender { .. }
        | fedagg_secagg::Error::DeclaredDropped(_) => ApiError::forbidden(e.to_string()),
        _ => ApiError::bad_request(e.to_string()),
    }
}

impl SecaggEngine {
    fn accept(&mut self, member: u32, msg: &[u8]) -> Result<(), ApiError> {
        let from = ClientId(member);
        match &mut self.state {
            SaState::Keys(s) => s.receive(from, msg),
            SaState::Shares(s) => s.receive(from, msg),
            SaState::Masked(s) => s.receive(from, msg),
            SaState::Unmask(s) => s.receive(from, msg),
            SaState::Done => return Err(ApiError::wrong_phase("the round is over")),
        }
        .map_err(protocol_error)?;
        self.submitted.insert(member);
        Ok(())
    }

    fn close(&mut self) -> Result<Option<Finished>, String> {
        let state = std::mem::replace(&mut self.state, SaState::Done);
        self.submitted.clear();
        let (next, outbox) = match state {
            SaState::Keys(s) => {
                let (next, out) = s.finish().map_err(|e| e.to_string())?;
                (SaState::Shares(next), out)
            }
            SaState::Shares(s) => {
                let (next, out) = s.finish().map_err(|e| e.to_string())?;
                (SaState::Masked(next), out)
            }
            SaState::Masked(s) => match s.finish().map_err(|e| e.to_string())? {
                AfterMasking::Unmasking(next, out) => (SaState::Unmask(next), out),
                AfterMasking::ConsistencyCheck(..) => {
                    return Err("the consistency check is not offered by this server".into())
                }
            },
            SaState::Unmask(s) => {
                let agg = s.finish().map_err(|e| e.to_string())?;
                if agg.included.len() < self.min {
                    return Err(format!(
                        "{} inputs in the aggregate, the federation requires {}",
                        agg.included.len(),
                        self.min
                    ));
                }
                let (mean, _w) = self
                    .quant
                    .decode_weighted_mean(&agg.sum)
                    .map_err(|e| e.to_string())?;
                self.outbox.clear();
                return Ok(Some(Finished {
                    update: mean.iter().map(|&x| x as f32).collect(),
                    participants: agg.included.len() as u32,
                    ledger: None,
                }));
            }
            SaState::Done => return Err("the round is over".into()),
        };
        self.state = next;
        self.outbox = outbox.into_iter().map(|(c, m)| (c.0, m)).collect();
        Ok(None)
    }
}

/// The encryption scheme of an [`HeEngine`], with its running sum.
enum Scheme {
    Paillier {
        pk: PublicKey,
        ciphertexts: usize,
        acc: Option<Vec<Ciphertext>>,
    },
    #[cfg(feature = "lattice")]
    Lattice {
        pk: fedagg_lattice::PublicKey,
        len: usize,
        acc: Option<fedagg_lattice::CiphertextVector>,
    },
}

impl Scheme {
    fn kind(&self) -> FrameKind {
        match self {
            Scheme::Paillier { .. } => FrameKind::Paillier,
            #[cfg(feature = "lattice")]
            Scheme::Lattice { .. } => FrameKind::Lattice,
        }
    }

    /// Decode a participant's ciphertext vector and add it to the sum.
    fn add(&mut self, payload: &[u8]) -> Result<(), ApiError> {
        match self {
            Scheme::Paillier {
                pk,
                ciphertexts,
                acc,
            } => {
                let cts = fedagg_paillier::decode_ciphertexts(pk, payload, *ciphertexts)
                    .map_err(|e| ApiError::bad_request(format!("ciphertexts: {e}")))?;
                if cts.len() != *ciphertexts {
                    return Err(ApiError::bad_request(format!(
                        "{} ciphertexts, expected {ciphertexts}",
                        cts.len()
                    )));
                }
                match acc {
                    None => *acc = Some(cts),
                    Some(acc) => {
                        for (a, c) in acc.iter_mut().zip(&cts) {
                            pk.add_assign(a, c);
                        }
                    }
                }
            }
            #[cfg(feature = "lattice")]
            Scheme::Lattice { len, acc, .. } => {
                let ct = fedagg_lattice::CiphertextVector::from_bytes(payload, *len)
                    .map_err(|e| ApiError::bad_request(format!("ciphertexts: {e}")))?;
                match acc {
                    None => *acc = Some(ct),
                    Some(acc) => acc
                        .add_assign(&ct)
                        .map_err(|e| ApiError::bad_request(format!("ciphertexts: {e}")))?,
                }
            }
        }
        Ok(())
    }

    /// The encrypted sum for the key holder.
    fn encode_sum(&self) -> Vec<u8> {
        match self {
            Scheme::Paillier { pk, acc, .. } => {
                fedagg_paillier::encode_ciphertexts(pk, acc.as_deref().unwrap_or(&[]))
            }
            #[cfg(feature = "lattice")]
            Scheme::Lattice { pk, len, acc } => acc
                .as_ref()
                .map_or_else(|| pk.zeros(*len).to_bytes(), |a| a.to_bytes()),
        }
    }
}

/// Check a lattice public key (hex of `fedagg-lattice`'s bytes) for `spec`; the canonical
/// text to store.
pub fn lattice_key(spec: &FederationSpec, hex_key: &str) -> Result<String, ApiError> {
    lattice_scheme(spec, hex_key)?;
    Ok(hex_key.to_ascii_lowercase())
}

#[cfg(feature = "lattice")]
fn lattice_scheme(spec: &FederationSpec, hex_key: &str) -> Result<Scheme, ApiError> {
    let params = fedagg_lattice::LatticeParams::new(&quant(spec)?)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let bytes = hex::decode(hex_key)
        .map_err(|e| ApiError::bad_request(format!("public key: not hex: {e}")))?;
    let pk = fedagg_lattice::PublicKey::from_bytes(&bytes, params)
        .map_err(|e| ApiError::bad_request(format!("public key: {e}")))?;
    Ok(Scheme::Lattice {
        pk,
        len: QuantParams::encoded_len(spec.vector_len),
        acc: None,
    })
}

#[cfg(not(feature = "lattice"))]
fn lattice_scheme(_spec: &FederationSpec, _hex_key: &str) -> Result<Scheme, ApiError> {
    Err(ApiError::invalid(
        "this server was built without the lattice mode (cargo feature `lattice`)",
    ))
}

/// Paillier or lattice: a running homomorphic sum, then the key holder's decryption.
pub struct HeEngine {
    quant: QuantParams,
    vector_len: usize,
    scheme: Scheme,
    submitted: BTreeSet<u32>,
    /// The decoded weighted mean of the key holder's decrypted sum.
    decrypted: Option<Vec<f64>>,
    decrypting: bool,
    n: usize,
    min: usize,
}

impl HeEngine {
    fn new(
        quant: QuantParams,
        spec: &FederationSpec,
        scheme: Scheme,
        n: usize,
        min: usize,
    ) -> Self {
        HeEngine {
            quant,
            vector_len: spec.vector_len,
            scheme,
            submitted: BTreeSet::new(),
            decrypted: None,
            decrypting: false,
            n,
            min,
        }
    }

    fn accept(&mut self, member: u32, payload: &[u8]) -> Result<(), ApiError> {
        if self.decrypting {
            if member != KEY_HOLDER {
                return Err(ApiError::forbidden(
                    "only the key holder submits in the decrypt phase",
                ));
            }
            let v = u64_values(payload, QuantParams::encoded_len(self.vector_len))?;
            // Decoded now, so a bad decryption is refused rather than failing the round.
            let (mean, _w) = self
                .quant
                .decode_weighted_mean(&v)
                .map_err(|e| ApiError::bad_request(format!("decrypted aggregate refused: {e}")))?;
            self.decrypted = Some(mean);
            return Ok(());
        }
        if member == KEY_HOLDER {
            return Err(ApiError::forbidden("the key holder does not contribute"));
        }
        self.scheme.add(payload)?;
        self.submitted.insert(member);
        Ok(())
    }

    fn close(&mut self) -> Result<Option<Finished>, String> {
        if !self.decrypting {
            if self.submitted.len() < self.min.max(1) {
                return Err(format!(
                    "{} encrypted updates arrived before the deadline, the federation requires {}",
                    self.submitted.len(),
                    self.min
                ));
            }
            self.decrypting = true;
            return Ok(None);
        }
        let mean = self
            .decrypted
            .take()
            .ok_or("the key holder did not decrypt the aggregate before the deadline")?;
        Ok(Some(Finished {
            update: mean.iter().map(|&x| x as f32).collect(),
            participants: self.submitted.len() as u32,
            ledger: None,
        }))
    }
}

/// Plaintext + central DP: clip each update on arrival into a running sum; noise and charge at
/// the end.
pub struct DpEngine {
    clip: f64,
    sigma: f64,
    q: f64,
    sum: Vec<f64>,
    count: u32,
    submitted: BTreeSet<u32>,
    ledger: Ledger,
    n: usize,
    min: usize,
}

impl DpEngine {
    fn accept(&mut self, member: u32, payload: &[u8]) -> Result<(), ApiError> {
        if member == KEY_HOLDER {
            return Err(ApiError::forbidden("the key holder does not contribute"));
        }
        let mut v = f32_values(payload, self.sum.len())?;
        fedagg_dp::clip::clip_l2(&mut v, self.clip)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        for (s, x) in self.sum.iter_mut().zip(&v) {
            *s += f64::from(*x);
        }
        self.count += 1;
        self.submitted.insert(member);
        Ok(())
    }

    fn close<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<Finished, String> {
        if (self.count as usize) < self.min.max(1) {
            return Err(format!(
                "{} updates arrived before the deadline, the federation requires {}",
                self.count, self.min
            ));
        }
        let mut ledger = self.ledger.clone();
        ledger
            .charge(self.q, self.sigma)
            .map_err(|e| format!("privacy budget: {e}"))?;
        let mut sum = std::mem::take(&mut self.sum);
        fedagg_dp::noise::add_gaussian(&mut sum, self.sigma * self.clip, rng)
            .map_err(|e| e.to_string())?;
        let n = f64::from(self.count);
        Ok(Finished {
            update: sum.iter().map(|&s| (s / n) as f32).collect(),
            participants: self.count,
            ledger: Some(ledger),
        })
    }
}
