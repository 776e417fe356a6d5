# Shell helpers shared by demo.sh, bench.sh, synflood.sh and attack.sh (sourced, not run).

# need_root SCRIPT: exit unless root (namespaces and XDP need it).
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "$1: must run as root (namespaces, XDP)" >&2
        exit 1
    fi
}

# need_tools SCRIPT TOOL...: exit naming the first missing tool.
need_tools() {
    local script=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null ||
            { echo "$script: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
    done
}

# stop_pid PID: SIGTERM, up to 5 s grace, then SIGKILL; by pid only, never by name.
stop_pid() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

# write_nginx_conf FILE DIR ADDR PORT [ADDR6] [WORKERS]: WORKERS (default 1) workers on
# CPUs 0, 1, ..., no access log, `return 200` with the same body as `xdptcp serve --app http`;
# pid and error log under DIR; also listening on [ADDR6]:PORT if given. TCP Fast Open is on
# (`fastopen=256`), in effect where the namespace's net.ipv4.tcp_fastopen serves it (bench.sh).
write_nginx_conf() {
    local workers=${6:-1} affinity="" i listen6=""
    for i in $(seq 0 $((workers - 1))); do
        affinity="$affinity $(printf '%0*d' "$workers" 0 | sed "s/0/1/$((workers - i))")"
    done
    [ -n "${5:-}" ] && listen6="listen [$5]:$4 backlog=65535 fastopen=256;"
    cat >"$1" <<NGINX
worker_processes $workers;
worker_cpu_affinity$affinity;
worker_rlimit_nofile 200000;
pid $2/nginx.pid;
error_log $2/nginx-error.log error;
events { worker_connections 65536; multi_accept on; }
http {
    access_log off;
    keepalive_requests 100000000;
    server {
        listen $3:$4 backlog=65535 fastopen=256;
        $listen6
        location / { default_type text/plain; return 200 "Hello from xdptcp\n"; }
    }
}
NGINX
}

# add_addresses NS DEV PREFIX: adds every address of PREFIX to DEV in namespace NS (/32 or
# /128, IPv6 without duplicate address detection), so that NS's kernel answers ARP and
# neighbour solicitations for them: what `xdptcp load --sources PREFIX` needs.
add_addresses() {
    python3 - "$3" "$2" <<'PY' | ip -n "$1" -batch -
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1], strict=False)
for a in net:
    if net.version == 4:
        print(f"addr add {a}/32 dev {sys.argv[2]}")
    else:
        print(f"addr add {a}/128 dev {sys.argv[2]} nodad")
PY
}

# proc_cpu_us PID: CPU time (user + system) of PID and its children, in microseconds.
proc_cpu_us() {
    local total=0 p t
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        t=$(awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000000 / hz)}' \
            "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# proc_rss_kib PID: resident set (VmRSS) of PID and its children (nginx's workers), in KiB.
proc_rss_kib() {
    local rss=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        rss=$((rss + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$rss"
}

# server_counters KIND SOCKET: `xdptcp stats --json` of the server at SOCKET (JSON), or
# `null` for nginx or when it does not answer. Uses the callers' variable xdptcp.
server_counters() {
    if [ "$1" = nginx ]; then
        echo null
    else
        "$xdptcp" stats --socket "$2" --json 2>/dev/null || echo null
    fi
}

# wrk_close NS URL SECONDS: wrk from NS on CPU 1, 32 connections, one request per connection
# (`Connection: close`), for SECONDS; prints wrk-report.lua's JSON line (p99 included).
wrk_close() {
    ip netns exec "$1" timeout $(($3 + 30)) taskset -c 1 wrk -t1 -c32 -d"$3s" \
        -H 'Connection: close' -s scripts/wrk-report.lua "$2" | sed -n 's/^WRKJSON //p'
}

# run_names PREFIX: the names of one run: name=PREFIX<pid> (scripts/netns.sh's NAME), the
# namespaces srv and cli, the server's addresses SRV and SRV6 there (netns.sh's default
# subnet), PORT 8080, and a directory tmp of its own (end_run removes it).
run_names() {
    name="$1$$"
    srv="$name-srv"
    cli="$name-cli"
    SRV=10.201.77.1
    SRV6=fd00:201:77::1
    PORT=8080
    tmp="$(mktemp -d)"
}

# build_release: builds the release xdptcp and sets xdptcp to its path.
build_release() {
    echo "== building (release)"
    cargo build --release --bin xdptcp
    xdptcp="${CARGO_TARGET_DIR:-$PWD/target}/release/xdptcp"
}

# server_topology: build_release, then the namespaces $name-srv and $name-cli
# (scripts/netns.sh, one queue), the server's accept queues at 4096, the client's ephemeral
# ports above the load generator's 1024-32767.
server_topology() {
    build_release
    scripts/netns.sh up "$name" 1
    ip netns exec "$name-srv" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
    ip netns exec "$name-cli" sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
}

# end_run PID...: a script's exit trap: stops each PID, removes the namespaces $name (if
# made) and the directory $tmp.
end_run() {
    local pid
    for pid in "$@"; do stop_pid "$pid"; done
    [ -z "$name" ] || scripts/netns.sh down "$name"
    rm -rf "$tmp"
}

# wait_http NS URL: wait (up to 10 s) until curl from namespace NS gets URL.
wait_http() {
    for _ in $(seq 100); do
        ip netns exec "$1" curl -s -m 1 -o /dev/null "$2" && return 0
        sleep 0.1
    done
    echo "server at $2 did not come up" >&2
    return 1
}

# start_server KIND SECONDS [SERVE-ARGS...]: starts `nginx` (config $tmp/nginx.conf) or `xdptcp`
# serve (http app, histograms under $out/hist-xdptcp, log $tmp/xdptcp.log, stops itself after
# SECONDS, extra arguments passed on) on CPUs $server_cores (default 0) in namespace $srv on
# $SRV:$PORT, sets server_pid, and waits until it answers from $cli.
# Uses the callers' variables srv, cli, name, SRV, PORT, tmp, out and xdptcp.
start_server() {
    local cores=${server_cores:-0}
    case "$1" in
    nginx)
        ip netns exec "$srv" taskset -c "$cores" nginx -c "$tmp/nginx.conf" -g 'daemon off;' &
        server_pid=$!
        ;;
    xdptcp)
        ip netns exec "$srv" "$xdptcp" serve --iface "$name-s" --addr "$SRV" --port "$PORT" \
            --app http --cores "$cores" --duration "$2" --hist-out "$out/hist-xdptcp" "${@:3}" \
            2>"$tmp/xdptcp.log" &
        server_pid=$!
        ;;
    esac
    wait_http "$cli" "http://$SRV:$PORT/"
}

# bench_locked CMD...: runs CMD under /tmp/xdptcp-bench.lock, unless an ancestor of this
# script already holds it (`flock /tmp/xdptcp-bench.lock scripts/test.sh`): a second flock on
# the same file would wait for that ancestor forever. /proc/locks names each holder's pid.
bench_lock=/tmp/xdptcp-bench.lock
bench_locked() {
    local inode holders pid=$$
    if inode=$(stat -c %i "$bench_lock" 2>/dev/null); then
        holders=" $(awk -v ino="$inode" '$2 == "FLOCK" { n = split($6, f, ":"); if (f[n] == ino) printf "%s ", $5 }' /proc/locks)"
        while [ "$pid" -gt 1 ]; do
            case "$holders" in *" $pid "*) "$@"; return ;; esac
            pid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || break
            [ -n "$pid" ] || break
        done
    fi
    flock "$bench_lock" "$@"
}
