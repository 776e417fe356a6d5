//! What a connection does when its timers fire: retransmission (RFC 6298 §5) with the retry
//! limit, SYN and SYN-ACK retransmission, zero-window persist probes (RFC 9293 §3.8.6.1),
//! the delayed ACK (RFC 1122 §4.2.3.2), keepalive (RFC 1122 §4.2.3.6) and the FIN-WAIT-2
//! timeout; and the app's own deadline ([`App::on_deadline`]). The timers themselves are in
//! [`super::timer`]. A user timeout (RFC 5482, Linux's `TCP_USER_TIMEOUT`) bounds how long
//! data or probes may go unacknowledged, whatever the retry limit says.

use super::conn::Conn;
use super::contract::{App, CloseReason};
use super::event::{Cx, Outcome};
use super::recovery::LossTimer;
use super::timer::Timer;
use super::{deliver, keepalive, output};
use crate::state::State;
use crate::time::Instant;
use crate::tx::Tx;

use std::time::Duration;

/// Runs whichever of the connection's timers are due.
pub(crate) fn handle_timeout<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
) -> Outcome {
    let now = cx.now;
    if c.timers.expire(Timer::DelayedAck, now) {
        c.ack_now = true;
    }
    if c.timers.expire(Timer::FinWait2, now) && c.state == State::FinWait2 {
        cx.stats.fin_wait2_timeouts += 1;
        return Outcome::Close(CloseReason::Normal);
    }
    if c.timers.expire(Timer::Keepalive, now) {
        if let Some(outcome) = keepalive::fire(c, cx) {
            return outcome;
        }
    }
    if c.timers.expire(Timer::Retransmit, now) {
        if let Some(outcome) = retransmission(c, cx) {
            return outcome;
        }
    }
    // Last: a connection the timers above closed has no app left to tell. What the app does
    // here is delivered and sent after the event, as for any callback.
    if c.timers.expire(Timer::App, now) {
        let (mut io, state, _) = deliver::io(c, cx.cfg, cx.mem, cx.id, now);
        cx.app.on_deadline(state, &mut io);
    }
    Outcome::Keep
}

/// The retransmission timer: resend SYN / SYN-ACK, probe a zero window, or go back to
/// SND.UNA and resend; abort after the retry limit.
fn retransmission<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> Option<Outcome> {
    let now = cx.now;
    match c.state {
        State::SynSent | State::SynReceived => syn_retransmit(c, cx),
        _ if c.flight() == 0 && c.unsent() > 0 => persist(c, cx),
        _ if c.flight() > 0 => match c.rec.armed() {
            // RFC 8985 §6.3: RACK's reordering window ran out; what it deems lost now goes
            // out as the window allows.
            LossTimer::Reorder => {
                let srtt = c.rtt.srtt().unwrap_or_else(|| c.rtt.rto());
                c.rec.on_reorder_timeout(now, srtt, c.snd.max);
                output::transmit(c, cx);
                c.arm_loss_timer(now);
                None
            }
            // RFC 8985 §7.3.
            LossTimer::Probe => {
                note_timeout_start(c, now - c.rtt.rto());
                output::send_loss_probe(c, cx);
                None
            }
            LossTimer::Retransmission => {
                // The timer was armed one RTO (not backed off yet) after the oldest segment
                // in flight went out, if the scoreboard does not say when.
                if let Some(abort) = retry_or_abort(c, cx, now - c.rtt.rto()) {
                    return Some(abort);
                }
                // Everything unSACKed is lost; the retransmissions start from SND.UNA, one
                // segment now and more as the window grows again (SND.NXT does not move back:
                // the scoreboard knows what to resend).
                c.rec.on_retransmission_timeout(now, c.snd.max);
                c.rtt_probe = None; // Karn: no sample from a retransmission
                output::transmit(c, cx);
                c.rec.arm_retransmission();
                c.timers
                    .arm_if_stopped(Timer::Retransmit, now + c.rtt.rto());
                clamp_to_user_timeout(c, now);
                None
            }
        },
        _ => None,
    }
}

/// Our SYN or SYN-ACK again, with the RTO backed off; after `Config::syn_retries` (or
/// `synack_retries`) the open fails.
fn syn_retransmit<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> Option<Outcome> {
    let now = cx.now;
    let limit = if c.state == State::SynSent {
        cx.cfg.syn_retries
    } else {
        cx.cfg.synack_retries
    };
    if c.retries >= limit {
        if c.state == State::SynSent || !c.passive {
            cx.stats.failed_opens += 1;
        } else {
            cx.stats.syn_recv_timeouts += 1;
        }
        return Some(Outcome::Close(CloseReason::TimedOut));
    }
    c.retries += 1;
    c.rtt.back_off();
    output::send_syn(c, cx.cfg, cx.stats, cx.tx, now);
    cx.stats.rto_retransmits += 1;
    c.timers.arm(Timer::Retransmit, now + c.rtt.rto());
    None
}

/// Persist: the peer's window is closed, or open less than sender SWS avoidance waits for;
/// probe it, backing off. The connection lives as long as the probes are answered (any ACK
/// resets `retries`), or with a user timeout until the window has stayed shut that long since
/// the first probe (Linux's `icsk_probes_tstamp`).
fn persist<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> Option<Outcome> {
    let now = cx.now;
    if let Some(abort) = retry_or_abort(c, cx, now) {
        return Some(abort);
    }
    // RFC 1122 §4.2.3.4: a small window is filled when "the override timeout occurs" (as
    // Linux's tcp_write_wakeup does); a closed one gets a zero-window probe.
    if !output::send_into_small_window(c, cx) {
        cx.stats.window_probes += 1;
        output::send_probe(c, cx);
    }
    c.timers
        .arm_if_stopped(Timer::Retransmit, now + c.rtt.rto());
    clamp_to_user_timeout(c, now);
    None
}

/// One more retransmission (or probe), with the RTO backed off; after `Config::retries` of them
/// the connection is aborted with a RST (RFC 9293 §3.8.3, R2), or earlier once the user timeout
/// has passed since the data was sent: RFC 5482 §3, "the USER TIMEOUT [...] controls how long
/// transmitted data may remain unacknowledged before a connection is dropped" (Linux's
/// `tcp_write_timeout` with `icsk_user_timeout`, which replaces the retry count when set).
/// `since` is when the episode started if nothing in flight says so ([`note_timeout_start`]).
fn retry_or_abort<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    since: Instant,
) -> Option<Outcome> {
    let start = note_timeout_start(c, since);
    let user_timed_out = c.limits.user_timeout_ms > 0
        && cx.now - start >= Duration::from_millis(c.limits.user_timeout_ms.into());
    let retries_out = c.limits.user_timeout_ms == 0 && c.retries >= cx.cfg.retries;
    if retries_out || user_timed_out {
        cx.stats.timeouts += 1;
        output::send_rst(c, cx);
        return Some(Outcome::Close(CloseReason::TimedOut));
    }
    c.retries += 1;
    c.rtt.back_off();
    None
}

/// The retransmission timer, however it was armed, fires no later than the user timeout's end,
/// so the abort comes on time (Linux's `tcp_clamp_rto_to_user_timeout`).
fn clamp_to_user_timeout<S>(c: &mut Conn<S>, now: Instant) {
    if c.limits.user_timeout_ms == 0 {
        return;
    }
    let Some(start) = c.timeout_start else {
        return;
    };
    let end = (start + Duration::from_millis(c.limits.user_timeout_ms.into())).max(now);
    if let Some(at) = c.timers.deadline_mut(Timer::Retransmit) {
        *at = (*at).min(end);
    }
}

/// What the user timeout counts from ([`Conn::timeout_start`]), noted at the first
/// retransmission or probe of an episode: when the oldest segment in flight went out, else
/// `since` (for a zero-window probe its own time, as Linux's `icsk_probes_tstamp`).
fn note_timeout_start<S>(c: &mut Conn<S>, since: Instant) -> Instant {
    let head = c.rec.scoreboard().segments().next().map(|s| s.sent_at);
    *c.timeout_start.get_or_insert(head.unwrap_or(since))
}
