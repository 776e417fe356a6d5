#!/usr/bin/env bash
# The whole test suite, as root: formatting, lints, unit tests, in-memory engine scenarios,
# BPF fixtures, AF_XDP interop with the kernel's TCP over veth pairs between network
# namespaces the tests create themselves, criterion benches in test mode, and short smoke runs
# of both benchmark scripts so they cannot rot.
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
echo "== cargo test --all-targets"
cargo test --all-targets
echo "== packetdrill: our suite and the adapted upstream scripts, through the shim"
scripts/packetdrill.sh
echo "== fuzz targets build (run them with cargo fuzz: see fuzz/README.md)"
cargo build --manifest-path fuzz/Cargo.toml
echo "== smoke: scripts/bench.sh --quick"
scripts/bench.sh --quick --out out/ci-bench
echo "== smoke: scripts/synflood.sh --quick"
scripts/synflood.sh --quick --out out/ci-synflood
echo "== all tests passed"
