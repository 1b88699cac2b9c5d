#!/usr/bin/env bash
# Regenerates the "DP that is useful, at scale" runs of docs/results.md: FedProx's Synthetic-IID
# over 1,000 participants, about 100 per round, logistic regression, 200 rounds; non-private
# FedAvg, central DP, distributed DP (16 bits) and record-level DP-SGD at epsilon 1, 3 and 8
# (delta 1e-5), in process with the service's mechanisms (`fedagg-train`'s `dp_comparison`
# example). Two runs at a time; about 25 minutes on two cores. Then scripts/results/report.py
# rewrites docs/results.md from every CSV in docs/results/.
#
# Usage: scripts/results/dp.sh [rounds]     (default 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/libtorch.sh >/dev/null
rounds="${1:-200}"
clip=1.0
out=docs/results
cargo build --release --quiet -p fedagg-train --example dp_comparison
bin="${CARGO_TARGET_DIR:-target}/release/examples/dp_comparison"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$bin" "$work/"
run() { # name method epsilon
    echo "$1" >&2
    "$work/dp_comparison" "$2" "$3" "$rounds" 1 "$clip" >"$out/$1.csv" 2>"$out/$1.log"
}
run dp1000-none none 0 &
run dp1000-central-eps8 central 8
wait
for eps in 3 1; do
    run "dp1000-central-eps$eps" central "$eps" &
    run "dp1000-distributed-eps$eps" distributed "$eps"
    wait
done
run dp1000-distributed-eps8 distributed 8 &
run dp1000-dpsgd-eps8 dpsgd 8
wait
run dp1000-dpsgd-eps3 dpsgd 3 &
run dp1000-dpsgd-eps1 dpsgd 1
wait
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib==3.9.2
python3 scripts/results/report.py "$out" 100 >docs/results.md
echo "wrote docs/results.md and $out/dp1000.png" >&2
