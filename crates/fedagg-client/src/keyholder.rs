//! The key holder of a Paillier or lattice federation: publishes the public key and decrypts
//! only sums.
//!
//! What it decrypts, it checks first. In a federation with a `roster_authority` (verified
//! decryption, [`fedagg_api::contributions`]) it downloads every signed contribution of the
//! round, checks each signature against the roster the pinned authority signed, requires at least
//! `min_clients` distinct members, adds the ciphertexts up itself and decrypts only that sum: the
//! server cannot have it decrypt one participant's ciphertext. Without a roster authority there
//! is nothing to check a contribution against; a key holder then decrypts the server's sum only
//! when built with [`KeyHolder::unverified`], and says so loudly each time.
//!
//! It also decrypts at most one sum per round (a retry of the same sum is answered again), so a
//! server cannot obtain two different sums of one round, whose difference could be a single
//! update. This memory lasts as long as the `KeyHolder`, or across restarts with
//! [`KeyHolder::remember_in`], which writes it durably before any decryption leaves.
//!
//! With a threshold Paillier key ([`KeyHolder::threshold`]) it sends its partial decryption of the
//! sum, with a proof that it is correct, and the server combines `t` of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedagg_api::contributions::{self, Contribution};
use fedagg_api::{routes, u64_bytes, FederationSpec, FrameKind, Mode, Phase, PublicKeyBody};
use fedagg_paillier::{Ciphertext, KeyShare, Packing, PrivateKey, PublicKey};
use fedagg_quant::QuantParams;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::{checked_key, offload, quant_of, to_json, Client, Error, Outcome, Result};

/// A key holder's secret: which scheme, and the key.
enum HeKey {
    Paillier(PrivateKey),
    Threshold(KeyShare),
    #[cfg(feature = "lattice")]
    Lattice(fedagg_lattice::SecretKey, fedagg_lattice::PublicKey),
}

/// The encrypted sum, decoded.
enum Sum {
    Paillier(Vec<Ciphertext>),
    #[cfg(feature = "lattice")]
    Lattice(fedagg_lattice::CiphertextVector),
}

fn protocol(e: &dyn std::fmt::Display) -> Error {
    Error::Protocol(e.to_string())
}

impl HeKey {
    fn paillier_key(&self) -> Option<&PublicKey> {
        match self {
            HeKey::Paillier(sk) => Some(sk.public()),
            HeKey::Threshold(share) => Some(share.key().public()),
            #[cfg(feature = "lattice")]
            HeKey::Lattice(..) => None,
        }
    }

    /// Ciphertexts (Paillier) of a vector of `len` quantized values.
    fn ciphertexts(&self, quant: &QuantParams, len: usize) -> Result<usize> {
        let pk = self
            .paillier_key()
            .ok_or_else(|| Error::Protocol("not a Paillier key".into()))?;
        let packing = Packing::new(pk, quant).map_err(|e| protocol(&e))?;
        Ok(packing.ciphertexts_for(len))
    }

    /// Decode one ciphertext vector of `len` quantized values.
    fn decode(&self, quant: &QuantParams, bytes: &[u8], len: usize) -> Result<Sum> {
        match self.paillier_key() {
            Some(pk) => {
                let count = self.ciphertexts(quant, len)?;
                let cts = fedagg_paillier::decode_ciphertexts(pk, bytes, count)
                    .map_err(|e| protocol(&e))?;
                if cts.len() != count {
                    return Err(Error::Protocol(format!(
                        "{} ciphertexts, expected {count}",
                        cts.len()
                    )));
                }
                Ok(Sum::Paillier(cts))
            }
            #[cfg(feature = "lattice")]
            None => Ok(Sum::Lattice(
                fedagg_lattice::CiphertextVector::from_bytes(bytes, len)
                    .map_err(|e| protocol(&e))?,
            )),
            #[cfg(not(feature = "lattice"))]
            None => Err(Error::Protocol("no key".into())),
        }
    }

    /// The homomorphic sum of the contributions, computed here.
    fn add_up(&self, quant: &QuantParams, entries: &[Contribution], len: usize) -> Result<Sum> {
        let mut sum: Option<Sum> = None;
        for c in entries {
            let next = self.decode(quant, &c.ciphertexts, len)?;
            sum = Some(match (sum, next) {
                (None, next) => next,
                (Some(Sum::Paillier(mut acc)), Sum::Paillier(cts)) => {
                    let pk = self
                        .paillier_key()
                        .ok_or_else(|| Error::Protocol("not a Paillier key".into()))?;
                    for (a, c) in acc.iter_mut().zip(&cts) {
                        pk.add_assign(a, c);
                    }
                    Sum::Paillier(acc)
                }
                #[cfg(feature = "lattice")]
                (Some(Sum::Lattice(mut acc)), Sum::Lattice(ct)) => {
                    acc.add_assign(&ct).map_err(|e| protocol(&e))?;
                    Sum::Lattice(acc)
                }
                #[allow(unreachable_patterns)]
                _ => return Err(Error::Protocol("ciphertexts of two schemes".into())),
            });
        }
        sum.ok_or_else(|| Error::Protocol("no contribution to decrypt".into()))
    }

    /// The bytes identifying a sum: what the one-sum-per-round rule compares.
    fn digest(&self, sum: &Sum) -> [u8; 32] {
        let bytes = match (sum, self.paillier_key()) {
            (Sum::Paillier(cts), Some(pk)) => fedagg_paillier::encode_ciphertexts(pk, cts),
            #[cfg(feature = "lattice")]
            (Sum::Lattice(ct), _) => ct.to_bytes(),
            #[allow(unreachable_patterns)]
            _ => Vec::new(),
        };
        Sha256::digest(bytes).into()
    }

    /// Decrypt `sum` of `len` quantized values: the submission's frame kind and payload (the
    /// decrypted values, or a threshold holder's partial decryption).
    fn decrypt(&self, quant: &QuantParams, sum: &Sum, len: usize) -> Result<(FrameKind, Vec<u8>)> {
        match (self, sum) {
            (HeKey::Paillier(sk), Sum::Paillier(cts)) => {
                let packing = Packing::new(sk.public(), quant).map_err(|e| protocol(&e))?;
                let values = packing
                    .decrypt_on(sk, cts, len, crate::crypto_threads())
                    .map_err(|e| protocol(&e))?;
                Ok((FrameKind::U64, u64_bytes(&values)))
            }
            (HeKey::Threshold(share), Sum::Paillier(cts)) => {
                let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(|e| protocol(&e))?;
                let partial = share.partial_decrypt(cts, &mut rng);
                Ok((
                    FrameKind::PartialDecryption,
                    fedagg_paillier::encode_partials(share.key(), &partial),
                ))
            }
            #[cfg(feature = "lattice")]
            (HeKey::Lattice(sk, _), Sum::Lattice(ct)) => {
                Ok((FrameKind::U64, u64_bytes(&sk.decrypt(ct))))
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::Protocol("a sum under another scheme".into())),
        }
    }
}

/// The key holder of a Paillier or lattice federation (see the module docs).
pub struct KeyHolder {
    client: Client,
    key: Arc<HeKey>,
    verify: bool,
    /// The digest of the sum decrypted in each round.
    decrypted: Mutex<BTreeMap<u64, [u8; 32]>>,
    /// Where that memory is kept across restarts.
    memory: Option<std::path::PathBuf>,
}

/// The file of [`KeyHolder::remember_in`].
#[derive(serde::Serialize, serde::Deserialize)]
struct Memory {
    federation_id: i64,
    /// Round number to the hex SHA-256 of the sum decrypted in it.
    decrypted: BTreeMap<u64, String>,
}

impl KeyHolder {
    fn with_key(client: Client, key: HeKey) -> Self {
        KeyHolder {
            client,
            key: Arc::new(key),
            verify: true,
            decrypted: Mutex::new(BTreeMap::new()),
            memory: None,
        }
    }

    /// Keep the digest of each round's decrypted sum in `path` (created if missing), so that a
    /// restarted key holder still refuses a second, different sum for a round it decrypted. Each
    /// digest is written durably before its decryption is sent.
    pub fn remember_in(mut self, path: &std::path::Path) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| protocol(&format!("{}: {e}", path.display()));
        let federation_id = self.client.federation_id;
        match std::fs::read(path) {
            Ok(bytes) => {
                let m: Memory = serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
                if m.federation_id != federation_id {
                    return Err(bad(&format!(
                        "this file remembers federation {}, not {federation_id}",
                        m.federation_id
                    )));
                }
                let mut done = BTreeMap::new();
                for (round, digest) in m.decrypted {
                    let mut d = [0u8; 32];
                    hex::decode_to_slice(&digest, &mut d).map_err(|e| bad(&e))?;
                    done.insert(round, d);
                }
                self.decrypted = Mutex::new(done);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(&e)),
        }
        self.memory = Some(path.to_path_buf());
        Ok(self)
    }

    /// The rounds this key holder has decrypted a sum of (in this process, or remembered).
    pub fn decrypted_rounds(&self) -> Vec<u64> {
        self.decrypted
            .lock()
            .map(|d| d.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Write the memory (under its lock, so two rounds never interleave their writes).
    fn persist(&self, done: &BTreeMap<u64, [u8; 32]>) -> Result<()> {
        let Some(path) = &self.memory else {
            return Ok(());
        };
        let m = Memory {
            federation_id: self.client.federation_id,
            decrypted: done.iter().map(|(r, d)| (*r, hex::encode(d))).collect(),
        };
        let bytes = serde_json::to_vec(&m).map_err(|e| protocol(&e))?;
        crate::identity::replace_durably(path, &bytes)
            .map_err(|e| protocol(&format!("{}: {e}", path.display())))
    }

    /// A Paillier key holder with its enrolled client and private key.
    pub fn new(client: Client, key: PrivateKey) -> Self {
        Self::with_key(client, HeKey::Paillier(key))
    }

    /// One of a threshold Paillier key's holders, with its share (`fedagg keygen --holders k
    /// --threshold t`).
    pub fn threshold(client: Client, share: KeyShare) -> Self {
        Self::with_key(client, HeKey::Threshold(share))
    }

    /// A Paillier key holder with the key in `path`: `fedagg keygen`'s `paillier.key`, or a
    /// holder's `holder-<i>.key` share of a threshold key (told apart by the file's first line).
    pub fn from_key_file(client: Client, path: &std::path::Path) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| protocol(&format!("{}: {e}", path.display()));
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(&e))?);
        Ok(if fedagg_paillier::is_key_share(&text) {
            Self::threshold(client, KeyShare::from_text(&text).map_err(|e| bad(&e))?)
        } else {
            Self::new(client, PrivateKey::from_text(&text).map_err(|e| bad(&e))?)
        })
    }

    /// A lattice key holder with its enrolled client and key pair (`fedagg_lattice::keygen`).
    #[cfg(feature = "lattice")]
    pub fn lattice(
        client: Client,
        secret: fedagg_lattice::SecretKey,
        public: fedagg_lattice::PublicKey,
    ) -> Self {
        Self::with_key(client, HeKey::Lattice(secret, public))
    }

    /// Decrypt the server's sum without checking who contributed to it, in a federation without
    /// a roster authority. The server alone could then have one participant's ciphertext
    /// decrypted: a warning says so at every decryption.
    pub fn unverified(mut self) -> Self {
        tracing::warn!(
            federation = self.client.federation_id,
            "this key holder decrypts sums it cannot verify: the server alone could have a \
             single participant's update decrypted"
        );
        self.verify = false;
        self
    }

    /// Publish the public key to the federation (a Paillier key must have at least 2048 bits;
    /// a threshold key is published whole, with its holders' verification keys).
    pub async fn publish(&self) -> Result<()> {
        let body = self.public_key_body()?;
        self.client
            .http
            .send(
                Method::PUT,
                &self.client.fpath(routes::PUBLIC_KEY, &[]),
                to_json(&body)?,
            )
            .await
            .map(drop)
    }

    /// Publish the public key unless the federation already has this very key (`Ok(false)`).
    /// When it has another key, refuse: its members pinned that one, and replacing it would
    /// lock them out (and a key holder that decrypts with the wrong key releases nothing).
    pub async fn publish_unless_published(&self) -> Result<bool> {
        let fed = self.client.federation().await?;
        if !fed.has_public_key {
            self.publish().await?;
            return Ok(true);
        }
        let theirs: PublicKeyBody = self
            .client
            .http
            .json(
                Method::GET,
                &self.client.fpath(routes::PUBLIC_KEY, &[]),
                crate::Body::None,
            )
            .await?;
        let ours = self.public_key_body()?;
        let same = match (
            &ours.paillier,
            &theirs.paillier,
            &ours.lattice,
            &theirs.lattice,
        ) {
            (Some(a), Some(b), None, None) => {
                crate::paillier_public(a)?.to_text() == crate::paillier_public(b)?.to_text()
            }
            (None, None, Some(a), Some(b)) => a == b,
            _ => false,
        };
        if same {
            Ok(false)
        } else {
            Err(Error::Untrusted(format!(
                "federation {} already has another public key: this key holder's key is not                  the one its members pinned",
                self.client.federation_id
            )))
        }
    }

    /// The public key as published.
    fn public_key_body(&self) -> Result<PublicKeyBody> {
        Ok(match &*self.key {
            HeKey::Paillier(k) => PublicKeyBody {
                paillier: Some(checked_key(k.public())?.to_text()),
                lattice: None,
            },
            HeKey::Threshold(share) => {
                checked_key(share.key().public())?;
                PublicKeyBody {
                    paillier: Some(share.key().to_text()),
                    lattice: None,
                }
            }
            #[cfg(feature = "lattice")]
            HeKey::Lattice(_, pk) => PublicKeyBody {
                paillier: None,
                lattice: Some(hex::encode(pk.to_bytes())),
            },
        })
    }

    /// Wait for `round` to reach its decrypt phase, check and decrypt the sum and submit it;
    /// then wait for the outcome.
    pub async fn decrypt_round(&self, round: u64, timeout: Duration) -> Result<Outcome> {
        let until = Instant::now() + timeout;
        let c = &self.client;
        let fed = c.federation().await?;
        let spec = &fed.spec;
        let quant = quant_of(spec)?;
        let mut info = c.round(round, None, Duration::ZERO).await?;
        c.await_phase(&mut info, Phase::Decrypt, until).await?;
        let len = QuantParams::encoded_len(spec.update_len());
        let sum = self.sum(spec, round, &quant, len).await?;
        self.once_per_round(round, &sum)?;
        let key = self.key.clone();
        // Decrypting is CPU work on the whole aggregate: off the async threads.
        let (kind, payload) = offload(move || key.decrypt(&quant, &sum, len)).await??;
        match c.submit(round, kind, &payload).await {
            Ok(()) => {}
            // Threshold: `t` other holders decrypted first and the round has moved on without
            // this share; its outcome is what follows.
            Err(Error::Api { status: 409, .. }) if matches!(*self.key, HeKey::Threshold(_)) => {}
            Err(e) => return Err(e),
        }
        c.await_phase(&mut info, Phase::Done, until).await?;
        Ok(Outcome {
            round,
            status: info.status,
            record: info.record,
        })
    }

    /// The sum to decrypt: added up here from the verified contributions, or (unverified) the
    /// server's.
    async fn sum(
        &self,
        spec: &FederationSpec,
        round: u64,
        quant: &QuantParams,
        len: usize,
    ) -> Result<Sum> {
        let c = &self.client;
        if spec.verified_decryption() {
            let bytes = c.inbox(round, FrameKind::Contributions).await?;
            let roster = c.roster().await?;
            let max_len = self.max_contribution(spec, quant, len)?;
            let entries =
                contributions::decode_contributions(&bytes, spec.max_clients as usize, max_len)
                    .map_err(|e| protocol(&e))?;
            contributions::verify_contributions(
                c.federation_id,
                round,
                &entries,
                &roster,
                spec.min_clients as usize,
            )
            .map_err(|e| Error::Untrusted(e.0))?;
            let key = self.key.clone();
            let quant = *quant;
            return offload(move || key.add_up(&quant, &entries, len)).await?;
        }
        if self.verify {
            return Err(Error::Untrusted(format!(
                "federation {} has no roster authority, so the key holder cannot check who \
                 contributed to the sum it is asked to decrypt (KeyHolder::unverified decrypts \
                 it anyway)",
                c.federation_id
            )));
        }
        tracing::warn!(
            federation = c.federation_id,
            round,
            "decrypting the server's sum unverified"
        );
        let kind = match spec.mode {
            Mode::Lattice { .. } => FrameKind::Lattice,
            _ => FrameKind::Paillier,
        };
        let bytes = c.inbox(round, kind).await?;
        self.key.decode(quant, &bytes, len)
    }

    /// The largest ciphertext vector a participant sends.
    fn max_contribution(
        &self,
        spec: &FederationSpec,
        quant: &QuantParams,
        len: usize,
    ) -> Result<usize> {
        match (&spec.mode, self.key.paillier_key()) {
            (Mode::Lattice { .. }, _) | (_, None) => Ok(lattice_len(len)),
            (_, Some(pk)) => Ok(fedagg_paillier::encoded_len(
                pk,
                self.key.ciphertexts(quant, len)?,
            )),
        }
    }

    /// Refuse a second, different sum for a round already decrypted.
    fn once_per_round(&self, round: u64, sum: &Sum) -> Result<()> {
        let digest = self.key.digest(sum);
        let mut done = self
            .decrypted
            .lock()
            .map_err(|_| Error::Protocol("key holder state poisoned".into()))?;
        match done.get(&round) {
            Some(d) if *d != digest => Err(Error::Untrusted(format!(
                "asked to decrypt a second, different sum for round {round}: two sums of one \
                 round could reveal a single update"
            ))),
            Some(_) => Ok(()),
            None => {
                done.insert(round, digest);
                if let Err(e) = self.persist(&done) {
                    done.remove(&round);
                    return Err(e);
                }
                Ok(())
            }
        }
    }
}

#[cfg(feature = "lattice")]
fn lattice_len(len: usize) -> usize {
    fedagg_lattice::CiphertextVector::encoded_len(len)
}

#[cfg(not(feature = "lattice"))]
fn lattice_len(_len: usize) -> usize {
    0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_core::SeedableRng;

    fn key_holder(sk: PrivateKey, federation: i64) -> KeyHolder {
        let pin: fedagg_api::trust::Pin = "ab".repeat(32).parse().unwrap();
        let client = Client::connect("http://127.0.0.1:8470", "t", federation, 2, pin).unwrap();
        KeyHolder::new(client, sk)
    }

    #[test]
    fn a_restarted_key_holder_still_refuses_a_second_sum_for_a_round() {
        let dir = std::env::temp_dir().join(format!("fedagg-khmem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("decrypted.json");
        let _ = std::fs::remove_file(&path);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sk = fedagg_paillier::keygen(2048, &mut rng).unwrap();
        let text = sk.to_text();
        let sum = |v: u64, rng: &mut ChaCha20Rng| {
            Sum::Paillier(vec![sk
                .public()
                .encrypt(&fedagg_paillier::BigUint::from(v), rng)
                .unwrap()])
        };
        let (a, b) = (sum(5, &mut rng), sum(6, &mut rng));
        let kh = key_holder(PrivateKey::from_text(&text).unwrap(), 7)
            .remember_in(&path)
            .unwrap();
        kh.once_per_round(3, &a).unwrap();
        kh.once_per_round(3, &a).unwrap();
        assert!(matches!(kh.once_per_round(3, &b), Err(Error::Untrusted(_))));
        drop(kh);
        // After a restart: the same sum again is fine, another is refused, other rounds go on.
        let kh = key_holder(PrivateKey::from_text(&text).unwrap(), 7)
            .remember_in(&path)
            .unwrap();
        assert_eq!(kh.decrypted_rounds(), vec![3]);
        kh.once_per_round(3, &a).unwrap();
        assert!(matches!(kh.once_per_round(3, &b), Err(Error::Untrusted(_))));
        kh.once_per_round(4, &b).unwrap();
        // Another federation's memory is refused rather than mixed in.
        let other = key_holder(PrivateKey::from_text(&text).unwrap(), 8).remember_in(&path);
        assert!(other.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
