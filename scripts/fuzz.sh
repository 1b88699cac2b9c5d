#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder that takes bytes from a peer or an operator
# (fuzz/fuzz_targets): cargo fuzz, which drives libFuzzer.
#
#   scripts/fuzz.sh                          # every target for 20 s (what CI runs)
#   FUZZ_SECONDS=600 scripts/fuzz.sh frame   # one target, ten minutes
#
# Only the stable toolchain exists here, so the targets run with `--sanitizer none`: libFuzzer's
# coverage guidance needs only stable codegen flags, while AddressSanitizer needs nightly's
# -Zsanitizer. Our crates have no `unsafe`, so what a sanitizer would add is already a panic,
# which libFuzzer reports as a crash. Each target first replays its committed reproducers
# (fuzz/regressions/<target>), then fuzzes from its seed corpus (fuzz/corpus/<target>).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/fedagg"
# Apart from the main build: the fuzz build's flags differ, and would evict it.
export CARGO_TARGET_DIR="$cache/fuzz-target"
if ! "$cache/cargo-fuzz/bin/cargo-fuzz" --version 2>/dev/null | grep -q "0.13.1"; then
    cargo install --quiet --locked --root "$cache/cargo-fuzz" cargo-fuzz --version 0.13.1
fi
export PATH="$cache/cargo-fuzz/bin:$PATH"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame secagg session paillier ledger config lattice)
seconds="${FUZZ_SECONDS:-20}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    echo "== fuzz $t (${seconds} s)"
    if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
        cargo fuzz run --sanitizer none "$t" fuzz/regressions/"$t"/* 2>&1 | tail -n 2
    fi
    mkdir -p "$work/$t"
    cp -r "fuzz/corpus/$t/." "$work/$t/"
    # (a copy: the run adds the inputs it finds to its corpus, and the seeds stay as committed)
    status=0
    cargo fuzz run --sanitizer none "$t" "$work/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        >"$work/$t.log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$work/$t.log" || true
    # libFuzzer exits non-zero on a crash and leaves the input in fuzz/artifacts/<target>.
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$work/$t.log"
        echo "fuzz $t failed (exit $status); a crash input is in fuzz/artifacts/$t"
        exit 1
    fi
done
