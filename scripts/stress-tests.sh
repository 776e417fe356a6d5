#!/usr/bin/env bash
# Flake hunt (not in CI): runs every interop test binary (tests/interop*.rs and
# tests/xdp_cookies.rs) N times in a row, debug or with --release, each run under
# /tmp/xdptcp-bench.lock; stops at the first failure, keeping its output, and prints how many
# runs and failures each binary had. As root.
#
#   scripts/stress-tests.sh N [--release] [--only NAME]...
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

usage() {
    echo "usage: scripts/stress-tests.sh N [--release] [--only NAME]..." >&2
    exit 2
}
[ $# -ge 1 ] && [[ $1 =~ ^[1-9][0-9]*$ ]] || usage
runs=$1
shift
profile=()
only=()
while [ $# -gt 0 ]; do
    case $1 in
        --release) profile=(--release) ;;
        --only) [ $# -ge 2 ] || usage; only+=("$2"); shift ;;
        *) usage ;;
    esac
    shift
done
need_root stress-tests.sh

binaries=()
for f in tests/interop*.rs tests/xdp_cookies.rs; do
    name=$(basename "$f" .rs)
    if [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $name "* ]]; then
        binaries+=("$name")
    fi
done
[ ${#binaries[@]} -gt 0 ] || { echo "stress-tests.sh: no such test binary: ${only[*]}" >&2; exit 2; }

out=out/stress
mkdir -p "$out"
echo "== building (${profile[*]:-debug}): ${binaries[*]}"
# The example interop_ops runs (examples/kv.rs) is not built by `cargo test --test`.
nice -n 10 cargo build "${profile[@]}" --examples
args=()
for b in "${binaries[@]}"; do args+=(--test "$b"); done
nice -n 10 cargo test "${profile[@]}" --no-run "${args[@]}"

declare -A done_runs failed
table() {
    printf '\n%-20s %6s %9s\n' binary runs failures
    for b in "${binaries[@]}"; do
        printf '%-20s %6s %9s\n' "$b" "${done_runs[$b]:-0}" "${failed[$b]:-0}"
    done
}

for b in "${binaries[@]}"; do
    for i in $(seq "$runs"); do
        log="$out/$b-$i.log"
        start=$(date +%s)
        if bench_locked nice -n 0 cargo test -q "${profile[@]}" --test "$b" >"$log" 2>&1; then
            done_runs[$b]=$i
            echo "$b: run $i/$runs passed ($(($(date +%s) - start)) s)"
            rm -f "$log"
        else
            done_runs[$b]=$i
            failed[$b]=1
            echo "$b: run $i/$runs FAILED ($(($(date +%s) - start)) s); its output: $log" >&2
            grep -E -- '^---- |panicked at|^failures:|test result' "$log" | head -20 >&2 || true
            table
            exit 1
        fi
    done
done
table
echo "== no failure in $runs run(s) of each binary (${profile[*]:-debug})"
