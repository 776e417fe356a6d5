#!/usr/bin/env bash
# Demo (as root): xdptcp serving HTTP on AF_XDP in one namespace, a short bounded wrk load from
# another, then wrk's figures and the server's final report. Everything it makes is removed on
# exit, also on failure or Ctrl-C. Traffic stays between the two namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: must run as root (namespaces, XDP)" >&2
    exit 1
fi

name="xd$$"
srv="$name-srv"
cli="$name-cli"
log="$(mktemp)"
server_pid=""

cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    scripts/netns.sh down "$name"
    rm -f "$log"
}
trap cleanup EXIT INT TERM

echo "== building (release)"
cargo build --release --bin xdptcp

echo "== topology: $srv (10.201.77.1) <-veth-> $cli (10.201.77.2)"
scripts/netns.sh up "$name" 1

echo "== xdptcp serve --app http on $name-s:8080"
ip netns exec "$srv" target/release/xdptcp serve --iface "$name-s" --addr 10.201.77.1 \
    --port 8080 --app http --duration 20 2>"$log" &
server_pid=$!
for _ in $(seq 50); do
    ip -n "$srv" link show dev "$name-s" | grep -q prog/xdp && break
    sleep 0.1
done

echo "== wrk -t1 -c50 -d5s (keep-alive)"
ip netns exec "$cli" timeout 30 wrk -t1 -c50 -d5s http://10.201.77.1:8080/ || true
echo "== wrk -t1 -c50 -d5s -H 'Connection: close'"
ip netns exec "$cli" timeout 30 wrk -t1 -c50 -d5s -H 'Connection: close' http://10.201.77.1:8080/ || true

kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "== server output"
cat "$log"
