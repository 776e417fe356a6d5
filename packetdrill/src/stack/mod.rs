//! The BSD-socket layer over one engine, on a virtual clock, with no threads and no blocking:
//! every call either completes, fails with an errno, or says [`Errno::BLOCK`] (a blocking
//! socket would wait here) and leaves the waiting to [`crate::shim`].
//!
//! Packets cross as bare IP datagrams, as packetdrill's `netdev_send` / `netdev_receive` want
//! them: the stack adds and strips the Ethernet header the engine works with.
//!
//! This file holds what the layer is made of (the [`Stack`], the sockets and epoll instances
//! behind its descriptors); the calls on it are in the files beside it, by behaviour:
//!
//! - `sockets`: `socket`, `bind`, `listen`, `accept`, `connect`, `close`, `shutdown`, and the
//!   descriptor flags (`O_NONBLOCK`);
//! - `io`: `recv` and `send`, and what is queued (`FIONREAD`, `SIOCOUTQ`, `TCP_INQ`);
//! - `sockopt`: `setsockopt` and `getsockopt` (`TCP_INFO` among them), and what they change
//!   in the engine (its listeners, a connection's options);
//! - `poll`: `poll()`'s readiness and epoll;
//! - `pump`: the clock and the link: timers, packets in and out, and the engine's events
//!   applied to the sockets after every engine call;
//! - `fds`: descriptor numbers and lookups;
//! - `record`: the calls and packets recorded as [`Op`](crate::ops::Op)s.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use xdptcp::app::CloseReason;
use xdptcp::tcp::{ConnId, Engine, FastOpenKey, FourTuple};
use xdptcp::time::Instant;

use crate::app::SocketApp;
use crate::flags::Options;

mod fds;
mod io;
mod poll;
mod pump;
mod record;
mod sockets;
mod sockopt;

use record::Recorder;
pub use sockopt::TCP_INFO_LEN;

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
}
