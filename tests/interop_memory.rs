//! Interop over veth (root): kernel clients that write to `--app echo` and never read hold the
//! server to its memory budget (`--memory-limit`), measured as the server's RSS, and then
//! read back every byte exactly.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Topology;

const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");

/// Kernel clients, each writing this much and reading nothing for [`HOARD_SECS`].
const CLIENTS: usize = 300;
const PER_CLIENT: usize = 3 << 20;
const HOARD_SECS: u64 = 5;
/// The server's budget, and what its RSS may grow by beyond it: the connection table and
/// timers of 300 connections (~0.3 MiB), the 4 KiB every send and receive buffer may always
/// hold (at most 2.4 MiB), and the allocator's slack around buffers that grow and are freed
/// (measured: 35-36 MiB of growth in all; with no budget, 141 MiB; before the worker gave
/// free pages back in the budget's upper half, up to 42 MiB on a fresh machine).
const BUDGET_MIB: u64 = 32;
const OVERHEAD_MIB: u64 = 8;
/// What the engine's own count may pass the budget by: the table, the timers and the 4 KiB
/// per buffer above, without the allocator.
const SLACK_KIB: u64 = 3 << 10;

/// Python clients: `n` connections each write `len` bytes of their own pattern without reading
/// for `hoard` seconds, then read the echo while writing the rest, check every byte, close, and
/// print one JSON line.
const CLIENTS_PY: &str = r#"
import json, random, selectors, socket, sys, time
addr, n, length, hoard = ('{addr}', 8080), {n}, {len}, {hoard}
rnd = random.Random(7)
block = bytes(rnd.getrandbits(8) for _ in range(1 << 16))
L = len(block)
twice = block + block
def chunk(i, off, k):
    s = (off + i * 4099) % L
    return twice[s:s + min(k, L)]
def connect():
    # CUBIC, Linux's default: this host's is BBR, whose bandwidth estimate, after seconds of a
    # window held shut and segments dropped, fell to 8 kbit/s and paced the last bytes of a
    # few connections for minutes.
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b'cubic')
    s.settimeout(10)
    s.connect(addr)
    return s
socks = [connect() for _ in range(n)]
for s in socks:
    s.setblocking(False)
sent, got, bad = [0] * n, [0] * n, 0
sel = selectors.DefaultSelector()
for i, s in enumerate(socks):
    sel.register(s, selectors.EVENT_WRITE, i)
def events(i):
    return (selectors.EVENT_WRITE if sent[i] < length else 0) | (selectors.EVENT_READ if reading else 0)
def write(i):
    while sent[i] < length:
        try:
            sent[i] += socks[i].send(chunk(i, sent[i], length - sent[i]))
        except BlockingIOError:
            return
def update(i):
    ev = events(i)
    if ev:
        sel.modify(socks[i], ev, i)
    else:
        sel.unregister(socks[i])
reading = False
start = time.time()
while time.time() - start < hoard:
    for key, _ in sel.select(0.1):
        write(key.data)
        if sent[key.data] == length:
            sel.unregister(socks[key.data])
hoarded = sum(sent)
reading = True
for i, s in enumerate(socks):
    try:
        sel.register(s, events(i), i)
    except KeyError:
        sel.modify(s, events(i), i)
deadline = time.time() + {timeout}
while min(got) < length and time.time() < deadline:
    for key, ev in sel.select(0.5):
        i = key.data
        if ev & selectors.EVENT_WRITE:
            write(i)
        if ev & selectors.EVENT_READ:
            try:
                data = socks[i].recv(1 << 18)
            except BlockingIOError:
                continue
            if not data:
                bad += 1
                sel.unregister(socks[i])
                continue
            for at in range(0, len(data), L):
                piece = data[at:at + L]
                if piece != chunk(i, got[i], len(piece)):
                    bad += 1
                got[i] += len(piece)
            if got[i] > length:
                bad += 1
        if got[i] >= length and sent[i] >= length:
            sel.unregister(socks[i])
        else:
            update(i)
unfinished = [(i, sent[i], got[i]) for i in range(n) if got[i] < length][:10]
for s in socks:
    s.close()
print(json.dumps({"hoarded": hoarded, "sent": sum(sent), "got": sum(got), "done": sum(g == length for g in got), "bad": bad, "secs": time.time() - start, "unfinished": unfinished}))
"#;

fn clients(topo: &Topology, n: usize, len: usize, hoard: u64, timeout: u64) -> String {
    CLIENTS_PY
        .replace("{addr}", &topo.srv_ip)
        .replace("{n}", &n.to_string())
        .replace("{len}", &len.to_string())
        .replace("{hoard}", &hoard.to_string())
        .replace("{timeout}", &timeout.to_string())
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `xdptcp stats` of the server, as text.
fn stats_text(socket: &PathBuf) -> String {
    let out = Command::new(BIN)
        .args(["stats", "--socket"])
        .arg(socket)
        .output()
        .expect("xdptcp stats");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server's status as `xdptcp stats --json` prints it.
fn status(socket: &PathBuf) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["stats", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("xdptcp stats");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "xdptcp stats: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// 300 kernel clients write 3 MiB each to echo and read nothing for 5 s: the server holds
/// them to its 32 MiB budget (its RSS grows by no more than that and the stated overhead; the
/// budget is at its limit), then they read back every byte, exactly.
#[test]
fn never_reading_kernel_clients_of_echo_hold_the_server_to_its_memory_budget() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let socket = std::env::temp_dir().join(format!("xdptcp-memory-{}.sock", std::process::id()));
    let budget = format!("{BUDGET_MIB}MiB");
    let server = topo.spawn_serve(&[
        "--port",
        "8080",
        "--duration",
        "400",
        "--app",
        "echo",
        "--ring-size",
        "512",
        "--memory-limit",
        &budget,
        "--stats-socket",
        socket.to_str().expect("utf-8 path"),
        "--metrics",
        "127.0.0.1:9466",
    ]);
    if !Topology::wait_for(Duration::from_secs(10), || topo.xdp_attached()) {
        let (_, err, _) = topo.wait_child(server, Duration::from_secs(5));
        panic!("server did not attach: {err}");
    }
    let pid = topo.child(server).id();
    // One connection first moves 16 MiB through, so every UMEM frame has been written (its
    // pages resident) before the baseline is taken.
    let warm = topo.cli(&["python3", "-c", &clients(&topo, 1, 16 << 20, 0, 60)]);
    let warm = String::from_utf8_lossy(&warm.stdout).to_string();
    assert!(warm.contains("\"done\": 1, \"bad\": 0"), "{warm}");
    std::thread::sleep(Duration::from_millis(500));
    let baseline = rss_kib(pid);
    let script = clients(&topo, CLIENTS, PER_CLIENT, HOARD_SECS, 300);
    let run = topo.spawn(false, &["timeout", "330", "python3", "-c", &script]);
    let started = Instant::now();
    let (mut peak, mut peak_hoarding) = (baseline, baseline);
    let (mut during, mut text, mut metrics) = (None, String::new(), String::new());
    // What the engine counted at most (sampled each second), beside the RSS: which of the two
    // outgrew the bound, if one does.
    let (mut allocated, mut asked) = (0, Instant::now());
    while topo.child(run).try_wait().expect("try_wait").is_none() {
        let rss = rss_kib(pid);
        peak = peak.max(rss);
        if started.elapsed() < Duration::from_secs(HOARD_SECS) {
            peak_hoarding = peak_hoarding.max(rss);
        }
        if asked.elapsed() >= Duration::from_secs(1) {
            let memory = &status(&socket)["total"]["memory"];
            allocated = allocated.max(memory["allocated_bytes"].as_u64().unwrap_or(0) >> 10);
            asked = Instant::now();
        }
        if during.is_none() && started.elapsed() > Duration::from_secs(HOARD_SECS - 1) {
            during = Some(status(&socket));
            text = stats_text(&socket);
            let scrape = topo.srv(&["curl", "-s", "-m", "5", "http://127.0.0.1:9466/metrics"]);
            metrics = String::from_utf8_lossy(&scrape.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (out, err, code) = topo.wait_child(run, Duration::from_secs(5));
    let during = during.expect("the status while the clients hoarded");
    let memory = &during["total"]["memory"];
    eprintln!(
        "RSS {baseline} KiB at the start, +{} KiB at most while hoarding, +{} KiB at most; \
         {allocated} KiB allocated at most; while hoarding: {memory}\nclients: {out}{err}",
        peak_hoarding - baseline,
        peak - baseline
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let result: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(result["bad"], 0, "{result}");
    assert_eq!(result["done"], CLIENTS, "every byte came back: {result}");
    assert!(
        result["hoarded"].as_u64().unwrap_or(0) > BUDGET_MIB << 20,
        "the clients wrote far more than the budget while not reading: {result}"
    );
    assert!(memory["at_limit"] == 1, "{memory}");
    assert!(
        text.contains("of a 33554432 B memory budget") && text.contains("1 at the limit"),
        "{text}"
    );
    for line in [
        "xdptcp_memory_limit_bytes{queue=\"0\"} 33554432",
        "xdptcp_memory_at_limit{queue=\"0\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert!(
        allocated <= (BUDGET_MIB << 10) + SLACK_KIB,
        "the engine counted {allocated} KiB allocated, more than the {BUDGET_MIB} MiB budget and \
         {SLACK_KIB} KiB"
    );
    let bound_kib = (BUDGET_MIB + OVERHEAD_MIB) << 10;
    assert!(
        peak - baseline <= bound_kib,
        "RSS grew by {} KiB, more than the {BUDGET_MIB} MiB budget and {OVERHEAD_MIB} MiB",
        peak - baseline
    );
    topo.signal_child(server, libc::SIGTERM);
    let (_, report, code) = topo.wait_child(server, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{report}");
    let counter = |name: &str| {
        report
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(counter("memory_pressures") > 0, "{report}");
    assert!(counter("rcv_window_clamped") > 0, "{report}");
    let _ = std::fs::remove_file(&socket);
}
