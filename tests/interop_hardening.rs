//! A server one can leave running (root): once set up it holds no capability (with and
//! without `--user`) and still serves, rotates its cookie keys, answers `xdptcp stats` and
//! metrics and detaches XDP at exit; a worker that panics stops the whole process, non-zero,
//! naming its queue, with nothing left behind; a planted symbolic link never gets written
//! through.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as StdInstant};

use common::Topology;
use xdptcp::stats::Stats;
use xdptcp::tcp::{Config, Listener, SynCookieMode};
use xdptcp::time::Instant;
use xdptcp::tx::Tx;
use xdptcp::xdp::privileges::{Credentials, User, needed_after_setup};
use xdptcp::xdp::{Handler, Server, ServerConfig, sys};

const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");

/// A directory of the test's own (mode 0700, owned by `owner`), removed when dropped, also
/// when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str, owner: (u32, u32)) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("xdptcp-hardening-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&dir, Some(owner.0), Some(owner.1)).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The name and credentials of every thread of process `pid`.
fn threads_of(pid: u32) -> Vec<(String, Credentials)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server runs");
    tasks
        .map(|t| {
            let t = t.unwrap().path();
            let name = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
            let status = std::fs::read_to_string(t.join("status")).unwrap_or_default();
            let creds = Credentials::parse(&status).unwrap_or_else(|| panic!("{status}"));
            (name.trim().to_string(), creds)
        })
        .collect()
}

/// Whether an HTTP request from the client namespace gets a 200.
fn served(topo: &Topology) -> bool {
    let url = format!("http://{}:8080/", topo.srv_ip);
    let out = topo.cli_output(&[
        "curl",
        "-s",
        "-m",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    String::from_utf8_lossy(&out.stdout) == "200"
}

/// Starts `xdptcp serve --port 8080 <extra>` with `env` and waits until XDP is attached and
/// the workers run (they start once privileges are dropped). Returns the child's index.
fn start(topo: &mut Topology, env: &[&str], extra: &[&str]) -> usize {
    let mut args = vec!["--port", "8080", "--duration", "30"];
    args.extend_from_slice(extra);
    let i = topo.spawn_serve_env(env, &args);
    let pid = topo.child(i).id();
    let running = Topology::wait_for(Duration::from_secs(10), || {
        topo.xdp_attached() && threads_of(pid).iter().any(|(n, _)| n == "xdptcp-q0")
    });
    if !running {
        let (_, err, _) = topo.wait_child(i, Duration::from_secs(5));
        panic!("server did not start: {err}");
    }
    i
}

/// Serves with and without `--user`: every thread of the running server shows the ids of
/// `user` (root without one), no capability but what it still needs, no_new_privs; and it
/// serves requests across cookie key rotations, answers `xdptcp stats` (run as root) and
/// metrics, and at SIGTERM exits 0, XDP detached, its stats socket removed.
fn runs_without_privileges(user: Option<&str>) {
    let mut topo = Topology::new(1);
    let account = User::lookup(user.unwrap_or("root")).unwrap();
    let dir = TempDir::new(user.unwrap_or("root"), (account.uid, account.gid));
    let socket = dir.path("stats.sock");
    let mut extra = vec![
        "--syncookies",
        "always",
        "--cookie-rotation-secs",
        "1",
        "--metrics",
        "127.0.0.1:9464",
        "--stats-socket",
        &socket,
    ];
    if let Some(u) = user {
        extra.extend_from_slice(&["--user", u]);
    }
    let i = start(&mut topo, &["RUST_LOG=xdptcp=debug"], &extra);
    let pid = topo.child(i).id();

    let needed = needed_after_setup();
    let threads = threads_of(pid);
    assert!(
        threads.len() >= 2,
        "the control thread and a worker: {threads:?}"
    );
    for (name, c) in &threads {
        assert_eq!(c.uid, [account.uid; 4], "{name}: {c:?}");
        assert_eq!(c.gid, [account.gid; 4], "{name}: {c:?}");
        assert_eq!((c.cap_eff, c.cap_prm), (needed, needed), "{name}: {c:?}");
        assert_eq!((c.cap_inh, c.cap_amb), (0, 0), "{name}: {c:?}");
        assert_eq!(
            c.cap_bnd, needed,
            "{name}: root may drop the bounding set: {c:?}"
        );
        assert!(c.no_new_privs, "{name}: {c:?}");
    }

    // Four rotation epochs of requests, every SYN answered by the XDP program with the key
    // the control thread keeps writing into the mapped key table.
    for _ in 0..4 {
        assert!(served(&topo), "a request failed");
        std::thread::sleep(Duration::from_millis(1000));
    }
    let out = topo.srv(&[BIN, "stats", "--socket", &socket, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert_eq!(status["pid"], pid);
    assert!(
        status["xdp"]["cookie_synacks"].as_u64() >= Some(4),
        "{status}"
    );
    assert_eq!(status["xdp"]["syn_to_worker"], 0, "keys kept up: {status}");
    let metrics = topo.srv(&["curl", "-s", "-m", "5", "http://127.0.0.1:9464/metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.contains("xdptcp_passive_opens_total"), "{metrics}");

    topo.signal_child(i, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("privileges dropped: uid 0 -> {}", account.uid)),
        "{err}"
    );
    let rotations = err.matches("SYN-cookie secret rotated").count();
    assert!(rotations >= 3, "{rotations} rotations: {err}");
    assert!(!topo.xdp_attached(), "XDP detached at exit");
    assert!(!Path::new(&socket).exists(), "stats socket removed at exit");
}

#[test]
fn a_server_run_by_root_holds_no_capability_once_set_up_and_still_serves() {
    if !common::require_root() {
        return;
    }
    runs_without_privileges(None);
}

#[test]
fn a_server_switched_to_nobody_holds_no_capability_once_set_up_and_still_serves() {
    if !common::require_root() {
        return;
    }
    runs_without_privileges(Some("nobody"));
}

#[test]
fn a_worker_that_panics_stops_the_server_non_zero_naming_its_queue_and_leaves_nothing() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let nobody = User::lookup("nobody").unwrap();
    let dir = TempDir::new("panic", (nobody.uid, nobody.gid));
    let socket = dir.path("stats.sock");
    let i = start(
        &mut topo,
        &["XDPTCP_TEST_PANIC_QUEUE=0"],
        &[
            "--syncookies",
            "always",
            "--stats-socket",
            &socket,
            "--user",
            "nobody",
        ],
    );
    assert!(Path::new(&socket).exists());
    let asked = StdInstant::now();
    // The SYN is answered in XDP; the ACK reaches worker 0, which panics.
    assert!(!served(&topo), "the worker panics on its first frame");
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "exited {:?} after the request",
        asked.elapsed()
    );
    assert!(
        err.contains("the worker of queue 0 died: panicked: a worker bug made on purpose"),
        "{err}"
    );
    assert!(err.contains("thread 'xdptcp-q0'"), "{err}");
    assert!(!topo.xdp_attached(), "XDP detached");
    assert!(!Path::new(&socket).exists(), "stats socket removed");
}

/// A handler that wants its queue in cookie mode and panics on the first frame it gets.
struct PanicsOnFrame;

impl Handler for PanicsOnFrame {
    fn receive<T: Tx>(&mut self, _: Instant, _: &[u8], _: &mut T) {
        panic!("a frame this handler cannot take");
    }
    fn poll_timers<T: Tx>(&mut self, _: Instant, _: &mut T) {}
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    fn stats(&self) -> Stats {
        Stats::default()
    }
    fn cookie_mode(&mut self, _: Instant, _: u64) -> bool {
        true
    }
}

/// One connect from the client namespace: "connected", "refused" or the error.
fn connect(topo: &Topology) -> String {
    let script = format!(
        "import socket\ntry:\n    socket.create_connection(('{}', 8080), timeout=2).close()\n    print('connected')\nexcept ConnectionRefusedError:\n    print('refused')\nexcept OSError as e:\n    print(e)\n",
        topo.srv_ip
    );
    let out = topo.cli(&["python3", "-c", &script]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn supervise_names_the_dead_queue_and_clears_its_cookie_flag_so_xdp_stops_answering_syns() {
    if !common::require_root() {
        return;
    }
    let topo = Topology::new(1);
    let engine = Config {
        listeners: vec![Listener {
            addr: Some(IpAddr::V4(topo.srv_ip.parse::<Ipv4Addr>().unwrap())),
            port: 8080,
            keepalive: None,
            fastopen: None,
            options: Default::default(),
        }],
        syncookies: SynCookieMode::Always,
        ..Config::default()
    };
    let config = ServerConfig {
        queues: Some(1),
        ..ServerConfig::for_engine(&topo.srv_if, &engine, sys::monotonic_now())
    };
    let mut server = topo
        .in_server_ns(move || Server::start(config, |_| PanicsOnFrame))
        .expect("starting the data path");
    // The worker sets its queue's flag on its first round.
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.supervise().is_ok(), "the worker runs");
    assert_eq!(connect(&topo), "connected", "XDP answers the SYN");
    let mut died = None;
    Topology::wait_for(Duration::from_secs(5), || {
        died = server.supervise().err();
        died.is_some()
    });
    let died = died.expect("the worker died on the ACK");
    assert_eq!(died.queue, 0);
    assert!(
        died.to_string()
            .contains("queue 0 died: panicked: a frame this handler cannot take"),
        "{died}"
    );
    // Its flag is cleared: the program no longer answers SYNs for the dead queue, whose
    // segments the kernel now refuses.
    assert_eq!(connect(&topo), "refused");
    drop(server);
    assert!(!topo.xdp_attached());
}

#[test]
fn a_planted_symlink_is_never_written_through_and_a_new_pcap_is_0600() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let dir = TempDir::new("files", (0, 0));
    let victim = dir.0.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = dir.path("x.pcap");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let old = dir.path("old.pcap");
    std::fs::write(&old, b"old").unwrap();
    for (extra, says) in [
        (vec!["--pcap", &link], "symbolic link"),
        (vec!["--pcap", &link, "--force"], "symbolic link"),
        (vec!["--pcap", &old], "--force"),
        (vec!["--hist-out", &link], "symbolic link"),
    ] {
        let mut args = vec!["--port", "8080"];
        args.extend_from_slice(&extra);
        let i = topo.spawn_serve(&args);
        let (_, err, code) = topo.wait_child(i, Duration::from_secs(10));
        assert_eq!(code, Some(1), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?}: {err}");
        assert!(!topo.xdp_attached(), "{extra:?}: the NIC is untouched");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&old).unwrap(), b"old");
    let i = start(&mut topo, &[], &["--pcap", &old, "--force"]);
    topo.signal_child(i, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    let meta = std::fs::metadata(&old).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(
        &std::fs::read(&old).unwrap()[..4],
        &0xa1b2_c3d4u32.to_le_bytes()
    );
}
