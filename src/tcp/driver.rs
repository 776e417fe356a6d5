//! What a driver outside the engine may do to a connection between its segments and timers:
//! wake its app on a schedule (a load generator's open loop) and shut it down (like
//! `shutdown(2)` on a socket). Both then transmit what became due, as any event does.

use super::contract::{App, Shutdown};
use super::deliver;
use super::event::Outcome;
use super::{ConnId, Engine};
use crate::time::Instant;
use crate::tx::Tx;

impl<A: App> Engine<A> {
    /// Calls [`App::on_wake`] for connection `id` with `due`, the time the driver meant it to
    /// act, then sends what the app wrote as the windows allow. False if there is no such
    /// connection (it closed, or is in TIME-WAIT).
    pub fn wake<T: Tx>(&mut self, now: Instant, id: ConnId, due: Instant, tx: &mut T) -> bool {
        self.last_now = now;
        let woken = self.with_conn(id, now, tx, |c, cx| {
            let (mut io, state, _) = deliver::io(c, cx.cfg, cx.mem, id, now);
            cx.app.on_wake(state, &mut io, due);
        });
        if woken.is_none() {
            return false;
        }
        self.finish(id, Outcome::Keep, tx);
        true
    }

    /// Shuts connection `id` down as far as `how` (never less than the app already did):
    /// [`Shutdown::Write`] sends a FIN after the queued data and keeps receiving,
    /// [`Shutdown::Close`] also refuses further data, [`Shutdown::Abort`] resets. False if
    /// there is no such connection.
    pub fn shutdown<T: Tx>(&mut self, now: Instant, id: ConnId, how: Shutdown, tx: &mut T) -> bool {
        self.last_now = now;
        let Some(c) = self.conns.get_mut(id) else {
            return false;
        };
        c.app.shutdown = c.app.shutdown.max(how);
        self.finish(id, Outcome::Keep, tx);
        true
    }
}
