#!/usr/bin/env bash
# Property-based test of the REST API against its own OpenAPI document, as a new user would run
# it: schemathesis 4.32 (from the Python package registry) against the document the server
# serves, with an admin token, 60 examples per operation and every check. Any failure or server
# error fails the script.
#
#   scripts/schemathesis.sh            # builds `fedagg` (with the lattice mode) and runs it
#
# The server is built with the lattice feature, so that every mode the document describes is
# served (a build without it answers lattice federations with 422).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fedagg/target}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/fedagg"
venv="$cache/schemathesis-venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "4.32.5"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi

cargo build --quiet --no-default-features --features lattice --bin fedagg
data="$(mktemp -d)"
token="schemathesis-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
out="$data/serve.out"
FEDAGG_ADMIN_TOKEN="$token" FEDAGG_MAX_WAIT_SECS=1 FEDAGG_LOG=warn \
    "$CARGO_TARGET_DIR/debug/fedagg" serve --listen 127.0.0.1:0 --data-dir "$data/db" >"$out" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    grep -q "^listening on " "$out" 2>/dev/null && break
    sleep 0.1
done
base="$(sed -n 's/^listening on //p' "$out")"
[ -n "$base" ] || { echo "the server did not start"; exit 1; }

st() {
    "$venv/bin/st" --no-color --config-file "$1" run "$base/v1/openapi.json" \
        --header "Authorization: Bearer $token" --max-examples 60 --checks all --seed 1
}

echo "== schemathesis, pass 1: generated ids, as a new user would run it"
st scripts/schemathesis.toml

echo "== schemathesis, pass 2: the ids of a DP federation with an open round and a participant"
# (so that the operations reach their logic instead of answering 404)
api() { curl -sS --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
fid="$(api -X POST "$base/v1/federations" -d '{"name": "schemathesis", "vector_len": 4,
    "min_clients": 3, "max_clients": 8, "phase_timeout_secs": 600,
    "mode": {"kind": "dp", "clip": 1.0, "noise_multiplier": 1.0, "sampling_rate": 1.0,
             "epsilon_budget": 1000.0, "delta": 1e-5}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
# (three participants: no round opens for fewer than min_clients; the first one's id is used)
for _ in 1 2 3; do
    code="$(api -X POST "$base/v1/federations/$fid/enrollment-codes" -d '{"role": "participant"}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["code"])')"
    enrolled="$(api -X POST "$base/v1/enroll" -d "{\"code\": \"$code\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["participant_id"])')"
    pid="${pid:-$enrolled}"
done
api -X POST "$base/v1/federations/$fid/rounds" >/dev/null
{ cat scripts/schemathesis.toml
  printf '\n[parameters]\n"path.fid" = %s\n"path.round" = 1\n"path.pid" = %s\n' "$fid" "$pid"
} >"$data/fixture.toml"
st "$data/fixture.toml"
