//! The scale-out simulation of `docs/scale-out.md`: one cohort of `n` clients split into `g`
//! SecAgg groups owned by `r` replicas, for several `r`, against one server aggregating the
//! whole cohort in a single round. Prints each replica's server time (the most loaded replica's
//! is the round's critical path) and checks that the group sums add up to the cohort's sum.
//!
//! `cargo run --release -p fedagg-secagg --example scale_out -- [n] [m] [groups]`
//! (defaults 8000 1000 8).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedagg_quant::Modulus;
use fedagg_secagg::groups::{run, split};
use fedagg_secagg::sim::run_round;
use fedagg_secagg::{GraphParams, SessionConfig, ThreatModel};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (n, m, g) = (arg(0, 8000) as u32, arg(1, 1000) as usize, arg(2, 8) as u32);
    let modulus = Modulus::new(32)?;
    let threat = ThreatModel::default();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let inputs: Vec<Vec<u64>> = (0..n)
        .map(|_| (0..m).map(|_| rng.next_u64() & modulus.mask()).collect())
        .collect();
    let mut plain = vec![0u64; m];
    for x in &inputs {
        modulus.add_assign(&mut plain, x);
    }

    // One server, one round of the whole cohort.
    let p = GraphParams::derive(n, &threat)?;
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let cfg = SessionConfig::new(seed, p.graph(n, &seed)?, p.threshold, modulus, m, None)?;
    let whole = run_round(
        Arc::new(cfg),
        &inputs,
        &BTreeMap::new(),
        None,
        None,
        &Instant::now,
        &mut rng,
    );
    let server: Duration = whole.timings.server.values().sum();
    let exact = whole.result?.sum == plain;
    println!(
        "n = {n}, m = {m}: one round, one server: {:.2} s of server time (exact: {exact})",
        server.as_secs_f64()
    );

    let groups = split(n, g, 100, m, modulus, &threat, &mut rng)?;
    println!(
        "{g} groups of about {} (neighbourhood {}, threshold {})",
        n / g,
        groups[0].cfg.graph().neighbourhood_size(),
        groups[0].cfg.threshold()
    );
    println!("| replicas | server time, most loaded replica | all replicas | exact |");
    println!("| --- | --- | --- | --- |");
    let mut r = 1;
    while r <= g as usize {
        let c = run(&groups, &inputs, r, &Instant::now, &mut rng)?;
        let most = c.server.iter().max().copied().unwrap_or_default();
        let all: Duration = c.server.iter().sum();
        println!(
            "| {r} | {:.2} s | {:.2} s | {} |",
            most.as_secs_f64(),
            all.as_secs_f64(),
            c.sum == plain && c.included == n as usize
        );
        r *= 2;
    }
    Ok(())
}
