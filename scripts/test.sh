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

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
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
sed "s|/usr/local/bin/xdptcp|$PWD/target/debug/xdptcp|" examples/xdptcp.service >"$unit_dir/xdptcp.service"
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
echo "== all tests passed"
