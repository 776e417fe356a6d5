#!/usr/bin/env bash
# Runs packetdrill scripts against xdptcp's engine through the cdylib shim (packetdrill/),
# in-process, on a virtual clock: no root, no network, no namespace.
#
#   scripts/packetdrill.sh [--timeout SECS] [--verbose] [SCRIPT.pkt...]
#
# Without scripts it runs our suite (tests/packetdrill/*.pkt), the adapted upstream scripts
# (tests/packetdrill/upstream/*.pkt) and the adapted Linux kernel selftests
# (tests/packetdrill/ksft/*.pkt), each once per IP family (ipv4 and ipv6; a script narrows or
# widens that with a `// families: ...` line, a kernel selftest with an `--ip_version=` line, as
# the kernel's ksft_runner.sh reads it). The kernel selftests run with ksft_runner.sh's
# arguments (addresses, IPv6 MTU 1520, the TFO_COOKIE and CMSG_* defines).
#
# packetdrill is built in a temporary directory from, in this order: $PACKETDRILL_SRC; else
# <repo>/../shared/packetdrill when present; else a clone of google/packetdrill at the pinned
# commit below (gtests/net/packetdrill). If none builds, the script fails (it never skips).
#
# Exit status: non-zero when a script of our suite fails (unless tests/packetdrill/ENGINE_BUGS
# lists it: an engine bug the suite found, waiting for its fix), or when an upstream script's or
# kernel selftest's result differs from its directory's EXPECTED_FAILURES. Every list is checked
# both ways (a listed script that passes fails the run too), so they cannot go stale; each entry
# of ksft/EXPECTED_FAILURES must carry a kind ([engine], [psh], [unsupported], [linux], [shim]).
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
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
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
# CARGO_TARGET_DIR moves the build (a clean build directory, as on a fresh CI machine).
shim=${CARGO_TARGET_DIR:-$repo/target}/debug/libxdptcp_packetdrill.so
[ -f "$shim" ] || { echo "packetdrill.sh: $shim was not built" >&2; exit 1; }

if [ ${#scripts[@]} -eq 0 ]; then
    shopt -s nullglob
    scripts=(tests/packetdrill/*.pkt tests/packetdrill/upstream/*.pkt tests/packetdrill/ksft/*.pkt)
    shopt -u nullglob
fi

# Expected failures, checked both ways: upstream scripts and kernel selftests that fail for a
# reason listed in their EXPECTED_FAILURES, and scripts of ours that wait for an engine fix
# (ENGINE_BUGS). A list maps a script to its kind ([engine], [psh], ...; "-" when it has none).
expected_file=tests/packetdrill/upstream/EXPECTED_FAILURES
ksft_file=tests/packetdrill/ksft/EXPECTED_FAILURES
bugs_file=tests/packetdrill/ENGINE_BUGS
declare -A expected=() ksft_expected=() bugs=()
read_list() { # FILE ARRAY
    local -n into=$2
    [ -f "$1" ] || return 0
    local name rest kind
    while read -r name rest; do
        case "$name" in '' | '#'*) continue ;; esac
        kind=$(sed -n 's/^# *\(\[[a-z]*\]\).*/\1/p' <<<"$rest")
        into[$name]=${kind:--}
    done <"$1"
}
read_list "$expected_file" expected
read_list "$ksft_file" ksft_expected
read_list "$bugs_file" bugs
ksft_kinds=" [engine] [psh] [unsupported] [linux] [shim] "
# Kernel selftests that upstream/ already runs (ksft/IN_UPSTREAM: kernel name, upstream name):
# their results count into the kernel selftests' totals too.
declare -A in_upstream=()
while read -r kname uname; do
    case "$kname" in '' | '#'*) continue ;; esac
    # Neither stale nor a copy twice over.
    [ -f "tests/packetdrill/upstream/$uname" ] ||
        { echo "packetdrill.sh: ksft/IN_UPSTREAM: no upstream/$uname" >&2; exit 2; }
    [ ! -f "tests/packetdrill/ksft/$kname" ] ||
        { echo "packetdrill.sh: ksft/$kname is also run as upstream/$uname" >&2; exit 2; }
    in_upstream[$uname]=$kname
done <tests/packetdrill/ksft/IN_UPSTREAM
for name in "${!ksft_expected[@]}"; do
    case "$ksft_kinds" in
    *" ${ksft_expected[$name]} "*) ;;
    *) echo "packetdrill.sh: $ksft_file: $name has no kind ([engine], [psh], ...)" >&2; exit 2 ;;
    esac
done

# The kernel's ksft_runner.sh arguments, per family.
ksft_family_args() {
    case "$1" in
    ipv4)
        echo "--ip_version=ipv4 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1" \
            "--netmask_ip=255.255.0.0 --remote_ip=192.0.2.1" \
            "-D TFO_COOKIE=3021b9d889017eeb -D TFO_COOKIE_ZERO=b7c12350a90dc8f5" \
            "-D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR" ;;
    ipv6)
        echo "--ip_version=ipv6 --mtu=1520 --local_ip=fd3d:0a0b:17d6::1" \
            "--gateway_ip=fd3d:0a0b:17d6:8888::1 --remote_ip=fd3d:fa7b:d17d::1" \
            "-D TFO_COOKIE=c1d1e9742a47a9bc -D TFO_COOKIE_ZERO=82af1a8f9a205c34" \
            "-D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR" ;;
    *) return 1 ;;
    esac
}

# Our suite's and upstream/'s, with google/packetdrill's run_all.py defines: TFO_COOKIE, the Fast
# Open cookie of these addresses under the key its defaults.sh sets (fastopen_key=a1a1a1a1-...),
# and for IPv4 CODE, an ICMP code.
family_args() {
    case "$1" in
    ipv4) echo "--ip_version=ipv4 --local_ip=192.168.0.1 --remote_ip=192.0.2.1" \
        "-D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable" ;;
    ipv6) echo "--ip_version=ipv6 --local_ip=fd3d:a0b:17d6::1 --remote_ip=fd3d:fa7b:d17d::1" \
        "-D TFO_COOKIE=c1d1e9742a47a9bc" ;;
    ipv4-mapped-ipv6)
        echo "--ip_version=ipv4-mapped-ipv6 --local_ip=192.168.0.1 --remote_ip=192.0.2.1" \
            "-D TFO_COOKIE=3021b9d889017eeb -D CODE=host_unreachable" ;;
    *) return 1 ;;
    esac
}

# own_addresses SCRIPT FAMILY ARGS: ARGS without the --local_ip/--remote_ip that SCRIPT sets
# itself with an address of FAMILY (packetdrill lets the command line win; some upstream scripts,
# google/packetdrill's fastopen/server/simple*.pkt, pin the Fast Open cookie of their own
# addresses).
own_addresses() {
    local args=$3 opt addr
    for opt in local_ip remote_ip; do
        addr=$(sed -n "s|^--$opt=||p" "$1" | head -1)
        [ -n "$addr" ] || continue
        case "$2:$addr" in
        ipv6:*:* | ipv4:*.* | ipv4-mapped-ipv6:*.*)
            # shellcheck disable=SC2001 # a word of a flat string
            args=$(sed "s|--$opt=[^ ]*||" <<<"$args") ;;
        esac
    done
    echo "$args"
}

# Per suite (ours, upstream, ksft): scripts passed, failed, failed as listed, and results that
# differ from the list; the list each is checked against.
declare -A n_pass=() n_fail=() n_known=() n_unexpected=()
declare -A list_of=([ours]=$bugs_file [upstream]=$expected_file [ksft]=$ksft_file)
declare -A ks_family_runs=() ks_family_pass=() ks_kind_count=()
# The same over every kernel selftest: ksft/ and the ones upstream/ runs (ksft/IN_UPSTREAM).
kall_pass=0 kall_fail=0
declare -A kall_family_runs=() kall_family_pass=() kall_kind_count=()
unexpected=()
for script in "${scripts[@]}"; do
    [ -f "$script" ] || { echo "packetdrill.sh: no such script: $script" >&2; exit 2; }
    # packetdrill runs `backquoted` lines and %{ }% blocks on the host (sysctl, ip route, tc,
    # python): never here.
    if sed 's|//.*||' "$script" | grep -qE '`|%\{'; then
        echo "packetdrill.sh: $script runs shell or Python commands (backquotes, %{ }%): refused" >&2
        exit 2
    fi
    name=$(basename "$script")
    suite=ours
    case "$script" in
    */upstream/*) suite=upstream ;;
    */ksft/*) suite=ksft ;;
    esac
    families=$(sed -n 's|^// families: *||p' "$script" | head -1)
    if [ -z "$families" ] && [ "$suite" = ksft ]; then
        # ksft_runner.sh: a script's own --ip_version= lines choose its families.
        families=$(sed -n 's|^--ip_version=||p' "$script" | tr '\n' ' ')
    fi
    [ -n "$families" ] || families="ipv4 ipv6"
    script_failed=0
    listed=0
    kernel=0
    if [ "$suite" = ksft ] || { [ "$suite" = upstream ] && [ -n "${in_upstream[$name]:-}" ]; }; then
        kernel=1
    fi
    case "$suite" in
    ours) kind=${bugs[$name]:-} ;;
    upstream) kind=${expected[$name]:-} ;;
    ksft) kind=${ksft_expected[$name]:-} ;;
    esac
    [ -n "$kind" ] && listed=1
    for family in $families; do
        if [ "$suite" = ksft ]; then
            args=$(ksft_family_args "$family") ||
                { echo "packetdrill.sh: $script: unknown family $family" >&2; exit 2; }
        else
            args=$(family_args "$family") ||
                { echo "packetdrill.sh: $script: unknown family $family" >&2; exit 2; }
            args=$(own_addresses "$script" "$family" "$args")
        fi
        log="$tmp/run.log"
        # Our scripts pin TSval too, a 1 ms clock (RFC 7323 §5.4) as Linux's, unless they set
        # --tcp_ts_tick_usecs themselves (the command line would win over the script's line).
        extra=()
        if [ "$suite" = ours ] && ! grep -q '^--tcp_ts_tick_usecs' "$script"; then
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
        if [ "$suite" = ksft ]; then
            ks_family_runs[$family]=$((${ks_family_runs[$family]:-0} + 1))
            [ "$result" = ok ] && ks_family_pass[$family]=$((${ks_family_pass[$family]:-0} + 1))
        fi
        if [ "$kernel" -eq 1 ]; then
            kall_family_runs[$family]=$((${kall_family_runs[$family]:-0} + 1))
            [ "$result" = ok ] && kall_family_pass[$family]=$((${kall_family_pass[$family]:-0} + 1))
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
    if [ "$script_failed" -eq 0 ]; then
        n_pass[$suite]=$((${n_pass[$suite]:-0} + 1))
        if [ "$listed" -eq 1 ]; then
            n_unexpected[$suite]=$((${n_unexpected[$suite]:-0} + 1))
            unexpected+=("$script passes but is listed in ${list_of[$suite]}")
        fi
    else
        n_fail[$suite]=$((${n_fail[$suite]:-0} + 1))
        if [ "$listed" -eq 1 ]; then
            n_known[$suite]=$((${n_known[$suite]:-0} + 1))
            [ "$suite" = ksft ] && ks_kind_count[$kind]=$((${ks_kind_count[$kind]:-0} + 1))
        else
            n_unexpected[$suite]=$((${n_unexpected[$suite]:-0} + 1))
            unexpected+=("$script fails and is not listed in ${list_of[$suite]}")
        fi
    fi
    if [ "$kernel" -eq 1 ]; then
        if [ "$script_failed" -eq 0 ]; then
            kall_pass=$((kall_pass + 1))
        else
            kall_fail=$((kall_fail + 1))
            kind=${kind:-unlisted}
            kall_kind_count[$kind]=$((${kall_kind_count[$kind]:-0} + 1))
        fi
    fi
done

# by_kind ARRAY: "[engine] N [psh] N ..." of a kind -> count map.
by_kind() {
    local -n counts=$1
    local line="" kind
    for kind in $ksft_kinds - unlisted; do
        [ -n "${counts[$kind]:-}" ] && line="$line $kind ${counts[$kind]}"
    done
    echo "$line"
}
# by_family RUNS PASSES: "ipv4 P of R pass, ipv6 ...".
by_family() {
    local -n runs=$1 passes=$2
    local line="" family
    for family in ipv4 ipv6; do
        [ -n "${runs[$family]:-}" ] && line="$line${line:+, }$family ${passes[$family]:-0} of ${runs[$family]} pass"
    done
    echo "$line"
}

# summary SUITE TITLE: the suite's one-line result, if it ran.
summary() {
    local ran=$((${n_pass[$1]:-0} + ${n_fail[$1]:-0}))
    [ "$ran" -gt 0 ] || return 0
    echo "== $2: ${n_pass[$1]:-0} passed, ${n_fail[$1]:-0} failed (${n_known[$1]:-0} of them listed in ${list_of[$1]})"
}

echo
summary ours "our suite"
summary upstream "upstream (adapted)"
summary ksft "kernel selftests (adapted, ksft/)"
if [ -n "${n_pass[ksft]:-}${n_fail[ksft]:-}" ]; then
    echo "   $(by_family ks_family_runs ks_family_pass)"
    [ -n "${n_known[ksft]:-}" ] && echo "   listed failures by kind:$(by_kind ks_kind_count)"
fi
if [ $((kall_pass + kall_fail)) -gt $((${n_pass[ksft]:-0} + ${n_fail[ksft]:-0})) ]; then
    echo "== kernel selftests, all (ksft/ and the ones upstream/ runs, ksft/IN_UPSTREAM): $kall_pass passed, $kall_fail failed"
    echo "   $(by_family kall_family_runs kall_family_pass)"
    [ "$kall_fail" -gt 0 ] && echo "   failures by kind:$(by_kind kall_kind_count)"
fi
for f in "${unexpected[@]}"; do echo "   unexpected: $f"; done
[ ${#unexpected[@]} -eq 0 ]
