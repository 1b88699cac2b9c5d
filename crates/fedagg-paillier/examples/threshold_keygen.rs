//! Time the dealing of threshold Paillier keys (safe primes dominate), and print a pair of safe
//! primes for test fixtures.
//!
//! ```text
//! cargo run --release -p fedagg-paillier --example threshold_keygen -- 2048 5
//! cargo run --release -p fedagg-paillier --features gmp --example threshold_keygen -- 3072 3
//! cargo run --release -p fedagg-paillier --example threshold_keygen -- 2048 1 primes
//! ```
//!
//! Arguments: modulus bits (default 2048), runs (default 3), and `primes` to print the last
//! run's two safe primes in hex instead of dealing.

use std::time::Instant;

use fedagg_paillier::threshold::{deal, random_safe_prime};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bits: u32 = args.first().map_or(Ok(2048), |a| a.parse())?;
    let runs: usize = args.get(1).map_or(Ok(3), |a| a.parse())?;
    let mut rng = ChaCha20Rng::from_rng(OsRng)?;
    if args.get(2).is_some_and(|a| a == "primes") {
        let half = u64::from(bits / 2);
        println!("# two {half}-bit safe primes (p = 2p' + 1), hex");
        println!("{:x}", random_safe_prime(half, &mut rng));
        println!("{:x}", random_safe_prime(half, &mut rng));
        return Ok(());
    }
    let mut secs = Vec::with_capacity(runs);
    for run in 1..=runs {
        let t0 = Instant::now();
        let (key, _shares) = deal(bits, 5, 3, &mut rng)?;
        let s = t0.elapsed().as_secs_f64();
        println!(
            "run {run}: {s:.1} s for a {}-bit key dealt 3 of 5 ({})",
            key.public().bits(),
            fedagg_paillier::BACKEND
        );
        secs.push(s);
    }
    secs.sort_by(f64::total_cmp);
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    println!(
        "{bits} bits, {runs} runs: mean {mean:.1} s, min {:.1} s, median {:.1} s, max {:.1} s",
        secs.first().copied().unwrap_or(0.0),
        secs.get(secs.len() / 2).copied().unwrap_or(0.0),
        secs.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
