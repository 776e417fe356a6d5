//! NewReno congestion control (RFC 5681 §3, RFC 6582), initial window per RFC 6928.
//!
//! RFC 5681 §3.1: slow start while cwnd < ssthresh ("cwnd += min (N, SMSS)"), then congestion
//! avoidance ("cwnd += SMSS*SMSS/cwnd"); on a retransmission timeout "ssthresh = max
//! (FlightSize / 2, 2*SMSS)" and cwnd = 1 SMSS. §3.2 / RFC 6582 §3.2: on the third duplicate
//! ACK record `recover`, set ssthresh as above, retransmit, cwnd = ssthresh + 3*SMSS; inflate by
//! SMSS per further duplicate; a partial ACK retransmits the next hole and deflates; a full ACK
//! (covering `recover`) ends recovery with cwnd = min(ssthresh, FlightSize + SMSS).

use super::SeqNumber;

/// What the sender should do after an ACK was fed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckAction {
    /// Nothing special: send what the window allows.
    None,
    /// Retransmit the first unacknowledged segment now (fast retransmit or partial ACK).
    RetransmitFirst,
}

/// Per-connection NewReno state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    mss: u32,
    dupacks: u8,
    recover: Option<SeqNumber>,
}

impl NewReno {
    /// Initial window: `iw` segments (RFC 6928: 10), ssthresh "arbitrarily high".
    pub(crate) fn new(mss: u16, iw: u32) -> NewReno {
        let mss = u32::from(mss.max(1));
        NewReno {
            cwnd: iw.max(1) * mss,
            ssthresh: u32::MAX,
            mss,
            dupacks: 0,
            recover: None,
        }
    }

    /// The congestion window, in bytes.
    pub(crate) fn window(&self) -> u32 {
        self.cwnd
    }

    /// Whether fast recovery is in progress.
    #[cfg(test)]
    pub(crate) fn in_recovery(&self) -> bool {
        self.recover.is_some()
    }

    /// `acked` new bytes were acknowledged up to `ack`; `flight` is what remains in flight.
    pub(crate) fn on_ack(&mut self, ack: SeqNumber, acked: u32, flight: u32) -> AckAction {
        self.dupacks = 0;
        if let Some(recover) = self.recover {
            if ack.ge(recover) {
                // Full acknowledgment: leave recovery.
                self.cwnd = self.ssthresh.min(flight.max(self.mss) + self.mss);
                self.recover = None;
                return AckAction::None;
            }
            // Partial acknowledgment: retransmit the next hole, deflate by what was acked.
            self.cwnd = self.cwnd.saturating_sub(acked).saturating_add(self.mss);
            return AckAction::RetransmitFirst;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(acked.min(self.mss));
        } else {
            let inc = (u64::from(self.mss) * u64::from(self.mss) / u64::from(self.cwnd)).max(1);
            self.cwnd = self.cwnd.saturating_add(inc as u32);
        }
        AckAction::None
    }

    /// A duplicate ACK arrived while `flight` bytes were outstanding up to `snd_max`.
    pub(crate) fn on_dup_ack(&mut self, flight: u32, snd_max: SeqNumber) -> AckAction {
        if self.recover.is_some() {
            self.cwnd = self.cwnd.saturating_add(self.mss);
            return AckAction::None;
        }
        self.dupacks = self.dupacks.saturating_add(1);
        if self.dupacks == 3 {
            self.ssthresh = (flight / 2).max(2 * self.mss);
            self.cwnd = self.ssthresh + 3 * self.mss;
            self.recover = Some(snd_max);
            return AckAction::RetransmitFirst;
        }
        AckAction::None
    }

    /// The retransmission timer expired with `flight` bytes outstanding.
    pub(crate) fn on_timeout(&mut self, flight: u32) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.dupacks = 0;
        self.recover = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_is_ten_segments_and_slow_start_doubles_per_round() {
        let mut cc = NewReno::new(1000, 10);
        assert_eq!(cc.window(), 10_000);
        for i in 0..10u32 {
            cc.on_ack(SeqNumber(1000 * (i + 1)), 1000, 0);
        }
        assert_eq!(cc.window(), 20_000);
    }

    #[test]
    fn third_duplicate_ack_triggers_fast_retransmit_and_full_ack_ends_recovery() {
        let mut cc = NewReno::new(1000, 10);
        let snd_max = SeqNumber(10_000);
        assert_eq!(cc.on_dup_ack(10_000, snd_max), AckAction::None);
        assert_eq!(cc.on_dup_ack(10_000, snd_max), AckAction::None);
        assert_eq!(cc.on_dup_ack(10_000, snd_max), AckAction::RetransmitFirst);
        assert!(cc.in_recovery());
        assert_eq!(cc.window(), 5000 + 3000);
        assert_eq!(cc.on_dup_ack(10_000, snd_max), AckAction::None);
        assert_eq!(
            cc.window(),
            9000,
            "inflated by one MSS per further duplicate"
        );
        // Partial ACK: still in recovery, retransmit the next hole.
        assert_eq!(
            cc.on_ack(SeqNumber(4000), 4000, 6000),
            AckAction::RetransmitFirst
        );
        assert!(cc.in_recovery());
        assert_eq!(cc.on_ack(SeqNumber(10_000), 6000, 0), AckAction::None);
        assert!(!cc.in_recovery());
        assert_eq!(cc.window(), 2000, "min(ssthresh, flight + mss)");
    }

    #[test]
    fn timeout_collapses_the_window_to_one_segment() {
        let mut cc = NewReno::new(1000, 10);
        cc.on_timeout(8000);
        assert_eq!(cc.window(), 1000);
        // Slow start up to ssthresh = 4000, then linear growth.
        for _ in 0..3 {
            cc.on_ack(SeqNumber(0), 1000, 0);
        }
        assert_eq!(cc.window(), 4000);
        cc.on_ack(SeqNumber(0), 1000, 0);
        assert_eq!(cc.window(), 4250);
    }
}
