#!/usr/bin/env bash
# The whole test suite, as root: formatting, lints, unit tests, in-memory engine scenarios,
# BPF fixtures, AF_XDP interop with the kernel's TCP over veth pairs between network
# namespaces the tests create themselves, criterion benches in test mode, short smoke runs
# of the benchmark scripts so they cannot rot, and the short soak (100 000 connections).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run as root: the interop tests and benchmark smoke runs need namespaces and XDP" >&2
    exit 1
fi

# Nothing of this run may be left behind. Its tests (tests/common/mod.rs `Topology`) and
# scripts (scripts/netns.sh) write every namespace and veth they make into the file named by
# XDPTCP_TEST_RECORD, and every process of the run inherits XDPTCP_TEST_RUN. At the end, and
# when a step fails, whatever of these is still there is named and removed, and the run fails:
# recorded namespaces (with the processes and XDP programs in them), recorded veths in the
# root namespace, processes of this run, and the stats sockets of recorded server veths that
# nobody listens on. (An nginx master rewrites its environment, but it runs in a namespace.)
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/xdptcp-test.XXXXXX")
export XDPTCP_TEST_RUN="test.sh-$$-$(date +%s%N)"
export XDPTCP_TEST_RECORD="$run_tmp/made"
: >"$XDPTCP_TEST_RECORD"
# leftovers: prints and removes what this run left; fails if it found anything.
leftovers() {
    local found=() kind name pid sock
    while read -r kind name; do
        case $kind in
        netns)
            ip netns list | awk '{ print $1 }' | grep -qxF "$name" || continue
            found+=("namespace $name: $(ip -n "$name" -o link show | grep -c 'prog/xdp' || true) XDP program(s), processes: $(ip netns pids "$name" | tr '\n' ' ' || true)")
            for pid in $(ip netns pids "$name"); do kill -KILL "$pid" 2>/dev/null || true; done
            ip netns del "$name" 2>/dev/null || true
            ;;
        link)
            if ip link show dev "$name" >/dev/null 2>&1; then
                found+=("veth $name in the root namespace$(ip -o link show dev "$name" | grep -q 'prog/xdp' && echo ', with an XDP program' || true)")
                ip link del "$name" 2>/dev/null || true
            fi
            ;;
        esac
    done < <(sort -u "$XDPTCP_TEST_RECORD")
    for pid in $(grep -lsz "^XDPTCP_TEST_RUN=$XDPTCP_TEST_RUN\$" /proc/[0-9]*/environ | cut -d/ -f3); do
        [ "$pid" != $$ ] && [ -e "/proc/$pid" ] || continue
        found+=("process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)")
        kill -KILL "$pid" 2>/dev/null || true
    done
    for name in $(awk '$1 == "link" { print $2 }' "$XDPTCP_TEST_RECORD" | sort -u); do
        sock="${XDPTCP_STATS_DIR:-/run/xdptcp}/$name.sock"
        [ -S "$sock" ] || continue
        python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setblocking(False)
try:
    s.connect(sys.argv[1])
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    pass
sys.exit(1)' "$sock" || continue
        found+=("stats socket $sock, nobody listening")
        rm -f "$sock"
    done
    rm -rf "$run_tmp"
    [ ${#found[@]} -eq 0 ] && return 0
    echo "test.sh: this run left behind (now removed):" >&2
    printf '  %s\n' "${found[@]}" >&2
    return 1
}
trap 'leftovers || true' EXIT

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --workspace --all-targets -- -D warnings -D clippy::undocumented_unsafe_blocks"
cargo clippy --workspace --all-targets -- -D warnings -D clippy::undocumented_unsafe_blocks
echo "== import structure: no circle, no upward arrow against the layer tables (src/lib.rs, src/tcp/mod.rs)"
python3 scripts/test_check_layers.py
python3 scripts/check_layers.py
echo "== sizes: no function over 70 lines, no file over 600 in src/ beyond scripts/size-exceptions.txt, none grown"
python3 scripts/test_check_sizes.py
python3 scripts/check_sizes.py
# `cargo test --all-targets` builds a `test = true` example only as its test harness, so the
# example binary interop_ops runs (target/debug/examples/kv) is built first.
echo "== cargo build --examples (examples/kv.rs is exercised by interop_ops)"
cargo build --examples
echo "== cargo test --all-targets"
cargo test --all-targets
echo "== doctests and rustdoc (every public item documented, no broken links)"
cargo test --doc
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib
echo "== examples/xdptcp.service is a valid systemd unit (ExecStart pointed at this build)"
unit_dir="$(mktemp -d)"
sed "s|/usr/local/bin/xdptcp|${CARGO_TARGET_DIR:-$PWD/target}/debug/xdptcp|" examples/xdptcp.service >"$unit_dir/xdptcp.service"
systemd-analyze verify "$unit_dir/xdptcp.service"
rm -rf "$unit_dir"
echo "== no logging on the packet path (tracing is for the control plane)"
if grep -rn "tracing::" src/tcp src/wire src/app src/xdp/worker.rs src/xdp/socket.rs src/xdp/capture.rs; then
    echo "test.sh: tracing on the packet path (above): log from the control thread instead" >&2
    exit 1
fi
echo "== packetdrill: our suite, the adapted upstream scripts and kernel selftests, through the shim"
scripts/packetdrill.sh
echo "== fuzz: every target for 20 s, seeded from the packetdrill suite (scripts/fuzz.sh MINUTES for more)"
scripts/fuzz.sh --seconds 20
echo "== bench report: medians, ratios and latency SVGs on made-up runs"
python3 scripts/test_bench_report.py
echo "== attack report: medians, ratios, counters and the checks that fail a run, on made-up runs"
python3 scripts/test_attack_report.py >/dev/null
echo "== smoke: scripts/bench.sh --quick --queues 2 (IPv4 and IPv6 rows, 1 and 2 queues)"
scripts/bench.sh --quick --queues 2 --out out/ci-bench
for load in keepalive close xload; do
    svg="out/ci-bench/latency-$load.svg"
    [ "$(grep -c '<polyline class="curve"' "$svg")" = 2 ] ||
        { echo "test.sh: $svg lacks the two servers' curves" >&2; exit 1; }
done
echo "== soak: scripts/soak.sh --short (100 000 connections held 10 s, IPv4 and IPv6)"
scripts/soak.sh --short --out out/ci-soak
scripts/soak.sh --short --ipv6 --out out/ci-soak6
echo "== smoke: scripts/synflood.sh --quick"
scripts/synflood.sh --quick --out out/ci-synflood
echo "== smoke: scripts/loss.sh --quick"
scripts/loss.sh --quick --out out/ci-loss
echo "== smoke: scripts/attack.sh --quick (every attack against both servers; fails on a missing row or figure)"
scripts/attack.sh --quick --out out/ci-attack
echo "== nothing left behind (namespaces, veths, XDP programs, processes, stats sockets)"
trap - EXIT
leftovers || exit 1
echo "== all tests passed"
