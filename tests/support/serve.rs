//! Start `fedagg serve` as a child process and read the address it bound. Shared by
//! `tests/service.rs` and `benches/service.rs` (included with `#[path]`).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `fedagg serve`; killed on drop.
pub struct Served {
    /// The process.
    pub child: Child,
    /// `http://address:port` it listens on.
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawn the server on `listen` with data in `dir`, the admin token `admin` and extra
/// environment; returns once it printed its address.
pub fn spawn(dir: &Path, listen: &str, admin: &str, env: &[(&str, String)]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fedagg"))
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        .env("FEDAGG_ADMIN_TOKEN", admin)
        .env("FEDAGG_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning fedagg serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the server's first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Served { child, base }
}
