//! RACK-TLP loss detection (RFC 8985): time-based loss detection from the most recently
//! delivered segment, and the tail loss probe.
//!
//! Read: RFC 8985 §6.1 (RACK's state), §6.2 (the algorithm, steps 1–5: "RACK_update()",
//! reordering detection, "RACK_update_reo_wnd()", "RACK_detect_loss()"), §7 (TLP: §7.2
//! scheduling the PTO, §7.3 sending the probe, §7.4 detecting a loss it repaired). Linux:
//! `net/ipv4/tcp_recovery.c` (`tcp_rack_detect_loss`, `tcp_rack_reo_wnd`),
//! `tcp_output.c` (`tcp_schedule_loss_probe`, `tcp_send_loss_probe`).
//!
//! The per-segment state (Segment.xmit_ts, .lost, .retransmitted) lives in the
//! [`Scoreboard`]; this module keeps the per-connection state and decides.

use std::time::Duration;

use super::scoreboard::{DUP_THRESH, Delivered, Scoreboard, Verdict, sent_after};
use crate::time::Instant;
use crate::wire::SeqNumber;

/// RFC 8985 §7.2: "WCDelAckT stands for worst case delayed ACK timer [...] set to 200 ms".
pub const WC_DEL_ACK: Duration = Duration::from_millis(200);

/// Linux's extra slack on a PTO when more than one segment is in flight (TCP_TIMEOUT_MIN).
const PTO_SLACK: Duration = Duration::from_millis(2);

/// RFC 8985 §6.2 step 4: "RACK.reo_wnd_persist = 16".
const REO_WND_PERSIST: u8 = 16;

/// Per-connection RACK state (RFC 8985 §6.1).
#[derive(Debug, Clone, Copy)]
pub struct Rack {
    /// "RACK.xmit_ts" and (in place of "RACK.end_seq") the transmission order of the most
    /// recently sent segment delivered so far.
    latest: Option<(Instant, u32)>,
    /// "RACK.rtt": the RTT of that segment.
    rtt: Duration,
    /// "RACK.min_RTT" (the minimum over the connection's life).
    min_rtt: Option<Duration>,
    /// "RACK.reordering_seen".
    reordering_seen: bool,
    /// "RACK.dsack_round": SND.NXT when a round with a D-SACK began.
    dsack_round: Option<SeqNumber>,
    /// "RACK.reo_wnd_mult".
    reo_wnd_mult: u8,
    /// "RACK.reo_wnd_persist".
    reo_wnd_persist: u8,
}

impl Default for Rack {
    fn default() -> Rack {
        Rack {
            latest: None,
            rtt: Duration::ZERO,
            min_rtt: None,
            reordering_seen: false,
            dsack_round: None,
            reo_wnd_mult: 1,
            reo_wnd_persist: REO_WND_PERSIST,
        }
    }
}

impl Rack {
    /// Fresh state.
    pub fn new() -> Rack {
        Rack::default()
    }

    /// RFC 8985 §6.2 step 2, "RACK_update()", for the newly delivered segment sent last.
    /// `echo_before_xmit`: the ACK's TSecr predates that segment's (re)transmission.
    ///
    /// "If Segment.retransmitted is TRUE: If ACK.ts_option.echo_reply < Segment.xmit_ts:
    /// Return; If rtt < RACK.min_RTT: Return" — the ACK may be for the original.
    ///
    /// RACK.rtt is then taken from `rtt_from` (when it passes the same test), the segment
    /// Linux's `tcp_rack_advance` would have met last ([`AckSummary::rtt_from`]), not
    /// necessarily the one sent last: after a retransmission delivers, the RTT of the highest
    /// original it also acknowledges, so that the segments sent between them are given the
    /// time Linux gives them before they are deemed lost.
    ///
    /// [`AckSummary::rtt_from`]: super::scoreboard::AckSummary::rtt_from
    pub fn update(
        &mut self,
        seg: Delivered,
        rtt_from: Option<(Delivered, bool)>,
        now: Instant,
        echo_before_xmit: bool,
    ) {
        let ambiguous = |d: &Delivered, echo_before: bool, min: Option<Duration>| {
            d.retransmitted && (echo_before || min.is_some_and(|m| now - d.sent_at < m))
        };
        if ambiguous(&seg, echo_before_xmit, self.min_rtt) {
            return;
        }
        let rtt = now - seg.sent_at;
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        self.rtt = match rtt_from {
            Some((d, echo_before)) if !ambiguous(&d, echo_before, self.min_rtt) => now - d.sent_at,
            _ => rtt,
        };
        if self
            .latest
            .is_none_or(|(t, o)| sent_after(seg.sent_at, seg.order, t, o))
        {
            self.latest = Some((seg.sent_at, seg.order));
        }
    }

    /// RFC 8985 §6.2 step 3: "If Segment.end_seq < RACK.fack [and it was never retransmitted]:
    /// RACK.reordering_seen = TRUE".
    pub fn on_reordering(&mut self) {
        self.reordering_seen = true;
    }

    /// Whether the network was seen reordering.
    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }

    /// The minimum RTT seen, if any.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// RFC 8985 §6.2 step 4, the D-SACK part: "If RACK.dsack_round is not None AND SND.UNA >=
    /// RACK.dsack_round: RACK.dsack_round = None. If RACK.dsack_round is None AND any DSACK
    /// option is present on latest received ACK: RACK.dsack_round = SND.NXT;
    /// RACK.reo_wnd_mult += 1; RACK.reo_wnd_persist = 16".
    pub fn on_ack_dsack(&mut self, snd_una: SeqNumber, snd_nxt: SeqNumber, dsack: bool) {
        if self.dsack_round.is_some_and(|r| snd_una.ge(r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() && dsack {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// RFC 8985 §6.2 step 4: "Else if exiting Fast or RTO recovery: RACK.reo_wnd_persist -= 1;
    /// If RACK.reo_wnd_persist <= 0: RACK.reo_wnd_mult = 1".
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// RFC 8985 §6.2 step 4, "RACK_update_reo_wnd()": "If RACK.reordering_seen is FALSE: If in
    /// Fast or RTO recovery: Return 0; Else if RACK.segs_sacked >= DupThresh: Return 0.
    /// Return min(RACK.reo_wnd_mult * RACK.min_RTT / 4, SRTT)".
    pub fn reo_wnd(&self, in_recovery: bool, segs_sacked: u32, srtt: Duration) -> Duration {
        if !self.reordering_seen && (in_recovery || segs_sacked >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let min_rtt = self.min_rtt.unwrap_or(srtt);
        (min_rtt * u32::from(self.reo_wnd_mult) / 4).min(srtt)
    }

    /// RFC 8985 §6.2 step 5, "RACK_detect_loss()": every unacknowledged segment sent before
    /// the latest delivered one, and longer ago than RACK.rtt + `reo_wnd`, is lost. Marks
    /// them in `sb`; returns the bytes newly marked and, if some segment is not overdue yet,
    /// when to look again (the reordering timer, §6.3). The scoreboard shows it only the
    /// segments in flight ([`Scoreboard::rack_walk`]).
    ///
    /// "remaining = Segment.xmit_ts + RACK.rtt + RACK.reo_wnd - Now(); If remaining <= 0:
    /// Segment.lost = TRUE [...] Else: timeout = max(remaining, timeout)".
    pub fn detect_loss(
        &self,
        sb: &mut Scoreboard,
        now: Instant,
        reo_wnd: Duration,
    ) -> (u32, Option<Duration>) {
        let Some((xmit_ts, order)) = self.latest else {
            return (0, None);
        };
        let mut timeout: Option<Duration> = None;
        let lost = sb.rack_walk(|s| {
            if !sent_after(xmit_ts, order, s.sent_at, s.order) {
                return Verdict::SentAfter;
            }
            let deadline = s.sent_at + self.rtt + reo_wnd;
            if deadline <= now {
                return Verdict::Lost;
            }
            let remaining = deadline - now;
            timeout = Some(timeout.map_or(remaining, |t| t.max(remaining)));
            Verdict::Waiting
        });
        (lost, timeout)
    }
}

/// RFC 8985 §7 tail loss probe state: the probe in flight, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tlp {
    /// "TLP.end_seq": SND.NXT when the probe was sent.
    end_seq: Option<SeqNumber>,
    /// "TLP.is_retrans": the probe was a retransmission (not new data).
    is_retrans: bool,
}

/// What an ACK says about a tail loss probe (RFC 8985 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlpOutcome {
    /// Nothing decided.
    None,
    /// The probe repaired a real loss: "Invoke congestion control to lower cwnd and ssthresh".
    LossRepaired,
}

impl Tlp {
    /// Whether a probe is outstanding (RFC 8985 §7.2: no new probe until it is resolved).
    pub fn in_flight(&self) -> bool {
        self.end_seq.is_some()
    }

    /// RFC 8985 §7.2, the PTO: "If SRTT is available: PTO = 2 * SRTT; If FlightSize is equal
    /// to one segment: PTO += WCDelAckT [...] PTO = min(PTO, RTO)" (else 1 s). As Linux, a
    /// longer flight gets 2 ms of slack instead, and the RTO that would fire first wins.
    pub fn pto(srtt: Option<Duration>, one_segment: bool, until_rto: Duration) -> Duration {
        let pto = match srtt {
            Some(srtt) if one_segment => 2 * srtt + WC_DEL_ACK,
            Some(srtt) => 2 * srtt + PTO_SLACK,
            None => Duration::from_secs(1),
        };
        pto.min(until_rto)
    }

    /// RFC 8985 §7.3: a probe went out; "TLP.end_seq = SND.NXT".
    pub fn on_probe(&mut self, snd_nxt: SeqNumber, is_retrans: bool) {
        self.end_seq = Some(snd_nxt);
        self.is_retrans = is_retrans;
    }

    /// Forgets the probe (a timeout or a new recovery episode takes over).
    pub fn reset(&mut self) {
        self.end_seq = None;
    }

    /// RFC 8985 §7.4, "TLP_process_ack(ACK)". `dsack` is the ACK's D-SACK block, `dup_ack`
    /// whether it is a duplicate ACK without SACK blocks.
    pub fn on_ack(
        &mut self,
        ack: SeqNumber,
        dsack: Option<(SeqNumber, SeqNumber)>,
        dup_ack_without_sack: bool,
    ) -> TlpOutcome {
        let Some(end) = self.end_seq else {
            return TlpOutcome::None;
        };
        if ack.lt(end) {
            return TlpOutcome::None;
        }
        // "If not TLP.is_retrans: TLP.end_seq = None /* TLP of new data delivered */"
        if !self.is_retrans {
            self.end_seq = None;
            return TlpOutcome::None;
        }
        // "Else if ACK has a DSACK option matching TLP.end_seq: /* Both original and TLP were
        // delivered */"
        if dsack.is_some_and(|(_, r)| r == end) {
            self.end_seq = None;
            return TlpOutcome::None;
        }
        // "Else if ACK's ack. number > TLP.end_seq: /* Repaired the single loss */" and "Else
        // if ACK is a DUPACK without any SACK option".
        if ack.gt(end) || dup_ack_without_sack {
            self.end_seq = None;
            return TlpOutcome::LossRepaired;
        }
        TlpOutcome::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn seq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    /// Ten 1000-byte segments sent at 0, 1, ..., 9 ms.
    fn ten() -> Scoreboard {
        let mut sb = Scoreboard::new();
        for i in 0..10u32 {
            sb.on_send(seq(i * MSS), seq((i + 1) * MSS), ms(u64::from(i)));
        }
        sb
    }

    /// Feeds an ACK to the scoreboard and RACK as the engine will.
    fn ack(rack: &mut Rack, sb: &mut Scoreboard, now: Instant, a: u32, blocks: &[(u32, u32)]) {
        let blocks: Vec<_> = blocks.iter().map(|&(l, r)| (seq(l), seq(r))).collect();
        let s = sb.on_ack(seq(a), &blocks, MSS);
        if s.reordered {
            rack.on_reordering();
        }
        if let Some(d) = s.latest {
            rack.update(d, s.rtt_from.map(|r| (r, false)), now, false);
        }
    }

    #[test]
    fn a_segment_sent_before_a_delivered_one_is_lost_once_rtt_plus_reo_wnd_has_passed() {
        // RFC 8985 §3.3.2: "RACK.rtt + RACK.reo_wnd" after its transmission, a segment sent
        // before a delivered one is deemed lost.
        let mut rack = Rack::new();
        let mut sb = ten();
        ack(&mut rack, &mut sb, ms(50), 0, &[(1000, 2000)]);
        assert_eq!(rack.rtt, Duration::from_millis(49));
        let reo = Duration::from_millis(10);
        // Segment 0 was sent at 0 ms: lost from 0 + 49 + 10 = 59 ms on.
        let (lost, timeout) = rack.detect_loss(&mut sb, ms(50), reo);
        assert_eq!(lost, 0);
        assert_eq!(
            timeout,
            Some(Duration::from_millis(9)),
            "the reordering timer"
        );
        let (lost, timeout) = rack.detect_loss(&mut sb, ms(59), reo);
        assert_eq!((lost, timeout), (1000, None));
        assert_eq!(sb.next_lost(MSS), Some((seq(0), seq(1000))));
    }

    #[test]
    fn segments_sent_after_the_latest_delivered_are_never_lost_by_rack() {
        let mut rack = Rack::new();
        let mut sb = ten();
        ack(&mut rack, &mut sb, ms(50), 0, &[(1000, 2000)]);
        let (lost, _) = rack.detect_loss(&mut sb, ms(10_000), Duration::ZERO);
        assert_eq!(lost, 1000, "only segment 0 was sent before segment 1");
    }

    #[test]
    fn the_reordering_window_is_zero_in_recovery_until_reordering_is_seen() {
        // RFC 8985 §6.2: "If RACK.reordering_seen is FALSE: If in Fast or RTO recovery: Return
        // 0; Else if RACK.segs_sacked >= DupThresh: Return 0".
        let mut rack = Rack::new();
        let mut sb = ten();
        let srtt = Duration::from_millis(40);
        ack(&mut rack, &mut sb, ms(40), 1000, &[]);
        assert_eq!(rack.reo_wnd(true, 0, srtt), Duration::ZERO);
        assert_eq!(rack.reo_wnd(false, 3, srtt), Duration::ZERO);
        // "Return min(RACK.reo_wnd_mult * RACK.min_RTT / 4, SRTT)".
        assert_eq!(rack.reo_wnd(false, 1, srtt), Duration::from_millis(10));
        // Segment 2 arrives after 3 was delivered, never retransmitted: reordering.
        ack(&mut rack, &mut sb, ms(44), 1000, &[(3000, 4000)]);
        ack(&mut rack, &mut sb, ms(45), 1000, &[(2000, 4000)]);
        assert!(rack.reordering_seen());
        assert_eq!(rack.reo_wnd(true, 5, srtt), Duration::from_millis(10));
    }

    #[test]
    fn a_reordered_segment_inside_the_window_is_not_marked_lost() {
        let mut rack = Rack::new();
        rack.on_reordering();
        let mut sb = ten();
        // RTT 40 ms; segment 1 overtaken by 2..9.
        ack(&mut rack, &mut sb, ms(49), 1000, &[(2000, 10_000)]);
        let reo = rack.reo_wnd(false, 8, Duration::from_millis(40));
        assert_eq!(reo, Duration::from_millis(10));
        let (lost, timeout) = rack.detect_loss(&mut sb, ms(49), reo);
        assert_eq!(
            lost, 0,
            "segment 1 is within RACK.rtt + reo_wnd of its send time"
        );
        assert!(timeout.is_some());
        // It arrives before the timer: nothing was ever marked.
        ack(&mut rack, &mut sb, ms(52), 10_000, &[]);
        assert!(sb.is_empty());
    }

    #[test]
    fn dsack_rounds_grow_the_window_and_sixteen_clean_recoveries_reset_it() {
        let mut rack = Rack::new();
        rack.on_reordering();
        let mut sb = ten();
        ack(&mut rack, &mut sb, ms(40), 1000, &[]);
        let srtt = Duration::from_secs(1);
        assert_eq!(rack.reo_wnd(false, 0, srtt), Duration::from_millis(10));
        rack.on_ack_dsack(seq(1000), seq(10_000), true);
        assert_eq!(rack.reo_wnd(false, 0, srtt), Duration::from_millis(20));
        // A second D-SACK in the same round does not grow it again.
        rack.on_ack_dsack(seq(2000), seq(10_000), true);
        assert_eq!(rack.reo_wnd(false, 0, srtt), Duration::from_millis(20));
        // Next round.
        rack.on_ack_dsack(seq(10_000), seq(20_000), true);
        assert_eq!(rack.reo_wnd(false, 0, srtt), Duration::from_millis(30));
        assert_eq!(
            rack.reo_wnd(false, 0, Duration::from_millis(25)),
            Duration::from_millis(25),
            "never more than SRTT"
        );
        for _ in 0..15 {
            rack.on_recovery_exit();
        }
        assert_eq!(rack.reo_wnd(false, 0, srtt), Duration::from_millis(30));
        rack.on_recovery_exit();
        assert_eq!(rack.reo_wnd(false, 0, srtt), Duration::from_millis(10));
    }

    #[test]
    fn an_ack_for_a_retransmission_that_may_be_for_the_original_is_ignored() {
        // RFC 8985 §6.2 step 2: "If Segment.retransmitted is TRUE: If ACK.ts_option.echo_reply
        // < Segment.xmit_ts: Return; If rtt < RACK.min_RTT: Return".
        let mut rack = Rack::new();
        let mut sb = ten();
        ack(&mut rack, &mut sb, ms(40), 1000, &[]);
        sb.mark_lost(seq(1000));
        sb.on_send(seq(1000), seq(2000), ms(60));
        let s = sb.on_ack(seq(2000), &[], MSS);
        rack.update(s.latest.unwrap(), None, ms(61), false);
        assert_eq!(
            rack.rtt,
            Duration::from_millis(40),
            "1 ms < min_RTT: ignored"
        );
        assert_eq!(rack.min_rtt(), Some(Duration::from_millis(40)));
    }

    #[test]
    fn the_pto_is_two_srtts_plus_the_worst_case_delayed_ack_for_one_segment() {
        // RFC 8985 §7.2: "PTO = 2 * SRTT; If FlightSize is equal to one segment: PTO +=
        // WCDelAckT [...] PTO = min(PTO, RTO)".
        let srtt = Some(Duration::from_millis(10));
        let rto = Duration::from_secs(1);
        assert_eq!(Tlp::pto(srtt, true, rto), Duration::from_millis(220));
        assert_eq!(Tlp::pto(srtt, false, rto), Duration::from_millis(22));
        assert_eq!(Tlp::pto(None, false, rto), Duration::from_secs(1));
        assert_eq!(
            Tlp::pto(srtt, true, Duration::from_millis(100)),
            Duration::from_millis(100),
            "the RTO fires first"
        );
    }

    #[test]
    fn a_probe_that_repaired_a_loss_asks_for_a_congestion_response() {
        // RFC 8985 §7.4: "Else if ACK's ack. number > TLP.end_seq: TLP.end_seq = None /*
        // Repaired the single loss */ (Invoke congestion control to lower cwnd and ssthresh)".
        let mut tlp = Tlp::default();
        tlp.on_probe(seq(10_000), true);
        assert!(tlp.in_flight());
        assert_eq!(tlp.on_ack(seq(9000), None, false), TlpOutcome::None);
        assert!(tlp.in_flight());
        assert_eq!(
            tlp.on_ack(seq(10_001), None, false),
            TlpOutcome::LossRepaired
        );
        assert!(!tlp.in_flight());
        // "Else if ACK has a DSACK option matching TLP.end_seq: /* Both original and TLP were
        // delivered */": no response.
        tlp.on_probe(seq(10_000), true);
        let dsack = Some((seq(9000), seq(10_000)));
        assert_eq!(tlp.on_ack(seq(10_000), dsack, false), TlpOutcome::None);
        assert!(!tlp.in_flight());
        // "If not TLP.is_retrans: TLP.end_seq = None /* TLP of new data delivered */".
        tlp.on_probe(seq(11_000), false);
        assert_eq!(tlp.on_ack(seq(11_000), None, false), TlpOutcome::None);
        assert!(!tlp.in_flight());
        // "Else if ACK is a DUPACK without any SACK option".
        tlp.on_probe(seq(11_000), true);
        assert_eq!(
            tlp.on_ack(seq(11_000), None, true),
            TlpOutcome::LossRepaired
        );
    }
}
