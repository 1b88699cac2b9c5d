#!/usr/bin/env bash
# Turns criterion's results (left in target/criterion by `cargo bench`) into docs/benchmarks.md
# with tables and PNG plots in docs/benchmarks/. Run the benches first, e.g.
#   cargo bench --no-default-features --bench secagg --bench dp --bench paillier
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib==3.9.2
python3 scripts/bench-report/report.py "${CARGO_TARGET_DIR:-target}/criterion" docs/benchmarks.md docs/benchmarks
