//! Operability, end to end (root): Prometheus metrics scraped with curl and parsed by
//! `prometheus_client`, `xdptcp stats` on a running server, a pcap read back by tshark, large
//! HTTP bodies downloaded by curl, a config file, control-plane logs under `RUST_LOG`, and the
//! clear errors of bad setup.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::Topology;
use xdptcp::control::stats_socket::{Probe, probe};

const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");

/// A path under the temp dir unique to this test process.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xdptcp-ops-{}-{name}", std::process::id()))
}

/// Removes a file when dropped (also when the test fails).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn url(topo: &Topology) -> String {
    format!("http://{}:8080/", topo.srv_ip)
}

/// Stops server `i` with SIGTERM; returns its stderr once it exited 0.
fn stop(topo: &mut Topology, i: usize) -> String {
    topo.signal_child(i, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    err
}

/// Runs `xdptcp serve --port 8080 <extra>`, which must refuse to start: exit 1, no panic, the
/// interface left without an XDP program. Returns its stderr.
fn refused(topo: &mut Topology, extra: &[&str]) -> String {
    let mut args = vec!["--port", "8080"];
    args.extend_from_slice(extra);
    let i = topo.spawn_serve(&args);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!topo.xdp_attached(), "the NIC is untouched");
    err
}

/// Parses a Prometheus text exposition with `prometheus_client.parser` and returns every
/// sample as {"name{label=value,...}": value}.
fn parse_exposition(text: &str) -> serde_json::Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))
        out['%s{%s}' % (s.name, labels)] = s.value
print(json.dumps(out))
"#;
    // Debian's interpreter, for Debian's python3-prometheus-client (install-deps.sh): a
    // python3 earlier on PATH (pyenv, a venv) would not see it.
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_scraped_by_curl_during_load_parse_with_prometheus_client_and_move() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let i = topo.start_serve(&["--metrics", "127.0.0.1:9464"]);
    let wrk = topo.spawn(
        false,
        &[
            "timeout",
            "20",
            "wrk",
            "-t1",
            "-c8",
            "-d8s",
            "-H",
            "Connection: close",
            &url(&topo),
        ],
    );
    let scrape = |topo: &Topology| {
        let out = topo.srv(&["curl", "-s", "-m", "5", "http://127.0.0.1:9464/metrics"]);
        parse_exposition(&String::from_utf8_lossy(&out.stdout))
    };
    // The first scrape that shows the worker under load (bounded: the machine may be busy).
    let mut first = serde_json::Value::Null;
    let loaded = Topology::wait_for(Duration::from_secs(10), || {
        first = scrape(&topo);
        first["xdptcp_passive_opens_total{queue=0}"]
            .as_f64()
            .is_some_and(|n| n > 0.0)
    });
    assert!(loaded, "no load seen: {first}");
    std::thread::sleep(Duration::from_millis(1500));
    let second = scrape(&topo);
    let _ = topo.wait_child(wrk, Duration::from_secs(20));
    stop(&mut topo, i);

    let get = |m: &serde_json::Value, key: &str| {
        m[key]
            .as_f64()
            .unwrap_or_else(|| panic!("no sample {key} in {m}"))
    };
    for key in [
        "xdptcp_rx_frames_total{queue=0}",
        "xdptcp_passive_opens_total{queue=0}",
        "xdptcp_app_requests_total{queue=0}",
        "xdptcp_socket_rx_frames_total{queue=0}",
        "xdptcp_xdp_redirected_total{}",
        "xdptcp_request_latency_seconds_count{}",
    ] {
        assert!(
            get(&second, key) > get(&first, key),
            "{key} moved: {} -> {}",
            get(&first, key),
            get(&second, key)
        );
    }
    // Every drop reason is a label, every state a gauge, every UMEM place a gauge.
    let count = |prefix: &str| {
        second
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count()
    };
    assert_eq!(
        count("xdptcp_drops_total{queue=0,reason="),
        xdptcp::stats::DropReason::ALL.len()
    );
    assert_eq!(
        count("xdptcp_connections{queue=0,state="),
        xdptcp::stats::STATE_COUNT
    );
    assert_eq!(count("xdptcp_umem_frames{place="), 5);
    assert_eq!(get(&second, "xdptcp_umem_balanced{queue=0}"), 1.0);
    // The server closes first (Connection: close): its connections wait in TIME-WAIT.
    assert!(get(&second, "xdptcp_connections{queue=0,state=time_wait}") >= 1.0);
    assert!(second["xdptcp_cookies_sent_total{queue=0}"].is_number());
    assert!(second["xdptcp_handshake_latency_seconds_bucket{le=+Inf}"].is_number());
    assert!(
        second["xdptcp_rx_batch_latency_seconds_sum{}"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(
        get(
            &second,
            "xdptcp_info{app=http,bind=copy,iface=%s,version=0.1.0,xdp_mode=native}"
                .replace("%s", &topo.srv_if)
                .as_str()
        ),
        1.0
    );
}

#[test]
fn a_metrics_address_in_use_is_refused_with_the_fix_and_the_nic_untouched() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let script = "import socket, time\ns = socket.socket()\ns.bind(('127.0.0.1', 9465))\ns.listen()\nprint('up', flush=True)\ntime.sleep(30)\n";
    let holder = topo.spawn(true, &["python3", "-c", script]);
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(topo.child(holder).stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up");
    let err = refused(&mut topo, &["--metrics", "127.0.0.1:9465"]);
    assert!(
        err.contains("metrics address 127.0.0.1:9465 is already in use"),
        "{err}"
    );
    assert!(err.contains("--metrics ADDR:PORT"), "{err}");
}

#[test]
fn xdptcp_stats_shows_states_and_counters_as_text_json_and_watch_then_explains_when_gone() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let i = topo.start_serve(&["--app", "echo"]);
    let socket = format!("/run/xdptcp/{}.sock", topo.srv_if);
    // Three connections held open for a while.
    let script = format!(
        "import socket, time\nss = [socket.create_connection(('{}', 8080), timeout=5) for _ in range(3)]\nfor s in ss:\n    s.sendall(b'x')\n    assert s.recv(1) == b'x'\nprint('up', flush=True)\ntime.sleep(20)\n",
        topo.srv_ip
    );
    let holder = topo.spawn(false, &["python3", "-c", &script]);
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(topo.child(holder).stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up");
    let stats = |args: &[&str]| {
        let out = Command::new(BIN).arg("stats").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    // Snapshots arrive every 100 ms: wait until the three connections show.
    let iface = topo.srv_if.clone();
    let mut text = String::new();
    assert!(
        Topology::wait_for(Duration::from_secs(5), || {
            let (code, t) = stats(&["--iface", &iface]);
            text = t;
            code == Some(0) && text.contains("established 3")
        }),
        "{text}"
    );
    assert!(text.contains("TCP:   3 ("), "ss -s style: {text}");
    assert!(text.contains("\npassive_opens "), "nstat style: {text}");
    assert!(text.contains("\nxdp_redirected "), "{text}");
    let (code, json) = stats(&["--socket", &socket, "--json"]);
    assert_eq!(code, Some(0), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["total"]["states"]["established"], 3, "{v}");
    assert_eq!(v["total"]["counters"]["passive_opens"], 3, "{v}");
    assert_eq!(v["per_queue"][0]["frames_balanced"], true, "{v}");
    assert_eq!(v["iface"], topo.srv_if.as_str());
    let (code, watched) = stats(&["--socket", &socket, "--watch", "1", "--count", "2"]);
    assert_eq!(code, Some(0), "{watched}");
    assert_eq!(watched.matches("\nTCP:   3 (").count(), 2, "{watched}");
    assert!(watched.contains("per second"), "{watched}");

    let err = stop(&mut topo, i);
    assert!(err.contains(&socket), "the path is printed at start: {err}");
    assert!(!std::path::Path::new(&socket).exists(), "removed on exit");
    let (code, text) = stats(&["--iface", &iface]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no xdptcp server is running"), "{text}");
    assert!(text.contains("xdptcp serve"), "{text}");
}

#[test]
fn the_pcap_is_bounded_and_tshark_reads_the_handshake_back() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let pcap = temp("handshake.pcap");
    let _rm = Cleanup(pcap.clone());
    let path = pcap.to_string_lossy().into_owned();
    let i = topo.start_serve(&["--pcap", &path, "--pcap-limit", "6"]);
    for _ in 0..3 {
        let out = topo.cli(&["curl", "-s", "-m", "5", &url(&topo)]);
        assert!(!out.stdout.is_empty());
    }
    let err = stop(&mut topo, i);
    assert!(err.contains("pcap: 6 frame(s)"), "{err}");
    assert!(err.contains("(limit reached)"), "{err}");
    let out = common::run(&[
        "tshark",
        "-n",
        "-r",
        &path,
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "tcp.flags.str",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "the limit holds: {text}");
    let flags = |line: &str| {
        line.split('\t')
            .nth(1)
            .unwrap_or_default()
            .replace('·', ".")
    };
    let (cli, srv) = (topo.cli_ip.as_str(), topo.srv_ip.as_str());
    assert!(
        lines[0].starts_with(cli) && flags(lines[0]).ends_with("S."),
        "SYN: {text}"
    );
    assert!(
        lines[1].starts_with(srv) && flags(lines[1]).ends_with("A..S."),
        "SYN-ACK: {text}"
    );
    assert!(
        lines[2].starts_with(cli) && flags(lines[2]).ends_with("A...."),
        "ACK: {text}"
    );
    let http = common::run(&["tshark", "-n", "-r", &path, "-Y", "http.request"]);
    assert!(
        String::from_utf8_lossy(&http.stdout).contains("GET / HTTP/1.1"),
        "the request is in the capture"
    );
}

#[test]
fn a_pcap_path_that_cannot_be_written_is_refused_before_the_nic_is_touched() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let err = refused(&mut topo, &["--pcap", "/nonexistent-dir/x.pcap"]);
    assert!(
        err.contains("cannot write the pcap file /nonexistent-dir/x.pcap"),
        "{err}"
    );
    assert!(err.contains("writable directory"), "{err}");
}

#[test]
fn curl_downloads_a_100_mib_body_file_byte_exact_and_a_generated_body_checks_out() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let body = temp("body.bin");
    let got = temp("got.bin");
    let _rm = (Cleanup(body.clone()), Cleanup(got.clone()));
    let (body_s, got_s) = (
        body.to_string_lossy().into_owned(),
        got.to_string_lossy().into_owned(),
    );
    common::run(&[
        "dd",
        "if=/dev/urandom",
        &format!("of={body_s}"),
        "bs=1M",
        "count=100",
        "status=none",
    ]);
    let i = topo.start_serve(&[
        "--body-file",
        &body_s,
        "--content-type",
        "application/octet-stream",
    ]);
    let out = topo.cli(&[
        "curl",
        "-s",
        "-m",
        "180",
        "-o",
        &got_s,
        "-w",
        "%{http_code} %{size_download} %{content_type}",
        &url(&topo),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("200 {} application/octet-stream", 100 << 20)
    );
    let sum =
        |p: &str| String::from_utf8_lossy(&common::run(&["sha256sum", p]).stdout)[..64].to_string();
    assert_eq!(sum(&body_s), sum(&got_s), "byte exact");
    stop(&mut topo, i);

    // A generated body: every 16-byte line is its own offset in hex.
    let i = topo.start_serve(&["--body-size", "1MiB"]);
    let check = "import sys, urllib.request\nb = urllib.request.urlopen(sys.argv[1], timeout=30).read()\nwant = b''.join(b'%015x\\n' % (16 * i) for i in range(65536))\nprint(len(b), b == want)\n";
    let out = topo.cli(&["python3", "-c", check, &url(&topo)]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1048576 True");
    stop(&mut topo, i);
}

#[test]
fn a_missing_body_file_is_an_error_naming_it() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let err = refused(&mut topo, &["--body-file", "/nonexistent/body.html"]);
    assert!(
        err.contains("cannot read --body-file /nonexistent/body.html: No such file or directory"),
        "{err}"
    );
}

#[test]
fn a_config_file_serves_and_flags_override_it_and_a_bad_key_is_named() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let config = temp("serve.toml");
    let _rm = Cleanup(config.clone());
    std::fs::write(
        &config,
        format!(
            "iface = \"{}\"\naddr = [\"{}\"]\nport = 8080\napp = \"http\"\nbody-size = \"100\"\nduration = 2\n",
            topo.srv_if, topo.srv_ip
        ),
    )
    .unwrap();
    let c = config.to_string_lossy().into_owned();
    // --duration on the command line wins over the file's 2 s.
    let i = topo.spawn(true, &[BIN, "serve", "--config", &c, "--duration", "30"]);
    assert!(Topology::wait_for(Duration::from_secs(10), || topo.xdp_attached()));
    std::thread::sleep(Duration::from_secs(3));
    let out = topo.cli(&["curl", "-s", "-m", "5", &url(&topo)]);
    assert_eq!(out.stdout.len(), 100, "the file's body-size");
    stop(&mut topo, i);

    std::fs::write(
        &config,
        "iface = \"x\"\nport = 8080\nsyncookie = \"always\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", &c])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown key `syncookie` (did you mean `syncookies`?)"),
        "{err}"
    );
}

#[test]
fn control_plane_logs_follow_rust_log() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let events = [
        "AF_XDP socket bound",
        "XDP program attached",
        "serving port 8080",
        "SYN-cookie secret rotated",
        "stopped; XDP program detached",
    ];
    let args = [
        "--port",
        "8080",
        "--duration",
        "3",
        "--cookie-rotation-secs",
        "1",
    ];
    let i = topo.spawn_serve_env(&["RUST_LOG=debug"], &args);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    for e in events {
        assert!(err.contains(e), "{e}: {err}");
    }
    assert!(err.contains("mode=Native"), "the attach mode: {err}");
    assert!(err.contains("mode=\"copy\""), "the bind mode: {err}");
    // A fresh pair: the kernel may still be releasing the first server's AF_XDP socket.
    let mut topo = Topology::new(1);
    let i = topo.spawn_serve_env(&["RUST_LOG=off"], &args);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    for e in events {
        assert!(!err.contains(e), "RUST_LOG=off hides {e}: {err}");
    }
    assert!(err.contains("rx 0 pps"), "status lines are not logs: {err}");
    assert!(err.contains("final report"), "{err}");
}

#[test]
fn stats_without_a_server_says_so() {
    let out = Command::new(BIN)
        .args(["stats", "--socket", "/nonexistent-dir/xdptcp.sock"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no xdptcp server is running"), "{err}");
    // A socket left behind by a server that is gone.
    let stale = temp("stale.sock");
    let _rm = Cleanup(stale.clone());
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let out = Command::new(BIN)
        .args(["stats", "--socket", &stale.to_string_lossy()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no xdptcp server behind"), "{err}");
}

#[test]
fn the_key_value_example_serves_its_own_app_through_the_library() {
    if !common::require_root() {
        return;
    }
    // `cargo test --all-targets` builds the examples next to the binary.
    let kv = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .join("examples/kv");
    assert!(
        kv.exists(),
        "{} is missing: build it with `cargo build --example kv` (test.sh's `cargo test --all-targets` does)",
        kv.display()
    );
    let mut topo = Topology::new(1);
    let iface = topo.srv_if.clone();
    let srv_ip = topo.srv_ip.clone();
    let i = topo.spawn(
        true,
        &[
            &kv.to_string_lossy(),
            "--iface",
            &iface,
            "--addr",
            &srv_ip,
            "--port",
            "7070",
            "--duration",
            "30",
        ],
    );
    assert!(
        Topology::wait_for(Duration::from_secs(10), || topo.xdp_attached()),
        "kv did not attach"
    );
    // Two clients; the second sends its commands pipelined, split mid-line.
    let script = format!(
        r#"
import socket
def talk(chunks, replies):
    s = socket.create_connection(('{srv_ip}', 7070), timeout=5)
    for c in chunks:
        s.sendall(c)
    got = b''
    while got.count(b'\n') < replies:
        b = s.recv(4096)
        assert b, got
        got += b
    s.close()
    return got
print(talk([b'SET color blue\n'], 1) == b'OK\n')
got = talk([b'GET color\nSET n 1\nGE', b'T n\r\nDEL color\nGET color\nCOUNT\nNOPE\n'], 7)
print(got.decode().replace('\n', '|'))
"#
    );
    let out = topo.cli(&["python3", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        text,
        "True\nVALUE blue|OK|VALUE 1|DELETED|NOT_FOUND|COUNT 1|ERROR use SET key value | GET key | DEL key | COUNT|\n"
    );
    topo.signal_child(i, libc::SIGKILL);
    let _ = topo.wait_child(i, Duration::from_secs(5));
}

#[test]
fn a_fifo_symlinked_group_writable_or_oversized_secret_file_is_refused_at_start_with_the_reason() {
    if !common::require_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let mut topo = Topology::new(1);
    let (path, target) = (temp("secret"), temp("secret-target"));
    let _cleanup = (Cleanup(path.clone()), Cleanup(target.clone()));
    let arg = path.to_string_lossy().into_owned();
    let write = |p: &PathBuf, contents: &[u8], mode: u32| {
        let _ = std::fs::remove_file(p);
        std::fs::write(p, contents).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let c = std::ffi::CString::new(arg.as_str()).unwrap();
    // Safety: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = refused(&mut topo, &["--cookie-secret-file", &arg]);
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    std::fs::remove_file(&path).unwrap();
    write(&target, &[1; 32], 0o600);
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = refused(&mut topo, &["--cookie-secret-file", &arg]);
    assert!(err.contains("is a symbolic link"), "{err}");
    write(&path, &[1; 32], 0o620);
    let err = refused(&mut topo, &["--cookie-secret-file", &arg]);
    assert!(err.contains("writable by group or others"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    write(&path, &[b'a'; 5000], 0o600);
    let err = refused(&mut topo, &["--cookie-secret-file", &arg]);
    assert!(err.contains("larger than 4096 bytes"), "{err}");
    // The same file, made right, serves.
    write(&path, &[1; 32], 0o600);
    let args = [
        "--port",
        "8080",
        "--duration",
        "2",
        "--cookie-secret-file",
        &arg,
    ];
    let i = topo.spawn_serve(&args);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
}

/// Removes a directory and what is in it when dropped (also when the test fails).
struct CleanupDir(PathBuf);

impl Drop for CleanupDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_socket_left_by_a_killed_server_is_skipped_and_removed_by_stats_and_replaced_by_a_new_server() {
    if !common::require_root() {
        return;
    }
    // A socket directory of our own: other servers on the machine stay out of the count.
    let dir = temp("stats-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let _rm = CleanupDir(dir.clone());
    let env = format!("XDPTCP_STATS_DIR={}", dir.display());
    let serve = |topo: &mut Topology, extra: &[&str]| {
        let mut args = vec!["--port", "8080", "--duration", "30"];
        args.extend_from_slice(extra);
        let i = topo.spawn_serve_env(&[&env], &args);
        let socket = dir.join(format!("{}.sock", topo.srv_if));
        assert!(
            Topology::wait_for(Duration::from_secs(10), || probe(&socket) == Probe::Live),
            "no server answers at {}",
            socket.display()
        );
        (i, socket)
    };
    let stats = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("stats")
            .args(args)
            .env("XDPTCP_STATS_DIR", &dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut killed = Topology::new(1);
    let (k, dead_socket) = serve(&mut killed, &[]);
    let mut live = Topology::new(1);
    let (_l, live_socket) = serve(&mut live, &[]);
    killed.signal_child(k, libc::SIGKILL);
    let _ = killed.wait_child(k, Duration::from_secs(10));
    assert!(dead_socket.exists(), "SIGKILL leaves the socket file");

    // No --iface: the one live server answers; the dead one's socket is removed on the way.
    let (code, out, err) = stats(&["--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["iface"], live.srv_if.as_str(), "{v}");
    assert!(err.contains(&dead_socket.display().to_string()), "{err}");
    assert!(err.contains("removed"), "{err}");
    assert!(!dead_socket.exists());
    assert!(live_socket.exists(), "a live server's socket stays");

    // A server whose socket path a live one answers on is refused, clearly; the live one
    // keeps its socket.
    let mut third = Topology::new(1);
    let live_path = live_socket.display().to_string();
    let err = refused(&mut third, &["--stats-socket", &live_path]);
    assert!(err.contains("another xdptcp already answers"), "{err}");
    assert!(err.contains(&live_path), "{err}");
    let (code, out, err) = stats(&["--socket", &live_path, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");

    // And a stale socket in the way of a new server for its interface is replaced.
    let (k, socket) = serve(&mut killed, &[]);
    assert_eq!(socket, dead_socket);
    killed.signal_child(k, libc::SIGKILL);
    let _ = killed.wait_child(k, Duration::from_secs(10));
    assert!(socket.exists());
    let (_, socket) = serve(&mut killed, &[]);
    let (code, out, err) = stats(&["--socket", &socket.display().to_string(), "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
}
