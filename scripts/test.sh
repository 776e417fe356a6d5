#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit + in-memory engine tests, and (as root) the
# AF_XDP interop tests over veth pairs between network namespaces they create themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test --all-targets"
cargo test --all-targets
