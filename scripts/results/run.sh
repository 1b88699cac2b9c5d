#!/usr/bin/env bash
# Regenerates docs/results.md and its plots: test accuracy per round on the bundled digits,
# 20 clients, the guide's configuration (MLP 256, fraction 0.1, 5 local epochs, batch 32,
# lr 0.01, momentum 0.9), seed 1, for plaintext FedAvg (in-process), SecAgg, Paillier and DP
# through the service (`fedagg demo`), and FedAvg against FedProx and SCAFFOLD under alpha = 0.1.
# Takes about half an hour on two cores (Paillier is most of it).
#
# Usage: scripts/results/run.sh [rounds]     (default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
LIBTORCH="$(scripts/libtorch.sh)"
export LIBTORCH
rounds="${1:-100}"
out=docs/results
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

cargo build --release --quiet --bin fedagg
cargo build --release --quiet -p fedagg-train --example simulate

sim() { # name algorithm alpha
    echo "plaintext $2, alpha $3" >&2
    cargo run --release --quiet -p fedagg-train --example simulate -- "$2" "$3" "$rounds" 0.1 1 >"$out/$1.csv"
}
demo() { # name demo-args...
    local name="$1"
    shift
    echo "service: $name" >&2
    cargo run --release --quiet --bin fedagg -- demo --quiet --clients 20 --fraction 0.1 \
        --rounds "$rounds" --seed 1 --out "$work/$name" "$@"
    cp "$work/$name/rounds.csv" "$out/$name.csv"
}

sim plain-fedavg fedavg 0.5
sim alpha01-fedavg fedavg 0.1
sim alpha01-fedprox fedprox:0.01 0.1
sim alpha01-scaffold scaffold 0.1
demo secagg --mode secagg
demo dp-sigma0.5 --mode dp --noise-multiplier 0.5
demo dp-sigma1.0 --mode dp --noise-multiplier 1.0
demo dp-all-sigma0.5 --mode dp --noise-multiplier 0.5 --fraction 1
demo dp-all-sigma1.0 --mode dp --noise-multiplier 1.0 --fraction 1
demo paillier --mode paillier

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib==3.9.2
python3 scripts/results/report.py "$out" "$rounds" >docs/results.md
echo "wrote docs/results.md and $out/*.png" >&2
