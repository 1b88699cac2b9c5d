#!/usr/bin/env bash
# Fetches and caches a CPU libtorch for tch (torch-sys), and prints its folder.
#
# tch 0.26 expects libtorch 2.13.0. A CPU libtorch is assembled from three official wheels
# (torch, and the two CUDA runtime libraries its shared objects name as dependencies), fetched with
# `pip download --no-deps` from the package registry pip is configured for. The result (about
# 490 MB) is cached outside the clone, in ${XDG_CACHE_HOME:-~/.cache}/fedagg/libtorch-2.13.0, and
# the download is skipped when it is already there. A libtorch the user has (LIBTORCH set) is used
# instead and nothing is fetched.
#
# It also links the folder as `.libtorch` in the repository, where `.cargo/config.toml` points
# plain `cargo` commands.
#
# Usage: scripts/libtorch.sh          # prints the libtorch folder on stdout
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

if [[ -n "${LIBTORCH:-}" ]]; then
    echo "$LIBTORCH"
    exit 0
fi

version=2.13.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/fedagg"
dest="$cache/libtorch-$version"
if [[ -f "$dest/.complete" ]]; then
    ln -sfn "$dest" "$repo/.libtorch"
    echo "$dest"
    exit 0
fi

echo "fetching a CPU libtorch $version into $dest (about 490 MB, once)" >&2
mkdir -p "$cache"
work="$(mktemp -d "$cache/libtorch-fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$work/wheels" \
    "torch==$version" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85" >&2

python3 - "$work" <<'PY'
import pathlib, shutil, sys, zipfile
work = pathlib.Path(sys.argv[1])
out = work / "libtorch"
(out / "lib").mkdir(parents=True)
wanted_torch = {"libtorch_cpu.so", "libc10.so", "libtorch.so", "libgomp.so.1"}
wanted_cuda = {"libcudart.so.13", "libcupti.so.13"}
for wheel in sorted((work / "wheels").glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            base = name.rsplit("/", 1)[-1]
            if name.startswith("torch/include/") and not info.is_dir():
                target = out / "include" / name[len("torch/include/"):]
            elif name.startswith("torch/lib/") and base in wanted_torch:
                target = out / "lib" / base
            elif base in wanted_cuda:
                target = out / "lib" / base
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
missing = (wanted_torch | wanted_cuda) - {p.name for p in (out / "lib").iterdir()}
if missing:
    sys.exit(f"libtorch: the wheels lacked {sorted(missing)}")
PY

rm -rf "$dest"
mv "$work/libtorch" "$dest"
touch "$dest/.complete"
ln -sfn "$dest" "$repo/.libtorch"
echo "$dest"
