//! `fedagg admin`: the operator's command line over the REST API (the SDK's [`Admin`]).
//! Federations, enrollment files, rounds (with a live `watch`), token rotation and model export,
//! with tables for people and `--json` for scripts.
//!
//! The server and the admin token come from flags, else the environment (`FEDAGG_URL`,
//! `FEDAGG_ADMIN_TOKEN`, `FEDAGG_CA_FILE`), else a config file (`--config`, `FEDAGG_ADMIN_CONFIG`,
//! or `~/.config/fedagg/admin.toml` when it exists) with `url`, `token` and `ca_file` keys. The
//! token is never printed; a rotated participant token only with `--show-token`, or into a file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use fedagg_api::{Federation, FederationSpec, Role, RoundInfo, RoundMetrics, RoundStatus};
use fedagg_client::{Admin, Transport};
use serde::Deserialize;

/// `fedagg admin`.
#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    conn: Connection,
    /// Print JSON instead of tables (one object per line for `rounds watch`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

/// Where the server is and how to authenticate.
#[derive(Args)]
struct Connection {
    /// The server's URL (default http://127.0.0.1:8470).
    #[arg(long, global = true, env = "FEDAGG_URL")]
    url: Option<String>,
    /// The admin token.
    #[arg(
        long,
        global = true,
        env = "FEDAGG_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// PEM file of the certificate authorities to trust for an https:// server.
    #[arg(long, global = true, env = "FEDAGG_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Config file with `url`, `token` and `ca_file` (TOML).
    #[arg(long, global = true, env = "FEDAGG_ADMIN_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create, show and list federations.
    #[command(subcommand)]
    Federations(FederationCommand),
    /// Create enrollment files, one per member, to hand out.
    #[command(subcommand)]
    Codes(CodeCommand),
    /// Open rounds, and follow them.
    #[command(subcommand)]
    Rounds(RoundCommand),
    /// Rotate a member's token.
    #[command(subcommand)]
    Tokens(TokenCommand),
    /// Export a model version.
    #[command(subcommand)]
    Models(ModelCommand),
}

#[derive(Subcommand)]
enum FederationCommand {
    /// Create a federation from a spec file (TOML or JSON, the API's fields) or from flags.
    Create(Box<crate::spec::SpecArgs>),
    /// Show one federation.
    Show {
        /// The federation.
        id: i64,
    },
    /// List every federation.
    List,
    /// Set the server optimizer the next rounds apply (not while a round is open).
    SetOptimizer(OptimizerArgs),
}

/// `fedagg admin federations set-optimizer`.
#[derive(Args)]
struct OptimizerArgs {
    /// The federation.
    #[arg(long)]
    federation: i64,
    /// `fedavg`, `fedavgm`, `fedadam` or `fedyogi` (with Reddi et al.'s defaults).
    kind: String,
    /// Server learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// FedAvgM's momentum.
    #[arg(long)]
    momentum: Option<f64>,
    /// FedAdam's and FedYogi's first-moment decay.
    #[arg(long)]
    beta1: Option<f64>,
    /// FedAdam's and FedYogi's second-moment decay.
    #[arg(long)]
    beta2: Option<f64>,
    /// FedAdam's and FedYogi's adaptivity.
    #[arg(long)]
    tau: Option<f64>,
}

impl OptimizerArgs {
    /// The optimizer: the kind's defaults, with the flags over them.
    fn optimizer(&self) -> Result<fedagg_api::ServerOptimizer> {
        let base =
            fedagg_api::ServerOptimizer::from_name(&self.kind).map_err(anyhow::Error::msg)?;
        let mut v = serde_json::to_value(base)?;
        for (k, x) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("tau", self.tau),
        ] {
            if let Some(x) = x {
                if v.get(k).is_none() {
                    bail!("--{k} does not apply to {}", self.kind);
                }
                v[k] = x.into();
            }
        }
        Ok(serde_json::from_value(v)?)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum GrantedRole {
    Participant,
    KeyHolder,
}

#[derive(Subcommand)]
enum CodeCommand {
    /// Create single-use enrollment codes, each in its own file (mode 0600) holding the server's
    /// URL and the code with the fingerprints its member pins.
    Create {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// The role the codes grant.
        #[arg(long, value_enum, default_value = "participant")]
        role: GrantedRole,
        /// How many codes (one per member).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        count: u32,
        /// Members are labelled PREFIX-1, PREFIX-2, ... (default: the role).
        #[arg(long)]
        label_prefix: Option<String>,
        /// Folder for the files (`<label>.enroll`), created if missing.
        #[arg(long)]
        out_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum RoundCommand {
    /// Open the federation's next round.
    Open {
        /// The federation.
        #[arg(long)]
        federation: i64,
    },
    /// A round's state (the open or latest one by default).
    Status {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// The round.
        #[arg(long)]
        round: Option<u64>,
    },
    /// Follow a round live until it ends: phase, submissions, dropouts, time left.
    Watch {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// The round (the open or latest one by default).
        #[arg(long)]
        round: Option<u64>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 86_400)]
        timeout: u64,
    },
    /// The federation's rounds, newest first.
    List {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// How many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Report what you measured on a round's model (shown on the dashboard).
    Report {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// The round.
        #[arg(long)]
        round: u64,
        /// Accuracy, a fraction from 0 to 1.
        #[arg(long)]
        accuracy: Option<f64>,
        /// Loss.
        #[arg(long)]
        loss: Option<f64>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Replace a member's token: the old one stops working at once.
    Rotate {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// The member's participant id.
        #[arg(long)]
        participant: i64,
        /// Write the new token to this new file (mode 0600).
        #[arg(long, conflicts_with = "show_token")]
        out: Option<PathBuf>,
        /// Print the new token.
        #[arg(long)]
        show_token: bool,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Write a model version as safetensors: one F32 tensor `model` of the federation's
    /// `vector_len` values, with the federation and version in its metadata.
    Export {
        /// The federation.
        #[arg(long)]
        federation: i64,
        /// The version (the current one by default).
        #[arg(long)]
        version: Option<u64>,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// What a config file may hold.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    url: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
}

impl Connection {
    /// The admin client: flags and environment first, then the config file.
    fn admin(&self) -> Result<(Admin, String)> {
        let file = self.config_file()?;
        let url = self
            .url
            .clone()
            .or(file.url)
            .unwrap_or_else(|| "http://127.0.0.1:8470".into());
        let token = self.token.clone().or(file.token).context(
            "no admin token: pass --token, set FEDAGG_ADMIN_TOKEN, or put `token` in the config file",
        )?;
        let transport = Transport {
            ca_file: self.ca_file.clone().or(file.ca_file),
            ..Transport::default()
        };
        Ok((Admin::with_transport(&url, &token, &transport)?, url))
    }

    fn config_file(&self) -> Result<ConfigFile> {
        let default = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("fedagg/admin.toml"));
        let path = match (&self.config, default) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) if p.exists() => p,
            _ => return Ok(ConfigFile::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        warn_if_readable_by_others(&path);
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }
}

/// A config file that holds a token should be private to its owner.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "warning: {} is readable by others; it may hold the admin token (chmod 600 it)",
                path.display()
            );
        }
    }
}

/// Run `fedagg admin`.
pub fn run(args: AdminArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (admin, url) = args.conn.admin()?;
    let out = Out { json: args.json };
    rt.block_on(async move {
        match args.command {
            AdminCommand::Federations(c) => federations(&admin, &out, c).await,
            AdminCommand::Codes(c) => codes(&admin, &url, &out, c).await,
            AdminCommand::Rounds(c) => rounds(&admin, &out, c).await,
            AdminCommand::Tokens(c) => tokens(&admin, &out, c).await,
            AdminCommand::Models(c) => models(&admin, &out, c).await,
        }
    })
}

/// Tables or JSON.
struct Out {
    json: bool,
}

impl Out {
    fn json(&self, v: &impl serde::Serialize) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(v)?);
        Ok(())
    }

    /// A table: a header row and rows, columns padded to their widest cell.
    fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for r in rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(header.to_vec());
        for r in rows {
            line(r.iter().map(String::as_str).collect());
        }
    }
}

async fn federations(admin: &Admin, out: &Out, cmd: FederationCommand) -> Result<()> {
    match cmd {
        FederationCommand::Create(args) => {
            let spec: FederationSpec = args.spec()?;
            let fed = admin.create_federation(&spec).await?;
            if out.json {
                return out.json(&fed);
            }
            println!("created federation {} ({})", fed.id, fed.spec.name);
            show_federation(&fed);
        }
        FederationCommand::Show { id } => {
            let fed = admin.federation(id).await?;
            if out.json {
                return out.json(&fed);
            }
            show_federation(&fed);
        }
        FederationCommand::SetOptimizer(args) => {
            let opt = args.optimizer()?;
            admin.set_server_optimizer(args.federation, &opt).await?;
            if out.json {
                return out.json(&opt);
            }
            println!(
                "federation {}: the next rounds apply {}",
                args.federation,
                serde_json::to_string(&opt)?
            );
        }
        FederationCommand::List => {
            let feds = admin.federations().await?;
            if out.json {
                return out.json(&feds);
            }
            let rows: Vec<Vec<String>> = feds
                .iter()
                .map(|f| {
                    vec![
                        f.id.to_string(),
                        f.spec.name.clone(),
                        f.spec.mode.name().into(),
                        f.spec.vector_len.to_string(),
                        f.participants.to_string(),
                        f.model_version.to_string(),
                        f.open_round.map_or("-".into(), |r| r.to_string()),
                        epsilon(f),
                    ]
                })
                .collect();
            out.table(
                &[
                    "ID", "NAME", "MODE", "PARAMS", "MEMBERS", "MODEL", "OPEN", "EPSILON",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

fn epsilon(f: &Federation) -> String {
    match (&f.privacy, f.spec.mode.epsilon_budget()) {
        (Some(p), Some(b)) => format!("{:.3} / {b}", p.epsilon),
        (None, Some(b)) => format!("0 / {b}"),
        _ => "-".into(),
    }
}

fn show_federation(f: &Federation) {
    let s = &f.spec;
    println!("federation      {} ({})", f.id, s.name);
    println!("mode            {}", s.mode.name());
    println!("parameters      {}", s.vector_len);
    println!(
        "clients         {} to {} a round",
        s.min_clients, s.max_clients
    );
    println!("phase timeout   {} s", s.phase_timeout_secs);
    println!(
        "optimizer       {}",
        serde_json::to_string(&f.server_optimizer).unwrap_or_default()
    );
    println!("members         {}", f.participants);
    println!("model version   {}", f.model_version);
    println!(
        "open round      {}",
        f.open_round.map_or("none".into(), |r| r.to_string())
    );
    if s.mode.is_he() {
        println!(
            "public key      {}",
            if f.has_public_key {
                "published"
            } else {
                "not yet"
            }
        );
    }
    if s.mode.epsilon_budget().is_some() {
        println!("epsilon         {}", epsilon(f));
    }
}

async fn codes(admin: &Admin, url: &str, out: &Out, cmd: CodeCommand) -> Result<()> {
    let CodeCommand::Create {
        federation,
        role,
        count,
        label_prefix,
        out_dir,
    } = cmd;
    let (role, role_name) = match role {
        GrantedRole::Participant => (Role::Participant, "participant"),
        GrantedRole::KeyHolder => (Role::KeyHolder, "key-holder"),
    };
    let fed = admin.federation(federation).await?;
    let prefix = label_prefix.unwrap_or_else(|| role_name.to_string());
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut made = Vec::new();
    for i in 1..=count {
        let label = format!("{prefix}-{i}");
        let path = out_dir.join(format!("{label}.enroll"));
        if path.exists() {
            bail!("{} already exists: no code was replaced", path.display());
        }
        let code = admin
            .enrollment_code_labelled(federation, role, Some(&label))
            .await?;
        let what = format!(
            "{role_name} {label:?} of federation {federation} ({:?})",
            fed.spec.name
        );
        fedagg_client::write_enrollment(&path, url, &code.bundle, &what)?;
        made.push((label, path));
    }
    if out.json {
        let files: Vec<_> = made
            .iter()
            .map(|(l, p)| serde_json::json!({"label": l, "file": p}))
            .collect();
        return out.json(&files);
    }
    let rows: Vec<Vec<String>> = made
        .iter()
        .map(|(l, p)| vec![l.clone(), p.display().to_string()])
        .collect();
    out.table(&["LABEL", "FILE (single use, mode 0600)"], &rows);
    Ok(())
}

async fn rounds(admin: &Admin, out: &Out, cmd: RoundCommand) -> Result<()> {
    match cmd {
        RoundCommand::Open { federation } => {
            let info = admin.open_round(federation).await?;
            if out.json {
                return out.json(&info);
            }
            println!(
                "opened round {} of federation {federation}: {} picked",
                info.round, info.cohort
            );
        }
        RoundCommand::Status { federation, round } => {
            let info = round_or_current(admin, federation, round).await?;
            if out.json {
                return out.json(&info);
            }
            println!("{}", status_line(&info));
        }
        RoundCommand::Watch {
            federation,
            round,
            timeout,
        } => {
            let info = round_or_current(admin, federation, round).await?;
            watch(admin, out, info, Duration::from_secs(timeout)).await?;
        }
        RoundCommand::List { federation, limit } => {
            let rounds = admin.rounds(federation, None, limit).await?;
            if out.json {
                return out.json(&rounds);
            }
            let rows: Vec<Vec<String>> = rounds
                .iter()
                .map(|r| round_row(&r.info, r.metrics.as_ref()))
                .collect();
            out.table(
                &[
                    "ROUND", "STATUS", "PHASE", "IN", "DROPOUTS", "SECS", "EPSILON", "ACCURACY",
                ],
                &rows,
            );
        }
        RoundCommand::Report {
            federation,
            round,
            accuracy,
            loss,
        } => {
            if accuracy.is_none() && loss.is_none() {
                bail!("nothing to report: pass --accuracy, --loss or both");
            }
            let m = RoundMetrics { accuracy, loss };
            admin.report_metrics(federation, round, &m).await?;
            if !out.json {
                println!("reported on round {round} of federation {federation}");
            }
        }
    }
    Ok(())
}

fn round_row(info: &RoundInfo, metrics: Option<&RoundMetrics>) -> Vec<String> {
    let r = info.record.as_ref();
    vec![
        info.round.to_string(),
        status_name(info.status).into(),
        info.phase.as_str().into(),
        r.map_or(info.received, |r| r.participants).to_string(),
        r.map_or("-".into(), |r| r.dropouts.to_string()),
        r.map_or("-".into(), |r| format!("{:.1}", r.duration_secs)),
        r.and_then(|r| r.epsilon_spent)
            .map_or("-".into(), |e| format!("{e:.3}")),
        metrics
            .and_then(|m| m.accuracy)
            .map_or("-".into(), |a| format!("{:.2}%", a * 100.0)),
    ]
}

fn status_name(s: RoundStatus) -> &'static str {
    match s {
        RoundStatus::Open => "open",
        RoundStatus::Completed => "completed",
        RoundStatus::Failed => "failed",
    }
}

async fn round_or_current(admin: &Admin, fid: i64, round: Option<u64>) -> Result<RoundInfo> {
    let round = match round {
        Some(r) => r,
        None => match admin.federation(fid).await?.open_round {
            Some(r) => r,
            None => admin
                .rounds(fid, None, 1)
                .await?
                .first()
                .map(|r| r.info.round)
                .with_context(|| format!("federation {fid} has no round yet"))?,
        },
    };
    Ok(admin.round(fid, round, None, Duration::ZERO).await?)
}

/// One line on a round: its phase and progress while open, its outcome once ended.
pub fn status_line(info: &RoundInfo) -> String {
    match (&info.record, info.status) {
        (Some(r), status) => format!(
            "round {} {}: {} in, {} dropped, {:.1} s{}{}",
            info.round,
            status_name(status),
            r.participants,
            r.dropouts,
            r.duration_secs,
            r.epsilon_spent
                .map_or(String::new(), |e| format!(", epsilon {e:.3}")),
            r.failure
                .as_ref()
                .map_or(String::new(), |f| format!(" ({f})"))
        ),
        (None, _) => format!(
            "round {} open: phase {}, {}/{} submissions, {} dropped of {} picked, {}",
            info.round,
            info.phase.as_str(),
            info.received,
            info.expected,
            info.cohort.saturating_sub(info.expected),
            info.cohort,
            info.deadline_in_ms
                .map_or("no deadline".into(), |ms| format!(
                    "{} s left in the phase",
                    ms.div_ceil(1000)
                ))
        ),
    }
}

/// Follow a round until it ends: on a terminal, one line redrawn each second; otherwise a line
/// (or a JSON object) per change.
async fn watch(admin: &Admin, out: &Out, mut info: RoundInfo, timeout: Duration) -> Result<()> {
    let tty = std::io::stdout().is_terminal() && !out.json;
    let until = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let line = status_line(&info);
        if out.json {
            if line != last {
                println!("{}", serde_json::to_string(&info)?);
            }
        } else if tty {
            print!("\r\x1b[2K{line}");
            std::io::stdout().flush()?;
        } else if line != last {
            println!("{line}");
        }
        last = line;
        if info.status != RoundStatus::Open {
            if tty {
                println!();
            }
            return Ok(());
        }
        if tokio::time::Instant::now() >= until {
            bail!("round {} still open after the timeout", info.round);
        }
        // Long-poll for a change, at most a second, so the time left stays current.
        info = admin
            .round(
                info.federation_id,
                info.round,
                Some(info.revision),
                Duration::from_secs(1),
            )
            .await?;
    }
}

async fn tokens(admin: &Admin, out: &Out, cmd: TokenCommand) -> Result<()> {
    let TokenCommand::Rotate {
        federation,
        participant,
        out: file,
        show_token,
    } = cmd;
    // Refuse before rotating: once rotated, a token that could not be written would be lost.
    if let Some(path) = file.as_ref().filter(|p| p.exists()) {
        bail!(
            "{} already exists: the token was not rotated",
            path.display()
        );
    }
    let enrolled = admin.rotate_token(federation, participant).await?;
    if let Some(path) = &file {
        fedagg_client::write_secret(path, enrolled.token.as_bytes())
            .with_context(|| format!("creating {}", path.display()))?;
    }
    if out.json {
        let mut v = serde_json::json!({
            "federation_id": enrolled.federation_id,
            "participant_id": enrolled.participant_id,
        });
        if show_token {
            v["token"] = enrolled.token.clone().into();
        }
        return out.json(&v);
    }
    println!("rotated the token of participant {participant} in federation {federation}");
    match (&file, show_token) {
        (Some(p), _) => println!("new token written to {} (mode 0600)", p.display()),
        (None, true) => println!("new token: {}", enrolled.token),
        (None, false) => println!(
            "the new token was not printed (--show-token, or --out FILE): the member can no \
             longer connect until it is reissued"
        ),
    }
    Ok(())
}

async fn models(admin: &Admin, out: &Out, cmd: ModelCommand) -> Result<()> {
    let ModelCommand::Export {
        federation,
        version,
        out: path,
    } = cmd;
    let version = match version {
        Some(v) => v,
        None => admin.federation(federation).await?.model_version,
    };
    let values = admin.model(federation, version).await?;
    let bytes = safetensors(&values, federation, version)?;
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    if out.json {
        return out.json(&serde_json::json!({
            "federation_id": federation, "version": version,
            "values": values.len(), "file": path,
        }));
    }
    println!(
        "wrote model version {version} of federation {federation} ({} values) to {}",
        values.len(),
        path.display()
    );
    Ok(())
}

/// A safetensors file of one F32 tensor `model`: the header's length (u64 little-endian), the
/// JSON header padded with spaces to 8 bytes, then the values little-endian.
pub fn safetensors(values: &[f32], federation: i64, version: u64) -> Result<Vec<u8>> {
    let header = serde_json::json!({
        "__metadata__": {
            "federation_id": federation.to_string(),
            "model_version": version.to_string(),
        },
        "model": {
            "dtype": "F32",
            "shape": [values.len()],
            "data_offsets": [0, values.len() * 4],
        },
    });
    let mut header = serde_json::to_vec(&header)?;
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + values.len() * 4);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}
