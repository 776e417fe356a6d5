//! NewReno's window (RFC 5681 §3.1, RFC 6582), with the initial window of RFC 6928.
//!
//! RFC 5681 §3.1: in slow start (cwnd < ssthresh) the window grows by what is acknowledged
//! (Linux counts every acknowledged byte, RFC 3465 style, capped at ssthresh); in congestion
//! avoidance "cwnd += SMSS*SMSS/cwnd" per ACK, done here as byte counting: one SMSS per cwnd of
//! acknowledged bytes (RFC 3465 §2.1). A congestion event sets "ssthresh = max (FlightSize / 2,
//! 2*SMSS)" — as Linux's `tcp_reno_ssthresh`, half the window; a timeout also sets cwnd to one
//! segment ("Loss Window").

use std::time::Duration;

use super::{CongestionControl, Prior};
use crate::time::Instant;

/// NewReno's per-connection window state.
#[derive(Debug, Clone, Copy)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    mss: u32,
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    acked_in_ca: u32,
    prior: Prior,
}

impl NewReno {
    /// Initial window `iw` segments (RFC 6928: 10), ssthresh "arbitrarily high".
    pub fn new(mss: u16, iw: u32) -> NewReno {
        let mss = u32::from(mss.max(1));
        let cwnd = iw.max(1) * mss;
        NewReno {
            cwnd,
            ssthresh: u32::MAX,
            mss,
            acked_in_ca: 0,
            prior: Prior {
                cwnd,
                ssthresh: u32::MAX,
            },
        }
    }

    fn reduce(&mut self) {
        self.prior = Prior {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
        };
        self.ssthresh = (self.cwnd / 2).max(2 * self.mss);
        self.acked_in_ca = 0;
    }
}

impl CongestionControl for NewReno {
    fn window(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, acked: u32, _now: Instant, _rtt: Duration, app_limited: bool) {
        if app_limited || acked == 0 {
            return;
        }
        let mut acked = acked;
        if self.cwnd < self.ssthresh {
            let room = self.ssthresh - self.cwnd;
            let grow = acked.min(room);
            self.cwnd = self.cwnd.saturating_add(grow);
            acked -= grow;
            if acked == 0 {
                return;
            }
        }
        self.acked_in_ca = self.acked_in_ca.saturating_add(acked);
        if self.acked_in_ca >= self.cwnd {
            self.acked_in_ca -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }

    fn on_congestion_event(&mut self, _now: Instant) {
        self.reduce();
    }

    fn set_window(&mut self, cwnd: u32) {
        self.cwnd = cwnd.max(self.mss);
    }

    fn on_recovery_end(&mut self) {
        self.cwnd = self.ssthresh;
    }

    fn on_timeout(&mut self, _now: Instant) {
        self.reduce();
        self.cwnd = self.mss;
    }

    fn undo(&mut self) {
        self.prior.restore(&mut self.cwnd, &mut self.ssthresh);
    }

    fn restart(&mut self, cwnd: u32, ssthresh: u32) {
        self.cwnd = cwnd.max(self.mss);
        self.ssthresh = ssthresh;
        self.acked_in_ca = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(10);

    fn t() -> Instant {
        Instant::from_secs(1)
    }

    #[test]
    fn slow_start_doubles_the_window_per_round_trip() {
        let mut cc = NewReno::new(1000, 10);
        for _ in 0..5 {
            cc.on_ack(2000, t(), RTT, false);
        }
        assert_eq!(cc.window(), 20_000);
    }

    #[test]
    fn congestion_avoidance_adds_one_segment_per_window_of_acknowledged_bytes() {
        // RFC 5681 §3.1: "cwnd += SMSS*SMSS/cwnd" per ACK, about one SMSS per RTT.
        let mut cc = NewReno::new(1000, 10);
        cc.on_congestion_event(t());
        cc.on_recovery_end();
        assert_eq!(cc.window(), 5000, "half of 10 segments");
        for _ in 0..5 {
            cc.on_ack(1000, t(), RTT, false);
        }
        assert_eq!(cc.window(), 6000);
        for _ in 0..6 {
            cc.on_ack(1000, t(), RTT, false);
        }
        assert_eq!(cc.window(), 7000);
    }

    #[test]
    fn an_application_limited_flow_does_not_grow_its_window() {
        let mut cc = NewReno::new(1000, 10);
        cc.on_ack(5000, t(), RTT, true);
        assert_eq!(cc.window(), 10_000);
    }

    #[test]
    fn a_timeout_sets_the_loss_window_and_ssthresh_to_half() {
        // RFC 5681 §3.1: "ssthresh = max (FlightSize / 2, 2*SMSS)" and "the congestion window
        // MUST be set to no more than the loss window, LW, which equals 1 full-sized segment".
        let mut cc = NewReno::new(1000, 10);
        cc.on_timeout(t());
        assert_eq!((cc.window(), cc.ssthresh()), (1000, 5000));
        cc.on_ack(4000, t(), RTT, false);
        assert_eq!(cc.window(), 5000, "slow start stops at ssthresh");
        cc.undo();
        assert_eq!((cc.window(), cc.ssthresh()), (10_000, u32::MAX));
    }
}
