#!/usr/bin/env python3
"""Tests of attack_report.py on made-up runs: the counters that moved (attack-related ones
only), ratios from wrk's JSON, and the checks that fail a run (a missing row, a rate that did
not parse, an idle attacker, an answered martian). Run by test.sh (no root, no network)."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack_report  # noqa: E402

ATTACKERS = {
    "slowloris": {"opened": 10, "failed": 0, "still_open": 10, "closed": 0, "resets": 0,
                  "earliest": float("inf"), "latest": 0.0},
    "martians": {"probes": 11, "flooded": 1100, "answered": [50000]},
}


def stats(drops, requests, martian):
    return {"total": {"drops": {"martian": drops, "out_of_window": 0},
                      "counters": {"rx_frames": requests * 3, "sack_blocks_rounded": drops},
                      "app": {"requests": requests, "header_timeouts": 0},
                      "memory": {"budget_used": 1 << 20}},
            "xdp": {"martian": martian, "redirected": requests}}


def wrk(requests, p99):
    return json.dumps({"requests": requests, "duration_us": 2_000_000, "p99_us": p99,
                       "errors": 0})


def make_row(d, server, attack, under, martians_answered=(50000,), repeat=1):
    paths = []
    for name, value in (("before", stats(5, 100, 1) if server == "xdptcp" else None),
                        ("after", stats(15, 900, 41) if server == "xdptcp" else None),
                        ("attacker", dict(ATTACKERS[attack],
                                          **({"answered": list(martians_answered)}
                                             if attack == "martians" else {})))):
        paths.append(os.path.join(d, f"{server}-{attack}-{name}.json"))
        with open(paths[-1], "w") as f:
            json.dump(value, f)
    return attack_report.row(server, attack, str(repeat), wrk(2000, 1000), wrk(under, 1500),
                             "1000", str(1000 + under // 6), "64", *paths)


def test_row():
    with tempfile.TemporaryDirectory() as d:
        r = make_row(d, "xdptcp", "slowloris", 1800)
        assert abs(r["rate_ratio"] - 0.9) < 1e-9, r
        assert abs(r["p99_ratio"] - 1.5) < 1e-9, r
        assert r["rss_growth_kib"] == 300 and r["kernel_buffers_kib"] == 64, r
        assert r["repeat"] == 1, r
        # Drops and attack counters, largest first; legit traffic's (rx_frames, requests,
        # redirected) left out.
        assert list(r["counters_moved"].items()) == [
            ("xdp.martian", 40), ("drops.martian", 10), ("counters.sack_blocks_rounded", 10)], r
        assert r["memory_budget_used"] == 1 << 20, r
        n = make_row(d, "nginx", "slowloris", 1000)
        assert n["counters_moved"] is None and n["rate_ratio"] == 0.5, n


def test_report_and_checks():
    attacks = ["slowloris", "martians"]
    with tempfile.TemporaryDirectory() as d:
        runs = [make_row(d, s, a, 1900) for s in ("nginx", "xdptcp") for a in attacks]
        path = os.path.join(d, "runs.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in runs))
        out_json, out_md = os.path.join(d, "a.json"), os.path.join(d, "a.md")
        attack_report.report(path, out_json, out_md, ["nginx", "xdptcp"], attacks)
        md = open(out_md).read()
        assert ("| slowloris | 1,000 / 1,000 | **0.95 / 0.95** | 1,000 / 1,000 | 1.50 / 1.50 "
                "| 316 / 316 | 64 / 64 | yes, ≥ nginx |") \
            in md, md
        assert "1,100 martian SYNs; answered: none" in md, md
        assert json.load(open(out_json))["problems"] == []

        bad = runs[:-1] + [make_row(d, "xdptcp", "martians", 1900, (50000, 50003))]
        bad[0] = dict(bad[0], legit_rate_attack=None)
        assert attack_report.problems(bad, ["nginx", "xdptcp"], attacks + ["hoard"]) == [
            "nginx/slowloris: legit_rate_attack is None",
            "nginx/hoard: no row",
            "xdptcp/martians: answered [50000, 50003] (the legit port 50000 only expected)",
            "xdptcp/hoard: no row",
        ]
        idle = dict(runs[0], attacker=dict(ATTACKERS["slowloris"], opened=0))
        assert attack_report.problems([idle], ["nginx"], ["slowloris"]) == [
            "nginx/slowloris: the attacker's opened is 0"]
        with open(path, "w") as f:
            f.write(json.dumps(runs[0]) + "\n")
        try:
            attack_report.report(path, out_json, out_md, ["nginx"], attacks)
        except SystemExit as e:
            assert "nginx/martians: no row" in str(e), e
        else:
            raise AssertionError("a missing row did not fail the report")


def test_medians_over_repeats():
    with tempfile.TemporaryDirectory() as d:
        runs = [make_row(d, "xdptcp", "slowloris", u, repeat=i + 1)
                for i, u in enumerate((1200, 1800, 1600))]
        agg = attack_report.aggregate(runs)[("xdptcp", "slowloris")]
        assert abs(agg["rate_ratio"] - 0.8) < 1e-9 and agg["repeats"] == 3, agg
        assert agg["rss_growth_kib"] == 300, agg
        assert abs(attack_report.median([3, None, 1, 2, 10]) - 2.5) < 1e-9


def main():
    tests = [test_row, test_report_and_checks, test_medians_over_repeats]
    for t in tests:
        t()
    print(f"test_attack_report.py: {len(tests)} passed, 0 failed")


if __name__ == "__main__":
    main()
