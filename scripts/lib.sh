# Shell helpers shared by demo.sh, bench.sh and synflood.sh (sourced, not run).

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

# write_nginx_conf FILE DIR ADDR PORT: one worker on CPU 0, no access log, `return 200` with
# the same body as `xdptcp serve --app http`; pid and error log under DIR.
write_nginx_conf() {
    cat >"$1" <<NGINX
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile 200000;
pid $2/nginx.pid;
error_log $2/nginx-error.log error;
events { worker_connections 65536; multi_accept on; }
http {
    access_log off;
    keepalive_requests 100000000;
    server {
        listen $3:$4 backlog=65535;
        location / { default_type text/plain; return 200 "Hello from xdptcp\n"; }
    }
}
NGINX
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
# SECONDS, extra arguments passed on) on CPU 0 in namespace $srv on $SRV:$PORT, sets server_pid,
# and waits until it answers from $cli.
# Uses the callers' variables srv, cli, name, SRV, PORT, tmp, out and xdptcp.
start_server() {
    case "$1" in
    nginx)
        ip netns exec "$srv" taskset -c 0 nginx -c "$tmp/nginx.conf" -g 'daemon off;' &
        server_pid=$!
        ;;
    xdptcp)
        ip netns exec "$srv" "$xdptcp" serve --iface "$name-s" --addr "$SRV" --port "$PORT" \
            --app http --cores 0 --duration "$2" --hist-out "$out/hist-xdptcp" "${@:3}" \
            2>"$tmp/xdptcp.log" &
        server_pid=$!
        ;;
    esac
    wait_http "$cli" "http://$SRV:$PORT/"
}
