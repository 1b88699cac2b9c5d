//! What a participant pins at enrollment, so that it need not trust the server for the
//! parameters that protect it from the server.
//!
//! The admin hands each member an *enrollment bundle* out of band: the single-use code, a
//! fingerprint of the federation (its id and every parameter of its spec, including the threat
//! model) and, for Paillier and lattice federations, a fingerprint of the key holder's public
//! key. The SDK checks the federation the server describes against the first fingerprint, and the
//! key the server hands out against the second, before it uses either; it derives the SecAgg
//! graph and threshold itself from the pinned spec ([`SecaggSession::verified_config`]), and
//! refuses a round whose parameters differ, naming what differed.
//!
//! Bundle text: `<code>.<federation fingerprint>[.<key fingerprint>]`, fingerprints in lowercase
//! hex; the code (`fe_` and hex) has no dot. The pin alone (`<federation>[.<key>]`) is what a
//! member stores beside its token to reconnect later.

use std::fmt;
use std::str::FromStr;

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{FederationSpec, Mode, RosterEntry, SecaggSession, SignedRoster};

/// A SHA-256 fingerprint.
pub type Fingerprint = [u8; 32];

/// What a member pinned at enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// Fingerprint of the federation: [`federation_fingerprint`].
    pub federation: Fingerprint,
    /// Fingerprint of the key holder's public key ([`key_fingerprint`]), in Paillier and lattice
    /// federations.
    pub public_key: Option<Fingerprint>,
}

/// The fingerprint of federation `id` with `spec`: SHA-256 over a domain tag, the id and the
/// spec's JSON (field order and number formatting are fixed by the types, so server and SDK
/// compute the same bytes from equal specs).
pub fn federation_fingerprint(id: i64, spec: &FederationSpec) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(b"fedagg federation v1\0");
    h.update(id.to_le_bytes());
    // Serializing plain data cannot fail; an empty spec text would only make the pin unmatchable.
    h.update(serde_json::to_vec(spec).unwrap_or_default());
    h.finalize().into()
}

/// The fingerprint of a public key as the server stores and serves it (the Paillier key text, or
/// the lattice key's hex), for a federation of `mode`.
pub fn key_fingerprint(mode: &Mode, key: &str) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(b"fedagg public key v1\0");
    h.update(mode.name().as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    h.finalize().into()
}

/// Why a member refused what the server sent: the pinned value and the one received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

fn short(fp: &Fingerprint) -> String {
    hex::encode(&fp[..8])
}

impl Pin {
    /// The pin of federation `id` with `spec`, and its published key where there is one.
    pub fn new(id: i64, spec: &FederationSpec, public_key: Option<&str>) -> Pin {
        Pin {
            federation: federation_fingerprint(id, spec),
            public_key: public_key.map(|k| key_fingerprint(&spec.mode, k)),
        }
    }

    /// Check the federation the server describes.
    pub fn check_federation(&self, id: i64, spec: &FederationSpec) -> Result<(), Mismatch> {
        let got = federation_fingerprint(id, spec);
        if got == self.federation {
            return Ok(());
        }
        Err(Mismatch(format!(
            "federation {id}'s parameters differ from those pinned at enrollment \
             (fingerprint {}…, pinned {}…)",
            short(&got),
            short(&self.federation)
        )))
    }

    /// Check the public key the server hands out for a federation of `mode`.
    pub fn check_key(&self, mode: &Mode, key: &str) -> Result<(), Mismatch> {
        let Some(pinned) = self.public_key else {
            return Err(Mismatch(format!(
                "no public key was pinned at enrollment, so a {} key from the server cannot be \
                 trusted: enroll with a code issued after the key holder published its key",
                mode.name()
            )));
        };
        let got = key_fingerprint(mode, key);
        if got == pinned {
            return Ok(());
        }
        Err(Mismatch(format!(
            "the public key differs from the one pinned at enrollment (fingerprint {}…, pinned \
             {}…)",
            short(&got),
            short(&pinned)
        )))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.federation))?;
        if let Some(k) = &self.public_key {
            write!(f, ".{}", hex::encode(k))?;
        }
        Ok(())
    }
}

impl FromStr for Pin {
    type Err = Mismatch;

    fn from_str(s: &str) -> Result<Pin, Mismatch> {
        let fp = |part: &str| -> Result<Fingerprint, Mismatch> {
            let mut out = [0u8; 32];
            hex::decode_to_slice(part, &mut out)
                .map_err(|e| Mismatch(format!("a pin's fingerprint {part:?}: {e}")))?;
            Ok(out)
        };
        let mut parts = s.split('.');
        let federation = fp(parts.next().unwrap_or_default())?;
        let public_key = parts.next().map(fp).transpose()?;
        if parts.next().is_some() {
            return Err(Mismatch("a pin has at most two fingerprints".into()));
        }
        Ok(Pin {
            federation,
            public_key,
        })
    }
}

/// The bundle text for `code` and `pin`.
pub fn bundle(code: &str, pin: &Pin) -> String {
    format!("{code}.{pin}")
}

/// Split a bundle into its code and pin. A bare code (no fingerprint) is refused: it would leave
/// the member trusting the server for everything.
pub fn split_bundle(bundle: &str) -> Result<(&str, Pin), Mismatch> {
    let Some((code, pin)) = bundle.trim().split_once('.') else {
        return Err(Mismatch(
            "the enrollment code carries no federation fingerprint: ask the admin for the \
             whole bundle (`code.fingerprint`)"
                .into(),
        ));
    };
    Ok((code, pin.parse()?))
}

/// The bytes the enrollment authority signs for federation `federation_id`'s roster: a domain
/// tag, the id, then each member's id and identity key, ascending by id. Refuses keys that are
/// not 32-byte Ed25519 points, and ids out of order or repeated.
pub fn roster_message(federation_id: i64, members: &[RosterEntry]) -> Result<Vec<u8>, Mismatch> {
    let mut out = Vec::with_capacity(32 + 40 * members.len());
    out.extend_from_slice(b"fedagg roster v1\0");
    out.extend_from_slice(&federation_id.to_le_bytes());
    let mut last = None;
    for m in members {
        if last.is_some_and(|l| l >= m.participant_id) {
            return Err(Mismatch(format!(
                "roster ids must ascend; {} is out of order",
                m.participant_id
            )));
        }
        last = Some(m.participant_id);
        out.extend_from_slice(&m.participant_id.to_le_bytes());
        out.extend_from_slice(identity_key(&m.identity_key)?.as_bytes());
    }
    Ok(out)
}

/// Parse an Ed25519 public key written as 64 hex digits.
pub fn identity_key(hex_key: &str) -> Result<VerifyingKey, Mismatch> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut b)
        .map_err(|e| Mismatch(format!("identity key {hex_key:?}: {e}")))?;
    let key = VerifyingKey::from_bytes(&b)
        .map_err(|_| Mismatch(format!("identity key {hex_key} is not an Ed25519 point")))?;
    if key.is_weak() {
        return Err(Mismatch(format!(
            "identity key {hex_key} is of small order"
        )));
    }
    Ok(key)
}

/// Sign federation `federation_id`'s roster of `members` (sorted here) with the enrollment
/// authority's key.
pub fn sign_roster(
    authority: &SigningKey,
    federation_id: i64,
    mut members: Vec<RosterEntry>,
) -> Result<SignedRoster, Mismatch> {
    members.sort_by_key(|m| m.participant_id);
    let msg = roster_message(federation_id, &members)?;
    Ok(SignedRoster {
        signature: hex::encode(authority.sign(&msg).to_bytes()),
        members,
    })
}

/// Check a signed roster against the authority's public key (64 hex digits): each member's
/// identity key, by participant id.
pub fn verify_roster(
    authority: &str,
    federation_id: i64,
    roster: &SignedRoster,
) -> Result<BTreeMap<i64, VerifyingKey>, Mismatch> {
    let key = identity_key(authority).map_err(|e| Mismatch(format!("roster authority: {e}")))?;
    let msg = roster_message(federation_id, &roster.members)?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(&roster.signature, &mut sig)
        .map_err(|e| Mismatch(format!("roster signature: {e}")))?;
    key.verify_strict(&msg, &Signature::from_bytes(&sig))
        .map_err(|_| {
            Mismatch(format!(
                "federation {federation_id}'s roster is not signed by the pinned enrollment \
                 authority"
            ))
        })?;
    roster
        .members
        .iter()
        .map(|m| Ok((m.participant_id, identity_key(&m.identity_key)?)))
        .collect()
}

impl SecaggSession {
    /// [`SecaggSession::config`] after checking every safety parameter against the pinned
    /// `spec`: the cohort within `min_clients..=max_clients` (at least 3), the graph and
    /// threshold that the pinned threat model gives for that cohort, and the modulus of the
    /// pinned quantization. The member's neighbours then follow from the graph seed, here.
    /// Against a malicious server, every member's identity comes from `roster` (verified by the
    /// caller under the pinned authority), never from the server's list.
    pub fn verified_config(
        &self,
        spec: &FederationSpec,
        roster: Option<&BTreeMap<i64, VerifyingKey>>,
    ) -> Result<fedagg_secagg::SessionConfig, Mismatch> {
        let bad = |s: String| Err(Mismatch(s));
        let Some(threat) = spec.mode.threat_model() else {
            return bad(format!(
                "a SecAgg session for a {} federation",
                spec.mode.name()
            ));
        };
        let least = spec.min_clients.max(3);
        if self.n < least || self.n > spec.max_clients {
            return bad(format!(
                "cohort of {} outside the pinned {least}..={}",
                self.n, spec.max_clients
            ));
        }
        let want = fedagg_secagg::GraphParams::derive(self.n, &threat)
            .map_err(|e| Mismatch(e.to_string()))?;
        if self.threshold as usize != want.threshold {
            return bad(format!(
                "threshold {} differs from {}, which the pinned threat model gives for a \
                 cohort of {}",
                self.threshold, want.threshold, self.n
            ));
        }
        if self.half_degree != want.half_degree {
            let show =
                |h: Option<u32>| h.map_or("complete".into(), |h| format!("degree {}", 2 * h));
            return bad(format!(
                "graph {} differs from the {}, which the pinned threat model gives for a \
                 cohort of {}",
                show(self.half_degree),
                show(want.half_degree),
                self.n
            ));
        }
        let (elements, bits) = spec.secagg_vector().map_err(Mismatch)?;
        if self.modulus_bits != bits {
            return bad(format!(
                "modulus of {} bits differs from the pinned spec's {bits}",
                self.modulus_bits
            ));
        }
        let identities = if spec.mode.malicious_server() {
            Some(self.identities_from(roster)?)
        } else {
            None
        };
        let cfg = self.config_with(elements, identities).map_err(Mismatch)?;
        // Distributed DP: the noise covers sums of `min_clients` survivors, so a member helps
        // unmask no smaller set, whatever the threshold allows.
        Ok(match spec.mode {
            Mode::SecaggDp { .. } => cfg.with_min_survivors(spec.min_clients as usize),
            _ => cfg,
        })
    }

    /// Each member's identity key from the verified roster, by member index; a member missing
    /// from it, or listed by the server with another key, is refused by name.
    fn identities_from(
        &self,
        roster: Option<&BTreeMap<i64, VerifyingKey>>,
    ) -> Result<Vec<VerifyingKey>, Mismatch> {
        let roster = roster
            .ok_or_else(|| Mismatch("a malicious-server session needs the signed roster".into()))?;
        if self.cohort.len() != self.n as usize {
            return Err(Mismatch(format!(
                "the session lists {} members for a cohort of {}",
                self.cohort.len(),
                self.n
            )));
        }
        self.cohort
            .iter()
            .enumerate()
            .map(|(i, pid)| {
                let key = roster.get(pid).ok_or_else(|| {
                    Mismatch(format!("participant {pid} is not on the signed roster"))
                })?;
                let listed = self.identities.get(i).map(String::as_str);
                if listed != Some(hex::encode(key.as_bytes()).as_str()) {
                    return Err(Mismatch(format!(
                        "the server lists participant {pid} with an identity key other than \
                         the signed roster's"
                    )));
                }
                Ok(*key)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec() -> FederationSpec {
        FederationSpec {
            name: "t".into(),
            vector_len: 10,
            mode: Mode::Secagg {
                clip: 1.0,
                levels: 1 << 16,
                max_weight: 100,
                dropout_rate: 0.1,
                corrupt_fraction: 0.05,
                malicious_server: false,
            },
            min_clients: 4,
            max_clients: 500,
            phase_timeout_secs: 60,
            server_lr: 1.0,
            auto_rounds: false,
            roster_authority: None,
            scaffold: false,
        }
    }

    fn session(spec: &FederationSpec, n: u32) -> SecaggSession {
        let gp = fedagg_secagg::GraphParams::derive(n, &spec.mode.threat_model().unwrap()).unwrap();
        SecaggSession {
            session_id: "11".repeat(32),
            n,
            half_degree: gp.half_degree,
            graph_seed: "22".repeat(32),
            threshold: gp.threshold as u32,
            modulus_bits: spec.quant().unwrap().modulus().bits(),
            cohort: Vec::new(),
            identities: Vec::new(),
        }
    }

    #[test]
    fn a_bundle_round_trips_and_a_bare_code_is_refused() {
        let s = spec();
        let pin = Pin::new(7, &s, Some("key text"));
        let b = bundle("fe_00ab", &pin);
        let (code, back) = split_bundle(&b).unwrap();
        assert_eq!((code, back), ("fe_00ab", pin));
        assert_eq!(pin.to_string().parse::<Pin>().unwrap(), pin);
        let e = split_bundle("fe_00ab").unwrap_err();
        assert!(e.0.contains("no federation fingerprint"), "{e}");
        assert!(split_bundle("fe_00ab.zz").is_err());
        assert!(split_bundle(&format!("{b}.{}", "00".repeat(32))).is_err());
    }

    #[test]
    fn any_change_to_the_federation_or_key_is_named() {
        let s = spec();
        let pin = Pin::new(7, &s, Some("key text"));
        pin.check_federation(7, &s).unwrap();
        pin.check_key(&s.mode, "key text").unwrap();
        assert!(pin.check_federation(8, &s).is_err());
        let mut weaker = s.clone();
        weaker.min_clients = 5;
        let e = pin.check_federation(7, &weaker).unwrap_err();
        assert!(e.0.contains("differ from those pinned"), "{e}");
        let e = pin.check_key(&s.mode, "another key").unwrap_err();
        assert!(e.0.contains("public key differs"), "{e}");
        let unpinned = Pin::new(7, &s, None);
        assert!(unpinned
            .check_key(&s.mode, "key text")
            .unwrap_err()
            .0
            .contains("no public key"));
    }

    #[test]
    fn a_session_weaker_than_the_pinned_spec_is_refused_by_what_differs() {
        let s = spec();
        for n in [4, 10, 100, 500] {
            session(&s, n).verified_config(&s, None).unwrap();
        }
        let refused = |f: &dyn Fn(&mut SecaggSession), what: &str| {
            let mut r = session(&s, 200);
            f(&mut r);
            let e = r.verified_config(&s, None).unwrap_err();
            assert!(e.0.contains(what), "{what}: {e}");
        };
        refused(&|r| r.threshold = 1, "threshold 1 differs");
        refused(&|r| r.n = 1 << 31, "outside the pinned");
        refused(&|r| r.n = 2, "outside the pinned");
        refused(&|r| r.half_degree = Some(2), "graph degree 4 differs");
        refused(&|r| r.modulus_bits += 1, "modulus");
        // n changed alone: the threshold no longer matches the cohort.
        refused(&|r| r.n = 300, "threshold");
    }

    /// Distributed DP: the session a member accepts carries the pinned `min_clients` as its
    /// survivor floor, so it helps unmask no sum with less noise than was accounted for.
    #[test]
    fn a_distributed_dp_session_floors_the_survivors_at_min_clients() {
        let mut s = spec();
        s.min_clients = 12;
        s.mode = Mode::SecaggDp {
            clip: 1.0,
            noise_multiplier: 1.0,
            sampling_rate: 0.1,
            epsilon_budget: 10.0,
            delta: 1e-5,
            bits: 20,
            dropout_rate: 0.3,
            corrupt_fraction: 0.05,
            malicious_server: false,
        };
        let gp = fedagg_secagg::GraphParams::derive(20, &s.mode.threat_model().unwrap()).unwrap();
        let r = SecaggSession {
            threshold: gp.threshold as u32,
            half_degree: gp.half_degree,
            modulus_bits: 20,
            ..session(&spec(), 20)
        };
        assert!((gp.threshold as u32) < s.min_clients, "{gp:?}");
        let cfg = r.verified_config(&s, None).unwrap();
        assert_eq!(cfg.min_survivors(), 12);
        // Plain SecAgg has no floor beyond the threshold.
        let plain = spec();
        assert_eq!(
            session(&plain, 20)
                .verified_config(&plain, None)
                .unwrap()
                .min_survivors(),
            1
        );
    }

    #[test]
    fn a_roster_verifies_under_its_authority_only_and_as_signed() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let authority = SigningKey::generate(&mut rng);
        let public = hex::encode(authority.verifying_key().as_bytes());
        let other = hex::encode(SigningKey::generate(&mut rng).verifying_key().as_bytes());
        let mut member = |id: i64| RosterEntry {
            participant_id: id,
            identity_key: hex::encode(SigningKey::generate(&mut rng).verifying_key().as_bytes()),
        };
        let signed = sign_roster(&authority, 7, vec![member(3), member(1), member(2)]).unwrap();
        let ids: Vec<i64> = signed.members.iter().map(|m| m.participant_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        let keys = verify_roster(&public, 7, &signed).unwrap();
        assert_eq!(keys.len(), 3);
        // Another federation, another authority, a swapped key, a dropped or added member.
        assert!(verify_roster(&public, 8, &signed).is_err());
        assert!(verify_roster(&other, 7, &signed).is_err());
        let mut swapped = signed.clone();
        swapped.members[1] = member(2);
        let e = verify_roster(&public, 7, &swapped).unwrap_err();
        assert!(e.0.contains("not signed by the pinned"), "{e}");
        let mut dropped = signed.clone();
        dropped.members.remove(0);
        assert!(verify_roster(&public, 7, &dropped).is_err());
        let mut added = signed.clone();
        added.members.push(member(4));
        assert!(verify_roster(&public, 7, &added).is_err());
        // Out of order, a repeated id, and a key that is no point are refused before verifying.
        let mut unsorted = signed.clone();
        unsorted.members.swap(0, 1);
        assert!(verify_roster(&public, 7, &unsorted)
            .unwrap_err()
            .0
            .contains("ascend"));
        let mut bad = signed;
        bad.members[0].identity_key = "00".repeat(32);
        assert!(verify_roster(&public, 7, &bad).is_err());
    }
}
