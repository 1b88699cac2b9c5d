#!/usr/bin/env bash
# The Python package's test suite: a wheel installed into a fresh virtual environment, then
# pytest against a real `fedagg serve` on 127.0.0.1 (crates/fedagg-py/tests).
#
#     scripts/pytest.sh           # the wheel packed from the extension the test build compiled
#     scripts/pytest.sh WHEEL     # a given wheel (CI: maturin's, from scripts/wheel.sh)
#
# Needs the test build done (`cargo nextest run --workspace --no-run`: it compiles the extension
# and the `fedagg` binary the tests start). numpy and pytest come from the Python package
# registry into the environment, which is created afresh each time.
set -euo pipefail
cd "$(dirname "$0")/.."
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
if [ $# -gt 0 ]; then
    wheel="$1"
else
    wheel="$(python3 scripts/python/pack_wheel.py --extension "$target/debug/deps/lib_fedagg.so" \
        --out "$target/wheels")"
fi
venv="$target/pytest-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" pytest==8.3.5
# From the test folder, so that only the installed package can be imported.
cd crates/fedagg-py/tests
FEDAGG_BIN="$target/debug/fedagg" "$venv/bin/python" -m pytest -q -p no:cacheprovider .
