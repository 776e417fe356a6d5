//! A connection's timers (after quinn-proto's `connection/timer.rs` `TimerTable`): one
//! deadline per [`Timer`], and the bookkeeping that lets one entry in the engine's timer wheel
//! stand for the earliest of them.
//!
//! The wheel has no removal, so stopping or moving a timer leaves its old entry in place:
//! cancellation is lazy. `scheduled` names the entry that is live (the earliest deadline when
//! it was put in); an entry that fires at any other instant is stale and ignored. A later
//! deadline never gets an entry of its own while an earlier one is live: the live entry fires
//! first and the connection reschedules from there. `wheel_latest` remembers the latest entry
//! still in the wheel, and a deadline at or after it reuses that entry (which then fires
//! early, finds nothing due and reschedules) instead of piling up one more: a deadline pushed
//! later on every request (an app's idle timeout) or every segment (keepalive) would otherwise
//! leave one stale entry per move. So a connection's entries beyond its live one are only
//! those that fire before it.

use crate::time::Instant;

/// The timers of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The sender's timer, one deadline as Linux's `icsk_retransmit_timer`: retransmission
    /// (RFC 6298 §5) of data, FIN, SYN or SYN-ACK, or in its place the persist timer that
    /// probes a zero window (RFC 9293 §3.8.6.1), RACK's reordering timer or the tail loss
    /// probe (RFC 8985 §6.3, §7.3), whichever the connection's state calls for.
    Retransmit,
    /// The delayed ACK (RFC 1122 §4.2.3.2, RFC 5681 §4.2).
    DelayedAck,
    /// Keepalive (RFC 1122 §4.2.3.6), in ESTABLISHED and CLOSE-WAIT.
    Keepalive,
    /// The FIN-WAIT-2 timeout of a fully closed connection (Linux's `tcp_fin_timeout`).
    FinWait2,
    /// The app's own deadline ([`crate::tcp::contract::Io::set_deadline`], [`crate::tcp::contract::App::on_deadline`]).
    App,
}

impl Timer {
    /// How many kinds of timer there are.
    const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }
}

/// One deadline per [`Timer`] and the connection's entries in the engine's timer wheel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; Timer::COUNT],
    /// The wheel entry that counts: the earliest deadline when it was put in.
    scheduled: Option<Instant>,
    /// The latest deadline put in the wheel that has not fired yet.
    wheel_latest: Option<Instant>,
}

impl Timers {
    /// Arms `timer` for `at`, replacing any deadline it had.
    pub(crate) fn arm(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Arms `timer` for `at` unless it is armed already (then its deadline stands).
    pub(crate) fn arm_if_stopped(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer.index()].get_or_insert(at);
    }

    /// Stops `timer`.
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    /// The deadline of `timer`, to be set or cleared in place (the app's, through its `Io`).
    pub(crate) fn deadline_mut(&mut self, timer: Timer) -> &mut Option<Instant> {
        &mut self.deadlines[timer.index()]
    }

    /// Whether `timer` is armed.
    pub(crate) fn is_armed(&self, timer: Timer) -> bool {
        self.deadlines[timer.index()].is_some()
    }

    /// Stops `timer` if it is due at `now`, and says whether it was.
    pub(crate) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        let due = self.deadlines[timer.index()].is_some_and(|at| at <= now);
        if due {
            self.stop(timer);
        }
        due
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// After the deadlines changed: the instant a new wheel entry is needed for, if any. None
    /// when no timer is armed, when the live entry fires no later than the earliest deadline
    /// (it will reschedule then), or when an entry still in the wheel fires no later than it
    /// (that entry becomes the live one).
    pub(crate) fn schedule(&mut self) -> Option<Instant> {
        let at = self.next()?;
        if self.scheduled.is_some_and(|s| s <= at) {
            return None;
        }
        if let Some(latest) = self.wheel_latest.filter(|&l| l <= at) {
            self.scheduled = Some(latest); // that entry is still in the wheel
            return None;
        }
        self.scheduled = Some(at);
        self.wheel_latest = Some(self.wheel_latest.map_or(at, |l| l.max(at)));
        Some(at)
    }

    /// The wheel entry for `at` fired: true if it is the live one, and the connection's due
    /// timers are to run (the caller then reschedules); false for a stale entry.
    pub(crate) fn fire(&mut self, at: Instant) -> bool {
        if self.wheel_latest == Some(at) {
            self.wheel_latest = None;
        }
        if self.scheduled != Some(at) {
            return false; // superseded by an earlier entry
        }
        self.scheduled = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T0: Instant = Instant::from_secs(100);

    fn ms(n: u64) -> Instant {
        T0 + Duration::from_millis(n)
    }

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.arm(Timer::Keepalive, ms(300));
        t.arm(Timer::Retransmit, ms(200));
        t.arm(Timer::DelayedAck, ms(40));
        assert_eq!(t.next(), Some(ms(40)));
        t.stop(Timer::DelayedAck);
        assert_eq!(t.next(), Some(ms(200)));
        assert!(t.is_armed(Timer::Retransmit) && !t.is_armed(Timer::DelayedAck));
    }

    #[test]
    fn arm_if_stopped_keeps_an_armed_deadline() {
        let mut t = Timers::default();
        t.arm_if_stopped(Timer::Retransmit, ms(200));
        t.arm_if_stopped(Timer::Retransmit, ms(100));
        assert_eq!(t.next(), Some(ms(200)));
        t.arm(Timer::Retransmit, ms(100));
        assert_eq!(t.next(), Some(ms(100)));
    }

    #[test]
    fn expire_stops_only_a_due_timer() {
        let mut t = Timers::default();
        t.arm(Timer::Retransmit, ms(200));
        assert!(!t.expire(Timer::Retransmit, ms(199)));
        assert!(t.is_armed(Timer::Retransmit));
        assert!(t.expire(Timer::Retransmit, ms(200)));
        assert!(!t.is_armed(Timer::Retransmit));
        assert!(!t.expire(Timer::Retransmit, ms(300)));
    }

    #[test]
    fn a_later_deadline_waits_for_the_live_entry() {
        let mut t = Timers::default();
        t.arm(Timer::Retransmit, ms(200));
        assert_eq!(t.schedule(), Some(ms(200)));
        // Moving the deadline later adds nothing: the entry at 200 fires first.
        t.arm(Timer::Retransmit, ms(400));
        assert_eq!(t.schedule(), None);
        // Moving it earlier needs an entry; the one at 200 becomes stale.
        t.arm(Timer::Retransmit, ms(100));
        assert_eq!(t.schedule(), Some(ms(100)));
        assert!(!t.fire(ms(200)));
        assert!(t.fire(ms(100)));
        // After firing, the next deadline gets an entry again.
        t.arm(Timer::Retransmit, ms(400));
        assert_eq!(t.schedule(), Some(ms(400)));
    }

    #[test]
    fn an_entry_still_in_the_wheel_is_reused() {
        let mut t = Timers::default();
        t.arm(Timer::Keepalive, ms(7_200_000));
        assert_eq!(t.schedule(), Some(ms(7_200_000)));
        // An earlier timer supersedes the keepalive entry, which stays in the wheel...
        t.arm(Timer::DelayedAck, ms(40));
        assert_eq!(t.schedule(), Some(ms(40)));
        assert!(t.fire(ms(40)));
        t.stop(Timer::DelayedAck);
        // ...and becomes live again without a second entry.
        assert_eq!(t.schedule(), None);
        assert!(t.fire(ms(7_200_000)));
    }

    #[test]
    fn a_deadline_pushed_later_on_every_request_leaves_no_pile_of_entries() {
        // A keep-alive connection: a request every second, its response in flight for 50 ms
        // (the retransmission timer armed, then stopped by the ACK), and the app's idle
        // deadline moved 75 s past every response. `wheel` is the engine's wheel, for this
        // connection: entries fire in order and the connection reschedules after each.
        let mut t = Timers::default();
        let mut wheel: Vec<Instant> = Vec::new();
        let mut most = 0;
        let run_until = |t: &mut Timers, wheel: &mut Vec<Instant>, now: Instant| {
            wheel.sort();
            while let Some(&at) = wheel.first().filter(|&&at| at <= now) {
                wheel.remove(0);
                if t.fire(at) {
                    t.expire(Timer::Retransmit, at);
                    t.expire(Timer::App, at);
                    wheel.extend(t.schedule());
                }
            }
        };
        for request in 0..1000u64 {
            let now = ms(request * 1000);
            run_until(&mut t, &mut wheel, now);
            *t.deadline_mut(Timer::App) = Some(now + Duration::from_secs(75));
            t.arm(Timer::Retransmit, now + Duration::from_millis(200));
            wheel.extend(t.schedule());
            run_until(&mut t, &mut wheel, now + Duration::from_millis(50));
            t.stop(Timer::Retransmit);
            wheel.extend(t.schedule());
            most = most.max(wheel.len());
        }
        assert!(most <= 2, "{most} entries in the wheel at once: {wheel:?}");
    }

    #[test]
    fn an_entry_that_fires_before_the_deadline_stands_for_it_and_reschedules() {
        let mut t = Timers::default();
        *t.deadline_mut(Timer::App) = Some(ms(1000));
        assert_eq!(t.schedule(), Some(ms(1000)));
        assert!(t.fire(ms(1000)));
        *t.deadline_mut(Timer::App) = Some(ms(3000));
        assert_eq!(t.schedule(), Some(ms(3000)));
        // Moved later while its entry is live: no new entry; the entry at 3000 fires early...
        *t.deadline_mut(Timer::App) = Some(ms(5000));
        assert_eq!(t.schedule(), None);
        assert!(t.fire(ms(3000)));
        assert!(!t.expire(Timer::App, ms(3000)), "not due yet");
        // ...and the connection then schedules the real deadline.
        assert_eq!(t.schedule(), Some(ms(5000)));
        assert!(t.fire(ms(5000)));
        assert!(t.expire(Timer::App, ms(5000)));
    }

    #[test]
    fn nothing_is_scheduled_without_an_armed_timer() {
        let mut t = Timers::default();
        assert_eq!(t.schedule(), None);
        t.arm(Timer::Retransmit, ms(5));
        t.stop(Timer::Retransmit);
        assert_eq!(t.schedule(), None);
    }
}
