#!/usr/bin/env bash
# A local PostgreSQL for the PostgreSQL half of the test suite: installs Debian's package when
# missing, starts the cluster, makes a test role that may create databases, and prints the URL
# to put in FEDAGG_TEST_POSTGRES (everything else goes to stderr). Loopback only.
set -euo pipefail

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "postgres.sh: need root (or sudo) to install and start PostgreSQL" >&2
        return 1
    fi
}
as_postgres() { as_root su postgres -c "$1"; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "postgres.sh: installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq postgresql >&2 ||
        { as_root apt-get update -qq >&2 && as_root apt-get install -y -qq postgresql >&2; }
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$ver main"; then
    as_root pg_createcluster "$ver" main >&2
fi
port=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    as_root pg_ctlcluster "$ver" main start >&2
fi
for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.2
done
pg_isready -q -h 127.0.0.1 -p "$port"
if ! as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'fedagg_test'\"" | grep -q 1; then
    as_postgres "psql -p $port -qc \"CREATE ROLE fedagg_test LOGIN CREATEDB PASSWORD 'fedagg_test'\"" >&2
fi
echo "postgres://fedagg_test:fedagg_test@127.0.0.1:$port/postgres"
