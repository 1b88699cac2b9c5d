#!/usr/bin/env bash
# Checks the invariants ARCHITECTURE.md states, mechanically.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# 1. The protocol cores depend on no async runtime, HTTP stack or database.
for crate in fedagg-quant fedagg-secagg fedagg-dp fedagg-paillier fedagg-lattice; do
    deps=$(cargo tree -q -e normal -p "$crate" --prefix none | awk '{print $1}' | sort -u)
    for banned in tokio reqwest hyper axum rusqlite sqlx tch; do
        if grep -qx "$banned" <<<"$deps"; then
            echo "invariant broken: $crate depends on $banned"
            fail=1
        fi
    done
done

# 2. The protocol cores do no IO, read no clock and draw no ambient randomness. Comments and doc
#    examples (which are callers) may.
pattern='std::(fs|net|env|process)|Instant::now|SystemTime|thread_rng|rand::random|OsRng|getrandom'
if grep -rnE "$pattern" crates/fedagg-quant/src crates/fedagg-secagg/src crates/fedagg-dp/src crates/fedagg-paillier/src crates/fedagg-lattice/src | grep -vE '^[^:]+:[0-9]+:\s*//'; then
    echo "invariant broken: IO, clock or ambient randomness in a protocol core (lines above)"
    fail=1
fi

# 3. No unsafe code in our crates (also forbidden by the workspace lints).
if grep -rn "unsafe " --include='*.rs' crates src benches | grep -v 'unsafe_code'; then
    echo "invariant broken: unsafe code"
    fail=1
fi

# 4. The service and the SDK never pull libtorch (the server image has none); neither does a
#    server-only build of the command.
for target in "-p fedagg-server" "-p fedagg-client" "-p fedagg-api" "-p fedagg --no-default-features"; do
    # shellcheck disable=SC2086
    if cargo tree -q -e normal $target --prefix none | awk '{print $1}' | grep -qxE 'tch|torch-sys'; then
        echo "invariant broken: $target depends on libtorch"
        fail=1
    fi
done

# 5. The compose file (no Docker engine runs here to try it) parses, every service has a health
#    check, and the servers share the PostgreSQL service by database URL.
python3 -c "import yaml" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pyyaml >/dev/null
if ! python3 - docker/compose.yaml <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
s = d["services"]
bad = [n for n, v in s.items() if "healthcheck" not in v]
servers = [n for n, v in s.items() if v.get("image", "").startswith("fedagg")]
urls = {s[n]["environment"]["FEDAGG_DATABASE_URL"] for n in servers}
ok = not bad and "postgres" in s and len(servers) >= 2 and len(urls) == 1 \
    and next(iter(urls)).startswith("postgres://")
if not ok:
    sys.exit(f"compose: services without health check {bad}, servers {servers}, urls {urls}")
PY
then
    echo "invariant broken: docker/compose.yaml"
    fail=1
fi

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "architecture invariants hold"
