//! A federation's spec from a file (TOML or JSON, the API's `FederationSpec` fields) and flags:
//! what `fedagg admin federations create` sends. Flags override the file. Quantization and the
//! SecAgg threat model get defaults; the privacy settings of the DP modes (noise multiplier,
//! sampling rate, epsilon budget) never do: the operator must choose them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use fedagg_api::FederationSpec;
use serde_json::{json, Map, Value};

/// The mode, as the API spells it.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeName {
    /// SecAgg (Bonawitz et al.), SecAgg+ graphs.
    Secagg,
    /// SecAgg with distributed DP (discrete Gaussian noise added by the participants).
    SecaggDp,
    /// Packed Paillier, decrypted by the key holder.
    Paillier,
    /// LWE (tfhe), decrypted by the key holder.
    Lattice,
    /// Plaintext with central DP.
    Dp,
}

impl ModeName {
    fn api(self) -> &'static str {
        match self {
            ModeName::Secagg => "secagg",
            ModeName::SecaggDp => "secagg_dp",
            ModeName::Paillier => "paillier",
            ModeName::Lattice => "lattice",
            ModeName::Dp => "dp",
        }
    }
}

/// Flags of `fedagg admin federations create`.
#[derive(Args)]
pub struct SpecArgs {
    /// A spec file, TOML (or JSON when it ends in .json), with the API's fields (`name`,
    /// `vector_len`, `mode = { kind = "secagg", ... }`, ...). Flags override its values.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Name.
    #[arg(long)]
    name: Option<String>,
    /// Aggregation mode.
    #[arg(long, value_enum)]
    mode: Option<ModeName>,
    /// Model parameters (the update's length).
    #[arg(long)]
    vector_len: Option<u64>,
    /// Fewest contributions a round aggregates (default 3).
    #[arg(long)]
    min_clients: Option<u32>,
    /// Largest cohort of a round (default 100).
    #[arg(long)]
    max_clients: Option<u32>,
    /// Each phase's deadline, seconds (default 300).
    #[arg(long)]
    phase_timeout: Option<u64>,
    /// Server learning rate.
    #[arg(long)]
    server_lr: Option<f64>,
    /// Open the next round when one ends.
    #[arg(long)]
    auto_rounds: bool,
    /// The enrollment authority's public key (`fedagg authority keygen`).
    #[arg(long)]
    roster_authority: Option<String>,
    /// Clipping bound (L-infinity for quantization, L2 in the DP modes; default 1).
    #[arg(long)]
    clip: Option<f64>,
    /// Quantization levels (default 65536).
    #[arg(long)]
    levels: Option<u64>,
    /// Largest weight of one update (default 1000).
    #[arg(long)]
    max_weight: Option<u64>,
    /// SecAgg: the fraction of a cohort that may drop out (default 0.1).
    #[arg(long)]
    dropout_rate: Option<f64>,
    /// SecAgg: the fraction of members that may collude with the server (default 0.05).
    #[arg(long)]
    corrupt_fraction: Option<f64>,
    /// SecAgg: defend against an actively malicious server (signatures, consistency check).
    #[arg(long)]
    malicious_server: bool,
    /// DP: noise standard deviation over the clip (required in the DP modes).
    #[arg(long)]
    noise_multiplier: Option<f64>,
    /// DP: the chance each participant is in a round (required in the DP modes).
    #[arg(long)]
    sampling_rate: Option<f64>,
    /// DP: the epsilon the federation may spend in all (required in the DP modes).
    #[arg(long)]
    epsilon_budget: Option<f64>,
    /// DP: delta (default 1e-5).
    #[arg(long)]
    delta: Option<f64>,
    /// Distributed DP: bits per coordinate (default 16).
    #[arg(long)]
    bits: Option<u32>,
    /// Central DP: `rdp` or `pld`.
    #[arg(long)]
    accountant: Option<String>,
}

/// Set `key` when a flag gave it.
fn set(obj: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        obj.insert(key.into(), v);
    }
}

/// Set `key` when neither the file nor a flag did.
fn default(obj: &mut Map<String, Value>, key: &str, v: Value) {
    obj.entry(key).or_insert(v);
}

impl SpecArgs {
    /// The spec: the file's values, the flags over them, then the defaults.
    pub fn spec(&self) -> Result<FederationSpec> {
        let mut root = match &self.spec {
            Some(path) => read_spec_file(path)?,
            None => Map::new(),
        };
        set(&mut root, "name", self.name.clone().map(Value::from));
        set(&mut root, "vector_len", self.vector_len.map(Value::from));
        set(&mut root, "min_clients", self.min_clients.map(Value::from));
        set(&mut root, "max_clients", self.max_clients.map(Value::from));
        set(
            &mut root,
            "phase_timeout_secs",
            self.phase_timeout.map(Value::from),
        );
        set(&mut root, "server_lr", self.server_lr.map(Value::from));
        set(
            &mut root,
            "roster_authority",
            self.roster_authority.clone().map(Value::from),
        );
        if self.auto_rounds {
            root.insert("auto_rounds".into(), true.into());
        }
        default(&mut root, "min_clients", fedagg_api::MIN_CLIENTS.into());
        default(&mut root, "max_clients", 100.into());
        default(&mut root, "phase_timeout_secs", 300.into());
        let mode = self.mode_object(root.remove("mode"))?;
        root.insert("mode".into(), Value::Object(mode));
        serde_json::from_value(Value::Object(root)).context("the federation's spec")
    }

    fn mode_object(&self, from_file: Option<Value>) -> Result<Map<String, Value>> {
        let mut mode = match from_file {
            Some(Value::Object(m)) => m,
            Some(_) => anyhow::bail!("the spec's `mode` must be a table with a `kind`"),
            None => Map::new(),
        };
        if let Some(m) = self.mode {
            if mode.get("kind").and_then(Value::as_str) != Some(m.api()) {
                mode = Map::new();
            }
            mode.insert("kind".into(), m.api().into());
        }
        let kind = mode
            .get("kind")
            .and_then(Value::as_str)
            .context("no mode: pass --mode (or `mode = { kind = ... }` in the spec file)")?
            .to_string();
        set(&mut mode, "clip", self.clip.map(Value::from));
        set(&mut mode, "levels", self.levels.map(Value::from));
        set(&mut mode, "max_weight", self.max_weight.map(Value::from));
        set(
            &mut mode,
            "dropout_rate",
            self.dropout_rate.map(Value::from),
        );
        set(
            &mut mode,
            "corrupt_fraction",
            self.corrupt_fraction.map(Value::from),
        );
        set(
            &mut mode,
            "noise_multiplier",
            self.noise_multiplier.map(Value::from),
        );
        set(
            &mut mode,
            "sampling_rate",
            self.sampling_rate.map(Value::from),
        );
        set(
            &mut mode,
            "epsilon_budget",
            self.epsilon_budget.map(Value::from),
        );
        set(&mut mode, "delta", self.delta.map(Value::from));
        set(&mut mode, "bits", self.bits.map(Value::from));
        set(
            &mut mode,
            "accountant",
            self.accountant.clone().map(Value::from),
        );
        if self.malicious_server {
            mode.insert("malicious_server".into(), true.into());
        }
        default(&mut mode, "clip", json!(1.0));
        if matches!(kind.as_str(), "secagg" | "paillier" | "lattice") {
            default(&mut mode, "levels", json!(1 << 16));
            default(&mut mode, "max_weight", json!(1000));
        }
        if matches!(kind.as_str(), "secagg" | "secagg_dp") {
            default(&mut mode, "dropout_rate", json!(0.1));
            default(&mut mode, "corrupt_fraction", json!(0.05));
        }
        if matches!(kind.as_str(), "dp" | "secagg_dp") {
            default(&mut mode, "delta", json!(1e-5));
        }
        if kind == "secagg_dp" {
            default(&mut mode, "bits", json!(16));
        }
        Ok(mode)
    }
}

fn read_spec_file(path: &std::path::Path) -> Result<Map<String, Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => anyhow::bail!("{}: a spec is a table of fields", path.display()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;
    use fedagg_api::Mode;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SpecArgs,
    }

    fn spec(line: &str) -> Result<FederationSpec> {
        Cli::parse_from(std::iter::once("x").chain(line.split_whitespace()))
            .args
            .spec()
    }

    #[test]
    fn flags_alone_make_a_spec_with_defaults_and_dp_needs_its_privacy_settings() {
        let s = spec("--name m --mode paillier --vector-len 10 --max-clients 50").unwrap();
        assert_eq!(
            (s.name.as_str(), s.vector_len, s.min_clients, s.max_clients),
            ("m", 10, 3, 50)
        );
        assert_eq!(
            s.mode,
            Mode::Paillier {
                clip: 1.0,
                levels: 1 << 16,
                max_weight: 1000
            }
        );
        let e = spec("--name m --mode dp --vector-len 10").unwrap_err();
        assert!(format!("{e:#}").contains("noise_multiplier"), "{e:#}");
        let s = spec(
            "--name m --mode dp --vector-len 10 --noise-multiplier 1.1 --sampling-rate 0.1 \
             --epsilon-budget 3 --accountant pld",
        )
        .unwrap();
        assert!(matches!(s.mode, Mode::Dp { delta, .. } if delta == 1e-5));
        assert!(spec("--name m --vector-len 10").is_err());
    }

    #[test]
    fn flags_override_a_toml_file_and_another_mode_replaces_its_table() {
        let dir = std::env::temp_dir().join(format!("fedagg-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fed.toml");
        std::fs::write(
            &path,
            "name = \"hospitals\"\nvector_len = 100\nmin_clients = 5\n\n[mode]\nkind = \"secagg\"\nclip = 2.0\ndropout_rate = 0.3\n",
        )
        .unwrap();
        let p = path.display();
        let s = spec(&format!("--spec {p} --min-clients 8")).unwrap();
        assert_eq!((s.name.as_str(), s.min_clients), ("hospitals", 8));
        assert!(matches!(
            s.mode,
            Mode::Secagg { clip, dropout_rate, levels: 65536, .. } if clip == 2.0 && dropout_rate == 0.3
        ));
        let s = spec(&format!("--spec {p} --mode paillier")).unwrap();
        assert!(matches!(s.mode, Mode::Paillier { clip, .. } if clip == 1.0));
        std::fs::write(dir.join("bad.toml"), "name = [").unwrap();
        assert!(spec(&format!("--spec {}", dir.join("bad.toml").display())).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
