//! The operators' programs end to end: `fedagg admin` and `fedagg key-holder` (and `fedagg
//! keygen`, `fedagg authority`) run as child processes against a child `fedagg serve`, and drive
//! a whole Paillier federation with verified decryption. Only the participants are SDK clients
//! of the test's own; nothing of the test stands between the operator's programs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// `fedagg ARGS` with the server and admin token in the environment; its stdout. Fails the test
/// when the command fails.
fn fedagg(base: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fedagg"))
        .args(args)
        .env("FEDAGG_URL", base)
        .env("FEDAGG_ADMIN_TOKEN", ADMIN)
        .env("XDG_CONFIG_HOME", "/nonexistent/so-no-config-file-is-read")
        .stderr(Stdio::inherit())
        .output()
        .expect("running fedagg");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "fedagg {args:?} failed: {stdout}");
    stdout
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The running key holder, its log in a file.
pub(super) struct KeyHolderProcess {
    pub(super) child: Child,
    pub(super) log: PathBuf,
}

impl Drop for KeyHolderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fedagg key-holder` with the key `dir/keys/paillier.key` and credentials
/// `dir/key-holder.json`, and `extra` arguments.
pub(super) fn spawn_key_holder(dir: &Path, extra: &[&str]) -> KeyHolderProcess {
    let log = dir.join("key-holder.log");
    let err = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fedagg"))
        .arg("key-holder")
        .arg("--key")
        .arg(dir.join("keys/paillier.key"))
        .arg("--credentials")
        .arg(dir.join("key-holder.json"))
        .args(extra)
        .env("FEDAGG_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawning fedagg key-holder");
    KeyHolderProcess { child, log }
}

/// The tensor `model` of a safetensors file, checked against its header.
fn read_safetensors(path: &Path) -> (Vec<f32>, serde_json::Value) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = json(std::str::from_utf8(&bytes[8..8 + n]).unwrap().trim_end());
    let data = &bytes[8 + n..];
    assert_eq!(header["model"]["dtype"], "F32");
    assert_eq!(
        header["model"]["data_offsets"][1].as_u64().unwrap() as usize,
        data.len()
    );
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (values, header)
}

/// Participants enrolled from the enrollment files `admin codes create` wrote.
async fn enroll_from_files(dir: &Path, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 1..=n {
        let (url, code) =
            fedagg_client::read_enrollment(&dir.join(format!("codes/site-{i}.enroll"))).unwrap();
        clients.push(Client::enroll(&url, &code).await.unwrap().0);
    }
    clients
}

/// One round: `admin rounds open`, the participants contribute, `admin rounds watch` follows it
/// to its end; the watch's last line.
async fn cli_round(
    base: &str,
    fid: &str,
    round: u64,
    clients: &[Client],
    ups: &[(Vec<f32>, u64)],
) -> String {
    let opened = fedagg(base, &["admin", "rounds", "open", "--federation", fid]);
    assert!(
        opened.contains(&format!("opened round {round}")),
        "{opened}"
    );
    let run = {
        let (clients, ups) = (clients.to_vec(), ups.to_vec());
        tokio::spawn(
            async move { contribute_all(&clients, &ups, &vec![None; clients.len()]).await },
        )
    };
    let base2 = base.to_string();
    let fid2 = fid.to_string();
    let watched = tokio::task::spawn_blocking(move || {
        fedagg(
            &base2,
            &[
                "admin",
                "rounds",
                "watch",
                "--federation",
                &fid2,
                "--round",
                &round.to_string(),
            ],
        )
    })
    .await
    .unwrap();
    for r in run.await.unwrap() {
        assert_eq!(done(&r).status, RoundStatus::Completed, "{r:?}");
    }
    watched.lines().last().unwrap_or_default().to_string()
}

/// What the set-up leaves: the server, the federation, its participants and its key holder.
struct Running {
    served: serve::Served,
    fid: String,
    clients: Vec<Client>,
    key_holder: KeyHolderProcess,
}

/// The operator's set-up, every step a command: an enrollment authority and a Paillier
/// (subgroup) key, the federation, the key holder (which enrolls and publishes its key), four
/// participants' codes (which then pin that key), and the roster the authority signs.
async fn set_up(dir: &Path, env: &[(&str, String)], m: usize) -> Running {
    let served = serve::spawn(&dir.join("data"), "127.0.0.1:0", ADMIN, env);
    let base = served.base.clone();
    let run = |line: &str| fedagg(&base, &line.split_whitespace().collect::<Vec<_>>());
    let d = dir.display();
    let authority = run(&format!("authority keygen --dir {d}/authority"));
    let roster_key = authority
        .lines()
        .find_map(|l| l.strip_prefix("roster_authority: "))
        .unwrap()
        .to_string();
    // A subgroup key (its faster decryption end to end); the other Paillier tests use standard
    // keys.
    let made = run(&format!("keygen --subgroup --dir {d}/keys"));
    assert!(made.contains("Paillier subgroup key"), "{made}");
    let key_file = std::fs::read_to_string(dir.join("keys/paillier.key")).unwrap();
    assert!(
        key_file.contains("\nsubgroup-p "),
        "not a subgroup key file"
    );
    let created = json(&run(&format!(
        "admin --json federations create --name cli --mode paillier --vector-len {m} \
         --max-clients 10 --max-weight 100 --phase-timeout 60 --roster-authority {roster_key}"
    )));
    let fid = created["id"].to_string();
    run(&format!(
        "admin codes create --federation {fid} --role key-holder --out-dir {d}/codes"
    ));
    let enrollment = format!("{d}/codes/key-holder-1.enroll");
    let key_holder = spawn_key_holder(dir, &["--enrollment", &enrollment]);
    let published =
        || json(&run(&format!("admin --json federations show {fid}")))["has_public_key"] == true;
    for _ in 0..600 {
        if published() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = || std::fs::read_to_string(&key_holder.log).unwrap();
    assert!(published(), "{}", log());
    let files = run(&format!(
        "admin codes create --federation {fid} --count 4 --label-prefix site --out-dir {d}/codes"
    ));
    assert!(
        files.contains("site-4") && !files.contains("fe_"),
        "no code is printed: {files}"
    );
    let clients = enroll_from_files(dir, 4).await;
    let signed = run(&format!(
        "authority sign-roster --federation {fid} --key {d}/authority/authority.key --url {base}"
    ));
    for c in &clients {
        let line = format!("participant {:>6}", c.participant_id());
        assert!(signed.contains(&line), "{signed}");
    }
    Running {
        served,
        fid,
        clients,
        key_holder,
    }
}

pub(super) async fn admin_and_key_holder_run_a_paillier_federation(store: Store) {
    let dir = temp_dir();
    let env = store_env(&store);
    let m = 64;
    let Running {
        mut served,
        fid,
        clients,
        key_holder: mut kh,
    } = set_up(&dir, &env, m).await;
    let base = served.base.clone();
    let ups = updates(4, m, 31);
    let last = cli_round(&base, &fid, 1, &clients, &ups).await;
    assert!(
        last.starts_with("round 1 completed: 4 in, 0 dropped"),
        "{last}"
    );
    let out = dir.join("model.safetensors");
    let export = format!(
        "admin models export --federation {fid} --out {}",
        out.display()
    );
    fedagg(&base, &export.split_whitespace().collect::<Vec<_>>());
    let (values, header) = read_safetensors(&out);
    assert_eq!(header["__metadata__"]["model_version"], "1");
    assert_close(&values, &weighted_mean(&ups), STEP);

    // The server restarts: the key holder rides it out and decrypts the next round.
    served = kill_and_restart(&mut served, &dir.join("data"), &env);
    let last = cli_round(&base, &fid, 2, &clients, &updates(4, m, 32)).await;
    assert!(last.starts_with("round 2 completed: 4 in"), "{last}");

    // SIGTERM stops it cleanly; its log says what it decrypted.
    let pid = kh.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = kh.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(&kh.log).unwrap();
    for round in [1, 2] {
        let said = |l: &&str| {
            l.contains("decrypted the round's sum")
                && l.contains(&format!("round={round}"))
                && l.contains("contributors=4")
        };
        assert!(log.lines().any(|l| said(&l)), "{log}");
    }
    assert!(log.contains("stopping"), "{log}");
    // It remembers both rounds' sums across restarts.
    let memory = json(&std::fs::read_to_string(dir.join("key-holder.json.decrypted")).unwrap());
    assert_eq!(memory["decrypted"].as_object().unwrap().len(), 2);
    operator_views(&dir, &base, &fid, &clients).await;
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The operator's other views: a config file instead of the environment, lists, reports, and
/// token rotation (the token is never printed unless asked).
async fn operator_views(dir: &Path, base: &str, fid: &str, clients: &[Client]) {
    let run = |line: &str| fedagg(base, &line.split_whitespace().collect::<Vec<_>>());
    let config = dir.join("admin.toml");
    let text = format!("url = \"{base}\"\ntoken = \"{ADMIN}\"\n");
    fedagg_client::write_secret(&config, text.as_bytes()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fedagg"))
        .args(["admin", "federations", "list", "--config"])
        .arg(&config)
        .env_remove("FEDAGG_URL")
        .env_remove("FEDAGG_ADMIN_TOKEN")
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && !list.contains(ADMIN), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains("cli") && l.contains("paillier")),
        "{list}"
    );
    run(&format!(
        "admin rounds report --federation {fid} --round 2 --accuracy 0.875"
    ));
    let rounds = json(&run(&format!(
        "admin --json rounds list --federation {fid}"
    )));
    assert_eq!(rounds[0]["info"]["round"], 2);
    assert_eq!(rounds[0]["metrics"]["accuracy"], 0.875);
    assert_eq!(rounds[1]["info"]["record"]["participants"], 4);
    let table = run(&format!("admin rounds list --federation {fid}"));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("2 ") && l.contains("87.50%")),
        "{table}"
    );
    let set = run(&format!(
        "admin --json federations set-optimizer --federation {fid} fedyogi --lr 0.05"
    ));
    assert_eq!(json(&set)["kind"], "fedyogi");
    let shown = json(&run(&format!("admin --json federations show {fid}")));
    assert_eq!(shown["server_optimizer"]["lr"], 0.05);
    assert_eq!(shown["server_optimizer"]["beta2"], 0.99);
    let wrong = Command::new(env!("CARGO_BIN_EXE_fedagg"))
        .args(["admin", "federations", "set-optimizer", "--federation", fid])
        .args(["fedadam", "--momentum", "0.9"])
        .env("FEDAGG_URL", base)
        .env("FEDAGG_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && err.contains("--momentum does not apply"),
        "{err}"
    );
    let pid = clients[0].participant_id();
    // A file in the way is refused before the token is rotated (else the new one would be lost).
    let blocked = Command::new(env!("CARGO_BIN_EXE_fedagg"))
        .args([
            "admin",
            "tokens",
            "rotate",
            "--federation",
            fid,
            "--participant",
        ])
        .arg(pid.to_string())
        .arg("--out")
        .arg(&config)
        .env("FEDAGG_URL", base)
        .env("FEDAGG_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(!blocked.status.success());
    clients[0].model().await.unwrap();
    let rotated = run(&format!(
        "admin tokens rotate --federation {fid} --participant {pid}"
    ));
    assert!(
        rotated.contains("was not printed") && !rotated.contains("new token:"),
        "{rotated}"
    );
    let e = clients[0].model().await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 401, .. }), "{e}");
}
