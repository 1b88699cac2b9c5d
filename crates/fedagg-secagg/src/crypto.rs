//! Primitives, each bound to the session: X25519 agreement, HKDF-SHA256 key derivation,
//! ChaCha20-Poly1305 for shares, AES-256-CTR mask expansion, Ed25519 signatures, and the hash
//! commitment to the self-mask seed.
//!
//! Every derived key takes the 32-byte session id as HKDF salt and a label naming its use and the
//! clients it belongs to, so no key or mask stream is ever reused across sessions, directions or
//! purposes. Mask streams are keyed with the full 256 bits (AES-256); nothing is folded to a
//! shorter seed.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::{error::Error, ClientId};

mod mask;
pub(crate) use mask::load;
pub use mask::{
    apply_masks, apply_masks_on, apply_masks_threaded, keystream, threads_for, vaes, MaskStream,
};

/// A 32-byte secret: zeroized on drop, no `Clone`, no `Debug`.
pub struct Secret32(Zeroizing<[u8; 32]>);

impl Secret32 {
    /// Wrap bytes (they are moved in and zeroized when this drops).
    pub fn new(bytes: [u8; 32]) -> Self {
        Secret32(Zeroizing::new(bytes))
    }
    /// Draw a fresh secret from a CSPRNG.
    pub fn random<R: rand_core::RngCore + rand_core::CryptoRng>(rng: &mut R) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *b);
        Secret32(b)
    }
    /// The bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Ciphertext length of one encrypted share pair: two 32-byte shares and a 16-byte tag.
pub const SHARE_CIPHERTEXT_LEN: usize = 64 + 16;

const LABEL_SHARE: &[u8] = b"fedagg-secagg-v1 share-key";
const LABEL_SHARE_AAD: &[u8] = b"fedagg-secagg-v1 share";
const LABEL_SELF_MASK: &[u8] = b"fedagg-secagg-v1 self-mask";
const LABEL_PAIR_MASK: &[u8] = b"fedagg-secagg-v1 pair-mask";
const LABEL_COMMIT: &[u8] = b"fedagg-secagg-v1 self-mask-commitment";
const LABEL_ADVERTISE: &[u8] = b"fedagg-secagg-v1 advertise";
const LABEL_CONSISTENCY: &[u8] = b"fedagg-secagg-v1 consistency";

/// X25519 agreement; refuses a peer key that yields a non-contributory (low-order) result.
pub fn agree(secret: &StaticSecret, peer: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let shared = secret.diffie_hellman(&PublicKey::from(*peer));
    if !shared.was_contributory() {
        return Err(Error::Protocol(
            "peer public key is a low-order point".into(),
        ));
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// Agreements a thread must have for a split to pay: one takes 40 to 80 us here, starting a thread
/// 0.1 to 0.2 ms (`docs/secagg.md`, "A client's cost per neighbour").
const MIN_AGREEMENTS_PER_THREAD: usize = 8;

/// The threads worth starting for `agreements` X25519 agreements: at most `threads`, and one per
/// `MIN_AGREEMENTS_PER_THREAD` at least (so one for a small neighbourhood).
pub fn agreement_threads(agreements: usize, threads: usize) -> usize {
    threads.min(agreements / MIN_AGREEMENTS_PER_THREAD).max(1)
}

/// [`agree`] with each of `peers`, in their order, over the threads [`set_threads`] allows, as
/// many as the agreements pay for ([`agreement_threads`]): a client's two rounds each agree with
/// every neighbour. The secrets are the same whatever the threads; the error is the first refused
/// key in order.
pub fn agree_each(
    secret: &StaticSecret,
    peers: &[[u8; 32]],
) -> Result<Vec<Zeroizing<[u8; 32]>>, Error> {
    let threads = agreement_threads(peers.len(), threads());
    fedagg_par::try_concat_runs(peers, threads, |run| {
        run.iter().map(|peer| agree(secret, peer)).collect()
    })
}

/// The public key of an X25519 secret.
pub fn public_of(secret: &StaticSecret) -> [u8; 32] {
    PublicKey::from(secret).to_bytes()
}

fn hkdf(ikm: &[u8], session: &[u8; 32], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(session), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
    if hk.expand_multi_info(info, &mut *out).is_err() {
        unreachable!("hkdf output length is fixed at 32 bytes");
    }
    out
}

fn share_aad(session: &[u8; 32], sender: ClientId, recipient: ClientId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(LABEL_SHARE_AAD.len() + 40);
    aad.extend_from_slice(LABEL_SHARE_AAD);
    aad.extend_from_slice(session);
    aad.extend_from_slice(&sender.0.to_le_bytes());
    aad.extend_from_slice(&recipient.0.to_le_bytes());
    aad
}

fn share_cipher(
    agreed: &[u8; 32],
    session: &[u8; 32],
    s: ClientId,
    r: ClientId,
) -> ChaCha20Poly1305 {
    // Sender and recipient in order: the two directions of one agreement get different keys.
    let key = hkdf(
        agreed,
        session,
        &[LABEL_SHARE, &s.0.to_le_bytes(), &r.0.to_le_bytes()],
    );
    ChaCha20Poly1305::new((&*key).into())
}

/// Encrypt the 64-byte share pair for `recipient`. Each key encrypts exactly one message, so the
/// fixed nonce is safe.
pub fn seal_shares(
    agreed: &[u8; 32],
    session: &[u8; 32],
    sender: ClientId,
    recipient: ClientId,
    plaintext: &[u8; 64],
) -> Vec<u8> {
    let aad = share_aad(session, sender, recipient);
    let cipher = share_cipher(agreed, session, sender, recipient);
    match cipher.encrypt(
        &[0u8; 12].into(),
        Payload {
            msg: plaintext,
            aad: &aad,
        },
    ) {
        Ok(ct) => ct,
        // Encryption only fails for messages longer than 2^38 bytes.
        Err(_) => unreachable!("64-byte plaintext always encrypts"),
    }
}

/// Decrypt and authenticate a share pair sent by `sender` to `recipient` in this session.
pub fn open_shares(
    agreed: &[u8; 32],
    session: &[u8; 32],
    sender: ClientId,
    recipient: ClientId,
    ciphertext: &[u8],
) -> Result<Zeroizing<[u8; 64]>, Error> {
    let aad = share_aad(session, sender, recipient);
    let cipher = share_cipher(agreed, session, sender, recipient);
    let mut pt = cipher
        .decrypt(
            &[0u8; 12].into(),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| Error::Decryption)?;
    if pt.len() != 64 {
        pt.zeroize();
        return Err(Error::Decryption);
    }
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(&pt);
    pt.zeroize();
    Ok(out)
}

/// Commitment to a client's self-mask seed, checked after reconstruction.
pub fn commit_self_seed(session: &[u8; 32], client: ClientId, seed: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LABEL_COMMIT);
    h.update(session);
    h.update(client.0.to_le_bytes());
    h.update(seed);
    h.finalize().into()
}

/// Threads [`apply_masks_on`] and [`agree_each`] may use for the server's unmasking and a client's
/// agreements and masking (1 until set).
static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Bound the threads the server's unmasking and a client's agreements and masking use,
/// process-wide (`fedagg serve`'s `threads`, `FEDAGG_THREADS`; `fedagg_client::set_threads`). The
/// messages and the sum are the same, bit for bit, whatever the number.
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The threads the server's unmasking and a client's agreements and masking may use.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// The bytes a client signs in AdvertiseKeys (malicious-server mode).
pub fn advertise_transcript(
    session: &[u8; 32],
    id: ClientId,
    c_pk: &[u8; 32],
    s_pk: &[u8; 32],
) -> Vec<u8> {
    [LABEL_ADVERTISE, session, &id.0.to_le_bytes(), c_pk, s_pk].concat()
}

/// The bytes a client signs in ConsistencyCheck: the sorted survivor set U3.
pub fn consistency_transcript(session: &[u8; 32], survivors: &[ClientId]) -> Vec<u8> {
    let mut v = Vec::with_capacity(LABEL_CONSISTENCY.len() + 36 + 4 * survivors.len());
    v.extend_from_slice(LABEL_CONSISTENCY);
    v.extend_from_slice(session);
    v.extend_from_slice(&(survivors.len() as u32).to_le_bytes());
    for c in survivors {
        v.extend_from_slice(&c.0.to_le_bytes());
    }
    v
}

/// Sign with an identity key.
pub fn sign(key: &SigningKey, msg: &[u8]) -> [u8; 64] {
    key.sign(msg).to_bytes()
}

/// Verify an identity signature (strict: no malleable encodings).
pub fn verify(key: &VerifyingKey, msg: &[u8], sig: &[u8; 64], who: ClientId) -> Result<(), Error> {
    key.verify_strict(msg, &Signature::from_bytes(sig))
        .map_err(|_| Error::BadSignature(who))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One thread below 8 agreements a thread, then one per 8 up to the setting.
    #[test]
    fn agreements_split_only_in_eights() {
        assert_eq!(agreement_threads(15, 8), 1);
        assert_eq!(agreement_threads(16, 8), 2);
        assert_eq!(agreement_threads(49, 2), 2);
        assert_eq!(agreement_threads(49, 1), 1);
        assert_eq!(agreement_threads(0, 8), 1);
    }
}
