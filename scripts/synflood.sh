#!/usr/bin/env bash
# SYN-flood survival, as root: legit `wrk -H 'Connection: close'` traffic measured alone and
# then beside a SYN flood, against kernel + nginx (net.ipv4.tcp_syncookies=1) and against
# xdptcp, on the same two-namespace veth topology (server on CPU 0, clients on CPU 1).
#
#   sudo scripts/synflood.sh [--duration S] [--out DIR] [--quick]
#
# Floods: `hping3 --flood -S` (the client's own address, so its kernel answers SYN-ACKs with
# RSTs) and `xdptcp load --mode synflood` (spoofed sources inside the client's own /24-adjacent
# test prefix, at its top rate). Reports legit conn/s with and without the flood, failed
# connections, p99, the server's SYN/cookie counters and its memory before and after.
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

name="xf$$"
srv="$name-srv"
cli="$name-cli"
SRV=10.201.77.1
PORT=8080
tmp="$(mktemp -d)"
server_pid=""
flood_pid=""
mkdir -p "$out"
results="$out/runs.jsonl"
: >"$results"
: >"$out/servers.jsonl"

cleanup() {
    stop_pid "$flood_pid"
    stop_pid "$server_pid"
    scripts/netns.sh down "$name"
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

cargo build --release --bin xdptcp
xdptcp="$PWD/target/release/xdptcp"
scripts/netns.sh up "$name" 1
ip netns exec "$srv" sysctl -qw net.ipv4.tcp_syncookies=1 net.core.somaxconn=4096 \
    net.ipv4.tcp_max_syn_backlog=4096
ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"

write_nginx_conf "$tmp/nginx.conf" "$tmp" "$SRV" "$PORT"

# Memory of the server: RSS of its processes plus the kernel's slab (the kernel's own TCP
# state, request socks included, lives there, not in nginx's RSS).
server_mem_kib() {
    local rss=0 p
    for p in $server_pid $(pgrep -P "$server_pid" 2>/dev/null || true); do
        rss=$((rss + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$rss $(awk '/^Slab:/{print $2}' /proc/meminfo)"
}

legit() {
    ip netns exec "$cli" timeout $((duration + 30)) taskset -c 1 wrk -t1 -c32 -d"${duration}s" \
        -H 'Connection: close' -s scripts/wrk-report.lua "http://$SRV:$PORT/" | sed -n 's/^WRKJSON //p'
}

start_flood() {
    case "$1" in
    hping3)
        ip netns exec "$cli" timeout $((duration + 3)) taskset -c 1 hping3 --flood -S -p "$PORT" \
            "$SRV" >/dev/null 2>&1 &
        ;;
    xdptcp-load)
        ip netns exec "$cli" timeout $((duration + 10)) "$xdptcp" load --iface "$name-c" \
            --target "$SRV:$PORT" --mode synflood --rate 2000000 --flood-sources 10.201.78.0/24 \
            --cores 1 --duration $((duration + 2)) --json "$tmp/flood.json" >/dev/null 2>"$tmp/flood.log" &
        ;;
    esac
    flood_pid=$!
    sleep 0.5
}

# xdptcp twice: `auto` (half-open state until 4096 entries, then cookies, as Linux) and
# `always` (every SYN answered with a cookie, no state before the third ACK).
for server in nginx xdptcp xdptcp-always; do
    echo "== $server"
    case "$server" in
    xdptcp-always) start_server xdptcp $((duration * 8 + 60)) --syncookies always ;;
    *) start_server "$server" $((duration * 8 + 60)) ;;
    esac
    base=$(legit)
    echo "   no flood: $base"
    for flood in hping3 xdptcp-load; do
        mem_before=$(server_mem_kib)
        start_flood "$flood"
        under=$(legit)
        stop_pid "$flood_pid"
        flood_pid=""
        sleep 0.5
        mem_after=$(server_mem_kib)
        flood_sent=$(python3 -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["connections"])
except Exception: print("null")' "$tmp/flood.json")
        rm -f "$tmp/flood.json"
        echo "   $flood: $under"
        python3 - "$server" "$flood" "$base" "$under" "$mem_before" "$mem_after" "$flood_sent" \
            "$duration" >>"$results" <<'PY'
import json, sys
server, flood, base, under, mb, ma, sent, dur = sys.argv[1:]
b, u = json.loads(base or "{}"), json.loads(under or "{}")
rate = lambda r: r["requests"] / (r["duration_us"] / 1e6) if r.get("duration_us") else None
rb, ru = rate(b), rate(u)
mb, ma = [int(x) for x in mb.split()], [int(x) for x in ma.split()]
print(json.dumps({
    "server": server, "flood": flood,
    "legit_rate_no_flood": rb, "legit_rate_flood": ru,
    "legit_ratio": (ru / rb) if rb and ru else None,
    "errors_no_flood": b.get("errors"), "errors_flood": u.get("errors"),
    "p99_us_no_flood": b.get("p99_us"), "p99_us_flood": u.get("p99_us"),
    "rss_kib_before": mb[0], "rss_kib_after": ma[0],
    "slab_kib_before": mb[1], "slab_kib_after": ma[1],
    "flood_syns_sent": None if sent == "null" else int(sent),
}))
PY
    done
    stop_pid "$server_pid"
    server_pid=""
    if [ "$server" != nginx ]; then
        python3 - "$server" "$out/hist-xdptcp/summary.json" >>"$out/servers.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[2]))
c = s["counters"]
print(json.dumps({"server": sys.argv[1], "syns": c["syns_received"], "synacks": c["synacks_sent"],
                  "cookies": c["cookies_sent"], "cookies_validated": c["cookies_validated"],
                  "half_open_at_stop": s["states"]["syn_recv"], "dropped": sum(s["drops"].values())}))
PY
        echo "   $server final report:"
        sed 's/^/     /' "$tmp/xdptcp.log" | tail -n 12
    fi
done

python3 - "$results" "$out/result.json" "$out/result.md" "$out/servers.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(runs, open(sys.argv[2], "w"), indent=2)
f = lambda v, d=0: "–" if v is None else (f"{v:,.{d}f}" if isinstance(v, float) else str(v))
lines = ["| server | flood | legit conn/s alone | under flood | ratio | failed (alone / flood) | p99 µs (alone / flood) | RSS KiB before → after | slab KiB before → after |",
         "| --- | --- | ---: | ---: | ---: | --- | --- | --- | --- |"]
for r in runs:
    name = {'nginx': 'kernel + nginx', 'xdptcp': 'xdptcp (cookies auto)', 'xdptcp-always': 'xdptcp (cookies always)'}[r['server']]
    lines.append(f"| {name} | {r['flood']} | {f(r['legit_rate_no_flood'])} | {f(r['legit_rate_flood'])} | {f(r['legit_ratio'],2)} | {r['errors_no_flood']} / {r['errors_flood']} | {r['p99_us_no_flood']} / {r['p99_us_flood']} | {r['rss_kib_before']} → {r['rss_kib_after']} | {r['slab_kib_before']} → {r['slab_kib_after']} |")
servers = [json.loads(l) for l in open(sys.argv[4]) if l.strip()]
lines += ["", "| xdptcp | SYNs received | SYN-ACKs sent | of which cookies | cookie ACKs validated | half-open entries at stop |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]
for v in servers:
    lines.append(f"| {v['server']} | {v['syns']:,} | {v['synacks']:,} | {v['cookies']:,} | {v['cookies_validated']:,} | {v['half_open_at_stop']} |")
open(sys.argv[3], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
empty = [f"{r['server']}/{r['flood']}" for r in runs if not r["legit_rate_no_flood"] or not r["legit_rate_flood"]]
if empty:
    sys.exit(f"synflood.sh: no legit throughput measured for {', '.join(empty)}")
PY
echo "results: $out/result.json $out/result.md"
