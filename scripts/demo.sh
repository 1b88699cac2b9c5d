#!/usr/bin/env bash
# The main job: builds fedagg in release mode and runs the demo federation. Extra arguments go to
# `fedagg demo` (see `fedagg demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch for local training: fetched and cached on first use (scripts/libtorch.sh).
LIBTORCH="$(scripts/libtorch.sh)"
export LIBTORCH
exec cargo run --release --quiet -- demo "$@"
