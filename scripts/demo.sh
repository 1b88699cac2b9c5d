#!/usr/bin/env bash
# The main job: builds fedagg and runs the demo federation. Extra arguments go to `fedagg demo`
# (see `fedagg demo --help`).
#
# It builds in cargo's dev profile, where every dependency is optimised (Cargo.toml) and only our
# own crates are not, fully: the demo runs as fast (its time is libtorch's), and scripts/test.sh
# then reuses every compiled dependency instead of building them all a second time in another
# profile, which is most of a fresh machine's wait.
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch for local training: fetched and cached on first use (scripts/libtorch.sh). On a fresh
# machine the download runs while everything that does not link libtorch compiles: the first
# `cargo build` keeps going past torch-sys (whose build script needs libtorch and fails until the
# download is done) and shows only a count of the crates it has compiled, not those expected
# errors; `cargo run` then builds the rest with cargo's own progress, showing any error, and runs
# the demo.
# Both are the same command, so nothing is compiled twice.
# (it links the cached folder as .libtorch, where .cargo/config.toml points LIBTORCH; a LIBTORCH
# set in the environment wins)
scripts/libtorch.sh >/dev/null &
fetch=$!
if [ ! -x "${CARGO_TARGET_DIR:-target}/debug/fedagg" ]; then
    echo "Building fedagg while libtorch downloads: about 12 minutes on a fresh two-core" \
        "machine, once (later runs start at once)." >&2
fi
cargo build --keep-going -p fedagg 2>&1 | {
    n=0
    while IFS= read -r line; do
        case "$line" in *" Compiling "*)
            n=$((n + 1))
            printf '\r  compiled %d crates' "$n" >&2
            ;;
        esac
    done
    if [ "$n" -gt 0 ]; then echo >&2; fi
} || true
wait "$fetch"
exec cargo run -- demo "$@"
