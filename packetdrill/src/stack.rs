//! The BSD-socket layer over one engine, on a virtual clock, with no threads and no blocking:
//! every call either completes, fails with an errno, or says [`Errno::BLOCK`] (a blocking
//! socket would wait here) and leaves the waiting to [`crate::shim`].
//!
//! Packets cross as bare IP datagrams, as packetdrill's `netdev_send` / `netdev_receive` want
//! them: the stack adds and strips the Ethernet header the engine works with.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::state::State;
use xdptcp::tcp::{
    ConnId, ConnOptions, ConnectError, Engine, FastOpen, FastOpenKey, FourTuple, Keepalive,
    Listener,
};
use xdptcp::time::Instant;
use xdptcp::wire::TcpFrame;
use xdptcp::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use xdptcp::wire::tcp::Flags;

use crate::app::{Event, Read, SocketApp};
use crate::flags::{Options, fastopen};
use crate::ops::{Op, Segment};

/// A file descriptor number as the script's caller sees it.
pub type Fd = i32;

/// An errno value. [`Errno::BLOCK`] is internal: a blocking socket must wait and retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// Not an errno: the call would block on a blocking socket (the caller waits and retries).
    pub const BLOCK: Errno = Errno(-1);
    /// `EAGAIN`: the call would block on a non-blocking socket.
    pub const AGAIN: Errno = Errno(libc::EAGAIN);
    /// `EBADF`: not one of our descriptors.
    pub const BADF: Errno = Errno(libc::EBADF);
    /// `EINVAL`.
    pub const INVAL: Errno = Errno(libc::EINVAL);
    /// `ENOTCONN`.
    pub const NOTCONN: Errno = Errno(libc::ENOTCONN);
    /// `ENOPROTOOPT`: an option this layer does not implement.
    pub const NOPROTOOPT: Errno = Errno(libc::ENOPROTOOPT);
    /// `ENOSYS`: a call this layer does not implement.
    pub const NOSYS: Errno = Errno(libc::ENOSYS);
}

/// The result of a socket call.
pub type SysResult<T> = Result<T, Errno>;

/// The peer's Ethernet address (packetdrill's side of the virtual link).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xd1, 0x02];
/// The engine's Ethernet address.
pub const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xd1, 0x01];
/// The first ephemeral port an unbound `connect()` gets (Linux's default range starts here).
const FIRST_EPHEMERAL_PORT: u16 = 32768;

/// Where descriptor numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdSource {
    /// Real descriptors (`eventfd`), as packetdrill needs: at exit it `close()`s every
    /// descriptor a script left open with the real system call.
    Eventfd,
    /// Plain numbers from 3 up, no system call (tests and fuzzing).
    Counter,
}

/// Socket options the layer keeps.
#[derive(Debug, Clone, Copy, Default)]
struct SockOpts {
    reuse_addr: bool,
    keepalive: bool,
    keep_idle: Option<u32>,
    keep_intvl: Option<u32>,
    keep_cnt: Option<u32>,
    nodelay: bool,
    /// `TCP_CORK`.
    cork: bool,
    /// `SO_LINGER`: `Some(0)` makes `close()` an abort.
    linger: Option<u32>,
    /// `SO_SNDBUF` as stored (Linux doubles the value it is given).
    sndbuf: Option<usize>,
    rcvbuf: Option<usize>,
    v6only: bool,
    /// `TCP_FASTOPEN`: the listener's Fast Open queue.
    fastopen_queue: Option<u32>,
    /// `TCP_FASTOPEN_KEY`.
    fastopen_key: Option<FastOpenKey>,
    /// `TCP_USER_TIMEOUT`, milliseconds (0: off).
    user_timeout: u32,
    /// `TCP_MAXSEG` (Linux's `user_mss`; 0: none).
    max_segment: u16,
    /// `TCP_NOTSENT_LOWAT` (0: none, as Linux's `tp->notsent_lowat` 0 defers to the sysctl,
    /// whose default is no mark).
    notsent_lowat: u32,
    /// `TCP_INQ`: `recvmsg` reports the bytes left to read (`TCP_CM_INQ`).
    inq: bool,
}

impl SockOpts {
    /// The engine's per-connection options these stand for. `SO_RCVBUF` gives a receive
    /// buffer (the most the window offers) of the value given: Linux doubles it for its
    /// `sk_buff` overhead and offers about half of that (`tcp_adv_win_scale` 1). `SO_SNDBUF`
    /// gives a send buffer of the doubled value in payload bytes (the shim's rule since it
    /// first took the option: Linux counts the doubled value in `sk_buff` memory).
    fn conn_options(&self) -> ConnOptions {
        let u32_of = |b: usize| u32::try_from(b).unwrap_or(u32::MAX);
        ConnOptions {
            max_segment: (self.max_segment > 0).then_some(self.max_segment),
            recv_buffer: self.rcvbuf.map(|b| u32_of(b / 2)),
            send_buffer: self.sndbuf.map(u32_of),
            user_timeout: (self.user_timeout > 0)
                .then(|| Duration::from_millis(self.user_timeout.into())),
            notsent_lowat: (self.notsent_lowat > 0).then_some(self.notsent_lowat),
        }
    }

    /// The keepalive these options ask for, Linux's defaults filling what is not set.
    fn keepalive_settings(&self) -> Option<Keepalive> {
        let d = Keepalive::default();
        self.keepalive.then(|| Keepalive {
            idle: self
                .keep_idle
                .map_or(d.idle, |s| Duration::from_secs(s.into())),
            interval: self
                .keep_intvl
                .map_or(d.interval, |s| Duration::from_secs(s.into())),
            count: self.keep_cnt.unwrap_or(d.count),
        })
    }
}

/// A connection waiting in a listener's accept queue, or owned by a socket.
#[derive(Debug, Clone, Copy)]
struct Conn {
    id: ConnId,
    tuple: FourTuple,
    /// The peer's FIN arrived (and all data before it).
    peer_fin: bool,
    /// The engine is done with it, and why.
    closed: Option<CloseReason>,
    /// The error of an abnormal close has been returned once.
    error_reported: bool,
    /// What the peer sent and the script had not read when the peer reset the connection
    /// (a key of [`Stack::residues`]): still readable, as in Linux.
    residue: Option<u32>,
}

impl Conn {
    fn new(id: ConnId, tuple: FourTuple) -> Conn {
        Conn {
            id,
            tuple,
            peer_fin: false,
            closed: None,
            error_reported: false,
            residue: None,
        }
    }

    /// The connection is alive in the engine.
    fn alive(&self) -> bool {
        self.closed.is_none()
    }
}

#[derive(Debug)]
enum SockState {
    Fresh,
    Listening {
        key: (Option<IpAddr>, u16),
        queue: VecDeque<Conn>,
    },
    Connecting {
        id: ConnId,
        tuple: FourTuple,
        refused: bool,
    },
    Connected(Conn),
    /// `connect()` failed; the error waits in `Socket::error`.
    Failed,
}

#[derive(Debug)]
struct Socket {
    v6: bool,
    nonblocking: bool,
    bound: Option<SocketAddr>,
    state: SockState,
    opts: SockOpts,
    /// `SO_ERROR`.
    error: Option<Errno>,
    shut_rd: bool,
    shut_wr: bool,
    /// Wakeups, for `EPOLLET`: bumped when data arrives or the readiness mask changes (as
    /// Linux wakes a socket's waiters; an edge-triggered wait then reports the whole mask).
    wakeups: u32,
    last_mask: u32,
    last_received: usize,
    /// `listen()`'s backlog.
    backlog: u32,
    /// `bind()` gave the address (Linux's `SOCK_BINDPORT_LOCK`: it survives a disconnect).
    bind_locked: bool,
}

impl Socket {
    /// A blocking socket in `state`, no error, not shut down, never woken.
    fn new(v6: bool, bound: Option<SocketAddr>, state: SockState, opts: SockOpts) -> Socket {
        Socket {
            v6,
            nonblocking: false,
            bound,
            state,
            opts,
            error: None,
            shut_rd: false,
            shut_wr: false,
            wakeups: 0,
            last_mask: 0,
            last_received: 0,
            backlog: 0,
            bind_locked: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Interest {
    events: u32,
    data: u64,
    /// The socket's wakeup count when this interest last reported (`EPOLLET`).
    seen: u32,
}

#[derive(Debug, Default)]
struct Epoll {
    interest: BTreeMap<Fd, Interest>,
}

#[derive(Debug)]
enum File {
    Socket(Box<Socket>),
    Epoll(Epoll),
}

/// `shutdown()`'s directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `SHUT_RD`.
    Read,
    /// `SHUT_WR`.
    Write,
    /// `SHUT_RDWR`.
    Both,
}

/// `epoll_ctl()`'s operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpollOp {
    /// `EPOLL_CTL_ADD`.
    Add,
    /// `EPOLL_CTL_MOD`.
    Modify,
    /// `EPOLL_CTL_DEL`.
    Delete,
}

/// What a recording stack has written so far ([`Stack::start_recording`]).
#[derive(Debug, Default)]
struct Recorder {
    out: Vec<u8>,
    /// Descriptors by creation index, as [`Op`]s name sockets.
    socks: Vec<Fd>,
    last: Option<Instant>,
}

/// The engine, its sockets and the virtual clock.
pub struct Stack {
    engine: Engine<SocketApp>,
    now: Instant,
    tx: Vec<Vec<u8>>,
    outbound: VecDeque<(Vec<u8>, Instant)>,
    files: BTreeMap<Fd, File>,
    /// The socket each connection in the engine belongs to (connecting, connected, or queued
    /// at a listener).
    owners: HashMap<ConnId, Fd>,
    next_port: u16,
    next_fd: Fd,
    fds: FdSource,
    local_v4: Ipv4Addr,
    local_v6: Ipv6Addr,
    /// Something changed that a waiting call may care about.
    dirty: bool,
    record: Option<Recorder>,
    /// Open epoll instances.
    epolls: usize,
    /// `net.ipv4.tcp_fastopen` and `net.ipv4.tcp_fastopen_key`.
    fastopen: (u32, Option<FastOpenKey>),
    /// Unread bytes of connections the peer reset ([`Conn::residue`]), and the next key.
    residues: HashMap<u32, VecDeque<u8>>,
    next_residue: u32,
    /// While a RST is being handed to the engine: its connection and the unread bytes it
    /// held, kept if the RST closes it.
    resetting: Option<(ConnId, Vec<u8>)>,
}

/// An IPv4-mapped IPv6 address is the IPv4 address for the engine.
fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

/// An engine address as an IPv6 socket shows it (IPv4 as IPv4-mapped).
fn as_family(a: SocketAddr, v6: bool) -> SocketAddr {
    match (a, v6) {
        (SocketAddr::V4(v4), true) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), a.port())
        }
        _ => a,
    }
}

fn is_unspecified(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_unspecified(),
    }
}

impl Stack {
    /// A stack with no sockets, its clock at `now`.
    pub fn new(opts: &Options, fds: FdSource, now: Instant) -> Stack {
        let engine = Engine::new(Self::engine_config(opts), SocketApp::default(), now);
        Self::with_engine(engine, opts, fds, now)
    }

    /// A fresh stack, as [`Stack::new`] would make it, on this one's recycled engine
    /// ([`Engine::recycle`]: a new engine's histograms are the costly part): for fuzzing.
    /// Descriptors still open are released first.
    pub fn recycle(mut self, opts: &Options, now: Instant) -> Stack {
        self.release_all();
        let Stack { engine, fds, .. } = self;
        let mut engine = engine.recycle(Self::engine_config(opts), now);
        *engine.app_mut() = SocketApp::default();
        Self::with_engine(engine, opts, fds, now)
    }

    fn engine_config(opts: &Options) -> xdptcp::tcp::Config {
        let mut cfg = opts.engine.clone();
        cfg.local_mac = LOCAL_MAC;
        // Like a kernel, the shim owns every port of its address: a segment for a port nobody
        // listens on gets a RST.
        cfg.reset_unserved = true;
        // A socket starts with Nagle's algorithm on, TCP_NODELAY off.
        cfg.nodelay = false;
        cfg
    }

    fn with_engine(
        engine: Engine<SocketApp>,
        opts: &Options,
        fds: FdSource,
        now: Instant,
    ) -> Stack {
        Stack {
            engine,
            now,
            tx: Vec::new(),
            outbound: VecDeque::new(),
            files: BTreeMap::new(),
            owners: HashMap::new(),
            next_port: FIRST_EPHEMERAL_PORT,
            next_fd: 3,
            fds,
            local_v4: opts.local_v4,
            local_v6: opts.local_v6,
            dirty: false,
            record: None,
            epolls: 0,
            fastopen: (opts.fastopen, opts.fastopen_key),
            residues: HashMap::new(),
            next_residue: 0,
            resetting: None,
        }
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The engine under the sockets.
    pub fn engine(&self) -> &Engine<SocketApp> {
        &self.engine
    }

    /// Whether anything changed since the last call (and clears it).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Records every call and packet from now on as [`Op`]s (seeds for the fuzzer).
    pub fn start_recording(&mut self) {
        self.record = Some(Recorder::default());
    }

    /// What was recorded, as the bytes [`Op::decode_all`] reads.
    pub fn take_recording(&mut self) -> Option<Vec<u8>> {
        self.record.take().map(|r| r.out)
    }

    /// Records `op` built from the creation index of `fd` (nothing if not recording or `fd`
    /// is not a socket seen being created); a clock that moved since is recorded first.
    fn note(&mut self, fd: Option<Fd>, op: impl FnOnce(u8) -> Op) {
        let now = self.now;
        let Some(r) = self.record.as_mut() else {
            return;
        };
        let index = match fd {
            None => 0,
            Some(fd) => match r.socks.iter().rposition(|f| *f == fd) {
                Some(i) => u8::try_from(i).unwrap_or(u8::MAX),
                None => return,
            },
        };
        if let Some(last) = r.last {
            let micros = (now - last).as_micros();
            if micros > 0 {
                Op::Advance {
                    micros: micros.min(u128::from(u32::MAX)) as u32,
                }
                .encode(&mut r.out);
            }
        }
        r.last = Some(now);
        op(index).encode(&mut r.out);
    }

    /// A socket created (by `socket()` or `accept()`), for the recording's indices.
    fn note_created(&mut self, fd: Fd) {
        if let Some(r) = self.record.as_mut() {
            r.socks.push(fd);
        }
    }

    /// Whether `fd` is an IPv6 socket.
    pub fn is_v6(&self, fd: Fd) -> bool {
        self.socket(fd).is_ok_and(|s| s.v6)
    }

    /// When the engine next has timer work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.engine.next_deadline()
    }

    /// Moves the clock to `t` (never back) and runs the timers due then. Callers that want
    /// each timer to fire at its own time step through [`Stack::next_deadline`].
    pub fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
        }
        if self.engine.next_deadline().is_some_and(|d| d <= self.now) {
            self.engine.poll_timers(self.now, &mut self.tx);
            self.settle();
        }
    }

    /// Runs the clock to `target`, every timer firing at its own instant on the way.
    pub fn run_until(&mut self, target: Instant) {
        while let Some(t) = self.next_deadline().filter(|t| *t <= target) {
            let before = self.now;
            self.advance_to(t);
            if self.now == before && self.next_deadline().is_some_and(|d| d <= before) {
                break;
            }
        }
        self.advance_to(target);
    }

    // -----------------------------------------------------------------------------------------
    // The link.

    /// A packet from the peer: a bare IPv4 or IPv6 datagram, checksums filled.
    pub fn netdev_send(&mut self, ip: &[u8]) -> SysResult<()> {
        if self.record.is_some() {
            if let Some(seg) = Segment::from_ip(ip) {
                self.note(None, |_| Op::Packet(Box::new(seg)));
            }
        }
        let ethertype = match ip.first().map(|b| b >> 4) {
            Some(4) => ETHERTYPE_IPV4,
            Some(6) => ETHERTYPE_IPV6,
            _ => return Err(Errno::INVAL),
        };
        let mut frame = vec![0u8; ethernet::HEADER_LEN + ip.len()];
        ethernet::Repr {
            dst: LOCAL_MAC,
            src: PEER_MAC,
            vlan: None,
            ethertype,
        }
        .emit(&mut frame[..ethernet::HEADER_LEN]);
        frame[ethernet::HEADER_LEN..].copy_from_slice(ip);
        self.note_reset(&frame);
        self.engine.receive(self.now, &frame, &mut self.tx);
        self.settle();
        self.resetting = None;
        Ok(())
    }

    /// A RST for a connecting socket means the open was refused (the engine drops the
    /// connection without telling the app, so the socket learns why here). A RST for a
    /// connection holding unread bytes: they are copied out first, to stay readable if it
    /// closes the connection (the engine drops them with it; Linux keeps them for `read()`).
    fn note_reset(&mut self, frame: &[u8]) {
        let Ok(f) = TcpFrame::parse(frame) else {
            return;
        };
        if !f.tcp.flags.contains(Flags::RST) {
            return;
        }
        let tuple = FourTuple {
            local_addr: f.ip.dst(),
            remote_addr: f.ip.src(),
            local_port: f.tcp.dst_port,
            remote_port: f.tcp.src_port,
        };
        if let Some(id) = self.engine.find(&tuple) {
            if self.engine.buffers(id).is_some_and(|b| b.received > 0) {
                let unread = self.read_engine(id, usize::MAX, true);
                self.resetting = Some((id, unread));
            }
        }
        for file in self.files.values_mut() {
            if let File::Socket(s) = file {
                if let SockState::Connecting { tuple, refused, .. } = &mut s.state {
                    if tuple.remote_addr == f.ip.src()
                        && tuple.local_addr == f.ip.dst()
                        && tuple.remote_port == f.tcp.src_port
                        && tuple.local_port == f.tcp.dst_port
                    {
                        *refused = true;
                    }
                }
            }
        }
    }

    /// The next packet the engine sent, as a bare IP datagram, with the time it was sent.
    pub fn netdev_receive(&mut self) -> Option<(Vec<u8>, Instant)> {
        self.outbound.pop_front()
    }

    /// After any engine call: apply the app's events to the sockets, notice failed opens,
    /// queue what was sent.
    fn settle(&mut self) {
        self.dirty = true;
        loop {
            let events = std::mem::take(&mut self.engine.app_mut().events);
            if events.is_empty() {
                break;
            }
            for e in events {
                self.apply(e);
            }
        }
        self.check_connecting();
        for frame in self.tx.drain(..) {
            let ip = frame
                .get(ethernet::HEADER_LEN..)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            self.outbound.push_back((ip, self.now));
        }
        self.note_edges();
    }

    fn socket_mut(&mut self, fd: Fd) -> Option<&mut Socket> {
        match self.files.get_mut(&fd) {
            Some(File::Socket(s)) => Some(s),
            _ => None,
        }
    }

    fn apply(&mut self, e: Event) {
        match e {
            Event::Connected(id, tuple) => {
                if let Some(&fd) = self.owners.get(&id) {
                    if let Some(s) = self.socket_mut(fd) {
                        if let SockState::Connecting { .. } = s.state {
                            s.state = SockState::Connected(Conn::new(id, tuple));
                        }
                    }
                    return;
                }
                // A passive open: queue it at its listener, or refuse it if there is none.
                let listener = self.files.iter_mut().find_map(|(fd, f)| match f {
                    File::Socket(s) => match &mut s.state {
                        SockState::Listening { key, queue }
                            if key.1 == tuple.local_port
                                && key.0.is_none_or(|a| a == tuple.local_addr) =>
                        {
                            queue.push_back(Conn::new(id, tuple));
                            Some(*fd)
                        }
                        _ => None,
                    },
                    _ => None,
                });
                match listener {
                    Some(fd) => {
                        self.owners.insert(id, fd);
                    }
                    None => self.abort(id),
                }
            }
            Event::PeerClosed(id) => self.with_conn(id, |c| c.peer_fin = true),
            Event::Closed(id, reason) => {
                let residue = match self.resetting.take() {
                    Some((rid, unread)) if rid == id && reason == CloseReason::Reset => {
                        let key = self.next_residue;
                        self.next_residue = self.next_residue.wrapping_add(1);
                        self.residues.insert(key, unread.into());
                        Some(key)
                    }
                    other => {
                        self.resetting = other;
                        None
                    }
                };
                self.with_conn(id, |c| {
                    c.closed = Some(reason);
                    c.residue = residue;
                });
                self.owners.remove(&id);
            }
        }
    }

    /// Runs `f` on the socket-side record of connection `id`, wherever it is.
    fn with_conn(&mut self, id: ConnId, f: impl FnOnce(&mut Conn)) {
        let Some(&fd) = self.owners.get(&id) else {
            return;
        };
        let Some(s) = self.socket_mut(fd) else {
            return;
        };
        match &mut s.state {
            SockState::Connected(c) if c.id == id => f(c),
            SockState::Listening { queue, .. } => {
                if let Some(c) = queue.iter_mut().find(|c| c.id == id) {
                    f(c);
                }
            }
            _ => {}
        }
    }

    /// A connecting socket whose connection left the engine failed to open.
    fn check_connecting(&mut self) {
        let engine = &self.engine;
        let owners = &mut self.owners;
        for s in self.files.values_mut() {
            let File::Socket(s) = s else { continue };
            if let SockState::Connecting { id, tuple, refused } = s.state {
                if engine.find(&tuple) != Some(id) {
                    owners.remove(&id);
                    s.error = Some(Errno(if refused {
                        libc::ECONNREFUSED
                    } else {
                        libc::ETIMEDOUT
                    }));
                    s.state = SockState::Failed;
                }
            }
        }
    }

    /// Counts the wakeups `EPOLLET` reports (only while some epoll instance exists: the
    /// count costs a readiness check of every socket on every engine call).
    fn note_edges(&mut self) {
        if self.epolls == 0 {
            return;
        }
        let fds: Vec<Fd> = self.files.keys().copied().collect();
        for fd in fds {
            let mask = self.poll_mask(fd);
            let received = self.received(fd);
            let Some(s) = self.socket_mut(fd) else {
                continue;
            };
            if mask != s.last_mask || received > s.last_received {
                s.wakeups = s.wakeups.wrapping_add(1);
            }
            s.last_mask = mask;
            s.last_received = received;
        }
    }

    fn received(&self, fd: Fd) -> usize {
        match self.files.get(&fd) {
            Some(File::Socket(s)) => match &s.state {
                SockState::Connected(c) if c.alive() => {
                    self.engine.buffers(c.id).map_or(0, |b| b.received)
                }
                SockState::Connected(c) => c
                    .residue
                    .and_then(|r| self.residues.get(&r))
                    .map_or(0, VecDeque::len),
                SockState::Listening { queue, .. } => queue.len(),
                _ => 0,
            },
            _ => 0,
        }
    }

    fn abort(&mut self, id: ConnId) {
        self.engine
            .with_io(self.now, id, &mut self.tx, |_, _, io| io.abort());
    }

    // -----------------------------------------------------------------------------------------
    // Descriptors.

    fn new_fd(&mut self) -> SysResult<Fd> {
        match self.fds {
            FdSource::Counter => {
                let fd = self.next_fd;
                self.next_fd += 1;
                Ok(fd)
            }
            FdSource::Eventfd => {
                // Safety: eventfd takes no pointers; the descriptor it returns is ours.
                let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
                if fd < 0 {
                    return Err(Errno(
                        std::io::Error::last_os_error()
                            .raw_os_error()
                            .unwrap_or(libc::EMFILE),
                    ));
                }
                Ok(fd)
            }
        }
    }

    fn release_fd(&self, fd: Fd) {
        if self.fds == FdSource::Eventfd {
            // Safety: `fd` is an eventfd this stack created and still owned (it was in
            // `files` until now), so closing it closes nothing else.
            unsafe { libc::close(fd) };
        }
    }

    /// Closes every descriptor still open, without any TCP action (tests and fuzzing; under
    /// packetdrill the script's descriptors are closed by packetdrill itself).
    pub fn release_all(&mut self) {
        let fds: Vec<Fd> = self.files.keys().copied().collect();
        for fd in fds {
            self.files.remove(&fd);
            self.release_fd(fd);
        }
        self.epolls = 0;
    }

    fn socket(&self, fd: Fd) -> SysResult<&Socket> {
        match self.files.get(&fd) {
            Some(File::Socket(s)) => Ok(s),
            Some(File::Epoll(_)) => Err(Errno(libc::ENOTSOCK)),
            None => Err(Errno::BADF),
        }
    }

    fn sock(&mut self, fd: Fd) -> SysResult<&mut Socket> {
        match self.files.get_mut(&fd) {
            Some(File::Socket(s)) => Ok(s),
            Some(File::Epoll(_)) => Err(Errno(libc::ENOTSOCK)),
            None => Err(Errno::BADF),
        }
    }

    /// Would-block for this socket: `EAGAIN` if non-blocking, else wait.
    fn would_block(&self, fd: Fd) -> Errno {
        match self.socket(fd) {
            Ok(s) if s.nonblocking => Errno::AGAIN,
            Ok(_) => Errno::BLOCK,
            Err(e) => e,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Socket calls.

    /// `socket(domain, type, protocol)`: TCP stream sockets only.
    pub fn socket_call(&mut self, domain: i32, ty: i32, protocol: i32) -> SysResult<Fd> {
        self.note(None, |_| Op::Socket {
            v6: domain == libc::AF_INET6,
            nonblocking: ty & libc::SOCK_NONBLOCK != 0,
        });
        let v6 = match domain {
            libc::AF_INET => false,
            libc::AF_INET6 => true,
            _ => return Err(Errno(libc::EAFNOSUPPORT)),
        };
        let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
        if base != libc::SOCK_STREAM {
            return Err(Errno(libc::EPROTONOSUPPORT));
        }
        if protocol != 0 && protocol != libc::IPPROTO_TCP {
            return Err(Errno(libc::EPROTONOSUPPORT));
        }
        let fd = self.new_fd()?;
        let s = Socket {
            nonblocking: ty & libc::SOCK_NONBLOCK != 0,
            ..Socket::new(v6, None, SockState::Fresh, SockOpts::default())
        };
        self.files.insert(fd, File::Socket(Box::new(s)));
        self.note_created(fd);
        Ok(fd)
    }

    /// `bind(fd, addr)`.
    pub fn bind(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Bind {
            sock,
            port: addr.port(),
        });
        let reuse = self.socket(fd)?.opts.reuse_addr;
        // A listener holds its port; a bound socket too, unless both ask for SO_REUSEADDR.
        let in_use = addr.port() != 0
            && self.files.iter().any(|(other, f)| {
                let File::Socket(s) = f else { return false };
                let same_port = s.bound.is_some_and(|b| b.port() == addr.port());
                *other != fd
                    && same_port
                    && match s.state {
                        SockState::Listening { .. } => true,
                        SockState::Fresh => !(reuse && s.opts.reuse_addr),
                        _ => false,
                    }
            });
        let s = self.sock(fd)?;
        if s.bound.is_some() || !matches!(s.state, SockState::Fresh) {
            return Err(Errno::INVAL);
        }
        if addr.is_ipv6() != s.v6 {
            return Err(Errno::INVAL);
        }
        if in_use {
            return Err(Errno(libc::EADDRINUSE));
        }
        s.bound = Some(addr);
        s.bind_locked = true;
        Ok(())
    }

    fn ephemeral_port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p == u16::MAX {
            FIRST_EPHEMERAL_PORT
        } else {
            p + 1
        };
        p
    }

    /// `listen(fd, backlog)`.
    pub fn listen(&mut self, fd: Fd, backlog: i32) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Listen { sock });
        let port = match self.socket(fd)?.bound {
            Some(b) if b.port() != 0 => b.port(),
            _ => self.ephemeral_port(),
        };
        let s = self.sock(fd)?;
        match s.state {
            SockState::Fresh => {}
            SockState::Listening { .. } => return Ok(()),
            _ => return Err(Errno::INVAL),
        }
        let addr = s
            .bound
            .map(unmap)
            .map(|a| a.ip())
            .filter(|ip| !is_unspecified(*ip));
        let bound_v6 = s.bound.map_or(s.v6, |b| b.is_ipv6());
        if s.bound.is_none() {
            let ip = if bound_v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            s.bound = Some(SocketAddr::new(ip, port));
        }
        s.backlog = u32::try_from(backlog).unwrap_or(0);
        s.state = SockState::Listening {
            key: (addr, port),
            queue: VecDeque::new(),
        };
        let listener = self.listener(fd)?;
        self.engine.listen(listener);
        self.dirty = true;
        Ok(())
    }

    /// The engine's listener for listening socket `fd`, with its options.
    fn listener(&self, fd: Fd) -> SysResult<Listener> {
        let s = self.socket(fd)?;
        let SockState::Listening { key, .. } = &s.state else {
            return Err(Errno::INVAL);
        };
        Ok(Listener {
            addr: key.0,
            port: key.1,
            keepalive: s.opts.keepalive_settings(),
            fastopen: self.fastopen_of(s),
            options: s.opts.conn_options(),
        })
    }

    /// Linux's Fast Open for a listener (`tcp_fastopen_queue_check`, `inet_listen`): served if
    /// `net.ipv4.tcp_fastopen` has the server bit and the socket a queue, from
    /// `TCP_FASTOPEN` or, with bit 0x400, its backlog; the socket's key, else the global one.
    fn fastopen_of(&self, s: &Socket) -> Option<FastOpen> {
        let (sysctl, key) = self.fastopen;
        let queue = match s.opts.fastopen_queue {
            Some(q) => q,
            None if sysctl & fastopen::WITHOUT_SOCKOPT != 0 => s.backlog,
            None => 0,
        };
        (sysctl & fastopen::SERVER != 0 && queue > 0).then_some(FastOpen {
            queue,
            cookie_not_required: sysctl & fastopen::COOKIE_NOT_REQUIRED != 0,
            key: s.opts.fastopen_key.or(key),
        })
    }

    /// `accept(fd)`: the new descriptor and the peer's address.
    pub fn accept(&mut self, fd: Fd) -> SysResult<(Fd, SocketAddr)> {
        self.note(Some(fd), |sock| Op::Accept { sock });
        let s = self.sock(fd)?;
        let SockState::Listening { queue, .. } = &mut s.state else {
            return Err(Errno::INVAL);
        };
        let Some(conn) = queue.pop_front() else {
            return Err(self.would_block(fd));
        };
        let (v6, opts) = (s.v6, s.opts);
        let new = self.new_fd()?;
        let peer = as_family(
            SocketAddr::new(conn.tuple.remote_addr, conn.tuple.remote_port),
            v6,
        );
        let local = as_family(
            SocketAddr::new(conn.tuple.local_addr, conn.tuple.local_port),
            v6,
        );
        let socket = Socket::new(v6, Some(local), SockState::Connected(conn), opts);
        self.files.insert(new, File::Socket(Box::new(socket)));
        if conn.alive() {
            self.owners.insert(conn.id, new);
            self.apply_conn_options(conn.id, &opts);
        }
        // The accepted socket inherits the listener's TCP_NODELAY and TCP_CORK, as in Linux.
        if opts.nodelay || opts.cork {
            self.apply_push_options(new);
        }
        self.note_created(new);
        self.dirty = true;
        Ok((new, peer))
    }

    /// `connect(fd, addr)`, first call: sends the SYN. A non-blocking socket gets
    /// `EINPROGRESS`; a blocking one [`Errno::BLOCK`] and then [`Stack::connect_status`].
    pub fn connect(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Connect {
            sock,
            port: addr.port(),
        });
        let s = self.socket(fd)?;
        match s.state {
            SockState::Fresh | SockState::Failed => {}
            SockState::Connecting { .. } => {
                return Err(if s.nonblocking {
                    Errno(libc::EALREADY)
                } else {
                    Errno::BLOCK
                });
            }
            SockState::Connected(_) => return Err(Errno(libc::EISCONN)),
            SockState::Listening { .. } => return Err(Errno::INVAL),
        }
        if addr.is_ipv6() != s.v6 {
            return Err(Errno(libc::EAFNOSUPPORT));
        }
        let remote = unmap(addr);
        let bound = s.bound.map(unmap);
        let local_ip = match bound.map(|b| b.ip()).filter(|ip| !is_unspecified(*ip)) {
            Some(ip) => ip,
            None if remote.is_ipv4() => IpAddr::V4(self.local_v4),
            None => IpAddr::V6(self.local_v6),
        };
        if local_ip.is_ipv4() != remote.is_ipv4() {
            return Err(Errno(libc::EAFNOSUPPORT));
        }
        let port = match bound {
            Some(b) if b.port() != 0 => b.port(),
            _ => self.ephemeral_port(),
        };
        let local = SocketAddr::new(local_ip, port);
        let options = self.socket(fd)?.opts.conn_options();
        let id = self
            .engine
            .connect_with(self.now, local, remote, PEER_MAC, &options, &mut self.tx)
            .map_err(|e| match e {
                ConnectError::MixedFamilies => Errno(libc::EAFNOSUPPORT),
                ConnectError::InUse => Errno(libc::EADDRNOTAVAIL),
                ConnectError::TableFull | ConnectError::TxFull | ConnectError::NoMemory => {
                    Errno(libc::ENOBUFS)
                }
            })?;
        let tuple = FourTuple {
            local_addr: local_ip,
            remote_addr: remote.ip(),
            local_port: port,
            remote_port: remote.port(),
        };
        self.owners.insert(id, fd);
        let s = self.sock(fd)?;
        s.bound = Some(as_family(local, s.v6));
        s.error = None;
        s.state = SockState::Connecting {
            id,
            tuple,
            refused: false,
        };
        let (nonblocking, push_opts) = (s.nonblocking, s.opts.nodelay || s.opts.cork);
        if push_opts {
            self.apply_push_options(fd);
        }
        self.settle();
        match self.connect_status(fd) {
            Err(Errno::BLOCK) if nonblocking => Err(Errno(libc::EINPROGRESS)),
            r => r,
        }
    }

    /// Where a blocking `connect()` stands: done, failed (its error), or still waiting.
    pub fn connect_status(&mut self, fd: Fd) -> SysResult<()> {
        let s = self.sock(fd)?;
        match s.state {
            SockState::Connected(_) => Ok(()),
            SockState::Connecting { .. } => Err(Errno::BLOCK),
            SockState::Failed => {
                s.state = SockState::Fresh;
                Err(s.error.take().unwrap_or(Errno(libc::ECONNREFUSED)))
            }
            _ => Err(Errno::NOTCONN),
        }
    }

    /// `recv(fd, max, MSG_PEEK?)`: the bytes read (empty at end of stream).
    pub fn recv(&mut self, fd: Fd, max: usize, peek: bool) -> SysResult<Vec<u8>> {
        self.note(Some(fd), |sock| Op::Recv {
            sock,
            len: max.min(usize::from(u16::MAX)) as u16,
            peek,
        });
        let nonblocking = self.socket(fd)?.nonblocking;
        // What a reset connection left unread comes first.
        let residue = match &self.socket(fd)?.state {
            SockState::Connected(c) => c.residue.and_then(|r| self.residues.get(&r)),
            _ => None,
        };
        if let Some(left) = residue.filter(|r| !r.is_empty()) {
            let out: Vec<u8> = left.iter().take(max).copied().collect();
            if !peek {
                self.unread_taken(fd, out.len());
            }
            return Ok(out);
        }
        let s = self.sock(fd)?;
        let conn = match &mut s.state {
            SockState::Connected(c) => c,
            SockState::Connecting { .. } => {
                return Err(if nonblocking {
                    Errno::AGAIN
                } else {
                    Errno::BLOCK
                });
            }
            SockState::Failed => return Err(s.error.take().unwrap_or(Errno::NOTCONN)),
            _ => return Err(Errno::NOTCONN),
        };
        let shut_rd = s.shut_rd;
        if let Some(reason) = conn.closed {
            return match reason {
                CloseReason::Normal => Ok(Vec::new()),
                _ if conn.error_reported => Ok(Vec::new()),
                r => {
                    conn.error_reported = true;
                    Err(close_errno(r))
                }
            };
        }
        let (id, peer_fin) = (conn.id, conn.peer_fin);
        let buffered = self.engine.buffers(id).map_or(0, |b| b.received);
        if max == 0 {
            return Ok(Vec::new());
        }
        if buffered == 0 {
            // After shutdown(SHUT_RD) an empty receive queue reads as the end of the stream;
            // data already queued (or arriving later) is still returned, as Linux does.
            return if peer_fin || shut_rd {
                Ok(Vec::new())
            } else {
                Err(self.would_block(fd))
            };
        }
        let out = self.read_engine(id, max, peek);
        self.settle();
        Ok(out)
    }

    /// `n` bytes of what a reset connection left unread were read from socket `fd`.
    fn unread_taken(&mut self, fd: Fd, n: usize) {
        let key = match self.socket(fd).map(|s| &s.state) {
            Ok(SockState::Connected(c)) => c.residue,
            _ => None,
        };
        if let Some(left) = key.and_then(|k| self.residues.get_mut(&k)) {
            left.drain(..n.min(left.len()));
        }
    }

    /// Up to `max` bytes connection `id` holds for the app (left there with `peek`).
    fn read_engine(&mut self, id: ConnId, max: usize, peek: bool) -> Vec<u8> {
        self.engine
            .with_io(self.now, id, &mut self.tx, |app, _, _| {
                app.read = Some(Read {
                    max,
                    peek,
                    out: Vec::new(),
                });
            });
        self.engine
            .app_mut()
            .read
            .take()
            .map(|r| r.out)
            .unwrap_or_default()
    }

    /// `send(fd, data)` (with `MSG_MORE` if `more`): how many bytes were queued (at least one,
    /// or an error).
    pub fn send(&mut self, fd: Fd, data: &[u8], more: bool) -> SysResult<usize> {
        self.note(Some(fd), |sock| Op::Send {
            sock,
            len: data.len().min(usize::from(u16::MAX)) as u16,
            more,
        });
        let s = self.socket(fd)?;
        let conn = match &s.state {
            SockState::Connected(c) => *c,
            SockState::Connecting { .. } => return Err(self.would_block(fd)),
            SockState::Failed => {
                let s = self.sock(fd)?;
                return Err(s.error.take().unwrap_or(Errno(libc::EPIPE)));
            }
            _ => return Err(Errno(libc::EPIPE)),
        };
        if let Some(reason) = conn.closed {
            if reason != CloseReason::Normal && !conn.error_reported {
                if let SockState::Connected(c) = &mut self.sock(fd)?.state {
                    c.error_reported = true;
                }
                return Err(close_errno(reason));
            }
            return Err(Errno(libc::EPIPE));
        }
        if s.shut_wr {
            return Err(Errno(libc::EPIPE));
        }
        if data.is_empty() {
            return Ok(0);
        }
        // SO_SNDBUF and TCP_NOTSENT_LOWAT are the engine's (`apply_conn_options`).
        let Some(b) = self.engine.buffers(conn.id) else {
            return Err(Errno(libc::EPIPE));
        };
        let cap = b.send_space;
        if cap == 0 {
            return Err(self.would_block(fd));
        }
        let chunk = &data[..data.len().min(cap)];
        let n = self
            .engine
            .with_io(self.now, conn.id, &mut self.tx, |_, _, io| {
                if more {
                    io.write_more(chunk)
                } else {
                    io.write(chunk)
                }
            })
            .unwrap_or(0);
        self.settle();
        if n == 0 {
            return Err(self.would_block(fd));
        }
        Ok(n)
    }

    /// `close(fd)`.
    pub fn close(&mut self, fd: Fd) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Close { sock });
        let file = self.files.remove(&fd).ok_or(Errno::BADF)?;
        self.release_fd(fd);
        for f in self.files.values_mut() {
            if let File::Epoll(ep) = f {
                ep.interest.remove(&fd);
            }
        }
        let File::Socket(s) = file else {
            self.epolls -= 1;
            return Ok(());
        };
        if let SockState::Connected(c) = s.state {
            if c.alive() {
                self.owners.remove(&c.id);
                // SO_LINGER 0: reset, not FIN. (A close with data unread resets too: the
                // engine's rule, RFC 1122 §4.2.2.13, as Linux.)
                let abort = s.opts.linger == Some(0);
                self.engine
                    .with_io(self.now, c.id, &mut self.tx, |_, _, io| {
                        if abort { io.abort() } else { io.close() }
                    });
            }
        }
        self.drop_state(s.state);
        self.settle();
        Ok(())
    }

    /// `connect(fd, AF_UNSPEC)`: Linux's `tcp_disconnect`. A connection is reset (one that is
    /// only connecting is deleted: RFC 9293 §3.10.4 in SYN-SENT), a listener stops; the socket
    /// keeps the address `bind()` gave it (an accepted or connected one gives its port back)
    /// and may `connect()` again.
    pub fn disconnect(&mut self, fd: Fd) -> SysResult<()> {
        let s = self.sock(fd)?;
        let state = std::mem::replace(&mut s.state, SockState::Fresh);
        if !s.bind_locked {
            s.bound = None;
        }
        s.error = None;
        s.shut_rd = false;
        s.shut_wr = false;
        if let SockState::Connected(c) = state {
            if c.alive() {
                self.owners.remove(&c.id);
                self.abort(c.id);
            }
        }
        self.drop_state(state);
        self.settle();
        Ok(())
    }

    /// What a socket leaving `state` undoes, besides ending its own connection: a listener
    /// stops and resets the connections nobody accepted (as Linux), a connecting socket's
    /// TCB is deleted (RFC 9293 §3.10.4, CLOSE in SYN-SENT: nothing is sent), and unread
    /// bytes of reset connections are forgotten.
    fn drop_state(&mut self, state: SockState) {
        match state {
            SockState::Listening { key, queue } => {
                self.engine.unlisten(key.0, key.1);
                for c in queue {
                    self.owners.remove(&c.id);
                    if c.alive() {
                        self.abort(c.id);
                    }
                    c.residue.map(|r| self.residues.remove(&r));
                }
            }
            SockState::Connecting { id, .. } => {
                self.owners.remove(&id);
                self.engine.delete(id);
            }
            SockState::Connected(c) => {
                c.residue.map(|r| self.residues.remove(&r));
            }
            SockState::Fresh | SockState::Failed => {}
        }
    }

    /// `shutdown(fd, how)`.
    pub fn shutdown(&mut self, fd: Fd, how: How) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Shutdown {
            sock,
            how: match how {
                How::Read => 0,
                How::Write => 1,
                How::Both => 2,
            },
        });
        let s = self.sock(fd)?;
        let SockState::Connected(c) = s.state else {
            return Err(Errno::NOTCONN);
        };
        if matches!(how, How::Read | How::Both) {
            s.shut_rd = true;
        }
        if matches!(how, How::Write | How::Both) {
            s.shut_wr = true;
            if c.alive() {
                self.engine
                    .with_io(self.now, c.id, &mut self.tx, |_, _, io| io.shutdown_write());
            }
        }
        self.settle();
        Ok(())
    }

    /// Non-blocking mode (`fcntl(F_SETFL, O_NONBLOCK)`, `ioctl(FIONBIO)`).
    pub fn set_nonblocking(&mut self, fd: Fd, on: bool) -> SysResult<()> {
        self.sock(fd)?.nonblocking = on;
        Ok(())
    }

    /// `fcntl(F_GETFL)`.
    pub fn get_flags(&self, fd: Fd) -> SysResult<i32> {
        match self.files.get(&fd) {
            Some(File::Socket(s)) => {
                Ok(libc::O_RDWR | if s.nonblocking { libc::O_NONBLOCK } else { 0 })
            }
            Some(File::Epoll(_)) => Ok(libc::O_RDWR),
            None => Err(Errno::BADF),
        }
    }

    /// `ioctl(FIONREAD)` / `SIOCINQ`: unread bytes.
    pub fn inq(&self, fd: Fd) -> SysResult<usize> {
        match &self.socket(fd)?.state {
            SockState::Listening { .. } => Err(Errno::INVAL),
            _ => Ok(self.received(fd)),
        }
    }

    /// `ioctl(SIOCOUTQ)`: bytes in the send buffer, unacknowledged or unsent.
    pub fn outq(&self, fd: Fd) -> SysResult<usize> {
        match &self.socket(fd)?.state {
            SockState::Listening { .. } => Err(Errno::INVAL),
            SockState::Connected(c) => Ok(self.engine.buffers(c.id).map_or(0, |b| b.send)),
            _ => Ok(0),
        }
    }

    /// `setsockopt(fd, level, name, value)` for the options the layer implements; an integer
    /// option's value is `value`'s first four bytes.
    pub fn setsockopt(&mut self, fd: Fd, level: i32, name: i32, value: &[u8]) -> SysResult<()> {
        if let Some(opt) = crate::ops::SOCKOPTS
            .iter()
            .position(|o| *o == (level, name))
        {
            let word = |at: usize| {
                value
                    .get(at..at + 4)
                    .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            };
            // SO_LINGER's two ints travel as onoff | linger << 8.
            let v = if name == libc::SO_LINGER {
                word(0) & 1 | word(4) << 8
            } else {
                word(0)
            };
            self.note(Some(fd), |sock| Op::SetOpt {
                sock,
                opt: opt as u8,
                value: v,
            });
        }
        let int = || -> SysResult<i32> {
            value
                .get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(Errno::INVAL)
        };
        let positive = |v: i32| -> SysResult<u32> {
            u32::try_from(v).ok().filter(|v| *v > 0).ok_or(Errno::INVAL)
        };
        let s = self.sock(fd)?;
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR | libc::SO_REUSEPORT) => {
                s.opts.reuse_addr = int()? != 0;
            }
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => s.opts.keepalive = int()? != 0,
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => s.opts.keep_idle = Some(positive(int()?)?),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => {
                s.opts.keep_intvl = Some(positive(int()?)?);
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => s.opts.keep_cnt = Some(positive(int()?)?),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => s.opts.nodelay = int()? != 0,
            (libc::IPPROTO_TCP, libc::TCP_CORK) => s.opts.cork = int()? != 0,
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let l = value.get(..8).ok_or(Errno::INVAL)?;
                let on = i32::from_ne_bytes([l[0], l[1], l[2], l[3]]);
                let secs = i32::from_ne_bytes([l[4], l[5], l[6], l[7]]);
                s.opts.linger = (on != 0).then_some(secs.max(0) as u32);
            }
            // Linux's sock_setsockopt: twice the value, at least SOCK_MIN_SNDBUF (4608 on
            // x86-64: two sk_buffs of TCP_SKB_MIN_TRUESIZE) or SOCK_MIN_RCVBUF (2304).
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                s.opts.sndbuf = Some(doubled(int()?).max(SOCK_MIN_SNDBUF));
            }
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                s.opts.rcvbuf = Some(doubled(int()?).max(SOCK_MIN_RCVBUF));
            }
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if s.v6 => s.opts.v6only = int()? != 0,
            // Linux: a queue for a closed or listening socket (`fastopen_queue_tune`).
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN) => {
                let open = matches!(s.state, SockState::Fresh | SockState::Listening { .. });
                let queue = u32::try_from(int()?).ok().filter(|_| open);
                s.opts.fastopen_queue = Some(queue.ok_or(Errno::INVAL)?);
            }
            // Linux: a 16-byte key, or 32 with a backup key after it.
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_KEY) => {
                let key = |at: usize| {
                    value.get(at..at + 16).map(|k| {
                        let mut key = [0u8; 16];
                        key.copy_from_slice(k);
                        xdptcp::tcp::hash::Key(key)
                    })
                };
                let (Some(primary), 16 | 32) = (key(0), value.len()) else {
                    return Err(Errno::INVAL);
                };
                s.opts.fastopen_key = Some(FastOpenKey {
                    primary,
                    backup: key(16),
                });
            }
            // Linux's `do_tcp_setsockopt`: a negative timeout is EINVAL, 0 turns it off.
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                s.opts.user_timeout = u32::try_from(int()?).map_err(|_| Errno::INVAL)?;
            }
            // Linux: 0 (none) or TCP_MIN_MSS (88) to MAX_TCP_WINDOW (32767), else EINVAL. It
            // acts when the MSS is settled: on a listener or before connect().
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => {
                let v = int()?;
                if v != 0 && !(88..=32767).contains(&v) {
                    return Err(Errno::INVAL);
                }
                s.opts.max_segment = v as u16;
            }
            // Linux takes any value (0: the sysctl's, by default none).
            (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) => s.opts.notsent_lowat = int()? as u32,
            (libc::IPPROTO_TCP, libc::TCP_INQ) => {
                let v = int()?;
                if !(0..=1).contains(&v) {
                    return Err(Errno::INVAL);
                }
                s.opts.inq = v == 1;
            }
            _ => return Err(Errno::NOPROTOOPT),
        }
        self.apply_option(fd, level, name)
    }

    /// A keepalive or Fast Open option changed: the listener or the connection takes the new
    /// settings.
    fn apply_option(&mut self, fd: Fd, level: i32, name: i32) -> SysResult<()> {
        let keepalive_opt = matches!(
            (level, name),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE)
                | (
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT
                )
        );
        let fastopen_opt = level == libc::IPPROTO_TCP
            && matches!(name, libc::TCP_FASTOPEN | libc::TCP_FASTOPEN_KEY);
        let push_opt =
            level == libc::IPPROTO_TCP && matches!(name, libc::TCP_NODELAY | libc::TCP_CORK);
        if push_opt {
            self.apply_push_options(fd);
            return Ok(());
        }
        let s = self.socket(fd)?;
        if !keepalive_opt && !fastopen_opt {
            // The engine's own per-connection options apply to a connection at once; a
            // listener's pass to the connections it accepts from now on, as in Linux.
            match &s.state {
                SockState::Connected(c) if c.alive() => {
                    let (id, opts) = (c.id, s.opts);
                    self.apply_conn_options(id, &opts);
                }
                SockState::Listening { .. } => {
                    let listener = self.listener(fd)?;
                    self.engine.unlisten(listener.addr, listener.port);
                    self.engine.listen(listener);
                }
                _ => {}
            }
            return Ok(());
        }
        match &s.state {
            SockState::Listening { .. } => {
                let listener = self.listener(fd)?;
                self.engine.unlisten(listener.addr, listener.port);
                self.engine.listen(listener);
            }
            SockState::Connected(c) if c.alive() && keepalive_opt => {
                let (id, settings) = (c.id, s.opts.keepalive_settings());
                self.engine.set_keepalive(self.now, id, settings);
            }
            _ => {}
        }
        Ok(())
    }

    /// `TCP_NODELAY` and `TCP_CORK` as the socket has them, given to its connection (if it has
    /// one yet): setting `TCP_NODELAY` or taking the cork off sends what they held.
    fn apply_push_options(&mut self, fd: Fd) {
        let Ok(s) = self.socket(fd) else {
            return;
        };
        let (id, opts) = match &s.state {
            SockState::Connected(c) if c.alive() => (c.id, s.opts),
            SockState::Connecting { id, .. } => (*id, s.opts),
            _ => return,
        };
        self.engine.with_io(self.now, id, &mut self.tx, |_, _, io| {
            let f = io.send_flags();
            if f.nodelay != opts.nodelay || opts.nodelay {
                io.set_nodelay(opts.nodelay);
            }
            if f.cork != opts.cork {
                io.set_cork(opts.cork);
            }
        });
        self.settle();
    }

    /// Gives connection `id` the engine-side options of its socket ([`SockOpts::conn_options`];
    /// `TCP_MAXSEG` acts on the handshake only).
    fn apply_conn_options(&mut self, id: ConnId, opts: &SockOpts) {
        let o = opts.conn_options();
        self.engine.set_user_timeout(id, o.user_timeout);
        self.engine.set_recv_buffer(id, o.recv_buffer);
        self.engine.set_send_buffer(id, o.send_buffer);
        self.engine.set_notsent_lowat(id, o.notsent_lowat);
    }

    /// The MSS connection `id` sends with (`getsockopt(TCP_MAXSEG)`, Linux's `mss_cache`).
    fn maxseg(&self, id: ConnId) -> i32 {
        self.engine.info(id).map_or(536, |i| i.snd_mss as i32)
    }

    /// `TCP_CM_INQ` for a `recvmsg` on `fd` if `TCP_INQ` is on: the bytes left to read, or 1
    /// once the peer's FIN is in and nothing is (Linux's `tcp_inq_hint`: "fake" byte that
    /// tells a reader to read on and see the end).
    pub fn inq_hint(&self, fd: Fd) -> Option<i32> {
        let s = self.socket(fd).ok()?;
        if !s.opts.inq {
            return None;
        }
        let left = self.received(fd);
        let done = match &s.state {
            SockState::Connected(c) => {
                c.peer_fin || !c.alive() || self.engine.state(c.id).is_some_and(State::fin_received)
            }
            _ => false,
        };
        Some(if left == 0 && done {
            1
        } else {
            i32::try_from(left).unwrap_or(i32::MAX)
        })
    }

    /// Linux's `struct tcp_info` for connection `id`, in the layout of `linux/tcp.h` up to
    /// `tcpi_rcv_wnd` ([`TCP_INFO_LEN`] bytes): the fields the engine keeps ([`xdptcp::tcp::TcpInfo`]),
    /// in Linux's units (microseconds, segments), the rest zero.
    fn tcp_info(&self, id: ConnId) -> Vec<u8> {
        let mut out = vec![0u8; TCP_INFO_LEN];
        let Some(i) = self.engine.info(id) else {
            return out;
        };
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let segs = |bytes: u32| bytes / i.snd_mss.max(1);
        put(0, &[linux_state(i.state), 0, i.retransmits]);
        put(8, &us(i.rto).to_ne_bytes()); // tcpi_rto
        put(16, &i.snd_mss.to_ne_bytes());
        put(20, &i.rcv_mss.to_ne_bytes());
        put(24, &segs(i.unacked).to_ne_bytes()); // tcpi_unacked, segments
        put(68, &i.rtt.map_or(0, us).to_ne_bytes()); // tcpi_rtt
        put(72, &i.rttvar.map_or(0, us).to_ne_bytes()); // tcpi_rttvar
        put(76, &segs(i.ssthresh).to_ne_bytes()); // tcpi_snd_ssthresh
        put(80, &segs(i.cwnd).to_ne_bytes()); // tcpi_snd_cwnd
        put(120, &i.bytes_acked.to_ne_bytes());
        put(128, &i.bytes_received.to_ne_bytes());
        put(144, &i.notsent.to_ne_bytes()); // tcpi_notsent_bytes
        put(160, &i.delivery_rate.unwrap_or(0).to_ne_bytes());
        put(228, &i.snd_wnd.to_ne_bytes());
        put(232, &i.rcv_wnd.to_ne_bytes());
        out
    }

    /// `getsockopt(fd, level, name)`: the option's value (an `int`, or `struct linger`).
    pub fn getsockopt(&mut self, fd: Fd, level: i32, name: i32) -> SysResult<Vec<u8>> {
        let (send_default, recv_default) = {
            let c = self.engine.config();
            (c.send_buffer as usize, c.recv_buffer as usize)
        };
        let s = self.sock(fd)?;
        let flag = |b: bool| i32::from(b);
        let clamp = |v: usize| v.min(i32::MAX as usize) as i32;
        let int = match (level, name) {
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let (on, secs) = s.opts.linger.map_or((0i32, 0i32), |l| (1, l as i32));
                return Ok([on.to_ne_bytes(), secs.to_ne_bytes()].concat());
            }
            (libc::SOL_SOCKET, libc::SO_ERROR) => s.error.take().map_or(0, |e| e.0),
            (libc::SOL_SOCKET, libc::SO_TYPE) => libc::SOCK_STREAM,
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
                flag(matches!(s.state, SockState::Listening { .. }))
            }
            (libc::SOL_SOCKET, libc::SO_REUSEADDR | libc::SO_REUSEPORT) => flag(s.opts.reuse_addr),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => flag(s.opts.keepalive),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => flag(s.opts.nodelay),
            (libc::IPPROTO_TCP, libc::TCP_CORK) => flag(s.opts.cork),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => s.opts.keep_idle.map_or(7200, |v| v as i32),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => s.opts.keep_intvl.map_or(75, |v| v as i32),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => s.opts.keep_cnt.map_or(9, |v| v as i32),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => clamp(s.opts.sndbuf.unwrap_or(send_default)),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => clamp(s.opts.rcvbuf.unwrap_or(recv_default)),
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if s.v6 => flag(s.opts.v6only),
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN) => {
                s.opts.fastopen_queue.map_or(0, |q| clamp(q as usize))
            }
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => clamp(s.opts.user_timeout as usize),
            (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) => s.opts.notsent_lowat as i32,
            (libc::IPPROTO_TCP, libc::TCP_INQ) => flag(s.opts.inq),
            // Linux: the MSS a connection sends with (`mss_cache`); before one, TCP_MAXSEG's
            // value, else TCP_MSS_DEFAULT (536).
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => match &s.state {
                SockState::Connected(c) if c.alive() => {
                    let id = c.id;
                    return Ok(self.maxseg(id).to_ne_bytes().to_vec());
                }
                _ if s.opts.max_segment > 0 => i32::from(s.opts.max_segment),
                _ => 536,
            },
            (libc::IPPROTO_TCP, libc::TCP_INFO) => match &s.state {
                SockState::Connected(c) if c.alive() => {
                    let id = c.id;
                    return Ok(self.tcp_info(id));
                }
                _ => return Ok(vec![0u8; TCP_INFO_LEN]),
            },
            _ => return Err(Errno::NOPROTOOPT),
        };
        Ok(int.to_ne_bytes().to_vec())
    }

    /// Whether `fd` is in non-blocking mode (false for an unknown descriptor).
    pub fn is_nonblocking(&self, fd: Fd) -> bool {
        self.socket(fd).is_ok_and(|s| s.nonblocking)
    }

    /// The peer of a connected socket (`recvfrom`'s and `recvmsg`'s source address).
    pub fn peer(&self, fd: Fd) -> Option<SocketAddr> {
        let s = self.socket(fd).ok()?;
        match &s.state {
            SockState::Connected(c) => Some(as_family(
                SocketAddr::new(c.tuple.remote_addr, c.tuple.remote_port),
                s.v6,
            )),
            _ => None,
        }
    }

    /// What `poll()` reports for `fd`, as `EPOLL*` bits (the same values as `POLL*` for the
    /// bits both have); `POLLNVAL` for an unknown descriptor.
    pub fn poll_mask(&self, fd: Fd) -> u32 {
        const IN: u32 = (libc::EPOLLIN | libc::EPOLLRDNORM) as u32;
        const OUT: u32 = (libc::EPOLLOUT | libc::EPOLLWRNORM) as u32;
        const ERR: u32 = libc::EPOLLERR as u32;
        const HUP: u32 = libc::EPOLLHUP as u32;
        const RDHUP: u32 = libc::EPOLLRDHUP as u32;
        let s = match self.files.get(&fd) {
            Some(File::Socket(s)) => s,
            Some(File::Epoll(_)) => return 0,
            None => return libc::POLLNVAL as u32,
        };
        match &s.state {
            // Linux: an unconnected socket is writable and hung up.
            SockState::Fresh => OUT | HUP,
            SockState::Listening { queue, .. } => {
                if queue.is_empty() {
                    0
                } else {
                    IN
                }
            }
            SockState::Connecting { .. } => 0,
            SockState::Failed => OUT | ERR | HUP,
            SockState::Connected(c) => {
                let err = if s.error.is_some() { ERR } else { 0 };
                match c.closed {
                    Some(CloseReason::Normal) => IN | OUT | HUP | RDHUP | err,
                    Some(_) if !c.error_reported => IN | OUT | ERR | HUP | RDHUP,
                    Some(_) => IN | OUT | HUP | RDHUP | err,
                    None => {
                        let Some(b) = self.engine.buffers(c.id) else {
                            return HUP;
                        };
                        let state = self.engine.state(c.id);
                        // The peer's FIN is in, even with data still unread before it.
                        let fin = c.peer_fin || state.is_some_and(State::fin_received);
                        let mut m = err;
                        if b.received > 0 || fin || s.shut_rd {
                            m |= IN;
                        }
                        if fin || s.shut_rd {
                            m |= RDHUP;
                        }
                        // Linux's tcp_poll: a Fast Open connection (the only kind a socket
                        // has in SYN-RECEIVED) is writable as an established one.
                        let synchronized = state
                            .is_some_and(|st| st.is_synchronized() || st == State::SynReceived);
                        // Linux's sk_stream_is_writeable: free space at least half of
                        // what is queued.
                        if synchronized
                            && !s.shut_wr
                            && b.send_space > 0
                            && b.send_space >= b.send / 2
                            && lowat_writable(b.unsent, s.opts.notsent_lowat)
                        {
                            m |= OUT;
                        }
                        if fin && s.shut_wr {
                            m |= HUP;
                        }
                        m
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // epoll.

    /// `epoll_create()`.
    pub fn epoll_create(&mut self) -> SysResult<Fd> {
        let fd = self.new_fd()?;
        self.files.insert(fd, File::Epoll(Epoll::default()));
        self.epolls += 1;
        if self.epolls == 1 {
            // Wakeups are counted from here on: start from what every socket shows now.
            self.note_edges();
        }
        Ok(fd)
    }

    /// `epoll_ctl(epfd, op, fd, {events, data})`.
    pub fn epoll_ctl(
        &mut self,
        epfd: Fd,
        op: EpollOp,
        fd: Fd,
        events: u32,
        data: u64,
    ) -> SysResult<()> {
        if epfd == fd {
            return Err(Errno::INVAL);
        }
        // A new interest reports what is ready now once, even edge-triggered.
        let seen = match self.files.get(&fd) {
            Some(File::Socket(s)) => s.wakeups.wrapping_sub(1),
            Some(File::Epoll(_)) => return Err(Errno(libc::EPERM)),
            None => return Err(Errno::BADF),
        };
        let Some(File::Epoll(ep)) = self.files.get_mut(&epfd) else {
            return Err(Errno::INVAL);
        };
        let fresh = Interest { events, data, seen };
        match op {
            EpollOp::Add => {
                if ep.interest.contains_key(&fd) {
                    return Err(Errno(libc::EEXIST));
                }
                ep.interest.insert(fd, fresh);
            }
            EpollOp::Modify => {
                let i = ep.interest.get_mut(&fd).ok_or(Errno(libc::ENOENT))?;
                *i = fresh;
            }
            EpollOp::Delete => {
                ep.interest.remove(&fd).ok_or(Errno(libc::ENOENT))?;
            }
        }
        Ok(())
    }

    /// The ready events of `epfd`, at most `max` (level-triggered, or edge-triggered with
    /// `EPOLLET`, one-shot with `EPOLLONESHOT`).
    pub fn epoll_ready(&mut self, epfd: Fd, max: usize) -> SysResult<Vec<(u32, u64)>> {
        let Some(File::Epoll(ep)) = self.files.get(&epfd) else {
            return Err(if self.files.contains_key(&epfd) {
                Errno::INVAL
            } else {
                Errno::BADF
            });
        };
        let always = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        let mut ready = Vec::new();
        let mut updates = Vec::new();
        for (&fd, i) in &ep.interest {
            if ready.len() >= max {
                break;
            }
            let Some(File::Socket(s)) = self.files.get(&fd) else {
                continue;
            };
            let wanted = i.events & !(libc::EPOLLET as u32 | libc::EPOLLONESHOT as u32);
            let got = self.poll_mask(fd) & (wanted | always);
            let edge = i.events & libc::EPOLLET as u32 == 0 || s.wakeups != i.seen;
            if got != 0 && edge {
                ready.push((got, i.data));
                updates.push((fd, s.wakeups));
            }
        }
        let Some(File::Epoll(ep)) = self.files.get_mut(&epfd) else {
            return Err(Errno::BADF);
        };
        for (fd, wakeups) in updates {
            if let Some(i) = ep.interest.get_mut(&fd) {
                i.seen = wakeups;
                if i.events & libc::EPOLLONESHOT as u32 != 0 {
                    i.events = 0;
                }
            }
        }
        Ok(ready)
    }
}

/// The errno a socket call returns once after the connection ended this way.
/// Linux's `SOCK_MIN_SNDBUF` on x86-64: the least `SO_SNDBUF` sets.
const SOCK_MIN_SNDBUF: usize = 4608;

/// Linux's `SOCK_MIN_RCVBUF` on x86-64: the least `SO_RCVBUF` sets.
const SOCK_MIN_RCVBUF: usize = 2304;

/// Twice a buffer size given to `SO_SNDBUF` or `SO_RCVBUF` (a negative one counts as 0).
fn doubled(v: i32) -> usize {
    2 * usize::try_from(v.max(0)).unwrap_or(0)
}

/// `struct tcp_info` up to `tcpi_rcv_wnd`, the last field [`Stack::getsockopt`] fills.
pub const TCP_INFO_LEN: usize = 236;

/// Linux's `TCP_*` state number (`include/net/tcp_states.h`) of `state`.
fn linux_state(state: State) -> u8 {
    match state {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

/// Whether `unsent` bytes let `poll()` report `POLLOUT` under TCP_NOTSENT_LOWAT `lowat` (0:
/// none): Linux's `__sk_stream_is_writeable(sk, 1)`, twice the unsent bytes below the mark.
fn lowat_writable(unsent: usize, lowat: u32) -> bool {
    lowat == 0 || (unsent as u64) * 2 < u64::from(lowat)
}

fn close_errno(reason: CloseReason) -> Errno {
    Errno(match reason {
        CloseReason::Normal => 0,
        CloseReason::Reset | CloseReason::Aborted => libc::ECONNRESET,
        CloseReason::Refused => libc::ECONNREFUSED,
        CloseReason::TimedOut | CloseReason::KeepaliveTimeout => libc::ETIMEDOUT,
    })
}
