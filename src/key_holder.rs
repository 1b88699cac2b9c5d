//! `fedagg key-holder`: the long-running process of one Paillier federation's key holder.
//!
//! It enrolls once with the enrollment file the operator handed out and keeps its credentials
//! (mode 0600); it loads its key (`fedagg keygen`'s `paillier.key`, or a holder's share of a
//! threshold key), publishes the public key when the federation has none (and refuses to start
//! when the federation has another), then follows the rounds by long polling and decrypts each
//! round's sum, checked as `fedagg_client::KeyHolder` checks it: with a roster authority, only a
//! sum it added up itself from signed contributions. It remembers durably which sum it decrypted
//! in each round, so a restart never lets a server obtain a second sum of one round.
//!
//! It survives server restarts and network failures (it backs off and polls again), and stops
//! cleanly on SIGTERM or Ctrl-C: a decryption in flight is abandoned before it is sent, which
//! the durable memory makes safe to repeat.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use fedagg_api::{Phase, RoundInfo, RoundStatus};
use fedagg_client::{Client, KeyHolder, Transport};

/// `fedagg key-holder`.
#[derive(Args)]
pub struct KeyHolderArgs {
    /// The key: `paillier.key`, or this holder's `holder-<i>.key` share of a threshold key
    /// (`fedagg keygen`).
    #[arg(long)]
    key: PathBuf,
    /// This key holder's credentials (token, pins, identity): created, mode 0600, by the first
    /// run with `--enrollment`, read by the later ones.
    #[arg(long)]
    credentials: PathBuf,
    /// The enrollment file from `fedagg admin codes create --role key-holder`, used when the
    /// credentials file does not exist yet.
    #[arg(long)]
    enrollment: Option<PathBuf>,
    /// Where to remember the sum decrypted in each round (default: the credentials file's name
    /// with `.decrypted` appended).
    #[arg(long)]
    memory: Option<PathBuf>,
    /// Decrypt sums it cannot verify, in a federation without a roster authority: the server
    /// alone could then have a single participant's update decrypted.
    #[arg(long)]
    unverified: bool,
    /// PEM file of the certificate authorities to trust for an https:// server.
    #[arg(long, env = "FEDAGG_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Give up on one round's decryption after this many seconds.
    #[arg(long, default_value_t = 86_400)]
    round_timeout: u64,
    /// Threads for decrypting a Paillier sum (default: every core). The values are the same
    /// whatever the number.
    #[arg(long, env = "FEDAGG_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

/// Run the key holder until SIGTERM or Ctrl-C.
pub fn run(args: KeyHolderArgs) -> Result<()> {
    crate::init_logging();
    fedagg_client::set_threads(args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let transport = Transport {
            ca_file: args.ca_file.clone(),
            ..Transport::default()
        };
        let client = tokio::select! {
            c = connect(&args, &transport) => c?,
            () = fedagg_server::shutdown_signal() => return Ok(()),
        };
        let kh = key_holder(&args, client.clone())?;
        tokio::select! {
            r = serve(&kh, &client, Duration::from_secs(args.round_timeout)) => r,
            () = fedagg_server::shutdown_signal() => {
                tracing::info!("stopping");
                Ok(())
            }
        }
    })
}

/// The client from the credentials file, or enrolled with the enrollment file (then saved).
async fn connect(args: &KeyHolderArgs, transport: &Transport) -> Result<Client> {
    if args.credentials.exists() {
        return Client::load_credentials(&args.credentials, transport).map_err(Into::into);
    }
    let Some(enrollment) = &args.enrollment else {
        bail!(
            "{} does not exist: enroll first with --enrollment FILE (from `fedagg admin codes \
             create --role key-holder`)",
            args.credentials.display()
        );
    };
    let (url, bundle) = fedagg_client::read_enrollment(enrollment)?;
    let (client, enrolled) = retrying("enrolling", || {
        Client::enroll_with(&url, &bundle, transport)
    })
    .await?;
    client
        .save_credentials(&args.credentials)
        .context("saving the credentials (the code is spent: keep this file)")?;
    tracing::info!(
        federation = enrolled.federation_id,
        participant = enrolled.participant_id,
        credentials = %args.credentials.display(),
        "enrolled as key holder"
    );
    Ok(client)
}

fn key_holder(args: &KeyHolderArgs, client: Client) -> Result<KeyHolder> {
    let kh = KeyHolder::from_key_file(client, &args.key)?;
    let kh = if args.unverified { kh.unverified() } else { kh };
    let memory = args.memory.clone().unwrap_or_else(|| {
        let mut p = args.credentials.clone().into_os_string();
        p.push(".decrypted");
        PathBuf::from(p)
    });
    Ok(kh.remember_in(&memory)?)
}

/// Retry `f` on transient failures (the server restarting, the network) with backoff, forever:
/// the SDK's own retries give up after a few attempts, a daemon must not.
async fn retrying<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = fedagg_client::Result<T>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => {
                tracing::warn!(%e, "{what}: trying again in {delay:?}");
            }
            Err(e) => return Err(e).context(what.to_string()),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Publish the key if needed, then decrypt every round, forever.
async fn serve(kh: &KeyHolder, client: &Client, round_timeout: Duration) -> Result<()> {
    if retrying("publishing the public key", || {
        kh.publish_unless_published()
    })
    .await?
    {
        tracing::info!("published the public key");
    }
    let fed = retrying("reading the federation", || client.federation()).await?;
    tracing::info!(
        federation = fed.id,
        name = %fed.spec.name,
        mode = fed.spec.mode.name(),
        "waiting for rounds"
    );
    // Rounds that ended before this process started are past; an open one is served. One read
    // decides both (reading "is a round open" and "the latest round" apart would skip a round
    // opened in between).
    let mut after = served_after(client).await?;
    loop {
        let Some(info) = retrying("waiting for a round", || {
            client.next_round(after, Duration::from_secs(30))
        })
        .await?
        else {
            continue;
        };
        after = info.round;
        if info.status == RoundStatus::Open {
            decrypt(kh, client, info, round_timeout).await;
        }
    }
}

/// The round number after which this daemon serves rounds: the latest round's when it has
/// ended, the one before it when it is open (0 before the first).
async fn served_after(client: &Client) -> Result<u64> {
    match retrying("reading the latest round", || {
        client.next_round(0, Duration::ZERO)
    })
    .await?
    {
        Some(info) if info.status == RoundStatus::Open => Ok(info.round - 1),
        Some(info) => Ok(info.round),
        None => Ok(0),
    }
}

/// Decrypt one round's sum, and log what happened. A failure is logged, never fatal: the next
/// round is served.
async fn decrypt(kh: &KeyHolder, client: &Client, info: RoundInfo, timeout: Duration) {
    let round = info.round;
    tracing::info!(round, cohort = info.cohort, "round opened");
    let until = Instant::now() + timeout;
    // Wait for the decrypt phase here, so that the time logged is the decryption's.
    let mut info = info;
    while info.status == RoundStatus::Open && info.phase != Phase::Decrypt {
        if Instant::now() >= until {
            tracing::warn!(round, "gave up waiting for the decrypt phase");
            return;
        }
        match client
            .round(round, Some(info.revision), Duration::from_secs(30))
            .await
        {
            Ok(i) => info = i,
            Err(e) => {
                tracing::warn!(round, %e, "reading the round; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    if info.status != RoundStatus::Open {
        tracing::info!(round, status = ?info.status, "round ended before its decryption");
        return;
    }
    let t0 = Instant::now();
    let left = until.saturating_duration_since(Instant::now());
    match retrying(&format!("decrypting round {round}"), || {
        kh.decrypt_round(round, left)
    })
    .await
    {
        Ok(outcome) => {
            let record = outcome.record.as_ref();
            tracing::info!(
                round,
                status = ?outcome.status,
                contributors = record.map(|r| r.participants),
                dropouts = record.map(|r| r.dropouts),
                secs = format!("{:.2}", t0.elapsed().as_secs_f64()),
                "decrypted the round's sum"
            );
        }
        Err(e) => tracing::warn!(round, "no decryption: {e:#}"),
    }
}
