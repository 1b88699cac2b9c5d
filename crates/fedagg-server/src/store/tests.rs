//! The store against both engines: round trips, locks, migrations, TLS.

use super::*;
use crate::testing::TestDatabase;
use fedagg_round::Event;

/// Write a round with two events, reopen the store, and read it back.
fn round_trip(open: &dyn Fn() -> Store) {
    let round = RoundRow {
        federation_id: 1,
        round: 1,
        status: fedagg_api::RoundStatus::Open,
        params: "{}".into(),
        base_version: 0,
        opened_ms: 1,
        phase_started_ms: 1,
        record: None,
    };
    {
        let s = open();
        let f = s.create_federation("{}", None, &[1, 2], 5).unwrap();
        assert_eq!(f, 1);
        s.insert_round(&round).unwrap();
        s.append_submit(f, 1, 3, fedagg_api::Phase::Submit, b"abc", b"d1")
            .unwrap();
        s.append_close(f, 1, fedagg_api::Phase::Submit, 9).unwrap();
    }
    let s = open();
    assert_eq!(
        s.meta("schema_version").unwrap().as_deref(),
        Some(super::schema::MIGRATIONS.len().to_string().as_str())
    );
    let ev = s.events(1, 1).unwrap();
    assert!(matches!(&ev[0], Event::Submit { member: 3, body, .. } if body == b"abc"));
    assert!(matches!(&ev[1], Event::Close { phase } if *phase == fedagg_api::Phase::Submit));
    assert!(matches!(
        &s.events_after(1, 1, 1).unwrap()[..],
        [Event::Close { .. }]
    ));
    assert_eq!(s.open_rounds().unwrap().len(), 1);
    assert_eq!(s.round(1, 1).unwrap().unwrap().phase_started_ms, 9);
    assert_eq!(
        s.submission_digest(1, 1, 3, fedagg_api::Phase::Submit)
            .unwrap()
            .as_deref(),
        Some(&b"d1"[..])
    );
    assert_eq!(s.model(1, 0).unwrap().unwrap(), vec![1, 2]);
    // The same round twice is a conflict (two replicas opening at once), not a 500.
    let e = s.insert_round(&round).unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    // A code redeems once.
    s.insert_code(b"code", 1, fedagg_api::Role::Participant, Some("a"))
        .unwrap();
    let (pid, fid, role) = s.enroll(b"code", b"tok", None, 7).unwrap().unwrap();
    assert_eq!((fid, role), (1, fedagg_api::Role::Participant));
    assert!(s.enroll(b"code", b"tok2", None, 8).unwrap().is_none());
    assert_eq!(
        s.token(b"tok").unwrap().unwrap().1.participant_id,
        Some(pid)
    );
    assert_eq!(s.contributors(1).unwrap(), vec![pid]);
    s.complete_round(&Completion {
        federation_id: 1,
        round: 1,
        model: Some((1, &[3, 4])),
        ledger: None,
        optimizer_state: Some(&[9, 9]),
        controls: Some(&[0, 0, 128, 63]),
        status: fedagg_api::RoundStatus::Completed,
        record: "{}".into(),
    })
    .unwrap();
    assert_eq!(s.federation(1).unwrap().unwrap().model_version, 1);
    assert_eq!(s.optimizer_state(1).unwrap(), Some(vec![9, 9]));
    assert_eq!(
        s.model_controls(1, 1).unwrap(),
        Some(Some(vec![0, 0, 128, 63]))
    );
    assert_eq!(s.model_controls(1, 0).unwrap(), Some(None));
    assert_eq!(s.model_controls(1, 7).unwrap(), None);
    assert!(s.open_rounds().unwrap().is_empty());
    s.faults.fail_next(crate::testing::Write::Optimizer);
    assert!(s.set_optimizer(1, r#"{"kind":"fedavg","lr":1.0}"#).is_err());
    assert_eq!(s.federation(1).unwrap().unwrap().optimizer, None);
    s.set_optimizer(1, r#"{"kind":"fedavg","lr":1.0}"#).unwrap();
    assert!(s.federation(1).unwrap().unwrap().optimizer.is_some());
    lists_and_metrics(&s, &round);
}

/// The operator's lists, and metrics reported on a round: stored, replaced, and left as they
/// were by a failed write.
fn lists_and_metrics(s: &Store, first: &RoundRow) {
    s.create_federation("{}", None, &[0], 6).unwrap();
    for r in 2..=4 {
        s.insert_round(&RoundRow {
            round: r,
            ..first.clone()
        })
        .unwrap();
    }
    assert_eq!(s.federation_ids().unwrap(), vec![1, 2]);
    let rounds = |before, limit| -> Vec<u64> {
        s.rounds(1, before, limit)
            .unwrap()
            .iter()
            .map(|(r, _)| r.round)
            .collect()
    };
    assert_eq!(rounds(None, 10), vec![4, 3, 2, 1]);
    assert_eq!(rounds(None, 2), vec![4, 3]);
    assert_eq!(rounds(Some(3), 10), vec![2, 1]);
    assert!(s.rounds(2, None, 10).unwrap().is_empty());
    assert!(s.set_round_metrics(1, 2, r#"{"accuracy":0.5}"#).unwrap());
    assert!(!s.set_round_metrics(1, 9, r#"{"accuracy":0.5}"#).unwrap());
    s.faults.fail_next(crate::testing::Write::Metrics);
    assert!(s.set_round_metrics(1, 2, r#"{"accuracy":0.9}"#).is_err());
    let (_, m) = &s.rounds(1, Some(3), 1).unwrap()[0];
    assert_eq!(m.as_deref(), Some(r#"{"accuracy":0.5}"#));
    assert!(s.set_round_metrics(1, 2, r#"{"accuracy":0.9}"#).unwrap());
    let (_, m) = &s.rounds(1, Some(3), 1).unwrap()[0];
    assert_eq!(m.as_deref(), Some(r#"{"accuracy":0.9}"#));
}

#[test]
fn sqlite_migrations_are_idempotent_and_events_replay_in_order() {
    let dir = std::env::temp_dir().join(format!("fedagg-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db");
    let _ = std::fs::remove_file(&path);
    round_trip(&|| Store::open(&path).unwrap());
    // Submission digests are found whatever the phase (a retry after the phase moved on).
    let s = Store::open(&path).unwrap();
    assert_eq!(
        s.submission_phase(1, 1, 3, b"d1").unwrap(),
        Some(fedagg_api::Phase::Submit)
    );
    assert_eq!(s.submission_phase(1, 1, 3, b"d2").unwrap(), None);
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_server_on_one_sqlite_file_is_refused_until_the_first_closes() {
    let dir = std::env::temp_dir().join(format!("fedagg-store-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.db");
    let first = Store::open(&path).unwrap();
    let Err(e) = Store::open(&path) else {
        panic!("a second store opened the same file");
    };
    assert!(
        e.to_string().contains("in use by another fedagg server"),
        "{e}"
    );
    drop(first);
    Store::open(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pg(tag: &str) -> Option<TestDatabase> {
    TestDatabase::for_test(tag)
}

#[test]
fn postgres_migrations_are_idempotent_and_events_replay_in_order() {
    let Some(db) = pg("store") else { return };
    round_trip(&|| Store::postgres(&db.url, None).unwrap());
}

#[test]
fn the_postgres_schema_has_no_sqlite_types_left() {
    for m in MIGRATIONS {
        let pg = for_postgres(m);
        assert!(!pg.contains("INTEGER") && !pg.contains("BLOB"), "{pg}");
        assert_eq!(
            pg.matches("GENERATED BY DEFAULT AS IDENTITY").count(),
            m.matches("id INTEGER PRIMARY KEY").count()
        );
    }
}

#[test]
fn postgres_over_tls_verifies_the_server_certificate() {
    let Some(db) = pg("tls") else { return };
    let Some(ca) = std::env::var_os("FEDAGG_TEST_POSTGRES_CA") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "FEDAGG_TEST_POSTGRES_CA is not set under CI"
        );
        eprintln!("SKIPPED (loudly): FEDAGG_TEST_POSTGRES_CA is not set, TLS not tested");
        return;
    };
    let ca = std::path::PathBuf::from(ca);
    let url = format!("{}?sslmode=require", db.url);
    let s = Store::postgres(&url, Some(&ca)).unwrap();
    let encrypted = s
        .with(|c| {
            c.first(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )?
            .map(|mut r| r.int(0))
            .transpose()
        })
        .unwrap();
    assert_eq!(encrypted, Some(1), "the session is not encrypted");
    // The system's roots do not know the test CA: the certificate is refused, not ignored.
    let e = Store::postgres(&url, None).err().unwrap();
    assert!(e.to_string().contains("certificate"), "{}", e.to_string());
    // A CA file without sslmode=require is a configuration error, not silent plain TCP.
    let e = Store::postgres(&db.url, Some(&ca)).err().unwrap();
    assert!(
        e.to_string().contains("sslmode=require"),
        "{}",
        e.to_string()
    );
}

#[test]
fn postgres_federation_lock_excludes_other_processes_and_is_reentrant() {
    let Some(db) = pg("lock") else { return };
    let a = std::sync::Arc::new(Store::postgres(&db.url, None).unwrap());
    let b = Store::postgres(&db.url, None).unwrap();
    let f = a.create_federation("{}", None, &[], 1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let held = {
        let a = a.clone();
        std::thread::spawn(move || {
            let _outer = a.lock_federation(f).unwrap();
            {
                // Re-entrant, and queries under the lock use the pinned connection.
                let _inner = a.lock_federation(f).unwrap();
                a.set_meta("k", "1").unwrap();
            }
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            a.set_meta("k", "2").unwrap();
        })
    };
    rx.recv().unwrap();
    // Still held by the outer guard: `b` waits until the thread finishes and releases it.
    let _l = b.lock_federation(f).unwrap();
    assert_eq!(b.meta("k").unwrap().as_deref(), Some("2"));
    held.join().unwrap();
    // Another federation's lock is independent.
    let _other = a.lock_federation(f + 1).unwrap();
}
