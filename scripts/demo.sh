#!/usr/bin/env bash
# The main job: builds fedagg in release mode and runs the demo federation. Extra arguments go to
# `fedagg demo` (see `fedagg demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch for local training: fetched and cached on first use (scripts/libtorch.sh).
# (it links the cached folder as .libtorch, where .cargo/config.toml points LIBTORCH; a LIBTORCH
# set in the environment wins)
scripts/libtorch.sh >/dev/null
exec cargo run --release --quiet -- demo "$@"
