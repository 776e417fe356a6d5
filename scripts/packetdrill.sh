#!/usr/bin/env bash
# Runs packetdrill scripts against xdptcp's engine through the cdylib shim (packetdrill/),
# in-process, on a virtual clock: no root, no network, no namespace.
#
#   scripts/packetdrill.sh [--timeout SECS] [--verbose] [SCRIPT.pkt...]
#
# Without scripts it runs our suite (tests/packetdrill/*.pkt) and the adapted upstream scripts
# (tests/packetdrill/upstream/*.pkt), each once per IP family (ipv4 and ipv6; a script narrows
# or widens that with a `// families: ...` line).
#
# packetdrill is built in a temporary directory from, in this order: $PACKETDRILL_SRC; else
# <repo>/../shared/packetdrill when present; else a clone of google/packetdrill at the pinned
# commit below (gtests/net/packetdrill). If none builds, the script fails (it never skips).
#
# Exit status: non-zero when a script of our suite fails (unless tests/packetdrill/ENGINE_BUGS
# lists it: an engine bug the suite found, waiting for its fix), or when an upstream script's
# result differs from tests/packetdrill/upstream/EXPECTED_FAILURES. Both lists are checked both
# ways (a listed script that passes fails the run too), so they cannot go stale.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

PINNED_REPO=https://github.com/google/packetdrill
PINNED_COMMIT=2c4001c4d6fc04a3bbd01d4b92be62717a37648a
timeout_secs=60
verbose=0
scripts=()
while [ $# -gt 0 ]; do
    case "$1" in
    --timeout) timeout_secs=$2; shift 2 ;;
    --verbose) verbose=1; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "packetdrill.sh: unknown option $1" >&2; exit 2 ;;
    *) scripts+=("$1"); shift ;;
    esac
done

for tool in gcc make bison flex cargo timeout; do
    command -v "$tool" >/dev/null ||
        { echo "packetdrill.sh: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xdptcp-packetdrill.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# build_from DIR: builds packetdrill from a copy of its source directory DIR into $tmp/pd.
build_from() {
    rm -rf "$tmp/pd"
    cp -r "$1" "$tmp/pd" || return 1
    (cd "$tmp/pd" && ./configure >"$tmp/build.log" 2>&1 &&
        make -j2 packetdrill >>"$tmp/build.log" 2>&1) || {
        echo "packetdrill.sh: building packetdrill from $1 failed:" >&2
        tail -20 "$tmp/build.log" >&2
        return 1
    }
}

tried=()
built=""
if [ -n "${PACKETDRILL_SRC:-}" ]; then
    tried+=("PACKETDRILL_SRC=$PACKETDRILL_SRC")
    build_from "$PACKETDRILL_SRC" && built="$PACKETDRILL_SRC"
fi
if [ -z "$built" ] && [ -d "$repo/../shared/packetdrill" ]; then
    tried+=("$repo/../shared/packetdrill")
    build_from "$repo/../shared/packetdrill" && built="$repo/../shared/packetdrill"
fi
if [ -z "$built" ]; then
    tried+=("$PINNED_REPO at $PINNED_COMMIT")
    if git clone -q "$PINNED_REPO" "$tmp/clone" 2>"$tmp/clone.log" &&
        git -C "$tmp/clone" checkout -q "$PINNED_COMMIT" 2>>"$tmp/clone.log"; then
        build_from "$tmp/clone/gtests/net/packetdrill" && built="$PINNED_REPO@$PINNED_COMMIT"
    else
        echo "packetdrill.sh: cloning $PINNED_REPO failed:" >&2
        cat "$tmp/clone.log" >&2
    fi
fi
if [ -z "$built" ]; then
    echo "packetdrill.sh: FAILED: could not build packetdrill; tried: ${tried[*]}." >&2
    echo "  Set PACKETDRILL_SRC to a packetdrill source directory (gtests/net/packetdrill of" >&2
    echo "  $PINNED_REPO at $PINNED_COMMIT) and install bison and flex (scripts/install-deps.sh)." >&2
    exit 1
fi
packetdrill=$tmp/pd/packetdrill
echo "== packetdrill built from $built"

echo "== cargo build -p xdptcp-packetdrill"
cargo build -q -p xdptcp-packetdrill
shim=$repo/target/debug/libxdptcp_packetdrill.so
[ -f "$shim" ] || { echo "packetdrill.sh: $shim was not built" >&2; exit 1; }

if [ ${#scripts[@]} -eq 0 ]; then
    shopt -s nullglob
    scripts=(tests/packetdrill/*.pkt tests/packetdrill/upstream/*.pkt)
    shopt -u nullglob
fi

# Expected failures, checked both ways: upstream scripts that fail for a reason listed in
# upstream/EXPECTED_FAILURES, and scripts of ours that wait for an engine fix (ENGINE_BUGS).
expected_file=tests/packetdrill/upstream/EXPECTED_FAILURES
bugs_file=tests/packetdrill/ENGINE_BUGS
declare -A expected=() bugs=()
read_list() { # FILE ARRAY
    local -n into=$2
    [ -f "$1" ] || return 0
    while read -r name _; do
        case "$name" in '' | '#'*) continue ;; esac
        into[$name]=1
    done <"$1"
}
read_list "$expected_file" expected
read_list "$bugs_file" bugs

family_args() {
    case "$1" in
    ipv4) echo "--ip_version=ipv4 --local_ip=192.168.0.1 --remote_ip=192.0.2.1" ;;
    ipv6) echo "--ip_version=ipv6 --local_ip=fd3d:a0b:17d6::1 --remote_ip=fd3d:fa7b:d17d::1" ;;
    ipv4-mapped-ipv6)
        echo "--ip_version=ipv4-mapped-ipv6 --local_ip=192.168.0.1 --remote_ip=192.0.2.1" ;;
    *) return 1 ;;
    esac
}

ours_pass=0 ours_fail=0 ours_known=0 ours_unexpected=0 up_pass=0 up_fail=0 up_known=0 up_unexpected=0
failed=() unexpected=()
for script in "${scripts[@]}"; do
    [ -f "$script" ] || { echo "packetdrill.sh: no such script: $script" >&2; exit 2; }
    # packetdrill runs `backquoted` lines and %{ }% blocks on the host (sysctl, ip route, tc,
    # python): never here.
    if sed 's|//.*||' "$script" | grep -qE '`|%\{'; then
        echo "packetdrill.sh: $script runs shell or Python commands (backquotes, %{ }%): refused" >&2
        exit 2
    fi
    name=$(basename "$script")
    upstream=0
    case "$script" in */upstream/*) upstream=1 ;; esac
    families=$(sed -n 's|^// families: *||p' "$script" | head -1)
    [ -n "$families" ] || families="ipv4 ipv6"
    script_failed=0
    listed=0
    if [ "$upstream" -eq 1 ]; then
        [ -n "${expected[$name]:-}" ] && listed=1
    else
        [ -n "${bugs[$name]:-}" ] && listed=1
    fi
    for family in $families; do
        args=$(family_args "$family") ||
            { echo "packetdrill.sh: $script: unknown family $family" >&2; exit 2; }
        log="$tmp/run.log"
        # Our scripts pin TSval too, a 1 ms clock (RFC 7323 §5.4) as Linux's, unless they set
        # --tcp_ts_tick_usecs themselves (the command line would win over the script's line).
        extra=()
        if [ "$upstream" -eq 0 ] && ! grep -q '^--tcp_ts_tick_usecs' "$script"; then
            extra=(--tcp_ts_tick_usecs=1000)
        fi
        # shellcheck disable=SC2086 # the family's arguments are separate words
        if (cd "$(dirname "$script")" &&
            timeout "$timeout_secs" "$packetdrill" --so_filename="$shim" $args "${extra[@]}" "$name") \
            >"$log" 2>&1; then
            result=ok
        else
            rc=$?
            result=FAIL
            [ "$rc" -eq 124 ] && result="FAIL (timed out after ${timeout_secs}s)"
            script_failed=1
        fi
        # A failure already listed gets one line (its reason is in the list); anything
        # unexpected, or everything with --verbose, gets packetdrill's output.
        if [ "$verbose" -eq 1 ] || { [ "$result" != ok ] && [ "$listed" -eq 0 ]; } ||
            { [ "$result" = ok ] && [ "$listed" -eq 1 ]; }; then
            echo "-- $script [$family]: $result"
            sed 's/^/   /' "$log" | head -12
        elif [ "$result" != ok ]; then
            echo "-- $script [$family]: $result (listed)"
        fi
    done
    if [ "$upstream" -eq 0 ]; then
        if [ "$script_failed" -eq 0 ]; then
            ours_pass=$((ours_pass + 1))
            if [ -n "${bugs[$name]:-}" ]; then
                ours_unexpected=$((ours_unexpected + 1))
                failed+=("$script passes but is listed in $bugs_file")
            fi
        else
            ours_fail=$((ours_fail + 1))
            if [ -n "${bugs[$name]:-}" ]; then
                ours_known=$((ours_known + 1))
            else
                ours_unexpected=$((ours_unexpected + 1))
                failed+=("$script")
            fi
        fi
    elif [ "$script_failed" -eq 0 ]; then
        up_pass=$((up_pass + 1))
        if [ -n "${expected[$name]:-}" ]; then
            up_unexpected=$((up_unexpected + 1))
            unexpected+=("$script passes but is listed in $expected_file")
        fi
    else
        up_fail=$((up_fail + 1))
        if [ -n "${expected[$name]:-}" ]; then
            up_known=$((up_known + 1))
        else
            up_unexpected=$((up_unexpected + 1))
            unexpected+=("$script fails and is not listed in $expected_file")
        fi
    fi
done

echo
echo "== our suite: $ours_pass passed, $ours_fail failed ($ours_known of them listed in $bugs_file)"
for f in "${failed[@]}"; do echo "   unexpected: $f"; done
if [ $((up_pass + up_fail)) -gt 0 ]; then
    echo "== upstream (adapted): $up_pass passed, $up_fail failed ($up_known of them listed in $expected_file)"
    for f in "${unexpected[@]}"; do echo "   unexpected: $f"; done
fi
[ "$ours_unexpected" -eq 0 ] && [ "$up_unexpected" -eq 0 ]
