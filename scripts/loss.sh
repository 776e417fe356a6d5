#!/usr/bin/env bash
# Loss recovery and bulk throughput, side by side, as root: the kernel's TCP as the server
# (a plain socket server, reno and bbr set with TCP_CONGESTION) vs `xdptcp serve`, on the same
# two-namespace veth topology, with the same kernel client (scripts/loss_peer.py), server on
# CPU 0 and client on CPU 1, alternating, repeated; medians of the repeats.
#
#   sudo scripts/loss.sh [--repeat N] [--out DIR] [--quick] [--capture] [--no-bbr] [--bulk]
#                        [--mtu N]
#
#   --quick    the CI smoke run: one repeat, 5 % loss only, small transfers (about a minute)
#   --capture  also keep a tcpdump capture (client veth) of every lossy echo run under DIR/pcap
#              and summarise the retransmissions of each in DIR/captures.md (needs tshark)
#   --no-bbr   only reno on the kernel side
#   --bulk     only the bulk rows (upload and echo64)
#   --mtu N    both veths at MTU N (default 1500), e.g. 9000 or veth's largest, 65535: frames
#              larger than a UMEM frame, which only multi-buffer takes
#
# Rows:
#   echo   100 transfers of 256 KiB, 25 at a time, at 0/1/5/10 % random drop both ways in the
#          client namespace (iptables -m statistic --mode random on INPUT and OUTPUT): total
#          time and per-transfer p50/p99
#   upload 1 GiB from the client to `--app discard` / a kernel receiver, no loss: goodput
#   echo64 one 64 MiB echo round trip, no loss: goodput (both directions)
#   The bulk rows run over IPv4 and IPv6 (rows *_v6), against the kernel (reno) and xdptcp
#   single-buffer (`--multi-buffer off`) and multi-buffer (`on`); --quick: IPv4, kernel and
#   xdptcp (`auto`) only.
# Output: DIR/runs.jsonl (every run), DIR/result.json and DIR/result.md (medians, ratios).
#
# Segmentation offload: for the echo rows the server veth has TSO and GSO off, so the kernel
# server puts one MSS per frame on the link as a NIC puts it on the wire, and a random drop
# loses one segment of either server (with GSO on, one drop would lose a 64 KiB super-frame
# of the kernel's: fewer, larger loss events than a real link makes). The bulk rows keep the
# kernel's offloads on: its fastest configuration.
# Traffic stays between the two namespaces this script creates; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

repeat=3
out="out/loss"
quick=0
capture=0
bbr=1
bulk_only=0
mtu=1500
while [ $# -gt 0 ]; do
    case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) quick=1; repeat=1; shift ;;
    --capture) capture=1; shift ;;
    --no-bbr) bbr=0; shift ;;
    --bulk) bulk_only=1; shift ;;
    --mtu) mtu=$2; shift 2 ;;
    *) echo "loss.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_root loss.sh
need_tools loss.sh ethtool iptables python3 taskset
[ "$capture" = 1 ] && need_tools loss.sh tcpdump tshark
if [ "$(nproc)" -lt 2 ]; then
    echo "loss.sh: needs 2 cores (server on CPU 0, client on CPU 1)" >&2
    exit 1
fi

if [ "$quick" = 1 ]; then
    losses="5"
    transfers=20; size=$((64 * 1024)); concurrency=10
    upload=$((64 * 1024 * 1024)); echo_big=$((8 * 1024 * 1024))
    bbr=0
    bulk_servers="reno xdptcp"; families="4"
else
    losses="0 1 5 10"
    transfers=100; size=$((256 * 1024)); concurrency=25
    upload=$((1024 * 1024 * 1024)); echo_big=$((64 * 1024 * 1024))
    bulk_servers="reno xdptcp-single xdptcp-multi"; families="4 6"
fi
[ "$bulk_only" = 1 ] && losses=""
servers="reno"
[ "$bbr" = 1 ] && servers="reno bbr"
servers="$servers xdptcp"

run_names xl
server_pid=""
dump_pid=""
mkdir -p "$out"
runs="$out/runs.jsonl"
: >"$runs"
[ "$capture" = 1 ] && mkdir -p "$out/pcap"

stop_server() {
    stop_pid "$server_pid"
    server_pid=""
}
trap 'end_run "$dump_pid" "$server_pid"' EXIT INT TERM

build_release

echo "== topology $srv <-veth-> $cli, MTU $mtu"
scripts/netns.sh up "$name" 1 --mtu "$mtu"

# set_loss PERCENT: random drop of our TCP port's segments both ways in the client namespace.
set_loss() {
    ip netns exec "$cli" iptables -F INPUT
    ip netns exec "$cli" iptables -F OUTPUT
    [ "$1" = 0 ] && return 0
    local p
    p=$(python3 -c "print($1 / 100)")
    ip netns exec "$cli" iptables -A INPUT -p tcp --sport "$PORT" \
        -m statistic --mode random --probability "$p" -j DROP
    ip netns exec "$cli" iptables -A OUTPUT -p tcp --dport "$PORT" \
        -m statistic --mode random --probability "$p" -j DROP
}

# start SERVER APP [ADDR]: the kernel server (reno | bbr, on ADDR, default $SRV) or xdptcp
# (xdptcp: --multi-buffer auto; xdptcp-single: off; xdptcp-multi: on), on CPU 0; waits until it
# listens.
start() {
    local kind=$1 app=$2 addr=${3:-$SRV}
    case "$kind" in
    reno | bbr)
        ip netns exec "$srv" taskset -c 0 python3 scripts/loss_peer.py server "$app" "$addr" \
            "$PORT" --cc "$kind" 2>"$tmp/server.log" &
        server_pid=$!
        ;;
    xdptcp*)
        local mb=auto
        [ "$kind" = xdptcp-single ] && mb=off
        [ "$kind" = xdptcp-multi ] && mb=on
        ip netns exec "$srv" "$xdptcp" serve --iface "$name-s" --addr "$SRV" --addr "$SRV6" \
            --port "$PORT" --app "$app" --cores 0 --duration 900 --hist-out "$tmp/hist" \
            --multi-buffer "$mb" 2>"$tmp/server.log" &
        server_pid=$!
        ;;
    esac
    local host=$addr
    case "$addr" in *:*) host="[$addr]" ;; esac
    for _ in $(seq 100); do
        if ip netns exec "$cli" python3 -c "import socket; socket.create_connection(('$addr', $PORT), timeout=1).close()" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "loss.sh: $kind ($app) did not come up on $host" >&2
    cat "$tmp/server.log" >&2
    exit 1
}

# measure SERVER ROW LOSS REPEAT CLIENT-ARGS...: one client run, appended to runs.jsonl.
measure() {
    local kind=$1 row=$2 loss=$3 rep=$4 raw pcap=""
    shift 4
    if [ "$capture" = 1 ] && [ "$loss" != 0 ]; then
        pcap="$out/pcap/$row-$loss-$kind-$rep.pcap"
        ip netns exec "$cli" tcpdump -q -i "$name-c" -s 128 -w "$pcap" "tcp port $PORT" \
            2>/dev/null &
        dump_pid=$!
        sleep 0.5
    fi
    raw=$(ip netns exec "$cli" taskset -c 1 python3 scripts/loss_peer.py client "$@" \
        "$PORT" --timeout 300 || true)
    if [ -n "$pcap" ]; then
        sleep 0.3
        stop_pid "$dump_pid"
        dump_pid=""
    fi
    if [ -z "$raw" ]; then
        echo "loss.sh: the client produced no result ($row, $kind, $loss %)" >&2
        exit 1
    fi
    python3 -c 'import json, sys
r = json.loads(sys.argv[1])
r.update(server=sys.argv[2], row=sys.argv[3], loss=float(sys.argv[4]), repeat=int(sys.argv[5]),
         mtu=int(sys.argv[6]))
print(json.dumps(r))' "$raw" "$kind" "$row" "$loss" "$rep" "$mtu" >>"$runs"
    tail -n1 "$runs" | python3 -c 'import json, sys
r = json.loads(sys.stdin.read())
f = lambda v: "-" if v is None else "%.3f" % v
print("   %-6s %-6s loss=%4.1f%% total=%ss p50=%ss p99=%ss goodput=%s MiB/s errors=%d" % (
    r["row"], r["server"], r["loss"], f(r["total_s"]), f(r["p50_s"]), f(r["p99_s"]),
    f(r["goodput_mib_s"]), r["errors"]))'
}

# offload on|off: TSO and GSO of the server veth (only the kernel server uses them).
offload() {
    ip netns exec "$srv" ethtool -K "$name-s" tso "$1" gso "$1" >/dev/null
}

# Echo transfers under loss: every server once per repeat, alternating, one server process per
# loss level and server.
offload off
for loss in $losses; do
    set_loss "$loss"
    for rep in $(seq "$repeat"); do
        for kind in $servers; do
            echo "== echo, loss $loss %, run $rep/$repeat: $kind"
            start "$kind" echo
            measure "$kind" echo "$loss" "$rep" echo --transfers "$transfers" --size "$size" \
                --concurrency "$concurrency" "$SRV"
            stop_server
        done
    done
done
set_loss 0
offload on

# Bulk, no loss: an upload to discard, and one big echo round trip, over each family.
for rep in $(seq "$repeat"); do
    for fam in $families; do
        addr=$SRV suffix=""
        [ "$fam" = 6 ] && addr=$SRV6 suffix="_v6"
        for kind in $bulk_servers; do
            echo "== bulk IPv$fam, run $rep/$repeat: $kind"
            start "$kind" discard "$addr"
            measure "$kind" "upload$suffix" 0 "$rep" upload --size "$upload" "$addr"
            stop_server
            start "$kind" echo "$addr"
            measure "$kind" "echo_big$suffix" 0 "$rep" echo --transfers 1 --concurrency 1 \
                --size "$echo_big" "$addr"
            stop_server
        done
    done
done

echo "== report"
status=0
python3 scripts/loss_report.py "$runs" "$out/result.json" "$out/result.md" || status=$?
if [ "$capture" = 1 ]; then
    python3 scripts/loss_capture.py "$PORT" "$out"/pcap/*.pcap >"$out/captures.md"
    cat "$out/captures.md"
fi
cat "$out/result.md"
echo "results: $out/result.json $out/result.md"
exit "$status"
