#!/usr/bin/env bash
# The main job: builds fedagg in release mode and runs the demo. Extra arguments go to
# `fedagg demo` (see `fedagg demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -- demo "$@"
