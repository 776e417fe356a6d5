//! The app's turn after every event: tell it the connection is up, that there is room to
//! write, what arrived in order, and that the peer's FIN came (RFC 9293 §3.10.7.4 seventh
//! and eighth steps, "signal the user"); then send what it wrote.
//!
//! The app only ever sees a connection in a synchronized state, or a TCP Fast Open one in
//! SYN-RECEIVED (RFC 7413 §4.2.2: the server "MAY" deliver the SYN's data before the
//! handshake completes, as Linux does), and reads through flow control: what it does not
//! consume stays buffered and shrinks the window we advertise. Under memory pressure its send
//! space is what the budget allows (`Conn::send_limit`), so an app that cannot write stops
//! consuming and the window closes: the back-pressure reaches the peer. An app that closes
//! with received data unconsumed resets the connection (RFC 1122 §4.2.2.13).

use std::collections::VecDeque;

use super::budget::Budget;
use super::conn::{Conn, MAX_IDLE_BUFFER};
use super::contract::{App, CloseReason, Io, Shutdown};
use super::event::{Cx, Outcome};
use super::timer::Timer;
use super::{Config, ConnId, output};
use crate::state::State;
use crate::stats::LatencyKind;
use crate::time::Instant;
use crate::tx::Tx;

/// After the state machine or a timer ran: the app acts, then we transmit.
pub(crate) fn after_event<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    outcome: Outcome,
) -> Outcome {
    if let Outcome::Close(_) = outcome {
        return outcome;
    }
    deliver(c, cx);
    if aborted(c, cx) {
        output::send_rst(c, cx);
        return Outcome::Close(CloseReason::Aborted);
    }
    // A half-closed connection in FIN-WAIT-2 closed by its app now times out there, as one
    // closed before its FIN was acknowledged does (Linux's `tcp_close` in FIN-WAIT-2).
    if c.state == State::FinWait2 && c.app.shutdown == Shutdown::Close {
        c.timers
            .arm_if_stopped(Timer::FinWait2, cx.now + cx.cfg.fin_wait2_timeout);
    }
    output::transmit(c, cx);
    // What went out may have taken the unsent bytes below TCP_NOTSENT_LOWAT: the app hears
    // of the room now, not at the next ACK (Linux's `tcp_check_space` after `tcp_write_xmit`).
    if c.limits.notsent_lowat != u32::MAX && offer_room(c, cx) {
        if aborted(c, cx) {
            output::send_rst(c, cx);
            return Outcome::Close(CloseReason::Aborted);
        }
        output::transmit(c, cx);
    }
    outcome
}

/// Whether the app aborted `c`, or closed it with received data it never read: RFC 1122
/// §4.2.2.13, "If such a host issues a CLOSE call while received data is still pending in TCP
/// ..., its TCP SHOULD send a RST to show that data was lost", as Linux's `tcp_close` does
/// (`data_was_unread`, `TCPAbortOnClose`). A half-close (`shutdown(SHUT_WR)`) reads on.
fn aborted<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> bool {
    if c.app.shutdown == Shutdown::Close && !c.rcv.buf.is_empty() {
        cx.stats.aborts_on_close += 1;
        c.app.shutdown = Shutdown::Abort;
    }
    c.app.shutdown == Shutdown::Abort
}

/// The app's handle on `c` (its send space as the memory budget `mem` allows, shutdown state
/// and deadline), its per-connection state and the receive buffer, split borrows.
pub(crate) fn io<'c, S>(
    c: &'c mut Conn<S>,
    cfg: &Config,
    mem: &Budget,
    id: ConnId,
    now: Instant,
) -> (Io<'c>, &'c mut S, &'c mut VecDeque<u8>) {
    // TCP_NOTSENT_LOWAT gates writes too (Linux's `tcp_sendmsg` waits while
    // `tcp_stream_memory_free` says no).
    let send_capacity = if c.below_lowat(false) {
        c.send_limit(cfg, mem)
    } else {
        c.snd.buf.len()
    };
    let io = Io::new(
        id,
        c.route.tuple,
        now,
        &mut c.snd.buf,
        send_capacity,
        &mut c.app.shutdown,
        c.timers.deadline_mut(Timer::App),
    )
    .with_send_flags(&mut c.snd.flags);
    (io, &mut c.app.state, &mut c.rcv.buf)
}

/// After the app read: whether to send a window update now rather than with the next ACK.
/// RFC 9293 §3.8.6.2.2 (receiver SWS avoidance) says how far the right edge may move, not when
/// to announce it; this is Linux's `tcp_cleanup_rbuf`: only while more data may come (no FIN
/// from the peer yet), once the window still open to the peer has fallen to half the largest
/// we can advertise or less, and if the window we would advertise now is open and at least
/// twice that. A read that frees a little of a wide-open window, or any read with an unscaled
/// window (capped at 65 535 bytes, below the buffer), waits for the next ACK. So does a read
/// in SYN-RECEIVED (a Fast Open connection's SYN data): the SYN-ACK just gave the window, and
/// whatever we send next carries the new one.
fn window_update_due<S>(c: &Conn<S>, cfg: &Config, mem: &Budget) -> bool {
    if c.state.fin_received() || c.state == State::SynReceived {
        return false;
    }
    let open = c.rcv_open();
    if open > c.window_clamp(c.recv_buffer(cfg)) / 2 {
        return false;
    }
    let (field, _) = c.window_to_advertise(c.recv_limit(cfg, mem));
    let new = u32::from(field) << c.opts.rcv_wscale;
    new > 0 && new / 2 >= open
}

/// Tells an app that found no room ([`App::on_writable`]) that there is some: below the send
/// buffer's limit, and with TCP_NOTSENT_LOWAT once the unsent bytes are below half the mark
/// (Linux wakes a writer when `__sk_stream_is_writeable(sk, 1)`). Whether it did.
fn offer_room<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> bool {
    let (cfg, mem, id, now) = (cx.cfg, cx.mem, cx.id, cx.now);
    if !(c.app.blocked
        && c.app.shutdown == Shutdown::Open
        && c.snd.buf.len() < c.send_limit(cfg, mem)
        && c.below_lowat(true))
    {
        return false;
    }
    c.app.blocked = false;
    let (mut io, state, _) = io(c, cfg, mem, id, now);
    cx.app.on_writable(state, &mut io);
    true
}

/// Lets the app act on what the event changed: connected, room to write, data, peer's FIN.
fn deliver<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    if !c.state.is_synchronized() && !c.fastopen {
        return;
    }
    let (cfg, mem, id, now) = (cx.cfg, cx.mem, cx.id, cx.now);
    if !c.app.connected {
        c.app.connected = true;
        if c.passive {
            cx.stats.passive_opens += 1;
        } else {
            cx.stats.active_opens += 1;
        }
        // A cookie connection kept nothing from its SYN, so its handshake time is unknown; a
        // Fast Open one is not through its handshake yet.
        if !c.from_cookie && !c.fastopen {
            cx.latencies
                .record(LatencyKind::Handshake, now - c.opened_at);
        }
        let (mut io, state, _) = io(c, cfg, mem, id, now);
        cx.app.on_connected(state, &mut io);
    }
    offer_room(c, cx);
    // Once closed, the app reads nothing more: what it left unread resets the connection
    // (`aborted`).
    if !c.rcv.buf.is_empty() && c.app.shutdown < Shutdown::Close {
        let (mut io, state, recv) = io(c, cfg, mem, id, now);
        let consumed = cx.app.on_data(state, &mut io, recv.make_contiguous());
        recv.drain(..consumed.min(recv.len()));
        if consumed > 0 && window_update_due(c, cfg, mem) {
            output::ack_by_batch_end(c, cx);
        }
    }
    if c.rcv.buf.is_empty() && c.rcv.buf.capacity() > MAX_IDLE_BUFFER {
        c.rcv.buf = VecDeque::new();
    }
    if c.state.fin_received() && c.rcv.buf.is_empty() && !c.app.peer_closed {
        c.app.peer_closed = true;
        let (mut io, state, _) = io(c, cfg, mem, id, now);
        cx.app.on_peer_closed(state, &mut io);
    }
    if c.app.shutdown == Shutdown::Open && !c.app.blocked {
        let limit = c.send_limit(cfg, mem);
        if c.snd.buf.len() >= limit || !c.below_lowat(false) {
            c.app.blocked = true;
            if limit < c.send_buffer(cfg) as usize {
                cx.stats.send_memory_limited += 1;
            }
        }
    }
}
