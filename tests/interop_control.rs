//! The control plane cannot be stalled (root): scrapes dripped a byte at a time hold up
//! neither the SYN-cookie key rotations nor SIGTERM, and a FIFO swapped in for the
//! cookie-secret file is refused at the re-read with the old secret kept (refused at start:
//! `interop_ops`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Topology;

const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");

/// A path under the temp dir unique to this test process, removed when dropped (also when
/// the test fails).
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        let p = std::env::temp_dir().join(format!("xdptcp-ctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }

    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    /// Writes `contents` with mode `mode`.
    fn write(&self, contents: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(&self.0);
        std::fs::write(&self.0, contents).unwrap();
        std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Replaces the file by a FIFO nobody writes to.
    fn make_fifo(&self) {
        let _ = std::fs::remove_file(&self.0);
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // Safety: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The status of the server behind `socket` (`xdptcp stats --json`), and how long it took.
fn status(socket: &Path) -> (serde_json::Value, Duration) {
    let asked = Instant::now();
    let out = Command::new(BIN)
        .args(["stats", "--json", "--socket"])
        .arg(socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        asked.elapsed(),
    )
}

fn stats_socket(topo: &Topology) -> PathBuf {
    PathBuf::from(format!("/run/xdptcp/{}.sock", topo.srv_if))
}

/// Waits until the stats socket answers.
fn wait_ready(topo: &Topology) {
    let socket = stats_socket(topo);
    assert!(
        Topology::wait_for(Duration::from_secs(10), || socket.exists()),
        "no stats socket at {}",
        socket.display()
    );
}

/// Seconds on the wall clock: the cookie clock's epochs with `--cookie-rotation-secs 1`.
fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Samples the cookie epoch through `xdptcp stats` every 500 ms for `span`: each sample is
/// the epoch of the wall-clock second it was taken in (or the one before, for a sample taken
/// across a second's end), so the keys never fall behind; every answer comes within a second.
fn epochs_keep_time(socket: &Path, span: Duration) -> Vec<u64> {
    let start = Instant::now();
    let mut epochs = Vec::new();
    while start.elapsed() < span {
        let before = wall_secs();
        let (s, took) = status(socket);
        let after = wall_secs();
        let epoch = s["cookie_epoch"].as_u64().expect("cookie_epoch");
        assert!(
            (before.saturating_sub(1)..=after).contains(&epoch),
            "the key epoch {epoch} lags the clock ({before}..{after}): {epochs:?}"
        );
        assert!(took < Duration::from_secs(1), "stats took {took:?}");
        epochs.push(epoch);
        std::thread::sleep(Duration::from_millis(500));
    }
    epochs
}

#[test]
fn scrapes_dripped_a_byte_every_400_ms_hold_up_neither_key_rotations_nor_sigterm() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let server = topo.start_serve(&["--metrics", "127.0.0.1:9466", "--cookie-rotation-secs", "1"]);
    wait_ready(&topo);
    // Ten scrapers, more than the endpoint serves at once, each sending its request a byte
    // every 0.4 s and reconnecting when cut off, for 8 s; each says how long it was held at
    // most and how often it was cut off.
    let dripper = r#"
import socket, time
end = time.time() + 8
held, cuts = 0.0, 0
while time.time() < end:
    try:
        s = socket.create_connection(("127.0.0.1", 9466))
    except OSError:
        break  # the server is gone
    t = time.time()
    try:
        for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n":
            s.send(bytes([b]))
            time.sleep(0.4)
            if time.time() > end:
                break
        else:
            print("answered?", s.recv(100), flush=True)
    except OSError:
        cuts += 1
        held = max(held, time.time() - t)
    s.close()
print("held %.1f cuts %d" % (held, cuts), flush=True)
"#;
    let drippers: Vec<usize> = (0..10)
        .map(|_| topo.spawn(true, &["python3", "-c", dripper]))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let socket = stats_socket(&topo);
    let epochs = epochs_keep_time(&socket, Duration::from_secs(5));
    assert!(
        epochs.last().unwrap() - epochs[0] >= 4,
        "a key epoch a second: {epochs:?}"
    );
    // A scraper that sends its request at once still gets an answer (after waiting at most
    // one deadline for a place).
    let out = topo.srv(&["curl", "-s", "-m", "5", "http://127.0.0.1:9466/metrics"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("xdptcp_cookie_epoch "), "{text}");
    // Every dripper is cut off at its deadline (how soon all ten have been depends on how
    // fast python started on a busy machine).
    let timed_out = || status(&socket).0["control_clients"]["metrics"]["timed_out"].as_u64();
    assert!(
        Topology::wait_for(Duration::from_secs(5), || timed_out() >= Some(10)),
        "the drippers were not cut off: {:?}",
        timed_out()
    );
    // SIGTERM, with the drippers still at it: acted on at once.
    let asked = Instant::now();
    topo.signal_child(server, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(server, Duration::from_secs(10));
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?}: {err}"
    );
    for d in drippers {
        let (out, _, _) = topo.wait_child(d, Duration::from_secs(15));
        let held: f64 = out
            .split_whitespace()
            .nth(1)
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| panic!("dripper said {out:?}"));
        assert!(!out.contains("answered?"), "{out}");
        // Cut off 2 s after its accept, which may have waited up to 2 s for a place (ten
        // drippers, eight places); the dripper sees it at its next send or the one after.
        assert!(held < 5.5, "a dripper was held {held} s: {out}");
    }
}

#[test]
fn a_fifo_swapped_in_for_the_secret_file_is_refused_once_and_the_old_secret_kept_serving() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let file = TempPath::new("swap");
    file.write(&[0x11; 32], 0o600);
    let server = topo.start_serve(&[
        "--syncookies",
        "always",
        "--cookie-rotation-secs",
        "1",
        "--cookie-secret-file",
        &file.arg(),
    ]);
    wait_ready(&topo);
    let url = format!("http://{}:8080/", topo.srv_ip);
    let get = |topo: &Topology| {
        let out = topo.cli_output(&["curl", "-s", "-m", "5", &url]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Hello"),
            "{out:?}"
        );
    };
    get(&topo);
    file.make_fifo();
    // Three re-reads of the FIFO: none blocks, the keys keep time, connections still
    // complete on cookies of the secret kept.
    let epochs = epochs_keep_time(&stats_socket(&topo), Duration::from_secs(3));
    assert!(epochs.last().unwrap() - epochs[0] >= 2, "{epochs:?}");
    get(&topo);
    // Made right again, with another secret: in use from the next re-read on.
    file.write(&[0x22; 40], 0o600);
    std::thread::sleep(Duration::from_millis(1500));
    get(&topo);
    topo.signal_child(server, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(server, Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err.matches("is a FIFO, not a regular file; keeping the current SYN-cookie secret")
            .count(),
        1,
        "said once: {err}"
    );
    assert_eq!(
        err.matches("SYN-cookie secret replaced").count(),
        1,
        "replaced once it was right again: {err}"
    );
}
