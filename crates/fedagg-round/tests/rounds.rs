//! Whole rounds of every mode in memory: the engine driven the way the service drives it
//! (check, log, apply; prepare a closure, store it, commit), against an in-memory store that can
//! be told to refuse a write. No sockets, no sleeps: time is a number.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use fedagg_api::{f32_bytes, u64_bytes, FederationSpec, Frame, Mode, Phase, Role, RoundStatus};
use fedagg_round::{plan, spec, Ending, Event, Round, RoundError, RoundId, KEY_HOLDER};
use fedagg_secagg::ClientId;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const LEN: usize = 6;
const TIMEOUT_MS: i64 = 10_000;

fn spec(mode: Mode, n: u32) -> FederationSpec {
    FederationSpec {
        name: "t".into(),
        vector_len: LEN,
        mode,
        min_clients: 3,
        max_clients: n,
        phase_timeout_secs: (TIMEOUT_MS / 1000) as u64,
        server_lr: 1.0,
        auto_rounds: false,
        roster_authority: None,
        scaffold: false,
    }
}

fn secagg() -> Mode {
    Mode::Secagg {
        clip: 4.0,
        levels: 1 << 16,
        max_weight: 10,
        dropout_rate: 0.3,
        corrupt_fraction: 0.1,
        malicious_server: false,
    }
}

fn paillier() -> Mode {
    Mode::Paillier {
        clip: 4.0,
        levels: 1 << 16,
        max_weight: 10,
    }
}

fn dp(budget: f64) -> Mode {
    Mode::Dp {
        clip: 100.0,
        noise_multiplier: 1e-6,
        sampling_rate: 1.0,
        epsilon_budget: budget,
        delta: 1e-5,
        adaptive_clip: None,
        accountant: fedagg_api::Accountant::Rdp,
    }
}

fn update(i: u32) -> Vec<f32> {
    (0..LEN)
        .map(|j| (i as f32 + 1.0) * 0.25 - j as f32 * 0.1)
        .collect()
}

/// Which write the store refuses next.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Write {
    Submit,
    Close,
    Complete,
}

/// The shell's side, in memory: an event log, the stored ending, and a switch that refuses one
/// kind of write.
struct Harness {
    round: Round,
    log: Vec<Event>,
    ending: Option<Ending>,
    refuse: Option<Write>,
    base: Vec<f32>,
    rng: ChaCha20Rng,
    now: i64,
    /// The round's snapshot before the first logged event and after each one.
    snapshots: Vec<String>,
    /// The length of every frame the round accepted.
    accepted: Vec<usize>,
}

impl Harness {
    fn open(spec: FederationSpec, n: u32, public_key: Option<&str>, seed: u64) -> Self {
        Self::open_signed(spec, n, public_key, seed, None)
    }

    /// [`Harness::open`] with the verified roster's identities (participant ids `1..=n`).
    fn open_signed(
        spec: FederationSpec,
        n: u32,
        public_key: Option<&str>,
        seed: u64,
        identities: Option<&plan::Identities>,
    ) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        spec::validate(&spec).unwrap();
        let ledger = spec::initial_ledger(&spec).unwrap();
        let params = plan::plan(
            &spec,
            (1..=n as i64).collect(),
            identities,
            ledger.as_ref(),
            &mut rng,
        )
        .unwrap();
        let id = RoundId {
            federation_id: 1,
            round: 1,
            base_version: 0,
            opened_ms: 1_000,
        };
        let round = Round::new(id, spec, params, public_key, ledger).unwrap();
        let mut h = Harness {
            round,
            log: Vec::new(),
            ending: None,
            refuse: None,
            base: vec![0.5; LEN],
            rng,
            now: 1_000,
            snapshots: Vec::new(),
            accepted: Vec::new(),
        };
        h.snapshots.push(h.snapshot());
        h
    }

    fn store(&mut self, w: Write) -> Result<(), RoundError> {
        if self.refuse == Some(w) {
            self.refuse = None;
            return Err(RoundError::Internal(format!(
                "{w:?}: database or disk is full"
            )));
        }
        Ok(())
    }

    /// What the service does with a submission frame. Once the submission is logged it is
    /// accepted; a phase closure that then fails to be stored is retried at the next tick.
    fn submit(&mut self, member: u32, frame: &[u8]) -> Result<(), RoundError> {
        // The service refuses a body over this bound before reading it: every legitimate
        // submission of every mode and phase must fit.
        let payload = self.round.payload(member, frame)?.to_vec();
        assert!(
            frame.len() <= self.round.max_submission(),
            "a {}-byte {} submission over the bound {}",
            frame.len(),
            self.round.phase(),
            self.round.max_submission()
        );
        // So must any submission accepted in an earlier phase: its sender, whose answer was
        // lost to a restart, retries it and must get the replay's answer.
        let bound = self.round.max_submission();
        if let Some(len) = self.accepted.iter().find(|&&len| len > bound) {
            panic!(
                "an accepted {len}-byte submission over {bound} in phase {}",
                self.round.phase()
            );
        }
        let s = self.round.check(member, &payload)?;
        self.store(Write::Submit)?;
        self.log.push(Event::Submit {
            member,
            phase: s.phase(),
            body: payload,
        });
        self.round.apply(s)?;
        self.accepted.push(frame.len());
        self.snapshots.push(self.snapshot());
        if self.round.due(self.now) {
            let _ = self.close();
        }
        Ok(())
    }

    /// What the service does when a phase is due.
    fn close(&mut self) -> Result<(), RoundError> {
        let c = self.round.prepare_close(&mut self.rng, self.now);
        let base = fedagg_round::Base {
            model: self.base.clone(),
            optimizer: None,
            controls: self.round.spec().scaffold.then(|| vec![0.25; LEN]),
        };
        match self.round.ending(&c, || Ok(base))? {
            None => {
                self.store(Write::Close)?;
                self.log.push(Event::Close { phase: c.phase() });
                self.round.commit(c)?;
                self.snapshots.push(self.snapshot());
            }
            Some(ending) => {
                self.store(Write::Complete)?;
                self.ending = Some(ending);
                self.round.commit(c)?;
            }
        }
        Ok(())
    }

    fn tick(&mut self, now: i64) -> Result<(), RoundError> {
        self.now = now;
        if self.round.due(now) {
            self.close()?;
        }
        Ok(())
    }

    fn frame(&self, kind: fedagg_api::FrameKind, payload: &[u8]) -> Vec<u8> {
        Frame::encode(kind, self.round.id().round, payload)
    }

    fn inbox(&self, member: u32) -> Vec<u8> {
        let f = self.round.download(member).unwrap();
        Frame::decode(&f, fedagg_api::FrameKind::Secagg, 1)
            .unwrap()
            .to_vec()
    }

    fn model(&self) -> Vec<f32> {
        match self.ending.as_ref().unwrap() {
            Ending::Completed { model, .. } => model.clone(),
            Ending::Failed { record } => panic!("round failed: {:?}", record.failure),
        }
    }

    /// SCAFFOLD's control variate after the round.
    fn controls(&self) -> Option<Vec<f32>> {
        match self.ending.as_ref().unwrap() {
            Ending::Completed { controls, .. } => controls.clone(),
            Ending::Failed { record } => panic!("round failed: {:?}", record.failure),
        }
    }

    /// Everything observable about the round, for comparing two of them.
    fn snapshot(&self) -> String {
        let r = &self.round;
        let n = r.params().cohort.len() as u32;
        let members: Vec<(bool, Option<Vec<u8>>)> = (0..n)
            .chain([KEY_HOLDER])
            .map(|m| (r.has_submitted(m), r.download(m).ok()))
            .collect();
        format!(
            "{:?} {} {} {} {} {:?}",
            r.phase(),
            r.revision(),
            r.bytes(),
            r.received(),
            r.expected(),
            members
        )
    }
}

/// Where a SecAgg client stops answering.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Drop {
    Never,
    BeforeAdvertise,
    AfterAdvertise,
    AfterShares,
    AfterMasked,
}

/// A SecAgg round through the engine with real clients; returns the harness after the round.
fn secagg_round(drops: &[Drop], seed: u64, fault: Option<Write>) -> Harness {
    let n = drops.len() as u32;
    secagg_round_of(spec(secagg(), n), drops, seed, fault, |h, i, rng| {
        let quant = h.round.spec().quant().unwrap();
        quant
            .encode_weighted(&update(i), 1 + u64::from(i % 3), rng)
            .unwrap()
    })
}

/// A round of a SecAgg `spec` (with or without distributed DP) whose member `i` sums what
/// `encode` makes of its update.
fn secagg_round_of(
    spec: FederationSpec,
    drops: &[Drop],
    seed: u64,
    fault: Option<Write>,
    encode: impl Fn(&Harness, u32, &mut ChaCha20Rng) -> Vec<u64>,
) -> Harness {
    use fedagg_api::FrameKind::Secagg;
    let n = drops.len() as u32;
    let mut h = Harness::open(spec, n, None, seed);
    let session = h.round.params().secagg.clone().unwrap();
    let cfg = Arc::new(session.config_for(h.round.spec()).unwrap());
    let mut crng = ChaCha20Rng::seed_from_u64(seed ^ 0xc1);
    let inputs: Vec<Vec<u64>> = (0..n).map(|i| encode(&h, i, &mut crng)).collect();
    let alive = |i: usize, after: Drop| drops[i] == Drop::Never || drops[i] > after;
    h.refuse = fault;
    let mut states = Vec::new();
    for i in 0..n as usize {
        if !alive(i, Drop::BeforeAdvertise) {
            states.push(None);
            continue;
        }
        let (st, msg) =
            fedagg_secagg::client::start(cfg.clone(), ClientId(i as u32), None, &mut crng).unwrap();
        states.push(Some(st));
        let f = h.frame(Secagg, &msg);
        retry(&mut h, i as u32, f);
    }
    deadline(&mut h, Phase::AdvertiseKeys);
    let mut states2 = Vec::new();
    for (i, st) in states.into_iter().enumerate() {
        match st.filter(|_| alive(i, Drop::AfterAdvertise)) {
            Some(st) => {
                let (st, msg) = st.share_keys(&h.inbox(i as u32), &mut crng).unwrap();
                let f = h.frame(Secagg, &msg);
                retry(&mut h, i as u32, f);
                states2.push(Some(st));
            }
            None => states2.push(None),
        }
    }
    deadline(&mut h, Phase::ShareKeys);
    let mut states3 = Vec::new();
    for (i, st) in states2.into_iter().enumerate() {
        match st.filter(|_| alive(i, Drop::AfterShares)) {
            Some(st) => {
                let (st, msg) = st.mask(&h.inbox(i as u32), &inputs[i]).unwrap();
                let f = h.frame(Secagg, &msg);
                retry(&mut h, i as u32, f);
                states3.push(Some(st));
            }
            None => states3.push(None),
        }
    }
    deadline(&mut h, Phase::MaskedInput);
    for (i, st) in states3.into_iter().enumerate() {
        if let Some(st) = st.filter(|_| alive(i, Drop::AfterMasked)) {
            let msg = st.unmask(&h.inbox(i as u32)).unwrap();
            let f = h.frame(Secagg, &msg);
            retry(&mut h, i as u32, f);
        }
    }
    deadline(&mut h, Phase::Unmask);
    h
}

/// Submit, and once more if the store refused the write: the same submission is accepted once
/// the store is back.
fn retry(h: &mut Harness, member: u32, frame: Vec<u8>) {
    if let Err(e) = h.submit(member, &frame) {
        assert!(matches!(e, RoundError::Internal(_)), "{e}");
        h.submit(member, &frame).unwrap();
    }
}

/// If the round still waits in `phase` (someone dropped, or storing its closure failed), let
/// its deadline pass on the fake clock, retrying a refused write on the next tick.
fn deadline(h: &mut Harness, phase: Phase) {
    if h.round.phase() != phase {
        return;
    }
    if h.round.received() < h.round.expected() {
        let early = h.round.deadline().at_ms() - 1;
        h.tick(early).unwrap();
        assert_eq!(h.round.phase(), phase, "closed before its deadline");
    }
    let at = h.round.deadline().at_ms();
    if h.tick(at).is_err() {
        h.tick(at + 200).unwrap();
    }
    assert_ne!(h.round.phase(), phase);
}

/// The weighted mean of the survivors' updates, as the plaintext computation gives it.
fn weighted_mean(included: &[u32]) -> Vec<f32> {
    let w = |i: u32| (1 + u64::from(i % 3)) as f32;
    let total: f32 = included.iter().map(|&i| w(i)).sum();
    (0..LEN)
        .map(|j| included.iter().map(|&i| w(i) * update(i)[j]).sum::<f32>() / total)
        .collect()
}

fn assert_close(model: &[f32], base: f32, mean: &[f32], tol: f32) {
    assert_eq!(model.len(), LEN);
    for (m, u) in model.iter().zip(mean) {
        assert!(
            (m - base - u).abs() < tol,
            "{model:?} vs base {base} + {mean:?}"
        );
    }
}

#[test]
fn secagg_round_without_dropouts_gives_the_weighted_mean() {
    let h = secagg_round(&[Drop::Never; 5], 1, None);
    assert_eq!(h.round.phase(), Phase::Done);
    assert_close(&h.model(), 0.5, &weighted_mean(&[0, 1, 2, 3, 4]), 1e-3);
    assert_eq!(h.ending.as_ref().unwrap().record().participants, 5);
}

#[test]
fn secagg_round_survives_dropouts_at_every_phase() {
    let drops = [
        Drop::Never,
        Drop::BeforeAdvertise,
        Drop::Never,
        Drop::AfterShares,
        Drop::Never,
        Drop::AfterMasked,
        Drop::Never,
    ];
    let h = secagg_round(&drops, 2, None);
    // Dropped after masking: its input is in the sum (its self-mask is removed with shares).
    let included = [0, 2, 4, 5, 6];
    assert_close(&h.model(), 0.5, &weighted_mean(&included), 1e-3);
    let r = h.ending.as_ref().unwrap().record();
    assert_eq!((r.participants, r.dropouts), (5, 2));
}

#[test]
fn a_refused_write_leaves_a_secagg_round_completable() {
    let drops = [
        Drop::Never,
        Drop::AfterAdvertise,
        Drop::Never,
        Drop::Never,
        Drop::Never,
    ];
    let clean = secagg_round(&drops, 3, None);
    for fault in [Write::Submit, Write::Close, Write::Complete] {
        let h = secagg_round(&drops, 3, Some(fault));
        assert!(h.refuse.is_none(), "{fault:?} was never tried");
        assert_eq!(h.model(), clean.model(), "{fault:?}");
        assert_eq!(h.log, clean.log, "{fault:?}");
    }
}

#[test]
fn a_refused_write_changes_nothing() {
    let mut h = Harness::open(spec(dp(1e15), 3), 3, None, 4);
    let before = h.snapshot();
    h.refuse = Some(Write::Submit);
    let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(0)));
    assert!(h.submit(0, &f).is_err());
    assert_eq!(h.snapshot(), before);
    assert!(h.log.is_empty());
    h.submit(0, &f).unwrap();
    h.submit(
        1,
        &h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(1))),
    )
    .unwrap();
    // The last submission is logged and accepted; storing the completion fails.
    h.refuse = Some(Write::Complete);
    let f2 = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(2)));
    h.submit(2, &f2).unwrap();
    assert!(h.refuse.is_none(), "the completion was not tried");
    let after = h.snapshot();
    assert_eq!((h.round.phase(), h.round.received()), (Phase::Submit, 3));
    assert!(h.ending.is_none());
    // The store is back: the next tick completes the round with all three, and the model has
    // every value.
    h.tick(h.now + 1).unwrap();
    assert_ne!(h.snapshot(), after);
    assert_close(&h.model(), 0.5, &mean(&[0, 1, 2]), 1e-3);
    match h.ending.as_ref().unwrap() {
        Ending::Completed { ledger, record, .. } => {
            assert_eq!(ledger.as_ref().unwrap().ledger.rounds(), 1);
            assert_eq!(record.participants, 3);
        }
        Ending::Failed { .. } => panic!("failed"),
    }
}

fn mean(included: &[u32]) -> Vec<f32> {
    sum_over(included, included.len() as f32)
}

/// The sum of the `included` updates over `n`.
fn sum_over(included: &[u32], n: f32) -> Vec<f32> {
    (0..LEN)
        .map(|j| included.iter().map(|&i| update(i)[j]).sum::<f32>() / n)
        .collect()
}

#[test]
fn dp_round_closes_at_its_deadline_with_who_answered() {
    let mut h = Harness::open(spec(dp(1e15), 5), 5, None, 5);
    for i in [0u32, 2, 3] {
        let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(i)));
        h.submit(i, &f).unwrap();
    }
    let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(0)));
    assert!(matches!(h.submit(0, &f), Err(RoundError::Duplicate(_))));
    let d = h.round.deadline();
    assert_eq!(d.remaining_ms(d.started_ms + 4_000), 6_000);
    h.tick(d.at_ms() - 1).unwrap();
    assert_eq!(h.round.phase(), Phase::Submit);
    h.tick(d.at_ms()).unwrap();
    assert_eq!(h.round.phase(), Phase::Done);
    // The noised sum is divided by the expected cohort (q N = 5 at q = 1), not by the 3 who
    // answered: the release says nothing of how many took part.
    assert_close(&h.model(), 0.5, &sum_over(&[0, 2, 3], 5.0), 1e-3);
    let r = h.ending.as_ref().unwrap().record();
    assert_eq!((r.participants, r.dropouts), (3, 2));
    assert!(r.epsilon_spent.unwrap() > 0.0);
    assert!((r.duration_secs - TIMEOUT_MS as f64 / 1000.0).abs() < 1e-9);
}

#[test]
fn a_round_below_its_minimum_fails_at_the_deadline() {
    let mut h = Harness::open(spec(dp(1e15), 4), 4, None, 6);
    let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(1)));
    h.submit(1, &f).unwrap();
    let at = h.round.deadline().at_ms();
    h.tick(at).unwrap();
    assert_eq!(h.round.phase(), Phase::Done);
    match h.ending.as_ref().unwrap() {
        Ending::Failed { record } => {
            assert!(
                record.failure.as_ref().unwrap().contains("requires 3"),
                "{record:?}"
            )
        }
        Ending::Completed { .. } => panic!("completed below the minimum"),
    }
    assert_eq!(h.ending.as_ref().unwrap().status(), RoundStatus::Failed);
}

#[test]
fn submissions_are_refused_with_the_right_kind() {
    let mut h = Harness::open(spec(dp(1e15), 3), 3, None, 7);
    let good = f32_bytes(&update(0));
    // The wrong frame kind, the wrong round, a short body, a non-finite value.
    let wrong_kind = Frame::encode(fedagg_api::FrameKind::U64, 1, &good);
    assert!(matches!(
        h.submit(0, &wrong_kind),
        Err(RoundError::Malformed(_))
    ));
    let wrong_round = Frame::encode(fedagg_api::FrameKind::F32, 2, &good);
    assert!(matches!(
        h.submit(0, &wrong_round),
        Err(RoundError::Malformed(_))
    ));
    let short = h.frame(fedagg_api::FrameKind::F32, &good[..8]);
    assert!(matches!(h.submit(0, &short), Err(RoundError::Malformed(_))));
    let nan = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&[f32::NAN; LEN]));
    assert!(matches!(h.submit(0, &nan), Err(RoundError::Malformed(_))));
    let f = h.frame(fedagg_api::FrameKind::F32, &good);
    assert!(matches!(
        h.submit(KEY_HOLDER, &f),
        Err(RoundError::WrongPhase(_))
    ));
    assert!(matches!(
        h.round.member_of(Role::Participant, Some(99)),
        Err(RoundError::Forbidden(_))
    ));
    assert!(matches!(
        h.round.member_of(Role::Admin, None),
        Err(RoundError::Forbidden(_))
    ));
    assert_eq!(h.round.received(), 0);
    assert!(h.log.is_empty());
}

#[test]
fn a_spent_budget_refuses_the_next_round() {
    let s = spec(dp(1e-3), 3);
    let ledger = spec::initial_ledger(&s).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let e = plan::plan(&s, vec![1, 2, 3], None, ledger.as_ref(), &mut rng).unwrap_err();
    assert!(matches!(e, RoundError::Conflict(_)), "{e}");
}

#[test]
fn poisson_sampling_follows_the_rate() {
    let mut s = spec(dp(1e15), 100_000);
    if let Mode::Dp { sampling_rate, .. } = &mut s.mode {
        *sampling_rate = 0.1;
    }
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let cohort = plan::select_cohort(&s, (0..20_000).collect(), &mut rng);
    // Binomial(20000, 0.1): mean 2000, sd 42.
    assert!((1800..2200).contains(&cohort.len()), "{}", cohort.len());
    assert!(cohort.windows(2).all(|w| w[0] < w[1]));
    let uniform = plan::select_cohort(&spec(secagg(), 5), (0..50).collect(), &mut rng);
    assert_eq!(uniform.len(), 5);
}

#[test]
fn paillier_round_with_the_key_holder() {
    use fedagg_api::FrameKind;
    let mut krng = ChaCha20Rng::seed_from_u64(10);
    let sk = fedagg_paillier::keygen(512, &mut krng).unwrap();
    let pk = sk.public().clone();
    let mode = paillier();
    let mut h = Harness::open(spec(mode, 4), 4, Some(&pk.to_text()), 11);
    let quant = h.round.spec().quant().unwrap();
    let packing = fedagg_paillier::Packing::new(&pk, &quant).unwrap();
    let frame = |h: &Harness, i: u32, rng: &mut ChaCha20Rng| {
        let v = quant
            .encode_weighted(&update(i), 1 + u64::from(i % 3), rng)
            .unwrap();
        let cts = packing.encrypt(&pk, &v, rng).unwrap();
        h.frame(
            FrameKind::Paillier,
            &fedagg_paillier::encode_ciphertexts(&pk, &cts),
        )
    };
    for i in [0u32, 1, 3] {
        let f = frame(&h, i, &mut krng);
        h.submit(i, &f).unwrap();
    }
    let at = h.round.deadline().at_ms();
    h.tick(at).unwrap();
    assert_eq!(h.round.phase(), Phase::Decrypt);
    // Only the key holder downloads the encrypted sum, and only it submits now.
    assert!(h.round.download(0).is_err());
    let f = frame(&h, 2, &mut krng);
    assert!(matches!(h.submit(2, &f), Err(RoundError::WrongPhase(_))));
    // A contribution still fits the body bound: a participant retrying one the server accepted
    // (its answer lost to a restart) must get the replay's answer, not a 413.
    assert!(f.len() <= h.round.max_submission());
    decrypt_as_key_holder(&mut h, &sk, &packing);
    assert_close(&h.model(), 0.5, &weighted_mean(&[0, 1, 3]), 1e-3);
}

/// The key holder's part in a Paillier round's decrypt phase: download the encrypted sum,
/// decrypt it, submit the plaintext sum; the round is then done.
fn decrypt_as_key_holder(
    h: &mut Harness,
    sk: &fedagg_paillier::PrivateKey,
    packing: &fedagg_paillier::Packing,
) {
    use fedagg_api::FrameKind;
    let pk = sk.public();
    let sum = h.round.download(KEY_HOLDER).unwrap();
    let sum = Frame::decode(&sum, FrameKind::Paillier, 1).unwrap();
    let len = fedagg_quant::QuantParams::encoded_len(h.round.spec().update_len());
    let cts = fedagg_paillier::decode_ciphertexts(pk, sum, packing.ciphertexts_for(len)).unwrap();
    let plain = packing.decrypt(sk, &cts, len).unwrap();
    let f = h.frame(FrameKind::U64, &u64_bytes(&plain));
    h.submit(KEY_HOLDER, &f).unwrap();
    assert_eq!(h.round.phase(), Phase::Done);
}

/// Members 0, 1 and 3 of `h` (participants 1, 2, 4) submit their updates encrypted under `pk`
/// and signed with their identities `ids`, after a contribution signed by another member and one
/// signed for another round are refused; returns the sum of their ciphertexts.
fn submit_signed(
    h: &mut Harness,
    pk: &fedagg_paillier::PublicKey,
    ids: &[ed25519_dalek::SigningKey],
    krng: &mut ChaCha20Rng,
) -> Vec<fedagg_paillier::Ciphertext> {
    use fedagg_api::contributions::sign_contribution;
    use fedagg_api::FrameKind;
    let quant = h.round.spec().quant().unwrap();
    let packing = fedagg_paillier::Packing::new(pk, &quant).unwrap();
    let mut sum: Option<Vec<fedagg_paillier::Ciphertext>> = None;
    for i in [0u32, 1, 3] {
        let v = quant
            .encode_weighted(&update(i), 1 + u64::from(i % 3), krng)
            .unwrap();
        let cts = packing.encrypt(pk, &v, krng).unwrap();
        let bytes = fedagg_paillier::encode_ciphertexts(pk, &cts);
        // Signed by another member, or for another round: refused.
        for (signer, round) in [(&ids[(i as usize + 1) % 4], 1), (&ids[i as usize], 2)] {
            let forged = h.frame(
                FrameKind::Paillier,
                &sign_contribution(signer, 1, round, &bytes),
            );
            assert!(matches!(
                h.submit(i, &forged),
                Err(RoundError::Forbidden(_))
            ));
        }
        let f = h.frame(
            FrameKind::Paillier,
            &sign_contribution(&ids[i as usize], 1, 1, &bytes),
        );
        h.submit(i, &f).unwrap();
        sum = Some(match sum {
            None => cts,
            Some(mut acc) => {
                acc.iter_mut()
                    .zip(&cts)
                    .for_each(|(a, c)| pk.add_assign(a, c));
                acc
            }
        });
    }
    sum.unwrap()
}

/// Verified and threshold decryption in memory: contributions are checked against their members'
/// identities on arrival, the key holders download them signed, and three of five holders'
/// partial decryptions (each checked against the sum) complete the round; a bad or repeated one
/// is refused.
#[test]
fn a_threshold_round_of_signed_contributions() {
    use ed25519_dalek::SigningKey;
    use fedagg_api::contributions::{decode_contributions, verify_contributions};
    use fedagg_api::FrameKind;
    use fedagg_paillier::threshold::{deal_from_primes, random_safe_prime};
    use fedagg_round::key_holder_member;
    let mut krng = ChaCha20Rng::seed_from_u64(20);
    let (p, q) = (
        random_safe_prime(256, &mut krng),
        random_safe_prime(256, &mut krng),
    );
    let (key, shares) = deal_from_primes(&p, &q, 5, 3, &mut krng).unwrap();
    let pk = key.public().clone();
    let mode = paillier();
    let ids: Vec<SigningKey> = (0..4).map(|_| SigningKey::generate(&mut krng)).collect();
    let roster: plan::Identities = ids
        .iter()
        .zip(1i64..)
        .map(|(k, p)| (p, hex::encode(k.verifying_key().as_bytes())))
        .collect();
    let mut sp = spec(mode, 4);
    sp.roster_authority = Some(hex::encode(
        SigningKey::generate(&mut krng).verifying_key().as_bytes(),
    ));
    let mut h = Harness::open_signed(sp, 4, Some(&key.to_text()), 21, Some(&roster));
    let sum = submit_signed(&mut h, &pk, &ids, &mut krng);
    let at = h.round.deadline().at_ms();
    h.tick(at).unwrap();
    assert_eq!(h.round.phase(), Phase::Decrypt);
    let holders: Vec<u32> = (100..105).map(|p| key_holder_member(p).unwrap()).collect();
    let inbox = h.round.download(holders[0]).unwrap();
    let entries = decode_contributions(
        Frame::decode(&inbox, FrameKind::Contributions, 1).unwrap(),
        4,
        1 << 16,
    )
    .unwrap();
    let keys = ids
        .iter()
        .zip(1i64..)
        .map(|(k, p)| (p, k.verifying_key()))
        .collect();
    verify_contributions(1, 1, &entries, &keys, 3).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.participant).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    let partial = |i: usize, cts: &[fedagg_paillier::Ciphertext], rng: &mut ChaCha20Rng| {
        let part = shares[i].partial_decrypt(cts, rng);
        Frame::encode(
            FrameKind::PartialDecryption,
            1,
            &fedagg_paillier::encode_partials(&key, &part),
        )
    };
    // A partial decryption of something else than the sum (one member's ciphertexts): refused.
    let one = fedagg_paillier::decode_ciphertexts(&pk, &entries[0].ciphertexts, sum.len()).unwrap();
    let f = partial(0, &one, &mut krng);
    assert!(matches!(
        h.submit(holders[0], &f),
        Err(RoundError::Malformed(_))
    ));
    for (n, i) in [1usize, 3].into_iter().enumerate() {
        let f = partial(i, &sum, &mut krng);
        h.submit(holders[n], &f).unwrap();
    }
    assert_eq!((h.round.received(), h.round.expected()), (2, 3));
    // Holder 4's share again, from another key holder's connection: refused.
    let f = partial(3, &sum, &mut krng);
    assert!(matches!(
        h.submit(holders[2], &f),
        Err(RoundError::Duplicate(_))
    ));
    let f = partial(4, &sum, &mut krng);
    h.submit(holders[2], &f).unwrap();
    assert_eq!(h.round.phase(), Phase::Done);
    assert_close(&h.model(), 0.5, &weighted_mean(&[0, 1, 3]), 1e-3);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Replaying any prefix of a round's log gives the state the live round had after that
    /// prefix.
    #[test]
    fn replaying_any_prefix_matches_the_live_round(
        drops in proptest::collection::vec(
            prop_oneof![
                4 => Just(Drop::Never),
                1 => Just(Drop::AfterAdvertise),
                1 => Just(Drop::AfterShares),
                1 => Just(Drop::AfterMasked),
            ],
            5..8,
        ),
        seed in any::<u64>(),
    ) {
        // Keep enough survivors for the threshold.
        prop_assume!(drops.iter().filter(|d| **d == Drop::Never).count() >= 4);
        let live = secagg_round(&drops, seed, None);
        prop_assert_eq!(live.round.phase(), Phase::Done);
        let snapshots = &live.snapshots;
        prop_assert_eq!(snapshots.len(), live.log.len() + 1);
        for (cut, expected) in snapshots.iter().enumerate() {
            let mut fresh = Harness::open(spec(secagg(), drops.len() as u32), drops.len() as u32, None, seed);
            let started = fresh.round.deadline().started_ms;
            fresh.round.replay(live.log[..cut].iter().cloned(), started, &mut ChaCha20Rng::seed_from_u64(0)).unwrap();
            prop_assert_eq!(&fresh.snapshot(), expected, "prefix {}", cut);
        }
    }
}

fn adaptive_dp(noise_multiplier: f64, count_stddev: f64) -> Mode {
    Mode::Dp {
        clip: 1.0,
        noise_multiplier,
        sampling_rate: 1.0,
        epsilon_budget: 1e15,
        delta: 1e-5,
        adaptive_clip: Some(fedagg_api::AdaptiveClipping {
            target_quantile: 0.5,
            learning_rate: 0.2,
            count_stddev,
        }),
        accountant: fedagg_api::Accountant::Rdp,
    }
}

#[test]
fn adaptive_clipping_moves_the_clip_and_keeps_the_round_s_privacy_cost() {
    // The count release must be paid for out of the round's noise: z < 2 sigma_b.
    assert!(matches!(
        spec::validate(&spec(adaptive_dp(1.0, 0.5), 4)),
        Err(RoundError::Invalid(_))
    ));
    let n = 200u32;
    let mut s = spec(adaptive_dp(1.0, 10.0), n);
    s.min_clients = 3;
    let start = spec::initial_ledger(&s).unwrap().unwrap();
    assert_eq!(start.clip, Some(1.0));
    let mut h = Harness::open(s, n, None, 11);
    // Every update has norm 3, above the clip of 1: the released unclipped fraction is about 0
    // (the count's noise is 10 over 200 reports), so the clip grows by about exp(0.2 * 0.5).
    let big: Vec<f32> = (0..LEN).map(|_| 3.0 / (LEN as f32).sqrt()).collect();
    for i in 0..n {
        let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&big));
        h.submit(i, &f).unwrap();
    }
    let Ending::Completed { ledger, .. } = h.ending.as_ref().unwrap() else {
        panic!("failed");
    };
    let state = ledger.as_ref().unwrap();
    let clip = state.clip.unwrap();
    assert!((1.08..1.13).contains(&clip), "next clip {clip}");
    // The ledger is charged what a round at the federation's multiplier costs, no more.
    let mut plain = fedagg_dp::Ledger::new(1e15, 1e-5).unwrap();
    plain.charge(1.0, 1.0).unwrap();
    assert_eq!(state.ledger.rdp(), plain.rdp());
    // The state survives the store, and the next round clips at the new norm.
    let text = fedagg_round::ledger::to_text(state).unwrap();
    assert_eq!(&fedagg_round::ledger::from_text(&text).unwrap(), state);
    assert_eq!(
        fedagg_round::ledger::privacy(state).unwrap().clip,
        Some(clip)
    );
}

/// A DP federation whose budget the PLD accountant enforces: the round is charged its PLD
/// epsilon, the report gives both accountants', the state survives the store, and a budget that
/// RDP would refuse one more round admits it under PLD.
#[test]
fn a_pld_federation_is_charged_its_pld_epsilon_and_reports_both() {
    let (q, sigma, delta) = (1.0, 1.0, 1e-5);
    let pld_mode = |budget| Mode::Dp {
        clip: 100.0,
        noise_multiplier: sigma,
        sampling_rate: q,
        epsilon_budget: budget,
        delta,
        adaptive_clip: None,
        accountant: fedagg_api::Accountant::Pld,
    };
    let n = 4u32;
    let mut h = Harness::open(spec(pld_mode(100.0), n), n, None, 21);
    for i in 0..n {
        let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(i)));
        h.submit(i, &f).unwrap();
    }
    let Ending::Completed { ledger, record, .. } = h.ending.as_ref().unwrap() else {
        panic!("failed");
    };
    let state = ledger.as_ref().unwrap();
    let want = fedagg_dp::pld::epsilon_for(q, sigma, 1, delta, 1e-4).unwrap();
    assert_eq!(record.epsilon_spent, Some(want));
    let report = fedagg_round::ledger::privacy(state).unwrap();
    assert_eq!(report.accountant, fedagg_api::Accountant::Pld);
    assert_eq!((report.epsilon, report.epsilon_pld), (want, Some(want)));
    let rdp = fedagg_dp::rdp::epsilon_for(q, sigma, 1, delta)
        .unwrap()
        .epsilon;
    assert_eq!(report.epsilon_rdp, rdp);
    assert!(want < rdp, "PLD {want} vs RDP {rdp}");
    let text = fedagg_round::ledger::to_text(state).unwrap();
    assert_eq!(&fedagg_round::ledger::from_text(&text).unwrap(), state);
    // Between the two epsilons of one round: RDP refuses to open it, PLD lets it.
    let budget = 0.5 * (want + rdp);
    let mut rdp_spec = spec(pld_mode(budget), n);
    if let Mode::Dp { accountant, .. } = &mut rdp_spec.mode {
        *accountant = fedagg_api::Accountant::Rdp;
    }
    let ledger = spec::initial_ledger(&rdp_spec).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let refused = plan::plan(
        &rdp_spec,
        (1..=4).collect(),
        None,
        ledger.as_ref(),
        &mut rng,
    );
    assert!(
        matches!(refused, Err(RoundError::Conflict(_))),
        "{refused:?}"
    );
    let pld_spec = spec(pld_mode(budget), n);
    let ledger = spec::initial_ledger(&pld_spec).unwrap();
    plan::plan(
        &pld_spec,
        (1..=4).collect(),
        None,
        ledger.as_ref(),
        &mut rng,
    )
    .unwrap();
    // A noise so small that one round's PLD would not fit its grid is refused at creation (422),
    // never found out as a server error when a round opens.
    let mut tiny = spec(pld_mode(100.0), n);
    if let Mode::Dp {
        noise_multiplier, ..
    } = &mut tiny.mode
    {
        *noise_multiplier = 1e-3;
    }
    let err = spec::validate(&tiny).unwrap_err();
    assert!(
        matches!(&err, RoundError::Invalid(m) if m.contains("pld accountant")),
        "{err:?}"
    );
}

/// A ledger stored before the PLD accountant (no accountant, no history) still loads: RDP, its
/// PLD epsilon unknown once a round was charged.
#[test]
fn a_ledger_stored_before_the_pld_loads_as_rdp() {
    let fresh = fedagg_dp::Ledger::new(5.0, 1e-5).unwrap();
    let mut old = serde_json::json!({
        "budget": 5.0, "delta": 1e-5, "orders": fresh.orders(), "rdp": fresh.rdp(), "rounds": 0,
    });
    let state = fedagg_round::ledger::from_text(&old.to_string()).unwrap();
    assert_eq!(state.ledger, fresh);
    let mut charged = fresh.clone();
    charged.charge(0.1, 1.0).unwrap();
    old["rdp"] = serde_json::json!(charged.rdp());
    old["rounds"] = serde_json::json!(1);
    let state = fedagg_round::ledger::from_text(&old.to_string()).unwrap();
    let report = fedagg_round::ledger::privacy(&state).unwrap();
    assert_eq!(report.accountant, fedagg_api::Accountant::Rdp);
    assert_eq!(report.epsilon_pld, None);
    assert_eq!(report.epsilon, charged.spent().unwrap().epsilon);
    // A PLD accountant without its history is refused, not trusted.
    old["accountant"] = serde_json::json!("pld");
    assert!(fedagg_round::ledger::from_text(&old.to_string()).is_err());
}

fn secagg_dp(noise_multiplier: f64, budget: f64) -> Mode {
    Mode::SecaggDp {
        clip: 10.0,
        noise_multiplier,
        sampling_rate: 1.0,
        epsilon_budget: budget,
        delta: 1e-5,
        bits: 24,
        dropout_rate: 0.3,
        corrupt_fraction: 0.1,
        malicious_server: false,
    }
}

/// SecAgg with distributed DP in memory, with a dropout before advertising and one after
/// sharing its keys: the model moves by the survivors' (noisy) sum over the expected cohort,
/// and the ledger is charged for exactly the survivors in the sum.
#[test]
fn a_secagg_dp_round_releases_the_survivors_noisy_sum_and_charges_for_them() {
    let drops = [
        Drop::Never,
        Drop::Never,
        Drop::AfterShares,
        Drop::Never,
        Drop::BeforeAdvertise,
    ];
    let spec = spec(secagg_dp(1e-5, 1e12), 5);
    let h = secagg_round_of(spec.clone(), &drops, 7, None, |h, i, rng| {
        let session = h.round.params().secagg.as_ref().unwrap();
        let ddg = h.round.spec().ddg().unwrap();
        ddg.encode(&update(i), &session.rotation_seed().unwrap(), rng)
            .unwrap()
    });
    assert_eq!(h.round.phase(), Phase::Done);
    let survivors = [0u32, 1, 3];
    let sum_over_cohort: Vec<f32> = (0..LEN)
        .map(|j| survivors.iter().map(|&i| update(i)[j]).sum::<f32>() / 5.0)
        .collect();
    assert_close(&h.model(), 0.5, &sum_over_cohort, 1e-3);
    let ending = h.ending.as_ref().unwrap();
    assert_eq!(ending.record().participants, 3);
    let Ending::Completed { ledger, .. } = ending else {
        panic!("failed")
    };
    let ledger = ledger.as_ref().unwrap();
    let orders = ledger.ledger.orders();
    let curve = spec.ddg().unwrap().rdp(3, 1.0, orders).unwrap();
    let want = fedagg_dp::rdp::epsilon(orders, &curve, 1e-5)
        .unwrap()
        .epsilon;
    let got = ending.record().epsilon_spent.unwrap();
    assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
    // Fewer survivors would have cost more: the charge is the survivors', not the cohort's.
    let five = spec.ddg().unwrap().rdp(5, 1.0, orders).unwrap();
    assert!(
        fedagg_dp::rdp::epsilon(orders, &five, 1e-5)
            .unwrap()
            .epsilon
            < want
    );
}

/// A round that could take the federation past its budget does not open: planned at its worst
/// case, the fewest survivors the noise is calibrated for.
#[test]
fn a_secagg_dp_round_past_the_budget_does_not_open() {
    let spec = spec(secagg_dp(1.0, 1.0), 5);
    spec::validate(&spec).unwrap();
    let ledger = spec::initial_ledger(&spec).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let e = plan::plan(&spec, (1..=5).collect(), None, ledger.as_ref(), &mut rng).unwrap_err();
    assert!(
        matches!(&e, RoundError::Conflict(m) if m.contains("over the budget 1")),
        "{e}"
    );
    let roomy = FederationSpec {
        mode: secagg_dp(1.0, 100.0),
        ..spec
    };
    let ledger = spec::initial_ledger(&roomy).unwrap();
    plan::plan(&roomy, (1..=5).collect(), None, ledger.as_ref(), &mut rng).unwrap();
}

/// Member `i`'s SCAFFOLD control-variate delta: another vector than its update.
fn control_delta(i: u32) -> Vec<f32> {
    (0..LEN)
        .map(|j| 0.5 - (i as f32) * 0.3 + j as f32 * 0.2)
        .collect()
}

/// The stored control variate (0.25 everywhere in the harness) moved by the `included`
/// members' control deltas over the population `n`: SCAFFOLD's server step.
fn scaffold_controls(included: &[u32], n: usize) -> Vec<f32> {
    let mut c = vec![0.25f32; LEN];
    let sum: Vec<f64> = (0..LEN)
        .map(|j| {
            included
                .iter()
                .map(|&i| f64::from(control_delta(i)[j]))
                .sum()
        })
        .collect();
    fedagg_optim::scaffold_step(&mut c, &sum, n);
    c
}

fn scaffold(mut spec: FederationSpec) -> FederationSpec {
    spec.scaffold = true;
    spec
}

/// SCAFFOLD in every mode: the model moves by the updates' (weighted) mean as without it, and
/// the control variate by the survivors' unweighted control deltas over the population, the
/// deltas protected like the updates (masked, encrypted, clipped and noised).
#[test]
fn scaffold_rounds_move_the_control_variate_in_every_mode() {
    // SecAgg with a dropout before advertising: four of five in the sum, N = 5.
    let drops = [
        Drop::Never,
        Drop::BeforeAdvertise,
        Drop::Never,
        Drop::Never,
        Drop::Never,
    ];
    let h = secagg_round_of(
        scaffold(spec(secagg(), 5)),
        &drops,
        21,
        None,
        |h, i, rng| {
            let s = h.round.spec();
            let quant = s.quant().unwrap();
            let w = 1 + u64::from(i % 3);
            s.encode_quantized(&quant, &update(i), Some(&control_delta(i)), w, rng)
                .unwrap()
        },
    );
    let included = [0, 2, 3, 4];
    assert_close(&h.model(), 0.5, &weighted_mean(&included), 1e-3);
    let step = h.round.spec().quant().unwrap().step() as f32;
    assert_close(
        &h.controls().unwrap(),
        0.0,
        &scaffold_controls(&included, 5),
        step,
    );

    // Central DP: the pair is clipped as one vector and the noise is negligible here.
    let mut h = Harness::open(scaffold(spec(dp(1e15), 4)), 4, None, 22);
    for i in 0..3u32 {
        let v = h
            .round
            .spec()
            .plain_update(&update(i), Some(&control_delta(i)))
            .unwrap();
        let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&v));
        h.submit(i, &f).unwrap();
    }
    h.tick(h.round.deadline().at_ms()).unwrap();
    assert_close(&h.model(), 0.5, &sum_over(&[0, 1, 2], 4.0), 1e-3);
    assert_close(
        &h.controls().unwrap(),
        0.0,
        &scaffold_controls(&[0, 1, 2], 4),
        1e-3,
    );
    // An update without its delta is refused.
    let f = h.frame(fedagg_api::FrameKind::F32, &f32_bytes(&update(3)));
    assert!(h.submit(3, &f).is_err());

    // SecAgg with distributed DP: rotated, clipped and noised as one vector.
    let drops = [
        Drop::Never,
        Drop::Never,
        Drop::AfterShares,
        Drop::Never,
        Drop::BeforeAdvertise,
    ];
    let spec_dp = scaffold(spec(secagg_dp(1e-5, 1e12), 5));
    let h = secagg_round_of(spec_dp, &drops, 23, None, |h, i, rng| {
        let s = h.round.spec();
        let session = h.round.params().secagg.as_ref().unwrap();
        let v = s.plain_update(&update(i), Some(&control_delta(i))).unwrap();
        s.ddg()
            .unwrap()
            .encode(&v, &session.rotation_seed().unwrap(), rng)
            .unwrap()
    });
    assert_close(&h.model(), 0.5, &sum_over(&[0, 1, 3], 5.0), 1e-3);
    assert_close(
        &h.controls().unwrap(),
        0.0,
        &scaffold_controls(&[0, 1, 3], 5),
        1e-3,
    );
}

/// SCAFFOLD under Paillier: the key holder decrypts the pair's sum, and the round splits it.
#[test]
fn a_paillier_scaffold_round_moves_the_control_variate() {
    use fedagg_api::FrameKind;
    let mut krng = ChaCha20Rng::seed_from_u64(24);
    let sk = fedagg_paillier::keygen(512, &mut krng).unwrap();
    let pk = sk.public().clone();
    let mode = paillier();
    let mut h = Harness::open(scaffold(spec(mode, 4)), 4, Some(&pk.to_text()), 25);
    let s = h.round.spec().clone();
    let quant = s.quant().unwrap();
    let packing = fedagg_paillier::Packing::new(&pk, &quant).unwrap();
    for i in [0u32, 1, 3] {
        let v = s
            .encode_quantized(
                &quant,
                &update(i),
                Some(&control_delta(i)),
                1 + u64::from(i % 3),
                &mut krng,
            )
            .unwrap();
        let cts = packing.encrypt(&pk, &v, &mut krng).unwrap();
        let f = h.frame(
            FrameKind::Paillier,
            &fedagg_paillier::encode_ciphertexts(&pk, &cts),
        );
        h.submit(i, &f).unwrap();
    }
    h.tick(h.round.deadline().at_ms()).unwrap();
    decrypt_as_key_holder(&mut h, &sk, &packing);
    assert_close(&h.model(), 0.5, &weighted_mean(&[0, 1, 3]), 1e-3);
    let step = quant.step() as f32;
    assert_close(
        &h.controls().unwrap(),
        0.0,
        &scaffold_controls(&[0, 1, 3], 4),
        2.0 * step,
    );
    // Without SCAFFOLD no control variate is produced.
    let plain = secagg_round(&[Drop::Never; 5], 26, None);
    assert_eq!(plain.controls(), None);
}
