//! SecAgg with distributed DP over REST: the members add their shares of discrete Gaussian noise
//! before masking, the server unmasks only a noisy sum, and the ledger charges the survivors in
//! it and refuses a round that could pass the budget.

use super::*;

fn secagg_dp(noise_multiplier: f64, epsilon_budget: f64) -> Mode {
    Mode::SecaggDp {
        clip: 1.0,
        noise_multiplier,
        sampling_rate: 1.0,
        epsilon_budget,
        delta: 1e-5,
        bits: 24,
        dropout_rate: 0.2,
        corrupt_fraction: 0.05,
        malicious_server: false,
    }
}

/// Epsilon after `rounds` rounds of `spec` at the worst case its rounds are planned for: the
/// fewest survivors, `min_clients`.
fn worst_case_epsilon(spec: &FederationSpec, rounds: usize) -> f64 {
    let mut ledger = fedagg_dp::Ledger::new(1e300, 1e-5).unwrap();
    let curve = spec
        .ddg()
        .unwrap()
        .rdp(spec.min_clients, 1.0, ledger.orders())
        .unwrap();
    for _ in 0..rounds {
        ledger.charge_curve(&curve).unwrap();
    }
    ledger.spent().unwrap().epsilon
}

/// Six members, one of whom vanishes after sharing its keys: the model moves by the five
/// survivors' noisy sum over the expected cohort, the ledger is charged for those five, and a
/// budget that holds one round but not two refuses the second.
pub(super) async fn a_secagg_dp_round_releases_a_noisy_sum_and_stops_at_its_budget(store: Store) {
    let srv = start(store, 1 << 22).await;
    let (m, n) = (50, 6usize);
    let mut sp = spec(secagg_dp(1e-3, 1.0), m, 5, 10);
    sp.max_clients = n as u32;
    let (one, two) = (worst_case_epsilon(&sp, 1), worst_case_epsilon(&sp, 2));
    sp.mode = secagg_dp(1e-3, (one + two) / 2.0);
    let fed = srv.admin.create_federation(&sp).await.unwrap();
    let members = enroll(&srv.base, &srv.admin, fed.id, n, Role::Participant).await;
    let e = members[0].contribute(&vec![0.0; m], 2).await.unwrap_err();
    assert!(
        matches!(&e, Error::Protocol(msg) if msg.contains("weight 1")),
        "{e}"
    );
    srv.admin.open_round(fed.id).await.unwrap();
    // Norms well below the clip, so the sum is the plain sum of the updates.
    let ups: Vec<(Vec<f32>, u64)> = updates(n, m, 91)
        .into_iter()
        .map(|(u, _)| (u.iter().map(|x| x * 0.1).collect(), 1))
        .collect();
    let mut drops = vec![None; n];
    drops[2] = Some(Vanish::After(Phase::ShareKeys));
    let results = contribute_all(&members, &ups, &drops).await;
    for (i, r) in results.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(done(r).status, RoundStatus::Completed, "member {i}: {r:?}");
    }
    let rec = srv
        .admin
        .wait_round(fed.id, 1, WAIT)
        .await
        .unwrap()
        .record
        .unwrap();
    assert_eq!((rec.participants, rec.dropouts), (5, 1), "{rec:?}");
    // Charged for the five survivors, which here is the worst case the round was planned for.
    let spent = rec.epsilon_spent.unwrap();
    assert!((spent / one - 1.0).abs() < 1e-9, "{spent} vs {one}");
    // The sum over the expected cohort of 6; the noise of the mean is 1e-3 / 6 per coordinate.
    let model = srv.admin.model(fed.id, 1).await.unwrap();
    for (j, got) in model.iter().enumerate() {
        let want: f64 = ups
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, (u, _))| f64::from(u[j]))
            .sum::<f64>()
            / n as f64;
        assert!(
            (f64::from(*got) - want).abs() < 1e-3,
            "{j}: {got} vs {want}"
        );
    }
    let privacy = srv.admin.federation(fed.id).await.unwrap().privacy.unwrap();
    assert_eq!((privacy.rounds, privacy.epsilon), (1, spent));
    let e = srv.admin.open_round(fed.id).await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 409, detail, .. } if detail.contains("over the budget")),
        "{e}"
    );
    assert_statuses_documented(&srv).await;
}
