//! What the secagg and grid benches share with `scripts/bench-report.sh`: the files they leave
//! beside criterion's results, whether this is the quick run (CI's, `FEDAGG_BENCH_QUICK`), and the
//! thread counts their ids carry. Included through `#[path]`: each bench is its own binary.

/// Whether this is the quick run: small sizes, one pass each.
pub fn quick() -> bool {
    std::env::var_os("FEDAGG_BENCH_QUICK").is_some()
}

/// Write `text` as `<stem>.json` in criterion's folder (`$CARGO_TARGET_DIR/criterion`). A quick
/// run writes `<stem>-quick.json` instead, so that it never replaces what a full run left for the
/// report.
pub fn write_beside_results(stem: &str, text: &str) {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = std::path::Path::new(&dir).join("criterion");
    std::fs::create_dir_all(&path).expect("criterion folder");
    let name = if quick() {
        format!("{stem}-quick.json")
    } else {
        format!("{stem}.json")
    };
    std::fs::write(path.join(&name), text).unwrap_or_else(|e| panic!("writing {name}: {e}"));
}

/// The thread counts a bench runs at, each with its id's suffix: one core (no suffix, the ids the
/// report has always had), then every core (`/threads=N`, which the report pairs with the one-core
/// id) on a machine with more than one.
pub fn thread_counts() -> Vec<(usize, String)> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut counts = vec![(1, String::new())];
    if cores > 1 {
        counts.push((cores, format!("/threads={cores}")));
    }
    counts
}
