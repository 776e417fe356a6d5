#!/usr/bin/env bash
# Side-by-side benchmark, as root: kernel + nginx (1 worker) vs xdptcp (1 worker) on the same
# two-namespace veth topology, the same client and the same core budget (server on CPU 0, client
# on CPU 1), alternating, repeated; reports medians, percentiles and the ratio xdptcp / nginx,
# and draws one SVG per load with both servers' latency percentile curves (latency-LOAD.svg).
#
#   sudo scripts/bench.sh [--repeat N] [--duration S] [--out DIR] [--quick] [--micro]
#
#   --quick   one repeat of 2 s per load (the CI smoke run)
#   --micro   also run the criterion engine benches and add them to the report
#
# Loads: wrk keep-alive, wrk `Connection: close`, and `xdptcp load connect-close`.
# CPU is counted system-wide from /proc/stat (on veth the receiver's XDP/NAPI work runs on the
# sender's CPU), as microseconds of busy CPU (both cores) per request or connection.
# Traffic stays between the two namespaces this script creates; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

repeat=3
duration=5
out="out/bench"
micro=0
while [ $# -gt 0 ]; do
    case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) repeat=1; duration=2; shift ;;
    --micro) micro=1; shift ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_root bench.sh
need_tools bench.sh wrk nginx ethtool python3 curl taskset
if [ "$(nproc)" -lt 2 ]; then
    echo "bench.sh: needs 2 cores (server on CPU 0, client on CPU 1)" >&2
    exit 1
fi

name="xb$$"
srv="$name-srv"
cli="$name-cli"
SRV=10.201.77.1
PORT=8080
tmp="$(mktemp -d)"
server_pid=""
mkdir -p "$out"
runs="$out/runs.jsonl"
: >"$runs"

stop_server() {
    stop_pid "$server_pid"
    server_pid=""
}
cleanup() {
    stop_server
    scripts/netns.sh down "$name"
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "== building (release)"
cargo build --release --bin xdptcp
xdptcp="$PWD/target/release/xdptcp"

echo "== topology $srv <-veth-> $cli"
scripts/netns.sh up "$name" 1
for ns in "$srv" "$cli"; do
    ip netns exec "$ns" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
done
# The load generator owns source ports 1024-32767; keep the kernel's ephemeral ports above.
ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"

write_nginx_conf "$tmp/nginx.conf" "$tmp" "$SRV" "$PORT"

cpu_busy_us() {
    # Busy jiffies over all CPUs (user nice system irq softirq steal), in microseconds.
    awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2+$3+$4+$7+$8+$9) * 1000000 / hz}' /proc/stat
}

# run_load SERVER LOAD REPEAT: one measured run, appended to runs.jsonl.
run_load() {
    local server=$1 load=$2 rep=$3 before after raw
    before=$(cpu_busy_us)
    case "$load" in
    keepalive | close)
        local hdr=()
        [ "$load" = close ] && hdr=(-H 'Connection: close')
        raw=$(ip netns exec "$cli" timeout $((duration + 30)) taskset -c 1 wrk -t1 -c64 \
            -d"${duration}s" "${hdr[@]}" -s scripts/wrk-report.lua "http://$SRV:$PORT/" |
            sed -n 's/^WRKJSON //p')
        ;;
    xload)
        # Our AF_XDP client checks every checksum; a kernel sender on veth leaves TCP checksums
        # to offload (CHECKSUM_PARTIAL), so the server side's TX offload is off for this run
        # only (nginx's wrk runs keep theirs).
        [ "$server" = nginx ] && ip netns exec "$srv" ethtool -K "$name-s" tx off tso off gso off >/dev/null
        ip netns exec "$cli" timeout $((duration + 30)) "$xdptcp" load --iface "$name-c" \
            --target "$SRV:$PORT" --mode connect-close --concurrency 128 --cores 1 \
            --duration "$duration" --json "$tmp/load.json" >/dev/null 2>"$tmp/load.log" || true
        raw=$(cat "$tmp/load.json" 2>/dev/null || true)
        rm -f "$tmp/load.json"
        [ "$server" = nginx ] && ip netns exec "$srv" ethtool -K "$name-s" tx on tso on gso on >/dev/null
        ;;
    esac
    after=$(cpu_busy_us)
    if [ -z "$raw" ] || [ "$raw" = '{}' ]; then
        echo "bench.sh: $load against $server produced no result" >&2
        cat "$tmp/load.log" 2>/dev/null >&2 || true
        exit 1
    fi
    python3 - "$server" "$load" "$rep" "$before" "$after" "$raw" >>"$runs" <<'PY'
import json, sys
server, load, rep, before, after, raw = sys.argv[1:]
r = json.loads(raw)
cpu = float(after) - float(before)
if "requests" in r and "duration_us" in r:          # wrk
    ops, secs = r["requests"], r["duration_us"] / 1e6
    lat = r
    errors = r["errors"]
elif "connections" in r:                            # xdptcp load
    ops, secs = r["connections"], r["elapsed_s"]
    lat = r.get("request_latency", {})
    errors = r["errors"]
else:
    ops, secs, lat, errors = 0, 0, {}, None
out = {
    "server": server, "load": load, "repeat": int(rep),
    "rate": ops / secs if secs else None, "ops": ops, "seconds": secs, "errors": errors,
    "p50_us": lat.get("p50_us"), "p90_us": lat.get("p90_us"), "p99_us": lat.get("p99_us"),
    "p999_us": lat.get("p999_us"), "cpu_us_per_op": cpu / ops if ops else None,
    # The percentile curve for the report's SVGs: wrk's many points, or our load's summary.
    "percentiles": r.get("percentiles") or [
        [q, lat[k]] for q, k in ((0, "min_us"), (50, "p50_us"), (90, "p90_us"), (99, "p99_us"),
                                 (99.9, "p999_us"), (100, "max_us")) if lat.get(k) is not None],
}
print(json.dumps(out))
PY
    tail -n1 "$runs" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("   %-9s %-6s rate=%s p99=%sus errors=%s cpu/op=%sus" % (r["load"], r["server"], round(r["rate"] or 0), r["p99_us"], r["errors"], r["cpu_us_per_op"] and round(r["cpu_us_per_op"],2)))'
}

for rep in $(seq "$repeat"); do
    for server in nginx xdptcp; do
        echo "== run $rep/$repeat: $server"
        start_server "$server" $((duration * 4 + 60))
        for load in keepalive close xload; do
            run_load "$server" "$load" "$rep"
        done
        stop_server
    done
done

if [ "$micro" = 1 ]; then
    echo "== criterion micro-benchmarks"
    cargo bench --bench engine --bench bulk -- --warm-up-time 1 --measurement-time 3 \
        2>&1 | tee "$out/micro.txt" | grep -E '^[a-z].*time:|thrpt:' || true
fi

echo "== report"
python3 scripts/bench_report.py "$runs" "$out/result.json" "$out/result.md"
if [ "$micro" = 1 ]; then
    {
        echo
        echo "Criterion (engine, in memory):"
        echo
        echo '```'
        grep -E 'time:|thrpt:' -B1 "$out/micro.txt" | grep -v '^--$' || true
        echo '```'
    } >>"$out/result.md"
fi
echo "results: $out/result.json $out/result.md $out/latency-*.svg"
