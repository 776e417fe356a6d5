#!/usr/bin/env python3
"""The SYN-flood table from synflood.sh's runs: for each server and flood tool, the legit
rate alone, with the flood at a closed port and at the served port, their ratio, failures,
p99s, and (xdptcp) what the flooder sent against what the XDP program answered, the AF_XDP
RX ring drops and the server's memory.

    synflood_report.py RUNS.jsonl RESULT.json RESULT.md

Exits non-zero when a run measured no legit throughput."""
import json
import sys

NAMES = {
    "nginx": "kernel + nginx",
    "xdptcp": "xdptcp (cookies auto)",
    "xdptcp-always": "xdptcp (cookies always)",
}


def num(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def main(runs_path, json_path, md_path):
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    rows = {}
    for r in runs:
        rows.setdefault((r["server"], r["flood"]), {})[r["target"]] = r
    table = []
    for (server, flood), by in rows.items():
        closed, served = by.get("closed", {}), by.get("served", {})
        alone = served.get("legit_rate_no_flood") or closed.get("legit_rate_no_flood")
        rc, rs = closed.get("legit_rate_flood"), served.get("legit_rate_flood")
        table.append({
            "server": server,
            "flood": flood,
            "legit_alone": alone,
            "legit_flood_closed": rc,
            "legit_flood_served": rs,
            "served_over_closed": rs / rc if rs and rc else None,
            "failed_closed": closed.get("errors_flood"),
            "failed_served": served.get("errors_flood"),
            "p99_us_alone": served.get("p99_us_no_flood"),
            "p99_us_closed": closed.get("p99_us_flood"),
            "p99_us_served": served.get("p99_us_flood"),
            "flood_syns_sent": served.get("flood_syns_sent"),
            "xdp_cookie_synacks": served.get("xdp_cookie_synacks"),
            "engine_syns": served.get("engine_syns"),
            "kernel_rx_dropped": served.get("kernel_rx_dropped"),
            "xdp_tx_dropped": served.get("xdp_tx_dropped"),
            "xdp_rst_backscatter": served.get("xdp_rst_backscatter"),
            "rss_kib": (served.get("rss_kib_before"), served.get("rss_kib_after")),
        })
    json.dump({"runs": runs, "table": table}, open(json_path, "w"), indent=2)
    lines = [
        "| server | flood | legit conn/s alone | flood at closed port | flood at served port "
        "| served / closed | failed legit (closed / served) | p99 µs (alone / closed / served) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for t in table:
        lines.append(
            f"| {NAMES.get(t['server'], t['server'])} | {t['flood']} | {num(t['legit_alone'])} "
            f"| {num(t['legit_flood_closed'])} | {num(t['legit_flood_served'])} "
            f"| **{num(t['served_over_closed'], 2)}** "
            f"| {num(t['failed_closed'])} / {num(t['failed_served'])} "
            f"| {num(t['p99_us_alone'])} / {num(t['p99_us_closed'])} / {num(t['p99_us_served'])} |")
    lines += [
        "",
        "| server | flood at the served port | SYNs sent | SYN-ACKs from XDP | SYNs reaching the engine "
        "| backscatter RSTs dropped in XDP | AF_XDP RX drops | SYN-ACKs the driver dropped "
        "| RSS KiB before → after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in table:
        if t["server"] == "nginx":
            continue
        before, after = t["rss_kib"]
        lines.append(
            f"| {NAMES[t['server']]} | {t['flood']} | {num(t['flood_syns_sent'])} "
            f"| {num(t['xdp_cookie_synacks'])} | {num(t['engine_syns'])} "
            f"| {num(t['xdp_rst_backscatter'])} "
            f"| {num(t['kernel_rx_dropped'])} | {num(t['xdp_tx_dropped'])} "
            f"| {num(before)} → {num(after)} |")
    text = "\n".join(lines) + "\n"
    open(md_path, "w").write(text)
    print(text, end="")
    empty = [f"{r['server']}/{r['flood']}/{r['target']}" for r in runs
             if not r["legit_rate_no_flood"] or not r["legit_rate_flood"]]
    if empty:
        sys.exit(f"synflood.sh: no legit throughput measured for {', '.join(empty)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
