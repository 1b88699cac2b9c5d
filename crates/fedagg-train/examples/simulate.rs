//! Plaintext in-process federated training, printing test accuracy per round: the baseline of
//! `docs/results.md`.
//!
//! `cargo run --release -p fedagg-train --example simulate -- [algorithm] [alpha] [rounds] [fraction] [seed]`
//! with algorithm `fedavg`, `fedprox[:MU]` or `scaffold` (defaults: fedavg 0.5 100 0.1 1).
//! Prints CSV: `round,clients,train_loss,test_loss,test_accuracy`.

use fedagg_train::local::{Algorithm, LocalConfig};
use fedagg_train::partition::Partition;
use fedagg_train::server::ServerOptimizer;
use fedagg_train::sim::{simulate, DataSource, Setup, SimConfig};
use fedagg_train::Arch;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let algorithm: Algorithm = arg(0, "fedavg").parse()?;
    let alpha: f64 = arg(1, "0.5").parse()?;
    let rounds: usize = arg(2, "100").parse()?;
    let fraction: f64 = arg(3, "0.1").parse()?;
    let seed: u64 = arg(4, "1").parse()?;
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
        server: ServerOptimizer::FedAvg { lr: 1.0 },
        fraction,
        rounds,
        seed,
    };
    println!("round,clients,train_loss,test_loss,test_accuracy");
    simulate(&setup, &cfg, |m| {
        println!(
            "{},{},{:.4},{:.4},{:.4}",
            m.round, m.clients, m.train_loss, m.test.loss, m.test.accuracy
        )
    })?;
    Ok(())
}
