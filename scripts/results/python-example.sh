#!/usr/bin/env bash
# The seed guide's FedAvg through the Python package (examples/python/fedavg_digits.py), with
# PyTorch and with its numpy variant, beside the same loop in-process; writes
# docs/results/guide-fedavg-{torch,numpy}.csv and the PyTorch run's log.
#
# PyTorch comes from the Python package registry, whose Linux wheels bring their CUDA libraries:
# about 4.7 GB in a virtual environment under the cargo target folder, once. Needs the test build
# (`cargo nextest run --workspace --no-run`) for the extension module and the `fedagg` binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
wheel="$(python3 scripts/python/pack_wheel.py --extension "$target/debug/deps/lib_fedagg.so" \
    --out "$target/wheels")"
venv="$target/torch-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0 numpy
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
for backend in torch numpy; do
    "$venv/bin/python" examples/python/fedavg_digits.py --backend "$backend" --rounds 100 \
        --fedagg "$target/debug/fedagg" --out "docs/results/guide-fedavg-$backend.csv" |
        tee "$target/guide-fedavg-$backend.log"
done
cp "$target/guide-fedavg-torch.log" docs/results/guide-fedavg-torch.log
