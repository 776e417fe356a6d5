//! Putting the data path together: check privileges, look the interface up, load the program,
//! bind one socket per queue, attach, and start one pinned worker per queue.

use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::stats::{Latencies, Memory, Stats};
use crate::tcp::syncookie::CookieKeys;
use crate::tcp::{Config, Secret, SynCookieMode};
use crate::time::Instant;
use crate::xdp::capture::{
    Capture, CaptureConfig, CaptureError, CaptureTotals, PcapFile, Tap, TapCounters,
};
use crate::xdp::key_schedule::KeySchedule;
use crate::xdp::program::{
    AttachError, Attachment, LoadError, MapError, Program, ProgramConfig, SynAckTemplate,
    XdpCounters, XdpMode,
};
use crate::xdp::shared_maps::QueueFlag;
use crate::xdp::socket::{FrameAccount, SocketCounters, SocketError, XskConfig, XskSocket};
use crate::xdp::sys::{self, Interface, InterfaceError, PrivilegeError};
use crate::xdp::worker::{self, Control, Handler, Snapshot, SnapshotSender, Snapshots};

/// What to serve, where and how.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The interface.
    pub iface: String,
    /// Served endpoints: an address and a port; `None` serves the port on the interface's own
    /// addresses, IPv4 and IPv6, following them as they change ([`Server::refresh_addresses`]).
    pub listeners: Vec<(Option<IpAddr>, u16)>,
    /// Queues (and workers); `None`: every receive queue of the interface.
    pub queues: Option<u32>,
    /// Cores to pin workers to, worker `i` on `cores[i % len]`; `None`: worker `i` on core `i`.
    pub cores: Option<Vec<usize>>,
    /// Where the XDP program runs.
    pub xdp_mode: XdpMode,
    /// Socket and UMEM sizes and the bind mode.
    pub xsk: XskConfig,
    /// The SYN-ACK the engines send, for the XDP program's cookie SYN-ACKs.
    pub synack: SynAckTemplate,
    /// The engines' SYN-cookie keys, for the XDP program's key table; `None`: the program
    /// never answers SYNs itself.
    pub cookie_keys: Option<CookieKeys>,
    /// A pcap capture of the frames the workers receive and send, if wanted.
    pub capture: Option<CaptureConfig>,
    /// Take packets larger than a UMEM frame (AF_XDP multi-buffer, Linux 6.6+): a
    /// frags-aware XDP program (`BPF_F_XDP_HAS_FRAGS`) and sockets bound with `XDP_USE_SG`,
    /// whose descriptor chains the workers gather into one frame each, and frames longer than
    /// a UMEM frame sent as TX chains. Then the engines' MSS may exceed a frame (up to the
    /// MTU's: jumbo frames). A kernel that refuses it fails the start with an error whose
    /// [`StartError::multi_buffer_refused`] says so: start again without.
    pub multi_buffer: bool,
}

impl ServerConfig {
    /// What serving engines configured by `engine` on `iface` takes: the engine's listeners,
    /// the SYN-ACK and SYN-cookie keys the XDP program needs to answer SYNs as the engines would
    /// (none in `never` mode), at `now`; one worker per receive queue, worker `i` on core `i`,
    /// XDP and bind modes `auto`, no capture. Change what you like before starting.
    pub fn for_engine(iface: &str, engine: &Config, now: Instant) -> ServerConfig {
        ServerConfig {
            iface: iface.to_string(),
            listeners: engine.listeners.iter().map(|l| (l.addr, l.port)).collect(),
            queues: None,
            cores: None,
            xdp_mode: XdpMode::Auto,
            xsk: XskConfig::default(),
            synack: SynAckTemplate::from_engine(engine),
            cookie_keys: (engine.syncookies != SynCookieMode::Never)
                .then(|| engine.cookie_keys(now)),
            capture: None,
            multi_buffer: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Not root / missing capabilities.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// The interface is missing or unreadable.
    #[error(transparent)]
    Interface(#[from] InterfaceError),
    /// More queues asked for than the interface has.
    #[error(
        "--queues {asked} but {iface} has {has} receive queue(s) (see /sys/class/net/{iface}/queues/)"
    )]
    TooManyQueues {
        /// The interface.
        iface: String,
        /// Queues asked for.
        asked: u32,
        /// Queues the interface has.
        has: u32,
    },
    /// No listener given.
    #[error("nothing to serve: give at least one port")]
    NoListeners,
    /// Serving the interface's own addresses, but it has none.
    #[error(
        "{iface} has no IPv4 or IPv6 address to serve: add one (`ip addr add ADDR dev {iface}`) or give --addr"
    )]
    NoAddress {
        /// The interface.
        iface: String,
    },
    /// The interface's addresses could not be read.
    #[error("reading the addresses of {iface}: {source}")]
    Addresses {
        /// The interface.
        iface: String,
        /// What getifaddrs said.
        source: std::io::Error,
    },
    /// The XDP program did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A map update failed.
    #[error(transparent)]
    Map(#[from] MapError),
    /// A socket could not be bound.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The program could not be attached.
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// A worker thread could not be spawned.
    #[error("spawning a worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The pcap capture could not start.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// What the caller of [`Server::start_then`] does once setup is done failed.
    #[error(transparent)]
    SetupDone(Box<dyn std::error::Error + Send + Sync>),
}

/// A worker that ended while the server ran: it panicked (a bug, perhaps one that input
/// found), or its loop returned, which it does only when told to stop.
#[derive(Debug, thiserror::Error)]
#[error("the worker of queue {queue} died: {message}")]
pub struct WorkerDied {
    /// Its queue.
    pub queue: u32,
    /// The panic's message, or what else ended it.
    pub message: String,
}

/// Everything the workers reported last, added up.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Handler (engine) counters of all workers.
    pub stats: Stats,
    /// Socket counters of all workers.
    pub socket: SocketCounters,
    /// Frame accounting of all workers.
    pub frames: FrameAccount,
    /// Per-worker frame accounting, all balanced?
    pub frames_balanced: bool,
    /// Application counters of all workers, added up by name.
    pub app: Vec<(&'static str, u64)>,
    /// Frames each worker received, by queue (how RSS, or veth's TX queue choice, spread them).
    pub rx_per_queue: Vec<u64>,
    /// What the workers' connections cost in memory, as last measured (about once a second).
    pub memory: Memory,
    /// The same at the moment the workers held the most connections so far.
    pub memory_peak: Memory,
    /// The pcap taps' counters, added up.
    pub capture: TapCounters,
}

/// What a stopped server leaves behind.
#[derive(Debug)]
pub struct Final {
    /// The workers' last snapshots, added up.
    pub totals: Totals,
    /// The XDP program's counters.
    pub xdp: XdpCounters,
    /// Every latency the workers reported.
    pub latencies: Latencies,
    /// What the pcap capture wrote (with `--pcap`), or why it failed.
    pub capture: Option<std::io::Result<CaptureTotals>>,
}

/// A running data path. Dropping it stops the workers and detaches the program.
pub struct Server {
    interface: Interface,
    program: Program,
    /// Ports served on the interface's own addresses, and the addresses served for them now.
    tracked_ports: Vec<u16>,
    tracked_addrs: Vec<IpAddr>,
    cookie_keys: Option<KeySchedule>,
    attachment: Option<Attachment>,
    zero_copy: bool,
    multi_buffer: bool,
    controls: Vec<Sender<Control>>,
    snapshots: Snapshots,
    /// Each worker's queue and thread.
    threads: Vec<(u32, JoinHandle<()>)>,
    latest: Vec<Option<Snapshot>>,
    latencies: Latencies,
    /// Each worker's latest memory figures.
    memory: Vec<Memory>,
    memory_peak: Memory,
    listeners: Vec<(Option<IpAddr>, u16)>,
    capture: Option<Capture>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("interface", &self.interface)
            .field("attachment", &self.attachment)
            .field("workers", &self.threads.len())
            .finish()
    }
}

impl Server {
    /// Starts the data path; `make_handler(queue)` builds each worker's handler on its own
    /// thread (so the handler need not be `Send`).
    pub fn start<H, F>(config: ServerConfig, make_handler: F) -> Result<Server, StartError>
    where
        H: Handler,
        F: Fn(u32) -> H + Send + Sync + 'static,
    {
        Server::start_then(config, make_handler, || {
            Ok::<(), std::convert::Infallible>(())
        })
    }

    /// As [`Server::start`], calling `setup_done` once everything that needs privileges is
    /// done (the program loaded, its maps filled and mapped, the sockets bound and mapped, the
    /// pcap file created, the program attached) and before the first thread is started: the
    /// place to drop privileges ([`crate::xdp::privileges`]), which Linux keeps per thread, so
    /// that every worker starts without them. An error from it stops the start, the interface
    /// left as it was.
    pub fn start_then<H, F, E>(
        config: ServerConfig,
        make_handler: F,
        setup_done: impl FnOnce() -> Result<(), E>,
    ) -> Result<Server, StartError>
    where
        H: Handler,
        F: Fn(u32) -> H + Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        sys::check_privileges()?;
        if config.listeners.is_empty() {
            return Err(StartError::NoListeners);
        }
        let interface = Interface::lookup(&config.iface)?;
        let queues = config.queues.unwrap_or(interface.rx_queues);
        if queues == 0 || queues > interface.rx_queues {
            return Err(StartError::TooManyQueues {
                iface: interface.name.clone(),
                asked: queues,
                has: interface.rx_queues,
            });
        }
        let (program, sockets, tracked_ports, tracked_addrs, mut cookie_keys) =
            load_and_bind(&config, &interface, queues)?;
        let zero_copy = sockets.iter().all(XskSocket::zero_copy);
        let multi_buffer = program.multi_buffer();
        // Before attaching: a bad path leaves the interface untouched.
        let pcap = config.capture.as_ref().map(PcapFile::create).transpose()?;
        // The keys of the epoch the program starts in (loading may have taken epochs).
        if let Some(keys) = &mut cookie_keys {
            keys.install(sys::monotonic_now(), program.cookie_keys());
        }
        let attachment = program.attach(interface.ifindex, config.xdp_mode)?;
        tracing::info!(
            iface = %interface.name,
            ifindex = interface.ifindex,
            mode = ?attachment.mode(),
            "XDP program attached through a bpf_link"
        );
        setup_done().map_err(|e| StartError::SetupDone(e.into()))?;
        // Threads from here on: they start with the privileges the process has now.
        let capture = match (pcap, &config.capture) {
            (Some(file), Some(c)) => {
                let capture = file.start(sys::monotonic_now())?;
                tracing::info!(path = %c.path.display(), limit = ?c.limit, "pcap capture started");
                Some(capture)
            }
            _ => None,
        };

        let mut snapshots = Snapshots::default();
        let make_handler = Arc::new(make_handler);
        let all_cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut controls = Vec::new();
        let mut threads = Vec::new();
        for (i, socket) in sockets.into_iter().enumerate() {
            let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
            let core = match &config.cores {
                Some(list) if !list.is_empty() => Some(list[i % list.len()]),
                _ => all_cores.get(i % all_cores.len().max(1)).map(|c| c.id),
            };
            let worker = WorkerStart {
                name: format!("xdptcp-q{i}"),
                core,
                flag: cookie_keys
                    .as_ref()
                    .and_then(|_| program.queue_flag(socket.queue())),
                tap: capture.as_ref().map(Capture::tap),
                socket,
                control: ctl_rx,
                snapshots: snapshots.add(),
            };
            threads.push((i as u32, worker.spawn(Arc::clone(&make_handler))?));
            controls.push(ctl_tx);
        }
        Ok(Server {
            interface,
            program,
            tracked_ports,
            tracked_addrs,
            cookie_keys,
            attachment: Some(attachment),
            zero_copy,
            multi_buffer,
            latest: vec![None; threads.len()],
            latencies: Latencies::default(),
            memory: vec![Memory::default(); threads.len()],
            memory_peak: Memory::default(),
            listeners: config.listeners,
            capture,
            controls,
            snapshots,
            threads,
        })
    }

    /// The interface served.
    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The interface's own addresses served now (for ports given without an address).
    pub fn own_addresses(&self) -> &[IpAddr] {
        &self.tracked_addrs
    }

    /// Re-reads the interface's addresses and serves the ports given without an address on
    /// exactly those: new addresses are added to the XDP program's map, gone ones removed (a
    /// segment for a removed address goes to the kernel from then on). Returns the addresses
    /// added and removed. Call it now and then (the control loop does, every second).
    pub fn refresh_addresses(&mut self) -> Result<(Vec<IpAddr>, Vec<IpAddr>), StartError> {
        if self.tracked_ports.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let now = own_addresses(&self.interface.name)?;
        let added: Vec<IpAddr> = now
            .iter()
            .filter(|a| !self.tracked_addrs.contains(a))
            .copied()
            .collect();
        let removed: Vec<IpAddr> = self
            .tracked_addrs
            .iter()
            .filter(|a| !now.contains(a))
            .copied()
            .collect();
        serve_each(&mut self.program, &added, &self.tracked_ports)?;
        for port in &self.tracked_ports {
            for a in &removed {
                self.program.unserve(*a, *port)?;
            }
        }
        self.tracked_addrs = now;
        Ok((added, removed))
    }

    /// Keeps the XDP program's cookie keys one rotation epoch ahead of `now`, and takes a
    /// secret replacement its next step ([`crate::xdp::key_schedule`]): the control loop calls
    /// it every 100 ms or less (an epoch is at least a second). Returns the new epoch when one
    /// began.
    pub fn refresh_cookie_keys(&mut self, now: Instant) -> Option<u64> {
        let schedule = self.cookie_keys.as_mut()?;
        let events = schedule.poll(now, self.program.cookie_keys(), self.controls.len());
        if let Some((secret, ack)) = events.tell {
            for c in &self.controls {
                if c.send(Control::ReplaceCookieSecret(secret, ack.clone()))
                    .is_err()
                {
                    // A worker that is gone makes no cookie ACKs to take.
                    ack.done();
                }
            }
        }
        if let Some(epoch) = events.switch_at {
            tracing::info!(
                epoch,
                "every worker has the new SYN-cookie secret; the XDP program makes its cookies under it from this epoch on"
            );
        }
        events.epoch
    }

    /// Replaces the SYN-cookie secret (a secret file that changed): the workers first, then,
    /// once each has it, the XDP program, so that no engine ever sees a cookie of a secret it
    /// does not know (or no longer knows). Starts at the next [`Server::refresh_cookie_keys`].
    pub fn replace_cookie_secret(&mut self, secret: Secret) {
        if let Some(schedule) = &mut self.cookie_keys {
            schedule.replace_secret(secret);
        }
    }

    /// The SYN-cookie key epoch in use (`None` in `never` mode: the program has no keys).
    pub fn cookie_epoch(&self) -> Option<u64> {
        self.cookie_keys.as_ref().map(KeySchedule::epoch)
    }

    /// Makes the XDP program hand every queue's SYNs to its worker even in cookie mode (`on`),
    /// or answer them itself again: for when the driver drops the program's SYN-ACKs
    /// ([`crate::control::xdp_tx`]).
    pub fn set_syns_to_workers(&mut self, on: bool) {
        for queue in 0..self.latest.len() as u32 {
            if let Some(flag) = self.program.queue_flag(queue) {
                flag.set_syns_to_worker(on);
            }
        }
    }

    /// The mode the XDP program runs in.
    pub fn xdp_mode(&self) -> Option<XdpMode> {
        self.attachment.as_ref().map(Attachment::mode)
    }

    /// Whether every socket is bound zero-copy.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Whether packets larger than a UMEM frame are taken ([`ServerConfig::multi_buffer`]).
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.latest.len()
    }

    /// The served endpoints: an address (`None`: any) and a port.
    pub fn listeners(&self) -> &[(Option<IpAddr>, u16)] {
        &self.listeners
    }

    /// Each worker's latest snapshot, in queue order (workers that have not reported yet are
    /// left out).
    pub fn snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        self.latest.iter().flatten()
    }

    /// Each worker's memory figures as last measured (about once a second), by queue.
    pub fn queue_memory(&self) -> &[Memory] {
        &self.memory
    }

    /// The pcap capture, if one runs.
    pub fn capture(&self) -> Option<&Capture> {
        self.capture.as_ref()
    }

    /// Tells every worker `control`.
    pub fn broadcast(&self, control: Control) {
        for c in &self.controls {
            let _ = c.send(control.clone());
        }
    }

    /// Takes in the snapshots that arrived, waiting at most `wait` for the first.
    pub fn collect(&mut self, wait: Duration) {
        if let Ok(s) = self.snapshots.recv_timeout(wait) {
            self.keep(s);
        }
        while let Ok(s) = self.snapshots.try_recv() {
            self.keep(s);
        }
    }

    fn keep(&mut self, mut s: Snapshot) {
        self.latencies.merge(&s.latencies);
        s.latencies.reset();
        if let (Some(m), Some(slot)) = (s.memory, self.memory.get_mut(s.queue as usize)) {
            *slot = m;
            let sum = self.memory_sum();
            if sum.connections >= self.memory_peak.connections {
                self.memory_peak = sum;
            }
        }
        if let Some(slot) = self.latest.get_mut(s.queue as usize) {
            *slot = Some(s);
        }
    }

    fn memory_sum(&self) -> Memory {
        let mut sum = Memory::default();
        for m in &self.memory {
            sum.merge(m);
        }
        sum
    }

    /// The latest snapshots, added up.
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            frames_balanced: true,
            memory: self.memory_sum(),
            memory_peak: self.memory_peak,
            ..Totals::default()
        };
        t.rx_per_queue = self
            .latest
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.socket.rx_frames))
            .collect();
        for s in self.latest.iter().flatten() {
            t.stats.merge(&s.stats);
            t.socket.merge(&s.socket);
            t.frames.total += s.frames.total;
            t.frames.free += s.frames.free;
            t.frames.fill += s.frames.fill;
            t.frames.rx_held += s.frames.rx_held;
            t.frames.tx_pending += s.frames.tx_pending;
            t.frames.tx_in_flight += s.frames.tx_in_flight;
            t.frames_balanced &= s.frames.balanced();
            t.capture.queued += s.capture.queued;
            t.capture.dropped += s.capture.dropped;
            for (name, v) in &s.app {
                match t.app.iter_mut().find(|(n, _)| n == name) {
                    Some((_, total)) => *total += v,
                    None => t.app.push((name, *v)),
                }
            }
        }
        t
    }

    /// Every latency the workers reported so far.
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    /// The XDP program's counters.
    pub fn xdp_counters(&self) -> Result<XdpCounters, MapError> {
        self.program.counters()
    }

    /// Stops the workers (waiting for their last snapshots), detaches the program and returns
    /// the final totals, XDP counters and latencies.
    pub fn stop(mut self) -> Final {
        self.shutdown();
        Final {
            totals: self.totals(),
            xdp: self.program.counters().unwrap_or_default(),
            latencies: std::mem::take(&mut self.latencies),
            capture: self.capture.take().map(Capture::finish),
        }
    }

    /// Checks that every worker still runs; call it as often as the snapshots are collected.
    ///
    /// A worker that died took its queue's connections with it, and that queue's segments
    /// now reach the kernel, which resets them, while the process looks healthy; and with its
    /// cookie flag set the XDP program would go on answering SYNs whose ACKs nobody takes.
    /// So its flag is cleared here, and the caller is to stop the server (dropping it
    /// detaches the program) and exit non-zero for a supervisor (systemd's
    /// `Restart=on-failure`) to start a fresh one. The worker is not restarted in place: its
    /// connections are lost either way, a new socket for the queue needs the privileges
    /// dropped after setup, and a bug that input found would be found again.
    pub fn supervise(&mut self) -> Result<(), WorkerDied> {
        let Some(i) = self.threads.iter().position(|(_, t)| t.is_finished()) else {
            return Ok(());
        };
        let (queue, thread) = self.threads.remove(i);
        if let Some(flag) = self.program.queue_flag(queue) {
            flag.set_cookie_mode(false);
        }
        let message = match thread.join() {
            Ok(()) => "its loop ended without being told to stop".to_string(),
            Err(payload) => match (
                payload.downcast_ref::<&str>(),
                payload.downcast_ref::<String>(),
            ) {
                (Some(s), _) => format!("panicked: {s}"),
                (_, Some(s)) => format!("panicked: {s}"),
                _ => "panicked".to_string(),
            },
        };
        Err(WorkerDied { queue, message })
    }

    fn shutdown(&mut self) {
        self.broadcast(Control::Stop);
        for (_, t) in self.threads.drain(..) {
            let _ = t.join();
        }
        while let Ok(s) = self.snapshots.try_recv() {
            self.keep(s);
        }
        self.attachment = None;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The addresses of `iface`, as a start error when they cannot be read.
fn own_addresses(iface: &str) -> Result<Vec<IpAddr>, StartError> {
    sys::interface_addresses(iface).map_err(|source| StartError::Addresses {
        iface: iface.to_string(),
        source,
    })
}

/// Puts the listeners into the program's served map. A listener with no address serves the
/// interface's own addresses, read now (and again by [`Server::refresh_addresses`]): returns
/// those ports and addresses.
fn serve_listeners(
    program: &mut Program,
    interface: &Interface,
    listeners: &[(Option<IpAddr>, u16)],
) -> Result<(Vec<u16>, Vec<IpAddr>), StartError> {
    let mut tracked_ports = Vec::new();
    for (addr, port) in listeners {
        match addr {
            Some(a) => program.serve(Some(*a), *port)?,
            None => tracked_ports.push(*port),
        }
    }
    if tracked_ports.is_empty() {
        return Ok((tracked_ports, Vec::new()));
    }
    let addrs = own_addresses(&interface.name)?;
    if addrs.is_empty() {
        return Err(StartError::NoAddress {
            iface: interface.name.clone(),
        });
    }
    serve_each(program, &addrs, &tracked_ports)?;
    Ok((tracked_ports, addrs))
}

/// The program, loaded and filled, and one socket per queue in its socket map; also the ports
/// served on the interface's own addresses and those addresses.
#[allow(clippy::type_complexity)]
/// The program loaded and attached to nothing yet, the sockets bound, the ports and addresses
/// served, and the cookie-key schedule (installed in the program's table at attach).
type LoadedAndBound = (
    Program,
    Vec<XskSocket>,
    Vec<u16>,
    Vec<IpAddr>,
    Option<KeySchedule>,
);

fn load_and_bind(
    config: &ServerConfig,
    interface: &Interface,
    queues: u32,
) -> Result<LoadedAndBound, StartError> {
    let mut program = Program::load(&ProgramConfig {
        xsk_queues: queues,
        local_mac: interface.mac,
        ifindex: interface.ifindex,
        tx_by_redirect: interface.driver.as_deref() == Some("veth"),
        synack: config.synack,
        fixed_now: None,
        multi_buffer: config.multi_buffer,
    })?;
    let (ports, addrs) = serve_listeners(&mut program, interface, &config.listeners)?;
    let cookie_keys = config.cookie_keys.clone().map(KeySchedule::new);
    let xsk = XskConfig {
        multi_buffer: config.multi_buffer,
        ..config.xsk
    };
    let sockets = bind_sockets(&mut program, interface, queues, xsk)?;
    Ok((program, sockets, ports, addrs, cookie_keys))
}

impl StartError {
    /// Whether the kernel refused multi-buffer ([`ServerConfig::multi_buffer`]) as such: the
    /// frags-aware program (any load error: a single-buffer start then tells whether it was
    /// the flag; Linux before 5.18) or the `XDP_USE_SG` bind (EINVAL before 6.6, xdp-tools
    /// #501; EOPNOTSUPP from a driver without it).
    pub fn multi_buffer_refused(&self) -> bool {
        match self {
            StartError::Load(LoadError::Load(_)) => true,
            StartError::Socket(s) => s.multi_buffer_refused(),
            _ => false,
        }
    }
}

/// Serves every port of `ports` on every address of `addrs`.
fn serve_each(program: &mut Program, addrs: &[IpAddr], ports: &[u16]) -> Result<(), MapError> {
    for a in addrs {
        for port in ports {
            program.serve(Some(*a), *port)?;
        }
    }
    Ok(())
}

/// Binds one AF_XDP socket per queue and puts each into the program's socket map.
fn bind_sockets(
    program: &mut Program,
    interface: &Interface,
    queues: u32,
    xsk: XskConfig,
) -> Result<Vec<XskSocket>, StartError> {
    let mut sockets = Vec::with_capacity(queues as usize);
    for queue in 0..queues {
        let socket = XskSocket::bind(&interface.name, queue, xsk)?;
        if let Err(e) = socket.raise_tx_budget(xsk.ring_size) {
            tracing::debug!(
                queue,
                error = %e,
                "XDP_MAX_TX_SKB_BUDGET refused: copy-mode kicks send 32 descriptors each"
            );
        }
        program.insert_socket(queue, socket.fd())?;
        let mode = if socket.zero_copy() {
            "zero-copy"
        } else {
            "copy"
        };
        tracing::info!(
            queue,
            mode,
            multi_buffer = xsk.multi_buffer,
            "AF_XDP socket bound"
        );
        sockets.push(socket);
    }
    Ok(sockets)
}

/// What one worker thread is started with.
struct WorkerStart {
    name: String,
    /// The core it is pinned to, if any.
    core: Option<usize>,
    /// Its queue's cookie-mode flag, when cookies are answered in XDP.
    flag: Option<QueueFlag>,
    tap: Option<Tap>,
    socket: XskSocket,
    control: Receiver<Control>,
    snapshots: SnapshotSender,
}

impl WorkerStart {
    /// Spawns the thread: it pins itself, builds its handler and runs the worker loop.
    fn spawn<H, F>(self, make_handler: Arc<F>) -> Result<JoinHandle<()>, StartError>
    where
        H: Handler,
        F: Fn(u32) -> H + Send + Sync + 'static,
    {
        let WorkerStart {
            name,
            core,
            flag,
            tap,
            mut socket,
            control,
            snapshots,
        } = self;
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                if let Some(id) = core {
                    core_affinity::set_for_current(core_affinity::CoreId { id });
                }
                let mut handler = make_handler(socket.queue());
                worker::run(
                    &mut socket,
                    &mut handler,
                    tap,
                    flag.as_ref(),
                    &control,
                    &snapshots,
                );
            })
            .map_err(StartError::Spawn)
    }
}
