//! User calls made from outside an event (RFC 9293 §3.9.1: OPEN, SEND, RECEIVE, CLOSE, ABORT,
//! STATUS): what a socket layer over the engine needs beyond the [`App`] callbacks.
//!
//! The built-in apps act only inside callbacks. A socket layer (the packetdrill shim, a future
//! blocking API) acts whenever its caller does: it opens and closes listeners at `listen()` and
//! `close()` time, writes, shuts down or aborts a connection at any moment, and asks how much
//! is buffered for `poll()`. Each call here runs the same delivery and transmission steps an
//! event does, so what goes on the wire is exactly what a callback doing the same would send.

use std::net::{IpAddr, Ipv6Addr};

use super::event::Outcome;
use super::timer::Timer;
use super::{ConnId, Engine, Keepalive, Listener, State, deliver};
use crate::app::{App, CloseReason, Io};
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
        let open = c.app.shutdown == crate::app::Shutdown::Open;
        // Outside an event the budget counts the connection's own bytes already.
        let mut mem = self.memory.budget.clone();
        mem.sub(c.heap_bytes());
        Some(Buffers {
            received: c.rcv.buf.len(),
            send: c.snd.buf.len(),
            unsent: c.unsent(),
            send_space: if open {
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
        c.ka_probes = 0;
        if matches!(c.state, State::Established | State::CloseWait) {
            match keepalive {
                Some(ka) => c.timers.arm(Timer::Idle, now + ka.idle),
                None => c.timers.stop(Timer::Idle),
            }
        }
        self.last_now = now;
        self.reschedule(id);
        true
    }

    /// Sets connection `id`'s user timeout (RFC 5482, Linux's `TCP_USER_TIMEOUT`): once data
    /// (or a zero-window probe) has gone unacknowledged this long, the connection is aborted
    /// with a RST and the app told [`CloseReason::TimedOut`], however many retransmissions
    /// that took; the retransmission timer is clamped so the abort comes on time. As in Linux
    /// it replaces the retry limit ([`super::Config::retries`]) while set, has millisecond
    /// granularity (a longer time than `u32::MAX` ms is that), and `None` or zero turns it off.
    /// False if there is no such connection.
    pub fn set_user_timeout(&mut self, id: ConnId, timeout: Option<std::time::Duration>) -> bool {
        let Some(c) = self.conns.get_mut(id) else {
            return false;
        };
        c.user_timeout_ms = timeout.map_or(0, |t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX));
        true
    }

    /// Connection `id`'s user timeout ([`Engine::set_user_timeout`]), if one is set.
    pub fn user_timeout(&self, id: ConnId) -> Option<std::time::Duration> {
        let ms = self.conns.get(id)?.user_timeout_ms;
        (ms > 0).then(|| std::time::Duration::from_millis(ms.into()))
    }
}
