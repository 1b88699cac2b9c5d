"""The overhead grid of docs/benchmarks.md: each (mode, m, n, dropout) cell's client, server and
key-holder cost and bytes per client, composed from the per-operation times `benches/grid.rs`
measures (see that file for the composition rules) and the wire sizes it writes.

Called by report.py with criterion's parsed results; writes docs/benchmarks/grid.csv and two
plots, and returns the Markdown section.
"""
import csv
import json
import re

CLIENTS = [10, 100, 1000]
DROPOUTS = [0, 10, 30]
MODES = ["plaintext", "dp", "secagg", "secagg_dp", "paillier", "lattice"]
STREAMS = 8  # mask streams per grid/secagg/stream iteration


def label(m):
    return "2.5e7" if m == 25_000_000 else f"1e{len(str(m)) - 1}"


def size_of(label_text):
    mant, exp = label_text.split("e")
    return int(round(float(mant) * 10 ** int(exp)))


def section(benches, criterion_dir, plots, rel, loglog, fmt_time):
    ns = {b["full"]: b["ns"] for b in benches}
    wire_path = criterion_dir / "grid-wire.json"
    if not wire_path.exists() or not any(k.startswith("grid/") for k in ns):
        return ["## The overhead grid", "", "Not measured yet: run `cargo bench --no-default-features --bench grid`.", ""]
    wire = json.load(open(wire_path))
    sizes = sorted({size_of(m) for k in ns if k.startswith("grid/plain/add/") for m in re.findall(r"m=([\d.]+e\d+)", k)})

    def t(op, m):
        return ns.get(f"grid/{op}/m={label(m)}")

    # Paillier: measured at one size per n, scaled by the ciphertext count.
    pai = {}
    for k, v in ns.items():
        mm = re.match(r"grid/paillier/(\w+)/(\d+)/n=(\d+)/m=([\d.]+e\d+)$", k)
        if mm:
            op, bits, n, m0 = mm.group(1), mm.group(2), int(mm.group(3)), size_of(mm.group(4))
            pai[(op, n)] = (v, m0, bits)

    def pai_cost(op, n, m):
        if (op, n) not in pai:
            return None, False
        v, m0, bits = pai[(op, n)]
        c = wire.get(f"paillier/{bits}/n={n}/m={label(m)}")
        c0 = wire.get(f"paillier/{bits}/n={n}/m={label(m0)}")
        if not c or not c0:
            return None, False
        return v * c["ciphertexts"] / c0["ciphertexts"], m != m0

    pai_bits = next(iter(pai.values()))[2] if pai else "2048"

    # SecAgg key agreement and sharing, from benches/secagg.rs when present (linear in k).
    share_pts = sorted(
        (int(mm.group(1)), v)
        for k, v in ns.items()
        for mm in [re.match(r"secagg/client/share_keys/k=(\d+)$", k)]
        if mm
    )
    keygen = ns.get("secagg/client/keygen", 0.0)

    def share_cost(k):
        if len(share_pts) < 2:
            return 0.0
        (k0, v0), (k1, v1) = share_pts[0], share_pts[-1]
        return keygen + v0 + (v1 - v0) * (k - k0) / (k1 - k0)

    # Lattice, from benches/lattice.rs when present (no n dependence but the vector count).
    lat = {}
    for k, v in ns.items():
        mm = re.match(r"lattice/(encrypt|decrypt)/m=([\d.]+e\d+)$", k)
        if mm:
            lat[(mm.group(1), size_of(mm.group(2)))] = v
        mm = re.match(r"lattice/add/m=([\d.]+e\d+)/n=(\d+)$", k)
        if mm:
            lat[("add", size_of(mm.group(1)))] = v / int(mm.group(2))

    def stream_on_all_cores(b, m):
        """`grid/secagg/stream` on every core, or None."""
        for k, v in ns.items():
            if re.fullmatch(rf"grid/secagg/stream/{b}/m={re.escape(label(m))}/threads=\d+", k):
                return v
        return None

    rows = []
    for m in sizes:
        enc, add = t("plain/encode", m), t("plain/add", m)
        if enc is None or add is None:
            continue
        for n in CLIENTS:
            for d in DROPOUTS:
                dropped = n * d // 100
                s = n - dropped
                # Bytes are averaged over the cohort: a client that drops out before its upload
                # sends nothing (SecAgg's counts come from the simulated round itself).
                plain = {"client": enc, "server": s * add, "keyholder": 0.0,
                         "up": wire[f"plain/m={label(m)}"]["up"] * s / n}
                cells = {"plaintext": (plain, False)}
                if t("dp/accept", m) is not None:
                    cells["dp"] = (
                        {"client": enc, "server": s * t("dp/accept", m) + t("dp/noise", m), "keyholder": 0.0, "up": plain["up"]},
                        False,
                    )
                w = wire.get(f"secagg/n={n}/dropout={d}%/m={label(m)}")
                b = w and f"b={w['element_bytes']}"
                if w and t(f"secagg/stream/{b}", m) is not None:
                    k = w["k"]
                    stream = t(f"secagg/stream/{b}", m) / STREAMS
                    unmask_streams = s + dropped * k * s / n
                    # Unmasking on every core (the uploads are still added one by one as they
                    # arrive). The server starts threads only for enough keystream, so a stream
                    # never costs more than on one core.
                    wide = stream_on_all_cores(b, m)
                    server_all = None
                    if wide is not None:
                        server_all = s * t(f"secagg/add/{b}", m) + unmask_streams * min(stream, wide / STREAMS)
                    cells["secagg"] = (
                        {
                            "client": t(f"secagg/encode/{b}", m) + (k + 1) * stream + share_cost(k),
                            "server": s * t(f"secagg/add/{b}", m) + unmask_streams * stream,
                            "server_all": server_all,
                            "keyholder": 0.0,
                            "up": w["up"],
                            "k": k,
                        },
                        False,
                    )
                dd = wire.get(f"ddg/m={label(m)}")
                if w and dd and "fixed_up" in w and t("ddg/encode", m) is not None:
                    k = w["k"]
                    stream = t("ddg/stream", m) / STREAMS
                    unmask_streams = s + dropped * k * s / n
                    cells["secagg_dp"] = (
                        {
                            "client": t("ddg/encode", m) + (k + 1) * stream + share_cost(k),
                            "server": s * t("ddg/add", m) + unmask_streams * stream + t("ddg/decode", m),
                            "keyholder": 0.0,
                            "up": w["fixed_up"] + dd["masked_input"] * s / n,
                            "k": k,
                        },
                        False,
                    )
                ce, s1 = pai_cost("encrypt", n, m)
                ca, s2 = pai_cost("add", n, m)
                cd, s3 = pai_cost("decrypt", n, m)
                if ce is not None and ca is not None and cd is not None:
                    cells["paillier"] = (
                        {"client": ce, "server": s * ca, "keyholder": cd,
                         "up": wire[f"paillier/{pai_bits}/n={n}/m={label(m)}"]["up"] * s / n},
                        s1 or s2 or s3,
                    )
                if all((op, m) in lat for op in ("encrypt", "add", "decrypt")):
                    cells["lattice"] = (
                        {"client": lat[("encrypt", m)], "server": s * lat[("add", m)],
                         "keyholder": lat[("decrypt", m)], "up": None},
                        False,
                    )
                for mode, (c, scaled) in cells.items():
                    rows.append(
                        {
                            "mode": mode, "m": m, "n": n, "dropout": d, "scaled": scaled,
                            "client_s": c["client"] / 1e9, "server_s": c["server"] / 1e9,
                            "keyholder_s": c["keyholder"] / 1e9,
                            "bytes_up": c["up"],
                            "client_x": c["client"] / plain["client"],
                            "server_x": c["server"] / plain["server"],
                            "bytes_x": (c["up"] / plain["up"]) if c["up"] else None,
                            "k": c.get("k"),
                            "server_all_s": c["server_all"] / 1e9 if c.get("server_all") else None,
                            "server_all_x": c["server_all"] / plain["server"] if c.get("server_all") else None,
                        }
                    )

    with open(plots / "grid.csv", "w", newline="") as f:
        cols = ["mode", "m", "n", "dropout", "scaled", "k", "client_s", "server_s", "keyholder_s",
                "bytes_up", "client_x", "server_x", "bytes_x", "server_all_s"]
        wr = csv.DictWriter(f, fieldnames=cols)
        wr.writeheader()
        for r in rows:
            wr.writerow({c: r[c] for c in cols})

    def pts(mode, key, n=100, d=10):
        return [(r["m"], r[key]) for r in rows if r["mode"] == mode and r["n"] == n and r["dropout"] == d and r[key]]

    for key, name, what in (("client_x", "grid-client.png", "client"), ("server_x", "grid-server.png", "server")):
        loglog(
            [(mode + (" (additions only: a lower bound)" if mode == "lattice" and what == "server" else ""),
              pts(mode, key)) for mode in MODES[1:] if pts(mode, key)],
            plots / name,
            f"{what} time / plaintext {what} time",
            f"Overhead of each mode over plaintext FedAvg, {what} side (n = 100, 10 % dropout)",
        )

    def secs(x):
        return fmt_time(x * 1e9) if x else "0"

    def star(r):
        return "*" if r["scaled"] else ""

    out = [
        "## The overhead grid",
        "",
        "What a round costs in each mode against the model size m, the cohort n and the dropout",
        "rate, beside plaintext FedAvg (`benches/grid.rs`, composed here; every cell is in",
        f"[grid.csv]({rel}/grid.csv)). Client: one participant's work to produce its upload (SecAgg:",
        "quantize, key agreement and sharing for its k neighbours, k + 1 mask streams). Server: the",
        "whole round's aggregation (survivors' uploads added into the running sum; DP: clipping",
        "each and one noise draw; SecAgg: unmasking, one self mask per survivor and each dropped",
        "client's pairwise masks with its surviving neighbours). Key holder: decrypting the sum.",
        "Bytes: one participant's uploads in their frames, averaged over the cohort, dropouts",
        "included (SecAgg's from every message of a simulated round with those dropouts; the model",
        "download, 4m + 24 bytes, is the same in every mode). Ratios are against plaintext in the",
        f"same cell. Paillier is {pai_bits}-bit; its cells marked * are scaled by the ciphertext count",
        "from the size measured. Lattice cells come from `cargo bench --features lattice --bench",
        "lattice` at the sizes it measures; its server time counts the ciphertext additions only",
        "(that bench does not decode uploads), so the lattice server ratio is a lower bound.",
        "From 10^7 values the plaintext client's encode (a fresh 40 to 100 MB buffer per update,",
        "first touched page by page) costs 20 times more per value than below, so every client",
        "ratio drops there: the other modes did not get cheaper.",
        "",
        f"![client overhead]({rel}/grid-client.png)",
        "",
        f"![server overhead]({rel}/grid-server.png)",
        "",
        "### n = 100, 10 % dropout",
        "",
        "| mode | m | client | server (round) | key holder | bytes up | client x | server x | bytes x |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["n"] == 100 and r["dropout"] == 10:
            bx = f"{r['bytes_x']:.2f}" if r["bytes_x"] else "—"
            up = f"{r['bytes_up']:,.0f}" if r["bytes_up"] else "—"
            out.append(
                f"| {r['mode']} | {label(r['m'])}{star(r)} | {secs(r['client_s'])} | {secs(r['server_s'])} | "
                f"{secs(r['keyholder_s'])} | {up} | {r['client_x']:,.1f} | {r['server_x']:,.1f} | {bx} |"
            )
    biggest = max(sizes) if sizes else None
    for m_show in [1_000_000, biggest]:
        if m_show not in sizes:
            continue
        out += [
            "",
            f"### m = {label(m_show)}: clients and dropout",
            "",
            "| mode | n | dropout | client | server (round) | key holder | bytes up | server x |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            if r["m"] == m_show and r["mode"] != "plaintext":
                up = f"{r['bytes_up']:,.0f}" if r["bytes_up"] else "—"
                k = f" (k = {r['k']})" if r.get("k") else ""
                out.append(
                    f"| {r['mode']}{star(r)} | {r['n']}{k} | {r['dropout']} % | {secs(r['client_s'])} | "
                    f"{secs(r['server_s'])} | {secs(r['keyholder_s'])} | {up} | {r['server_x']:,.1f} |"
                )
    # SecAgg's server with unmasking on every core, against plaintext's one core.
    wide_rows = [r for r in rows if r["mode"] == "secagg" and r["server_all_s"] and r["m"] >= 1_000_000]
    if wide_rows:
        out += [
            "",
            "### SecAgg's server on every core",
            "",
            "The server unmasks on every core (`grid/secagg/stream/.../threads=N`, each stream at",
            "the faster of one core and all); the survivors' uploads are still added one by one as",
            "they arrive. Ratios are against plaintext's server on one core.",
            "",
            "| m | n | dropout | server, one core | server, every core | server x, one core | server x, every core |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in wide_rows:
            out.append(
                f"| {label(r['m'])} | {r['n']} (k = {r['k']}) | {r['dropout']} % | {secs(r['server_s'])} | "
                f"{secs(r['server_all_s'])} | {r['server_x']:,.1f} | {r['server_all_x']:,.1f} |"
            )
    # Distributed DP beside SecAgg alone: the client's extra work and the bytes per coordinate.
    ddg_rows = []
    for m in sizes:
        dd = wire.get(f"ddg/m={label(m)}")
        sa = next((r for r in rows if r["mode"] == "secagg" and r["m"] == m and r["n"] == 100 and r["dropout"] == 10), None)
        sd = next((r for r in rows if r["mode"] == "secagg_dp" and r["m"] == m and r["n"] == 100 and r["dropout"] == 10), None)
        w = wire.get(f"secagg/n=100/dropout=10%/m={label(m)}")
        if dd and sa and sd and t("ddg/encode", m) is not None and w:
            ddg_rows.append((m, t("ddg/encode", m), sa["client_s"], sd["client_s"], dd, w["element_bytes"]))
    if ddg_rows:
        out += [
            "",
            "### Distributed DP beside SecAgg alone (n = 100, 10 % dropout)",
            "",
            "`secagg_dp` at 16 bits per coordinate: the participant clips, rotates (randomized",
            "Walsh-Hadamard over the vector padded to a power of two), rounds and adds its discrete",
            "Gaussian share before masking (`grid/ddg/encode`), then masks the padded vector with",
            "2-byte elements. SecAgg alone quantizes m values into 4- or 5-byte elements.",
            "",
            "| m | rotation, rounding and noise | SecAgg client | secagg_dp client | padded to | bytes per coordinate (secagg_dp) | bytes per coordinate (SecAgg) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for m, enc, sa, sd, dd, eb in ddg_rows:
            out.append(
                f"| {label(m)} | {fmt_time(enc)} | {secs(sa)} | {secs(sd)} | {dd['dim']:,} | "
                f"{dd['bytes_per_coordinate']:.2f} | {eb} |"
            )
    # The composition checked against a direct measurement: SecAgg unmasking (benches/secagg.rs,
    # complete graph, n = 100).
    checks = []
    for d in DROPOUTS:
        for k, v in ns.items():
            mm = re.match(rf"secagg/unmask/n=(\d+)/m=([\d.]+e\d+)/dropout={d}%$", k)
            # (that bench uses a 32-bit modulus: 4-byte elements)
            if mm and t("secagg/stream/b=4", size_of(mm.group(2))) is not None:
                n, m = int(mm.group(1)), size_of(mm.group(2))
                dropped = n * d // 100
                s = n - dropped
                composed = (s + dropped * s) * t("secagg/stream/b=4", m) / STREAMS
                checks.append((n, label(m), d, composed, v))
    if checks:
        out += [
            "",
            "Check of the composition against a direct measurement (`secagg/unmask`: the server's",
            "whole unmasking of a complete-graph round, Shamir reconstruction included):",
            "",
            "| n | m | dropout | composed from mask streams | measured |",
            "| --- | --- | --- | --- | --- |",
        ]
        out += [f"| {n} | {m} | {d} % | {fmt_time(c)} | {fmt_time(v)} |" for n, m, d, c, v in checks]
    out.append("")
    return out
