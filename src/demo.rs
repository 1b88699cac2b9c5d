//! The demo federation: the aggregation service started in-process on 127.0.0.1 with its
//! embedded database, `clients` participants enrolled through the REST API, and `rounds` rounds
//! in which every participant the server picks trains locally with tch and contributes its
//! update through the SDK over HTTP, in SecAgg, Paillier or DP mode. The coordinator evaluates
//! each new global model on held-out data.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fedagg_api::{FederationSpec, Mode, Role, RoundStatus};
use fedagg_client::{Admin, Client, Contribute, KeyHolder, OnProgress};

use crate::dropout::{self, Vanish, SECAGG_VANISH_POINTS};

mod records;
use fedagg_train::local::{Algorithm, Controls, LocalConfig};
use fedagg_train::partition::Partition;
use fedagg_train::sim::{client_seed, DataSource, Setup};
use fedagg_train::{Arch, Dataset, Eval, Net};
use indicatif::{ProgressBar, ProgressStyle};
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use records::Records;

/// The aggregation mode the demo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoMode {
    /// Secure aggregation (Bonawitz et al. / SecAgg+): the server sees only the sum.
    Secagg,
    /// Packed Paillier: the server adds ciphertexts; a key holder decrypts the sum.
    Paillier,
    /// Plaintext updates, clipped and noised by the server (central DP) with a privacy ledger.
    Dp,
    /// SecAgg with distributed DP: each participant adds its share of discrete Gaussian noise
    /// before masking, so the server unmasks only a private sum; a privacy ledger as in `dp`.
    SecaggDp,
}

impl DemoMode {
    /// Whether the federation spends a privacy budget (its updates then weigh alike).
    fn is_dp(self) -> bool {
        matches!(self, DemoMode::Dp | DemoMode::SecaggDp)
    }
}

/// Everything the demo can be told.
#[derive(Clone, Debug, clap::Args)]
pub struct DemoConfig {
    /// Aggregation mode.
    #[arg(long, value_enum, default_value_t = DemoMode::Secagg)]
    pub mode: DemoMode,
    /// Participants enrolled (the data are split among them).
    #[arg(long, default_value_t = 20)]
    pub clients: usize,
    /// Rounds to run.
    #[arg(long, default_value_t = 30)]
    pub rounds: usize,
    /// Fraction of participants the server picks per round (DP: the Poisson sampling rate).
    #[arg(long, default_value_t = 0.25)]
    pub fraction: f64,
    /// Data: `digits`, `breast-cancer`, `synthetic:ALPHA,BETA`, `synthetic-iid`, `csv:PATH` or
    /// `idx:IMAGES,LABELS`.
    #[arg(long, default_value = "digits")]
    pub data: String,
    /// Label skew: Dirichlet concentration (`iid` for an IID split).
    #[arg(long, default_value = "0.5")]
    pub alpha: String,
    /// Model: `mlp` (hidden width 256), `mlpN`, or `cnn`.
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Local algorithm: `fedavg`, `fedprox[:MU]` or `scaffold` (the federation then keeps the
    /// server's control variate, and each participant its own in OUT/controls).
    #[arg(long, default_value = "fedavg")]
    pub algorithm: String,
    /// Local epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Local batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Local learning rate (SGD, momentum 0.9).
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Server learning rate.
    #[arg(long, default_value_t = 1.0)]
    pub server_lr: f64,
    /// Server optimizer: `fedavg`, `fedavgm`, `fedadam` or `fedyogi`, optionally `:LR` (Reddi et
    /// al.'s defaults otherwise: lr 1 for the first two, 0.01 for the adaptive ones). Without
    /// it, FedAvg at `--server-lr`.
    #[arg(long)]
    pub server_optimizer: Option<String>,
    /// Probability that a picked participant drops out during the round (SecAgg: at a random
    /// protocol phase; other modes: before sending).
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// DP: noise multiplier (noise std / clip).
    #[arg(long, default_value_t = 1.0)]
    pub noise_multiplier: f64,
    /// DP: L2 clipping bound of an update.
    #[arg(long, default_value_t = 1.0)]
    pub dp_clip: f64,
    /// DP: epsilon budget (rounds past it do not open).
    #[arg(long, default_value_t = 1000.0)]
    pub epsilon_budget: f64,
    /// Record-level DP at each participant: train with DP-SGD at this noise multiplier (Poisson
    /// batches of `--batch` records expected, per-record clip `--record-clip`), each participant
    /// charging its own budget of `--record-epsilon-budget` (delta 1e-5) in OUT/records. Any mode.
    #[arg(long)]
    pub dp_sgd: Option<f64>,
    /// DP-SGD: L2 clip of each record's gradient.
    #[arg(long, default_value_t = 1.0)]
    pub record_clip: f64,
    /// DP-SGD: each participant's record-level epsilon budget; a participant stops taking part
    /// when another local training would pass it.
    #[arg(long, default_value_t = 10.0)]
    pub record_epsilon_budget: f64,
    /// DP: the accountant that enforces the budget, `rdp` or `pld` (central DP only; both
    /// epsilons are reported).
    #[arg(long, default_value = "rdp")]
    pub accountant: fedagg_api::Accountant,
    /// SecAgg with distributed DP: the fewest survivors a round aggregates, which each
    /// participant's noise share is calibrated for (default 3, the service's least). Near the
    /// expected cohort the aggregate carries about the central mechanism's noise; far below it,
    /// far more. A round with fewer survivors fails.
    #[arg(long)]
    pub min_clients: Option<u32>,
    /// SecAgg, Paillier: quantization levels over [-1, 1] per coordinate (more levels, a
    /// smaller rounding error and a wider modulus).
    #[arg(long, default_value_t = 1 << 16, value_parser = clap::value_parser!(u64).range(2..=(1 << 24)))]
    pub levels: u64,
    /// SecAgg with distributed DP: bits per coordinate of the modular sum.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(8..=62))]
    pub bits: u32,
    /// DP: adaptive clipping towards this quantile of the update norms (`--dp-clip` is then
    /// the initial norm); the count's noise is the expected cohort over 20, at least the noise
    /// multiplier.
    #[arg(long)]
    pub adaptive_clip: Option<f64>,
    /// SecAgg: do not trust the server to follow the protocol. Members sign their keys with
    /// identities from a roster that an enrollment authority (made here, apart from the server)
    /// signs, and run the consistency check before unmasking.
    #[arg(long)]
    pub malicious_server: bool,
    /// Paillier: deal a threshold key to this many key holders (safe primes: keygen takes
    /// longer), any `--threshold` of whom decrypt together; none can alone. Needs `--threshold`.
    #[arg(long, requires = "threshold", value_parser = clap::value_parser!(u16).range(2..=i64::from(fedagg_paillier::threshold::MAX_HOLDERS)))]
    pub holders: Option<u16>,
    /// Paillier: key holders needed to decrypt, more than half of `--holders`.
    #[arg(long, requires = "holders")]
    pub threshold: Option<u16>,
    /// Paillier key size in bits.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(i64::from(fedagg_paillier::MIN_SERVICE_KEY_BITS)..=8192))]
    pub key_bits: u32,
    /// Phase deadline in seconds (default 5, Paillier 900: its upload phase includes encryption).
    /// A dropout costs the round one deadline.
    #[arg(long)]
    pub phase_timeout: Option<u64>,
    /// Seed of the data split, initial weights and local training.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder for the server's database, the per-round CSV and the final model.
    #[arg(long, default_value = "fedagg-demo")]
    pub out: PathBuf,
    /// No progress bars (logs and tests).
    #[arg(long)]
    pub quiet: bool,
}

/// One row of the demo's table.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundRow {
    /// Round number.
    pub round: u64,
    /// Contributions aggregated (0 for a failed round).
    pub participants: u32,
    /// Picked participants that did not make it.
    pub dropouts: u32,
    /// Test-set loss and accuracy of the global model after the round.
    pub test: Eval,
    /// Total epsilon spent (DP).
    pub epsilon: Option<f64>,
    /// The largest record-level epsilon a participant has spent (DP-SGD).
    pub record_epsilon: Option<f64>,
    /// Why the round failed, if it did.
    pub failure: Option<String>,
    /// Wall time of the round, seconds.
    pub secs: f64,
    /// Bytes the server received in the round (every submission's body).
    pub bytes: u64,
}

/// What the demo produced.
#[derive(Debug)]
pub struct DemoReport {
    /// One row per round.
    pub rows: Vec<RoundRow>,
    /// Per round, the participants (indices of the data split) that trained, ascending.
    pub cohorts: Vec<Vec<usize>>,
    /// The final global model on the test set.
    pub final_test: Eval,
    /// The saved final model (safetensors).
    pub model_path: PathBuf,
    /// Model parameters.
    pub params: usize,
}

impl DemoConfig {
    fn source(&self) -> Result<DataSource> {
        let d = self.data.as_str();
        Ok(match d {
            "digits" => DataSource::Digits,
            "breast-cancer" => DataSource::BreastCancer,
            "synthetic-iid" => DataSource::SyntheticIid,
            _ => match d.split_once(':') {
                Some(("csv", p)) => DataSource::Csv(p.into()),
                Some(("idx", p)) => {
                    let (i, l) = p.split_once(',').context("idx:IMAGES,LABELS")?;
                    DataSource::Idx {
                        images: i.into(),
                        labels: l.into(),
                    }
                }
                Some(("synthetic", p)) => {
                    let (a, b) = p.split_once(',').context("synthetic:ALPHA,BETA")?;
                    DataSource::Synthetic {
                        alpha: a.parse()?,
                        beta: b.parse()?,
                    }
                }
                _ => bail!("unknown data {d:?}"),
            },
        })
    }

    fn partition(&self) -> Result<Partition> {
        Ok(match self.alpha.as_str() {
            "iid" => Partition::Iid,
            a => Partition::Dirichlet {
                alpha: a.parse().with_context(|| format!("--alpha {a}"))?,
            },
        })
    }

    /// The participants' shared trainer: local settings and, with `--dp-sgd`, fresh
    /// record-level budgets, refused up front if some participant could not afford one training.
    /// The server optimizer `--server-optimizer NAME[:LR]` names.
    fn server_optimizer(&self) -> Result<Option<fedagg_api::ServerOptimizer>> {
        let Some(text) = &self.server_optimizer else {
            return Ok(None);
        };
        let opt = fedagg_api::ServerOptimizer::from_name(text).map_err(|e| anyhow!(e))?;
        opt.check().map_err(|e| anyhow!(e))?;
        Ok(Some(opt))
    }

    fn trainer(&self, net: Net, algorithm: Algorithm, setup: &Setup) -> Result<Trainer> {
        let t = Trainer {
            net,
            local: LocalConfig {
                epochs: self.epochs,
                batch_size: self.batch,
                lr: self.lr,
                momentum: 0.9,
            },
            algorithm,
            weighted: !self.mode.is_dp(),
            records: self.records()?,
        };
        if let Some(r) = &t.records {
            let sizes: Vec<usize> = setup.clients.iter().map(|c| c.len()).collect();
            r.check_affordable(&sizes, &t.local)?;
        }
        Ok(t)
    }

    /// Record-level DP at the participants (`--dp-sgd`), with fresh budgets.
    fn records(&self) -> Result<Option<Arc<Records>>> {
        let Some(z) = self.dp_sgd else {
            return Ok(None);
        };
        let dp = fedagg_train::dpsgd::DpSgd {
            max_grad_norm: self.record_clip,
            noise_multiplier: z,
        };
        Records::open(
            &self.out,
            self.clients,
            dp,
            self.record_epsilon_budget,
            fedagg_api::Accountant::Rdp,
        )
        .map(|r| Some(Arc::new(r)))
    }

    /// Enough participants for an aggregate that hides each of them.
    fn check(&self) -> Result<()> {
        let least = fedagg_api::MIN_CLIENTS;
        if self.clients < least as usize {
            bail!("the demo needs at least {least} participants");
        }
        if self.malicious_server && !matches!(self.mode, DemoMode::Secagg | DemoMode::SecaggDp) {
            bail!("--malicious-server applies to --mode secagg and --mode secagg-dp");
        }
        if self.min_clients.is_some() && self.mode != DemoMode::SecaggDp {
            bail!("--min-clients applies to --mode secagg-dp");
        }
        if !self.accountant.is_rdp() && self.mode != DemoMode::Dp {
            bail!("--accountant pld applies to --mode dp (the distributed DP is accounted by RDP)");
        }
        if let (Some(k), Some(t)) = (self.holders, self.threshold) {
            if self.mode != DemoMode::Paillier {
                bail!("--holders and --threshold apply to --mode paillier");
            }
            fedagg_paillier::threshold::check_threshold(k, t)?;
        }
        if !self.mode.is_dp() && self.cohort() < least {
            bail!(
                "an aggregate needs at least {least} participants per round (from two, each \
                 would learn the other's update): raise --fraction"
            );
        }
        Ok(())
    }

    /// An enrollment authority (made here, apart from the server) to sign the roster of
    /// members' identities: against a malicious server (SecAgg), and always for Paillier, whose
    /// key holders then decrypt only sums of signed contributions they checked.
    fn authority(&self) -> Option<fedagg_client::Identity> {
        (self.malicious_server || self.mode == DemoMode::Paillier)
            .then(fedagg_client::Identity::generate)
    }

    /// Picked per round.
    fn cohort(&self) -> u32 {
        ((self.fraction * self.clients as f64) as u32).clamp(1, self.clients as u32)
    }

    fn spec(
        &self,
        vector_len: usize,
        max_weight: u64,
        authority: Option<&fedagg_client::Identity>,
    ) -> FederationSpec {
        let cohort = self.cohort();
        let (mode, min, timeout) = match self.mode {
            DemoMode::Secagg => (
                Mode::Secagg {
                    clip: 1.0,
                    levels: self.levels,
                    max_weight,
                    dropout_rate: self.dropout.clamp(0.0, 0.5).max(0.05),
                    corrupt_fraction: 0.05,
                    malicious_server: self.malicious_server,
                },
                fedagg_api::MIN_CLIENTS,
                5,
            ),
            DemoMode::Paillier => (
                Mode::Paillier {
                    clip: 1.0,
                    levels: self.levels,
                    max_weight,
                },
                fedagg_api::MIN_CLIENTS,
                900,
            ),
            DemoMode::SecaggDp => (
                Mode::SecaggDp {
                    clip: self.dp_clip,
                    noise_multiplier: self.noise_multiplier,
                    sampling_rate: self.fraction.clamp(1e-6, 1.0),
                    epsilon_budget: self.epsilon_budget,
                    delta: 1e-5,
                    bits: self.bits,
                    dropout_rate: self.dropout.clamp(0.0, 0.5).max(0.05),
                    corrupt_fraction: 0.05,
                    malicious_server: self.malicious_server,
                },
                self.min_clients.unwrap_or(fedagg_api::MIN_CLIENTS),
                5,
            ),
            DemoMode::Dp => (
                Mode::Dp {
                    clip: self.dp_clip,
                    noise_multiplier: self.noise_multiplier,
                    sampling_rate: self.fraction.clamp(1e-6, 1.0),
                    epsilon_budget: self.epsilon_budget,
                    delta: 1e-5,
                    adaptive_clip: self.adaptive_clip.map(|q| fedagg_api::AdaptiveClipping {
                        target_quantile: q,
                        learning_rate: 0.2,
                        count_stddev: (self.fraction * self.clients as f64 / 20.0)
                            .max(self.noise_multiplier),
                    }),
                    accountant: self.accountant,
                },
                fedagg_api::MIN_CLIENTS,
                5,
            ),
        };
        FederationSpec {
            name: "demo".into(),
            vector_len,
            mode,
            min_clients: min,
            max_clients: if self.mode.is_dp() {
                self.clients as u32
            } else {
                cohort.max(min)
            },
            phase_timeout_secs: self.phase_timeout.unwrap_or(timeout),
            server_lr: self.server_lr,
            auto_rounds: false,
            roster_authority: authority.map(fedagg_client::Identity::public_hex),
            scaffold: self.algorithm.parse::<Algorithm>() == Ok(Algorithm::Scaffold),
        }
    }
}

/// Shared by the participant tasks: one network, trained by one participant at a time
/// (libtorch's generator is global, so serialising keeps runs reproducible; the cores are busy
/// inside libtorch anyway).
struct Trainer {
    net: Net,
    local: LocalConfig,
    algorithm: Algorithm,
    /// Whether updates carry their sample count as weight (not in the DP modes, where every
    /// update weighs alike).
    weighted: bool,
    /// Record-level DP (DP-SGD) and the participants' budgets.
    records: Option<Arc<Records>>,
}

/// The service, in-process on loopback with its embedded database, and its admin.
struct Service {
    base: String,
    admin: Admin,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Service {
    async fn start(out: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let data_dir = out.join("server-data");
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut token = [0u8; 32];
        OsRng.fill_bytes(&mut token);
        let admin_token = hex::encode(token);
        let sc = fedagg_server::Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir,
            admin_token: Some(admin_token.clone()),
            max_wait_secs: 30,
            ..Default::default()
        };
        let server = fedagg_server::Server::start(sc)
            .await
            .map_err(|e| anyhow!("starting the server: {e}"))?;
        let base = format!("http://{}", server.addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Service {
            admin: Admin::new(&base, &admin_token)?,
            base,
            stop,
            serving,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.serving.await;
    }

    /// The Paillier key holders, their key generated (or dealt, `holders` of them with
    /// `threshold` needed) and published.
    async fn key_holders(&self, fid: i64, cfg: &DemoConfig) -> Result<Vec<Arc<KeyHolder>>> {
        let (bits, threshold) = (cfg.key_bits, cfg.holders.zip(cfg.threshold));
        let mut clients = Vec::new();
        for _ in 0..threshold.map_or(1, |(k, _)| k) {
            let code = self.admin.enrollment_code(fid, Role::KeyHolder).await?;
            clients.push(Client::enroll(&self.base, &code.bundle).await?.0);
        }
        let holders: Vec<KeyHolder> = match threshold {
            None => {
                let sk = tokio::task::spawn_blocking(move || {
                    let mut rng = ChaCha20Rng::from_rng(OsRng)?;
                    fedagg_paillier::keygen(bits, &mut rng).map_err(anyhow::Error::from)
                })
                .await??;
                let c = clients.into_iter().next().context("no key holder")?;
                vec![KeyHolder::new(c, sk)]
            }
            Some((k, t)) => {
                let (_, shares) = tokio::task::spawn_blocking(move || {
                    let mut rng = ChaCha20Rng::from_rng(OsRng)?;
                    fedagg_paillier::threshold::deal(bits, k, t, &mut rng)
                        .map_err(anyhow::Error::from)
                })
                .await??;
                clients
                    .into_iter()
                    .zip(shares)
                    .map(|(c, share)| KeyHolder::threshold(c, share))
                    .collect()
            }
        };
        if let Some(first) = holders.first() {
            first.publish().await?;
        }
        Ok(holders.into_iter().map(Arc::new).collect())
    }
}

/// As the enrollment authority: sign the roster of every enrolled participant's identity.
async fn sign_roster(admin: &Admin, fid: i64, authority: &fedagg_client::Identity) -> Result<()> {
    let enrolled = admin.roster(fid).await?.enrolled;
    admin
        .put_roster(fid, &authority.sign_roster(fid, enrolled)?)
        .await?;
    Ok(())
}

/// Run the demo federation. Prints the table unless `quiet`.
pub async fn run(cfg: &DemoConfig) -> Result<DemoReport> {
    cfg.check()?;
    let authority = cfg.authority();
    let started = Instant::now();
    let setup = Setup::new(&cfg.source()?, cfg.clients, cfg.partition()?, 0.2, cfg.seed)?;
    let arch: Arch = cfg.model.parse().map_err(|e: String| anyhow!(e))?;
    let algorithm: Algorithm = cfg.algorithm.parse().map_err(|e: String| anyhow!(e))?;
    let net = Net::new(arch, &setup.clients[0], cfg.seed)?;
    let initial = net.params()?;
    let params = initial.len();
    let max_weight = setup.clients.iter().map(|c| c.len() as u64).max();
    let trainer = Arc::new(Mutex::new(cfg.trainer(net, algorithm, &setup)?));

    let service = Service::start(&cfg.out).await?;
    let admin = &service.admin;
    let fed = admin
        .create_federation(&cfg.spec(params, max_weight.unwrap_or(1), authority.as_ref()))
        .await?;
    admin.set_initial_model(fed.id, &initial).await?;
    if let Some(opt) = cfg.server_optimizer()? {
        admin.set_server_optimizer(fed.id, &opt).await?;
    }
    let key_holders = match cfg.mode {
        DemoMode::Paillier => service.key_holders(fed.id, cfg).await?,
        _ => Vec::new(),
    };
    let shared = Shared {
        setup: Arc::new(setup),
        trainer,
        seed: cfg.seed,
        bar: Arc::new(Mutex::new(None::<ProgressBar>)),
        cohorts: Arc::new(Mutex::new(std::collections::BTreeMap::new())),
    };
    let (setup, trainer, bar) = (&shared.setup, &shared.trainer, &shared.bar);
    let participants = spawn_participants(cfg, &service, fed.id, &shared).await?;
    if let Some(authority) = &authority {
        sign_roster(admin, fed.id, authority).await?;
    }
    if !cfg.quiet {
        print_header(cfg, params, &service.base);
    }

    let mut rows = Vec::with_capacity(cfg.rounds);
    let records = lock(trainer).records.clone();
    let mut eval_net = Net::new(arch, &setup.clients[0], cfg.seed)?;
    let mut last_test = eval_net.evaluate(&setup.test);
    for _ in 0..cfg.rounds {
        let round = Round {
            admin,
            fid: fed.id,
            key_holders: &key_holders,
            bar,
            quiet: cfg.quiet,
            records: records.as_deref(),
        };
        match round
            .play(&mut eval_net, &setup.test, &mut last_test)
            .await?
        {
            Ok(row) => rows.push(row),
            Err(e) if rows.is_empty() => bail!("the first round could not open: {e}"),
            Err(e) => {
                if !cfg.quiet {
                    println!("no further round: {e}");
                }
                break;
            }
        }
    }
    for p in &participants {
        p.abort();
    }
    service.stop().await;

    let model_path = cfg.out.join("model.safetensors");
    eval_net.save(&model_path)?;
    let cohorts = write_rounds(&cfg.out, &rows, &shared)?;
    if !cfg.quiet {
        println!(
            "{} after {} rounds in {:.0} s; model saved to {}; per-round figures in {}",
            accuracy_summary(&rows, &last_test),
            rows.len(),
            started.elapsed().as_secs_f64(),
            model_path.display(),
            cfg.out.join("rounds.csv").display()
        );
    }
    Ok(DemoReport {
        rows,
        cohorts,
        final_test: last_test,
        model_path,
        params,
    })
}

/// Write `rounds.csv` (the table) and `cohorts.csv`: per round, the participants (indices of
/// the data split) that trained, ascending, for replaying the run in the simulation
/// (`fedagg_train::sim::replay`). Returns the cohorts.
fn write_rounds(
    out: &std::path::Path,
    rows: &[RoundRow],
    shared: &Shared,
) -> Result<Vec<Vec<usize>>> {
    let csv = std::iter::once(RoundRow::CSV_HEADER.to_string())
        .chain(rows.iter().map(RoundRow::csv))
        .collect::<String>();
    std::fs::write(out.join("rounds.csv"), csv)?;
    let trained = lock(&shared.cohorts);
    let mut text = String::from("round,participants\n");
    let mut cohorts = Vec::with_capacity(rows.len());
    for r in rows {
        let mut c = trained.get(&r.round).cloned().unwrap_or_default();
        c.sort_unstable();
        let ks: Vec<String> = c.iter().map(usize::to_string).collect();
        text.push_str(&format!("{},{}\n", r.round, ks.join(" ")));
        cohorts.push(c);
    }
    std::fs::write(out.join("cohorts.csv"), text)?;
    Ok(cohorts)
}

/// The last line's accuracy: the final round's swings by several points from round to round
/// (a round's cohort is a sample), so it comes with the best round's and the mean of the last
/// five.
pub fn accuracy_summary(rows: &[RoundRow], last: &Eval) -> String {
    let pct = |a: f64| format!("{:.2}%", a * 100.0);
    let mut line = format!(
        "final test accuracy {} (loss {:.4})",
        pct(last.accuracy),
        last.loss
    );
    let done: Vec<&RoundRow> = rows.iter().filter(|r| r.failure.is_none()).collect();
    if let Some(best) = done
        .iter()
        .max_by(|a, b| a.test.accuracy.total_cmp(&b.test.accuracy))
    {
        let tail = &done[done.len().saturating_sub(5)..];
        let mean = tail.iter().map(|r| r.test.accuracy).sum::<f64>() / tail.len() as f64;
        line.push_str(&format!(
            "; best {} at round {}; mean of the last {} rounds {}",
            pct(best.test.accuracy),
            best.round,
            tail.len(),
            pct(mean)
        ));
    }
    line
}

/// One round as the coordinator runs it: open, wait for the end (and the key holder's
/// decryption), evaluate the new model.
struct Round<'a> {
    admin: &'a Admin,
    fid: i64,
    key_holders: &'a [Arc<KeyHolder>],
    bar: &'a Mutex<Option<ProgressBar>>,
    quiet: bool,
    records: Option<&'a Records>,
}

impl Round<'_> {
    /// The round's row, or why no round opened (for example, the budget is spent).
    async fn play(
        &self,
        eval_net: &mut Net,
        test: &Dataset,
        last_test: &mut Eval,
    ) -> Result<Result<RoundRow, fedagg_client::Error>> {
        let t0 = Instant::now();
        let info = match self.admin.open_round(self.fid).await {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        if !self.quiet {
            *lock(self.bar) = Some(round_bar(&info));
        }
        let decrypt: Vec<_> = self
            .key_holders
            .iter()
            .map(|kh| {
                let (kh, r) = (kh.clone(), info.round);
                tokio::spawn(async move { kh.decrypt_round(r, Duration::from_secs(3600)).await })
            })
            .collect();
        let end = self
            .admin
            .wait_round(self.fid, info.round, Duration::from_secs(3600))
            .await?;
        for d in decrypt {
            // A key holder's outcome mirrors the round's, which `end` already has.
            let _ = d.await;
        }
        if let Some(b) = lock(self.bar).take() {
            b.finish_and_clear();
        }
        let rec = end.record.clone().context("ended round without a record")?;
        let completed = end.status == RoundStatus::Completed;
        if completed {
            let version = rec
                .model_version
                .context("completed round without a model version")?;
            eval_net.set_params(&self.admin.model(self.fid, version).await?)?;
            *last_test = eval_net.evaluate(test);
        }
        let row = RoundRow {
            round: info.round,
            participants: if completed { rec.participants } else { 0 },
            dropouts: rec.dropouts,
            test: *last_test,
            epsilon: rec.epsilon_spent,
            record_epsilon: self.records.map(|r| r.max_epsilon()),
            failure: rec.failure.clone(),
            secs: t0.elapsed().as_secs_f64(),
            bytes: rec.bytes_received,
        };
        if !self.quiet {
            println!("{}", row.line());
        }
        Ok(Ok(row))
    }
}

/// Enroll every participant through the REST API and start its task, with the rounds it will
/// drop out of (and where) drawn from the seed.
async fn spawn_participants(
    cfg: &DemoConfig,
    service: &Service,
    fid: i64,
    shared: &Shared,
) -> Result<Vec<tokio::task::JoinHandle<Result<()>>>> {
    let scaffold = cfg.algorithm.parse::<Algorithm>() == Ok(Algorithm::Scaffold);
    let params = lock(&shared.trainer).net.num_params();
    // Each run is a new federation (in a fresh database, with the same id): a previous run's
    // c_i would be another federation's, so every participant starts from zero.
    let _ = std::fs::remove_dir_all(cfg.out.join("controls"));
    if scaffold {
        std::fs::create_dir_all(cfg.out.join("controls"))?;
    }
    let mut drops = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0xD0D0);
    let mut participants = Vec::with_capacity(cfg.clients);
    for k in 0..cfg.clients {
        let code = service
            .admin
            .enrollment_code(fid, Role::Participant)
            .await?;
        let (client, _) = Client::enroll(&service.base, &code.bundle).await?;
        let plan: Vec<Option<Vanish>> = (0..=cfg.rounds)
            .map(|_| {
                let u = drops.next_u64() as f64 / u64::MAX as f64;
                (u < cfg.dropout).then(|| SECAGG_VANISH_POINTS[(drops.next_u32() % 4) as usize])
            })
            .collect();
        let controls = scaffold.then(|| {
            let path = cfg.out.join("controls").join(format!("participant-{k}"));
            fedagg_client::LocalControls::new(path, fid, params)
        });
        participants.push(tokio::spawn(participant(
            k,
            client,
            shared.clone(),
            plan,
            controls,
        )));
    }
    Ok(participants)
}

fn print_header(cfg: &DemoConfig, params: usize, base: &str) {
    let picked = if cfg.mode.is_dp() {
        format!("~{:.1}", cfg.fraction * cfg.clients as f64)
    } else {
        cfg.cohort().to_string()
    };
    println!(
        "fedagg demo: {} participants, {:?} mode, {} rounds, {picked} picked per round, model {} ({params} parameters), server {base}",
        cfg.clients, cfg.mode, cfg.rounds, cfg.model,
    );
    println!(
        "{:>5}  {:>8}  {:>7}  {:>8}  {:>6}  {:>8}  {:>8}  {:>6}",
        "round", "accuracy", "loss", "clients", "drops", "epsilon", "rec eps", "secs"
    );
}

fn round_bar(info: &fedagg_api::RoundInfo) -> ProgressBar {
    let b = ProgressBar::new(u64::from(info.cohort));
    b.set_style(
        ProgressStyle::with_template("round {prefix:>3} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_prefix(info.round.to_string());
    b
}

impl RoundRow {
    const CSV_HEADER: &'static str =
        "round,participants,dropouts,test_loss,test_accuracy,epsilon,record_epsilon,secs,bytes,failure\n";

    /// The row of the printed table.
    fn line(&self) -> String {
        format!(
            "{:>5}  {:>7.2}%  {:>7.4}  {:>8}  {:>6}  {:>8}  {:>8}  {:>6.1}{}",
            self.round,
            self.test.accuracy * 100.0,
            self.test.loss,
            self.participants,
            self.dropouts,
            self.epsilon.map_or("-".into(), |e| format!("{e:.3}")),
            self.record_epsilon
                .map_or("-".into(), |e| format!("{e:.3}")),
            self.secs,
            self.failure
                .as_ref()
                .map_or(String::new(), |f| format!("  failed: {f}"))
        )
    }

    /// The row of `rounds.csv`.
    fn csv(&self) -> String {
        format!(
            "{},{},{},{:.5},{:.5},{},{},{:.3},{},{}\n",
            self.round,
            self.participants,
            self.dropouts,
            self.test.loss,
            self.test.accuracy,
            self.epsilon.map_or(String::new(), |e| format!("{e:.5}")),
            self.record_epsilon
                .map_or(String::new(), |e| format!("{e:.5}")),
            self.secs,
            self.bytes,
            self.failure.as_deref().unwrap_or("").replace(',', ";")
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every participant task shares.
#[derive(Clone)]
struct Shared {
    setup: Arc<Setup>,
    trainer: Arc<Mutex<Trainer>>,
    seed: u64,
    bar: Arc<Mutex<Option<ProgressBar>>>,
    /// Per round, the participants that trained.
    cohorts: Arc<Mutex<std::collections::BTreeMap<u64, Vec<usize>>>>,
}

/// One participant: wait for a round it is picked for, train from the round's base model (and,
/// under SCAFFOLD, the server's control variate of the same version and its own from
/// `controls`), contribute, repeat.
async fn participant(
    k: usize,
    client: Client,
    shared: Shared,
    drop_plan: Vec<Option<Vanish>>,
    controls: Option<fedagg_client::LocalControls>,
) -> Result<()> {
    let mut after = 0;
    loop {
        let Some(info) = client.next_round(after, Duration::from_secs(30)).await? else {
            continue;
        };
        after = info.round;
        if info.status != RoundStatus::Open || info.member.is_none() || info.submitted {
            continue;
        }
        let round = info.round;
        let drop = drop_plan.get(round as usize).copied().flatten();
        let (version, global) = client.model().await?;
        if version != info.base_model_version {
            // The round ended (and another began) while this participant was catching up.
            continue;
        }
        let scaffold = match &controls {
            Some(file) => Some((client.server_controls(version).await?, file.load()?)),
            None => None,
        };
        let weighted = lock(&shared.trainer).weighted;
        let Some((update, next_ci)) = train(&shared, k, round, global, scaffold).await? else {
            // A spent record-level budget ends this participant's part (the table's rounds
            // then count fewer clients).
            return Ok(());
        };
        lock(&shared.cohorts).entry(round).or_default().push(k);
        let progress: OnProgress = {
            let bar = shared.bar.clone();
            Arc::new(move |p| {
                if let Some(b) = lock(&bar).as_ref() {
                    b.set_message(format!("participant {k}: {}", p.step));
                }
            })
        };
        // Outside SecAgg a dropout simply never sends.
        let vanish = drop.map(|v| {
            if info.secagg.is_some() {
                v
            } else {
                Vanish::BeforeSending
            }
        });
        let opts = Contribute {
            progress: Some(progress),
            timeout: Some(Duration::from_secs(3600)),
            control_delta: update.control_delta.clone(),
        };
        // An error is a failed round: wait for the next round.
        let weight = if weighted { update.samples as u64 } else { 1 };
        let contributed = dropout::contribute(&client, &update.delta, weight, opts, vanish).await;
        if let Ok(Some(outcome)) = &contributed {
            if let Some(b) = lock(&shared.bar).as_ref() {
                b.inc(1);
            }
            // c_i moves only with a round that took this participant's delta into c.
            if let (Some(file), Some(ci), RoundStatus::Completed) =
                (&controls, &next_ci, outcome.status)
            {
                file.save(ci)?;
            }
        }
    }
}

/// Participant `k`'s local training in `round` from `global` (SCAFFOLD: with the server's `c`
/// and its `c_i`), off the async threads: the update and, under SCAFFOLD, `c_i+`. `None` when
/// its record-level budget cannot cover the training.
async fn train(
    shared: &Shared,
    k: usize,
    round: u64,
    global: Vec<f32>,
    scaffold: Option<(Vec<f32>, Vec<f32>)>,
) -> Result<Option<(fedagg_train::local::LocalUpdate, Option<Vec<f32>>)>> {
    let (records, local) = {
        let t = lock(&shared.trainer);
        (t.records.clone(), t.local)
    };
    if let Some(r) = &records {
        // Charged, durably, before training.
        if r.charge(k, shared.setup.clients[k].len(), &local).is_err() {
            return Ok(None);
        }
    }
    let (t, data, seed) = (shared.trainer.clone(), shared.setup.clone(), shared.seed);
    tokio::task::spawn_blocking(move || {
        let mut t = lock(&t);
        let algorithm = t.algorithm;
        let seed = client_seed(seed, round as usize, k);
        let (c, mut ci) = scaffold.unzip();
        let controls = c
            .as_ref()
            .zip(ci.as_mut())
            .map(|(server, client)| Controls { server, client });
        let update = match &records {
            None => t
                .net
                .train_local(&global, &data.clients[k], &local, algorithm, controls, seed),
            Some(r) => {
                let mut rng = ChaCha20Rng::from_rng(OsRng).map_err(anyhow::Error::from)?;
                t.net.train_local_dp(
                    &global,
                    &data.clients[k],
                    &local,
                    algorithm,
                    controls,
                    r.dp(),
                    seed,
                    &mut rng,
                )
            }
        }?;
        Ok(Some((update, ci)))
    })
    .await?
}
