#!/usr/bin/env python3
"""Tests of bench_report.py on made-up runs: medians, ratios and the per-load SVGs with both
servers' latency curves. Run by test.sh (no root, no network)."""
import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def run(server, load, rep, scale):
    curve = [[p, us * scale] for p, us in [(0, 50), (50, 100), (90, 200), (99, 800), (99.9, 3000), (100, 9000)]]
    return {"server": server, "load": load, "repeat": rep, "rate": 1000.0 / scale, "ops": 1000,
            "seconds": 1.0, "errors": 0, "p50_us": 100 * scale, "p90_us": 200 * scale,
            "p99_us": 800 * scale, "p999_us": 3000 * scale, "cpu_us_per_op": 10.0 * scale,
            "percentiles": curve}


def main():
    with tempfile.TemporaryDirectory() as d:
        runs = [run("nginx", "close", r, 3.0) for r in (1, 2)] + \
               [run("xdptcp", "close", r, s) for r, s in ((1, 1.0), (2, 1.2))] + \
               [run("xdptcp", "xload", 1, 1.0)]
        path = os.path.join(d, "runs.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in runs))
        bench_report.main(path, os.path.join(d, "result.json"), os.path.join(d, "result.md"))
        result = json.load(open(os.path.join(d, "result.json")))
        want = (1000 + 1000 / 1.2) / 2 / (1000 / 3.0)
        assert abs(result["ratios"]["close"]["rate"] - want) < 1e-9, result["ratios"]
        md = open(os.path.join(d, "result.md")).read()
        assert "latency-close.svg" in md and "latency-xload.svg" in md, md

        root = ET.parse(os.path.join(d, "latency-close.svg")).getroot()
        curves = {p.get("data-server"): [tuple(map(float, xy.split(","))) for xy in p.get("points").split()]
                  for p in root.iter(SVG + "polyline")}
        assert set(curves) == {"kernel + nginx", "xdptcp"}, curves.keys()
        nginx, xdp = curves["kernel + nginx"], curves["xdptcp"]
        assert len(nginx) == len(xdp) == 5, "0 % to 99.9 % (the maximum is left out)"
        assert all(a[0] < b[0] for a, b in zip(xdp, xdp[1:])), "x grows with the percentile"
        assert all(a[1] > b[1] for a, b in zip(xdp, xdp[1:])), "y grows upward with latency"
        # nginx is 3x slower than the median xdptcp (1.1x): its curve lies above at every point.
        assert all(n[1] < x[1] for n, x in zip(nginx, xdp)), (nginx, xdp)
        assert "xdptcp vs kernel + nginx" in ET.tostring(root, encoding="unicode")

        root = ET.parse(os.path.join(d, "latency-xload.svg")).getroot()
        assert [p.get("data-server") for p in root.iter(SVG + "polyline")] == ["xdptcp"]
    print("test_bench_report.py: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
