//! Interop over veth with the kernel's TCP as the peer: `xdptcp serve` in one namespace of our
//! own, curl / Python / wrk / hping3 / nmap in the other. Needs root.

mod common;

use std::time::Duration;

use common::Topology;
use xdptcp::app::http::HttpConfig;

const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");
const PORT: &str = "8080";

/// Spawns `xdptcp serve --iface <server veth> <extra...>` in the server namespace.
fn spawn_serve(topo: &mut Topology, extra: &[&str]) -> usize {
    topo.spawn_serve(extra)
}

/// Serves PORT for at most 30 s and waits until the XDP program is attached.
fn start_server(topo: &mut Topology, extra: &[&str]) -> usize {
    topo.start_serve(extra)
}

fn xdp_attached(topo: &Topology) -> bool {
    topo.xdp_attached()
}

#[test]
fn after_sigkill_no_xdp_program_is_left_on_the_interface() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let i = start_server(&mut topo, &[]);
    topo.signal_child(i, libc::SIGKILL);
    let _ = topo.wait_child(i, Duration::from_secs(5));
    assert!(
        Topology::wait_for(Duration::from_secs(5), || !xdp_attached(&topo)),
        "the bpf_link must die with the process"
    );
}

#[test]
fn sigterm_stops_cleanly_with_a_final_report() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let i = start_server(&mut topo, &[]);
    // Connections are answered through AF_XDP.
    let script = format!(
        "import socket\nfor i in range(10):\n    try:\n        socket.create_connection(('{}', {PORT}), timeout=2).close()\n    except OSError:\n        pass\n",
        topo.srv_ip
    );
    topo.cli(&["python3", "-c", &script]);
    topo.signal_child(i, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("final report"), "{err}");
    assert!(err.contains("balanced=true"), "{err}");
    let redirected: u64 = err
        .split_whitespace()
        .find_map(|w| w.strip_prefix("redirected="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(redirected >= 10, "{err}");
    assert!(!xdp_attached(&topo));
}

#[test]
fn duration_stops_the_server_by_itself() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let i = spawn_serve(&mut topo, &["--port", PORT, "--duration", "2"]);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("rx 0 pps"),
        "a status line every second: {err}"
    );
}

#[test]
fn the_kernel_in_the_server_namespace_still_answers_ping_and_other_ports() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    topo.spawn(
        true,
        &["python3", "-m", "http.server", "--bind", "0.0.0.0", "9090"],
    );
    start_server(&mut topo, &[]);
    topo.cli(&["ping", "-c", "2", "-i", "0.2", "-W", "2", &topo.srv_ip]);
    let url = format!("http://{}:9090/", topo.srv_ip);
    assert!(Topology::wait_for(Duration::from_secs(5), || {
        topo.cli_output(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            "-w",
            "%{http_code}",
            &url,
        ])
        .stdout
            == b"200"
    }));
}

#[test]
fn errors_are_explained() {
    if !common::require_root() {
        return;
    }
    let out = std::process::Command::new(BIN)
        .args(["serve", "--iface", "no-such-if0", "--port", "80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = std::process::Command::new(BIN)
        .args(["serve", "--iface", "lo", "--port", "eighty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad arguments are clap errors");
    let mut topo = Topology::new(1);
    let i = spawn_serve(
        &mut topo,
        &["--port", PORT, "--queues", "4", "--duration", "5"],
    );
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(10));
    assert_eq!(code, Some(1));
    assert!(err.contains("receive queue"), "{err}");
}

// ---- TCP through the engine ----

fn curl(topo: &Topology, url: &str) -> String {
    let out = topo.cli(&["curl", "-s", "-m", "5", url]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl gets exactly the body the built-in HTTP app serves by default from `url`.
fn assert_curl_gets_the_default_body(topo: &Topology, url: &str) {
    let body = curl(topo, url);
    let want = HttpConfig::default().body;
    assert_eq!(body.as_bytes(), &want[..], "curl {url} got {body:?}");
}

#[test]
fn curl_gets_the_http_body() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    start_server(&mut topo, &["--app", "http"]);
    assert_curl_gets_the_default_body(&topo, &format!("http://{}:{PORT}/", topo.srv_ip));
}

#[test]
fn echo_keeps_sending_after_the_client_half_closes() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    start_server(&mut topo, &["--app", "echo"]);
    let script = format!(
        "import socket\ns = socket.create_connection(('{}', {PORT}), timeout=5)\ndata = b'x' * 100000\ns.sendall(data)\ns.shutdown(socket.SHUT_WR)\ngot = b''\nwhile True:\n    b = s.recv(65536)\n    if not b: break\n    got += b\nassert got == data, len(got)\nprint('ok')\n",
        topo.srv_ip
    );
    let out = topo.cli(&["python3", "-c", &script]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn a_thousand_sequential_and_two_hundred_concurrent_connections_complete() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    start_server(&mut topo, &["--app", "echo"]);
    let script = format!(
        "import socket, concurrent.futures as cf\naddr = ('{}', {PORT})\ndef one(i):\n    s = socket.create_connection(addr, timeout=5)\n    s.sendall(b'ping')\n    assert s.recv(4) == b'ping'\n    s.close()\n    return 1\nseq = sum(one(i) for i in range(1000))\nwith cf.ThreadPoolExecutor(200) as ex:\n    con = sum(ex.map(one, range(200)))\nprint(seq, con)\n",
        topo.srv_ip
    );
    let out = topo.cli(&["timeout", "120", "python3", "-c", &script]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000 200");
}

/// Two HTTP requests with `MSG_FASTOPEN` from the kernel's client; for each, whether the
/// answer came and whether the kernel says the SYN's data was acknowledged (`TCP_INFO`'s
/// `tcpi_options & TCPI_OPT_SYN_DATA`).
const FASTOPEN_CLIENT: &str = r#"
import socket, sys
addr = (sys.argv[1], int(sys.argv[2]))
req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
for i in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Blocking (a timeout makes the socket non-blocking: sendto would say EINPROGRESS).
    s.sendto(req, socket.MSG_FASTOPEN, addr)
    s.settimeout(5)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    options = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5]
    print(got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"Hello from xdptcp\n"), bool(options & 32))
    s.close()
"#;

#[test]
fn a_kernel_fast_open_client_gets_its_answer_to_the_request_in_its_second_syn() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let dir = hist_dir("fastopen");
    let dir_arg = dir.to_string_lossy().into_owned();
    let i = start_server(&mut topo, &["--fastopen", "16", "--hist-out", &dir_arg]);
    // The client side of Fast Open (bit 0x1, Linux's default), in the client namespace only.
    topo.cli(&["sysctl", "-q", "-w", "net.ipv4.tcp_fastopen=1"]);
    let out = topo.cli(&[
        "timeout",
        "30",
        "python3",
        "-c",
        FASTOPEN_CLIENT,
        &topo.srv_ip,
        PORT,
    ]);
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    // The first connection asks for a cookie (its data goes after the handshake), the second
    // carries the request in its SYN, acknowledged by our SYN-ACK.
    assert_eq!(lines, "True False\nTrue True\n", "{lines}");
    let s = stop_and_summary(&mut topo, i, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let c = &s["counters"];
    assert_eq!(c["fastopen_cookie_requests"], 1, "{s}");
    assert_eq!(
        c["fastopen_passive"], 1,
        "the second SYN opened a TFO connection: {s}"
    );
    assert_eq!(c["fastopen_passive_fail"], 0, "{s}");
    assert_eq!(c["passive_opens"], 2, "{s}");
}

/// Runs wrk for 3 s and returns (requests, socket errors).
fn wrk(topo: &Topology, extra: &[&str]) -> (u64, u64) {
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    let mut args = vec!["timeout", "20", "wrk", "-t1", "-c20", "-d3s"];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = topo.cli(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let errors = text
        .lines()
        .find(|l| l.contains("Socket errors"))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    (requests, errors)
}

#[test]
fn wrk_keep_alive_and_connection_close_see_no_socket_errors() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    start_server(&mut topo, &["--app", "http"]);
    let (n, errors) = wrk(&topo, &[]);
    assert!(
        n > 0 && errors == 0,
        "keep-alive: {n} requests, {errors} errors"
    );
    let (n, errors) = wrk(&topo, &["-H", "Connection: close"]);
    assert!(n > 0 && errors == 0, "close: {n} requests, {errors} errors");
}

#[test]
fn reconnecting_from_the_same_source_port_after_a_server_close_succeeds() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let dir = hist_dir("reconnect");
    let dir_arg = dir.to_string_lossy().into_owned();
    let i = start_server(&mut topo, &["--app", "http", "--hist-out", &dir_arg]);
    // The server closes first (Connection: close), so the 4-tuple sits in our TIME-WAIT when
    // the client connects again from the same port. `close()` returns while the client's
    // socket still waits in LAST-ACK for our ACK of its FIN; until that ACK lands its own
    // kernel refuses the port (EADDRNOTAVAIL), so the client retries that local error briefly.
    let script = format!(
        "import errno, socket, time\nfor i in range(3):\n    for attempt in range(100):\n        s = socket.socket()\n        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n        s.bind(('{}', 45678))\n        s.settimeout(5)\n        try:\n            s.connect(('{}', {PORT}))\n            break\n        except OSError as e:\n            if e.errno != errno.EADDRNOTAVAIL: raise\n            s.close()\n            time.sleep(0.01)\n    s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n    got = b''\n    while True:\n        b = s.recv(65536)\n        if not b: break\n        got += b\n    assert got.startswith(b'HTTP/1.1 200'), got\n    s.close()\nprint('ok')\n",
        topo.cli_ip, topo.srv_ip
    );
    let out = topo.cli(&["python3", "-c", &script]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let s = stop_and_summary(&mut topo, i, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(s["counters"]["time_wait_recycled"], 2, "{s}");
    assert_eq!(s["counters"]["passive_opens"], 3, "{s}");
}

/// Stops server `i` with SIGTERM and returns its `--hist-out` summary (counters, drops, states).
fn stop_and_summary(topo: &mut Topology, i: usize, dir: &std::path::Path) -> serde_json::Value {
    topo.signal_child(i, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(dir.join("summary.json"))
        .unwrap_or_else(|e| panic!("summary.json: {e}\n{err}"));
    serde_json::from_str(&text).expect("summary.json is JSON")
}

fn hist_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xdptcp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn hping3_syns_each_get_a_cookie_syn_ack_and_leave_no_state() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let dir = hist_dir("hping3");
    let dir_arg = dir.to_string_lossy().into_owned();
    let i = start_server(
        &mut topo,
        &["--syncookies", "always", "--hist-out", &dir_arg],
    );
    // 50 SYNs, 2 ms apart, each from a new source port; the client's kernel resets every
    // SYN-ACK (no socket has the port), so its OutRsts counts them. (hping3's own count of
    // replies misses those it was not scheduled to read within a second of its last SYN.)
    let rsts = topo.cli_tcp_counter("OutRsts");
    let out = topo.cli_output(&[
        "timeout",
        "20",
        "hping3",
        "-S",
        "-p",
        PORT,
        "-c",
        "50",
        "-i",
        "u2000",
        &topo.srv_ip,
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("50 packets transmitted"), "{text}");
    assert!(
        Topology::wait_for(Duration::from_secs(2), || topo.cli_tcp_counter("OutRsts")
            >= rsts + 50),
        "the client's kernel got {} of the 50 SYN-ACKs: {text}",
        topo.cli_tcp_counter("OutRsts") - rsts
    );
    // Legit traffic still works.
    assert_curl_gets_the_default_body(&topo, &format!("http://{}:{PORT}/", topo.srv_ip));
    let s = stop_and_summary(&mut topo, i, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    // `always`: every SYN answered in XDP, none seen by the engine.
    assert!(s["xdp"]["cookie_synacks"].as_u64().unwrap() >= 51, "{s}");
    assert_eq!(s["counters"]["syns_received"], 0, "{s}");
    assert_eq!(s["states"]["syn_recv"], 0, "no half-open state: {s}");
    // hping3's kernel answers our SYN-ACKs with RSTs: dropped in XDP as backscatter (or by
    // the engine), never answered.
    assert!(s["xdp"]["rst_backscatter"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["counters"]["resets_sent"], 0, "{s}");
}

#[test]
fn nmap_sees_the_served_port_open_and_its_odd_probes_are_dropped_and_counted() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let dir = hist_dir("nmap");
    let dir_arg = dir.to_string_lossy().into_owned();
    let i = start_server(&mut topo, &["--hist-out", &dir_arg]);
    let srv_ip = topo.srv_ip.clone();
    let scan = |topo: &Topology, kind: &str| {
        let out = topo.cli_output(&[
            "timeout",
            "60",
            "nmap",
            kind,
            "-Pn",
            "-n",
            "--max-retries",
            "1",
            "-p",
            "8080,8081",
            &srv_ip,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let syn = scan(&topo, "-sS");
    assert!(syn.contains("8080/tcp open"), "{syn}");
    // 8081 is not served: XDP passes it to the kernel, which has no listener there.
    assert!(syn.contains("8081/tcp closed"), "{syn}");
    let xmas = scan(&topo, "-sX");
    assert!(xmas.contains("8080/tcp open|filtered"), "{xmas}");
    let null = scan(&topo, "-sN");
    assert!(null.contains("8080/tcp open|filtered"), "{null}");
    let s = stop_and_summary(&mut topo, i, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(s["drops"]["bad_flags"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["states"]["established"], 0, "{s}");
    assert_eq!(
        s["states"]["syn_recv"], 0,
        "nmap's RST ends each half-open: {s}"
    );
}

#[test]
fn two_queues_two_pinned_workers_serve_concurrent_connections() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(2);
    // Keep each flow on the TX queue (so the server RX queue) it started on: on veth the
    // kernel may re-pick the queue on a retransmission, and a worker that does not know the
    // flow only drops its segments (with several queues it never resets them).
    topo.cli(&["sysctl", "-qw", "net.core.txrehash=0"]);
    let dir = hist_dir("two-queues");
    let dir_arg = dir.to_string_lossy().into_owned();
    let i = start_server(
        &mut topo,
        &[
            "--app",
            "echo",
            "--queues",
            "2",
            "--cores",
            "0,1",
            "--hist-out",
            &dir_arg,
        ],
    );
    let script = format!(
        "import socket, concurrent.futures as cf\naddr = ('{}', {PORT})\ndef one(i):\n    s = socket.create_connection(addr, timeout=5)\n    s.sendall(b'ping%d' % i)\n    want = b'ping%d' % i\n    got = b''\n    while len(got) < len(want):\n        got += s.recv(64)\n    assert got == want, got\n    s.close()\n    return 1\nwith cf.ThreadPoolExecutor(100) as ex:\n    print(sum(ex.map(one, range(400))))\n",
        topo.srv_ip
    );
    let out = topo.cli(&["timeout", "60", "python3", "-c", &script]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "400");
    let s = stop_and_summary(&mut topo, i, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(s["counters"]["passive_opens"], 400, "{s}");
    assert_eq!(s["counters"]["resets_sent"], 0, "{s}");
    let per_queue: Vec<u64> = s["rx_per_queue"]
        .as_array()
        .expect("rx_per_queue")
        .iter()
        .map(|v| v.as_u64().unwrap_or(0))
        .collect();
    assert_eq!(per_queue.len(), 2, "{s}");
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "both workers carried flows: {per_queue:?}"
    );
}

#[test]
fn a_second_server_on_a_served_interface_is_refused_with_an_explanation() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    start_server(&mut topo, &[]);
    let second = spawn_serve(&mut topo, &["--port", "8081", "--duration", "5"]);
    let (_, err, code) = topo.wait_child(second, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already serving this interface"), "{err}");
    assert_eq!(
        err.matches("Device or resource busy").count(),
        1,
        "the OS error is said once: {err}"
    );
    // The first server is untouched.
    assert_curl_gets_the_default_body(&topo, &format!("http://{}:{PORT}/", topo.srv_ip));
}

#[test]
fn sigusr1_writes_the_histograms_while_the_server_keeps_serving() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let dir = hist_dir("sigusr1");
    let dir_arg = dir.to_string_lossy().into_owned();
    let i = start_server(&mut topo, &["--hist-out", &dir_arg]);
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    for _ in 0..5 {
        assert_curl_gets_the_default_body(&topo, &url);
    }
    // Workers report every 100 ms: dump until the report has caught up with the 5 requests.
    let summary = dir.join("summary.json");
    let mut s = serde_json::Value::Null;
    for _ in 0..50 {
        let _ = std::fs::remove_file(&summary);
        topo.signal_child(i, libc::SIGUSR1);
        assert!(
            Topology::wait_for(Duration::from_secs(5), || summary.exists()),
            "SIGUSR1 wrote no summary"
        );
        s = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        if s["latency"]["request"]["count"] == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s["latency"]["handshake"]["count"], 5, "{s}");
    assert_eq!(s["latency"]["request"]["count"], 5, "{s}");
    for kind in ["handshake", "request", "rx_batch"] {
        assert!(dir.join(format!("{kind}.hgrm")).exists());
        assert!(dir.join(format!("{kind}.svg")).exists());
    }
    // Still serving after the dump.
    assert_curl_gets_the_default_body(&topo, &url);
    let s = stop_and_summary(&mut topo, i, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(s["latency"]["handshake"]["count"], 6, "{s}");
}
