//! Hostile and unusual peers over veth, the kernel's TCP (and raw frames) in the client
//! namespace against `xdptcp serve`: slowloris dribblers closed at the header deadline while
//! curl keeps getting 200, an idle keep-alive connection closed at the keep-alive timeout, an
//! endless header line answered 431 without the server's memory growing, martian sources
//! (a broadcast source MAC, loopback, multicast, ... addresses) that draw nothing, and a jumbo
//! MTU whose downloads complete byte-exact with the MSS clamped to the UMEM frame. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::Topology;

const PORT: &str = "8080";

/// One test of this file at a time: they time closes to a fraction of a second and measure
/// the server's memory, with thousands of connections on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How far the counter at `path` of the server's stats moved from `before` to `after`.
fn moved(before: &serde_json::Value, after: &serde_json::Value, path: &[&str]) -> u64 {
    let get = |v: &serde_json::Value| path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0);
    get(after) - get(before)
}

/// A counter of the HTTP app, over all workers.
fn app_counter(topo: &Topology, name: &str) -> u64 {
    topo.stats()["total"]["app"][name].as_u64().unwrap_or(0)
}

/// The app counter `name` once it reads `want`, or what it reads after 2 s: workers publish
/// their counters every `SNAPSHOT_INTERVAL` (100 ms), so a count read right after the event
/// it counts may still be the one before.
fn app_counter_settled(topo: &Topology, name: &str, want: u64) -> u64 {
    let mut last = 0;
    Topology::wait_for(Duration::from_secs(2), || {
        last = app_counter(topo, name);
        last == want
    });
    last
}

/// A topology with `xdptcp serve` (with `args`) answering once its stats socket is up, or
/// `None` without root (the test then returns; under CI it fails instead).
fn serving(args: &[&str]) -> Option<(Topology, usize)> {
    if !common::require_root() {
        return None;
    }
    let mut topo = Topology::new(1);
    let server = topo.start_serve(args);
    topo.wait_stats_socket();
    Some((topo, server))
}

/// Runs `script` with `args` in the client namespace, bounded by `limit`, and parses the JSON
/// line it prints last.
fn python(topo: &mut Topology, script: &str, args: &[&str], limit: Duration) -> serde_json::Value {
    let mut argv = vec!["python3", "-c", script];
    argv.extend_from_slice(args);
    let i = topo.spawn(false, &argv);
    let (out, err, code) = topo.wait_child(i, limit);
    assert_eq!(code, Some(0), "python failed: {out}{err}");
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
}

/// The hostile peers `scripts/attack.sh` runs too (run here with `python3 -c`), one per
/// subcommand: `slowloris N HOST PORT RUN_SECS` opens N connections, each sending the start of
/// a request head and then one byte a second, and measures, per connection, the seconds to the
/// server's close (EOF or reset) from `connect()` and from when the client saw the connection
/// open (the handshake completed between the two), printing the counts, the shortest time from
/// `connect()` and the longest from the open; `martians ...` (below).
const HOSTILE: &str = include_str!("../scripts/hostile.py");

/// Frames the client's veth dropped on transmit (a veth peer whose ring was full).
fn cli_tx_dropped(topo: &Topology) -> u64 {
    let out = topo.cli(&["ip", "-s", "-j", "link", "show", "dev", &topo.cli_if]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    v[0]["stats64"]["tx"]["dropped"]
        .as_u64()
        .expect("tx dropped in ip -s -j link")
}

/// curl's HTTP status for `url` from the client namespace.
fn curl_status(topo: &Topology, url: &str) -> String {
    let out = topo.cli_output(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "3",
        url,
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn slowloris_dribblers_are_closed_at_the_header_deadline_while_curl_gets_200() {
    let _serial = serial();
    // 3000 connections each dribbling a request head a byte a second: with a 3 s header
    // timeout each is closed 3 s after its handshake, however often it sends.
    const DRIBBLING: usize = 3000;
    const HEADER_TIMEOUT: f64 = 3.0;
    let Some((mut topo, _server)) = serving(&["--header-timeout", "3"]) else {
        return;
    };
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    let (n, host) = (DRIBBLING.to_string(), topo.srv_ip.clone());
    let (before, cli_before) = (topo.stats(), cli_tx_dropped(&topo));
    let argv = ["python3", "-c", HOSTILE, "slowloris", &n, &host, PORT, "7"];
    let dribblers = topo.spawn(false, &argv);
    // Meanwhile, curl every 200 ms.
    let start = Instant::now();
    let mut statuses = Vec::new();
    while start.elapsed() < Duration::from_secs(6) {
        statuses.push(curl_status(&topo, &url));
        std::thread::sleep(Duration::from_millis(200));
    }
    let (out, err, code) = topo.wait_child(dribblers, Duration::from_secs(30));
    assert_eq!(code, Some(0), "dribblers failed: {out}{err}");
    let r: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    // One curl per turn of 200 ms plus curl's own run (~130 ms on a loaded machine): at
    // least 10 in 6 s, across the dribblers' whole setup and hold.
    assert!(statuses.len() >= 10, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "200"), "curl: {statuses:?}");
    assert_eq!(r["opened"], DRIBBLING, "{r}");
    assert_eq!(r["still_open"], 0, "every dribbler closed: {r}");
    assert_eq!(r["closed"], DRIBBLING, "{r}");
    // The server's handshake completed after `connect()` and before the client saw the
    // connection open (its poll loop reaches 3000 new sockets up to ~0.3 s late). Tolerance:
    // closed no earlier than 50 ms before 3 s after `connect()`, no later than 0.75 s after 3 s
    // from the open the client saw (its 20 ms poll over 3000 sockets, the FIN burst).
    //
    // Unless a frame was lost on the way (a stress run on a loaded machine lost one): a third
    // ACK that never reached the server leaves that connection in SYN-RECEIVED until the
    // SYN-ACK's retransmission or the dribbler's next byte, each a second later, and its
    // header deadline runs from there. Such a loss is seen here (a SYN-ACK sent twice, a frame
    // the kernel dropped before our RX ring or at the client's veth) and buys that one second,
    // no more. (The dribblers' bytes, due at the same second on thousands of connections,
    // still overflow the veth's 256-frame ring at times on a loaded machine: 176 frames in one
    // CI run beside a stress run. The kernel client resends them.)
    let (early, late) = (
        r["earliest"].as_f64().unwrap(),
        r["latest"].as_f64().unwrap(),
    );
    let after = topo.stats();
    let moved = |path: &[&str]| moved(&before, &after, path);
    let resent = moved(&["total", "counters", "synacks_sent"]).saturating_sub(moved(&[
        "total",
        "counters",
        "syns_received",
    ]));
    let rx_dropped = moved(&["total", "socket", "kernel_rx_dropped"]);
    let cli_dropped = cli_tx_dropped(&topo) - cli_before;
    eprintln!(
        "dribblers closed between {early:.3} s after connect() and {late:.3} s after the open (header timeout {HEADER_TIMEOUT} s); \
         lost on the way: {resent} SYN-ACKs resent, {rx_dropped} dropped before our RX ring, {cli_dropped} at the client's veth"
    );
    let losses = resent + rx_dropped + cli_dropped;
    let slack = if losses > 0 { 1.0 } else { 0.0 };
    assert!(early >= HEADER_TIMEOUT - 0.05, "closed early: {early} s");
    assert!(
        late <= HEADER_TIMEOUT + 0.75 + slack,
        "closed late: {late} s (frames lost on the way: {losses})"
    );
    assert_eq!(
        app_counter_settled(&topo, "header_timeouts", DRIBBLING as u64),
        DRIBBLING as u64
    );
}

/// `HOST PORT`: one keep-alive connection: a request, its whole response, then silence;
/// prints the seconds from the end of the response to the server's FIN. A second connection
/// sends a request every 0.5 s meanwhile and must get every answer.
const IDLE: &str = r#"
import json, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
def response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed before a response")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    while len(body) < length:
        body += s.recv(4096)
idle = socket.create_connection((host, port), timeout=10)
busy = socket.create_connection((host, port), timeout=10)
idle.sendall(req)
response(idle)
answered = time.monotonic()
idle.settimeout(0.05)
busy_answers, closed_after = 0, None
while time.monotonic() - answered < 4:
    busy.sendall(req)
    response(busy)
    busy_answers += 1
    end = time.monotonic() + 0.5
    while time.monotonic() < end and closed_after is None:
        try:
            if idle.recv(1) == b"":
                closed_after = time.monotonic() - answered
        except socket.timeout:
            pass
print(json.dumps({"closed_after": closed_after, "busy_answers": busy_answers}))
"#;

#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_keepalive_timeout_and_a_busy_one_is_not() {
    let _serial = serial();
    let Some((mut topo, _server)) = serving(&["--keepalive-timeout", "2"]) else {
        return;
    };
    let host = topo.srv_ip.clone();
    let r = python(&mut topo, IDLE, &[&host, PORT], Duration::from_secs(20));
    let closed_after = r["closed_after"]
        .as_f64()
        .expect("the idle connection was closed");
    // Tolerance: 50 ms early (the client's clock starts when it has read the response, after
    // the server queued it), 0.3 s late.
    assert!((1.95..=2.3).contains(&closed_after), "{r}");
    assert!(r["busy_answers"].as_u64().unwrap() >= 7, "{r}");
    assert_eq!(
        app_counter_settled(&topo, "idle_timeouts", 1),
        1,
        "only the idle one"
    );
    assert_eq!(app_counter(&topo, "header_timeouts"), 0);
}

/// `HOST PORT BYTES header|body`: a request with a header line of BYTES bytes, or with a body
/// of BYTES bytes (then a closing request), sent as fast as the server takes it; prints the
/// status line the server answered with first.
const LONG_REQUEST: &str = r#"
import json, socket, sys
host, port, n, what = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.create_connection((host, port), timeout=10)
if what == "header":
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ")
else:
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n)
sent = 0
chunk = b"a" * 65536
try:
    while sent < n:
        sent += s.send(chunk[: n - sent])
    if what == "body":
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
except (BrokenPipeError, ConnectionResetError):
    pass
answer = b""
try:
    while True:
        data = s.recv(4096)
        if not data:
            break
        answer += data
except ConnectionResetError:
    pass
print(json.dumps({"status": answer.split(b"\r\n")[0].decode(), "sent": sent}))
"#;

/// The resident set of process `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_2_mib_header_line_is_answered_431_and_the_servers_rss_barely_moves() {
    let _serial = serial();
    let Some((mut topo, server)) = serving(&[]) else {
        return;
    };
    let pid = topo.child(server).id();
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    assert_eq!(curl_status(&topo, &url), "200");
    let host = topo.srv_ip.clone();
    let bytes = (2 << 20).to_string();
    let request = |topo: &mut Topology, what: &str| {
        let r = python(
            topo,
            LONG_REQUEST,
            &[&host, PORT, &bytes, what],
            Duration::from_secs(30),
        );
        r["status"].as_str().unwrap_or_default().to_string()
    };
    // A 2 MiB body first, then one header line: the receive path's buffers and the
    // allocator's first growth for each shape of request (under 1 MiB once, measured), which
    // any large request costs once, are not what the header lines leave behind.
    let start = vm_rss_kib(pid);
    assert_eq!(request(&mut topo, "body"), "HTTP/1.1 200 OK");
    assert_eq!(
        request(&mut topo, "header"),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // One step of about 216 KiB comes with time, not with requests: in 8 runs it fell after
    // these first requests 7 times and within them once. Let a few seconds of the server's
    // periodic work (its 100 ms snapshots, the control loop's once-a-second duties) pass first.
    std::thread::sleep(Duration::from_secs(3));
    let before = vm_rss_kib(pid);
    assert!(
        before.saturating_sub(start) <= 4096,
        "the first 2 MiB body and header line grew VmRSS by {} KiB",
        before.saturating_sub(start)
    );
    // Ten in a row: what one leaves behind would add up.
    for _ in 0..10 {
        assert_eq!(
            request(&mut topo, "header"),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );
    }
    let after = vm_rss_kib(pid);
    let grown = after.saturating_sub(before);
    eprintln!(
        "server VmRSS {start} KiB, {before} KiB after a 2 MiB body and header line, {after} KiB after ten more 2 MiB header lines"
    );
    // Tolerance: 256 KiB, against the 20 MiB the ten lines carried.
    assert!(
        grown <= 256,
        "VmRSS grew by {grown} KiB ({before} -> {after})"
    );
    assert_eq!(curl_status(&topo, &url), "200", "still serving");
    assert_eq!(
        app_counter_settled(&topo, "errors", 11),
        11,
        "every header line answered 431"
    );
}

/// The MAC address `cat /sys/class/net/DEV/address` printed.
fn mac_of(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn syns_from_a_broadcast_mac_and_martian_addresses_draw_nothing_and_are_counted() {
    let _serial = serial();
    let Some((mut topo, _server)) = serving(&[]) else {
        return;
    };
    let cli_mac = mac_of(topo.cli(&["cat", &format!("/sys/class/net/{}/address", topo.cli_if)]));
    let srv_mac = mac_of(topo.srv(&["cat", &format!("/sys/class/net/{}/address", topo.srv_if)]));
    let cli6 = topo.srv_ip6.replace("::1", "::2");
    // `martians IFACE SRC_MAC DST_MAC CLIENT4 SERVER4 CLIENT6 SERVER6 PORT`: writes SYNs with
    // raw frames from the client's veth, each from its own source port, and captures what
    // comes back for 1.5 s. One SYN is legit (from the client itself, port 50000): its SYN-ACK
    // shows the capture works. Prints the sources of the probes sent and the source ports
    // answered.
    let args = [
        "martians".to_string(),
        topo.cli_if.clone(),
        cli_mac,
        srv_mac,
        topo.cli_ip.clone(),
        topo.srv_ip.clone(),
        cli6,
        topo.srv_ip6.clone(),
        PORT.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = topo.stats();
    let r = python(&mut topo, HOSTILE, &args, Duration::from_secs(20));
    assert_eq!(
        r["answered"],
        serde_json::json!([50000]),
        "only the legit SYN: {r}"
    );
    let after = topo.stats();
    let delta = |path: &[&str]| moved(&before, &after, path);
    assert_eq!(
        delta(&["xdp", "martian"]),
        r["probes"].as_u64().unwrap(),
        "{after}"
    );
    assert_eq!(
        delta(&["total", "counters", "syns_received"]),
        1,
        "the legit one only"
    );
}

#[test]
fn single_buffer_with_a_9000_byte_mtu_a_large_download_completes_byte_exact_over_generic_xdp() {
    let _serial = serial();
    if !common::require_root() {
        return;
    }
    // Single-buffer, native XDP on veth takes no MTU beyond a page's frame (the program does
    // not take multi-buffer frames): serve says so, and `auto` falls back to generic XDP.
    let mut topo = Topology::with_mtu(1, 9000);
    let native = topo.spawn_serve(&[
        "--port",
        PORT,
        "--duration",
        "10",
        "--xdp-mode",
        "native",
        "--multi-buffer",
        "off",
    ]);
    let (_, err, code) = topo.wait_child(native, Duration::from_secs(20));
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("too large for native XDP"), "{err}");

    const BODY: usize = 8 << 20;
    let body_size = BODY.to_string();
    let server = topo.start_serve(&["--body-size", &body_size, "--multi-buffer", "off"]);
    let path = format!("/tmp/xdptcp-jumbo-{}.bin", std::process::id());
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    let out = topo.cli_output(&["curl", "-s", "-m", "20", "-o", &path, &url]);
    let got = std::fs::read(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = xdptcp::app::http::generated_body(BODY);
    assert!(
        got.len() == BODY && got[..] == want[..],
        "{} of {BODY} bytes, not the body",
        got.len()
    );
    topo.signal_child(server, libc::SIGTERM);
    let (_, err, _) = topo.wait_child(server, Duration::from_secs(10));
    assert!(
        err.contains("the MTU (9000) is larger than a UMEM frame carries")
            && err.contains("MSS 3762"),
        "{err}"
    );
    assert!(err.contains("mode=Generic"), "{err}");
}
