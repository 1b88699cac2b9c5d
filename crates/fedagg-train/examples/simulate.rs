//! Plaintext in-process federated training, printing test accuracy per round: the baseline of
//! `docs/results.md`.
//!
//! `cargo run --release -p fedagg-train --example simulate -- [algorithm] [alpha] [rounds] [fraction] [seed] [server] [cohorts]`
//! with algorithm `fedavg`, `fedprox[:MU]` or `scaffold`, and server optimizer `fedavg`,
//! `fedavgm`, `fedadam` or `fedyogi`, optionally `:LR` (defaults: fedavg 0.5 100 0.1 1 fedavg).
//! `cohorts` is a `cohorts.csv` that `fedagg demo` wrote: the run then trains, round by round,
//! the participants the service picked (`fedagg_train::sim::replay`), so that the two compare
//! on the same clients and seeds.
//! Prints CSV: `round,clients,train_loss,test_loss,test_accuracy`.

use fedagg_train::local::{Algorithm, LocalConfig};
use fedagg_train::partition::Partition;
use fedagg_train::server::ServerOptimizer;
use fedagg_train::sim::{replay, simulate, DataSource, RoundMetrics, Setup, SimConfig};
use fedagg_train::Arch;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let algorithm: Algorithm = arg(0, "fedavg").parse()?;
    let alpha: f64 = arg(1, "0.5").parse()?;
    let rounds: usize = arg(2, "100").parse()?;
    let fraction: f64 = arg(3, "0.1").parse()?;
    let seed: u64 = arg(4, "1").parse()?;
    let server: ServerOptimizer = arg(5, "fedavg").parse()?;
    tch::set_num_threads(1);
    let setup = Setup::new(
        &DataSource::Digits,
        20,
        Partition::Dirichlet { alpha },
        0.2,
        seed,
    )?;
    let cfg = SimConfig {
        arch: Arch::Mlp { hidden: 256 },
        local: LocalConfig::default(),
        algorithm,
        server,
        fraction,
        rounds,
        seed,
    };
    println!("round,clients,train_loss,test_loss,test_accuracy");
    let print = |m: &RoundMetrics| {
        println!(
            "{},{},{:.4},{:.4},{:.4}",
            m.round, m.clients, m.train_loss, m.test.loss, m.test.accuracy
        )
    };
    match args.get(6) {
        Some(path) => replay(&setup, &cfg, &read_cohorts(path)?, print)?,
        None => simulate(&setup, &cfg, print)?,
    };
    Ok(())
}

/// The cohorts of a demo's `cohorts.csv` (`round,participants`, the participants space-separated).
fn read_cohorts(path: &str) -> Result<Vec<Vec<usize>>, Box<dyn std::error::Error>> {
    std::fs::read_to_string(path)?
        .lines()
        .skip(1)
        .map(|line| {
            let (_, ks) = line.split_once(',').ok_or("a line without a comma")?;
            Ok(ks
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<usize>, _>>()?)
        })
        .collect()
}
