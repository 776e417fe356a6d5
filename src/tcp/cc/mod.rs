//! Congestion control behind one trait: CUBIC (RFC 9438, the default, as in Linux) and NewReno
//! (RFC 5681 / RFC 6582, selectable).
//!
//! Loss detection is not in here: the scoreboard and RACK decide what is lost, PRR (RFC 6937)
//! paces the window during recovery. A controller only answers "how large may the window be":
//! it grows on acknowledged data, reduces once per congestion event (entering recovery or a
//! timeout), and can undo a reduction that turned out spurious (RFC 5682 in spirit; RFC 9438
//! §4.9).

mod cubic;
mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

use std::time::Duration;

use crate::time::Instant;

/// Which congestion controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// CUBIC (RFC 9438), Linux's default.
    #[default]
    Cubic,
    /// NewReno (RFC 5681, RFC 6582).
    NewReno,
}

/// What every congestion controller does.
pub trait CongestionControl {
    /// The congestion window, in bytes.
    fn window(&self) -> u32;

    /// The slow-start threshold, in bytes (`u32::MAX` until the first congestion event).
    fn ssthresh(&self) -> u32;

    /// `acked` bytes were newly delivered (cumulatively or selectively) outside recovery, at
    /// `now`, with `rtt` the current smoothed RTT. `app_limited`: the window was not full, so
    /// it must not grow (RFC 7661 in spirit; Linux `tcp_is_cwnd_limited`).
    fn on_ack(&mut self, acked: u32, now: Instant, rtt: Duration, app_limited: bool);

    /// A congestion event (a loss detected, entering recovery): set ssthresh, remember what
    /// an undo needs. The window itself is then driven by PRR until
    /// [`CongestionControl::on_recovery_end`].
    fn on_congestion_event(&mut self, now: Instant);

    /// During recovery PRR sets the window.
    fn set_window(&mut self, cwnd: u32);

    /// Recovery is over (SND.UNA passed the recovery point): the window becomes ssthresh.
    fn on_recovery_end(&mut self);

    /// The retransmission timer expired: a congestion event, and the window collapses to
    /// one segment (RFC 5681 §3.1, RFC 9438 §4.8).
    fn on_timeout(&mut self, now: Instant);

    /// The last reduction was spurious (D-SACK or timestamps proved the original delivered):
    /// restore the window, ssthresh and the controller's own state from before it.
    fn undo(&mut self);

    /// The sender was idle longer than an RTO (RFC 5681 §4.1): the window restarts at `cwnd`
    /// with `ssthresh` (Linux `tcp_cwnd_restart`), and the window's growth starts afresh.
    fn restart(&mut self, cwnd: u32, ssthresh: u32);
}

/// Per-connection controller: an enum, so a connection holds it inline (no allocation).
#[derive(Debug, Clone, Copy)]
pub enum Controller {
    /// CUBIC.
    Cubic(Cubic),
    /// NewReno.
    NewReno(NewReno),
}

impl Controller {
    /// A controller of `algorithm` with an initial window of `iw` segments of `mss` bytes
    /// (RFC 6928: 10).
    pub fn new(algorithm: Algorithm, mss: u16, iw: u32) -> Controller {
        match algorithm {
            Algorithm::Cubic => Controller::Cubic(Cubic::new(mss, iw)),
            Algorithm::NewReno => Controller::NewReno(NewReno::new(mss, iw)),
        }
    }

    fn inner(&self) -> &dyn CongestionControl {
        match self {
            Controller::Cubic(c) => c,
            Controller::NewReno(c) => c,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn CongestionControl {
        match self {
            Controller::Cubic(c) => c,
            Controller::NewReno(c) => c,
        }
    }
}

impl CongestionControl for Controller {
    fn window(&self) -> u32 {
        self.inner().window()
    }
    fn ssthresh(&self) -> u32 {
        self.inner().ssthresh()
    }
    fn on_ack(&mut self, acked: u32, now: Instant, rtt: Duration, app_limited: bool) {
        self.inner_mut().on_ack(acked, now, rtt, app_limited)
    }
    fn on_congestion_event(&mut self, now: Instant) {
        self.inner_mut().on_congestion_event(now)
    }
    fn set_window(&mut self, cwnd: u32) {
        self.inner_mut().set_window(cwnd)
    }
    fn on_recovery_end(&mut self) {
        self.inner_mut().on_recovery_end()
    }
    fn on_timeout(&mut self, now: Instant) {
        self.inner_mut().on_timeout(now)
    }
    fn undo(&mut self) {
        self.inner_mut().undo()
    }
    fn restart(&mut self, cwnd: u32, ssthresh: u32) {
        self.inner_mut().restart(cwnd, ssthresh)
    }
}

/// The window and threshold before the last reduction, for [`CongestionControl::undo`]:
/// Linux's `prior_cwnd` / `prior_ssthresh`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Prior {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
}

impl Prior {
    /// Linux `tcp_undo_cwnd_reduction`: "cwnd = max(cwnd, prior_cwnd)", and ssthresh back to
    /// at least its prior value.
    pub(crate) fn restore(self, cwnd: &mut u32, ssthresh: &mut u32) {
        *cwnd = (*cwnd).max(self.cwnd);
        *ssthresh = (*ssthresh).max(self.ssthresh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_controllers_start_at_the_initial_window_and_undo_restores_it() {
        for alg in [Algorithm::Cubic, Algorithm::NewReno] {
            let mut cc = Controller::new(alg, 1000, 10);
            assert_eq!(cc.window(), 10_000, "{alg:?}");
            assert_eq!(cc.ssthresh(), u32::MAX, "{alg:?}");
            let now = Instant::from_secs(1);
            cc.on_timeout(now);
            assert_eq!(cc.window(), 1000, "{alg:?}: one segment after a timeout");
            cc.undo();
            assert_eq!(cc.window(), 10_000, "{alg:?}");
            assert_eq!(cc.ssthresh(), u32::MAX, "{alg:?}");
        }
    }
}
