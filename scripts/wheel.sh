#!/usr/bin/env bash
# Build the Python package's wheel (`fedagg`, one abi3 wheel for every CPython from 3.9 on) with
# maturin, in release, and print its path. Installing it needs no Rust:
#
#     scripts/wheel.sh                   # -> $CARGO_TARGET_DIR/wheels/fedagg-*.whl
#     pip install "$(scripts/wheel.sh | tail -1)"
#
# maturin comes from the Python package registry into a virtual environment of its own, under
# the cargo target folder.
set -euo pipefail
cd "$(dirname "$0")/.."
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
tools="$target/maturin-venv"
if [ ! -x "$tools/bin/maturin" ]; then
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check maturin==1.16.0
fi
out="$target/wheels/release"
rm -rf "$out"
"$tools/bin/maturin" build --release --strip --manifest-path crates/fedagg-py/Cargo.toml \
    --interpreter python3 --out "$out" >&2
ls "$out"/fedagg-*.whl
