#!/usr/bin/env bash
# The dashboard in a real browser: headless Chromium (Debian's package, installed when missing)
# loads /dashboard from a fresh `fedagg serve` that holds a federation with finished rounds and
# an open one (scripts/dashboard/seed.py, through the Python package), then the rendered page is
# checked and a screenshot written to docs/dashboard.png.
#
# Needs the test build and the Python package's environment (scripts/pytest.sh makes both).
set -euo pipefail
cd "$(dirname "$0")/.."
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
python="$target/pytest-venv/bin/python"
"$python" -c "import fedagg" 2>/dev/null || { echo "run scripts/pytest.sh first" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
    apt-get install -y -qq chromium >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
work="$(mktemp -d)"
token="dashboard-check-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
FEDAGG_ADMIN_TOKEN="$token" FEDAGG_LOG=warn "$target/debug/fedagg" serve --listen 127.0.0.1:0 \
    --data-dir "$work/data" >"$work/serve.out" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^listening on //p' "$work/serve.out")"
fid="$("$python" scripts/dashboard/seed.py "$url" "$token")"
page="$url/dashboard#token=$token&federation=$fid"
# --disable-dev-shm-usage: a container's /dev/shm is often 64 MB, and Chromium then crashes
# (SIGSEGV) when it creates shared memory. Debian's launcher adds the flag only when it can
# read /dev/shm's free space, which fails on some mounts. A browser that still dies from a
# signal is started again, at most three times in all; the page's checks are what is tested.
browse() {
    local try status
    for try in 1 2 3; do
        status=0
        chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic \
            --no-first-run --disable-background-networking --disable-component-update \
            --disable-sync --hide-scrollbars --user-data-dir="$work/profile-$1-$try" \
            --virtual-time-budget=8000 --window-size=1280,760 "${@:2}" "$page" 2>/dev/null ||
            status=$?
        if [ "$status" -le 128 ]; then return "$status"; fi
        echo "dashboard: Chromium died from signal $((status - 128)) (try $try of 3)" >&2
    done
    return "$status"
}
browse dom --dump-dom >"$work/dom.html"
fail=0
for want in "hospitals-dp" "banks-secagg" "Round 4 open" "2/4 submissions" "completed" \
    "84.50 %" "of 10" "<polyline" "budget 10"; do
    if ! grep -qF -- "$want" "$work/dom.html"; then
        echo "dashboard: the rendered page lacks \"$want\"" >&2
        fail=1
    fi
done
if grep -qF -- "$token" "$work/dom.html"; then
    echo "dashboard: the token appears in the page" >&2
    fail=1
fi
browse shot --screenshot="$work/dashboard.png" >/dev/null
cp "$work/dashboard.png" docs/dashboard.png
if [ "$fail" -ne 0 ]; then
    sed -n '/<main>/,/<\/main>/p' "$work/dom.html" | head -60 >&2
    exit 1
fi
echo "dashboard: rendered in headless $(chromium --version 2>/dev/null | head -1), checked; screenshot in docs/dashboard.png"
