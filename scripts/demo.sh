#!/usr/bin/env bash
# Demo (as root): xdptcp serving HTTP on AF_XDP in one namespace, a short bounded wrk load from
# another, then wrk's figures and the server's final report. Everything it makes is removed on
# exit, also on failure or Ctrl-C. Traffic stays between the two namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root demo.sh
need_tools demo.sh wrk curl python3 taskset ethtool

run_names xd
log="$tmp/serve.log"
server_pid=""

trap 'end_run "$server_pid"' EXIT INT TERM

build_release

echo "== topology: $srv (10.201.77.1) <-veth-> $cli (10.201.77.2)"
scripts/netns.sh up "$name" 1

echo "== xdptcp serve --app http on $name-s:8080"
hist="out/demo"
rm -rf "$hist"
ip netns exec "$srv" "$xdptcp" serve --iface "$name-s" --addr 10.201.77.1 \
    --port 8080 --app http --cores 0 --duration 40 --hist-out "$hist" 2>"$log" &
server_pid=$!
for _ in $(seq 50); do
    ip -n "$srv" link show dev "$name-s" | grep -q prog/xdp && break
    sleep 0.1
done

echo "== curl http://10.201.77.1:8080/"
ip netns exec "$cli" curl -s -m 5 -i http://10.201.77.1:8080/ || true
echo "== wrk -t1 -c50 -d5s --latency (keep-alive)"
ip netns exec "$cli" timeout 30 taskset -c 1 wrk -t1 -c50 -d5s --latency http://10.201.77.1:8080/ || true
echo "== wrk -t1 -c50 -d5s --latency -H 'Connection: close'"
ip netns exec "$cli" timeout 30 taskset -c 1 wrk -t1 -c50 -d5s --latency -H 'Connection: close' \
    http://10.201.77.1:8080/ || true
echo "== xdptcp load --mode connect-close (our own AF_XDP client) for 5 s"
ip netns exec "$cli" timeout 30 "$xdptcp" load --iface "$name-c" \
    --target 10.201.77.1:8080 --mode connect-close --concurrency 128 --cores 1 --duration 5 \
    2>&1 | sed -n '/== xdptcp load result/,/^}/p' || true

kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "== server output"
cat "$log"
echo "== server latency histograms ($hist/*.hgrm, *.svg, summary.json)"
python3 - "$hist/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for kind, h in s["latency"].items():
    if h.get("count"):
        print(f"  {kind:10} n={h['count']:>9}  p50={h['p50_us']:>8.1f}us  p90={h['p90_us']:>8.1f}us  "
              f"p99={h['p99_us']:>8.1f}us  p99.9={h['p999_us']:>8.1f}us  max={h['max_us']:>9.1f}us")
print("  app:", " ".join(f"{k}={v}" for k, v in s.get("app", {}).items()))
PY
