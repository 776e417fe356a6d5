#!/usr/bin/env bash
# Side-by-side benchmark, as root: kernel + nginx (1 worker) vs xdptcp (1 worker) on the same
# two-namespace veth topology, the same client and the same core budget (server on CPU 0, client
# on CPU 1), alternating, repeated; reports medians, percentiles and the ratio xdptcp / nginx,
# and draws one SVG per load with both servers' latency percentile curves (latency-LOAD.svg).
#
#   sudo scripts/bench.sh [--repeat N] [--duration S] [--out DIR] [--quick] [--micro] [--queues Q]
#                         [--levels "50 80 95"] [--open-only]
#
#   --quick     one repeat of 2 s per load, open loop at 80 % only (the CI smoke run)
#   --levels L  the open-loop levels, in % of each server's closed-loop maximum
#   --open-only only the xkeep rows (each server's maximum) and the open loop at --levels
#   --micro     also run the criterion engine benches and add them to the report
#   --queues Q  then run everything again on a veth with Q queues, nginx with Q workers and
#               xdptcp with Q workers (server and client then share CPUs 0..Q-1), and report
#               the Q-vs-1 scaling of each server
#
# Loads: wrk keep-alive, wrk `Connection: close`, and `xdptcp load connect-close`, each over
# IPv4 and over IPv6 (the `-v6` rows); and `xdptcp load` keep-alive with 64 connections closed
# loop (xkeep: the maximum rate). Then, once both servers' maxima of the repeat are known, open
# loop over 256 connections at each level (50, 80, 95 %) of either server's maximum, the same
# offered rates for both servers (rows xopenLEVEL-OWNER; a server is not run above its own
# maximum): latency from each request's intended send time. And TCP Fast Open connect-close
# (tfo: a kernel client sends each request in its SYN with MSG_FASTOPEN, one connection at a
# time, scripts/fastopen_client.py; tfo-off: the same client with connect() first), latency
# from the first call to the answer's last byte, both servers serving Fast Open (nginx
# `listen ... fastopen=256` with the server namespace's net.ipv4.tcp_fastopen=3, xdptcp
# `--fastopen 256`). The client's TCP is the namespace's default (BBR here).
# CPU is counted system-wide from /proc/stat (on veth the receiver's XDP/NAPI work runs on the
# sender's CPU), as microseconds of busy CPU (both cores) per request or connection, and the
# server processes' own share of it (the rest is the client and softirq work run on its CPUs).
# Traffic stays between the two namespaces this script creates; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

repeat=3
duration=5
out="out/bench"
micro=0
queues=1
levels="50 80 95"
loads="keepalive close xload xkeep tfo-off tfo keepalive-v6 close-v6 xload-v6"
while [ $# -gt 0 ]; do
    case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) repeat=1; duration=2; levels=80; shift ;;
    --levels) levels=$2; shift 2 ;;
    --open-only) loads=xkeep; shift ;;
    --micro) micro=1; shift ;;
    --queues) queues=$2; shift 2 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$queues" in
'' | *[!0-9]* | 0) echo "bench.sh: --queues takes a number of queues, 1 or more" >&2; exit 2 ;;
esac
need_root bench.sh
need_tools bench.sh wrk nginx ethtool python3 curl taskset
if [ "$(nproc)" -lt 2 ] || [ "$(nproc)" -lt "$queues" ]; then
    echo "bench.sh: needs 2 cores (server on CPU 0, client on CPU 1) and one per queue" >&2
    exit 1
fi

# run_names sets srv, cli and name; topology_up names each topology by its queue count.
run_names xb
name=""
server_pid=""
mkdir -p "$out"
runs="$out/runs.jsonl"
: >"$runs"

stop_server() {
    stop_pid "$server_pid"
    server_pid=""
}
trap 'end_run "$server_pid"' EXIT INT TERM

build_release

# topology_up Q: the two namespaces, joined by a veth pair with Q queues on each end.
topology_up() {
    name="xb$$q$1"
    srv="$name-srv"
    cli="$name-cli"
    echo "== topology $srv <-veth ($1 queue(s))-> $cli"
    scripts/netns.sh up "$name" "$1"
    for ns in "$srv" "$cli"; do
        ip netns exec "$ns" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
    done
    # The load generator owns source ports 1024-32767; keep the kernel's ephemeral ports above.
    ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
    # TCP Fast Open: the client side (Linux's default) and, for nginx, the server side.
    ip netns exec "$cli" sysctl -qw net.ipv4.tcp_fastopen=1
    ip netns exec "$srv" sysctl -qw net.ipv4.tcp_fastopen=3
    # With several queues a kernel client re-picks a flow's TX queue (so the server's RX queue)
    # on a retransmission timeout; xdptcp's workers drop segments of flows they do not own
    # (DESIGN.md pitfalls), so keep each flow on its queue.
    [ "$1" -gt 1 ] && ip netns exec "$cli" sysctl -qw net.core.txrehash=0
    write_nginx_conf "$tmp/nginx.conf" "$tmp" "$SRV" "$PORT" "$SRV6" "$1"
}

topology_down() {
    scripts/netns.sh down "$name"
    name=""
}

cpu_busy_us() {
    # Busy jiffies over all CPUs (user nice system irq softirq steal), in microseconds.
    awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2+$3+$4+$7+$8+$9) * 1000000 / hz}' /proc/stat
}

# run_load SERVER LOAD REPEAT QUEUES: one measured run, appended to runs.jsonl. LOAD is
# keepalive, close or xload, with -v6 for IPv6; with QUEUES > 1 the row is named LOAD-Qq and
# the client uses QUEUES threads (or generators) on CPUs 0..QUEUES-1.
run_load() {
    local server=$1 load=$2 rep=$3 q=$4 before after raw srv_before srv_after
    local kind=${load%-v6} url="http://$SRV:$PORT/" target="$SRV:$PORT" row=$load
    local client_cores=1
    if [ "$load" != "$kind" ]; then
        url="http://[$SRV6]:$PORT/"
        target="[$SRV6]:$PORT"
    fi
    if [ "$q" -gt 1 ]; then
        row="$load-${q}q"
        client_cores="0-$((q - 1))"
    fi
    if [ "${kind#x}" != "$kind" ] && [ "$server" = nginx ] && [ "$q" -gt 1 ]; then
        # One generator per queue owns the flows it opened, and a flow's replies must come
        # back on its queue. A kernel server picks the TX queue of a reply by its own hash
        # (SYN-ACKs included, even with xps_rxqs), so this pairing cannot be measured.
        echo "   $row nginx: not measurable (the kernel answers on any queue; see bench.sh)"
        printf '{"server": "nginx", "load": "%s", "repeat": %s, "rate": null, "note": "kernel replies land on any queue: one generator per queue cannot own its flows"}\n' \
            "$row" "$rep" >>"$runs"
        return
    fi
    before=$(cpu_busy_us)
    srv_before=$(proc_cpu_us "$server_pid")
    case "$kind" in
    keepalive | close)
        local hdr=()
        [ "$kind" = close ] && hdr=(-H 'Connection: close')
        raw=$(ip netns exec "$cli" timeout $((duration + 30)) taskset -c "$client_cores" wrk \
            -t"$q" -c64 -d"${duration}s" "${hdr[@]}" -s scripts/wrk-report.lua "$url" |
            sed -n 's/^WRKJSON //p')
        ;;
    xload)
        # Our AF_XDP client checks every checksum; a kernel sender on veth leaves TCP checksums
        # to offload (CHECKSUM_PARTIAL), so the server side's TX offload is off for this run
        # only (nginx's wrk runs keep theirs).
        [ "$server" = nginx ] && ip netns exec "$srv" ethtool -K "$name-s" tx off tso off gso off >/dev/null
        ip netns exec "$cli" timeout $((duration + 30)) "$xdptcp" load --iface "$name-c" \
            --target "$target" --mode connect-close --concurrency 128 --queues "$q" \
            --cores "$client_cores" --duration "$duration" --json "$tmp/load.json" \
            >/dev/null 2>"$tmp/load.log" || true
        raw=$(cat "$tmp/load.json" 2>/dev/null || true)
        rm -f "$tmp/load.json"
        [ "$server" = nginx ] && ip netns exec "$srv" ethtool -K "$name-s" tx on tso on gso on >/dev/null
        ;;
    tfo | tfo-off)
        local fastopen=()
        [ "$kind" = tfo ] && fastopen=(--fastopen)
        raw=$(ip netns exec "$cli" timeout $((duration + 30)) taskset -c "$client_cores" \
            python3 scripts/fastopen_client.py --target "${target%:*}" --port "$PORT" \
            --duration "$duration" "${fastopen[@]}" 2>"$tmp/load.log" || true)
        # Fast Open must have happened (after the first connection fetched the cookie), and
        # only there.
        if ! python3 -c 'import json,sys; r=json.loads(sys.argv[1]); n=r["connections"]; ok=r["syn_data"]
sys.exit(0 if (ok >= n // 2 if sys.argv[2] == "tfo" else ok == 0) and n > 0 else 1)' "$raw" "$kind"; then
            echo "bench.sh: $row against $server: SYN data acknowledged in an unexpected number of connections: $raw" >&2
            exit 1
        fi
        ;;
    xkeep | xopen*)
        # Keep-alive from our client: 64 connections closed loop (the maximum rate), or open
        # loop at $open_rate (run_open), latency counted from each request's intended send
        # time, over 256 connections (as wrk2 is run with more connections than the rate
        # needs: at 64, each would be busy 80 % of the time and queue behind itself).
        local pace=(--connections 64)
        [ "$kind" != xkeep ] && pace=(--connections 256 --rate "$open_rate")
        [ "$server" = nginx ] && ip netns exec "$srv" ethtool -K "$name-s" tx off tso off gso off >/dev/null
        ip netns exec "$cli" timeout $((duration + 60)) "$xdptcp" load --iface "$name-c" \
            --target "$target" --mode keepalive --concurrency 64 \
            --queues "$q" --cores "$client_cores" --duration "$duration" "${pace[@]}" \
            --json "$tmp/load.json" >/dev/null 2>"$tmp/load.log" || true
        raw=$(cat "$tmp/load.json" 2>/dev/null || true)
        rm -f "$tmp/load.json"
        [ "$server" = nginx ] && ip netns exec "$srv" ethtool -K "$name-s" tx on tso on gso on >/dev/null
        [ "$kind" = xkeep ] && [ -n "$raw" ] &&
            python3 -c 'import json,sys; print(json.loads(sys.argv[1])["achieved_per_s"])' "$raw" \
                >"$tmp/xkeep-$server"
        ;;
    esac
    after=$(cpu_busy_us)
    srv_after=$(proc_cpu_us "$server_pid")
    if [ -z "$raw" ] || [ "$raw" = '{}' ]; then
        echo "bench.sh: $row against $server produced no result" >&2
        cat "$tmp/load.log" 2>/dev/null >&2 || true
        exit 1
    fi
    python3 - "$server" "$row" "$rep" "$before" "$after" "$raw" "$srv_before" "$srv_after" \
        >>"$runs" <<'PY'
import json, sys
server, load, rep, before, after, raw, srv_before, srv_after = sys.argv[1:]
r = json.loads(raw)
cpu = float(after) - float(before)
server_cpu = float(srv_after) - float(srv_before)
if "requests" in r and "duration_us" in r:          # wrk
    ops, secs = r["requests"], r["duration_us"] / 1e6
    lat = r
    errors = r["errors"]
elif r.get("mode") == "Keepalive":                 # xdptcp load, keep-alive: the hold
    ops, secs = r["requests_in_hold"], r["elapsed_s"]
    lat = r.get("request_latency", {})
    errors = r["errors"] + r["reset"] + r["late"]
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
    "server_cpu_share": server_cpu / cpu if cpu > 0 else None,
    "offered_per_s": r.get("offered_per_s"),
    "send_lag_p99_us": (r.get("send_lag") or {}).get("p99_us"),
    # The percentile curve for the report's SVGs: wrk's many points, or our load's summary.
    "percentiles": r.get("percentiles") or [
        [q, lat[k]] for q, k in ((0, "min_us"), (50, "p50_us"), (90, "p90_us"), (99, "p99_us"),
                                 (99.9, "p999_us"), (100, "max_us")) if lat.get(k) is not None],
}
print(json.dumps(out))
PY
    tail -n1 "$runs" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("   %-15s %-6s rate=%s p99=%sus errors=%s cpu/op=%sus server share=%s" % (r["load"], r["server"], round(r["rate"] or 0), r["p99_us"], r["errors"], r["cpu_us_per_op"] and round(r["cpu_us_per_op"],2), r["server_cpu_share"] and round(r["server_cpu_share"],2)))'
}

# run_matrix Q: every load against both servers, alternating, on a topology with Q queues.
run_matrix() {
    local q=$1 server_args=()
    topology_up "$q"
    server_cores="0"
    if [ "$q" -gt 1 ]; then
        server_cores="0-$((q - 1))"
        server_args=(--queues "$q")
    fi
    for rep in $(seq "$repeat"); do
        rm -f "$tmp"/xkeep-*
        for server in nginx xdptcp; do
            echo "== run $rep/$repeat, $q queue(s): $server"
            start_server "$server" $((duration * 10 + 60)) --addr "$SRV6" --fastopen 256 \
                "${server_args[@]}"
            for load in $loads; do
                run_load "$server" "$load" "$rep" "$q"
            done
            stop_server
        done
        run_open "$rep" "$q" "${server_args[@]}"
    done
    topology_down
}

# run_open REPEAT QUEUES [SERVE-ARGS...]: the open loop at every level of either server's
# maximum of this repeat (xkeep), both servers at the same offered rates, each not above its
# own maximum (a server without a maximum, as nginx with several queues, is not run).
run_open() {
    local rep=$1 q=$2 server owner level max row suffix=""
    shift 2
    [ "$q" -gt 1 ] && suffix="-${q}q"
    for server in nginx xdptcp; do
        [ -s "$tmp/xkeep-$server" ] || continue
        echo "== run $rep/$repeat, $q queue(s): $server, open loop"
        start_server "$server" $((duration * 16 + 120)) --addr "$SRV6" "$@"
        max=$(cat "$tmp/xkeep-$server")
        for owner in nginx xdptcp; do
            [ -s "$tmp/xkeep-$owner" ] || continue
            for level in $levels; do
                row="xopen$level-$owner"
                open_rate=$(python3 -c "print(max(1, int($level / 100 * float(open('$tmp/xkeep-$owner').read()))))")
                if python3 -c "import sys; sys.exit(not $open_rate > float('$max'))"; then
                    echo "   $row$suffix $server: not run, $open_rate/s is above its maximum ($max)"
                    printf '{"server": "%s", "load": "%s", "repeat": %s, "rate": null, "offered_per_s": %s, "note": "above its closed-loop maximum"}\n' \
                        "$server" "$row$suffix" "$rep" "$open_rate" >>"$runs"
                    continue
                fi
                run_load "$server" "$row" "$rep" "$q"
            done
        done
        stop_server
    done
}

run_matrix 1
[ "$queues" -gt 1 ] && run_matrix "$queues"

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
