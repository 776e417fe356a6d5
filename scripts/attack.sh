#!/usr/bin/env bash
# Under attack, as root: legit `wrk -H 'Connection: close'` traffic measured alone and then
# beside each of six connected or raw attacks (scripts/hostile.py), against kernel + nginx and against
# xdptcp, both with their default timeouts and limits, on the same two-namespace veth topology
# (server on CPU 0; wrk and the attacker share CPU 1, at the same priority).
#
#   sudo scripts/attack.sh [--quick] [--duration S] [--repeat N] [--out DIR]
#                          [--servers "nginx xdptcp"]
#                          [--attacks "slowloris noread hoard shred twecho martians"]
#
# Each attack is run REPEAT times (3; `--quick`: once, 2 s runs), each time right after a
# legit run alone, and the table gives the medians of the ratios (the machine is shared: what
# else runs on it moves both runs of a pair alike).
#
# Attacks, each bounded in connections, packets and seconds (`--quick`: fewer, shorter):
#   slowloris  kernel connections dribbling a request head a byte a second
#   noread     kernel keep-alive connections writing pipelined `GET /`s and never reading the
#              answers (nginx cannot echo: the servers' replies back up instead of an echo's)
#   hoard      raw connections filling the server's window with data past a 1-byte hole
#   shred      raw connections sending duplicate ACKs with four 1-byte SACK blocks each
#   twecho     old SYNs and retransmitted FINs at tuples the server holds in TIME-WAIT
#   martians   SYNs from broadcast/multicast source MACs and martian source addresses
# The raw attackers send from 10.201.77.3 of the client namespace, whose kernel's RSTs for
# them are dropped by an iptables rule in that namespace only (the attackers' own RSTs, which
# end their connections so that the next attack starts clean, carry the mark 0x1d).
#
# Reported per attack and server: legit conn/s and p99 during the attack ÷ without it, the
# server's RSS growth (VmRSS of xdptcp, or of nginx's master and workers) from before the attack
# to its end, the kernel socket buffers held in the server namespace then (nginx's buffers live
# there, not in its RSS), what the attacker achieved and the xdptcp counters that moved.
# Results: OUT/attack.md (the table), OUT/attack.json, OUT/runs.jsonl. Traffic stays between
# the two namespaces this script creates; everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

duration=5
repeat=3
out="out/attack"
quick=0
servers="nginx xdptcp"
attacks="slowloris noread hoard shred twecho martians"
while [ $# -gt 0 ]; do
    case "$1" in
    --duration) duration=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --quick) duration=2; repeat=1; quick=1; shift ;;
    --repeat) repeat=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --attacks) attacks=$2; shift 2 ;;
    *) echo "attack.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
need_root attack.sh
need_tools attack.sh wrk nginx python3 curl taskset iptables ss

# Sizes: connections (and packets a second) of each attack.
if [ "$quick" = 1 ]; then
    dribblers=300 noreaders=30 hoarders=50 shredders=10 shred_rate=2000 tw=50 tw_rate=1000
    martian_rate=5000
else
    dribblers=2000 noreaders=200 hoarders=500 shredders=50 shred_rate=5000 tw=500 tw_rate=5000
    martian_rate=20000
fi

run_names xa
CLI=10.201.77.2
CLI6=fd00:201:77::2
RAW=10.201.77.3
server_pid=""
attack_pid=""
stats_sock="$tmp/xdptcp.sock"
mkdir -p "$out"
results="$out/runs.jsonl"
: >"$results"

trap 'end_run "$attack_pid" "$server_pid"' EXIT INT TERM

server_topology
ip -n "$cli" addr add "$RAW/32" dev "$name-c"
ip netns exec "$cli" iptables -A OUTPUT -s "$RAW" -p tcp --tcp-flags RST RST \
    -m mark ! --mark 0x1d -j DROP
cli_mac=$(ip netns exec "$cli" cat "/sys/class/net/$name-c/address")
srv_mac=$(ip netns exec "$srv" cat "/sys/class/net/$name-s/address")

write_nginx_conf "$tmp/nginx.conf" "$tmp" "$SRV" "$PORT"

# Kernel socket buffers in the server namespace (receive, out-of-order and send queues of
# every socket there), in KiB: `ss -tm` skmem r (rmem_alloc) + w (wmem_queued).
kernel_buffers_kib() {
    ip netns exec "$srv" ss -tmnaH | awk '{
        while (match($0, /skmem:\([^)]*\)/)) {
            m = substr($0, RSTART + 6, RLENGTH - 7); $0 = substr($0, RSTART + RLENGTH)
            n = split(m, f, ",")
            for (i = 1; i <= n; i++) {
                if (f[i] ~ /^r[0-9]/) total += substr(f[i], 2)
                if (f[i] ~ /^w[0-9]/) total += substr(f[i], 2)
            }
        }
    } END { print int(total / 1024) }'
}

# start_attack ATTACK: runs it from the client namespace on CPU 1 (bounded: it ends by itself
# after its setup and twice the legit run), and waits until it says its state is in place.
start_attack() {
    local run=$((duration * 2 + 10)) args
    case "$1" in
    slowloris) args=(slowloris "$dribblers" "$SRV" "$PORT" "$run") ;;
    noread) args=(noread "$noreaders" "$SRV" "$PORT" $((4 << 20)) "$run") ;;
    hoard) args=(hoard "$hoarders" "$RAW" "$SRV" "$PORT" "$run") ;;
    shred) args=(shred "$shredders" "$RAW" "$SRV" "$PORT" "$run" "$shred_rate") ;;
    twecho) args=(twecho "$tw" "$RAW" "$SRV" "$PORT" "$run" "$tw_rate") ;;
    martians) args=(martians "$name-c" "$cli_mac" "$srv_mac" "$CLI" "$SRV" "$CLI6" "$SRV6"
        "$PORT" "$run" "$martian_rate") ;;
    esac
    ip netns exec "$cli" timeout $((run + 20)) taskset -c 1 python3 scripts/hostile.py \
        "${args[@]}" >"$tmp/attack.out" 2>"$tmp/attack.err" &
    attack_pid=$!
    for _ in $(seq 300); do
        grep -qx ready "$tmp/attack.out" && return 0
        kill -0 "$attack_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "attack.sh: $1 did not get ready:" >&2
    cat "$tmp/attack.out" "$tmp/attack.err" >&2
    return 1
}

# run_attack SERVER ATTACK REPEAT: one legit run alone, then one beside ATTACK (so that the
# ratio does not drift with what else the machine does), appended to runs.jsonl.
run_attack() {
    local server=$1 attack=$2 rep=$3 base under rss_before rss_during kbuf before
    base=$(wrk_close "$cli" "http://$SRV:$PORT/" "$duration")
    echo "   alone: $base"
    rss_before=$(proc_rss_kib "$server_pid")
    before=$(server_counters "$server" "$stats_sock")
    start_attack "$attack"
    under=$(wrk_close "$cli" "http://$SRV:$PORT/" "$duration")
    # What the attack holds, before it lets go.
    rss_during=$(proc_rss_kib "$server_pid")
    kbuf=$(kernel_buffers_kib)
    server_counters "$server" "$stats_sock" >"$tmp/after.json"
    stop_pid "$attack_pid"
    attack_pid=""
    tail -n 1 "$tmp/attack.out" >"$tmp/attacker.json"
    echo "   $attack ($rep): $under"
    echo "     attacker: $(cat "$tmp/attacker.json")"
    echo "$before" >"$tmp/before.json"
    python3 scripts/attack_report.py row "$server" "$attack" "$rep" "$base" "$under" "$rss_before" \
        "$rss_during" "$kbuf" "$tmp/before.json" "$tmp/after.json" "$tmp/attacker.json" \
        >>"$results"
    # Let the server let go of what the attack left (its connections were reset or closed).
    sleep 1
}

for server in $servers; do
    echo "== $server"
    case "$server" in
    nginx) start_server nginx 600 ;;
    xdptcp) start_server xdptcp 600 --stats-socket "$stats_sock" ;;
    esac
    for rep in $(seq "$repeat"); do
        for attack in $attacks; do
            run_attack "$server" "$attack" "$rep"
        done
    done
    stop_pid "$server_pid"
    server_pid=""
done

python3 scripts/attack_report.py report "$results" "$out/attack.json" "$out/attack.md" \
    --expect "$servers" --attacks "$attacks"
echo "results: $out/attack.md $out/attack.json"
