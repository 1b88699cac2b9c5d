//! What a bench leaves beside criterion's results for `scripts/bench-report.sh`, and whether it is
//! the quick run (CI's, `FEDAGG_BENCH_QUICK`). Shared by the secagg and grid benches through
//! `#[path]`: each bench is its own binary.

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
