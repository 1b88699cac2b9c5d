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
# machine the download runs while everything that does not link libtorch compiles.
# (it links the cached folder as .libtorch, where .cargo/config.toml points LIBTORCH; a LIBTORCH
# set in the environment wins)
scripts/libtorch.sh >/dev/null &
fetch=$!
if ! cargo build --quiet -p fedagg --no-default-features; then
    wait "$fetch" || true
    exit 1
fi
wait "$fetch"
exec cargo run --quiet -- demo "$@"
