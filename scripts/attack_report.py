#!/usr/bin/env python3
"""The under-attack table from attack.sh's runs.

    attack_report.py row SERVER ATTACK REPEAT BASE UNDER RSS_BEFORE RSS_DURING KBUF_KIB \\
        BEFORE.json AFTER.json ATTACKER.json          # one JSON line (a run) on stdout
    attack_report.py report RUNS.jsonl RESULT.json RESULT.md --expect "S..." --attacks "A..."

BASE and UNDER are wrk-report.lua's JSON for the legit load alone and beside the attack;
BEFORE/AFTER `xdptcp stats --json` (or `null` for nginx); ATTACKER hostile.py's last line. The table gives, per server and attack,
the medians over the repeats of the legit figures and their ratios (each repeat's ratio is
of its own pair of runs), the largest memory growth, and the first repeat's attacker and
counters.
`report` prints and writes the table, and exits non-zero when a (server, attack) row is
missing, a legit rate or p99 did not parse or is zero, an attacker reported no result or
established nothing, or xdptcp answered a martian SYN."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synflood_report import num  # noqa: E402

NAMES = {"nginx": "kernel + nginx", "xdptcp": "xdptcp"}
TARGET = 0.9

# xdptcp counters (under `total`) that an attack may move and legit connect-close traffic
# does not: every drop reason, and these.
COUNTERS = {
    "app": {"errors", "header_timeouts", "idle_timeouts"},
    "counters": {"ofo_prunes", "ofo_pruned_bytes", "ooo_segments", "sack_blocks_over_cap",
                 "sack_blocks_rejected", "sack_blocks_rounded", "memory_pressures",
                 "send_memory_limited", "rcv_window_clamped", "challenge_acks",
                 "dsack_ignored", "time_wait_evicted", "time_wait_recycled",
                 "rto_retransmits", "fast_retransmits", "recovery_episodes", "undos"},
}


def moved(before, after):
    """{name: delta} of the attack-related counters that moved, largest first."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    deltas = {}
    b, a = before.get("total", {}), after.get("total", {})
    for group, values in a.items():
        if not isinstance(values, dict):
            continue
        for k, v in values.items():
            if group == "drops" or k in COUNTERS.get(group, ()):
                d = v - b.get(group, {}).get(k, 0)
                if isinstance(d, int) and d > 0:
                    deltas[f"{group}.{k}"] = d
    for k, v in after.get("xdp", {}).items():
        if isinstance(v, int) and ("martian" in k or "qinq" in k):
            d = v - before.get("xdp", {}).get(k, 0)
            if d > 0:
                deltas[f"xdp.{k}"] = d
    return dict(sorted(deltas.items(), key=lambda kv: -kv[1]))


def rate(w):
    return w["requests"] / (w["duration_us"] / 1e6) if w.get("duration_us") else None


def ratio(a, b):
    return a / b if a is not None and b else None


def row(server, attack, repeat, base, under, rss_before, rss_during, kbuf, before, after, attacker):
    b, u = json.loads(base or "{}"), json.loads(under or "{}")
    c0, c1 = json.load(open(before)), json.load(open(after))
    try:
        achieved = json.loads(open(attacker).read() or "null")
    except ValueError:
        achieved = None
    r0, r1 = rate(b), rate(u)
    budget = (c1 or {}).get("total", {}).get("memory", {}).get("budget_used")
    return {
        "server": server, "attack": attack, "repeat": int(repeat),
        "legit_rate_alone": r0, "legit_rate_attack": r1, "rate_ratio": ratio(r1, r0),
        "errors_alone": b.get("errors"), "errors_attack": u.get("errors"),
        "p99_us_alone": b.get("p99_us"), "p99_us_attack": u.get("p99_us"),
        "p99_ratio": ratio(u.get("p99_us"), b.get("p99_us")),
        "rss_kib_before": int(rss_before), "rss_kib_during": int(rss_during),
        "rss_growth_kib": int(rss_during) - int(rss_before),
        "kernel_buffers_kib": int(kbuf),
        "memory_budget_used": budget,
        "counters_moved": moved(c0, c1),
        "attacker": achieved,
    }


def mib(v):
    return f"{v / (1 << 20):.1f} MiB"


# What each attacker did, in a few words, from its report (and `written`, `hoarded`, `drew`).
ACHIEVED = {
    "slowloris": "{opened:,} dribblers, {still_open:,} still open at the end",
    "noread": "{connections:,} connections wrote {written} of requests, {stalled:,} stalled",
    "hoard": "{held:,}/{connections:,} connections held, {hoarded} sent past the holes",
    "shred": "{shredding_acks:,} shredding ACKs over {opened:,} connections",
    "twecho": "{echoes:,} SYN/FIN echoes at {time_wait:,} TIME-WAIT tuples, {replies:,} replies",
    "martians": "{flooded:,} martian SYNs; answered: {drew}",
}


def achieved(attack, a):
    if not isinstance(a, dict):
        return "no report"
    drew = [str(p) for p in a.get("answered", []) if p != 50000]
    extra = {"written": mib(a.get("bytes_written", 0)), "hoarded": mib(a.get("hoarded_bytes", 0)),
             "drew": ", ".join(drew) or "none"}
    return ACHIEVED[attack].format(**a, **extra) if attack in ACHIEVED else json.dumps(a)


def problems(runs, servers, attacks):
    """What makes the run unusable: missing rows, unparsed figures, idle attackers."""
    found = []
    by = {}
    for r in runs:
        by.setdefault((r["server"], r["attack"]), []).append(r)
    for s in servers:
        for at in attacks:
            if (s, at) not in by:
                found.append(f"{s}/{at}: no row")
            for r in by.get((s, at), []):
                found += run_problems(s, at, r)
    return found


def run_problems(s, at, r):
    """What makes one run of attack `at` against server `s` unusable."""
    found = []
    for k in ("legit_rate_alone", "legit_rate_attack", "p99_us_alone", "p99_us_attack"):
        if not isinstance(r.get(k), (int, float)) or r[k] <= 0:
            found.append(f"{s}/{at}: {k} is {r.get(k)!r}")
    a = r.get("attacker")
    if not isinstance(a, dict):
        return found + [f"{s}/{at}: the attacker reported nothing"]
    done = {"slowloris": "opened", "noread": "bytes_written", "hoard": "opened",
            "shred": "shredding_acks", "twecho": "time_wait", "martians": "flooded"}.get(at)
    if done and not a.get(done):
        found.append(f"{s}/{at}: the attacker's {done} is {a.get(done)!r}")
    if at == "martians" and s == "xdptcp" and a.get("answered") != [50000]:
        found.append(f"xdptcp/martians: answered {a.get('answered')} (the legit port 50000 "
                     "only expected)")
    return found


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def aggregate(runs):
    """{(server, attack): one row}: medians of the legit figures and ratios over the
    repeats, the largest memory figures, the first repeat's attacker and counters."""
    groups = {}
    for r in runs:
        groups.setdefault((r["server"], r["attack"]), []).append(r)
    by = {}
    for key, rs in groups.items():
        rs.sort(key=lambda r: r.get("repeat", 1))
        agg = dict(rs[0], repeats=len(rs))
        for k in ("legit_rate_alone", "legit_rate_attack", "rate_ratio", "p99_us_alone",
                  "p99_us_attack", "p99_ratio"):
            agg[k] = median(r.get(k) for r in rs)
        for k in ("rss_growth_kib", "kernel_buffers_kib", "memory_budget_used"):
            agg[k] = max((r[k] for r in rs if r.get(k) is not None), default=None)
        by[key] = agg
    return by


def table(runs, servers, attacks):
    by = aggregate(runs)
    pair = " / ".join(NAMES.get(s, s) for s in servers)
    lines = [
        f"| attack | legit conn/s alone ({pair}) | under attack ÷ alone | p99 µs alone "
        f"| p99 under ÷ alone | server RSS growth KiB | kernel socket buffers KiB "
        f"| xdptcp ≥ {TARGET} and ≥ nginx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for at in attacks:
        rs = [by.get((s, at), {}) for s in servers]
        cells = [" / ".join(f"{num(r.get(k), d)}" for r in rs)
                 for k, d in (("legit_rate_alone", 0), ("rate_ratio", 2), ("p99_us_alone", 0),
                              ("p99_ratio", 2), ("rss_growth_kib", 0),
                              ("kernel_buffers_kib", 0))]
        x, n = by.get(("xdptcp", at), {}), by.get(("nginx", at), {})
        xr, nr = x.get("rate_ratio"), n.get("rate_ratio")
        verdict = "–" if xr is None else (
            ("yes" if xr >= TARGET else f"no (< {TARGET})") +
            ("" if nr is None else (", ≥ nginx" if xr >= nr else ", below nginx")))
        lines.append(f"| {at} | {cells[0]} | **{cells[1]}** | {cells[2]} | {cells[3]} "
                     f"| {cells[4]} | {cells[5]} | {verdict} |")
    lines += ["", "| attack | server | what the attacker did | xdptcp counters that moved "
              "| memory budget used during |", "| --- | --- | --- | --- | ---: |"]
    for at in attacks:
        for s in servers:
            r = by.get((s, at))
            if r is None:
                continue
            c = r.get("counters_moved")
            counters = "–" if c is None else (
                ", ".join(f"{k} +{v:,}" for k, v in c.items()) or "none")
            budget = r.get("memory_budget_used")
            lines.append(f"| {at} | {NAMES.get(s, s)} | {achieved(at, r.get('attacker'))} "
                         f"| {counters} | {'–' if budget is None else mib(budget)} |")
    return "\n".join(lines) + "\n"


def report(runs_path, json_path, md_path, servers, attacks):
    runs = [json.loads(line) for line in open(runs_path) if line.strip()]
    text = table(runs, servers, attacks)
    found = problems(runs, servers, attacks)
    json.dump({"runs": runs, "problems": found}, open(json_path, "w"), indent=2)
    open(md_path, "w").write(text)
    print(text, end="")
    if found:
        sys.exit("attack.sh: " + "; ".join(found))


def main(argv):
    if argv[:1] == ["row"] and len(argv) == 12:
        print(json.dumps(row(*argv[1:])))
    elif argv[:1] == ["report"] and len(argv) == 8 and argv[4] == "--expect" \
            and argv[6] == "--attacks":
        report(argv[1], argv[2], argv[3], argv[5].split(), argv[7].split())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
