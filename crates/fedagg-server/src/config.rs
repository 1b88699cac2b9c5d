//! Configuration: defaults, then a TOML file, then `FEDAGG_*` environment variables, then
//! command-line flags (applied by the CLI). `fedagg serve` with nothing set listens on
//! 127.0.0.1:8470 and keeps its SQLite database in `./fedagg-data`; a `postgres://` database URL
//! selects PostgreSQL instead (required for several replicas).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Service configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded database.
    pub data_dir: PathBuf,
    /// Database file (default `<data_dir>/fedagg.db`).
    pub database: Option<PathBuf>,
    /// Database URL: `postgres://user:password@host:port/dbname` (or `postgresql://`) selects
    /// PostgreSQL; `sqlite:<path>` a SQLite file. Overrides `database` when set.
    pub database_url: Option<String>,
    /// PEM file of the certificate authorities to trust for PostgreSQL's certificate when the
    /// URL says `sslmode=require` (default: the system's roots).
    pub database_ca_file: Option<PathBuf>,
    /// Admin bearer token. When unset and none is stored, one is generated and printed once.
    pub admin_token: Option<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest long-poll wait a client may ask for, in seconds.
    pub max_wait_secs: u64,
    /// Submission bodies read into memory at once (peak memory is about this times the largest
    /// body, independent of the number of clients).
    pub max_concurrent_uploads: usize,
    /// Bearer token a metrics scraper presents on `/metrics` (the admin token works too). Without
    /// it only the admin reads the metrics, which include each DP federation's epsilon.
    pub metrics_token: Option<String>,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request body, plus one second per MiB it declares.
    pub body_timeout_secs: u64,
    /// Connections served at once; one more gets 503 with `Retry-After`.
    pub max_connections: usize,
    /// PEM certificate chain: with `tls_key`, the server speaks HTTPS itself (reloaded on
    /// SIGHUP).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Threads for the aggregation's heavy loops (SecAgg's unmasking); 0, the default, uses
    /// every core. The aggregate is the same whatever the number.
    pub threads: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("database_ca_file", &self.database_ca_file)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_wait_secs", &self.max_wait_secs)
            .field("max_concurrent_uploads", &self.max_concurrent_uploads)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            data_dir: PathBuf::from("fedagg-data"),
            database: None,
            database_url: None,
            database_ca_file: None,
            admin_token: None,
            max_body_bytes: 1 << 30,
            max_wait_secs: 60,
            max_concurrent_uploads: 8,
            metrics_token: None,
            header_timeout_secs: 30,
            body_timeout_secs: 60,
            max_connections: 4096,
            tls_cert: None,
            tls_key: None,
            threads: 0,
        }
    }
}

impl Config {
    /// Defaults, overlaid with `file` (TOML) when given, then with the environment as read by
    /// `env` (`FEDAGG_LISTEN`, `FEDAGG_DATA_DIR`, `FEDAGG_DATABASE`, `FEDAGG_DATABASE_URL`,
    /// `FEDAGG_DATABASE_CA_FILE`,
    /// `FEDAGG_ADMIN_TOKEN`, `FEDAGG_METRICS_TOKEN`, `FEDAGG_HEADER_TIMEOUT_SECS`,
    /// `FEDAGG_BODY_TIMEOUT_SECS`, `FEDAGG_MAX_CONNECTIONS`, `FEDAGG_TLS_CERT`, `FEDAGG_TLS_KEY`,
    /// `FEDAGG_MAX_BODY_BYTES`, `FEDAGG_MAX_WAIT_SECS`, `FEDAGG_MAX_CONCURRENT_UPLOADS`,
    /// `FEDAGG_THREADS`).
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut c = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("reading {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            None => Config::default(),
        };
        if let Some(v) = env("FEDAGG_LISTEN") {
            c.listen = v.parse().map_err(|e| format!("FEDAGG_LISTEN={v:?}: {e}"))?;
        }
        if let Some(v) = env("FEDAGG_DATA_DIR") {
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("FEDAGG_DATABASE") {
            c.database = Some(PathBuf::from(v));
        }
        if let Some(v) = env("FEDAGG_DATABASE_URL") {
            c.database_url = Some(v);
        }
        if let Some(v) = env("FEDAGG_DATABASE_CA_FILE") {
            c.database_ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("FEDAGG_ADMIN_TOKEN") {
            c.admin_token = Some(v);
        }
        if let Some(v) = env("FEDAGG_METRICS_TOKEN") {
            c.metrics_token = Some(v);
        }
        for (name, field) in [
            ("FEDAGG_HEADER_TIMEOUT_SECS", &mut c.header_timeout_secs),
            ("FEDAGG_BODY_TIMEOUT_SECS", &mut c.body_timeout_secs),
        ] {
            if let Some(v) = env(name) {
                *field = v.parse().map_err(|e| format!("{name}={v:?}: {e}"))?;
            }
        }
        if let Some(v) = env("FEDAGG_TLS_CERT") {
            c.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = env("FEDAGG_TLS_KEY") {
            c.tls_key = Some(PathBuf::from(v));
        }
        if let Some(v) = env("FEDAGG_MAX_CONNECTIONS") {
            c.max_connections = v
                .parse()
                .map_err(|e| format!("FEDAGG_MAX_CONNECTIONS={v:?}: {e}"))?;
        }
        if let Some(v) = env("FEDAGG_MAX_BODY_BYTES") {
            c.max_body_bytes = v
                .parse()
                .map_err(|e| format!("FEDAGG_MAX_BODY_BYTES={v:?}: {e}"))?;
        }
        if let Some(v) = env("FEDAGG_MAX_WAIT_SECS") {
            c.max_wait_secs = v
                .parse()
                .map_err(|e| format!("FEDAGG_MAX_WAIT_SECS={v:?}: {e}"))?;
        }
        if let Some(v) = env("FEDAGG_THREADS") {
            c.threads = v
                .parse()
                .map_err(|e| format!("FEDAGG_THREADS={v:?}: {e}"))?;
        }
        if let Some(v) = env("FEDAGG_MAX_CONCURRENT_UPLOADS") {
            c.max_concurrent_uploads = v
                .parse()
                .map_err(|e| format!("FEDAGG_MAX_CONCURRENT_UPLOADS={v:?}: {e}"))?;
        }
        c.validate()?;
        Ok(c)
    }

    /// The threads `threads` means: every core for 0.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Refuse settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.threads > 1024 {
            return Err(format!("threads {} must be at most 1024", self.threads));
        }
        if self.max_body_bytes < 1024 {
            return Err(format!(
                "max_body_bytes {} is below 1024",
                self.max_body_bytes
            ));
        }
        for (name, v) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
        ] {
            if v == 0 || v > 3600 {
                return Err(format!("{name} {v} must lie in 1..=3600"));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls_cert and tls_key go together".into());
        }
        if self.max_connections < 16 || self.max_connections > 1 << 20 {
            return Err(format!(
                "max_connections {} must lie in 16..=1048576",
                self.max_connections
            ));
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("metrics_token must be at least 16 characters".into());
        }
        if self.max_wait_secs == 0 || self.max_wait_secs > 3600 {
            return Err(format!(
                "max_wait_secs {} must lie in 1..=3600",
                self.max_wait_secs
            ));
        }
        if self.max_concurrent_uploads == 0 || self.max_concurrent_uploads > 4096 {
            return Err(format!(
                "max_concurrent_uploads {} must lie in 1..=4096",
                self.max_concurrent_uploads
            ));
        }
        if let Some(t) = &self.admin_token {
            if t.len() < 16 {
                return Err("admin_token must be at least 16 characters".into());
            }
        }
        self.storage()?;
        Ok(())
    }

    /// The database file (when SQLite is used).
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.data_dir.join("fedagg.db"))
    }

    /// Which store the settings select.
    pub fn storage(&self) -> Result<Storage, String> {
        let Some(url) = self.database_url.as_deref() else {
            return Ok(Storage::Sqlite(self.database_path()));
        };
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("database_url sqlite: needs a file path".into());
            }
            return Ok(Storage::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Storage::Postgres(url.to_string()));
        }
        Err(format!(
            "database_url {} must start with postgres://, postgresql:// or sqlite:",
            redact_url(url)
        ))
    }
}

/// Where the service keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file (one server process).
    Sqlite(PathBuf),
    /// A PostgreSQL URL (one or several server processes).
    Postgres(String),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Storage::Postgres(u) => write!(f, "Postgres({})", redact_url(u)),
        }
    }
}

/// A database URL with its password replaced, for logs and errors: the password of
/// `scheme://user:password@host`, and every `password=` parameter (in a URL's query string or
/// in the `key=value` form).
pub fn redact_url(url: &str) -> String {
    let url = redact_userinfo(url);
    let mut out = String::with_capacity(url.len());
    let mut rest = url.as_str();
    while let Some(i) = rest.find("password=") {
        let start = i + "password=".len();
        out.push_str(&rest[..start]);
        out.push_str("<redacted>");
        let tail = &rest[start..];
        let end = match tail.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(tail.len(), |j| j + 2),
            None => tail.find(['&', ' ', '#']).unwrap_or(tail.len()),
        };
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(x) => x,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let c = Config::load(None, |_| None).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8470");
        let dir = std::env::temp_dir().join(format!("fedagg-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9000\"\nmax_wait_secs = 5\n").unwrap();
        let c = Config::load(Some(&f), |k| {
            (k == "FEDAGG_MAX_WAIT_SECS").then(|| "7".to_string())
        })
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_wait_secs, 7);
        std::fs::write(&f, "lisen = 1\n").unwrap();
        assert!(Config::load(Some(&f), |_| None).is_err());
        assert!(Config::load(None, |k| (k == "FEDAGG_LISTEN").then(|| "x".into())).is_err());
        // The database URL picks the store; a password never reaches Debug output.
        let url = "postgres://fedagg:s3cret@127.0.0.1:5432/fedagg";
        let c = Config::load(None, |k| (k == "FEDAGG_DATABASE_URL").then(|| url.into())).unwrap();
        assert_eq!(c.storage().unwrap(), Storage::Postgres(url.into()));
        assert!(!format!("{c:?} {:?}", c.storage().unwrap()).contains("s3cret"));
        let c = Config::load(None, |k| {
            (k == "FEDAGG_DATABASE_URL").then(|| "sqlite:///var/lib/f.db".into())
        })
        .unwrap();
        assert_eq!(
            c.storage().unwrap(),
            Storage::Sqlite("/var/lib/f.db".into())
        );
        let err = Config::load(None, |k| {
            (k == "FEDAGG_DATABASE_URL").then(|| "mysql://u:pw@h/db".into())
        })
        .unwrap_err();
        assert!(err.contains("postgres://") && !err.contains("pw@"), "{err}");
        // Threads: every core by default, a number when given, bounded.
        let c = Config::load(None, |_| None).unwrap();
        assert!(c.threads == 0 && c.worker_threads() >= 1);
        let c = Config::load(None, |k| (k == "FEDAGG_THREADS").then(|| "3".into())).unwrap();
        assert_eq!(c.worker_threads(), 3);
        assert!(Config::load(None, |k| (k == "FEDAGG_THREADS").then(|| "5000".into())).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        for (url, secret) in [
            ("postgres://u:s3cret@h/db", "s3cret"),
            (
                "postgres://u@h/db?password=s3cret&sslmode=require",
                "s3cret",
            ),
            (
                "postgresql://h/db?sslmode=require&password=s3cret",
                "s3cret",
            ),
            ("host=h user=u password=s3cret dbname=db", "s3cret"),
            ("host=h password='s3 cret' dbname=db", "s3 cret"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            let storage = Storage::Postgres(url.into());
            assert!(!format!("{storage:?}").contains(secret));
        }
        assert!(redact_url("postgres://u@h/db?password=x&sslmode=require")
            .ends_with("&sslmode=require"));
    }
}
