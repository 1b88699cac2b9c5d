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

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "architecture invariants hold"
