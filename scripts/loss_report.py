#!/usr/bin/env python3
"""Turns scripts/loss.sh's runs.jsonl into result.json and result.md: medians of the repeats
per row, server and loss, and the ratio xdptcp / kernel (reno) for each figure.

    loss_report.py RUNS.jsonl RESULT.json RESULT.md
"""

import json
import statistics
import sys

LABEL = {
    "reno": "Linux (reno)",
    "bbr": "Linux (bbr)",
    "xdptcp": "xdptcp",
    "xdptcp-single": "xdptcp single-buffer",
    "xdptcp-multi": "xdptcp multi-buffer",
}

# The bulk rows, IPv4 then IPv6.
BULK = ("upload", "echo_big", "upload_v6", "echo_big_v6")


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def seconds(v):
    if v is None:
        return "-"
    return "%.2f s" % v if v >= 1 else "%.0f ms" % (v * 1000)


def ratio(a, b):
    return a / b if a is not None and b else None


def main():
    runs_path, json_path, md_path = sys.argv[1:4]
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    groups = {}
    for r in runs:
        groups.setdefault((r["row"], r["server"], r["loss"]), []).append(r)
    result = []
    order = {name: i for i, name in enumerate(LABEL)}
    rows = {name: i for i, name in enumerate(("echo",) + BULK)}
    for (row, server, loss), rs in sorted(
            groups.items(),
            key=lambda kv: (rows.get(kv[0][0], 99), kv[0][2], order.get(kv[0][1], 99))):
        result.append({
            "row": row,
            "server": server,
            "loss_pct": loss,
            "repeats": len(rs),
            "errors": sum(r["errors"] for r in rs),
            "total_s": median(r["total_s"] for r in rs),
            "p50_s": median(r["p50_s"] for r in rs),
            "p99_s": median(r["p99_s"] for r in rs),
            "goodput_mib_s": median(r["goodput_mib_s"] for r in rs),
            "transfers": rs[0]["transfers"],
            "size": rs[0]["size"],
            "concurrency": rs[0]["concurrency"],
            "mtu": rs[0].get("mtu", 1500),
        })
    by = {(r["row"], r["server"], r["loss_pct"]): r for r in result}
    with open(json_path, "w") as f:
        json.dump({"runs": runs, "medians": result}, f, indent=1)

    md = []
    echo = [r for r in result if r["row"] == "echo"]
    if echo:
        e = echo[0]
        md.append("Echo under random loss both ways: %d transfers of %d KiB, %d at a time, "
                  "kernel client; medians of %d run(s). The kernel server sets its congestion "
                  "control with TCP_CONGESTION (reno: loss-based like ours; bbr: this host's "
                  "default, which ignores random loss)." % (
                      e["transfers"], e["size"] // 1024, e["concurrency"], e["repeats"]))
        md.append("")
        md.append("| loss | server | total | p50 | p99 | errors | total / reno | p50 / reno "
                  "| p99 / reno |")
        md.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in echo:
            base = by.get(("echo", "reno", r["loss_pct"]))
            cells = [ratio(r[k], base and base[k]) for k in ("total_s", "p50_s", "p99_s")]
            name = LABEL.get(r["server"], r["server"])
            if r["server"] == "xdptcp":
                name = "**xdptcp**"
            md.append("| %g %% | %s | %s | %s | %s | %d | %s |" % (
                r["loss_pct"], name, seconds(r["total_s"]), seconds(r["p50_s"]),
                seconds(r["p99_s"]), r["errors"],
                " | ".join("-" if c is None else "%.2f×" % c for c in cells)))
    bulk = [r for r in result if r["row"] in BULK]
    if bulk:
        md.append("")
        md.append("Bulk without loss at MTU %d (medians of %d run(s)): upload of %d MiB to "
                  "`--app discard` / a kernel receiver reading into a buffer; one echo round "
                  "trip of %d MiB (goodput counts both directions)%s." % (
                      bulk[0]["mtu"], bulk[0]["repeats"],
                      next((r["size"] for r in bulk if r["row"].startswith("upload")), 0)
                      // 2**20,
                      next((r["size"] for r in bulk if r["row"].startswith("echo_big")), 0)
                      // 2**20,
                      "; rows `_v6` over IPv6" if any(r["row"].endswith("_v6") for r in bulk)
                      else ""))
        md.append("")
        md.append("| transfer | server | time | goodput (MiB/s) | errors | goodput / kernel |")
        md.append("| --- | --- | ---: | ---: | ---: | ---: |")
        for r in bulk:
            base = by.get((r["row"], "reno", r["loss_pct"]))
            c = ratio(r["goodput_mib_s"], base and base["goodput_mib_s"])
            md.append("| %s | %s | %s | %s | %d | %s |" % (
                r["row"], LABEL.get(r["server"], r["server"]), seconds(r["total_s"]),
                "-" if r["goodput_mib_s"] is None else "%.0f" % r["goodput_mib_s"],
                r["errors"], "-" if c is None else "%.2f×" % c))
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    bad = sum(r["errors"] for r in result)
    if bad:
        print("loss_report.py: %d transfer(s) failed (see %s)" % (bad, runs_path),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
