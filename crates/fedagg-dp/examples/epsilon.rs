//! Epsilon of the Poisson-subsampled Gaussian mechanism under both accountants, and how long each
//! took: RDP (the default orders) and PLD (pessimistic connect-the-dots, grid step 1e-4).
//!
//! `cargo run --release -p fedagg-dp --example epsilon -- Q SIGMA STEPS [DELTA]`
//! (for example `0.01 1.0 10000 1e-5`).
#![allow(missing_docs)]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse::<f64>())
        .collect::<Result<_, _>>()?;
    let [q, sigma, steps, rest @ ..] = args.as_slice() else {
        return Err("usage: epsilon Q SIGMA STEPS [DELTA]".into());
    };
    let delta = rest.first().copied().unwrap_or(1e-5);
    let steps = *steps as u64;
    let t = Instant::now();
    let rdp = fedagg_dp::rdp::epsilon_for(*q, *sigma, steps, delta)?.epsilon;
    let rdp_time = t.elapsed();
    let t = Instant::now();
    let pld =
        fedagg_dp::pld::epsilon_for(*q, *sigma, steps, delta, fedagg_dp::pld::DEFAULT_INTERVAL)?;
    let pld_time = t.elapsed();
    println!("q {q}, sigma {sigma}, {steps} steps, delta {delta}");
    println!("rdp  epsilon {rdp:.6}  ({rdp_time:.2?})");
    println!("pld  epsilon {pld:.6}  ({pld_time:.2?})");
    Ok(())
}
