#!/usr/bin/env bash
# Checks the invariants ARCHITECTURE.md states that the Rust test suite does not.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# The dependency, IO, unsafe-code and size invariants are checked by `cargo test --test
# architecture` (tests/architecture.rs). What is left here needs Python:
# the compose file (no Docker engine runs here to try it) parses, every service has a health
#    check, the servers share the PostgreSQL service by database URL, and no port is published
#    beyond loopback.
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
# Plain HTTP is published on loopback only (a TLS proxy on the host fronts it).
exposed = [p for v in s.values() for p in v.get("ports", []) if not str(p).startswith("127.0.0.1:")]
if not ok or exposed:
    sys.exit(f"compose: services without health check {bad}, servers {servers}, urls {urls}, "
             f"ports beyond loopback {exposed}")
PY
then
    echo "invariant broken: docker/compose.yaml"
    fail=1
fi

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "architecture invariants hold"
