//! Paillier or lattice: a running homomorphic sum of the participants' ciphertexts, then the key
//! holder's decryption of that sum.

use std::collections::BTreeSet;

use fedagg_api::{u64_values, FederationSpec, Phase};
use fedagg_paillier::{Ciphertext, Packing, PublicKey};
use fedagg_quant::QuantParams;

use super::{Finished, Step, KEY_HOLDER};
use crate::error::{Result, RoundError};

/// The encryption scheme, with its running sum.
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

/// A checked submission: decoded ciphertexts, or the key holder's decoded mean.
pub(crate) enum Checked {
    Paillier(Vec<Ciphertext>),
    #[cfg(feature = "lattice")]
    Lattice(fedagg_lattice::CiphertextVector),
    Decrypted(Vec<f64>),
}

/// Going from `submit` to `decrypt` carries no state.
pub(crate) struct Next;

pub(crate) struct HeEngine {
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
    pub(crate) fn paillier(
        spec: &FederationSpec,
        quant: QuantParams,
        key: &str,
        n: usize,
        min: usize,
    ) -> Result<Self> {
        let pk = PublicKey::from_text(key)
            .map_err(|e| RoundError::Internal(format!("stored public key: {e}")))?;
        let packing =
            Packing::new(&pk, &quant).map_err(|e| RoundError::Invalid(format!("packing: {e}")))?;
        let ciphertexts = packing.ciphertexts_for(QuantParams::encoded_len(spec.vector_len));
        let scheme = Scheme::Paillier {
            pk,
            ciphertexts,
            acc: None,
        };
        Ok(Self::new(quant, spec, scheme, n, min))
    }

    pub(crate) fn lattice(
        spec: &FederationSpec,
        quant: QuantParams,
        key: &str,
        n: usize,
        min: usize,
    ) -> Result<Self> {
        let scheme = lattice_scheme(spec, &quant, key)?;
        Ok(Self::new(quant, spec, scheme, n, min))
    }

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

    pub(crate) fn phase(&self) -> Phase {
        if self.decrypting {
            Phase::Decrypt
        } else {
            Phase::Submit
        }
    }

    /// The largest submission payload the current phase accepts: the ciphertext vector, or the
    /// key holder's sum of `vector_len + 1` u64 values.
    pub(crate) fn max_submission(&self) -> usize {
        let len = QuantParams::encoded_len(self.vector_len);
        if self.decrypting {
            return 8 * len;
        }
        match &self.scheme {
            Scheme::Paillier {
                pk, ciphertexts, ..
            } => fedagg_paillier::encoded_len(pk, *ciphertexts),
            #[cfg(feature = "lattice")]
            Scheme::Lattice { .. } => fedagg_lattice::CiphertextVector::encoded_len(len),
        }
    }

    pub(crate) fn expected(&self) -> usize {
        if self.decrypting {
            1
        } else {
            self.n
        }
    }

    pub(crate) fn received(&self) -> usize {
        if self.decrypting {
            usize::from(self.decrypted.is_some())
        } else {
            self.submitted.len()
        }
    }

    pub(crate) fn has_submitted(&self, member: u32) -> bool {
        if self.decrypting {
            member == KEY_HOLDER && self.decrypted.is_some()
        } else {
            self.submitted.contains(&member)
        }
    }

    pub(crate) fn key_holder_phase(&self) -> bool {
        self.decrypting
    }

    pub(crate) fn cohort(&self) -> usize {
        self.n
    }

    pub(crate) fn check(&self, member: u32, payload: &[u8]) -> Result<Checked> {
        let malformed =
            |e: &dyn std::fmt::Display| RoundError::Malformed(format!("ciphertexts: {e}"));
        if self.decrypting {
            if member != KEY_HOLDER {
                return Err(RoundError::Forbidden(
                    "only the key holder submits in the decrypt phase".into(),
                ));
            }
            let v = u64_values(payload, QuantParams::encoded_len(self.vector_len))?;
            // Decoded now, so a bad decryption is refused rather than failing the round.
            let (mean, _w) = self
                .quant
                .decode_weighted_mean(&v)
                .map_err(|e| RoundError::Malformed(format!("decrypted aggregate refused: {e}")))?;
            return Ok(Checked::Decrypted(mean));
        }
        if member == KEY_HOLDER {
            return Err(RoundError::Forbidden(
                "the key holder does not contribute".into(),
            ));
        }
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
                Ok(Checked::Paillier(cts))
            }
            #[cfg(feature = "lattice")]
            Scheme::Lattice { len, .. } => {
                // Decoded at the round's length, so adding it to the sum cannot fail.
                let ct = fedagg_lattice::CiphertextVector::from_bytes(payload, *len)
                    .map_err(|e| malformed(&e))?;
                Ok(Checked::Lattice(ct))
            }
        }
    }

    pub(crate) fn apply(&mut self, member: u32, checked: Checked) -> Result<()> {
        match (&mut self.scheme, checked) {
            (_, Checked::Decrypted(mean)) => {
                self.decrypted = Some(mean);
                return Ok(());
            }
            (Scheme::Paillier { pk, acc, .. }, Checked::Paillier(cts)) => match acc {
                None => *acc = Some(cts),
                Some(acc) => {
                    for (a, c) in acc.iter_mut().zip(&cts) {
                        pk.add_assign(a, c);
                    }
                }
            },
            #[cfg(feature = "lattice")]
            (Scheme::Lattice { acc, .. }, Checked::Lattice(ct)) => match acc {
                None => *acc = Some(ct),
                Some(acc) => acc
                    .add_assign(&ct)
                    .map_err(|e| RoundError::Internal(format!("ciphertexts: {e}")))?,
            },
            #[allow(unreachable_patterns)]
            _ => return Err(RoundError::Internal("ciphertexts of another scheme".into())),
        }
        self.submitted.insert(member);
        Ok(())
    }

    /// The encrypted sum, for the key holder in the decrypt phase.
    pub(crate) fn download(&self, member: u32) -> Option<Vec<u8>> {
        if !(self.decrypting && member == KEY_HOLDER) {
            return None;
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
        let mean = self
            .decrypted
            .as_ref()
            .ok_or("the key holder did not decrypt the aggregate before the deadline")?;
        Ok(Step::Finished(Finished {
            update: mean.iter().map(|&x| x as f32).collect(),
            participants: self.submitted.len() as u32,
            ledger: None,
        }))
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

/// Check a Paillier public key's text; the canonical text to store.
pub fn paillier_key(text: &str) -> Result<String> {
    let pk = PublicKey::from_text(text)
        .map_err(|e| RoundError::Malformed(format!("public key: {e}")))?;
    pk.check_service_size().map_err(|_| {
        RoundError::Invalid(format!(
            "a {}-bit Paillier key is too weak: the minimum is {} bits",
            pk.bits(),
            fedagg_paillier::MIN_SERVICE_KEY_BITS
        ))
    })?;
    Ok(pk.to_text())
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
        len: QuantParams::encoded_len(spec.vector_len),
        acc: None,
    })
}

#[cfg(not(feature = "lattice"))]
fn lattice_scheme(_spec: &FederationSpec, _quant: &QuantParams, _hex_key: &str) -> Result<Scheme> {
    Err(RoundError::Invalid(crate::spec::NO_LATTICE.into()))
}
