#!/usr/bin/env python3
"""Aggregates bench.sh / synflood.sh runs (one JSON object per line) into medians, ratios
xdptcp / kernel+nginx, the scaling of each server from 1 queue to several (rows LOAD and
LOAD-Nq), a JSON result file and a Markdown table, and draws one SVG per load with both
servers' latency percentile curves overlaid (latency-LOAD.svg beside the JSON). A run with a
"note" and no rate was not measurable; its note is shown instead of figures.

Open-loop rows (`xopenLEVEL-OWNER`: LEVEL % of OWNER's closed-loop maximum, the same offered
rate for both servers) get a table of their own: offered and achieved rate, p50 / p99 / p99.9
from each request's intended send time, errors and late answers, the load generator's own
send lag, and xdptcp's p99 over nginx's at that rate."""
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from xml.sax.saxutils import escape

SERVERS = [("nginx", "kernel + nginx", "#d62728"), ("xdptcp", "xdptcp", "#1f77b4")]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def median_curve(rs):
    """Per percentile, the median latency over the runs that measured it: [(p, us)]. The
    maximum (100 %) has no place on the 1/(1-p) axis and is left to the tables."""
    points = defaultdict(list)
    for r in rs:
        for p, us in r.get("percentiles") or []:
            if us is not None and float(p) < 100:
                points[float(p)].append(float(us))
    return [(p, statistics.median(v)) for p, v in sorted(points.items())]


def svg_curves(title, curves):
    """An SVG of latency percentile curves: x = percentile on the 1/(1-p) log axis (0 %, 90 %,
    99 %, 99.9 %, ...), y = latency in microseconds on a log axis; curves = [(label, colour,
    [(p, us)])]."""
    w, h, m = 760.0, 440.0, 70.0
    pts = [(label, colour, [(-math.log10(1 - p / 100), max(us, 1.0)) for p, us in c])
           for label, colour, c in curves if c]
    xmax = max([3.0] + [x for _, _, c in pts for x, _ in c])
    ys = [y for _, _, c in pts for _, y in c] or [1.0, 10.0]
    lo, hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    hi = max(hi, lo + 1)
    sx = lambda x: m + x / xmax * (w - 2 * m)
    sy = lambda y: h - m - (math.log10(y) - lo) / (hi - lo) * (h - 2 * m)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" '
           'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{w / 2:.0f}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
           f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
           f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>']
    for d in range(int(math.floor(xmax)) + 1):
        label = {0: "0%", 1: "90%", 2: "99%"}.get(d, "99." + "9" * (d - 2) + "%")
        out.append(f'<line x1="{sx(d):.1f}" y1="{m}" x2="{sx(d):.1f}" y2="{h - m}" stroke="#ddd"/>'
                   f'<text x="{sx(d):.1f}" y="{h - m + 18}" text-anchor="middle">{label}</text>')
    for e in range(lo, hi + 1):
        v = 10 ** e
        label = f"{v / 1000:g} ms" if v >= 1000 else f"{v:g} µs"
        out.append(f'<line x1="{m}" y1="{sy(v):.1f}" x2="{w - m}" y2="{sy(v):.1f}" stroke="#eee"/>'
                   f'<text x="{m - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(f'<text x="{w / 2:.0f}" y="{h - 20}" text-anchor="middle">percentile</text>')
    out.append(f'<text x="18" y="{h / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 18 {h / 2:.0f})">latency (log scale)</text>')
    for i, (label, colour, c) in enumerate(pts):
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in c)
        out.append(f'<polyline class="curve" data-server="{escape(label)}" fill="none" '
                   f'stroke="{colour}" stroke-width="2" points="{line}"/>')
        ly = m + 10 + 18 * i
        out.append(f'<line x1="{m + 16}" y1="{ly}" x2="{m + 40}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"/><text x="{m + 46}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svgs(groups, loads, out_dir):
    """One SVG per load with both servers' curves; returns the files written."""
    written = []
    for load in loads:
        curves = [(name, colour, median_curve(groups.get((load, key), [])))
                  for key, name, colour in SERVERS]
        if not any(c for _, _, c in curves):
            continue
        path = os.path.join(out_dir, f"latency-{load}.svg")
        with open(path, "w") as f:
            f.write(svg_curves(f"{load}: latency by percentile, xdptcp vs kernel + nginx", curves))
        written.append(path)
    return written


def open_level(load):
    """(level %, owner, suffix) of an open-loop row `xopenLEVEL-OWNER[-v6...]`, else None."""
    if not load.startswith("xopen"):
        return None
    level, _, rest = load[len("xopen"):].partition("-")
    owner, _, suffix = rest.partition("-")
    if not level.isdigit() or owner not in ("nginx", "xdptcp"):
        return None
    return int(level), owner, suffix


def open_loop_table(result, loads):
    """The open-loop rows, lowest offered rate first: both servers at the same offered rate."""
    def offered(load):
        rates = [result["medians"].get(f"{load}/{s}", {}).get("offered_per_s") for s, _, _ in SERVERS]
        return min([r for r in rates if r] or [math.inf])
    lines = [
        "| offered load | offered (/s) | server | achieved (/s) | p50 (µs) | p99 (µs) | p99.9 (µs) "
        "| errors + late | load generator's send lag p99 (µs) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for load in sorted(loads, key=offered):
        level, owner, suffix = open_level(load)
        owner_name = dict((k, n) for k, n, _ in SERVERS)[owner]
        label = f"{level} % of {owner_name}'s maximum" + (f" ({suffix})" if suffix else "")
        for server, name, _ in SERVERS:
            m = result["medians"].get(f"{load}/{server}")
            if not m:
                continue
            note = result["notes"].get(f"{load}/{server}")
            if note and m["rate"] is None:
                lines.append(f"| {label} | | {name} | not run: {note} | | | | | |")
                continue
            lines.append(
                f"| {label} | {fmt(m['offered_per_s'], 0)} | {name} | {fmt(m['rate'], 0)} "
                f"| {fmt(m['p50_us'])} | {fmt(m['p99_us'])} | {fmt(m['p999_us'])} "
                f"| {fmt(m['errors'], 0)} | {fmt(m.get('send_lag_p99_us'))} |")
        r = result["ratios"].get(load)
        if r and r.get("p99_us") is not None:
            lines.append(f"| {label} | | **ratio xdptcp / nginx** | | {fmt(r.get('p50_us'), 2)}× "
                         f"| **{fmt(r.get('p99_us'), 2)}×** | {fmt(r.get('p999_us'), 2)}× | | |")
    lines += ["", "Open loop: each server at the same offered rates, LEVEL % of either server's "
              "closed-loop maximum (xkeep) in the same repeat; latency from each request's "
              "intended send time; errors + late counts failed, reset and late (> 1 s) answers. "
              "A server is not run above its own maximum."]
    return lines


def main(runs_path, json_out, md_out):
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    groups = defaultdict(list)
    for r in runs:
        groups[(r["load"], r["server"])].append(r)
    metrics = ["rate", "p50_us", "p99_us", "p999_us", "errors", "cpu_us_per_op",
               "server_cpu_share", "offered_per_s", "send_lag_p99_us"]
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
    open_loads = [load for load in loads if open_level(load)]
    for load in [load for load in loads if load not in open_loads]:
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
    if len(open_loads) == len(loads):
        lines = []  # no closed-loop rows: no main table
    if open_loads:
        lines += ([""] if lines else []) + open_loop_table(result, open_loads)
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
    svgs = write_svgs(groups, loads, os.path.dirname(os.path.abspath(json_out)))
    if svgs:
        lines.append("")
        lines.append("Latency percentile curves: " + ", ".join(os.path.basename(p) for p in svgs) + ".")
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
