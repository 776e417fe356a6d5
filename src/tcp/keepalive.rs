//! Keepalive (RFC 1122 §4.2.3.6): a connection in ESTABLISHED or CLOSE-WAIT that has not
//! heard from its peer for the listener's (or `Engine::set_keepalive`'s) idle time is probed
//! with SEG.SEQ = SND.NXT - 1 and no data, every interval, and aborted after `count`
//! unanswered probes. Like Linux, the timer is not moved on every segment: it is armed once,
//! and when it fires it counts idleness from the last segment heard.

use super::Keepalive;
use super::conn::Conn;
use super::contract::{App, CloseReason};
use super::event::{Cx, Outcome};
use super::output;
use super::timer::Timer;
use crate::state::State;
use crate::time::Instant;
use crate::tx::Tx;

/// Keepalive: probe a connection idle since it last heard from the peer, abort it after
/// `count` unanswered probes.
pub(super) fn fire<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
) -> Option<Outcome> {
    let ka = cx
        .cfg
        .listeners
        .get(usize::from(c.listener))
        .and_then(|l| l.keepalive)?;
    if !matches!(c.state, State::Established | State::CloseWait) {
        return None;
    }
    if c.flight() > 0 {
        // Retransmission is already probing the peer.
        c.timers.arm(Timer::Keepalive, cx.now + ka.idle);
        return None;
    }
    // Heard from the peer since the timer was armed: idle only since then.
    if c.ka_probes == 0 && cx.now < c.last_rx + ka.idle {
        c.timers.arm(Timer::Keepalive, c.last_rx + ka.idle);
        return None;
    }
    if u32::from(c.ka_probes) >= ka.count {
        cx.stats.keepalive_timeouts += 1;
        output::send_rst(c, cx);
        return Some(Outcome::Close(CloseReason::KeepaliveTimeout));
    }
    c.ka_probes = c.ka_probes.saturating_add(1);
    cx.stats.keepalive_probes += 1;
    output::send_probe(c, cx);
    c.timers.arm(Timer::Keepalive, cx.now + ka.interval);
    None
}

/// Any acceptable segment proves the peer alive. Like Linux, the keepalive timer is not moved
/// on every segment: it is armed once, and when it fires it counts idleness from `last_rx`.
pub(super) fn touch<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    c.ka_probes = 0;
    c.last_rx = cx.now;
    if let Some(ka) = cx
        .cfg
        .listeners
        .get(usize::from(c.listener))
        .and_then(|l| l.keepalive)
    {
        if matches!(c.state, State::Established | State::CloseWait) {
            c.timers.arm_if_stopped(Timer::Keepalive, cx.now + ka.idle);
        }
    }
}

/// Keepalive changed to `keepalive` on `c` (`Engine::set_keepalive`): the probes counted so
/// far are forgotten and, in a state that keeps alive, the idle time starts now.
pub(super) fn restart<S>(c: &mut Conn<S>, keepalive: Option<Keepalive>, now: Instant) {
    c.ka_probes = 0;
    if matches!(c.state, State::Established | State::CloseWait) {
        match keepalive {
            Some(ka) => c.timers.arm(Timer::Keepalive, now + ka.idle),
            None => c.timers.stop(Timer::Keepalive),
        }
    }
}
