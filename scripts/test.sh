#!/usr/bin/env bash
# The whole test suite: the doc tests, the Python package's tests, then every crate's unit,
# property and integration tests.
# The test runner's summary is the last thing printed. Works on a fresh clone with nothing
# exported: libtorch (for fedagg-train and the demo) is fetched and cached on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
# (it links the cached folder as .libtorch, where .cargo/config.toml points LIBTORCH; a LIBTORCH
# set in the environment wins)
scripts/libtorch.sh >/dev/null
# PostgreSQL for the service tests' PostgreSQL half (the store's and the server's tests run
# against SQLite and PostgreSQL; two replicas share one). Installed and started while the tests
# compile. Outside CI, when it cannot be started, those tests say SKIPPED; under CI they fail.
pg_out="$(mktemp)"
trap 'rm -f "$pg_out"' EXIT
pg=""
if [ -z "${FEDAGG_TEST_POSTGRES:-}" ]; then
    scripts/postgres.sh >"$pg_out" &
    pg=$!
fi

cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-run
else
    cargo test --workspace --no-run
fi
if [ -n "$pg" ]; then
    if wait "$pg"; then
        export FEDAGG_TEST_POSTGRES="$(cat "$pg_out")"
        export FEDAGG_TEST_POSTGRES_CA=/var/lib/postgresql/fedagg-test-tls/ca.pem
    else
        echo "could not start PostgreSQL: its half of the service tests will be skipped" >&2
    fi
fi
# The Python package: a wheel of the extension the build above compiled, in a fresh virtual
# environment, tested with pytest against a real server (scripts/pytest.sh). Its outcome is
# reported after the Rust suite's, whose summary stays the last thing printed.
python_status=0
scripts/pytest.sh || python_status=$?
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    echo "cargo-nextest not found; running cargo test instead" >&2
    cargo test --workspace --no-fail-fast
fi
if [ "$python_status" -ne 0 ]; then
    echo "the Python package's tests failed (scripts/pytest.sh, above)" >&2
    exit "$python_status"
fi
