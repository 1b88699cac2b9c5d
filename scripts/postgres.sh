#!/usr/bin/env bash
# A local PostgreSQL for the PostgreSQL half of the test suite: installs Debian's package when
# missing, starts the cluster, makes a test role that may create databases, and prints the URL
# to put in FEDAGG_TEST_POSTGRES (everything else goes to stderr). Loopback only. It also turns on
# TLS with a test CA, whose certificate it leaves in /var/lib/postgresql/fedagg-test-tls/ca.pem
# (FEDAGG_TEST_POSTGRES_CA).
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
# TLS for the tests of sslmode=require: a test CA and a certificate for 127.0.0.1, made once;
# the CA is left in $tls_dir/ca.pem for FEDAGG_TEST_POSTGRES_CA.
tls_dir=/var/lib/postgresql/fedagg-test-tls
if ! as_root test -f "$tls_dir/server.crt"; then
    work=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fedagg test CA" \
        -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/ext"
    openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -CAcreateserial -days 3650 -extfile "$work/ext" -out "$work/server.crt" 2>/dev/null
    as_root install -d -o postgres -g postgres -m 0755 "$tls_dir"
    as_root install -o postgres -g postgres -m 0644 "$work/server.crt" "$work/ca.pem" "$tls_dir/"
    as_root install -o postgres -g postgres -m 0600 "$work/server.key" "$tls_dir/"
    rm -rf "$work"
fi
as_postgres "psql -p $port -qc \"ALTER SYSTEM SET ssl = on\" -c \"ALTER SYSTEM SET ssl_cert_file = '$tls_dir/server.crt'\" -c \"ALTER SYSTEM SET ssl_key_file = '$tls_dir/server.key'\" -c \"SELECT pg_reload_conf()\"" >/dev/null
echo "postgres://fedagg_test:fedagg_test@127.0.0.1:$port/postgres"
