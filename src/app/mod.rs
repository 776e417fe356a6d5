//! Applications: what runs on top of an established connection.
//!
//! The engine calls an [`App`] on connection events and hands it an [`Io`] through which it
//! writes (into the connection's send buffer), half-closes, closes or aborts. The app keeps its
//! per-connection state in [`App::State`], stored inside the engine's connection entry.
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
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::stats::Latencies;
use crate::tcp::budget::{Growth, reserve_within};
use crate::tcp::{ConnId, FourTuple};
use crate::time::Instant;

pub mod discard;
pub mod echo;
pub mod http;
pub mod http_client;

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
