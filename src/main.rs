//! The `fedagg` command line. Thin: it parses arguments and calls the crates.
//!
//! `fedagg demo` runs a whole secure-aggregation round in memory: many clients quantize and mask
//! weighted updates, some drop out at every phase, the server recovers the weighted mean of the
//! survivors, and the result is checked against the plaintext computation.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use fedagg_quant::QuantParams;
use fedagg_secagg::sim::{run_round, DropPoint};
use fedagg_secagg::{ClientId, GraphParams, SessionConfig, ThreatModel};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};

#[derive(Parser)]
#[command(
    name = "fedagg",
    version,
    about = "Privacy-preserving aggregation for federated learning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one SecAgg / SecAgg+ round in memory and check it against the plaintext mean.
    Demo(DemoArgs),
    /// Generate a Paillier key pair for a federation's key holder.
    Keygen(KeygenArgs),
    /// Run the aggregation service (REST on 127.0.0.1:8470, SQLite in ./fedagg-data by default).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (also FEDAGG_CONFIG).
    #[arg(long, env = "FEDAGG_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Address to listen on (overrides the file and FEDAGG_LISTEN).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory of the embedded database (overrides FEDAGG_DATA_DIR).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Modulus size in bits (2048 default; 3072 for 128-bit security).
    #[arg(long, default_value_t = 2048)]
    bits: u32,
    /// Folder for `paillier.pub` (shareable) and `paillier.key` (mode 0600).
    #[arg(long, default_value = "keys")]
    dir: std::path::PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Number of clients.
    #[arg(long, default_value_t = 500)]
    clients: u32,
    /// Values per model update.
    #[arg(long, default_value_t = 50_000)]
    params: usize,
    /// Fraction of clients that drop out, spread evenly over the protocol's phases.
    #[arg(long, default_value_t = 0.10)]
    dropout: f64,
    /// Fraction of clients assumed corrupt when sizing neighbourhoods and the threshold.
    #[arg(long, default_value_t = 0.05)]
    corrupt: f64,
    /// Clipping range c: update values are clipped to [-c, c].
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Quantization levels T.
    #[arg(long, default_value_t = 1 << 16)]
    levels: u64,
    /// Largest client weight (e.g. local sample count).
    #[arg(long, default_value_t = 256)]
    max_weight: u64,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => demo(&args),
        Command::Keygen(args) => keygen(&args),
        Command::Serve(args) => serve(args),
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FEDAGG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = fedagg_server::Config::load(a.config.as_deref(), |k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?;
    if let Some(l) = a.listen {
        config.listen = l;
    }
    if let Some(d) = a.data_dir {
        config.data_dir = d;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let server = fedagg_server::Server::start(config)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(t) = &server.generated_admin_token {
            eprintln!("generated admin token (shown once, store it safely): {t}");
        }
        // Scripts and tests read the bound address from this line.
        println!("listening on http://{}", server.addr());
        server
            .run_until(fedagg_server::shutdown_signal())
            .await
            .context("serving")
    })
}

fn keygen(a: &KeygenArgs) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let public_path = a.dir.join("paillier.pub");
    let private_path = a.dir.join("paillier.key");
    if !a.force && (public_path.exists() || private_path.exists()) {
        bail!(
            "{} or {} already exists; pass --force to replace them",
            public_path.display(),
            private_path.display()
        );
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let mut rng = ChaCha20Rng::from_rng(OsRng).context("seeding the CSPRNG from the OS")?;
    let t0 = Instant::now();
    let sk = fedagg_paillier::keygen(a.bits, &mut rng)?;
    let took = t0.elapsed();
    if a.force {
        let _ = std::fs::remove_file(&private_path);
    }
    // The private key file is created with mode 0600 from the start, never widened.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private_path)
        .with_context(|| format!("creating {}", private_path.display()))?;
    f.write_all(sk.to_text().as_bytes())?;
    f.sync_all()?;
    std::fs::write(&public_path, sk.public().to_text())
        .with_context(|| format!("writing {}", public_path.display()))?;
    println!(
        "generated a {}-bit Paillier key in {}\n  public key (share it): {}\n  private key (key holder only, mode 0600): {}",
        a.bits,
        ms(took),
        public_path.display(),
        private_path.display()
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn demo(a: &DemoArgs) -> Result<()> {
    let mut rng = ChaCha20Rng::from_rng(OsRng).context("seeding the CSPRNG from the OS")?;
    let n = a.clients;
    let threat = ThreatModel {
        corrupt_fraction: a.corrupt,
        dropout_rate: a.dropout,
        ..ThreatModel::default()
    };
    let graph_params = GraphParams::derive(n, &threat)?;
    let quant = QuantParams::with_minimal_modulus(a.clip, a.levels, a.max_weight, u64::from(n))?;
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let graph = graph_params.graph(n, &seed)?;
    let mut session = [0u8; 32];
    rng.fill_bytes(&mut session);
    let cfg = Arc::new(SessionConfig::new(
        session,
        graph,
        graph_params.threshold,
        quant.modulus(),
        QuantParams::encoded_len(a.params),
        None,
    )?);

    println!("fedagg demo: one secure-aggregation round in memory");
    println!(
        "  clients {n}, {} values per update, {:.0} % dropout spread over the phases",
        a.params,
        a.dropout * 100.0
    );
    println!(
        "  graph: {}, threshold {} (2^-40 security against {:.0} % corrupt clients)",
        if cfg.graph().is_complete() {
            format!("complete ({n} clients)")
        } else {
            format!(
                "SecAgg+ Harary, {} neighbours per client (self included)",
                cfg.graph().neighbourhood_size()
            )
        },
        cfg.threshold(),
        a.corrupt * 100.0
    );
    println!(
        "  encoding: clip {}, {} levels, weights up to {}, arithmetic mod 2^{}",
        a.clip,
        a.levels,
        a.max_weight,
        quant.modulus().bits()
    );

    // Synthetic local updates and weights (sample counts).
    let t0 = Instant::now();
    let updates: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            (0..a.params)
                .map(|_| ((rng.next_u32() as f64 / u32::MAX as f64 - 0.5) * 2.4 * a.clip) as f32)
                .collect()
        })
        .collect();
    let weights: Vec<u64> = (0..n)
        .map(|_| 1 + u64::from(rng.next_u32()) % a.max_weight)
        .collect();
    let inputs = updates
        .iter()
        .zip(&weights)
        .map(|(u, &w)| quant.encode_weighted(u, w, &mut rng))
        .collect::<Result<Vec<_>, _>>()?;
    let encode_time = t0.elapsed();

    // Drop ceil(dropout * n) random clients, cycling through the four drop points.
    let points = [
        DropPoint::BeforeAdvertise,
        DropPoint::AfterAdvertise,
        DropPoint::AfterShareKeys,
        DropPoint::AfterMaskedInput,
    ];
    let mut order: Vec<u32> = (0..n).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let n_drop = (a.dropout * f64::from(n)).ceil() as usize;
    let drops: BTreeMap<ClientId, DropPoint> = order
        .iter()
        .take(n_drop)
        .zip(points.iter().cycle())
        .map(|(&c, &p)| (ClientId(c), p))
        .collect();

    let t0 = Instant::now();
    let outcome = run_round(
        Arc::clone(&cfg),
        &inputs,
        &drops,
        None,
        None,
        &Instant::now,
        &mut rng,
    );
    let round_time = t0.elapsed();
    for (c, phase, e) in &outcome.client_errors {
        println!("  client {c} failed in {phase}: {e}");
    }
    let agg = outcome.result?;
    let (mean, total_weight) = quant.decode_weighted_mean(&agg.sum)?;

    // Plaintext check over exactly the counted clients.
    let mut want = vec![0f64; a.params];
    let mut w_sum = 0u64;
    for c in &agg.included {
        let i = c.0 as usize;
        w_sum += weights[i];
        for (s, x) in want.iter_mut().zip(&updates[i]) {
            *s += weights[i] as f64 * f64::from(*x).clamp(-a.clip, a.clip);
        }
    }
    let max_err = mean
        .iter()
        .zip(&want)
        .map(|(m, s)| (m - s / w_sum as f64).abs())
        .fold(0f64, f64::max);

    println!();
    println!(
        "  counted {} inputs; {} clients dropped after sharing keys (masks removed), {} before",
        agg.included.len(),
        agg.dropped_after_sharing.len(),
        n as usize - agg.included.len() - agg.dropped_after_sharing.len()
    );
    let head: Vec<String> = mean.iter().take(5).map(|v| format!("{v:+.5}")).collect();
    println!(
        "  weighted mean (total weight {total_weight}): [{}, ...]",
        head.join(", ")
    );
    println!(
        "  check against the plaintext weighted mean: total weight {}, max |error| {:.2e}, bound {:.2e} (one quantization step)",
        if w_sum == total_weight { "equal" } else { "DIFFERENT" },
        max_err,
        quant.step()
    );
    println!();
    println!("  timings (wall, this machine):");
    println!("    encode all updates: {}", ms(encode_time));
    let survivors = agg.included.len().max(1) as u32;
    for (phase, d) in &outcome.timings.clients {
        println!(
            "    clients {phase}: {} total, {} per client",
            ms(*d),
            ms(*d / survivors)
        );
    }
    for (phase, d) in &outcome.timings.server {
        println!("    server  {phase}: {}", ms(*d));
    }
    println!("    whole round: {}", ms(round_time));

    if w_sum != total_weight || max_err > quant.step() {
        bail!("the recovered aggregate does not match the plaintext computation");
    }
    println!("\n  OK: the server recovered the survivors' weighted mean without seeing any update");
    Ok(())
}
