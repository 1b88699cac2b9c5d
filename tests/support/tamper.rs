//! A server that deviates from the protocol, for the SDK's checks against what it pinned at
//! enrollment: a proxy on 127.0.0.1 in front of the real server rewrites the JSON it returns (a
//! round's SecAgg parameters, the federation's spec, the public key), as a server that lies
//! would. Each lie must be refused by the SDK, naming what differed, before the member sends
//! anything.

use std::sync::{Arc, Mutex};

use super::*;

/// Rewrites a JSON answer to a GET of `path`.
type Rewrite = Arc<dyn Fn(&str, &mut serde_json::Value) + Send + Sync>;

/// Rewrites a frame (an inbox) answering a GET of `path` by the holder of `token`.
type FrameRewrite = Arc<dyn Fn(&str, &str, &mut Vec<u8>) + Send + Sync>;

/// Rewrites the body of a request to `path` by the holder of `token`, before it is forwarded:
/// what a server that deviates would have made of it (or just watches who asks what).
type RequestRewrite = Arc<dyn Fn(&str, &str, &mut Vec<u8>) + Send + Sync>;

/// The proxy's current lies (none: it passes everything through).
#[derive(Clone, Default)]
pub(super) struct Lie(
    Arc<Mutex<Option<Rewrite>>>,
    Arc<Mutex<Option<FrameRewrite>>>,
    Arc<Mutex<Option<RequestRewrite>>>,
);

impl Lie {
    pub(super) fn set(&self, f: impl Fn(&str, &mut serde_json::Value) + Send + Sync + 'static) {
        *self.0.lock().unwrap() = Some(Arc::new(f));
    }

    pub(super) fn set_frames(&self, f: impl Fn(&str, &str, &mut Vec<u8>) + Send + Sync + 'static) {
        *self.1.lock().unwrap() = Some(Arc::new(f));
    }

    pub(super) fn set_requests(
        &self,
        f: impl Fn(&str, &str, &mut Vec<u8>) + Send + Sync + 'static,
    ) {
        *self.2.lock().unwrap() = Some(Arc::new(f));
    }

    pub(super) fn clear(&self) {
        *self.0.lock().unwrap() = None;
        *self.1.lock().unwrap() = None;
        *self.2.lock().unwrap() = None;
    }
}

pub(super) async fn tampering_proxy(upstream: String, lie: Lie) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    let http = http_client();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (http, upstream, lie) = (http.clone(), upstream.clone(), lie.clone());
        async move {
            let (parts, body) = req.into_parts();
            let mut body = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap()
                .to_vec();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut headers = parts.headers;
            headers.remove(reqwest::header::HOST);
            let token = headers
                .get(reqwest::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let requests = lie.2.lock().unwrap().clone();
            if let Some(rewrite) = requests {
                rewrite(parts.uri.path(), &token, &mut body);
                headers.remove(reqwest::header::CONTENT_LENGTH);
            }
            let r = http
                .request(parts.method.clone(), format!("{upstream}{path}"))
                .headers(headers)
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, mut headers) = (r.status(), r.headers().clone());
            let mut bytes = r.bytes().await.unwrap().to_vec();
            let rewrite = lie.0.lock().unwrap().clone();
            let json = headers
                .get(reqwest::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if let (Some(rewrite), true, true) = (rewrite, json, parts.method == Method::GET) {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                rewrite(parts.uri.path(), &mut v);
                bytes = serde_json::to_vec(&v).unwrap();
                headers.remove(reqwest::header::CONTENT_LENGTH);
            }
            let frames = lie.1.lock().unwrap().clone();
            let octets = headers
                .get(reqwest::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes() == fedagg_api::OCTET_STREAM.as_bytes());
            let get = parts.method == Method::GET;
            if let (Some(rewrite), true, true, true) = (frames, octets, get, status.is_success()) {
                rewrite(parts.uri.path(), &token, &mut bytes);
                headers.remove(reqwest::header::CONTENT_LENGTH);
            }
            let mut out = Response::builder().status(status);
            for (k, v) in &headers {
                out = out.header(k, v);
            }
            out.body(Body::from(bytes)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// One member's contribution through the lying proxy: refused with [`Error::Untrusted`]
/// naming `what`, and nothing of it reached the server.
async fn refused(srv: &Srv, fid: i64, member: &Client, m: usize, what: &str) {
    let opts = Contribute {
        timeout: Some(Duration::from_secs(20)),
        ..Contribute::default()
    };
    let e = member
        .contribute_with(&vec![0.1; m], 1, opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Untrusted(msg) if msg.contains(what)),
        "wanted a refusal naming {what:?}, got {e}"
    );
    let info = srv.admin.round(fid, 1, None, Duration::ZERO).await.unwrap();
    assert_eq!(info.received, 0, "{what}: something was sent: {info:?}");
}

pub(super) async fn the_sdk_refuses_a_server_that_weakens_what_it_pinned(store: Store) {
    let srv = start(store, 1 << 22).await;
    let lie = Lie::default();
    let proxy = tampering_proxy(srv.base.clone(), lie.clone()).await;
    let m = 20;

    // Passed through, a round over the proxy completes: what follows fails for the lies alone.
    let fed = srv
        .admin
        .create_federation(&spec(secagg(0.2), m, 4, 30))
        .await
        .unwrap();
    let clients = enroll(&proxy, &srv.admin, fed.id, 4, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    let ups = updates(4, m, 41);
    let results = contribute_all(&clients, &ups, &[None; 4]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));

    // A bare code, without the fingerprints, is refused before it is redeemed.
    let code = srv
        .admin
        .enrollment_code(fed.id, Role::Participant)
        .await
        .unwrap();
    let e = Client::enroll(&proxy, &code.code).await.err().unwrap();
    assert!(
        matches!(&e, Error::Untrusted(msg) if msg.contains("no federation fingerprint")),
        "{e}"
    );

    // SecAgg parameters: each lie in a fresh federation's first round.
    type Edit = fn(&mut serde_json::Value);
    let lies: [(Edit, &str); 5] = [
        (|s| s["threshold"] = 1.into(), "threshold 1 differs"),
        (|s| s["n"] = (1u64 << 31).into(), "outside the pinned"),
        (|s| s["half_degree"] = 1.into(), "graph degree 2 differs"),
        (
            |s| s["modulus_bits"] = (s["modulus_bits"].as_u64().unwrap() + 1).into(),
            "modulus",
        ),
        // A cohort the pinned threat model would give another threshold.
        (|s| s["n"] = 40.into(), "differs"),
    ];
    for (edit, what) in lies {
        let fed = srv
            .admin
            .create_federation(&spec(secagg(0.2), m, 4, 30))
            .await
            .unwrap();
        let members = enroll(&proxy, &srv.admin, fed.id, 4, Role::Participant).await;
        srv.admin.open_round(fed.id).await.unwrap();
        lie.set(move |_, v| {
            if v.get("secagg").is_some_and(|s| s.is_object()) {
                edit(&mut v["secagg"]);
            }
        });
        refused(&srv, fed.id, &members[0], m, what).await;
        lie.clear();
    }

    // The federation's spec: a weaker threat model than the one pinned.
    let fed = srv
        .admin
        .create_federation(&spec(secagg(0.2), m, 4, 30))
        .await
        .unwrap();
    let members = enroll(&proxy, &srv.admin, fed.id, 4, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    lie.set(|_, v| {
        if let Some(mode) = v.pointer_mut("/spec/mode") {
            mode["corrupt_fraction"] = 0.0.into();
        }
    });
    refused(&srv, fed.id, &members[0], m, "differ from those pinned").await;
}

/// Paillier: the server hands out a key of its own instead of the key holder's.
pub(super) async fn the_sdk_refuses_a_key_the_server_substitutes(store: Store) {
    let srv = start(store, 1 << 22).await;
    let lie = Lie::default();
    let proxy = tampering_proxy(srv.base.clone(), lie.clone()).await;
    let m = 20;
    let mode = Mode::Paillier {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
    };
    let fed = srv
        .admin
        .create_federation(&spec(mode, m, 3, 30))
        .await
        .unwrap();
    let kh = enroll(&srv.base, &srv.admin, fed.id, 1, Role::KeyHolder)
        .await
        .remove(0);
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let key = fedagg_paillier::keygen(2048, &mut rng).unwrap();
    KeyHolder::new(kh, key).publish().await.unwrap();
    let members = enroll(&proxy, &srv.admin, fed.id, 3, Role::Participant).await;
    srv.admin.open_round(fed.id).await.unwrap();
    let servers_own = fedagg_paillier::keygen(2048, &mut rng).unwrap();
    let text = servers_own.public().to_text();
    lie.set(move |_, v| {
        if v.get("paillier").is_some() {
            v["paillier"] = text.clone().into();
        }
    });
    refused(&srv, fed.id, &members[0], m, "public key differs").await;
}

/// `fedagg authority …` on this server; its output, or its error text.
fn authority_cli(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fedagg"))
        .arg("authority")
        .args(args)
        .env("FEDAGG_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    });
    if out.status.success() {
        Ok(text.into_owned())
    } else {
        Err(text.into_owned())
    }
}

/// The roster of identity keys: signed by the enrollment authority with `fedagg authority`,
/// checked by the server when stored and by members when read; a server that swaps a key in it
/// is caught.
pub(super) async fn members_trust_the_roster_their_authority_signed(store: Store) {
    let srv = start(store, 1 << 22).await;
    let dir = temp_dir();
    let keys = dir.join("keys");
    let out = authority_cli(&["keygen", "--dir", keys.to_str().unwrap()]).unwrap();
    let public = out
        .lines()
        .last()
        .unwrap()
        .trim_start_matches("roster_authority: ")
        .to_string();
    assert!(authority_cli(&["keygen", "--dir", keys.to_str().unwrap()]).is_err());
    let mut sp = spec(dp_mode(), 4, 3, 30);
    sp.roster_authority = Some("zz".into());
    let e = srv.admin.create_federation(&sp).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 422, .. }), "{e}");
    sp.roster_authority = Some(public.clone());
    let fed = srv.admin.create_federation(&sp).await.unwrap();
    let lie = Lie::default();
    let proxy = tampering_proxy(srv.base.clone(), lie.clone()).await;
    let members = enroll(&proxy, &srv.admin, fed.id, 3, Role::Participant).await;
    let e = members[0].roster().await.unwrap_err();
    assert!(
        matches!(&e, Error::Untrusted(m) if m.contains("not signed a roster")),
        "{e}"
    );
    let listed = srv.admin.roster(fed.id).await.unwrap().enrolled;
    let own: Vec<(i64, String)> = members
        .iter()
        .map(|c| (c.participant_id(), c.identity().unwrap().public_hex()))
        .collect();
    let got: Vec<(i64, String)> = listed
        .iter()
        .map(|m| (m.participant_id, m.identity_key.clone()))
        .collect();
    assert_eq!(got, own);

    // Signed by another key, or listing a key a member did not enroll with: refused.
    let other = fedagg_client::Identity::generate();
    let forged = other.sign_roster(fed.id, listed.clone()).unwrap();
    let e = srv.admin.put_roster(fed.id, &forged).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 422, .. }), "{e}");
    let key = keys.join("authority.key");
    let wrong = dir.join("wrong-members");
    std::fs::write(&wrong, format!("{} {}\n", own[0].0, other.public_hex())).unwrap();
    let base = srv.base.as_str();
    let fid = fed.id.to_string();
    let sign = |extra: &[&str]| {
        let mut args = vec!["sign-roster", "--federation", &fid, "--url", base, "--key"];
        args.push(key.to_str().unwrap());
        args.extend_from_slice(extra);
        authority_cli(&args)
    };
    let e = sign(&["--members", wrong.to_str().unwrap()]).unwrap_err();
    assert!(e.contains("not signed"), "{e}");

    // The partners' keys, read out to the authority: two of the three.
    let list = dir.join("members");
    let lines: Vec<String> = own[..2].iter().map(|(id, k)| format!("{id} {k}")).collect();
    std::fs::write(&list, lines.join("\n")).unwrap();
    sign(&["--members", list.to_str().unwrap()]).unwrap();
    let roster = members[2].roster().await.unwrap();
    assert_eq!(roster.len(), 2);
    for (id, k) in &own[..2] {
        assert_eq!(hex::encode(roster[id].as_bytes()), *k);
    }

    // A server that swaps a member's key in the roster it serves is caught.
    let swapped = other.public_hex();
    lie.set(move |_, v| {
        if let Some(m) = v.pointer_mut("/signed/members/0/identity_key") {
            *m = swapped.clone().into();
        }
    });
    let e = members[0].roster().await.unwrap_err();
    assert!(
        matches!(&e, Error::Untrusted(m) if m.contains("not signed by the pinned")),
        "{e}"
    );
    lie.clear();

    // No authority, no roster to store.
    let plain = srv
        .admin
        .create_federation(&spec(dp_mode(), 4, 3, 30))
        .await
        .unwrap();
    let e = srv.admin.put_roster(plain.id, &forged).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 409, .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SecAgg mode that does not trust the server, and a federation of it with `n` members whose
/// roster the authority signed; returns the federation id and the members.
async fn malicious_federation(srv: &Srv, base: &str, m: usize, n: usize) -> (i64, Vec<Client>) {
    let authority = fedagg_client::Identity::generate();
    let mode = Mode::Secagg {
        clip: 1.0,
        levels: 1 << 16,
        max_weight: 100,
        dropout_rate: 0.2,
        corrupt_fraction: 0.05,
        malicious_server: true,
    };
    let mut sp = spec(mode, m, 4, 5);
    let e = srv.admin.create_federation(&sp).await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 422, detail, .. } if detail.contains("roster_authority")),
        "{e}"
    );
    sp.roster_authority = Some(authority.public_hex());
    let fed = srv.admin.create_federation(&sp).await.unwrap();
    let members = enroll(base, &srv.admin, fed.id, n, Role::Participant).await;
    // No signed roster, no round: nobody could check the others' identities.
    let e = srv.admin.open_round(fed.id).await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 409, detail, .. } if detail.contains("roster")),
        "{e}"
    );
    let enrolled = srv.admin.roster(fed.id).await.unwrap().enrolled;
    let signed = authority.sign_roster(fed.id, enrolled).unwrap();
    srv.admin.put_roster(fed.id, &signed).await.unwrap();
    (fed.id, members)
}

/// Against a malicious server, over REST: signed keys, the consistency check, and dropouts
/// before and after the masked input; the model is the survivors' weighted mean.
pub(super) async fn a_secagg_round_against_a_malicious_server_gives_the_survivors_mean(
    store: Store,
) {
    let srv = start(store, 1 << 22).await;
    let (m, n) = (30, 10);
    let (fid, members) = malicious_federation(&srv, &srv.base, m, n).await;
    let info = srv.admin.open_round(fid).await.unwrap();
    let session = info.secagg.as_ref().unwrap();
    assert_eq!((session.cohort.len(), session.identities.len()), (n, n));
    let ups = updates(n, m, 51);
    let mut drops = vec![None; n];
    drops[0] = Some(Vanish::BeforeSending);
    drops[1] = Some(Vanish::After(Phase::MaskedInput));
    let results = contribute_all(&members, &ups, &drops).await;
    for r in &results[2..] {
        assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
    }
    let end = srv.admin.wait_round(fid, 1, WAIT).await.unwrap();
    let rec = end.record.unwrap();
    // Member 1 sent its masked input before vanishing: it is in the sum.
    assert_eq!((rec.participants, rec.dropouts), (9, 1), "{rec:?}");
    assert_model_is_mean(&srv.admin, fid, &ups[1..]).await;
}

/// Edit the SecAgg message inside an inbox frame of round `round`.
fn edit_message(frame: &mut Vec<u8>, round: u64, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut msg = Frame::decode(frame, FrameKind::Secagg, round)
        .unwrap()
        .to_vec();
    edit(&mut msg);
    *frame = Frame::encode(FrameKind::Secagg, round, &msg);
}

/// Whether a SecAgg message is of `kind`.
fn is(msg: &[u8], kind: fedagg_secagg::wire::Kind) -> bool {
    fedagg_secagg::wire::peek_kind(msg).is_ok_and(|k| k == kind)
}

/// Key list entries: id, two X25519 keys, the identity's signature; they end the message.
const KEY_ENTRY: usize = 4 + 64 + 64;

/// Against a malicious server, every member refuses a round the server tampers with, before
/// revealing what the lie was after: a forged key, two members' keys swapped, a survivor
/// reported as dropped to collect both of its shares, and the previous round's key lists
/// replayed. Each refusal names the check that caught it; no share of a refused phase reaches
/// the server.
pub(super) async fn members_refuse_a_malicious_server_that_deviates(store: Store) {
    let srv = start(store, 1 << 22).await;
    let lie = Lie::default();
    let proxy = tampering_proxy(srv.base.clone(), lie.clone()).await;
    let (m, n) = (20, 10);
    type Edit = fn(&mut Vec<u8>);
    let deviations: [(&str, Phase, Edit, &str); 3] = [
        (
            "forged key",
            Phase::ShareKeys,
            |msg| {
                if is(msg, fedagg_secagg::wire::Kind::KeyList) {
                    let at = msg.len() - KEY_ENTRY + 4;
                    msg[at] ^= 1;
                }
            },
            "does not verify",
        ),
        (
            "swapped keys",
            Phase::ShareKeys,
            |msg| {
                if is(msg, fedagg_secagg::wire::Kind::KeyList) {
                    let (a, b) = (msg.len() - 2 * KEY_ENTRY + 4, msg.len() - KEY_ENTRY + 4);
                    for i in 0..64 {
                        msg.swap(a + i, b + i);
                    }
                }
            },
            "does not verify",
        ),
        (
            "survivor reported dropped",
            Phase::Unmask,
            |msg| {
                if is(msg, fedagg_secagg::wire::Kind::UnmaskRequest) {
                    move_last_survivor_to_dropped(msg);
                }
            },
            "signed set",
        ),
    ];
    for (name, phase, edit, what) in deviations {
        let (fid, members) = malicious_federation(&srv, &proxy, m, n).await;
        srv.admin.open_round(fid).await.unwrap();
        lie.set_frames(move |path, _, frame| {
            if path.ends_with("/inbox") {
                edit_message(frame, 1, edit);
            }
        });
        let results = contribute_all(&members, &updates(n, m, 61), &vec![None; n]).await;
        lie.clear();
        for r in &results {
            let e = r.as_ref().err().unwrap_or_else(|| panic!("{name}: {r:?}"));
            let own = "key list omits or alters this client's own keys";
            let itself = "lists this client as dropped";
            assert!(
                matches!(e, Error::Protocol(msg) if msg.contains(what) || msg.contains(own) || msg.contains(itself)),
                "{name}: {e}"
            );
        }
        let info = srv.admin.round(fid, 1, None, Duration::ZERO).await.unwrap();
        assert_eq!((info.phase, info.received), (phase, 0), "{name}");
    }
}

/// In an unmask request (survivors, dropped, the signed set, signatures), list the last
/// surviving neighbour as dropped instead: the server would then get its self-mask share from
/// the others and its mask-key share from this member.
fn move_last_survivor_to_dropped(msg: &mut Vec<u8>) {
    let u32_at = |m: &[u8], i: usize| u32::from_le_bytes(m[i..i + 4].try_into().unwrap()) as usize;
    let survivors = u32_at(msg, 4);
    let last = 8 + 4 * (survivors - 1);
    let moved: Vec<u8> = msg[last..last + 4].to_vec();
    let dropped_at = 8 + 4 * survivors;
    let dropped = u32_at(msg, dropped_at);
    let mut out = msg[..4].to_vec();
    out.extend_from_slice(&((survivors - 1) as u32).to_le_bytes());
    out.extend_from_slice(&msg[8..last]);
    out.extend_from_slice(&((dropped + 1) as u32).to_le_bytes());
    let mut ids: Vec<[u8; 4]> = msg[dropped_at + 4..dropped_at + 4 + 4 * dropped]
        .chunks_exact(4)
        .map(|c| c.try_into().unwrap())
        .collect();
    ids.push(moved.try_into().unwrap());
    ids.sort_by_key(|b| u32::from_le_bytes(*b));
    for id in ids {
        out.extend_from_slice(&id);
    }
    out.extend_from_slice(&msg[dropped_at + 4 + 4 * dropped..]);
    *msg = out;
}

/// Against a malicious server, the previous round's key lists, replayed in the next round (each
/// member's own, framed for the new round), are refused: the signatures are bound to the session.
pub(super) async fn members_refuse_the_previous_rounds_key_lists(store: Store) {
    let srv = start(store, 1 << 22).await;
    let lie = Lie::default();
    let proxy = tampering_proxy(srv.base.clone(), lie.clone()).await;
    let (m, n) = (20, 10);
    let (fid, members) = malicious_federation(&srv, &proxy, m, n).await;
    let seen: Arc<Mutex<std::collections::HashMap<String, Vec<u8>>>> = Arc::default();
    let record = Arc::clone(&seen);
    lie.set_frames(move |path, token, frame| {
        if path.ends_with("/rounds/1/inbox") {
            let msg = Frame::decode(frame, FrameKind::Secagg, 1).unwrap();
            if is(msg, fedagg_secagg::wire::Kind::KeyList) {
                record
                    .lock()
                    .unwrap()
                    .insert(token.to_string(), msg.to_vec());
            }
        }
    });
    srv.admin.open_round(fid).await.unwrap();
    let results = contribute_all(&members, &updates(n, m, 71), &vec![None; n]).await;
    assert!(results
        .iter()
        .all(|r| done(r).status == RoundStatus::Completed));
    assert_eq!(seen.lock().unwrap().len(), n);
    lie.set_frames(move |path, token, frame| {
        if path.ends_with("/rounds/2/inbox") {
            let old = seen.lock().unwrap().get(token).cloned().unwrap();
            edit_message(frame, 2, |msg| {
                if is(msg, fedagg_secagg::wire::Kind::KeyList) {
                    *msg = old;
                }
            });
        }
    });
    srv.admin.open_round(fid).await.unwrap();
    let results = contribute_all(&members, &updates(n, m, 72), &vec![None; n]).await;
    lie.clear();
    for r in &results {
        let e = r.as_ref().err().unwrap_or_else(|| panic!("{r:?}"));
        let own = "key list omits or alters this client's own keys";
        assert!(
            matches!(e, Error::Protocol(msg) if msg.contains("does not verify") || msg.contains(own)),
            "{e}"
        );
    }
    let info = srv.admin.round(fid, 2, None, Duration::ZERO).await.unwrap();
    assert_eq!((info.phase, info.received), (Phase::ShareKeys, 0));
}

/// Each member's token as the proxy sees it, with its index in the cohort of round `round`: each
/// member in turn asks for the round through the proxy, which notes the token it came with.
async fn tokens_and_indices(lie: &Lie, members: &[Client], round: u64) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for member in members {
        let seen: Arc<Mutex<String>> = Arc::default();
        let note = Arc::clone(&seen);
        lie.set_requests(move |_, token, _| *note.lock().unwrap() = token.to_string());
        let info = member.round(round, None, Duration::ZERO).await.unwrap();
        let token = seen.lock().unwrap().clone();
        out.push((token, info.member.unwrap()));
    }
    lie.clear();
    out
}

/// In a key list (count, then entries sorted by id), remove the entry of member `x`.
fn remove_key(msg: &mut Vec<u8>, x: u32) {
    let count = u32::from_le_bytes(msg[4..8].try_into().unwrap());
    let at = (0..count as usize)
        .map(|i| 8 + i * KEY_ENTRY)
        .find(|&at| msg[at..at + 4] == x.to_le_bytes())
        .unwrap();
    msg.drain(at..at + KEY_ENTRY);
    msg[4..8].copy_from_slice(&(count - 1).to_le_bytes());
}

/// In a ShareKeys message (commitment, count, then entries sorted by recipient), add shares for
/// member `x` that are random bytes: what the server needs to pass a sender's shares off as
/// addressed to `x` when it hid `x` from that sender.
fn add_bogus_shares(msg: &mut Vec<u8>, x: u32) {
    use fedagg_secagg::crypto::SHARE_CIPHERTEXT_LEN;
    let entry = 4 + SHARE_CIPHERTEXT_LEN;
    let count = u32::from_le_bytes(msg[36..40].try_into().unwrap());
    let at = (0..count as usize)
        .map(|i| 40 + i * entry)
        .find(|&at| u32::from_le_bytes(msg[at..at + 4].try_into().unwrap()) > x)
        .unwrap_or(msg.len());
    let mut bogus = x.to_le_bytes().to_vec();
    bogus.extend((0..SHARE_CIPHERTEXT_LEN).map(|i| i as u8));
    msg.splice(at..at, bogus);
    msg[36..40].copy_from_slice(&(count + 1).to_le_bytes());
}

/// Against a malicious server, one member's keys are dropped for some recipients only: two
/// victims get key lists without member X, while X and everyone else get the full list. The
/// server then passes the victims' shares off as addressed to X (bogus entries) and forwards
/// X's shares to them. Each victim refuses shares from a member it holds no keys of, and X
/// refuses shares that do not decrypt, so all three stop before sending a masked input (none
/// of their shares of anyone is revealed); the other members finish the round without them.
pub(super) async fn members_refuse_a_server_that_drops_keys_for_some_recipients(store: Store) {
    let srv = start(store, 1 << 22).await;
    let lie = Lie::default();
    let proxy = tampering_proxy(srv.base.clone(), lie.clone()).await;
    let (m, n) = (20, 10);
    let (fid, members) = malicious_federation(&srv, &proxy, m, n).await;
    srv.admin.open_round(fid).await.unwrap();
    let seats = tokens_and_indices(&lie, &members, 1).await;
    let x = seats[0].1;
    let victims: Vec<String> = seats[1..3].iter().map(|(t, _)| t.clone()).collect();
    let hidden = victims.clone();
    lie.set_frames(move |path, token, frame| {
        if path.ends_with("/rounds/1/inbox") && hidden.iter().any(|v| v == token) {
            edit_message(frame, 1, |msg| {
                if is(msg, fedagg_secagg::wire::Kind::KeyList) {
                    remove_key(msg, x);
                }
            });
        }
    });
    lie.set_requests(move |path, token, body| {
        let share_keys = |b: &[u8]| {
            Frame::decode(b, FrameKind::Secagg, 1)
                .is_ok_and(|msg| is(msg, fedagg_secagg::wire::Kind::ShareKeys))
        };
        if path.ends_with("/rounds/1/submissions")
            && victims.iter().any(|v| v == token)
            && share_keys(body)
        {
            edit_message(body, 1, |msg| add_bogus_shares(msg, x));
        }
    });
    let ups = updates(n, m, 81);
    let results = contribute_all(&members, &ups, &vec![None; n]).await;
    lie.clear();
    let refused = |r: &Result<Option<Outcome>, Error>, what: &str| {
        let e = r.as_ref().err().unwrap_or_else(|| panic!("{r:?}"));
        assert!(
            matches!(e, Error::Protocol(msg) if msg.contains(what)),
            "wanted {what:?}, got {e}"
        );
    };
    refused(&results[0], "decrypt");
    for r in &results[1..3] {
        refused(r, &format!("shares from client {x}, not in our key list"));
    }
    for r in &results[3..] {
        assert_eq!(done(r).status, RoundStatus::Completed, "{r:?}");
    }
    let rec = srv
        .admin
        .wait_round(fid, 1, WAIT)
        .await
        .unwrap()
        .record
        .unwrap();
    assert_eq!((rec.participants, rec.dropouts), (7, 3), "{rec:?}");
    assert_model_is_mean(&srv.admin, fid, &ups[3..]).await;
}
