//! One SecAgg+ round of many clients in memory, as a bench (not a test): issue 18's 10^5 clients
//! at m = 10^3. The neighbourhood and threshold come from the default threat model (5 % corrupt,
//! 10 % dropouts, curious server); a fraction of the clients drop after sharing their keys, the
//! costliest point for the server (it must rebuild their pairwise masks). Prints the server's time
//! per phase, a client's mean time per round, whether the sum is exact, and the process's peak
//! memory (VmHWM).
//!
//! `cargo run --release -p fedagg-secagg --example large_round -- [n] [m] [dropout %] [threads]`
//! (defaults 100000 1000 5 1). `threads` is what `fedagg serve` would use (every core by
//! default): the server's unmasking spreads over them; each client's masking too, which at
//! m = 10^3 gains nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedagg_quant::Modulus;
use fedagg_secagg::sim::{run_round, DropPoint};
use fedagg_secagg::{ClientId, GraphParams, SessionConfig, ThreatModel};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (n, m, dropout) = (arg(0, 100_000) as u32, arg(1, 1000) as usize, arg(2, 5));
    fedagg_secagg::crypto::set_threads(arg(3, 1) as usize);
    let modulus = Modulus::new(32)?;
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let p = GraphParams::derive(n, &ThreatModel::default())?;
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let cfg = SessionConfig::new(seed, p.graph(n, &seed)?, p.threshold, modulus, m, None)?;
    let k = cfg.graph().neighbourhood_size() - 1;
    println!(
        "n = {n}, m = {m}, {dropout} % dropping after sharing keys: {k} neighbours, threshold {}, \
         {} threads",
        cfg.threshold(),
        fedagg_secagg::crypto::threads()
    );
    let inputs: Vec<Vec<u64>> = (0..n)
        .map(|_| (0..m).map(|_| rng.next_u64() & modulus.mask()).collect())
        .collect();
    // Every (100 / dropout)-th client drops, spread over the ring.
    let drops: BTreeMap<ClientId, DropPoint> = (0..n)
        .filter(|i| dropout > 0 && u64::from(*i) % (100 / dropout) == 0)
        .map(|i| (ClientId(i), DropPoint::AfterShareKeys))
        .collect();
    let mut plain = vec![0u64; m];
    for (i, x) in inputs.iter().enumerate() {
        if !drops.contains_key(&ClientId(i as u32)) {
            modulus.add_assign(&mut plain, x);
        }
    }
    let started = Instant::now();
    let out = run_round(
        Arc::new(cfg),
        &inputs,
        &drops,
        None,
        None,
        &Instant::now,
        &mut rng,
    );
    let wall = started.elapsed();
    let server: Duration = out.timings.server.values().sum();
    let clients: Duration = out.timings.clients.values().sum();
    let agg = out.result?;
    println!(
        "exact: {} ({} included, {} dropped after sharing)",
        agg.sum == plain,
        agg.included.len(),
        agg.dropped_after_sharing.len()
    );
    println!("server: {:.2} s in all", server.as_secs_f64());
    for (phase, t) in &out.timings.server {
        println!("  {phase}: {:.2} s", t.as_secs_f64());
    }
    println!(
        "clients: {:.2} s in all, {:.2} ms per client per round",
        clients.as_secs_f64(),
        clients.as_secs_f64() * 1e3 / f64::from(n)
    );
    for (phase, t) in &out.timings.clients {
        println!(
            "  {phase}: {:.3} ms per client",
            t.as_secs_f64() * 1e3 / f64::from(n)
        );
    }
    println!(
        "wall: {:.1} s (one thread: clients and server in turn)",
        wall.as_secs_f64()
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!("peak memory: {}", hwm.trim_start_matches("VmHWM:").trim());
    }
    Ok(())
}
