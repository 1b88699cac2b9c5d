#!/usr/bin/env bash
# Regenerates docs/results.md and its plots: test accuracy per round on the bundled digits,
# 20 clients, the guide's configuration (MLP 256, fraction 0.1, 5 local epochs, batch 32,
# lr 0.01, momentum 0.9), seed 1, for plaintext FedAvg (in-process), SecAgg, Paillier and DP
# through the service (`fedagg demo`), and FedAvg against FedProx and SCAFFOLD under alpha = 0.1,
# in process and through the service with SecAgg beside the simulation replaying its cohorts.
# Takes about half an hour on two cores (Paillier is most of it).
#
# Usage: scripts/results/run.sh [rounds]     (default 100)
#        RESUME=1 scripts/results/run.sh     keeps the CSVs already there
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/libtorch.sh >/dev/null
rounds="${1:-100}"
out=docs/results
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# Build once, then run the binaries: edits made while this runs do not change the results.
cargo build --release --quiet --bin fedagg
cargo build --release --quiet -p fedagg-train --example simulate
bin="${CARGO_TARGET_DIR:-target}/release"
cp "$bin/fedagg" "$bin/examples/simulate" "$work/"

skip() {
    [[ -n "${RESUME:-}" && -s "$out/$1.csv" && $(wc -l <"$out/$1.csv") -gt 1 ]]
}
sim() { # name algorithm alpha fraction
    skip "$1" && return 0
    echo "plaintext $2, alpha $3, fraction $4" >&2
    "$work/simulate" "$2" "$3" "$rounds" "$4" 1 >"$out/$1.csv"
}
demo() { # name fraction demo-args...
    local name="$1" fraction="$2"
    shift 2
    skip "$name" && return 0
    echo "service: $name" >&2
    "$work/fedagg" demo --quiet --clients 20 --fraction "$fraction" \
        --rounds "$rounds" --seed 1 --out "$work/$name" "$@"
    cp "$work/$name/rounds.csv" "$out/$name.csv"
}

sim plain-fedavg fedavg 0.5 0.1
sim alpha01-fedavg fedavg 0.1 0.1
sim alpha01-fedprox fedprox:0.01 0.1 0.1
sim alpha01-scaffold scaffold 0.1 0.1
# SecAgg refuses cohorts below 4 (no neighbourhood meets its threat model): fraction 0.2, with
# the plaintext run at the same fraction beside it.
sim plain-fedavg-f0.2 fedavg 0.5 0.2
demo secagg 0.2 --mode secagg
demo dp-sigma0.5 0.1 --mode dp --noise-multiplier 0.5
demo dp-sigma1.0 0.1 --mode dp --noise-multiplier 1.0
demo dp-all-sigma0.5 1 --mode dp --noise-multiplier 0.5
demo dp-all-sigma1.0 1 --mode dp --noise-multiplier 1.0
demo paillier 0.1 --mode paillier
# alpha = 0.1 through the service with SecAgg (fraction 0.2, SecAgg's least cohort of 4), each
# run beside the simulation replaying the cohorts the service picked (the demo's cohorts.csv):
# the same clients, data and seeds, so the curves differ only by quantization.
through_secagg() { # name algorithm server-optimizer
    local name="$1"
    if ! skip "$name"; then
        demo "$name" 0.2 --mode secagg --alpha 0.1 --algorithm "$2" --server-optimizer "$3"
        cp "$work/$name/cohorts.csv" "$out/$name-cohorts.csv"
    fi
    skip "$name-sim" && return 0
    echo "replayed in process: $name" >&2
    "$work/simulate" "$2" 0.1 "$rounds" 0.2 1 "$3" "$out/$name-cohorts.csv" >"$out/$name-sim.csv"
}
through_secagg alpha01-secagg-fedavg fedavg fedavg
through_secagg alpha01-secagg-fedprox fedprox:0.01 fedavg
through_secagg alpha01-secagg-scaffold scaffold fedavg
through_secagg alpha01-secagg-fedadam fedavg fedadam

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib==3.9.2
python3 scripts/results/report.py "$out" "$rounds" >docs/results.md
echo "wrote docs/results.md and $out/*.png" >&2
