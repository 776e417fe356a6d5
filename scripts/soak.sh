#!/usr/bin/env bash
# Soak, as root: `xdptcp load` opens N keep-alive connections from source addresses of its own
# namespace to `xdptcp serve` (one worker, TCP keepalive on), holds them, each sending a request
# every INTERVAL seconds on a fixed schedule (open loop), then closes them all. Fails unless:
# every connection opened and was still held at the end, no reset, no failed request, no answer
# later than 1 s (--late-ms) after its intended time, at least 95 % of the offered requests
# answered, no keepalive timeout at the server, the server left with no connection. Reports the
# server's memory per connection: the engine's own figure (summary.json) and its RSS growth.
#
#   sudo scripts/soak.sh [--short | --long] [--connections N] [--hold S] [--interval S]
#                        [--late-ms MS] [--ipv6] [--out DIR]
#
#   --long   (default) 100 000 connections held 60 s, one request each every 5 s
#   --short  100 000 connections held 10 s, one request each every 5 s (test.sh runs this)
#   --ipv6   over IPv6 (sources fd00:201:77::100/126) instead of IPv4 (10.201.77.64/30)
#   --late-ms  the bound on an answer's delay from its intended time (default 1000)
#
# Four source addresses of 64 512 ports each carry up to 258 048 connections. Traffic stays
# between the two namespaces this script creates; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

connections=100000
hold=60
interval=5
late_ms=1000
family=4
out="out/soak"
while [ $# -gt 0 ]; do
    case "$1" in
    --long) connections=100000; hold=60; interval=5; shift ;;
    --short) connections=100000; hold=10; interval=5; shift ;;
    --connections) connections=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --late-ms) late_ms=$2; shift 2 ;;
    --ipv6) family=6; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_root soak.sh
need_tools soak.sh python3 curl ethtool
if [ "$(nproc)" -lt 2 ]; then
    echo "soak.sh: needs 2 cores (server on CPU 0, load on CPU 1)" >&2
    exit 1
fi

run_names xk
if [ "$family" = 6 ]; then
    SRV=fd00:201:77::1
    target="[$SRV]:$PORT"
    sources=fd00:201:77::100/126
else
    SRV=10.201.77.1
    target="$SRV:$PORT"
    sources=10.201.77.64/30
fi
# TCP keepalive at the server after two intervals of silence: every request pushes each
# connection's keepalive deadline back (the timer path that once piled up entries), and a
# connection the load stopped serving would be probed and aborted (counted, and a failure).
# (With an idle time shorter than the interval, the keepalive timers of connections opened
# within the same fraction of a second fire together, and their burst of probes alone
# overflows a peer's RX ring.)
ka_idle=$(python3 -c "import math; print(max(1, math.ceil(2 * $interval)))")
server_pid=""
mkdir -p "$out"
rm -rf "$out/hist-server" "$out/hist-load" "$out/load.json"

trap 'end_run "$server_pid"' EXIT INT TERM

build_release

echo "== topology $srv <-veth-> $cli, sources $sources on the client's veth"
scripts/netns.sh up "$name" 1
add_addresses "$cli" "$name-c" "$sources"

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$server_pid/status"; }

# Ramp (about 1 s per 30 000 connections here), hold, closing: the server outlives them all.
# Rings of 8192 (the load's default too) ride out the ~50 ms stalls a shared or virtualised
# CPU gives a worker now and then: at 2048, such a stall at 100 000 frames/s drops frames.
server_secs=$((hold + connections / 5000 + 60))
ip netns exec "$srv" "$xdptcp" serve --iface "$name-s" --addr "$SRV" --port "$PORT" --app http \
    --cores 0 --keepalive "$ka_idle:1:5" --ring-size 8192 --duration "$server_secs" \
    --hist-out "$out/hist-server" 2>"$out/server.log" &
server_pid=$!
url="http://$SRV:$PORT/"
[ "$family" = 6 ] && url="http://[$SRV]:$PORT/"
wait_http "$cli" "$url"
rss_before=$(rss_kib)

echo "== $connections connections from $sources, held $hold s, a request every $interval s each"
ip netns exec "$cli" "$xdptcp" load --iface "$name-c" --target "$target" --mode keepalive \
    --connections "$connections" --sources "$sources" --interval "$interval" --late-ms "$late_ms" \
    --duration "$hold" --cores 1 --json "$out/load.json" --hist-out "$out/hist-load" \
    2>"$out/load.log" &
load_pid=$!
# The server's RSS in the middle of the hold (the load says when its hold starts).
rss_hold=""
for _ in $(seq $((connections / 1000 + 600))); do
    kill -0 "$load_pid" 2>/dev/null || break
    if grep -q "holding for" "$out/load.log" 2>/dev/null; then
        sleep "$(python3 -c "print($hold / 2)")"
        rss_hold=$(rss_kib)
        break
    fi
    sleep 0.1
done
load_status=0
wait "$load_pid" || load_status=$?
if [ "$load_status" != 0 ] || [ ! -s "$out/load.json" ]; then
    echo "soak.sh: xdptcp load failed (status $load_status)" >&2
    tail -20 "$out/load.log" >&2
    exit 1
fi
# Let the server finish its side of the closes, then stop it for its final summary.
sleep 2
stop_pid "$server_pid"
server_pid=""

python3 - "$out" "$connections" "$hold" "$interval" "$rss_before" "${rss_hold:-0}" \
    "$family" "$late_ms" <<'PY'
import json, sys
out, n, hold, interval, rss_before, rss_hold, family, late_ms = sys.argv[1:]
n, hold, interval = int(n), float(hold), float(interval)
load = json.load(open(f"{out}/load.json"))
server = json.load(open(f"{out}/hist-server/summary.json"))
peak = server["memory_peak"]
c = server["counters"]
states = {k: v for k, v in server["states"].items() if v and k != "listen"}
offered = n * hold / interval
rss_per_conn = (int(rss_hold) - int(rss_before)) * 1024 / n if int(rss_hold) else None
checks = {
    "every connection opened": load["opened"] == n and load["connections"] == n,
    "every connection held to the end": load["held_at_stop"] == n,
    "no reset (either side)": load["reset"] == 0 and c["resets_received"] == 0
        and c["resets_sent"] == 0,
    "no failed request or open": load["failed"] == 0 and load["failed_opens"] == 0
        and load["timeouts"] == 0,
    f"no answer later than {int(late_ms) / 1000:g} s": load["late"] == 0,
    "at least 95 % of the offered requests answered": load["requests_in_hold"] >= 0.95 * offered,
    "no keepalive timeout at the server": c["keepalive_timeouts"] == 0,
    "the server held every connection at once": peak["connections"] == n,
    "the server is left with no connection": not states,
    "the load is left with no connection": load["left_at_end"] == 0,
}
result = {
    "family": f"IPv{family}",
    "connections": n, "hold_s": hold, "interval_s": interval,
    "ramp_s": load["ramp_s"], "offered_per_s": load["offered_per_s"],
    "achieved_per_s": load["achieved_per_s"], "requests_in_hold": load["requests_in_hold"],
    "late": load["late"], "reset": load["reset"], "failed": load["failed"],
    "p50_us": load.get("p50_us"), "p99_us": load.get("p99_us"), "p999_us": load.get("p999_us"),
    "max_us": load.get("max_us"),
    "server_keepalive_probes": c["keepalive_probes"],
    "server_bytes_per_connection": peak["bytes_per_connection"],
    "server_allocated_per_connection": peak["allocated_per_connection"],
    "server_rss_kib_before": int(rss_before), "server_rss_kib_hold": int(rss_hold),
    "server_rss_bytes_per_connection": rss_per_conn,
    "server_states_at_end": states,
    "checks": checks,
}
json.dump(result, open(f"{out}/result.json", "w"), indent=2)
lines = [
    f"Soak: {n} connections (IPv{family}) held {hold:.0f} s, a request every {interval:g} s each "
    f"(offered {load['offered_per_s']:.0f}/s, answered {load['achieved_per_s']:.0f}/s), "
    f"opened in {load['ramp_s']:.1f} s.",
    "",
    f"- latency from the intended send time: p50 {load.get('p50_us', 0):.0f} µs, "
    f"p99 {load.get('p99_us', 0):.0f} µs, p99.9 {load.get('p999_us', 0):.0f} µs, "
    f"max {load.get('max_us', 0):.0f} µs; late (> {int(late_ms) / 1000:g} s) {load['late']}",
    f"- server memory per connection: {peak['bytes_per_connection']:.0f} B in use, "
    f"{peak['allocated_per_connection']:.0f} B allocated (engine); RSS "
    f"{int(rss_before)} → {int(rss_hold)} KiB"
    + (f", {rss_per_conn:.0f} B per connection" if rss_per_conn is not None else ""),
    f"- server keepalive probes {c['keepalive_probes']}, resets {c['resets_sent']} sent / "
    f"{c['resets_received']} received",
    "",
] + [f"- [{'x' if ok else ' '}] {name}" for name, ok in checks.items()]
open(f"{out}/result.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
failed = [name for name, ok in checks.items() if not ok]
if failed:
    sys.exit("soak.sh: failed: " + "; ".join(failed))
PY
echo "results: $out/result.json $out/result.md"
