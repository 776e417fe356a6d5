//! The engine's contract: what it and the applications on top of it speak.
//!
//! An application implements [`App`]: the engine calls it on connection events and hands it
//! an [`Io`] through which it writes (into the connection's send buffer), half-closes, closes
//! or aborts. It keeps its per-connection state in [`App::State`], stored inside the engine's
//! connection entry. A connection is named by its [`ConnId`] inside one engine and by its
//! [`FourTuple`] on the wire; it ends with a [`CloseReason`].
//!
//! Flow control reaches the app both ways: [`App::on_data`] returns how many bytes it consumed
//! (the rest stays in the receive buffer and shrinks the advertised window, and is offered again
//! later), and [`Io::write`] accepts only what fits in the send buffer ([`App::on_writable`]
//! tells when there is room again).
//!
//! Time reaches the app as a deadline of its own per connection: [`Io::set_deadline`] asks
//! for [`App::on_deadline`] at an instant (a header read timeout, an idle timeout), scheduled
//! with the connection's other timers in the engine's timer wheel.
//! Under memory pressure the send buffer is smaller than configured (the engine's memory
//! budget): an app that cannot write should stop consuming, so that the peer's window closes.
//!
//! The engine owns this module; [`crate::app`] (the built-in applications) and plug-ins only
//! use it.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::budget::{Growth, reserve_within};
use crate::stats::Latencies;
use crate::time::Instant;

/// How far the application has shut its side of the connection. Only ever escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Shutdown {
    /// Both directions open.
    #[default]
    Open,
    /// Half-close: send a FIN after the queued data, keep receiving (`shutdown(SHUT_WR)`).
    Write,
    /// Close: send a FIN after the queued data; data that still arrives resets the
    /// connection, as does closing with received data unconsumed (RFC 1122 §4.2.2.13).
    Close,
    /// Abort: send a RST now and drop everything queued.
    Abort,
}

/// Why a connection ended, as told to [`App::on_closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both FINs were exchanged and acknowledged (or we are in TIME-WAIT).
    Normal,
    /// The peer reset the connection.
    Reset,
    /// The peer refused our active open with a RST.
    Refused,
    /// The retransmission retry limit was reached; we sent a RST.
    TimedOut,
    /// Keepalive probes went unanswered; we sent a RST.
    KeepaliveTimeout,
    /// We aborted (the app asked for it, closed with received data unconsumed, or data
    /// arrived after it closed).
    Aborted,
}

/// How a connection's writes are pushed to the wire, as Linux's socket options and send
/// flags set it (`TCP_NODELAY`, `TCP_CORK`, `MSG_MORE`): kept with the connection, changed
/// through [`Io`].
///
/// By default (`nodelay` off, no cork) the engine applies Nagle's algorithm as Linux does
/// (RFC 1122 §4.2.3.4 with Minshall's variant, `tcp_nagle_check`): a segment shorter than the
/// MSS waits while an earlier short one is unacknowledged. The engine's
/// [`crate::tcp::Config::nodelay`] decides what a new connection starts with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendFlags {
    /// `TCP_NODELAY`: short segments go out at once.
    pub nodelay: bool,
    /// `TCP_CORK`: short segments wait until uncorked, until the data fills a segment, or
    /// until the persist timer fires (Linux's cork timeout, `tcp_probe_timer`).
    pub cork: bool,
    /// The last write was `MSG_MORE`: its short tail waits (this once) and is not pushed.
    pub(crate) more: bool,
    /// The app wrote without `MSG_MORE` since the engine last looked: PSH goes on the segment
    /// that carries the end of that write (Linux `tcp_push` / `tcp_mark_push`).
    pub(crate) pushed: bool,
    /// Held short segments go out once, whatever Nagle says (Linux `TCP_NAGLE_PUSH`: setting
    /// `TCP_NODELAY`, or uncorking a socket that has it).
    pub(crate) flush: bool,
}

/// The application's handle on one connection during a callback.
#[derive(Debug)]
pub struct Io<'a> {
    id: ConnId,
    tuple: FourTuple,
    now: Instant,
    send: &'a mut VecDeque<u8>,
    send_capacity: usize,
    shutdown: &'a mut Shutdown,
    deadline: &'a mut Option<Instant>,
    flags: Flags<'a>,
}

/// An [`Io`]'s [`SendFlags`]: the connection's (built by the engine) or its own (built by a
/// test of an app, which reads them back with [`Io::send_flags`]).
#[derive(Debug)]
enum Flags<'a> {
    Conn(&'a mut SendFlags),
    Own(SendFlags),
}

impl<'a> Io<'a> {
    /// A handle over a connection's send buffer (of at most `send_capacity` bytes: its
    /// capacity never grows past that), its shutdown state and the app's deadline. The engine
    /// builds these; so can tests of an app (which then call [`App::on_deadline`] themselves
    /// once `deadline` has passed).
    pub fn new(
        id: ConnId,
        tuple: FourTuple,
        now: Instant,
        send: &'a mut VecDeque<u8>,
        send_capacity: usize,
        shutdown: &'a mut Shutdown,
        deadline: &'a mut Option<Instant>,
    ) -> Io<'a> {
        Io {
            id,
            tuple,
            now,
            send,
            send_capacity,
            shutdown,
            deadline,
            flags: Flags::Own(SendFlags::default()),
        }
    }

    /// This handle with the connection's own send flags (what the engine builds).
    pub(crate) fn with_send_flags(mut self, flags: &'a mut SendFlags) -> Io<'a> {
        self.flags = Flags::Conn(flags);
        self
    }

    /// How this connection's writes are pushed ([`SendFlags`]).
    pub fn send_flags(&self) -> SendFlags {
        match &self.flags {
            Flags::Conn(f) => **f,
            Flags::Own(f) => *f,
        }
    }

    fn flags_mut(&mut self) -> &mut SendFlags {
        match &mut self.flags {
            Flags::Conn(f) => f,
            Flags::Own(f) => f,
        }
    }

    /// The connection this callback is about.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The connection's addresses and ports.
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }

    /// The peer's address.
    pub fn peer(&self) -> IpAddr {
        self.tuple.remote_addr
    }

    /// The engine's `now` for this event.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Free space in the send buffer, in bytes (zero once the app has shut down writing; less
    /// than configured under memory pressure).
    pub fn send_space(&self) -> usize {
        if *self.shutdown != Shutdown::Open {
            return 0;
        }
        self.send_capacity.saturating_sub(self.send.len())
    }

    /// Queues as much of `data` as fits in the send buffer and returns how much that was.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.send_space());
        // Grows as a VecDeque would, but never past the send capacity: what the memory budget
        // counts is what was granted.
        let n = if reserve_within(self.send, n, self.send_capacity, Growth::Double) {
            n
        } else {
            0
        };
        self.send.extend(&data[..n]);
        if n > 0 {
            // Linux `tcp_push`: the end of this write is marked for PSH, and a held short
            // tail of an earlier MSG_MORE write goes out with it.
            let f = self.flags_mut();
            f.pushed = true;
            f.more = false;
            f.flush = false;
        }
        n
    }

    /// [`Io::write`] with `MSG_MORE`: more data follows soon, so a short tail waits for it
    /// (this once: the next transmission the peer's ACKs clock out sends it, as Linux does)
    /// and no PSH marks this write's end; a later plain write pushes both.
    pub fn write_more(&mut self, data: &[u8]) -> usize {
        let n = self.write(data);
        if n > 0 {
            let f = self.flags_mut();
            f.pushed = false;
            f.more = true;
        }
        n
    }

    /// `TCP_NODELAY`: on, short segments go out at once (and any held now go out); off,
    /// Nagle's algorithm holds a short segment while an earlier one is unacknowledged.
    pub fn set_nodelay(&mut self, on: bool) {
        let f = self.flags_mut();
        f.nodelay = on;
        f.flush |= on;
    }

    /// `TCP_CORK`: on, short segments wait until the data fills a segment, the cork comes off,
    /// or the persist timer sends them (about the RTO later, as Linux's cork timeout); off,
    /// what waited goes out as Nagle allows (at once with `TCP_NODELAY`).
    pub fn set_cork(&mut self, on: bool) {
        let f = self.flags_mut();
        f.cork = on;
        if !on && f.nodelay {
            f.flush = true;
        }
    }

    /// Half-close: a FIN follows the queued data; the app keeps receiving.
    pub fn shutdown_write(&mut self) {
        self.escalate(Shutdown::Write);
    }

    /// Close: a FIN follows the queued data; data arriving afterwards, or received data left
    /// unconsumed, resets the connection instead (RFC 1122 §4.2.2.13, as Linux).
    pub fn close(&mut self) {
        self.escalate(Shutdown::Close);
    }

    /// Abort: a RST is sent and queued data is dropped.
    pub fn abort(&mut self) {
        self.escalate(Shutdown::Abort);
    }

    /// How far the app has shut the connection so far.
    pub fn shutdown(&self) -> Shutdown {
        *self.shutdown
    }

    /// Asks for [`App::on_deadline`] once `now` reaches `at`, replacing the deadline set
    /// before (`None` cancels it). One deadline per connection; the engine keeps it with the
    /// connection's own timers, so moving it (later on every request, say) costs no more
    /// than storing it: the engine's one timer-wheel entry per connection may then fire
    /// early, find nothing due and move on. The deadline lasts as long as the connection (also
    /// after a close), until it fires or is replaced.
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        *self.deadline = at;
    }

    /// The deadline set with [`Io::set_deadline`] that has not fired yet, if any.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline
    }

    fn escalate(&mut self, to: Shutdown) {
        *self.shutdown = (*self.shutdown).max(to);
    }
}

/// An application served by the engine. One instance per engine (per worker); per-connection
/// state lives in [`App::State`].
pub trait App {
    /// Per-connection state, created with `Default` when a connection is established.
    type State: Default;

    /// The connection is established (accepted from a listener, or our active open completed).
    fn on_connected(&mut self, state: &mut Self::State, io: &mut Io<'_>) {
        let _ = (state, io);
    }

    /// In-order data arrived. Returns how many bytes of `data` were consumed; the rest stays in
    /// the receive buffer (shrinking the window) and is offered again with later data or when
    /// the connection becomes writable.
    fn on_data(&mut self, state: &mut Self::State, io: &mut Io<'_>, data: &[u8]) -> usize;

    /// The peer sent a FIN and every byte before it was consumed.
    fn on_peer_closed(&mut self, state: &mut Self::State, io: &mut Io<'_>) {
        let _ = state;
        io.close();
    }

    /// The send buffer has room again after being full.
    fn on_writable(&mut self, state: &mut Self::State, io: &mut Io<'_>) {
        let _ = (state, io);
    }

    /// A driver outside the engine woke this connection ([`crate::tcp::Engine::wake`]): its
    /// schedule says something is due at `due` (a load generator's intended send time, which
    /// may be earlier than `io.now()` when the driver runs late). Called in any state, also
    /// before the handshake completes: data written then goes out once the connection is
    /// established (RFC 9293 §3.10.2, SEND in SYN-SENT: "queue the data for transmission after
    /// entering ESTABLISHED").
    fn on_wake(&mut self, state: &mut Self::State, io: &mut Io<'_>, due: Instant) {
        let _ = (state, io, due);
    }

    /// The deadline set with [`Io::set_deadline`] passed (`io.now()` is at or after it). It
    /// is cleared before the call, so this runs once per deadline; set another here to be
    /// called again. Called in any state the connection is in, as [`App::on_wake`] is; what the
    /// app writes or shuts down here goes out as after any other callback.
    fn on_deadline(&mut self, state: &mut Self::State, io: &mut Io<'_>) {
        let _ = (state, io);
    }

    /// The connection is gone (or in TIME-WAIT); the state is dropped after this returns.
    fn on_closed(&mut self, state: &mut Self::State, reason: CloseReason) {
        let _ = (state, reason);
    }

    /// Everything written so far was handed to the transmit ring at `now` (the worker calls
    /// this after each TX batch): where an app measures request service time.
    fn on_flushed(&mut self, now: Instant) {
        let _ = now;
    }

    /// Latencies the app records (the worker drains them into its reports), if any.
    fn latencies(&mut self) -> Option<&mut Latencies> {
        None
    }

    /// The app's own counters for reports, as (name, value).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Names one connection inside one engine (a slot in its connection table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// Local and remote address and port of one connection (our side is `local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our address.
    pub local_addr: IpAddr,
    /// The peer's address.
    pub remote_addr: IpAddr,
    /// Our port.
    pub local_port: u16,
    /// The peer's port.
    pub remote_port: u16,
}

impl FourTuple {
    /// Feeds the tuple into a hasher-like byte sink in a fixed, family-tagged layout, so keyed
    /// hashes (ISN, SYN cookies, table hashing) agree on the bytes they cover. The sink is
    /// called once, with the whole layout (SipHash is fastest fed in one piece).
    pub fn write_to(&self, out: &mut impl FnMut(&[u8])) {
        let mut buf = [0u8; 37];
        let len = self.pack(&mut buf);
        out(&buf[..len]);
    }

    /// Writes the layout into `buf`: family tag, local address, remote address, local port,
    /// remote port (13 bytes for IPv4, 37 for IPv6). Returns the length.
    pub fn pack(&self, buf: &mut [u8; 37]) -> usize {
        let addrs = match (self.local_addr, self.remote_addr) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                buf[0] = 4;
                buf[1..5].copy_from_slice(&l.octets());
                buf[5..9].copy_from_slice(&r.octets());
                9
            }
            (l, r) => {
                buf[0] = 6;
                buf[1..17].copy_from_slice(&to_v6(l));
                buf[17..33].copy_from_slice(&to_v6(r));
                33
            }
        };
        buf[addrs..addrs + 2].copy_from_slice(&self.local_port.to_be_bytes());
        buf[addrs + 2..addrs + 4].copy_from_slice(&self.remote_port.to_be_bytes());
        addrs + 4
    }
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// What an [`Io`] of a connection with a 4-byte send buffer points into.
    #[derive(Default)]
    struct Side {
        send: VecDeque<u8>,
        shutdown: Shutdown,
        deadline: Option<Instant>,
    }

    impl Side {
        fn io(&mut self) -> Io<'_> {
            let tuple = FourTuple {
                local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                local_port: 80,
                remote_port: 40000,
            };
            Io::new(
                ConnId(0),
                tuple,
                Instant::ZERO,
                &mut self.send,
                4,
                &mut self.shutdown,
                &mut self.deadline,
            )
        }
    }

    #[test]
    fn write_takes_only_what_fits_and_nothing_after_shutdown() {
        let mut side = Side::default();
        let mut io = side.io();
        assert_eq!(io.write(b"abcdef"), 4);
        assert_eq!(io.write(b"x"), 0);
        io.shutdown_write();
        assert_eq!(io.send_space(), 0);
        io.abort();
        io.close();
        assert_eq!(
            io.shutdown(),
            Shutdown::Abort,
            "shutdown never de-escalates"
        );
        assert_eq!(side.send.iter().copied().collect::<Vec<_>>(), b"abcd");
    }

    #[test]
    fn set_deadline_replaces_and_cancels_the_deadline() {
        let mut side = Side::default();
        let mut io = side.io();
        io.set_deadline(Some(Instant::from_secs(5)));
        io.set_deadline(Some(Instant::from_secs(3)));
        assert_eq!(io.deadline(), Some(Instant::from_secs(3)));
        io.set_deadline(None);
        assert_eq!(io.deadline(), None);
        io.set_deadline(Some(Instant::from_secs(7)));
        assert_eq!(
            side.deadline,
            Some(Instant::from_secs(7)),
            "written through"
        );
    }
}

#[cfg(test)]
mod tuple_tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_layout_is_family_tagged_and_ports_big_endian() {
        let t = FourTuple {
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            local_port: 80,
            remote_port: 0x1234,
        };
        let mut got = Vec::new();
        t.write_to(&mut |b| got.extend_from_slice(b));
        assert_eq!(got, [4, 10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0x12, 0x34]);
        let t6 = FourTuple {
            local_addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            remote_addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..t
        };
        let mut buf = [0u8; 37];
        assert_eq!(t6.pack(&mut buf), 37);
        assert_eq!(buf[0], 6);
        assert_eq!(&buf[33..], &[0, 80, 0x12, 0x34]);
    }
}
