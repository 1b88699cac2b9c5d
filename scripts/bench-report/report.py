#!/usr/bin/env python3
"""Turns criterion's output into docs/benchmarks.md and PNG plots.

Usage: report.py CRITERION_DIR OUT_MD PLOT_DIR [NATIVE_CRITERION_DIR]

Reads every `<group>/<bench>/new/{benchmark,estimates}.json` under CRITERION_DIR (what
`cargo bench` leaves in target/criterion) and writes one table per benchmark group, a plot of the
cost per value against the model size for each mode's main operation, and a plot of that cost over
the plaintext baseline (`plain/add`: adding one f32 update into a running sum) at the same size.
NATIVE_CRITERION_DIR, if given and present, holds the same benches built with
`-C target-cpu=native`; they get a section of their own beside the portable build's figures.
"""
import json
import os
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from machine import describe  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import grid  # noqa: E402

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

root = pathlib.Path(sys.argv[1])
out_md = pathlib.Path(sys.argv[2])
plots = pathlib.Path(sys.argv[3])
plots.mkdir(parents=True, exist_ok=True)

def load(folder):
    """Every benchmark criterion left under `folder`, each as its latest run."""
    found = []
    for meta in sorted(folder.glob("*/*/new/benchmark.json")) + sorted(
        folder.glob("*/*/*/new/benchmark.json")
    ):
        est = meta.parent / "estimates.json"
        if not est.exists():
            continue
        b = json.load(open(meta))
        mean = json.load(open(est))["mean"]
        throughput = b.get("throughput") or {}
        m = re.search(r"m=(\d+(?:\.\d+)?)e(\d+)", b["full_id"])
        found.append(
            {
                "group": b["group_id"],
                "id": b["function_id"] or b["full_id"],
                "full": b["full_id"],
                "ns": mean["point_estimate"],
                "lo": mean["confidence_interval"]["lower_bound"],
                "hi": mean["confidence_interval"]["upper_bound"],
                "elements": throughput.get("Elements"),
                "bytes": throughput.get("Bytes"),
                "m": round(float(m.group(1)) * 10 ** int(m.group(2))) if m else None,
            }
        )
    return found


benches = load(root)
# Benches built for this CPU (`-C target-cpu=native`), if they were run: see `native_section`.
native_root = pathlib.Path(sys.argv[4]) if len(sys.argv) > 4 else None
native = load(native_root) if native_root and native_root.is_dir() else []
if not benches:
    sys.exit(f"no criterion results under {root}: run cargo bench first")


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


# Series for the plots: (label, regex on the full id), one point per m.
SERIES = [
    ("plaintext: add an f32 update (server)", r"^plain/add/m="),
    ("SecAgg: mask, 16 neighbours (client)", r"^secagg/mask/k=16/m="),
    ("SecAgg: mask, 64 neighbours (client)", r"^secagg/mask/k=64/m="),
    ("Paillier 2048: pack + encrypt (client)", r"^paillier/packed/encrypt/2048/m="),
    ("Paillier 2048: decrypt + unpack (key holder)", r"^paillier/packed/decrypt/2048/m="),
    ("Lattice: encrypt (client)", r"^lattice/.*encrypt.*m="),
    ("DP: clip (server)", r"^dp/clip/m="),
    ("DP: noise (server)", r"^dp/noise/m="),
]


def split_threads(bench_id):
    """`(id without its /threads=N suffix, N)`; N is 1 for an id without the suffix."""
    mm = re.match(r"(.*)/threads=(\d+)$", bench_id)
    return (mm.group(1), int(mm.group(2))) if mm else (bench_id, 1)


def series(pattern):
    """One core's points: a run on several threads (`.../threads=N`, N > 1) is left to the tables'
    all-cores column, so each m has one point."""
    pts = sorted(
        (b["m"], b["ns"] / b["m"])
        for b in benches
        if b["m"] and re.search(pattern, b["full"]) and split_threads(b["full"])[1] == 1
    )
    return pts


plain = dict(series(SERIES[0][1]))

def loglog(lines, path, ylabel, title):
    """A log-log plot of (label, points) against the model size."""
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for label, pts in lines:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label, lw=1.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model size m (values)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


per_value = [(label, series(pat)) for label, pat in SERIES]
loglog(
    [(l, p) for l, p in per_value if p],
    plots / "per-value.png",
    "time per value (ns)",
    "Cost per value against model size, one core",
)

ratio_rows = []
if plain:
    ratios = []
    for label, pts in per_value[1:]:
        pts = [(m, v / plain[m]) for m, v in pts if m in plain]
        if pts:
            ratios.append((label, pts))
            ratio_rows += [(label, m, r) for m, r in pts]
    loglog(
        ratios,
        plots / "overhead.png",
        "time / plaintext addition of the same update",
        "Overhead against plaintext aggregation",
    )

def one_core_and_all(rows):
    """Pairs each benchmark run on every core (`.../threads=N`, N > 1) with its one-core run (the
    same id with `/threads=1` or without the suffix): (row, all-cores row or None, N or None)."""
    by_id = {b["id"]: b for b in rows}
    wide_of = {}
    for b in rows:
        stem, n = split_threads(b["id"])
        if n > 1:
            base = by_id.get(f"{stem}/threads=1") or by_id.get(stem)
            if base is not None:
                wide_of[base["id"]] = (b, n)
    paired = {w["id"] for w, _ in wide_of.values()}
    return [(b, *wide_of.get(b["id"], (None, None))) for b in rows if b["id"] not in paired]


def group_table(g):
    """One group's table; runs on every core sit beside their one-core run."""
    rows = sorted((b for b in benches if b["group"] == g), key=lambda b: (b["m"] or 0, b["id"]))
    pairs = one_core_and_all(rows)
    wide = any(w for _, w, _ in pairs)
    head = "| benchmark | mean | 95 % interval | per value |"
    rule = "| --- | --- | --- | --- |"
    if wide:
        head += " all cores | speed-up |"
        rule += " --- | --- |"
    out = [f"### {g}", "", head, rule]
    for b, w, n in pairs:
        per = fmt_time(b["ns"] / b["elements"]) if b["elements"] else ""
        name = re.sub(r"/threads=1$", "", b["id"]) if w else b["id"]
        row = f"| {name} | {fmt_time(b['ns'])} | {fmt_time(b['lo'])} to {fmt_time(b['hi'])} | {per} |"
        if wide:
            row += f" {fmt_time(w['ns'])} ({n}) | {b['ns'] / w['ns']:.2f}x |" if w else " | |"
        out.append(row)
    out.append("")
    return out


def prg_against_openssl(folder, rows, heading):
    """Our raw keystream beside OpenSSL's AES-256-CTR, as `benches/secagg.rs` recorded it in
    `folder`."""
    path = folder / "openssl-aes-256-ctr.json"
    ours = [b for b in rows if b["full"].startswith("secagg/prg/") and b["bytes"]]
    if not path.exists() or not ours:
        return []
    ref = json.load(open(path))
    lo, hi = sorted(ref["bytes_per_second"])
    out = [
        heading,
        "",
        "Our mask stream's raw AES-256-CTR keystream (`secagg/prg`, one core) beside OpenSSL's on",
        f"the same CPU (`{ref['command']}`, taken just before and just after the PRG benches:",
        f"{lo / 1e9:.2f} to {hi / 1e9:.2f} GB/s).",
        "",
        "| benchmark | ours | share of OpenSSL |",
        "| --- | --- | --- |",
    ]
    for b in sorted(ours, key=lambda b: b["m"] or 0):
        rate = b["bytes"] / b["ns"]  # bytes a nanosecond = GB/s
        share = f"{100 * rate * 1e9 / hi:.0f} to {100 * rate * 1e9 / lo:.0f} %"
        out.append(f"| {b['id']} | {rate:.2f} GB/s | {share} |")
    out.append("")
    return out


def native_section():
    """The benches built with `-C target-cpu=native` beside the portable build's runs of the same
    ids (see "Built for this CPU" in docs/secagg.md)."""
    portable = {b["full"]: b for b in benches}
    pairs = [(portable[b["full"]], b) for b in native if b["full"] in portable]
    if not pairs:
        return []
    out = [
        "## Built for this CPU",
        "",
        "The same benches built with `RUSTFLAGS=\"-C target-cpu=native\"` (in",
        "`$CARGO_TARGET_DIR/native`), beside the portable build's runs above. The portable build",
        "picks `aes`'s VAES backend at run time but reaches about half its speed (docs/secagg.md,",
        "\"Built for this CPU\"); a binary built for the CPU runs it at full speed, and only on CPUs",
        "with the same features.",
        "",
        "| benchmark | portable build | built for this CPU | speed-up |",
        "| --- | --- | --- | --- |",
    ]
    for p, n in sorted(pairs, key=lambda pn: (pn[0]["group"], pn[0]["m"] or 0, pn[0]["id"])):
        out.append(
            f"| {p['full']} | {fmt_time(p['ns'])} | {fmt_time(n['ns'])} | {p['ns'] / n['ns']:.2f}x |"
        )
    out.append("")
    out += prg_against_openssl(native_root, native, "### The PRG against OpenSSL, built for this CPU")
    return out


rel = os.path.relpath(plots, out_md.parent)

lines = [
    "# Benchmarks",
    "",
    "Generated by `scripts/bench-report.sh` from criterion's output (`cargo bench`; see the",
    f"README for the bench commands). Machine: {describe()}; each benchmark",
    "runs on one thread unless its id says otherwise. Times are criterion's mean with its 95 %",
    "confidence interval. Each row is the latest run of that benchmark in the target folder, so rows",
    "may come from different runs (rerun the benches to refresh them all). The plaintext baseline",
    "(`plain/add`) stays in cache up to 10^6 values and is memory-bound at 10^7, which is why the",
    "ratios drop there.",
    "",
    "The first section is the overhead grid: every mode against the model",
    "size, the cohort and the dropout rate, for the client, the server and the key holder, with",
    "bytes on the wire. The sections after it are the per-operation benchmarks of each crate.",
    "",
]
lines += grid.section(benches, root, plots, rel, loglog, fmt_time)
lines += [
    "## Per-operation costs",
    "",
    f"![cost per value]({rel}/per-value.png)",
    "",
]
if plain:
    lines += [f"![overhead against plaintext]({rel}/overhead.png)", ""]
    lines += ["| operation | m | time / plaintext addition |", "| --- | --- | --- |"]
    lines += [f"| {l} | 1e{len(str(m)) - 1} | {r:,.1f}x |" for l, m, r in ratio_rows]
    lines.append("")
lines += prg_against_openssl(root, benches, "### The PRG against OpenSSL")
groups = sorted({b["group"] for b in benches})
for g in groups:
    lines += group_table(g)
lines += native_section()
out_md.write_text("\n".join(lines))
print(f"wrote {out_md} ({len(benches)} benchmarks, {len(native)} built for this CPU) and plots in {plots}")
