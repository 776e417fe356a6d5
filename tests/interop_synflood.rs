//! SYN floods absorbed in XDP, against the kernel's TCP as the legit client: the XDP program
//! answers SYNs with the engine's cookie SYN-ACKs (always, or under `auto` once the half-open
//! budget is full), legit clients are unharmed, and the server answers only for its own
//! addresses and MAC. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::Topology;

const PORT: &str = "8080";

/// The running server's status (`xdptcp stats --json`).
fn status(topo: &Topology) -> serde_json::Value {
    topo.stats()
}

fn xdp(topo: &Topology, counter: &str) -> u64 {
    status(topo)["xdp"][counter].as_u64().unwrap_or(0)
}

fn engine(topo: &Topology, counter: &str) -> u64 {
    status(topo)["total"]["counters"][counter]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until the stats socket answers (the data path runs).
fn wait_ready(topo: &Topology) {
    topo.wait_stats_socket();
}

/// A topology with `xdptcp serve` (with `args`) answering, or `None` without root (the test
/// then returns; under CI it fails instead).
fn serving(args: &[&str]) -> Option<(Topology, usize)> {
    if !common::require_root() {
        return None;
    }
    let mut topo = Topology::new(1);
    let server = topo.start_serve(args);
    wait_ready(&topo);
    Some((topo, server))
}

/// `hping3 ARGS` in the client namespace: (packets sent, packets received).
fn hping3(topo: &Topology, args: &[&str]) -> (u64, u64) {
    let mut v = vec!["timeout", "-s", "INT", "20", "hping3"];
    v.extend_from_slice(args);
    let out = topo.cli_output(&v);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no hping3 statistics in: {text}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// A bounded `hping3 --flood -S` at `port` of the server, in the background.
fn flood(topo: &mut Topology, port: &str, secs: u64) -> usize {
    let secs = secs.to_string();
    let ip = topo.srv_ip.clone();
    topo.spawn(
        false,
        &[
            "timeout", "-s", "INT", &secs, "taskset", "-c", "1", "hping3", "--flood", "-S", "-p",
            port, &ip,
        ],
    )
}

/// `n` sequential curls of `url` from the client, each bounded by `per_try`: how many got the
/// HTTP body.
fn curls(topo: &Topology, url: &str, n: usize, per_try: &str) -> usize {
    (0..n)
        .filter(|_| {
            let out = topo.cli_output(&["curl", "-s", "-m", per_try, "-o", "-", url]);
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Hello")
        })
        .count()
}

#[test]
fn syns_to_an_address_the_server_does_not_have_or_to_another_mac_reach_only_the_kernel() {
    // No --addr: the interface's own addresses are served, nothing else.
    let Some((topo, _server)) = serving(&["--syncookies", "always"]) else {
        return;
    };
    let srv_mac = String::from_utf8_lossy(
        &topo
            .srv(&["cat", &format!("/sys/class/net/{}/address", topo.srv_if)])
            .stdout,
    )
    .trim()
    .to_string();
    assert!(!srv_mac.is_empty());
    // The client's neighbour entry for `ip`: frames to it go to `mac`.
    let neighbour = |ip: &str, mac: &str| {
        topo.cli(&[
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            mac,
            "dev",
            &topo.cli_if,
        ]);
    };
    // Five SYNs to `ip`: how many were sent and answered.
    let five_syns = |ip: &str| hping3(&topo, &["-S", "-p", PORT, "-c", "5", "-i", "u20000", ip]);
    // An address no host has, on the server's link and MAC.
    let ghost = format!("{}.99", topo.srv_ip.rsplit_once('.').unwrap().0);
    neighbour(&ghost, &srv_mac);
    let passed = xdp(&topo, "passed");
    assert_eq!(five_syns(&ghost), (5, 0), "answered for {ghost}");
    assert!(xdp(&topo, "passed") >= passed + 5);
    // Given to the interface, the address is served within the second the server re-reads
    // them in; taken away, it is not.
    let ghost_dev = format!("{ghost}/32");
    topo.srv(&["ip", "addr", "add", &ghost_dev, "dev", &topo.srv_if]);
    // (hping3 counts the kernel's RSTs as answers too: what counts is who answered.)
    let from_xdp = |ip: &str| {
        let before = xdp(&topo, "cookie_synacks");
        five_syns(ip);
        xdp(&topo, "cookie_synacks") - before
    };
    assert!(
        Topology::wait_for(Duration::from_secs(5), || from_xdp(&ghost) == 5),
        "an address added to the interface is never served"
    );
    topo.srv(&["ip", "addr", "del", &ghost_dev, "dev", &topo.srv_if]);
    assert!(
        Topology::wait_for(Duration::from_secs(5), || from_xdp(&ghost) == 0),
        "an address removed from the interface is still served"
    );
    assert_eq!(
        five_syns(&ghost),
        (5, 0),
        "answered for {ghost} once removed"
    );
    // The server's own address, but a frame to another MAC.
    neighbour(&topo.srv_ip, "02:00:00:00:00:99");
    let other = xdp(&topo, "other_mac");
    let synacks = xdp(&topo, "cookie_synacks");
    assert_eq!(
        five_syns(&topo.srv_ip),
        (5, 0),
        "answered a frame to another MAC"
    );
    assert_eq!(xdp(&topo, "other_mac"), other + 5);
    assert_eq!(xdp(&topo, "cookie_synacks"), synacks);
    assert_eq!(engine(&topo, "syns_received"), 0);
    // With the right MAC again, the same SYNs are answered (in XDP), and every SYN-ACK reaches
    // the client's kernel, which resets it. (Not hping3's count of replies: it prints it a
    // second after its last SYN, and misses replies it was not scheduled to read by then, as
    // under the floods the other tests of this binary run beside it: once 4 of 5, while its
    // kernel had all five.)
    neighbour(&topo.srv_ip, &srv_mac);
    let rsts = topo.cli_tcp_counter("OutRsts");
    assert_eq!(five_syns(&topo.srv_ip).0, 5);
    assert_eq!(xdp(&topo, "cookie_synacks"), synacks + 5);
    assert!(
        Topology::wait_for(Duration::from_secs(2), || topo.cli_tcp_counter("OutRsts")
            >= rsts + 5),
        "the client's kernel got {} of the 5 SYN-ACKs",
        topo.cli_tcp_counter("OutRsts") - rsts
    );
}

#[test]
fn under_an_hping3_flood_curl_gets_two_hundred_of_two_hundred() {
    let Some((mut topo, _server)) = serving(&["--cores", "0"]) else {
        return;
    };
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    // A flood whose sources do not answer our SYN-ACKs, as a spoofed one: the client's kernel
    // would reset every one (a bare RST, no ACK flag), emptying the half-open table as fast
    // as it fills, and an engine quick enough to keep up (a release build) then never finds
    // its budget full, so `auto` rightly never asks for cookies (Linux would not either).
    // Legit connections' RSTs carry ACK and pass.
    let srv_ip = topo.srv_ip.clone();
    topo.cli(&[
        "iptables",
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-d",
        &srv_ip,
        "--tcp-flags",
        "RST,ACK",
        "RST",
        "-j",
        "DROP",
    ]);
    let _flood = flood(&mut topo, PORT, 60);
    // The flood fills the half-open budget; then the XDP program answers.
    assert!(
        Topology::wait_for(Duration::from_secs(10), || xdp(&topo, "cookie_synacks")
            > 10_000),
        "the XDP program never took over: {}",
        status(&topo)
    );
    let start = Instant::now();
    let ok = curls(&topo, &url, 200, "10");
    assert_eq!(
        ok, 200,
        "only {ok} of 200 legit requests succeeded under the flood"
    );
    assert!(start.elapsed() < Duration::from_secs(50));
    let s = status(&topo);
    assert!(
        s["total"]["counters"]["cookies_validated"]
            .as_u64()
            .unwrap()
            >= 1,
        "legit connections completed on XDP cookies: {s}"
    );
}

#[test]
fn a_kernel_client_keeps_window_scale_and_sack_through_an_xdp_cookie() {
    let Some((topo, _server)) = serving(&["--syncookies", "always", "--app", "echo"]) else {
        return;
    };
    // Echo 4 MiB (a scaled window makes it quick), then ask the kernel (TCP_INFO) what the
    // handshake negotiated: tcpi_options (timestamps 1, SACK 2, window scale 4) and
    // tcpi_snd_wscale (the server's shift, low nibble of the next byte).
    let script = format!(
        r#"
import socket, threading
s = socket.create_connection(("{ip}", {port}))
data = bytes(range(256)) * 16384
got = bytearray()
def read():
    while len(got) < len(data):
        b = s.recv(1 << 16)
        if not b: break
        got.extend(b)
t = threading.Thread(target=read); t.start()
s.sendall(data)
t.join(30)
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
print("OPTIONS", info[5], "SND_WSCALE", info[6] & 0xf)
print("ECHOED", bytes(got) == data)
"#,
        ip = topo.srv_ip,
        port = PORT
    );
    let out = topo.cli(&["timeout", "40", "python3", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ECHOED True"), "{text}");
    assert!(
        text.contains("OPTIONS 7 SND_WSCALE 7"),
        "timestamps, SACK and window scale 7 negotiated through the cookie: {text}"
    );
    assert_eq!(xdp(&topo, "cookie_synacks"), 1, "{text}");
    assert_eq!(
        engine(&topo, "syns_received"),
        0,
        "the engine never saw the SYN"
    );
    // The engine's counters are its latest snapshot, up to 100 ms old.
    assert!(
        Topology::wait_for(Duration::from_secs(2), || engine(
            &topo,
            "cookies_validated"
        ) == 1),
        "{}",
        status(&topo)
    );
}

#[test]
fn key_rotations_and_a_replaced_secret_file_mid_flood_fail_no_legit_connection() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let secret = std::env::temp_dir().join(format!("xdptcp-secret-{}", std::process::id()));
    std::fs::write(&secret, [0x11u8; 32]).unwrap();
    let secret_arg = secret.to_string_lossy().into_owned();
    let _server = topo.start_serve(&[
        "--syncookies",
        "always",
        "--cookie-rotation-secs",
        "1",
        "--cookie-secret-file",
        &secret_arg,
    ]);
    wait_ready(&topo);
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    let _flood = flood(&mut topo, PORT, 60);
    let start = Instant::now();
    let mut ok = 0;
    // Requests for three seconds (two key rotations); then the secret file changes, and the
    // requests go on until four seconds later (the server re-reads the file once a second,
    // and the XDP program takes the new secret within two epochs) and at least 20 requests
    // after. However slow the machine, it is the number of requests and rotations that count.
    let mut changed: Option<(Instant, usize)> = None;
    while !changed.is_some_and(|(at, n)| at.elapsed() >= Duration::from_secs(4) && ok >= n + 20) {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "{ok} requests in 25 s"
        );
        if changed.is_none() && start.elapsed() >= Duration::from_secs(3) {
            // Replaced whole (a rename), so the server never reads it half written.
            let next = secret.with_extension("next");
            std::fs::write(&next, [0x22u8; 40]).unwrap();
            std::fs::rename(&next, &secret).unwrap();
            changed = Some((Instant::now(), ok));
        }
        if curls(&topo, &url, 1, "10") != 1 {
            panic!("request {ok} failed: {}", status(&topo));
        }
        ok += 1;
    }
    let _ = std::fs::remove_file(&secret);
    // (bad_cookie moves too: hping3 shares the client's address, and its SYNs on ports of
    // the client's TIME-WAIT sockets draw ACKs that are no cookie ACKs.) The status is the
    // workers' latest snapshot, up to 100 ms old: the last handshakes may show a little later.
    let validated = || engine(&topo, "cookies_validated") >= ok as u64;
    assert!(
        Topology::wait_for(Duration::from_secs(2), validated),
        "every request's handshake completed on a cookie: {}",
        status(&topo)
    );
    let s = status(&topo);
    assert!(s["xdp"]["cookie_synacks"].as_u64().unwrap() > 1000, "{s}");
}

#[test]
fn sigkill_under_a_flood_leaves_no_xdp_program() {
    let Some((mut topo, server)) = serving(&["--syncookies", "always"]) else {
        return;
    };
    let _flood = flood(&mut topo, PORT, 30);
    assert!(Topology::wait_for(Duration::from_secs(10), || xdp(
        &topo,
        "cookie_synacks"
    ) > 1000));
    topo.signal_child(server, libc::SIGKILL);
    let _ = topo.wait_child(server, Duration::from_secs(10));
    assert!(
        Topology::wait_for(Duration::from_secs(5), || !topo.xdp_attached()),
        "an XDP program is still attached after SIGKILL"
    );
}

#[test]
fn xdp_tx_dropped_by_a_veth_peer_without_napi_sends_syns_to_the_worker_until_gro_is_on_again() {
    let Some((mut topo, server)) = serving(&["--syncookies", "always"]) else {
        return;
    };
    // A second server beside it, whose veth has the same ifindex in its own namespace: the
    // drops are the first one's only (the XDP tracepoints fire for every namespace).
    let mut beside = Topology::new(1);
    beside.start_serve(&["--syncookies", "always"]);
    wait_ready(&beside);
    let ifindex = |t: &Topology| {
        t.srv(&["cat", &format!("/sys/class/net/{}/ifindex", t.srv_if)])
            .stdout
    };
    assert_eq!(ifindex(&topo), ifindex(&beside));
    // Without GRO (NAPI) on the peer, veth drops the XDP program's SYN-ACKs.
    let cli_if = topo.cli_if.clone();
    topo.cli(&["ethtool", "-K", &cli_if, "gro", "off"]);
    let ip = topo.srv_ip.clone();
    let syns = |n: &str| hping3(&topo, &["-S", "-p", PORT, "-c", n, "-i", "u20000", &ip]);
    let (sent, _) = syns("5");
    assert_eq!(sent, 5);
    assert!(xdp(&topo, "tx_dropped") >= 1, "{}", status(&topo));
    // The control loop looks every 100 ms: the worker answers from then on.
    assert!(
        Topology::wait_for(Duration::from_secs(1), || status(&topo)["xdp_tx_fallback"]
            == true),
        "{}",
        status(&topo)
    );
    let (before_xdp, before_engine) = (xdp(&topo, "cookie_synacks"), engine(&topo, "cookies_sent"));
    assert_eq!(syns("5"), (5, 5), "answered by the worker");
    assert_eq!(xdp(&topo, "cookie_synacks"), before_xdp);
    assert!(xdp(&topo, "syn_tx_fallback") >= 5);
    assert!(
        Topology::wait_for(Duration::from_secs(2), || engine(&topo, "cookies_sent")
            >= before_engine + 5),
        "{}",
        status(&topo)
    );
    // GRO on again: the next try of XDP_TX (5 s after the fallback) delivers, and the XDP
    // program answers SYNs again, through the try (a second) and after it.
    topo.cli(&["ethtool", "-K", &cli_if, "gro", "on"]);
    assert!(
        Topology::wait_for(Duration::from_secs(10), || {
            syns("1");
            status(&topo)["xdp_tx_fallback"] == false
        }),
        "{}",
        status(&topo)
    );
    let trying = Instant::now();
    while trying.elapsed() < Duration::from_millis(1500) {
        let before = xdp(&topo, "cookie_synacks");
        assert_eq!(syns("1"), (1, 1));
        assert_eq!(
            xdp(&topo, "cookie_synacks"),
            before + 1,
            "{}",
            status(&topo)
        );
    }
    assert_eq!(status(&topo)["xdp_tx_fallback"], false);
    assert_eq!(syns("5").1, 5);
    topo.signal_child(server, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(server, Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err.matches("gro on").count(),
        1,
        "the fix, said once: {err}"
    );
    assert!(err.contains("SYNs now go to the workers"), "{err}");
    assert!(
        err.contains("XDP_TX delivers the cookie SYN-ACKs again"),
        "{err}"
    );
}

#[test]
fn the_xdp_tx_drops_of_a_server_in_another_namespace_are_not_taken_for_ours() {
    let Some((quiet, _q)) = serving(&["--syncookies", "always"]) else {
        return;
    };
    let Some((loud, _l)) = serving(&["--syncookies", "always"]) else {
        return;
    };
    // Each namespace numbers its devices from 1: both servers' veths have the same ifindex.
    let ifindex = |t: &Topology| {
        t.srv(&["cat", &format!("/sys/class/net/{}/ifindex", t.srv_if)])
            .stdout
    };
    assert_eq!(ifindex(&quiet), ifindex(&loud));
    loud.cli(&["ethtool", "-K", &loud.cli_if, "gro", "off"]);
    let ip = loud.srv_ip.clone();
    hping3(&loud, &["-S", "-p", PORT, "-c", "5", "-i", "u20000", &ip]);
    assert!(xdp(&loud, "tx_dropped") >= 1, "{}", status(&loud));
    std::thread::sleep(Duration::from_millis(300));
    let s = status(&quiet);
    assert_eq!(s["xdp"]["tx_dropped"], 0, "{s}");
    assert_eq!(s["xdp_tx_fallback"], false, "{s}");
}

/// `rate` SYNs a second for `secs` seconds to the server's port, from random hosts of the
/// topology's own /24 other than the two namespaces (raw IPv4 from the client namespace: the
/// client's kernel drops the SYN-ACKs to addresses it does not have, so the half-open
/// connections they open stay). In the background; prints how many it sent.
fn spoofed_flood(topo: &mut Topology, rate: u32, secs: u32) -> usize {
    let prefix = topo.srv_ip.rsplit_once('.').unwrap().0.to_string();
    let script = format!(
        r#"
import random, socket, struct, time
dst = socket.inet_aton("{srv}")
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
sent, start = 0, time.time()
while sent < {rate} * {secs} and time.time() - start < {secs} + 5:
    for _ in range(50):
        src = socket.inet_aton("{prefix}.%d" % random.randint(3, 254))
        tcp = struct.pack("!HHIIBBHHH", random.randint(1024, 65535), {port},
                          random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
        tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, 20) + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
        s.sendto(ip + tcp, ("{srv}", 0))
        sent += 1
    ahead = sent / {rate} - (time.time() - start)
    if ahead > 0:
        time.sleep(ahead)
print("sent", sent, flush=True)
"#,
        srv = topo.srv_ip,
        port = PORT,
    );
    topo.spawn(false, &["python3", "-c", &script])
}

/// How long a kernel client's connect to the server took, if it completed within 2 s.
fn handshake(topo: &Topology) -> Option<Duration> {
    let script = format!(
        "import socket, time\nt = time.time()\nsocket.create_connection(('{}', {PORT}), timeout=2)\nprint(time.time() - t)\n",
        topo.srv_ip
    );
    let out = topo.cli_output(&["timeout", "5", "python3", "-c", &script]);
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// Under a spoofed flood from the topology's subnet (default `auto` cookies): every one of
/// five handshakes completes within 2 s, and curl gets its body. Returns the server's status
/// then.
fn handshakes_under_a_spoofed_flood(mut topo: Topology) -> serde_json::Value {
    let _server = topo.start_serve(&["--cores", "0"]);
    wait_ready(&topo);
    let flood = spoofed_flood(&mut topo, 5000, 8);
    // The flood fills the half-open budget (4096): the worker hands SYNs to XDP.
    assert!(
        Topology::wait_for(Duration::from_secs(6), || {
            let s = status(&topo);
            s["xdp"]["cookie_synacks"].as_u64() > Some(0)
                || s["xdp"]["syn_tx_fallback"].as_u64() > Some(0)
        }),
        "the flood never put the queue in cookie mode: {}",
        status(&topo)
    );
    for i in 0..5 {
        let took = handshake(&topo);
        assert!(
            took.is_some(),
            "handshake {i} took more than 2 s: {}",
            status(&topo)
        );
    }
    let url = format!("http://{}:{PORT}/", topo.srv_ip);
    assert_eq!(curls(&topo, &url, 1, "3"), 1, "{}", status(&topo));
    let s = status(&topo);
    let (out, _, _) = topo.wait_child(flood, Duration::from_secs(20));
    let sent: u64 = out.trim().trim_start_matches("sent ").parse().unwrap_or(0);
    assert!(sent >= 10_000, "the flood sent {out:?}");
    s
}

#[test]
fn on_a_veth_without_gro_a_handshake_under_a_spoofed_flood_completes_within_2_s_from_the_worker() {
    if !common::require_root() {
        return;
    }
    let s = handshakes_under_a_spoofed_flood(Topology::without_client_gro(1));
    assert_eq!(s["xdp_tx_fallback"], true, "{s}");
    assert!(s["xdp"]["tx_dropped"].as_u64().unwrap() > 0, "{s}");
    assert!(s["xdp"]["syn_tx_fallback"].as_u64().unwrap() > 1000, "{s}");
    assert!(
        s["total"]["counters"]["cookies_sent"].as_u64().unwrap() > 1000,
        "the worker answered with its own cookies: {s}"
    );
}

#[test]
fn with_gro_on_the_peer_the_same_flood_is_answered_in_xdp_and_nothing_falls_back() {
    if !common::require_root() {
        return;
    }
    let s = handshakes_under_a_spoofed_flood(Topology::new(1));
    assert_eq!(s["xdp_tx_fallback"], false, "{s}");
    assert_eq!(s["xdp"]["tx_dropped"], 0, "{s}");
    assert_eq!(s["xdp"]["syn_tx_fallback"], 0, "{s}");
    assert!(s["xdp"]["cookie_synacks"].as_u64().unwrap() > 1000, "{s}");
}
