//! The `fedagg` command line. Thin: it parses arguments and calls the crates.
//!
//! `fedagg demo` is the main job: a federation trained with tch whose participants contribute
//! through the SDK to the service started in-process (see `fedagg::demo`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};

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
    /// Run the demo federation: the service on loopback, participants training with tch and
    /// contributing over HTTP (SecAgg by default).
    #[cfg(feature = "demo")]
    Demo(Box<fedagg::demo::DemoConfig>),
    /// Generate a Paillier key pair for a federation's key holder.
    Keygen(KeygenArgs),
    /// Run the aggregation service (REST on 127.0.0.1:8470, SQLite in ./fedagg-data by default).
    Serve(ServeArgs),
    /// Print the service's OpenAPI document (what `GET /v1/openapi.json` serves).
    Openapi,
    /// The enrollment authority: its key, and the roster of identity keys it signs.
    #[command(subcommand)]
    Authority(AuthorityCommand),
    /// The operator's tools: federations, enrollment files, rounds, tokens and models.
    Admin(fedagg::admin::AdminArgs),
    /// Run a Paillier federation's key holder: publish the key, decrypt each round's sum.
    KeyHolder(fedagg::key_holder::KeyHolderArgs),
}

#[derive(Subcommand)]
enum AuthorityCommand {
    /// Create the authority's Ed25519 key (`DIR/authority.key`, mode 0600) and print the public
    /// key to give as a federation's `roster_authority`.
    Keygen {
        /// Folder for `authority.key`.
        #[arg(long, default_value = "keys")]
        dir: std::path::PathBuf,
    },
    /// Sign a federation's roster of participants' identity keys and store it on the server.
    SignRoster {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// The authority's key file.
        #[arg(long, default_value = "keys/authority.key")]
        key: std::path::PathBuf,
        /// The server.
        #[arg(long, default_value = "http://127.0.0.1:8470")]
        url: String,
        /// The admin token (to read the roster and store the signed one).
        #[arg(long, env = "FEDAGG_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// Sign only these members: lines `PARTICIPANT_ID IDENTITY_KEY`, the keys each partner
        /// read out to you (`Client::identity().public_hex()`). Without it, every enrolled
        /// identity the server lists is signed.
        #[arg(long)]
        members: Option<std::path::PathBuf>,
    },
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
    /// Database URL: postgres://user:password@host/db for PostgreSQL (several replicas may
    /// share it), sqlite:PATH for a SQLite file (overrides FEDAGG_DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Modulus size in bits (2048 default and minimum; 3072 for 128-bit security).
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(i64::from(fedagg_paillier::MIN_SERVICE_KEY_BITS)..=8192))]
    bits: u32,
    /// Folder for `paillier.pub` (shareable) and `paillier.key` (mode 0600); with `--holders`,
    /// `paillier.pub` and one `holder-<i>.key` (mode 0600) per key holder.
    #[arg(long, default_value = "keys")]
    dir: std::path::PathBuf,
    /// Deal a threshold key to this many key holders (with safe primes; takes longer), so that
    /// no single holder can decrypt. Needs `--threshold`.
    #[arg(long, requires = "threshold", value_parser = clap::value_parser!(u16).range(2..=i64::from(fedagg_paillier::threshold::MAX_HOLDERS)))]
    holders: Option<u16>,
    /// Key holders needed to decrypt: more than half of `--holders`.
    #[arg(long, requires = "holders")]
    threshold: Option<u16>,
    /// Make a subgroup key (`fedagg_paillier::keygen_subgroup`): the key holder decrypts about
    /// four times faster, under an assumption beyond DJN's, and only the SDK's (DJN) ciphertexts
    /// decrypt, not textbook ones such as python-paillier's. See docs/paillier.md.
    #[arg(long, conflicts_with = "holders")]
    subgroup: bool,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
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
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo(*args),
        Command::Keygen(args) => keygen(&args),
        Command::Serve(args) => serve(args),
        Command::Authority(cmd) => authority(cmd),
        Command::Admin(args) => fedagg::admin::run(args),
        Command::KeyHolder(args) => fedagg::key_holder::run(args),
        Command::Openapi => {
            print!("{}", fedagg_server::openapi::document_json());
            Ok(())
        }
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    fedagg::init_logging();
    let mut config = fedagg_server::Config::load(a.config.as_deref(), |k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?;
    if let Some(l) = a.listen {
        config.listen = l;
    }
    if let Some(d) = a.data_dir {
        config.data_dir = d;
    }
    if let Some(u) = a.database_url {
        config.database_url = Some(u);
        config.validate().map_err(anyhow::Error::msg)?;
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
        println!("listening on {}", server.url());
        server
            .run_until(fedagg_server::shutdown_signal())
            .await
            .context("serving")
    })
}

#[cfg(feature = "demo")]
fn demo(cfg: fedagg::demo::DemoConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(fedagg::demo::run(&cfg)).map(drop)
}

fn keygen(a: &KeygenArgs) -> Result<()> {
    if let (Some(k), Some(t)) = (a.holders, a.threshold) {
        return threshold_keygen(a, k, t);
    }
    let public_path = a.dir.join("paillier.pub");
    let private_path = a.dir.join("paillier.key");
    fresh_key_files(a, &[&public_path, &private_path])?;
    let mut rng = ChaCha20Rng::from_rng(OsRng).context("seeding the CSPRNG from the OS")?;
    let t0 = Instant::now();
    let sk = if a.subgroup {
        fedagg_paillier::keygen_subgroup(a.bits, &mut rng)?
    } else {
        fedagg_paillier::keygen(a.bits, &mut rng)?
    };
    let took = t0.elapsed();
    // The private key file is created with mode 0600 from the start, never widened.
    fedagg_client::write_secret(&private_path, sk.to_text().as_bytes())
        .with_context(|| format!("creating {}", private_path.display()))?;
    std::fs::write(&public_path, sk.public().to_text())
        .with_context(|| format!("writing {}", public_path.display()))?;
    println!(
        "generated a {}-bit Paillier {}key in {}\n  public key (share it): {}\n  private key (key holder only, mode 0600): {}",
        a.bits,
        if a.subgroup { "subgroup " } else { "" },
        ms(took),
        public_path.display(),
        private_path.display()
    );
    Ok(())
}

/// Refuse to overwrite key files unless `--force` (then remove them first, so that each secret
/// file is created afresh with mode 0600); create the folder.
fn fresh_key_files(a: &KeygenArgs, paths: &[&std::path::Path]) -> Result<()> {
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        if !a.force {
            bail!("{} already exists; pass --force to replace it", p.display());
        }
    }
    if a.force {
        for p in paths {
            let _ = std::fs::remove_file(p);
        }
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))
}

/// Deal a threshold key: the public file, and one share file per holder (mode 0600) to hand to
/// that holder out of band. The factorization exists only in this process, and is wiped.
fn threshold_keygen(a: &KeygenArgs, holders: u16, threshold: u16) -> Result<()> {
    fedagg_paillier::threshold::check_threshold(holders, threshold)?;
    let public_path = a.dir.join("paillier.pub");
    let share_paths: Vec<_> = (1..=holders)
        .map(|i| a.dir.join(format!("holder-{i}.key")))
        .collect();
    let mut all: Vec<&std::path::Path> = vec![&public_path];
    all.extend(share_paths.iter().map(|p| p.as_path()));
    fresh_key_files(a, &all)?;
    let mut rng = ChaCha20Rng::from_rng(OsRng).context("seeding the CSPRNG from the OS")?;
    let t0 = Instant::now();
    let (key, shares) = fedagg_paillier::threshold::deal(a.bits, holders, threshold, &mut rng)?;
    let took = t0.elapsed();
    for (share, path) in shares.iter().zip(&share_paths) {
        fedagg_client::write_secret(path, share.to_text().as_bytes())
            .with_context(|| format!("creating {}", path.display()))?;
    }
    std::fs::write(&public_path, key.to_text())
        .with_context(|| format!("writing {}", public_path.display()))?;
    println!(
        "dealt a {}-bit threshold Paillier key ({threshold} of {holders} holders decrypt) in {}\n  public key (share it): {}\n  holder shares (one to each holder, mode 0600): {}",
        a.bits,
        ms(took),
        public_path.display(),
        share_paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn authority(cmd: AuthorityCommand) -> Result<()> {
    match cmd {
        AuthorityCommand::Keygen { dir } => {
            let public = fedagg::authority::keygen(&dir)?;
            println!(
                "created {} (mode 0600; keep it away from the server)\nroster_authority: {public}",
                dir.join("authority.key").display()
            );
        }
        AuthorityCommand::SignRoster {
            federation,
            key,
            url,
            admin_token,
            members,
        } => {
            let only = members.map(|p| members_file(&p)).transpose()?;
            let rt = tokio::runtime::Runtime::new()?;
            let admin = fedagg_client::Admin::new(&url, &admin_token)?;
            let signed = rt.block_on(fedagg::authority::sign_roster(
                &admin,
                federation,
                &key,
                only.as_deref(),
            ))?;
            println!("signed the roster of federation {federation}:");
            for m in &signed {
                println!(
                    "  participant {:>6}  identity {}",
                    m.participant_id, m.identity_key
                );
            }
        }
    }
    Ok(())
}

/// Lines `PARTICIPANT_ID IDENTITY_KEY` (blank lines and `#` comments skipped).
fn members_file(path: &std::path::Path) -> Result<Vec<(i64, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (id, key) = l
                .split_once(char::is_whitespace)
                .with_context(|| format!("{}: {l:?} is not `ID KEY`", path.display()))?;
            Ok((
                id.parse()
                    .with_context(|| format!("participant id {id:?}"))?,
                key.trim().to_string(),
            ))
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
