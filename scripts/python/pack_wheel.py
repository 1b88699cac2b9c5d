#!/usr/bin/env python3
"""Pack the extension module a cargo build left (lib_fedagg.so) and the package's Python files
into a wheel, and print the wheel's path.

    scripts/python/pack_wheel.py --extension TARGET/debug/deps/lib_fedagg.so --out DIR

scripts/test.sh uses this to test the package from the extension its own test build compiled
(with the workspace's features, so nothing is compiled twice: README, two commands in under 20
minutes). The wheel to distribute is maturin's (scripts/wheel.sh), built from the same files;
CI installs and tests that one too. Standard library only.
"""
import argparse
import base64
import hashlib
import sysconfig
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "crates" / "fedagg-py"


def digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extension", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    project = tomllib.loads((PKG / "pyproject.toml").read_text())["project"]
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    name = project["name"]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tag = f"cp39-abi3-{platform}"
    dist = f"{name}-{version}.dist-info"
    files = {}
    for f in sorted((PKG / "python" / name).iterdir()):
        if f.is_file() and f.suffix in (".py", ".pyi", ".typed"):
            files[f"{name}/{f.name}"] = f.read_bytes()
    files[f"{name}/_fedagg.abi3.so"] = args.extension.read_bytes()
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project['description']}",
        f"License: {project['license']['text']}",
        f"Requires-Python: {project['requires-python']}",
    ] + [f"Requires-Dist: {d}" for d in project["dependencies"]]
    files[f"{dist}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{dist}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: fedagg pack_wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n"
    ).encode()
    record = "".join(f"{p},{digest(d)},{len(d)}\n" for p, d in files.items()) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    args.out.mkdir(parents=True, exist_ok=True)
    wheel = args.out / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            info = zipfile.ZipInfo(p, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if p.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    print(wheel)


if __name__ == "__main__":
    main()
