#!/usr/bin/env bash
# SYN-flood survival, as root: legit `wrk -H 'Connection: close'` traffic measured alone, then
# beside a SYN flood aimed at a *closed* port of the server, then beside the same flood aimed at
# the *served* port, against kernel + nginx (net.ipv4.tcp_syncookies=1) and against xdptcp
# (`--syncookies auto`, the default, and `always`), on the same two-namespace veth topology
# (server on CPU 0; wrk and the flooder share CPU 1).
#
#   sudo scripts/synflood.sh [--duration S] [--out DIR] [--quick]
#
# The closed-port flood measures what the flooder itself costs the shared client core (the
# server's kernel answers those SYNs with RSTs, for both servers); the served-port flood adds
# only the server's own SYN handling, so `served / closed` is the server's share of the damage
# (1.0: none). Floods: `hping3 --flood -S` (the client's own address, so its kernel answers our
# SYN-ACKs with RSTs) and `xdptcp load --mode synflood` (spoofed sources inside a test prefix
# of the client namespace, at its top rate).
#
# Reported per run: legit conn/s, failed legit connections, p99; for xdptcp also the SYNs the
# flooder sent against the SYN-ACKs the XDP program sent (`cookie_synacks`), the AF_XDP RX ring
# drops (`kernel_rx_dropped`) and the server's memory (RSS + kernel slab) before and after.
# Traffic stays between the two namespaces this script creates; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

duration=5
out="out/synflood"
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) duration=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) duration=2; shift ;;
    *) echo "synflood.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_root synflood.sh
need_tools synflood.sh wrk nginx hping3 python3 curl taskset

run_names xf
CLOSED=8081
server_pid=""
flood_pid=""
stats_sock="$tmp/xdptcp.sock"
mkdir -p "$out"
results="$out/runs.jsonl"
: >"$results"

trap 'end_run "$flood_pid" "$server_pid"' EXIT INT TERM

server_topology
ip netns exec "$srv" sysctl -qw net.ipv4.tcp_syncookies=1

write_nginx_conf "$tmp/nginx.conf" "$tmp" "$SRV" "$PORT"

# Memory of the server: RSS of its processes plus the kernel's slab (the kernel's own TCP
# state, request socks included, lives there, not in nginx's RSS).
server_mem_kib() {
    echo "$(proc_rss_kib "$server_pid") $(awk '/^Slab:/{print $2}' /proc/meminfo)"
}

legit() {
    wrk_close "$cli" "http://$SRV:$PORT/" "$duration"
}

# start_flood TOOL PORT: floods PORT of the server for the length of one legit run.
start_flood() {
    case "$1" in
    hping3)
        ip netns exec "$cli" timeout -s INT $((duration + 1)) taskset -c 1 hping3 --flood -S \
            -p "$2" "$SRV" >"$tmp/flood.log" 2>&1 &
        ;;
    xdptcp-load)
        ip netns exec "$cli" timeout $((duration + 10)) "$xdptcp" load --iface "$name-c" \
            --target "$SRV:$2" --mode synflood --rate 2000000 --flood-sources 10.201.78.0/24 \
            --cores 1 --duration $((duration + 1)) --json "$tmp/flood.json" >/dev/null \
            2>"$tmp/flood.log" &
        ;;
    esac
    flood_pid=$!
    sleep 0.5
}

# SYNs the last flood sent: hping3's own statistics line, or the load generator's JSON.
flood_sent() {
    case "$1" in
    hping3) sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$tmp/flood.log" | tail -n 1 ;;
    xdptcp-load) python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connections"])' \
        "$tmp/flood.json" 2>/dev/null ;;
    esac
}

run_one() { # SERVER FLOOD TARGET-PORT-KIND
    local server=$1 flood=$2 kind=$3 base=$4 port before after mem_before mem_after under sent
    port=$PORT
    [ "$kind" = closed ] && port=$CLOSED
    mem_before=$(server_mem_kib)
    before=$(server_counters "$server" "$stats_sock")
    start_flood "$flood" "$port"
    under=$(legit)
    # Let the flood end by itself (it is timed to outlast the legit run), then count.
    for _ in $(seq 50); do kill -0 "$flood_pid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$flood_pid"
    flood_pid=""
    sent=$(flood_sent "$flood")
    sleep 0.5
    after=$(server_counters "$server" "$stats_sock")
    mem_after=$(server_mem_kib)
    rm -f "$tmp/flood.json"
    echo "   $flood at the $kind port: $under (flood sent ${sent:-?} SYNs)"
    python3 - "$server" "$flood" "$kind" "$base" "$under" "$mem_before" "$mem_after" "${sent:-null}" \
        "$before" "$after" >>"$results" <<'PY'
import json, sys
server, flood, kind, base, under, mb, ma, sent, before, after = sys.argv[1:]
b, u = json.loads(base or "{}"), json.loads(under or "{}")
rate = lambda r: r["requests"] / (r["duration_us"] / 1e6) if r.get("duration_us") else None
mb, ma = [int(x) for x in mb.split()], [int(x) for x in ma.split()]
c0, c1 = json.loads(before), json.loads(after)
def delta(path):
    if not c0 or not c1:
        return None
    a, z = c0, c1
    for k in path:
        a, z = a.get(k, {}), z.get(k, {})
    return z - a if isinstance(a, int) and isinstance(z, int) else None
print(json.dumps({
    "server": server, "flood": flood, "target": kind,
    "legit_rate_no_flood": rate(b), "legit_rate_flood": rate(u),
    "errors_no_flood": b.get("errors"), "errors_flood": u.get("errors"),
    "p99_us_no_flood": b.get("p99_us"), "p99_us_flood": u.get("p99_us"),
    "flood_syns_sent": None if sent == "null" else int(sent),
    "xdp_cookie_synacks": delta(["xdp", "cookie_synacks"]),
    "engine_syns": delta(["total", "counters", "syns_received"]),
    "kernel_rx_dropped": delta(["total", "socket", "kernel_rx_dropped"]),
    "xdp_tx_dropped": delta(["xdp", "tx_dropped"]),
    "xdp_rst_backscatter": delta(["xdp", "rst_backscatter"]),
    "rss_kib_before": mb[0], "rss_kib_after": ma[0],
    "slab_kib_before": mb[1], "slab_kib_after": ma[1],
}))
PY
}

# xdptcp twice: `auto` (half-open state until the budget is full, then cookies answered in
# XDP) and `always` (every SYN answered in XDP, no state before the third ACK).
for server in nginx xdptcp xdptcp-always; do
    echo "== $server"
    case "$server" in
    nginx) start_server nginx $((duration * 12 + 60)) ;;
    xdptcp) start_server xdptcp $((duration * 12 + 60)) --stats-socket "$stats_sock" ;;
    xdptcp-always) start_server xdptcp $((duration * 12 + 60)) --stats-socket "$stats_sock" \
        --syncookies always ;;
    esac
    base=$(legit)
    echo "   no flood: $base"
    for flood in hping3 xdptcp-load; do
        for kind in closed served; do
            run_one "$server" "$flood" "$kind" "$base"
        done
    done
    stop_pid "$server_pid"
    server_pid=""
    if [ "$server" != nginx ]; then
        echo "   $server final report:"
        sed 's/^/     /' "$tmp/xdptcp.log" | tail -n 14
    fi
done

python3 scripts/synflood_report.py "$results" "$out/result.json" "$out/result.md"
echo "results: $out/result.json $out/result.md"
