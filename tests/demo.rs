//! The demo federation end to end: the in-process server on 127.0.0.1, participants training
//! with tch and contributing through the SDK, in every mode; SecAgg against plaintext FedAvg.

#![allow(clippy::unwrap_used)]

use clap::Parser;
use fedagg::demo::{run, DemoConfig};
use fedagg_train::local::{Algorithm, LocalConfig};
use fedagg_train::partition::Partition;
use fedagg_train::server::ServerOptimizer;
use fedagg_train::sim::{simulate, DataSource, Setup, SimConfig};
use fedagg_train::Arch;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cfg: DemoConfig,
}

/// The demo's configuration as the command line would give it, output in a fresh folder.
fn demo(args: &str) -> DemoConfig {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let out = std::env::temp_dir().join(format!(
        "fedagg-demo-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&out);
    let line = format!("demo --quiet --out {} {args}", out.display());
    Args::parse_from(line.split_whitespace()).cfg
}

/// The in-process simulation of the demo's `--clients 5 --fraction 1 --rounds 6 --seed SEED`
/// with `algorithm` and `server`: per round, the test set's figures.
fn simulated(
    algorithm: Algorithm,
    server: ServerOptimizer,
    seed: u64,
) -> Vec<fedagg_train::sim::RoundMetrics> {
    let partition = Partition::Dirichlet { alpha: 0.5 };
    let setup = Setup::new(&DataSource::Digits, 5, partition, 0.2, seed).unwrap();
    let sim = SimConfig {
        arch: Arch::Mlp { hidden: 256 },
        local: LocalConfig::default(),
        algorithm,
        server,
        fraction: 1.0,
        rounds: 6,
        seed,
    };
    simulate(&setup, &sim, |_| {}).unwrap().1
}

/// The demo's accuracy within one point of the simulation's at every round.
fn assert_within_one_point(
    report: &fedagg::demo::DemoReport,
    plain: &[fedagg_train::sim::RoundMetrics],
) {
    for (a, b) in report.rows.iter().zip(plain) {
        assert!(
            (a.test.accuracy - b.test.accuracy).abs() <= 0.01,
            "round {}: service {:.4}, simulation {:.4}",
            a.round,
            a.test.accuracy,
            b.test.accuracy
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedavg_through_secagg_matches_plaintext_fedavg_within_one_point() {
    // Every participant in every round, so both runs train the same clients from the same seeds;
    // only quantization (and the masks, which cancel) differ.
    let cfg = demo("--clients 5 --fraction 1 --rounds 6 --seed 3");
    let report = run(&cfg).await.unwrap();
    assert_eq!(report.rows.len(), 6);
    assert!(report
        .rows
        .iter()
        .all(|r| r.participants == 5 && r.dropouts == 0));
    assert!(report.model_path.exists());

    let plain = simulated(Algorithm::FedAvg, ServerOptimizer::FedAvg { lr: 1.0 }, 3);
    assert_within_one_point(&report, &plain);
    assert!(report.final_test.accuracy > 0.8, "{:?}", report.final_test);
    let _ = std::fs::remove_dir_all(&cfg.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secagg_demo_survives_simulated_dropouts() {
    let cfg =
        demo("--clients 8 --fraction 1 --rounds 3 --dropout 0.25 --phase-timeout 2 --model mlp32");
    let report = run(&cfg).await.unwrap();
    let dropped: u32 = report.rows.iter().map(|r| r.dropouts).sum();
    assert!(dropped > 0, "{:?}", report.rows);
    for r in &report.rows {
        assert!(r.failure.is_none(), "{r:?}");
        assert_eq!(r.participants + r.dropouts, 8, "{r:?}");
    }
    let csv = std::fs::read_to_string(cfg.out.join("rounds.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    let _ = std::fs::remove_dir_all(&cfg.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paillier_and_dp_demos_train() {
    let cfg =
        demo("--mode paillier --clients 4 --fraction 1 --rounds 2 --key-bits 2048 --model mlp16");
    let report = run(&cfg).await.unwrap();
    assert!(
        report.rows.iter().all(|r| r.participants == 4),
        "{:?}",
        report.rows
    );
    assert!(
        report.rows[1].test.loss < report.rows[0].test.loss * 1.05
            && report.final_test.accuracy > 0.3
    );
    let _ = std::fs::remove_dir_all(&cfg.out);

    let cfg =
        demo("--mode dp --clients 10 --fraction 1 --rounds 3 --noise-multiplier 0.3 --model mlp32");
    let report = run(&cfg).await.unwrap();
    let eps: Vec<f64> = report.rows.iter().map(|r| r.epsilon.unwrap()).collect();
    assert!(
        eps[0] > 0.0 && eps[1] > eps[0] && eps[2] > eps[1],
        "{eps:?}"
    );
    assert!(report.final_test.accuracy > 0.3, "{:?}", report.final_test);
    let _ = std::fs::remove_dir_all(&cfg.out);
}

/// `fedagg demo --mode paillier --holders 3 --threshold 2`: the key dealt with safe primes to
/// three key holders, two of whose partial decryptions the server combines; participants sign
/// their contributions and the holders check them (verified decryption).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_paillier_demo_trains() {
    let cfg = demo(
        "--mode paillier --clients 4 --fraction 1 --rounds 2 --key-bits 2048 --holders 3 \
         --threshold 2 --model mlp16",
    );
    let report = run(&cfg).await.unwrap();
    assert!(
        report.rows.iter().all(|r| r.participants == 4),
        "{:?}",
        report.rows
    );
    assert!(report.final_test.accuracy > 0.3, "{:?}", report.final_test);
    let _ = std::fs::remove_dir_all(&cfg.out);

    // Distributed DP: the members noise their own updates, the ledger grows each round.
    let cfg = demo(
        "--mode secagg-dp --clients 10 --fraction 1 --rounds 3 --noise-multiplier 0.3 \
         --model mlp32",
    );
    let report = run(&cfg).await.unwrap();
    let eps: Vec<f64> = report.rows.iter().map(|r| r.epsilon.unwrap()).collect();
    assert!(
        eps[0] > 0.0 && eps[1] > eps[0] && eps[2] > eps[1],
        "{eps:?}"
    );
    assert!(
        report.rows.iter().all(|r| r.participants == 10),
        "{:?}",
        report.rows
    );
    assert!(report.final_test.accuracy > 0.3, "{:?}", report.final_test);
    let _ = std::fs::remove_dir_all(&cfg.out);
}

/// `fedagg demo --malicious-server`: an authority signs the roster, members sign their keys and
/// run the consistency check, and the federation trains as it does in the default mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_malicious_server_demo_trains() {
    let cfg = demo("--malicious-server --clients 10 --fraction 1 --rounds 2 --model mlp16");
    let report = run(&cfg).await.unwrap();
    assert!(
        report.rows.iter().all(|r| r.participants == 10),
        "{:?}",
        report.rows
    );
    assert!(report.final_test.accuracy > 0.2, "{:?}", report.final_test);
    let _ = std::fs::remove_dir_all(&cfg.out);
    let refused = run(&demo("--mode dp --malicious-server --clients 10")).await;
    assert!(refused.is_err());
}

/// Record-level DP at the participants: each trains with DP-SGD and charges its own durable
/// budget; the table reports the largest record-level epsilon beside the federation's, which
/// never passes the budget; settings no participant could afford are refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dp_sgd_demo_reports_record_level_epsilon_within_its_budget() {
    let cfg = demo(
        "--mode dp --clients 6 --fraction 1 --rounds 3 --epochs 1 --dp-sgd 1.0 \
         --record-epsilon-budget 20 --noise-multiplier 0.5 --seed 4",
    );
    let report = run(&cfg).await.unwrap();
    assert_eq!(report.rows.len(), 3);
    let rec: Vec<f64> = report
        .rows
        .iter()
        .map(|r| r.record_epsilon.unwrap())
        .collect();
    assert!(
        rec[0] > 0.0 && rec.windows(2).all(|w| w[1] >= w[0]),
        "{rec:?}"
    );
    assert!(rec[2] <= 20.0, "{rec:?}");
    assert!(report.rows.iter().all(|r| r.epsilon.is_some()));
    // Each participant's budget is on disk, and reads back as charged.
    let budget = fedagg_client::RecordBudget::open(
        cfg.out.join("records/participant-0.json"),
        20.0,
        1e-5,
        fedagg_api::Accountant::Rdp,
    )
    .unwrap();
    assert!(budget.epsilon() > 0.0 && budget.epsilon() <= rec[2]);
    let poor = demo("--clients 6 --fraction 1 --rounds 1 --dp-sgd 0.5 --record-epsilon-budget 1");
    let err = run(&poor).await.unwrap_err();
    assert!(err.to_string().contains("record-level epsilon"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedadam_through_secagg_matches_the_simulations_fedadam_within_one_point() {
    // The server optimizer's steps through the service (state stored beside the model between
    // rounds) against fedagg-train's in-process FedAdam: the same code on the same clients.
    let cfg = demo("--clients 5 --fraction 1 --rounds 6 --seed 4 --server-optimizer fedadam:0.03");
    let report = run(&cfg).await.unwrap();
    let adam = "fedadam:0.03".parse::<ServerOptimizer>().unwrap();
    let plain = simulated(Algorithm::FedAvg, adam, 4);
    assert_eq!(report.rows.len(), 6);
    assert_within_one_point(&report, &plain);
    // And it learns.
    assert!(report.final_test.accuracy > 0.5, "{:?}", report.final_test);
    let _ = std::fs::remove_dir_all(&cfg.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffold_with_fedadam_through_secagg_matches_the_simulation_within_one_point() {
    // SCAFFOLD's control deltas masked with the updates, the server's control variate kept
    // beside the model and published with it, each participant's c_i in a file, FedAdam on the
    // server: against fedagg-train's in-process SCAFFOLD with FedAdam on the same clients.
    let cfg = demo(
        "--clients 5 --fraction 1 --rounds 6 --seed 5 --algorithm scaffold \
         --server-optimizer fedadam:0.03",
    );
    let report = run(&cfg).await.unwrap();
    let adam = "fedadam:0.03".parse::<ServerOptimizer>().unwrap();
    let plain = simulated(Algorithm::Scaffold, adam, 5);
    assert_eq!(report.rows.len(), 6);
    assert!(report.cohorts.iter().all(|c| c == &[0, 1, 2, 3, 4]));
    assert_within_one_point(&report, &plain);
    assert!(report.final_test.accuracy > 0.5, "{:?}", report.final_test);
    for k in 0..5 {
        let file = cfg.out.join("controls").join(format!("participant-{k}"));
        let c_i = fedagg_client::LocalControls::new(file, 1, report.params)
            .load()
            .unwrap();
        assert!(c_i.iter().any(|v| *v != 0.0), "participant {k} kept no c_i");
    }
    let cohorts = std::fs::read_to_string(cfg.out.join("cohorts.csv")).unwrap();
    assert_eq!(cohorts.lines().nth(1), Some("1,0 1 2 3 4"));
    let _ = std::fs::remove_dir_all(&cfg.out);
}

/// SCAFFOLD in the other modes: the control deltas encrypted under Paillier, and clipped and
/// noised with the updates in central DP, where one clip norm bounds the pair, so the ledger
/// charges a round exactly what it charges without SCAFFOLD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffold_demos_train_under_paillier_and_dp() {
    let paillier =
        "--mode paillier --clients 4 --fraction 1 --rounds 2 --key-bits 2048 --model mlp16";
    let cfg = demo(&format!("{paillier} --algorithm scaffold"));
    let report = run(&cfg).await.unwrap();
    assert!(
        report.rows.iter().all(|r| r.participants == 4),
        "{:?}",
        report.rows
    );
    assert!(report.final_test.accuracy > 0.3, "{:?}", report.final_test);
    let _ = std::fs::remove_dir_all(&cfg.out);

    let dp = "--mode dp --clients 10 --fraction 1 --rounds 3 --noise-multiplier 0.3 --model mlp32";
    let mut epsilons = Vec::new();
    for algorithm in ["scaffold", "fedavg"] {
        let cfg = demo(&format!("{dp} --algorithm {algorithm}"));
        let report = run(&cfg).await.unwrap();
        assert!(
            report.rows.iter().all(|r| r.participants == 10),
            "{:?}",
            report.rows
        );
        // The noise is drawn afresh each run: the model moved off chance (ln 10 = 2.303).
        assert!(
            report.final_test.loss < 2.29,
            "{algorithm}: {:?}",
            report.final_test
        );
        epsilons.push(
            report
                .rows
                .iter()
                .map(|r| r.epsilon.unwrap())
                .collect::<Vec<_>>(),
        );
        let _ = std::fs::remove_dir_all(&cfg.out);
    }
    assert_eq!(epsilons[0], epsilons[1]);
}

#[test]
fn the_last_line_reports_the_best_round_and_the_mean_of_the_last_five() {
    use fedagg::demo::{accuracy_summary, RoundRow};
    use fedagg_train::model::Eval;
    let row = |round: u64, accuracy: f64, failure: Option<&str>| RoundRow {
        round,
        participants: 5,
        dropouts: 0,
        test: Eval {
            loss: 0.5,
            accuracy,
        },
        epsilon: None,
        record_epsilon: None,
        failure: failure.map(str::to_string),
        secs: 1.0,
        bytes: 0,
    };
    // Round 7 failed: its (stale) accuracy counts neither as the best nor in the mean.
    let accs = [0.5, 0.967, 0.93, 0.95, 0.92, 0.99, 0.94, 0.908];
    let rows: Vec<RoundRow> = accs
        .iter()
        .enumerate()
        .map(|(i, &a)| row(i as u64 + 1, a, (i == 5).then_some("too few")))
        .collect();
    let last = rows.last().unwrap().test;
    let line = accuracy_summary(&rows, &last);
    assert_eq!(
        line,
        "final test accuracy 90.80% (loss 0.5000); best 96.70% at round 2; \
         mean of the last 5 rounds 92.96%"
    );
    assert_eq!(
        accuracy_summary(&[], &last),
        "final test accuracy 90.80% (loss 0.5000)"
    );
}
