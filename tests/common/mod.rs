//! Test topology: two network namespaces of our own joined by a veth pair, and the processes
//! started in them. Everything is removed on drop, also when the test panics: the processes
//! (each the leader of its own process group, so that what it started goes too: `timeout`'s
//! hping3, a server's children) are asked to stop with SIGTERM and killed if they do not, the
//! server's stats socket goes with its server (or is removed if it was killed), then the
//! namespaces go. Should the test process itself die, its children get SIGTERM
//! (`PR_SET_PDEATHSIG`); `scripts/test.sh` names whatever is left at the end.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether the test may run: root runs it; otherwise CI fails loudly and a developer's run
/// prints "skipped".
pub fn require_root() -> bool {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("interop tests need root; CI runs as root");
    }
    eprintln!("skipped: needs root");
    false
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command to completion and panics with its output when it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces (`srv`, `cli`) joined by a veth pair, addressed 10.201.N.1/24 (server) and
/// 10.201.N.2/24 (client), plus fd00:201:N::1/2 /64.
pub struct Topology {
    /// Server namespace name.
    pub srv_ns: String,
    /// Client namespace name.
    pub cli_ns: String,
    /// The server's veth.
    pub srv_if: String,
    /// The client's veth.
    pub cli_if: String,
    /// The server's IPv4 address.
    pub srv_ip: String,
    /// The client's IPv4 address.
    pub cli_ip: String,
    /// The server's IPv6 address.
    pub srv_ip6: String,
    /// The NAME of `scripts/netns.sh up NAME`.
    name: String,
    children: Vec<Child>,
}

/// The topology's one definition, shared with the scripts.
const NETNS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns.sh");

impl Topology {
    /// Makes the namespaces and the veth pair with `queues` RX/TX queues on each end, through
    /// `scripts/netns.sh` (the scripts' topology): the client's veth has TX checksum offload,
    /// TSO and GSO off (a kernel peer over veth otherwise sends CHECKSUM_PARTIAL frames whose
    /// TCP checksum is not filled in), and GRO on (NAPI, without which veth drops the XDP_TX
    /// frames, cookie SYN-ACKs, of the server's XDP program).
    pub fn new(queues: u32) -> Topology {
        Topology::build(queues, &[])
    }

    /// [`Topology::new`] with GRO off at the client's veth: no NAPI there, so that veth drops
    /// the frames the server's XDP program sends back (XDP_TX, redirects), as on a plain veth
    /// pair nobody tuned.
    pub fn without_client_gro(queues: u32) -> Topology {
        Topology::build(queues, &["--client-gro", "off"])
    }

    /// [`Topology::new`] with both veths at `mtu` (jumbo frames; a server with multi-buffer
    /// gets them as descriptor chains).
    pub fn with_mtu(queues: u32, mtu: u32) -> Topology {
        Topology::build(queues, &["--mtu", &mtu.to_string()])
    }

    /// `scripts/netns.sh up` with its `options`, in a subnet of this test's own (tests run in
    /// parallel).
    fn build(queues: u32, options: &[&str]) -> Topology {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let subnet = (pid * 7 + n) % 250 + 1;
        let name = format!("xt{}n{n}", pid % 10_000_000);
        let t = Topology {
            srv_ns: format!("{name}-srv"),
            cli_ns: format!("{name}-cli"),
            srv_if: format!("{name}-s"),
            cli_if: format!("{name}-c"),
            srv_ip: format!("10.201.{subnet}.1"),
            cli_ip: format!("10.201.{subnet}.2"),
            srv_ip6: format!("fd00:201:{subnet}::1"),
            name,
            children: Vec::new(),
        };
        // From here on, Drop cleans up whatever was made (netns.sh notes it for test.sh first).
        let (queues, subnet) = (queues.to_string(), subnet.to_string());
        let mut args = vec![NETNS, "up", &t.name, &queues, "--subnet", &subnet];
        args.extend_from_slice(options);
        run(&args);
        t
    }

    fn in_ns(ns: &str, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["ip", "netns", "exec", ns]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// Runs a command in the server namespace; panics when it fails.
    pub fn srv(&self, args: &[&str]) -> Output {
        let v = Self::in_ns(&self.srv_ns, args);
        run(&v.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs a command in the client namespace; panics when it fails.
    pub fn cli(&self, args: &[&str]) -> Output {
        let v = Self::in_ns(&self.cli_ns, args);
        run(&v.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A TCP counter of the client namespace's kernel, from `/proc/net/snmp` (e.g. `OutRsts`:
    /// the kernel resets every SYN-ACK that reaches a port no socket has, so it counts the
    /// SYN-ACKs hping3's SYNs drew, whether or not hping3 itself got to read them).
    pub fn cli_tcp_counter(&self, name: &str) -> u64 {
        let out = self.cli(&["cat", "/proc/net/snmp"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no Tcp {name} in /proc/net/snmp: {text}"))
    }

    /// Runs a command in the client namespace and returns its output, failed or not.
    pub fn cli_output(&self, args: &[&str]) -> Output {
        let v = Self::in_ns(&self.cli_ns, args);
        Command::new(&v[0])
            .args(&v[1..])
            .output()
            .expect("spawning ip netns exec")
    }

    /// Starts a long-running command in a namespace; it is killed (by pid) on drop. Returns its
    /// index for [`Topology::child`].
    pub fn spawn(&mut self, server_side: bool, args: &[&str]) -> usize {
        let ns = if server_side {
            &self.srv_ns
        } else {
            &self.cli_ns
        };
        let v = Self::in_ns(ns, args);
        let mut cmd = Command::new(&v[0]);
        cmd.args(&v[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // Safety: prctl is async-signal-safe, and the closure touches nothing else.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {v:?}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    /// A process started by [`Topology::spawn`].
    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    /// Waits (bounded) for a started process to end and returns its stdout and stderr.
    pub fn wait_child(&mut self, i: usize, limit: Duration) -> (String, String, Option<i32>) {
        let start = Instant::now();
        let child = &mut self.children[i];
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut out = String::new();
                let mut err = String::new();
                use std::io::Read;
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (out, err, status.code());
            }
            if start.elapsed() > limit {
                signal_group(child, libc::SIGKILL);
                let _ = child.wait();
                panic!("process did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to a started process, by pid. `ip netns exec` execs the command, so the
    /// pid is the command's own.
    pub fn signal_child(&mut self, i: usize, signal: i32) {
        let pid = self.children[i].id() as i32;
        // Safety: kill(2) on a pid we spawned and have not reaped yet.
        unsafe { libc::kill(pid, signal) };
    }

    /// Runs `f` on a thread that has entered the server namespace (for in-process sockets).
    pub fn in_server_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.srv_ns);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            // Safety: setns on a namespace fd we hold open; it changes only this thread, which
            // exists for this closure alone.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in the server namespace panicked")
    }

    /// Spawns `xdptcp serve --iface <server veth> <extra...>` in the server namespace, with
    /// `env` (e.g. `RUST_LOG=debug`) set for it.
    pub fn spawn_serve_env(&mut self, env: &[&str], extra: &[&str]) -> usize {
        let iface = self.srv_if.clone();
        let mut args = vec!["env"];
        args.extend_from_slice(env);
        args.extend_from_slice(&[env!("CARGO_BIN_EXE_xdptcp"), "serve", "--iface", &iface]);
        args.extend_from_slice(extra);
        self.spawn(true, &args)
    }

    /// Spawns `xdptcp serve --iface <server veth> <extra...>` in the server namespace.
    pub fn spawn_serve(&mut self, extra: &[&str]) -> usize {
        self.spawn_serve_env(&[], extra)
    }

    /// Serves port 8080 for at most 30 s (plus `extra`) and waits until the XDP program is
    /// attached; panics with the server's output if it is not.
    pub fn start_serve(&mut self, extra: &[&str]) -> usize {
        let mut args = vec!["--port", "8080", "--duration", "30"];
        args.extend_from_slice(extra);
        let i = self.spawn_serve(&args);
        if !Topology::wait_for(Duration::from_secs(10), || self.xdp_attached()) {
            let (_, err, _) = self.wait_child(i, Duration::from_secs(5));
            panic!("server did not attach: {err}");
        }
        i
    }

    /// The running server's status (`xdptcp stats --json` for the server's veth).
    pub fn stats(&self) -> serde_json::Value {
        let out = run(&[
            env!("CARGO_BIN_EXE_xdptcp"),
            "stats",
            "--iface",
            &self.srv_if,
            "--json",
        ]);
        serde_json::from_slice(&out.stdout).expect("xdptcp stats --json is JSON")
    }

    /// Waits (10 s at most) until the server's stats socket exists: its data path runs.
    pub fn wait_stats_socket(&self) {
        let path = format!("/run/xdptcp/{}.sock", self.srv_if);
        assert!(
            Topology::wait_for(Duration::from_secs(10), || std::path::Path::new(&path)
                .exists()),
            "no stats socket at {path}"
        );
    }

    /// Whether an XDP program is attached to the server's veth.
    pub fn xdp_attached(&self) -> bool {
        let out = self.srv(&["ip", "link", "show", "dev", &self.srv_if]);
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    }

    /// Polls `cond` every 50 ms until it holds or `limit` passes.
    pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Sends `signal` to the process group `child` leads ([`Topology::spawn`] makes each child a
/// group leader): by pid, never by name.
fn signal_group(child: &Child, signal: i32) {
    // Safety: kill(2) on the group of a child we spawned and have not reaped yet.
    unsafe { libc::kill(-(child.id() as i32), signal) };
}

/// How long the processes left at the end of a test have to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Drop for Topology {
    fn drop(&mut self) {
        // Asked first, so that a server removes its stats socket and `timeout` stops its
        // command; killed if they take too long.
        let running: Vec<usize> = (0..self.children.len())
            .filter(|&i| matches!(self.children[i].try_wait(), Ok(None)))
            .collect();
        for &i in &running {
            signal_group(&self.children[i], libc::SIGTERM);
        }
        let start = Instant::now();
        for &i in &running {
            let child = &mut self.children[i];
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < STOP_GRACE {
                std::thread::sleep(Duration::from_millis(20));
            }
            // The group too: what the child started may outlive it.
            signal_group(child, libc::SIGKILL);
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        // A server killed on purpose (SIGKILL) could not remove its socket.
        let socket = xdptcp::control::stats_socket::default_path(&self.srv_if);
        let _ = xdptcp::control::stats_socket::remove_if_stale(&socket);
        let _ = Command::new(NETNS)
            .args(["down", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
