#!/usr/bin/env bash
# Runs every cargo-fuzz target for MINUTES each and reports executions per second.
#
#   scripts/fuzz.sh MINUTES            e.g. scripts/fuzz.sh 60 (an hour per target)
#   scripts/fuzz.sh --seconds SECONDS  a short run (test.sh uses it)
#
# First it seeds the corpora (fuzz/corpus/<target>/, kept out of git) from our packetdrill
# suite: each script runs through the shim with XDPTCP_SHIM_RECORD set, and the recordings of
# its socket calls and packets become seeds for shim_calls, engine_receive and wire_parse.
# Runs are timed under /tmp/xdptcp-bench.lock so no two measurements overlap on the machine
# (taken here unless an ancestor, such as `flock /tmp/xdptcp-bench.lock scripts/test.sh`, holds it).
# A crash fails the script and leaves its input in fuzz/artifacts/<target>/.
#
# The targets are safe Rust, so they build without AddressSanitizer (`-s none`: bounds checks
# already turn a memory error into a panic, and the run is several times faster), and without
# libFuzzer's leak check: engine_receive and shim_calls keep one engine per process on
# purpose (recycled between inputs), which the leak check would take for a leak and rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

targets=(wire_parse engine_receive engine_sack shim_calls)
case "${1:-}" in
--seconds) secs=${2:?--seconds needs a number} ;;
'' | -h | --help) sed -n '2,12p' "$0"; exit 2 ;;
*) secs=$(awk -v m="$1" 'BEGIN { if (m + 0 <= 0) exit 1; printf "%d", m * 60 }') ||
    { echo "fuzz.sh: MINUTES must be a positive number, not '$1'" >&2; exit 2; } ;;
esac
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] ||
    { echo "fuzz.sh: the run time must be a positive whole number of seconds" >&2; exit 2; }

command -v cargo-fuzz >/dev/null ||
    { echo "fuzz.sh: cargo-fuzz missing: run scripts/install-deps.sh (cargo install cargo-fuzz)" >&2; exit 1; }
# cargo-fuzz needs nightly flags (-Z sanitizer); RUSTC_BOOTSTRAP=1 allows them on stable.
export RUSTC_BOOTSTRAP=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xdptcp-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== seeds: our packetdrill suite, recorded through the shim"
mkdir -p "$tmp/recordings" fuzz/corpus
shopt -s nullglob
ours=(tests/packetdrill/*.pkt)
shopt -u nullglob
XDPTCP_SHIM_RECORD="$tmp/recordings" scripts/packetdrill.sh "${ours[@]}" >"$tmp/seeds.log" 2>&1 ||
    { tail -20 "$tmp/seeds.log" >&2; echo "fuzz.sh: the packetdrill suite failed while recording seeds" >&2; exit 1; }
cargo run -q -p xdptcp-packetdrill --example fuzz_seeds -- "$tmp/recordings" fuzz/corpus

echo "== build the targets (cargo fuzz build)"
cargo fuzz build -s none >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log" >&2; exit 1; }

printf '\n%-16s %10s %14s %12s %18s\n' target seconds executions "exec/s" "extrapolated 1 h"
results=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log="$tmp/$t.log"
    if ! bench_locked cargo fuzz run -s none "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -detect_leaks=0 \
        >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz.sh: $t FAILED (crash input in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    [ -n "$runs" ] && [ -n "$rate" ] ||
        { tail -20 "$log" >&2; echo "fuzz.sh: $t printed no final stats" >&2; exit 1; }
    line=$(printf '%-16s %10s %14s %12s %18s' "$t" "$secs" "$runs" "$rate" "$((rate * 3600))")
    echo "$line"
    results+=("$line")
done
echo
echo "fuzz.sh: no crash in ${#targets[@]} targets, $secs s each (rates are of a shared machine)"
