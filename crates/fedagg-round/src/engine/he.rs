//! Paillier or lattice: a running homomorphic sum of the participants' ciphertexts, then the key
//! holder's decryption of that sum.
//!
//! Two settings make the key holders trust the server less:
//! - *Verified decryption* (a federation with a `roster_authority`): each contribution carries
//!   its participant's signature ([`fedagg_api::contributions`]), checked here on arrival; in the
//!   decrypt phase the key holders download every signed contribution instead of the sum, and
//!   add them up themselves.
//! - *Threshold decryption* (a threshold Paillier key): `t` of the `k` key holders each send a
//!   partial decryption of the sum with its proof, checked here against the sum; the phase
//!   closes by combining `t` of them.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::VerifyingKey;
use fedagg_api::contributions::{self, Contribution, SIGNATURE_LEN};
use fedagg_api::{u64_values, Aggregate, FederationSpec, FrameKind, Mode, Phase};
use fedagg_paillier::{Ciphertext, Packing, PartialDecryption, PublicKey, ThresholdKey};
use fedagg_quant::QuantParams;

use super::{is_key_holder, Finished, Step};
use crate::error::{Result, RoundError};
use crate::plan::RoundParams;

/// The encryption scheme, with its running sum.
enum Scheme {
    Paillier {
        pk: PublicKey,
        ciphertexts: usize,
        acc: Option<Vec<Ciphertext>>,
        /// The key's threshold side, when `t` of `k` key holders decrypt together.
        threshold: Option<ThresholdKey>,
    },
    #[cfg(feature = "lattice")]
    Lattice {
        pk: fedagg_lattice::PublicKey,
        len: usize,
        acc: Option<fedagg_lattice::CiphertextVector>,
    },
}

/// A checked submission: decoded ciphertexts (with their signed form, under verified
/// decryption), the key holder's decoded mean, or a threshold key holder's verified partial
/// decryption.
pub(crate) enum Checked {
    Paillier(Vec<Ciphertext>, Option<Contribution>),
    #[cfg(feature = "lattice")]
    Lattice(fedagg_lattice::CiphertextVector, Option<Contribution>),
    Decrypted(Aggregate),
    Partial(PartialDecryption),
}

/// Verified decryption: who signs for each cohort index, and the signed contributions the key
/// holders download.
struct Verified {
    federation_id: i64,
    round: u64,
    /// `(participant id, identity key)` by cohort index.
    signers: Vec<(i64, VerifyingKey)>,
    contributions: Vec<Contribution>,
}

impl Verified {
    fn new(spec: &FederationSpec, id: (i64, u64), params: &RoundParams) -> Result<Option<Self>> {
        if !spec.verified_decryption() {
            return Ok(None);
        }
        if params.identities.len() != params.cohort.len() {
            return Err(RoundError::Internal(
                "a verified round without an identity for every member".into(),
            ));
        }
        let signers = params
            .cohort
            .iter()
            .zip(&params.identities)
            .map(|(&pid, key)| {
                let key = fedagg_api::trust::identity_key(key)
                    .map_err(|e| RoundError::Internal(format!("stored identity: {e}")))?;
                Ok((pid, key))
            })
            .collect::<Result<_>>()?;
        Ok(Some(Verified {
            federation_id: id.0,
            round: id.1,
            signers,
            contributions: Vec::new(),
        }))
    }

    /// Split `payload` into ciphertexts and signature, and check the signature under `member`'s
    /// identity.
    fn check<'a>(&self, member: u32, payload: &'a [u8]) -> Result<(&'a [u8], Contribution)> {
        let (cts, signature) = contributions::split_signed(payload)?;
        let (participant, key) = self.signers.get(member as usize).ok_or_else(|| {
            RoundError::Forbidden(format!("member {member} is not in the cohort"))
        })?;
        if !contributions::verify_contribution(key, self.federation_id, self.round, cts, &signature)
        {
            return Err(RoundError::Forbidden(format!(
                "participant {participant}'s contribution is not signed by its identity for this \
                 round"
            )));
        }
        Ok((
            cts,
            Contribution {
                participant: *participant,
                ciphertexts: cts.to_vec(),
                signature,
            },
        ))
    }
}

/// Going from `submit` to `decrypt` carries no state.
pub(crate) struct Next;

pub(crate) struct HeEngine {
    quant: QuantParams,
    /// The federation's spec: the layout of its updates.
    spec: FederationSpec,
    scheme: Scheme,
    submitted: BTreeSet<u32>,
    /// The decoded weighted mean of the key holder's decrypted sum.
    decrypted: Option<Aggregate>,
    /// Threshold decryption: the verified partial decryptions by holder index, and the members
    /// that sent them.
    partials: BTreeMap<u16, PartialDecryption>,
    partial_members: BTreeSet<u32>,
    verified: Option<Verified>,
    decrypting: bool,
    n: usize,
    min: usize,
}

impl HeEngine {
    /// An engine for round `id = (federation, round)` of `spec` with `params`, under the
    /// stored public `key` (a Paillier key, a threshold Paillier key, or a lattice key).
    pub(crate) fn new(
        spec: &FederationSpec,
        id: (i64, u64),
        params: &RoundParams,
        quant: QuantParams,
        key: &str,
    ) -> Result<Self> {
        let scheme = match spec.mode {
            Mode::Lattice { .. } => lattice_scheme(spec, &quant, key)?,
            _ => paillier_scheme(spec, &quant, key)?,
        };
        Ok(HeEngine {
            quant,
            spec: spec.clone(),
            scheme,
            submitted: BTreeSet::new(),
            decrypted: None,
            partials: BTreeMap::new(),
            partial_members: BTreeSet::new(),
            verified: Verified::new(spec, id, params)?,
            decrypting: false,
            n: params.cohort.len(),
            min: spec.min_clients as usize,
        })
    }

    fn threshold(&self) -> Option<&ThresholdKey> {
        match &self.scheme {
            Scheme::Paillier { threshold, .. } => threshold.as_ref(),
            #[cfg(feature = "lattice")]
            Scheme::Lattice { .. } => None,
        }
    }

    /// The frame kind of a submission in the current phase: a threshold holder's partial
    /// decryption, or `None` for the mode's usual kind.
    pub(crate) fn submission_kind(&self) -> Option<FrameKind> {
        (self.decrypting && self.threshold().is_some()).then_some(FrameKind::PartialDecryption)
    }

    /// The frame kind of the key holders' download: the signed contributions under verified
    /// decryption, or `None` for the encrypted sum.
    pub(crate) fn inbox_kind(&self) -> Option<FrameKind> {
        (self.decrypting && self.verified.is_some()).then_some(FrameKind::Contributions)
    }

    pub(crate) fn phase(&self) -> Phase {
        if self.decrypting {
            Phase::Decrypt
        } else {
            Phase::Submit
        }
    }

    /// The largest submission payload the current phase accepts: the ciphertext vector, or the
    /// key holder's sum of `vector_len + 1` u64 values.
    /// The largest body this phase reads. While decrypting, also a contribution's: a participant
    /// whose accepted submission's answer was lost (a server restart) retries it, and must get
    /// its replay answer, not a 413, once the round has moved on.
    pub(crate) fn max_submission(&self) -> usize {
        let contribution = self.contribution_len();
        if !self.decrypting {
            return contribution;
        }
        let len = QuantParams::encoded_len(self.spec.update_len());
        let decryption = match &self.scheme {
            Scheme::Paillier {
                threshold: Some(key),
                ciphertexts,
                ..
            } => fedagg_paillier::partials_len(key, *ciphertexts),
            _ => 8 * len,
        };
        decryption.max(contribution)
    }

    /// A participant's contribution: its ciphertexts, signed in a verified federation.
    fn contribution_len(&self) -> usize {
        let signature = if self.verified.is_some() {
            SIGNATURE_LEN
        } else {
            0
        };
        signature
            + match &self.scheme {
                Scheme::Paillier {
                    pk, ciphertexts, ..
                } => fedagg_paillier::encoded_len(pk, *ciphertexts),
                #[cfg(feature = "lattice")]
                Scheme::Lattice { .. } => fedagg_lattice::CiphertextVector::encoded_len(
                    QuantParams::encoded_len(self.spec.update_len()),
                ),
            }
    }

    pub(crate) fn expected(&self) -> usize {
        match (self.decrypting, self.threshold()) {
            (false, _) => self.n,
            (true, Some(key)) => usize::from(key.threshold()),
            (true, None) => 1,
        }
    }

    pub(crate) fn received(&self) -> usize {
        match (self.decrypting, self.threshold()) {
            (false, _) => self.submitted.len(),
            (true, Some(_)) => self.partials.len(),
            (true, None) => usize::from(self.decrypted.is_some()),
        }
    }

    pub(crate) fn has_submitted(&self, member: u32) -> bool {
        match (self.decrypting, self.threshold()) {
            (false, _) => self.submitted.contains(&member),
            (true, Some(_)) => self.partial_members.contains(&member),
            (true, None) => is_key_holder(member) && self.decrypted.is_some(),
        }
    }

    pub(crate) fn key_holder_phase(&self) -> bool {
        self.decrypting
    }

    pub(crate) fn cohort(&self) -> usize {
        self.n
    }

    pub(crate) fn check(&self, member: u32, payload: &[u8]) -> Result<Checked> {
        if self.decrypting {
            if !is_key_holder(member) {
                return Err(RoundError::Forbidden(
                    "only key holders submit in the decrypt phase".into(),
                ));
            }
            if let Some(key) = self.threshold() {
                return self.check_partial(key, payload);
            }
            let v = u64_values(payload, QuantParams::encoded_len(self.spec.update_len()))?;
            // Decoded now, so a bad decryption is refused rather than failing the round.
            let aggregate = self
                .spec
                .decode_quantized(&self.quant, &v, self.submitted.len() as u64)
                .map_err(|e| RoundError::Malformed(format!("decrypted aggregate refused: {e}")))?;
            return Ok(Checked::Decrypted(aggregate));
        }
        if is_key_holder(member) {
            return Err(RoundError::Forbidden(
                "the key holder does not contribute".into(),
            ));
        }
        let (payload, contribution) = match &self.verified {
            Some(v) => {
                let (cts, c) = v.check(member, payload)?;
                (cts, Some(c))
            }
            None => (payload, None),
        };
        let malformed =
            |e: &dyn std::fmt::Display| RoundError::Malformed(format!("ciphertexts: {e}"));
        match &self.scheme {
            Scheme::Paillier {
                pk, ciphertexts, ..
            } => {
                let cts = fedagg_paillier::decode_ciphertexts(pk, payload, *ciphertexts)
                    .map_err(|e| malformed(&e))?;
                if cts.len() != *ciphertexts {
                    return Err(RoundError::Malformed(format!(
                        "{} ciphertexts, expected {ciphertexts}",
                        cts.len()
                    )));
                }
                Ok(Checked::Paillier(cts, contribution))
            }
            #[cfg(feature = "lattice")]
            Scheme::Lattice { len, .. } => {
                // Decoded at the round's length, so adding it to the sum cannot fail.
                let ct = fedagg_lattice::CiphertextVector::from_bytes(payload, *len)
                    .map_err(|e| malformed(&e))?;
                Ok(Checked::Lattice(ct, contribution))
            }
        }
    }

    /// A threshold key holder's partial decryption of the sum: decoded, from a holder that has
    /// not sent one yet, its proof checked against the sum.
    fn check_partial(&self, key: &ThresholdKey, payload: &[u8]) -> Result<Checked> {
        let (ciphertexts, acc) = match &self.scheme {
            Scheme::Paillier {
                ciphertexts, acc, ..
            } => (*ciphertexts, acc),
            #[cfg(feature = "lattice")]
            Scheme::Lattice { .. } => {
                return Err(RoundError::Internal(
                    "a threshold key without Paillier".into(),
                ))
            }
        };
        let partial = fedagg_paillier::decode_partials(key, payload, ciphertexts)
            .map_err(|e| RoundError::Malformed(e.to_string()))?;
        if self.partials.contains_key(&partial.index) {
            return Err(RoundError::Duplicate(format!(
                "key holder {} already sent its partial decryption",
                partial.index
            )));
        }
        let sum = acc.as_deref().unwrap_or(&[]);
        key.verify(sum, &partial)
            .map_err(|e| RoundError::Malformed(format!("partial decryption refused: {e}")))?;
        Ok(Checked::Partial(partial))
    }

    pub(crate) fn apply(&mut self, member: u32, checked: Checked) -> Result<()> {
        let contribution = match (&mut self.scheme, checked) {
            (_, Checked::Decrypted(mean)) => {
                self.decrypted = Some(mean);
                return Ok(());
            }
            (_, Checked::Partial(p)) => {
                self.partials.insert(p.index, p);
                self.partial_members.insert(member);
                return Ok(());
            }
            (Scheme::Paillier { pk, acc, .. }, Checked::Paillier(cts, contribution)) => {
                match acc {
                    None => *acc = Some(cts),
                    Some(acc) => {
                        for (a, c) in acc.iter_mut().zip(&cts) {
                            pk.add_assign(a, c);
                        }
                    }
                }
                contribution
            }
            #[cfg(feature = "lattice")]
            (Scheme::Lattice { acc, .. }, Checked::Lattice(ct, contribution)) => {
                match acc {
                    None => *acc = Some(ct),
                    Some(acc) => acc
                        .add_assign(&ct)
                        .map_err(|e| RoundError::Internal(format!("ciphertexts: {e}")))?,
                }
                contribution
            }
            #[allow(unreachable_patterns)]
            _ => return Err(RoundError::Internal("ciphertexts of another scheme".into())),
        };
        if let (Some(v), Some(c)) = (&mut self.verified, contribution) {
            v.contributions.push(c);
        }
        self.submitted.insert(member);
        Ok(())
    }

    /// The encrypted sum for the key holders in the decrypt phase, or under verified decryption
    /// every signed contribution.
    pub(crate) fn download(&self, member: u32) -> Option<Vec<u8>> {
        if !(self.decrypting && is_key_holder(member)) {
            return None;
        }
        if let Some(v) = &self.verified {
            return Some(contributions::encode_contributions(&v.contributions));
        }
        let bytes = match &self.scheme {
            Scheme::Paillier { pk, acc, .. } => {
                fedagg_paillier::encode_ciphertexts(pk, acc.as_deref().unwrap_or(&[]))
            }
            #[cfg(feature = "lattice")]
            Scheme::Lattice { pk, len, acc } => acc
                .as_ref()
                .map_or_else(|| pk.zeros(*len).to_bytes(), |a| a.to_bytes()),
        };
        Some(bytes)
    }

    pub(crate) fn prepare_close(&self) -> Result<Step<Next>, String> {
        if !self.decrypting {
            if self.submitted.len() < self.min.max(1) {
                return Err(format!(
                    "{} encrypted updates arrived before the deadline, the federation requires {}",
                    self.submitted.len(),
                    self.min
                ));
            }
            return Ok(Step::Next(Next));
        }
        let aggregate = match self.threshold() {
            Some(key) => self.combine(key)?,
            None => self
                .decrypted
                .clone()
                .ok_or("the key holder did not decrypt the aggregate before the deadline")?,
        };
        Ok(Step::Finished(Finished {
            update: aggregate.update,
            control_sum: aggregate.control_sum,
            participants: self.submitted.len() as u32,
            ledger: None,
        }))
    }

    /// The weighted mean from `t` verified partial decryptions of the sum.
    fn combine(&self, key: &ThresholdKey) -> Result<Aggregate, String> {
        if self.partials.len() < usize::from(key.threshold()) {
            return Err(format!(
                "{} of the {} key holders needed sent partial decryptions before the deadline",
                self.partials.len(),
                key.threshold()
            ));
        }
        let partials: Vec<&PartialDecryption> = self.partials.values().collect();
        let plaintexts = key.combine(&partials).map_err(|e| e.to_string())?;
        let packing = Packing::new(key.public(), &self.quant).map_err(|e| e.to_string())?;
        let values = packing
            .unpack(
                &plaintexts,
                QuantParams::encoded_len(self.spec.update_len()),
            )
            .map_err(|e| e.to_string())?;
        self.spec
            .decode_quantized(&self.quant, &values, self.submitted.len() as u64)
            .map_err(|e| format!("the combined aggregate does not decode: {e}"))
    }

    pub(crate) fn commit(&mut self, _next: Next) {
        self.decrypting = true;
    }
}

/// Check a lattice public key (hex of `fedagg-lattice`'s bytes) for `spec`; the canonical text
/// to store.
pub fn lattice_key(spec: &FederationSpec, hex_key: &str) -> Result<String> {
    let quant = spec.quant().map_err(RoundError::Invalid)?;
    lattice_scheme(spec, &quant, hex_key)?;
    Ok(hex_key.to_ascii_lowercase())
}

/// Check a Paillier public key's text (a single key holder's key, or a threshold key); the
/// canonical text to store.
pub fn paillier_key(text: &str) -> Result<String> {
    let malformed = |e: fedagg_paillier::Error| RoundError::Malformed(format!("public key: {e}"));
    let (pk, canonical) = if fedagg_paillier::is_threshold_key(text) {
        let key = ThresholdKey::from_text(text).map_err(malformed)?;
        let canonical = key.to_text();
        (key.public().clone(), canonical)
    } else {
        let pk = PublicKey::from_text(text).map_err(malformed)?;
        let canonical = pk.to_text();
        (pk, canonical)
    };
    pk.check_service_size().map_err(|_| {
        RoundError::Invalid(format!(
            "a {}-bit Paillier key is too weak: the minimum is {} bits",
            pk.bits(),
            fedagg_paillier::MIN_SERVICE_KEY_BITS
        ))
    })?;
    Ok(canonical)
}

fn paillier_scheme(spec: &FederationSpec, quant: &QuantParams, key: &str) -> Result<Scheme> {
    let stored =
        |e: fedagg_paillier::Error| RoundError::Internal(format!("stored public key: {e}"));
    let (pk, threshold) = if fedagg_paillier::is_threshold_key(key) {
        let t = ThresholdKey::from_text(key).map_err(stored)?;
        (t.public().clone(), Some(t))
    } else {
        (PublicKey::from_text(key).map_err(stored)?, None)
    };
    let packing =
        Packing::new(&pk, quant).map_err(|e| RoundError::Invalid(format!("packing: {e}")))?;
    let ciphertexts = packing.ciphertexts_for(QuantParams::encoded_len(spec.update_len()));
    Ok(Scheme::Paillier {
        pk,
        ciphertexts,
        acc: None,
        threshold,
    })
}

#[cfg(feature = "lattice")]
fn lattice_scheme(spec: &FederationSpec, quant: &QuantParams, hex_key: &str) -> Result<Scheme> {
    let params = fedagg_lattice::LatticeParams::new(quant)
        .map_err(|e| RoundError::Invalid(e.to_string()))?;
    let bytes = hex::decode(hex_key)
        .map_err(|e| RoundError::Malformed(format!("public key: not hex: {e}")))?;
    let pk = fedagg_lattice::PublicKey::from_bytes(&bytes, params)
        .map_err(|e| RoundError::Malformed(format!("public key: {e}")))?;
    Ok(Scheme::Lattice {
        pk,
        len: QuantParams::encoded_len(spec.update_len()),
        acc: None,
    })
}

#[cfg(not(feature = "lattice"))]
fn lattice_scheme(_spec: &FederationSpec, _quant: &QuantParams, _hex_key: &str) -> Result<Scheme> {
    Err(RoundError::Invalid(crate::spec::NO_LATTICE.into()))
}
