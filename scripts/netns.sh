#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for running xdptcp against the kernel's TCP:
# the one topology of the scripts and of the interop tests (tests/common/mod.rs runs this).
#
#   scripts/netns.sh up   NAME [QUEUES] [--subnet N] [--mtu BYTES] [--client-gro on|off]
#   scripts/netns.sh down NAME
#
# `up` makes NAME-srv (10.201.N.1/24 and fd00:201:N::1/64 on veth NAME-s) and NAME-cli
# (10.201.N.2, fd00:201:N::2 on NAME-c), N 77 unless told (1-254, its digits the IPv6 group),
# QUEUES RX/TX queues on each end (1 unless told), both veths at BYTES (1500 unless told).
# The client's veth has TX checksum offload, TSO and GSO off (a kernel peer over veth otherwise
# sends frames whose TCP checksum is not filled in) and GRO on: GRO gives it NAPI, without which
# veth drops the frames the server's XDP program sends back (XDP_TX: cookie SYN-ACKs).
# `--client-gro off` leaves it as on a plain veth pair nobody tuned.
#
# Traffic stays inside the two namespaces. Under scripts/test.sh (XDPTCP_TEST_RECORD set) the
# namespaces and veths are noted first, and test.sh checks at its end that none is left.
set -euo pipefail

usage() {
    echo "usage: netns.sh up NAME [QUEUES] [--subnet N] [--mtu BYTES] [--client-gro on|off]" >&2
    echo "       netns.sh down NAME" >&2
    exit 2
}
cmd=${1:-}
name=${2:-}
[ -n "$cmd" ] && [ -n "$name" ] || usage
shift 2
[[ $name =~ ^[A-Za-z0-9]+$ ]] && [ ${#name} -le 13 ] ||
    { echo "netns.sh: NAME must be letters and digits, at most 13 (a veth is NAME-s)" >&2; exit 2; }
srv="$name-srv"
cli="$name-cli"

case "$cmd" in
up)
    queues=1
    subnet=77
    mtu=""
    gro=on
    if [ $# -gt 0 ] && [[ $1 != --* ]]; then
        queues=$1
        shift
    fi
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || usage
        case $1 in
        --subnet) subnet=$2 ;;
        --mtu) mtu=$2 ;;
        --client-gro) gro=$2 ;;
        *) usage ;;
        esac
        shift 2
    done
    [[ $queues =~ ^[1-9][0-9]*$ ]] || { echo "netns.sh: QUEUES must be a positive number" >&2; exit 2; }
    [[ $subnet =~ ^[0-9]+$ ]] && [ "$subnet" -ge 1 ] && [ "$subnet" -le 254 ] ||
        { echo "netns.sh: --subnet must be 1 to 254" >&2; exit 2; }
    [ -z "$mtu" ] || [[ $mtu =~ ^[0-9]+$ ]] || { echo "netns.sh: --mtu must be a number" >&2; exit 2; }
    [[ $gro == on || $gro == off ]] || { echo "netns.sh: --client-gro is on or off" >&2; exit 2; }
    v6="fd00:201:$subnet"
    if [ -n "${XDPTCP_TEST_RECORD:-}" ]; then
        printf 'netns %s\nnetns %s\nlink %s\nlink %s\n' "$srv" "$cli" "$name-s" "$name-c" \
            >>"$XDPTCP_TEST_RECORD"
    fi
    ip netns add "$srv"
    ip netns add "$cli"
    ip link add "$name-s" netns "$srv" numrxqueues "$queues" numtxqueues "$queues" type veth \
        peer name "$name-c" netns "$cli" numrxqueues "$queues" numtxqueues "$queues"
    ip -n "$srv" addr add "10.201.$subnet.1/24" dev "$name-s"
    ip -n "$cli" addr add "10.201.$subnet.2/24" dev "$name-c"
    # nodad: usable at once, no duplicate address detection on a link of our own.
    ip -n "$srv" addr add "$v6::1/64" dev "$name-s" nodad
    ip -n "$cli" addr add "$v6::2/64" dev "$name-c" nodad
    if [ -n "$mtu" ]; then
        ip -n "$srv" link set dev "$name-s" mtu "$mtu"
        ip -n "$cli" link set dev "$name-c" mtu "$mtu"
    fi
    ip -n "$srv" link set dev "$name-s" up
    ip -n "$cli" link set dev "$name-c" up
    ip -n "$srv" link set dev lo up
    ip -n "$cli" link set dev lo up
    ip netns exec "$cli" ethtool -K "$name-c" tx off tso off gso off gro "$gro" >/dev/null
    ;;
down)
    [ $# -eq 0 ] || usage
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    ;;
*)
    usage
    ;;
esac
