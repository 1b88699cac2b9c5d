//! Key holders that trust the server less: verified decryption (they add up the signed
//! contributions themselves) and threshold decryption (t of k holders, none alone).

use std::sync::{Arc, Mutex};

use fedagg_api::contributions::{decode_contributions, encode_contributions, Contribution};
use fedagg_paillier::threshold::deal_from_primes;

use super::tamper::{tampering_proxy, Lie};
use super::*;

/// Two 1024-bit safe primes, found once by `fedagg-paillier`'s `threshold_keygen` example and
/// pinned, so that the suite does not spend a minute finding new ones. The dealing itself (the
/// polynomial, the shares, the verification keys) runs in each test.
fn safe_primes() -> (fedagg_paillier::BigUint, fedagg_paillier::BigUint) {
    fedagg_paillier::threshold::primes_from_text(include_str!(
        "../../crates/fedagg-paillier/tests/data/safe-primes-2048.txt"
    ))
    .unwrap()
}

fn paillier() -> Mode {
    Mode::Paillier {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    }
}

/// A Paillier federation with a roster authority (so verified decryption), and the authority.
async fn verified_federation(srv: &Srv, m: usize, timeout: u64) -> (i64, fedagg_client::Identity) {
    let authority = fedagg_client::Identity::generate();
    let mut sp = spec(paillier(), m, 3, timeout);
    sp.roster_authority = Some(authority.public_hex());
    let fed = srv.admin.create_federation(&sp).await.unwrap();
    assert!(fed.spec.verified_decryption());
    (fed.id, authority)
}

type Contributions = tokio::task::JoinHandle<Vec<Result<Option<Outcome>, Error>>>;

/// Every member contributes its update, in the background (the round waits for the key holder).
fn spawn_contributions(members: &[Client], ups: &[(Vec<f32>, u64)]) -> Contributions {
    let (members, ups) = (members.to_vec(), ups.to_vec());
    tokio::spawn(async move { contribute_all(&members, &ups, &vec![None; members.len()]).await })
}

/// `kh` decrypts round `round`, which then completes for the key holder and every member.
async fn decrypted_and_completed(kh: &KeyHolder, round: u64, run: Contributions) {
    assert_eq!(
        kh.decrypt_round(round, WAIT).await.unwrap().status,
        RoundStatus::Completed
    );
    assert!(run
        .await
        .unwrap()
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
}

/// Sign the roster of everyone enrolled in `fid` so far.
async fn sign_roster(srv: &Srv, fid: i64, authority: &fedagg_client::Identity) {
    let enrolled = srv.admin.roster(fid).await.unwrap().enrolled;
    let signed = authority.sign_roster(fid, enrolled).unwrap();
    srv.admin.put_roster(fid, &signed).await.unwrap();
}

/// Threshold Paillier over REST: a key dealt to five holders, any three of whom decrypt. With
/// two holders offline the round completes with the weighted mean; with three offline the two
/// left cannot decrypt it, and the round fails naming the holders missing.
pub(super) async fn three_of_five_key_holders_decrypt_with_two_offline(store: Store) {
    let srv = start(store, 1 << 22).await;
    let (m, n) = (200, 4);
    let (fid, authority) = verified_federation(&srv, m, 10).await;
    let (p, q) = safe_primes();
    let mut rng = ChaCha20Rng::seed_from_u64(61);
    let (key, shares) = deal_from_primes(&p, &q, 5, 3, &mut rng).unwrap();
    assert_eq!(key.public().bits(), 2048);
    let mut holders = Vec::new();
    for share in shares {
        let client = enroll(&srv.base, &srv.admin, fid, 1, Role::KeyHolder)
            .await
            .remove(0);
        holders.push(Arc::new(KeyHolder::threshold(client, share)));
    }
    holders[0].publish().await.unwrap();
    let members = enroll(&srv.base, &srv.admin, fid, n, Role::Participant).await;
    sign_roster(&srv, fid, &authority).await;

    // Holders 2, 4 and 5 online; 1 and 3 offline.
    let ups = updates(n, m, 62);
    let round = srv.admin.open_round(fid).await.unwrap().round;
    let online: Vec<_> = [1usize, 3, 4]
        .iter()
        .map(|&i| {
            let kh = holders[i].clone();
            tokio::spawn(async move { kh.decrypt_round(round, WAIT).await })
        })
        .collect();
    let results = contribute_all(&members, &ups, &vec![None; n]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
    for h in online {
        assert_eq!(h.await.unwrap().unwrap().status, RoundStatus::Completed);
    }
    assert_model_is_mean(&srv.admin, fid, &ups).await;

    // Two holders alone: their partial decryptions are accepted, and are not enough.
    let round = srv.admin.open_round(fid).await.unwrap().round;
    let two: Vec<_> = [0usize, 2]
        .iter()
        .map(|&i| {
            let kh = holders[i].clone();
            tokio::spawn(async move { kh.decrypt_round(round, WAIT).await })
        })
        .collect();
    let results = contribute_all(&members, &updates(n, m, 63), &vec![None; n]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Failed));
    let end = srv.admin.wait_round(fid, round, WAIT).await.unwrap();
    let reason = end.record.unwrap().failure.unwrap_or_default();
    assert!(reason.contains("2 of the 3 key holders"), "{reason}");
    for h in two {
        assert_eq!(h.await.unwrap().unwrap().status, RoundStatus::Failed);
    }
}

/// The contributions inside a `Contributions` frame of round `round`, edited.
fn edit_contributions(frame: &mut Vec<u8>, round: u64, edit: impl FnOnce(&mut Vec<Contribution>)) {
    let payload = Frame::decode(frame, FrameKind::Contributions, round).unwrap();
    let mut entries = decode_contributions(payload, 64, 1 << 20).unwrap();
    edit(&mut entries);
    *frame = Frame::encode(
        FrameKind::Contributions,
        round,
        &encode_contributions(&entries),
    );
}

type Edit = Box<dyn Fn(&mut Vec<u8>) + Send + Sync>;

/// What a server could hand the key holder of round 2 instead of its signed contributions, and
/// the words the refusal must contain; `round1` is the previous round's frame, to replay.
fn lies(round1: Vec<u8>) -> Vec<(Edit, &'static str)> {
    vec![
        (
            Box::new(|f| edit_contributions(f, 2, |e| e.truncate(1))),
            "the federation requires 3",
        ),
        (
            Box::new(|f| edit_contributions(f, 2, |e| e[0].ciphertexts[20] ^= 1)),
            "not signed by its identity",
        ),
        (
            Box::new(|f| {
                edit_contributions(f, 2, |e| {
                    let first = e[0].clone();
                    e.truncate(1);
                    e.extend([first.clone(), first]);
                })
            }),
            "two contributions",
        ),
        (
            Box::new(move |f| {
                let old = Frame::decode(&round1, FrameKind::Contributions, 1).unwrap();
                *f = Frame::encode(FrameKind::Contributions, 2, old);
            }),
            "for round 2",
        ),
    ]
}

/// Verified decryption: a server that hands the key holder anything but the round's signed
/// contributions (too few of them, one altered, one repeated, the previous round's) is refused,
/// naming the deviation, and the key holder sends nothing; a participant's unsigned contribution
/// is refused by the server; a key holder of a federation without a roster authority decrypts
/// only when told to skip the check.
pub(super) async fn key_holders_decrypt_only_sums_they_verified(store: Store) {
    let srv = start(store, 1 << 22).await;
    let lie = Lie::default();
    let proxy = tampering_proxy(srv.base.clone(), lie.clone()).await;
    let (m, n) = (40, 4);
    let (fid, authority) = verified_federation(&srv, m, 30).await;
    let kh = enroll(&proxy, &srv.admin, fid, 1, Role::KeyHolder)
        .await
        .remove(0);
    let sk = fedagg_paillier::keygen(2048, &mut ChaCha20Rng::seed_from_u64(71)).unwrap();
    let pk = sk.public().clone();
    let kh = KeyHolder::new(kh, sk);
    kh.publish().await.unwrap();
    let (members, tokens): (Vec<Client>, Vec<String>) =
        enroll_with_tokens(&srv.base, &srv.admin, fid, n, Role::Participant)
            .await
            .into_iter()
            .unzip();
    sign_roster(&srv, fid, &authority).await;

    // Round 1 runs clean; keep what the key holder was sent, to replay it.
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let keep = seen.clone();
    lie.set_frames(move |_, _, frame| *keep.lock().unwrap() = frame.clone());
    let ups = updates(n, m, 72);
    srv.admin.open_round(fid).await.unwrap();
    let run = spawn_contributions(&members, &ups);
    decrypted_and_completed(&kh, 1, run).await;
    assert_model_is_mean(&srv.admin, fid, &ups).await;
    let round1 = seen.lock().unwrap().clone();

    // Round 2: every member contributes, then the server lies to the key holder.
    srv.admin.open_round(fid).await.unwrap();
    let ups = updates(n, m, 73);
    let run = spawn_contributions(&members, &ups);
    wait_for_phase(&srv.admin, fid, 2, Phase::Decrypt, 0).await;
    for (edit, what) in lies(round1) {
        lie.set_frames(move |_, _, f| edit(f));
        let e = kh
            .decrypt_round(2, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Untrusted(msg) if msg.contains(what)),
            "wanted a refusal naming {what:?}, got {e}"
        );
        let info = srv.admin.round(fid, 2, None, Duration::ZERO).await.unwrap();
        assert_eq!((info.phase, info.received), (Phase::Decrypt, 0), "{what}");
    }
    lie.clear();
    decrypted_and_completed(&kh, 2, run).await;
    assert_step_is_mean(&srv.admin, fid, 2, &ups).await;

    refuses_unsigned(&srv, fid, &pk, &tokens[0], m).await;
}

/// In round 3 of `fid`, the server refuses a contribution without its member's signature, or
/// signed by another identity; `token` is a member's.
async fn refuses_unsigned(
    srv: &Srv,
    fid: i64,
    pk: &fedagg_paillier::PublicKey,
    token: &str,
    m: usize,
) {
    srv.admin.open_round(fid).await.unwrap();
    let quant = srv
        .admin
        .federation(fid)
        .await
        .unwrap()
        .spec
        .quant()
        .unwrap();
    let packing = fedagg_paillier::Packing::new(pk, &quant).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(74);
    let values = quant.encode_weighted(&vec![0.5; m], 1, &mut rng).unwrap();
    let cts = packing.encrypt(pk, &values, &mut rng).unwrap();
    let cts = fedagg_paillier::encode_ciphertexts(pk, &cts);
    let stranger = fedagg_client::Identity::generate();
    let mut unsigned = cts.clone();
    unsigned.extend_from_slice(&[0u8; 64]);
    let path = fedagg_api::routes::fill(fedagg_api::routes::SUBMISSIONS, &[&fid, &3]);
    let as_member = Admin::new(&srv.base, token).unwrap();
    for payload in [unsigned, stranger.sign_contribution(fid, 3, &cts)] {
        let frame = Frame::encode(FrameKind::Paillier, 3, &payload);
        expect(
            as_member.raw(Method::POST, &path, None, Some(frame)).await,
            403,
            "forbidden",
        );
    }
    let info = srv.admin.round(fid, 3, None, Duration::ZERO).await.unwrap();
    assert_eq!(info.received, 0);
}

/// Without a roster authority the key holder refuses to decrypt, unless told to skip the
/// check (which it then says it does).
pub(super) async fn an_unverifiable_sum_is_decrypted_only_when_asked(store: Store) {
    let srv = start(store, 1 << 22).await;
    let m = 20;
    let fed = srv
        .admin
        .create_federation(&spec(paillier(), m, 3, 30))
        .await
        .unwrap();
    let client = enroll(&srv.base, &srv.admin, fed.id, 1, Role::KeyHolder)
        .await
        .remove(0);
    let sk = fedagg_paillier::keygen(2048, &mut ChaCha20Rng::seed_from_u64(81)).unwrap();
    let strict = KeyHolder::new(client.clone(), sk);
    strict.publish().await.unwrap();
    let members = enroll(&srv.base, &srv.admin, fed.id, 3, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    let ups = updates(3, m, 82);
    let run = spawn_contributions(&members, &ups);
    wait_for_phase(&srv.admin, fed.id, 1, Phase::Decrypt, 0).await;
    let e = strict.decrypt_round(1, WAIT).await.unwrap_err();
    assert!(
        matches!(&e, Error::Untrusted(msg) if msg.contains("no roster authority")),
        "{e}"
    );
    let lax = strict.unverified();
    decrypted_and_completed(&lax, 1, run).await;
    assert_model_is_mean(&srv.admin, fed.id, &ups).await;
}
