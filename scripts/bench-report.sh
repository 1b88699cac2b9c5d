#!/usr/bin/env bash
# Turns criterion's results (left in target/criterion by `cargo bench`) into docs/benchmarks.md
# with tables and PNG plots in docs/benchmarks/. Run the benches first, e.g.
#   cargo bench --no-default-features --bench secagg --bench dp --bench paillier
# Benches built for this CPU, if run into target/native, get a section of their own:
#   RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=target/native cargo bench --no-default-features --bench secagg
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib==3.9.2
target="${CARGO_TARGET_DIR:-target}"
python3 scripts/bench-report/report.py "$target/criterion" docs/benchmarks.md docs/benchmarks "$target/native/criterion"
