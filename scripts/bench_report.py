#!/usr/bin/env python3
"""Aggregates bench.sh / synflood.sh runs (one JSON object per line) into medians, ratios
xdptcp / kernel+nginx, the scaling of each server from 1 queue to several (rows LOAD and
LOAD-Nq), a JSON result file and a Markdown table. A run with a "note" and no rate was not
measurable; its note is shown instead of figures."""
import json
import statistics
import sys
from collections import defaultdict


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def main(runs_path, json_out, md_out):
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    groups = defaultdict(list)
    for r in runs:
        groups[(r["load"], r["server"])].append(r)
    metrics = ["rate", "p50_us", "p99_us", "p999_us", "errors", "cpu_us_per_op",
               "server_cpu_share"]
    result = {"repeats": {}, "medians": {}, "ratios": {}, "scaling": {}, "notes": {},
              "runs": runs}
    loads = []
    for (load, server), rs in sorted(groups.items()):
        if load not in loads:
            loads.append(load)
        result["repeats"][f"{load}/{server}"] = len(rs)
        result["medians"][f"{load}/{server}"] = {m: median([r.get(m) for r in rs]) for m in metrics}
        notes = [r["note"] for r in rs if r.get("note")]
        if notes:
            result["notes"][f"{load}/{server}"] = notes[0]
    for load in loads:
        k = result["medians"].get(f"{load}/nginx")
        x = result["medians"].get(f"{load}/xdptcp")
        if not k or not x:
            continue
        ratio = {}
        for m in ["rate", "p50_us", "p99_us", "p999_us", "cpu_us_per_op"]:
            if k.get(m) and x.get(m) is not None:
                ratio[m] = x[m] / k[m]
        result["ratios"][load] = ratio
    for load in loads:
        base, _, queues = load.rpartition("-")
        if not (queues.endswith("q") and queues[:-1].isdigit() and base in loads):
            continue
        for server in ["nginx", "xdptcp"]:
            one = result["medians"].get(f"{base}/{server}", {}).get("rate")
            many = result["medians"].get(f"{load}/{server}", {}).get("rate")
            if one and many:
                result["scaling"][f"{load}/{server}"] = many / one
    with open(json_out, "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        "| load | server | rate (/s) | p50 (µs) | p99 (µs) | p99.9 (µs) | errors | CPU µs/op (both cores) | server's CPU share |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for load in loads:
        for server in ["nginx", "xdptcp"]:
            m = result["medians"].get(f"{load}/{server}")
            if not m:
                continue
            name = "kernel + nginx" if server == "nginx" else "xdptcp"
            note = result["notes"].get(f"{load}/{server}")
            if note and m["rate"] is None:
                lines.append(f"| {load} | {name} | not measurable: {note} | | | | | | |")
                continue
            lines.append(
                f"| {load} | {name} | {fmt(m['rate'], 0)} | {fmt(m['p50_us'])} | {fmt(m['p99_us'])} "
                f"| {fmt(m['p999_us'])} | {fmt(m['errors'], 0)} | {fmt(m['cpu_us_per_op'], 2)} "
                f"| {fmt(m.get('server_cpu_share'), 2)} |"
            )
        r = result["ratios"].get(load)
        if r:
            lines.append(
                f"| {load} | **ratio xdptcp / nginx** | **{fmt(r.get('rate'), 2)}×** | {fmt(r.get('p50_us'), 2)}× "
                f"| {fmt(r.get('p99_us'), 2)}× | {fmt(r.get('p999_us'), 2)}× | | {fmt(r.get('cpu_us_per_op'), 2)}× | |"
            )
    reps = sorted(set(result["repeats"].values()))
    lines.append("")
    lines.append(f"Medians of {', '.join(map(str, reps))} run(s) each; rate is requests/s "
                 "(keep-alive) or connections/s (close, connect-close). The server's CPU share "
                 "is its processes' CPU time over the busy time of all cores (the rest is the "
                 "client and the softirq work run on its behalf).")
    if result["scaling"]:
        lines += ["", "| load | scaling kernel + nginx | scaling xdptcp |", "| --- | ---: | ---: |"]
        for load in loads:
            k = result["scaling"].get(f"{load}/nginx")
            x = result["scaling"].get(f"{load}/xdptcp")
            if k is None and x is None:
                continue
            kf = f"{k:.2f}×" if k is not None else "–"
            xf = f"{x:.2f}×" if x is not None else "–"
            lines.append(f"| {load} vs 1 queue | {kf} | {xf} |")
    with open(md_out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    empty = [f"{r['load']}/{r['server']}" for r in runs if not r.get("rate") and not r.get("note")]
    if empty:
        sys.exit(f"bench_report.py: no throughput measured for {', '.join(empty)}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: bench_report.py RUNS.jsonl RESULT.json RESULT.md")
    main(*sys.argv[1:])
