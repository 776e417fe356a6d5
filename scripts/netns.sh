#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for running xdptcp against the kernel's TCP.
#
#   scripts/netns.sh up   NAME [QUEUES]   # NAME-srv (10.201.77.1, fd00:201:77::1, veth NAME-s)
#                                         # and NAME-cli (10.201.77.2, fd00:201:77::2, NAME-c)
#   scripts/netns.sh down NAME
#
# Traffic stays inside the two namespaces. The client's veth has TX checksum offload, TSO and
# GSO off: a kernel peer over veth otherwise sends frames whose TCP checksum is not filled in.
set -euo pipefail

cmd=${1:?usage: netns.sh up|down NAME [QUEUES]}
name=${2:?usage: netns.sh up|down NAME [QUEUES]}
queues=${3:-1}
srv="$name-srv"
cli="$name-cli"

case "$cmd" in
up)
    # Under scripts/test.sh, which checks at its end that none of it is left.
    if [ -n "${XDPTCP_TEST_RECORD:-}" ]; then
        printf 'netns %s\nnetns %s\nlink %s\nlink %s\n' "$srv" "$cli" "$name-s" "$name-c" \
            >>"$XDPTCP_TEST_RECORD"
    fi
    ip netns add "$srv"
    ip netns add "$cli"
    ip link add "$name-s" netns "$srv" numrxqueues "$queues" numtxqueues "$queues" type veth \
        peer name "$name-c" netns "$cli" numrxqueues "$queues" numtxqueues "$queues"
    ip -n "$srv" addr add 10.201.77.1/24 dev "$name-s"
    ip -n "$cli" addr add 10.201.77.2/24 dev "$name-c"
    # nodad: usable at once, no duplicate address detection on a link of our own.
    ip -n "$srv" addr add fd00:201:77::1/64 dev "$name-s" nodad
    ip -n "$cli" addr add fd00:201:77::2/64 dev "$name-c" nodad
    ip -n "$srv" link set dev "$name-s" up
    ip -n "$cli" link set dev "$name-c" up
    ip -n "$srv" link set dev lo up
    ip -n "$cli" link set dev lo up
    ip netns exec "$cli" ethtool -K "$name-c" tx off tso off gso off gro on >/dev/null
    ;;
down)
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    ;;
*)
    echo "usage: netns.sh up|down NAME [QUEUES]" >&2
    exit 2
    ;;
esac
