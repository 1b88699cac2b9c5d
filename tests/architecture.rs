//! The invariants ARCHITECTURE.md states, checked mechanically: which crates may depend on
//! what, which sources may do IO or read a clock, and how large a file or a function may grow.
//! (`scripts/check-invariants.sh` keeps the one check that needs Python: the compose file.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    // (the manifest folder at run time, as cargo and nextest set it: a binary built from another
    // checkout that shares the target folder must check this one)
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
}

/// The names of `args`' normal dependencies, transitively (`cargo tree`).
fn deps(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "-q",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn assert_no_dep(args: &[&str], banned: &[&str]) {
    let d = deps(args);
    for b in banned {
        assert!(!d.iter().any(|x| x == b), "{args:?} depends on {b}");
    }
}

const PROTOCOL_CORES: [&str; 5] = [
    "fedagg-quant",
    "fedagg-secagg",
    "fedagg-dp",
    "fedagg-paillier",
    "fedagg-lattice",
];

#[test]
fn protocol_cores_api_and_round_engine_have_no_async_http_or_database() {
    let banned = [
        "tokio", "futures", "reqwest", "hyper", "axum", "rusqlite", "postgres", "sqlx", "tch",
    ];
    for c in PROTOCOL_CORES
        .iter()
        .chain(&["fedagg-par", "fedagg-api", "fedagg-round"])
    {
        assert_no_dep(&["-p", c], &banned);
    }
}

#[test]
fn the_service_and_sdk_never_link_libtorch() {
    for args in [
        &["-p", "fedagg-server"][..],
        &["-p", "fedagg-client"],
        &["-p", "fedagg-api"],
        &["-p", "fedagg-round"],
        &["-p", "fedagg", "--no-default-features"],
    ] {
        assert_no_dep(args, &["tch", "torch-sys"]);
    }
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir()
            && p.file_name()
                .is_some_and(|n| n != "target" && n != ".libtorch")
        {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_string()))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .collect()
}

#[test]
fn protocol_cores_and_the_round_engine_do_no_io_and_read_no_clock() {
    let banned = [
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "Instant::now",
        "SystemTime",
        "thread_rng",
        "rand::random",
        "OsRng",
        "getrandom",
    ];
    let mut files = Vec::new();
    for c in PROTOCOL_CORES
        .iter()
        .chain(&["fedagg-par", "fedagg-api", "fedagg-round"])
    {
        rust_files(&root().join("crates").join(c).join("src"), &mut files);
    }
    assert!(files.len() > 20);
    for f in files {
        for (n, l) in code_lines(&f) {
            for b in banned {
                assert!(!l.contains(b), "{}:{n}: {b}", f.display());
            }
        }
    }
}

#[test]
fn no_unsafe_code() {
    let mut files = Vec::new();
    for d in ["crates", "src", "benches", "tests"] {
        rust_files(&root().join(d), &mut files);
    }
    let needle = ["unsafe", " "].concat();
    for f in files {
        for (n, l) in code_lines(&f) {
            assert!(!l.contains(&needle), "{}:{n}", f.display());
        }
    }
}

#[test]
fn no_server_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/fedagg-server/src"), &mut files);
    for f in files {
        let n = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(n <= 600, "{} has {n} lines", f.display());
    }
}

/// `(name, first line, lines)` of every function in a file with a body: from the `fn` line to
/// the brace that closes its body.
fn functions(path: &Path) -> Vec<(String, usize, usize)> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with("//") {
            continue;
        }
        let Some(at) = t.find("fn ") else { continue };
        let before = &t[..at];
        if !before
            .split_whitespace()
            .all(|w| ["pub", "pub(crate)", "pub(super)", "async", "const"].contains(&w))
        {
            continue;
        }
        let name: String = t[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i32, false);
        for (j, body) in lines.iter().enumerate().skip(i) {
            let code = body.split("//").next().unwrap_or("");
            let code = strip_literals(code);
            if !opened && code.trim_end().ends_with(';') && !code.contains('{') {
                break;
            }
            for ch in code.chars() {
                match ch {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                out.push((name.clone(), i + 1, j - i + 1));
                break;
            }
        }
    }
    out
}

/// A line without its string and char literals (their braces are not code).
fn strip_literals(code: &str) -> String {
    let mut out = String::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' if chars.clone().nth(1) == Some('\'') => {
                chars.next();
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn no_function_is_over_100_lines() {
    let mut files = Vec::new();
    for d in ["crates", "src", "benches", "tests"] {
        rust_files(&root().join(d), &mut files);
    }
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .to_string();
        for (name, line, n) in functions(f) {
            if n > 100 {
                found.push(format!("{rel}:{line} {name}: {n} lines"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "functions over 100 lines:\n{}",
        found.join("\n")
    );
}
