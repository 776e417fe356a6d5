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
    scaling_and_notes()
    open_loop()
    print("test_bench_report.py: 3 passed, 0 failed")


def scaling_and_notes():
    """Rows LOAD-2q give each server's scaling over LOAD; a run with a note and no rate is
    shown as not measurable, and is no error."""
    with tempfile.TemporaryDirectory() as d:
        runs = [run("nginx", "close", 1, 2.0), run("xdptcp", "close", 1, 1.0),
                run("nginx", "close-2q", 1, 1.0), run("xdptcp", "close-2q", 1, 0.5),
                run("xdptcp", "xload", 1, 1.0), run("xdptcp", "xload-2q", 1, 0.8),
                {"server": "nginx", "load": "xload-2q", "repeat": 1, "rate": None,
                 "note": "kernel replies land on any queue"}]
        path = os.path.join(d, "runs.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in runs))
        bench_report.main(path, os.path.join(d, "result.json"), os.path.join(d, "result.md"))
        result = json.load(open(os.path.join(d, "result.json")))
        assert result["scaling"] == {"close-2q/nginx": 2.0, "close-2q/xdptcp": 2.0,
                                     "xload-2q/xdptcp": 1.25}, result["scaling"]
        md = open(os.path.join(d, "result.md")).read()
        assert "| close-2q vs 1 queue | 2.00× | 2.00× |" in md, md
        assert "| xload-2q vs 1 queue | – | 1.25× |" in md, md
        assert "not measurable: kernel replies land on any queue" in md, md


def open_loop():
    """xopenLEVEL-OWNER rows go to the open-loop table, lowest offered rate first, with both
    servers at the same rate, xdptcp's p99 over nginx's, the generator's send lag, and a
    server not run above its maximum shown as such; they stay out of the main table."""
    def open_run(server, load, offered, p99, lag):
        r = run(server, load, 1, 1.0)
        r.update(offered_per_s=offered, rate=offered * 0.999, p99_us=p99, send_lag_p99_us=lag)
        return r
    with tempfile.TemporaryDirectory() as d:
        runs = [open_run("nginx", "xopen80-nginx", 200_000.0, 1400.0, 3.0),
                open_run("xdptcp", "xopen80-nginx", 200_000.0, 700.0, 2.0),
                open_run("xdptcp", "xopen80-xdptcp", 400_000.0, 900.0, 4.0),
                {"server": "nginx", "load": "xopen80-xdptcp", "repeat": 1, "rate": None,
                 "offered_per_s": 400_000, "note": "above its closed-loop maximum"}]
        path = os.path.join(d, "runs.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in runs))
        bench_report.main(path, os.path.join(d, "result.json"), os.path.join(d, "result.md"))
        result = json.load(open(os.path.join(d, "result.json")))
        assert result["ratios"]["xopen80-nginx"]["p99_us"] == 0.5, result["ratios"]
        md = open(os.path.join(d, "result.md")).read().splitlines()
        main_rows = [line for line in md if line.startswith("| xopen")]
        assert not main_rows, main_rows
        rows = [line for line in md if line.startswith("| 80 % of")]
        assert rows[0].startswith("| 80 % of kernel + nginx's maximum | 200,000 | kernel + nginx |"), rows
        assert "| 1,400 |" in rows[0] and rows[0].endswith("| 3.0 |"), rows[0]
        assert "| xdptcp |" in rows[1] and "| 700.0 |" in rows[1], rows[1]
        assert "**0.50×**" in rows[2], rows[2]
        assert "not run: above its closed-loop maximum" in rows[3], rows[3]
        assert "| 400,000 | xdptcp |" in rows[4], rows[4]


if __name__ == "__main__":
    main()
