//! Verified decryption (Paillier and lattice): the key holder decrypts only a sum it has checked.
//!
//! In a federation with a `roster_authority`, each participant signs, with its identity key,
//! `(federation, round, SHA-256 of its ciphertext vector)` and sends the signature after the
//! ciphertexts in its submission's payload. The server checks the signature before it accepts the
//! submission (so nobody can poison a round with a contribution the key holder would refuse),
//! and in the decrypt phase hands the key holder every signed contribution rather than the sum.
//! The key holder checks each signature against the roster the authority signed, counts at least
//! `min_clients` distinct members, adds the ciphertexts itself and decrypts only that sum: a
//! server alone can no longer have a single participant's ciphertext decrypted.
//!
//! Container layout (all integers little-endian): `b"FC"`, version 1, type 1, the count (u32),
//! then per contribution the participant id (i64), the ciphertext length (u32), the ciphertext
//! bytes and the 64-byte Ed25519 signature. The decoder checks the count and each length against
//! the caller's bounds before it allocates, and rejects trailing bytes.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::trust::Mismatch;
use crate::FrameError;

/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
const HEADER: [u8; 4] = [b'F', b'C', 1, 1];

/// The bytes a participant signs for its ciphertext vector `ciphertexts` in round `round` of
/// federation `federation_id`.
pub fn contribution_message(federation_id: i64, round: u64, ciphertexts: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    out.extend_from_slice(b"fedagg contribution v1\0");
    out.extend_from_slice(&federation_id.to_le_bytes());
    out.extend_from_slice(&round.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(ciphertexts));
    out
}

/// A submission's payload: `ciphertexts` followed by the participant's signature over them.
pub fn sign_contribution(
    identity: &SigningKey,
    federation_id: i64,
    round: u64,
    ciphertexts: &[u8],
) -> Vec<u8> {
    let sig = identity.sign(&contribution_message(federation_id, round, ciphertexts));
    let mut out = Vec::with_capacity(ciphertexts.len() + SIGNATURE_LEN);
    out.extend_from_slice(ciphertexts);
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// Split a signed payload into its ciphertexts and signature.
pub fn split_signed(payload: &[u8]) -> Result<(&[u8], [u8; SIGNATURE_LEN]), FrameError> {
    let at = payload.len().checked_sub(SIGNATURE_LEN).ok_or_else(|| {
        FrameError::BadLength(format!(
            "{} bytes cannot hold a {SIGNATURE_LEN}-byte signature",
            payload.len()
        ))
    })?;
    let (cts, sig) = payload.split_at(at);
    let sig = sig
        .try_into()
        .map_err(|_| FrameError::BadLength("signature".into()))?;
    Ok((cts, sig))
}

/// Check one contribution's signature under `identity`.
pub fn verify_contribution(
    identity: &VerifyingKey,
    federation_id: i64,
    round: u64,
    ciphertexts: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    identity
        .verify_strict(
            &contribution_message(federation_id, round, ciphertexts),
            &Signature::from_bytes(signature),
        )
        .is_ok()
}

/// One participant's signed ciphertext vector, as the key holder receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    /// The participant's id (its roster entry).
    pub participant: i64,
    /// Its ciphertext vector, in its scheme's wire format.
    pub ciphertexts: Vec<u8>,
    /// Its Ed25519 signature over [`contribution_message`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// Encode contributions for the key holder.
pub fn encode_contributions(entries: &[Contribution]) -> Vec<u8> {
    let body: usize = entries
        .iter()
        .map(|c| 12 + c.ciphertexts.len() + SIGNATURE_LEN)
        .sum();
    let mut out = Vec::with_capacity(8 + body);
    out.extend_from_slice(&HEADER);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for c in entries {
        out.extend_from_slice(&c.participant.to_le_bytes());
        out.extend_from_slice(&(c.ciphertexts.len() as u32).to_le_bytes());
        out.extend_from_slice(&c.ciphertexts);
        out.extend_from_slice(&c.signature);
    }
    out
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    let (head, tail) = rest
        .split_at_checked(n)
        .ok_or_else(|| FrameError::BadLength("contributions are truncated".into()))?;
    *rest = tail;
    Ok(head)
}

fn array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], FrameError> {
    take(rest, N)?
        .try_into()
        .map_err(|_| FrameError::BadLength("contributions are truncated".into()))
}

/// Decode at most `max_count` contributions of at most `max_len` ciphertext bytes each.
pub fn decode_contributions(
    bytes: &[u8],
    max_count: usize,
    max_len: usize,
) -> Result<Vec<Contribution>, FrameError> {
    let mut rest = bytes;
    if take(&mut rest, 4)? != HEADER {
        return Err(FrameError::BadHeader(
            "not a contributions container of version 1".into(),
        ));
    }
    let count = u32::from_le_bytes(array(&mut rest)?) as usize;
    if count > max_count {
        return Err(FrameError::BadLength(format!(
            "{count} contributions, at most {max_count} expected"
        )));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let participant = i64::from_le_bytes(array(&mut rest)?);
        let len = u32::from_le_bytes(array(&mut rest)?) as usize;
        if len > max_len {
            return Err(FrameError::BadLength(format!(
                "a contribution of {len} bytes, at most {max_len} expected"
            )));
        }
        let ciphertexts = take(&mut rest, len)?.to_vec();
        let signature = array(&mut rest)?;
        out.push(Contribution {
            participant,
            ciphertexts,
            signature,
        });
    }
    if !rest.is_empty() {
        return Err(FrameError::BadLength(format!(
            "{} bytes after the contributions",
            rest.len()
        )));
    }
    Ok(out)
}

/// The key holder's check: every contribution signed for round `round` of federation
/// `federation_id` by its participant's identity in `roster` (verified under the pinned
/// authority), no participant twice, and at least `min` of them.
pub fn verify_contributions(
    federation_id: i64,
    round: u64,
    entries: &[Contribution],
    roster: &BTreeMap<i64, VerifyingKey>,
    min: usize,
) -> Result<(), Mismatch> {
    let mut seen = BTreeSet::new();
    for c in entries {
        let identity = roster.get(&c.participant).ok_or_else(|| {
            Mismatch(format!(
                "a contribution from participant {}, who is not on the signed roster",
                c.participant
            ))
        })?;
        if !seen.insert(identity.to_bytes()) {
            return Err(Mismatch(format!(
                "two contributions from the identity of participant {}",
                c.participant
            )));
        }
        if !verify_contribution(identity, federation_id, round, &c.ciphertexts, &c.signature) {
            return Err(Mismatch(format!(
                "participant {}'s contribution is not signed by its identity for round {round} \
                 of federation {federation_id}",
                c.participant
            )));
        }
    }
    if seen.len() < min {
        return Err(Mismatch(format!(
            "{} signed contributions, the federation requires {min}: the sum could reveal an \
             individual's update",
            seen.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn members(n: usize) -> (Vec<SigningKey>, BTreeMap<i64, VerifyingKey>) {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let keys: Vec<SigningKey> = (0..n).map(|_| SigningKey::generate(&mut rng)).collect();
        let roster = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i as i64 + 10, k.verifying_key()))
            .collect();
        (keys, roster)
    }

    fn signed(keys: &[SigningKey], fid: i64, round: u64) -> Vec<Contribution> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let cts = vec![i as u8; 5 + i];
                let payload = sign_contribution(k, fid, round, &cts);
                let (c, signature) = split_signed(&payload).unwrap();
                assert_eq!(c, &cts[..]);
                Contribution {
                    participant: i as i64 + 10,
                    ciphertexts: cts,
                    signature,
                }
            })
            .collect()
    }

    #[test]
    fn signed_contributions_verify_and_round_trip() {
        let (keys, roster) = members(4);
        let entries = signed(&keys, 3, 9);
        let bytes = encode_contributions(&entries);
        let back = decode_contributions(&bytes, 4, 8).unwrap();
        assert_eq!(back, entries);
        verify_contributions(3, 9, &back, &roster, 4).unwrap();
        assert!(decode_contributions(&bytes, 3, 8).is_err());
        assert!(decode_contributions(&bytes, 4, 7).is_err());
        assert!(decode_contributions(&bytes[..bytes.len() - 1], 4, 8).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_contributions(&trailing, 4, 8).is_err());
        assert!(split_signed(&[0; 63]).is_err());
    }

    #[test]
    fn every_deviation_is_named() {
        let (keys, roster) = members(4);
        let entries = signed(&keys, 3, 9);
        let err =
            |e: &[Contribution], min| verify_contributions(3, 9, e, &roster, min).unwrap_err().0;
        assert!(err(&entries, 5).contains("requires 5"));
        // Another round's or federation's contributions (a replay).
        assert!(verify_contributions(3, 8, &entries, &roster, 4).is_err());
        assert!(verify_contributions(4, 9, &entries, &roster, 4).is_err());
        // A ciphertext the server swapped in, or a contribution under another's id.
        let mut swapped = entries.clone();
        swapped[1].ciphertexts[0] ^= 1;
        assert!(err(&swapped, 4).contains("participant 11"));
        let mut renamed = entries.clone();
        renamed[1].participant = 12;
        assert!(
            err(&renamed, 3).contains("two contributions")
                || err(&renamed, 3).contains("not signed")
        );
        // The same contribution twice does not count twice.
        let mut twice = entries[..3].to_vec();
        twice.push(entries[0].clone());
        assert!(err(&twice, 4).contains("two contributions"));
        let mut stranger = entries.clone();
        stranger[0].participant = 99;
        assert!(err(&stranger, 4).contains("not on the signed roster"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(junk in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_contributions(&junk, 8, 64);
            let mut framed = HEADER.to_vec();
            framed.extend_from_slice(&junk);
            let _ = decode_contributions(&framed, 8, 64);
        }
    }
}
