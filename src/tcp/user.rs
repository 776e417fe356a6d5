//! User calls made from outside an event (RFC 9293 §3.9.1: OPEN, SEND, RECEIVE, CLOSE, ABORT,
//! STATUS): what a socket layer over the engine needs beyond the [`App`] callbacks.
//!
//! The built-in apps act only inside callbacks. A socket layer (the packetdrill shim, a future
//! blocking API) acts whenever its caller does: it opens and closes listeners at `listen()` and
//! `close()` time, writes, shuts down or aborts a connection at any moment, and asks how much
//! is buffered for `poll()`. Each call here runs the same delivery and transmission steps an
//! event does, so what goes on the wire is exactly what a callback doing the same would send.

use std::net::{IpAddr, Ipv6Addr};

use super::conn::options::{self, Limits};
use super::contract::{App, CloseReason, Io};
use super::event::Outcome;
use super::keepalive;
use super::{ConnId, ConnOptions, Engine, Keepalive, Listener, TcpInfo, deliver};
use crate::state::State;
use crate::time::Instant;
use crate::tx::Tx;

/// How much one connection holds in its buffers ([`Engine::buffers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Buffers {
    /// In-order bytes received that the app has not consumed.
    pub received: usize,
    /// Bytes in the send buffer: sent and not yet acknowledged, then not yet sent.
    pub send: usize,
    /// Of `send`, the bytes not transmitted yet.
    pub unsent: usize,
    /// Room left in the send buffer (zero once the app has shut down writing).
    pub send_space: usize,
}

/// A listener slot that no longer accepts: `::` is never the destination of a frame the
/// engine takes (it drops unspecified addresses before looking for a listener), so the slot
/// matches nothing, while its index stays valid for the connections whose keepalive settings
/// refer to it.
const CLOSED_LISTENER: Option<IpAddr> = Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED));

impl<A: App> Engine<A> {
    /// Starts accepting connections on `listener` (a socket's `listen()`); returns whether it
    /// was added (false if the same address and port already listen).
    pub fn listen(&mut self, listener: Listener) -> bool {
        let listeners = &mut self.cfg.listeners;
        if listeners
            .iter()
            .any(|l| l.port == listener.port && l.addr == listener.addr)
        {
            return false;
        }
        listeners.push(listener);
        self.stats.state_changed(State::Closed, State::Listen);
        true
    }

    /// Stops accepting on `addr`:`port` (closing a listening socket); returns whether such a
    /// listener existed. Connections it accepted live on; SYNs for it are then dropped as not
    /// served, like any port the engine does not serve.
    pub fn unlisten(&mut self, addr: Option<IpAddr>, port: u16) -> bool {
        let Some(l) = self
            .cfg
            .listeners
            .iter_mut()
            .find(|l| l.port == port && l.addr == addr)
        else {
            return false;
        };
        l.addr = CLOSED_LISTENER;
        self.stats.state_changed(State::Listen, State::Closed);
        true
    }

    /// Lets the app act on connection `id` now, outside any event: `f` gets the app, the
    /// connection's app state and its [`Io`] (write, shut down, close, abort). Then the engine
    /// does what it does after every event: offers buffered received data to the app again
    /// ([`App::on_data`]), sends what the windows allow, and closes or retires the
    /// connection if the app aborted it. `None` if there is no such connection.
    pub fn with_io<T: Tx, R>(
        &mut self,
        now: Instant,
        id: ConnId,
        tx: &mut T,
        f: impl FnOnce(&mut A, &mut A::State, &mut Io<'_>) -> R,
    ) -> Option<R> {
        self.last_now = now;
        let r = self.with_conn(id, now, tx, |c, cx| {
            let (mut io, state, _) = deliver::io(c, cx.cfg, cx.mem, id, now);
            f(cx.app, state, &mut io)
        })?;
        self.finish(id, Outcome::Keep, tx);
        Some(r)
    }

    /// What connection `id` holds in its buffers (for `poll()`, `FIONREAD`, `SIOCOUTQ`).
    pub fn buffers(&self, id: ConnId) -> Option<Buffers> {
        let c = self.conns.get(id)?;
        let open = c.app.shutdown == crate::tcp::contract::Shutdown::Open;
        // Outside an event the budget counts the connection's own bytes already.
        let mut mem = self.memory.budget.clone();
        mem.sub(c.heap_bytes());
        Some(Buffers {
            received: c.rcv.buf.len(),
            send: c.snd.buf.len(),
            unsent: c.unsent(),
            // TCP_NOTSENT_LOWAT gates writes as the engine's own apps see it.
            send_space: if open && c.below_lowat(false) {
                c.send_limit(&self.cfg, &mem)
                    .saturating_sub(c.snd.buf.len())
            } else {
                0
            },
        })
    }

    /// RFC 9293 §3.10.4 CLOSE in SYN-SENT: "Delete the TCB": the connection is removed and
    /// nothing is sent (a RST would answer nothing the peer sent). Also for any state when a
    /// socket layer must forget a connection without a word. False if there is none.
    pub fn delete(&mut self, id: ConnId) -> bool {
        if self.conns.get(id).is_none() {
            return false;
        }
        self.close(id, CloseReason::Aborted);
        true
    }

    /// Turns keepalive (RFC 1122 §4.2.3.6) on with `keepalive`'s settings, or off, for one
    /// established connection (a socket's `SO_KEEPALIVE`); the first probe is due one idle time
    /// from `now`. False if there is no such connection or no room for more distinct settings.
    ///
    /// Connections find their keepalive settings in the listener table; a connection's own
    /// settings get a slot there that accepts nothing (one per distinct setting).
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        id: ConnId,
        keepalive: Option<Keepalive>,
    ) -> bool {
        if self.conns.get(id).is_none() {
            return false;
        }
        let slot = match keepalive {
            None => u8::MAX,
            Some(ka) => {
                let listeners = &mut self.cfg.listeners;
                let own = |l: &Listener| {
                    l.addr == CLOSED_LISTENER && l.port == 0 && l.keepalive == Some(ka)
                };
                let i = match listeners.iter().position(own) {
                    Some(i) => i,
                    None => {
                        listeners.push(Listener {
                            addr: CLOSED_LISTENER,
                            port: 0,
                            keepalive: Some(ka),
                            fastopen: None,
                            options: ConnOptions::default(),
                        });
                        listeners.len() - 1
                    }
                };
                match u8::try_from(i) {
                    Ok(i) if i < u8::MAX => i,
                    _ => return false,
                }
            }
        };
        let Some(c) = self.conns.get_mut(id) else {
            return false;
        };
        c.listener = slot;
        keepalive::restart(c, keepalive, now);
        self.last_now = now;
        self.reschedule(id);
        true
    }

    /// Sets connection `id`'s user timeout (RFC 5482, Linux's `TCP_USER_TIMEOUT`): once data
    /// has gone unacknowledged this long since it was sent (counted from when the oldest
    /// segment in flight went out, at the first retransmission timeout), or the peer's window
    /// has stayed shut this long since the first zero-window probe (answered or not, as
    /// Linux's `icsk_probes_tstamp`), the connection is aborted with a RST and the app told
    /// [`CloseReason::TimedOut`], however many retransmissions that took; the retransmission
    /// timer is clamped so the abort comes on time (`tcp_clamp_rto_to_user_timeout`). As in
    /// Linux it replaces the retry limit ([`super::Config::retries`]) while set, does not
    /// apply to the handshake (SYN retries), has millisecond granularity (a longer time than
    /// `u32::MAX` ms is that), and `None` or zero turns it off. False if there is no such
    /// connection.
    pub fn set_user_timeout(&mut self, id: ConnId, timeout: Option<std::time::Duration>) -> bool {
        self.with_limits(id, |l| l.user_timeout_ms = options::timeout_ms(timeout))
    }

    /// Connection `id`'s user timeout ([`Engine::set_user_timeout`]), if one is set.
    pub fn user_timeout(&self, id: ConnId) -> Option<std::time::Duration> {
        self.options(id)?.user_timeout
    }

    /// Sets connection `id`'s receive buffer (Linux's `SO_RCVBUF`, in payload bytes, see
    /// [`ConnOptions::recv_buffer`]; `None`: [`super::Config::recv_buffer`]): from its next
    /// segment on, the window offered is what is free of it, within the window scale the
    /// handshake settled, and never less than the window already offered (RFC 9293
    /// §3.8.6: the right edge does not move back). False if there is no such connection.
    pub fn set_recv_buffer(&mut self, id: ConnId, bytes: Option<u32>) -> bool {
        self.with_limits(id, |l| l.recv_buffer = options::buffer(bytes))
    }

    /// Sets connection `id`'s send buffer (Linux's `SO_SNDBUF`, in payload bytes, see
    /// [`ConnOptions::send_buffer`]; `None`: [`super::Config::send_buffer`]): what the app may
    /// hold queued, sent or not. Lowering it drops nothing already queued; the app is told of
    /// room ([`App::on_writable`]) at the connection's next event. False if there is no such
    /// connection.
    pub fn set_send_buffer(&mut self, id: ConnId, bytes: Option<u32>) -> bool {
        self.with_limits(id, |l| l.send_buffer = options::buffer(bytes))
    }

    /// Sets connection `id`'s low-water mark of unsent bytes (Linux's `TCP_NOTSENT_LOWAT`, see
    /// [`ConnOptions::notsent_lowat`]; `None`: none). False if there is no such connection.
    pub fn set_notsent_lowat(&mut self, id: ConnId, bytes: Option<u32>) -> bool {
        self.with_limits(id, |l| l.notsent_lowat = bytes.unwrap_or(u32::MAX))
    }

    /// The socket options set for connection `id` (from its listener, its `connect_with`, or
    /// the `set_*` calls since).
    pub fn options(&self, id: ConnId) -> Option<ConnOptions> {
        Some(self.conns.get(id)?.limits.options())
    }

    /// What connection `id` knows of itself, as Linux's `TCP_INFO` reports it ([`TcpInfo`]).
    pub fn info(&self, id: ConnId) -> Option<TcpInfo> {
        let c = self.conns.get(id)?;
        Some(TcpInfo {
            state: c.state,
            rtt: c.rtt.srtt(),
            rttvar: c.rtt.srtt().map(|_| c.rtt.rttvar()),
            rto: c.rtt.rto(),
            snd_mss: c.payload_mss() as u32,
            rcv_mss: c.rcv_payload_mss(&self.cfg) as u32,
            cwnd: c.rec.window(),
            ssthresh: c.rec.ssthresh(),
            retransmits: c.retries,
            unacked: c.flight(),
            notsent: c.unsent() as u32,
            snd_wnd: c.snd.wnd,
            rcv_wnd: c.rcv_open(),
            bytes_acked: c.bytes_acked,
            bytes_received: c.bytes_received,
            delivery_rate: None,
        })
    }

    /// Runs `f` on connection `id`'s socket options; false if there is no such connection.
    fn with_limits(&mut self, id: ConnId, f: impl FnOnce(&mut Limits)) -> bool {
        let Some(c) = self.conns.get_mut(id) else {
            return false;
        };
        f(&mut c.limits);
        true
    }
}
