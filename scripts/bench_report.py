#!/usr/bin/env python3
"""Aggregates bench.sh / synflood.sh runs (one JSON object per line) into medians, ratios
xdptcp / kernel+nginx, a JSON result file and a Markdown table, and draws one SVG per load
with both servers' latency percentile curves overlaid (latency-LOAD.svg beside the JSON)."""
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


def main(runs_path, json_out, md_out):
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    groups = defaultdict(list)
    for r in runs:
        groups[(r["load"], r["server"])].append(r)
    metrics = ["rate", "p50_us", "p99_us", "p999_us", "errors", "cpu_us_per_op"]
    result = {"repeats": {}, "medians": {}, "ratios": {}, "runs": runs}
    loads = []
    for (load, server), rs in sorted(groups.items()):
        if load not in loads:
            loads.append(load)
        result["repeats"][f"{load}/{server}"] = len(rs)
        result["medians"][f"{load}/{server}"] = {m: median([r.get(m) for r in rs]) for m in metrics}
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
    with open(json_out, "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        "| load | server | rate (/s) | p50 (µs) | p99 (µs) | p99.9 (µs) | errors | CPU µs/op (both cores) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for load in loads:
        for server in ["nginx", "xdptcp"]:
            m = result["medians"].get(f"{load}/{server}")
            if not m:
                continue
            name = "kernel + nginx" if server == "nginx" else "xdptcp"
            lines.append(
                f"| {load} | {name} | {fmt(m['rate'], 0)} | {fmt(m['p50_us'])} | {fmt(m['p99_us'])} "
                f"| {fmt(m['p999_us'])} | {fmt(m['errors'], 0)} | {fmt(m['cpu_us_per_op'], 2)} |"
            )
        r = result["ratios"].get(load)
        if r:
            lines.append(
                f"| {load} | **ratio xdptcp / nginx** | **{fmt(r.get('rate'), 2)}×** | {fmt(r.get('p50_us'), 2)}× "
                f"| {fmt(r.get('p99_us'), 2)}× | {fmt(r.get('p999_us'), 2)}× | | {fmt(r.get('cpu_us_per_op'), 2)}× |"
            )
    reps = sorted(set(result["repeats"].values()))
    lines.append("")
    lines.append(f"Medians of {', '.join(map(str, reps))} run(s) each; rate is requests/s "
                 "(keep-alive) or connections/s (close, connect-close).")
    svgs = write_svgs(groups, loads, os.path.dirname(os.path.abspath(json_out)))
    if svgs:
        lines.append("")
        lines.append("Latency percentile curves: " + ", ".join(os.path.basename(p) for p in svgs) + ".")
    with open(md_out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    empty = [f"{r['load']}/{r['server']}" for r in runs if not r.get("rate")]
    if empty:
        sys.exit(f"bench_report.py: no throughput measured for {', '.join(empty)}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: bench_report.py RUNS.jsonl RESULT.json RESULT.md")
    main(*sys.argv[1:])
