//! When received data is acknowledged: at once or delayed (RFC 1122 §4.2.3.2, RFC 5681 §4.2),
//! decided as Linux decides it, so that a peer's slow start is not held back by our ACK clock.
//!
//! RFC 5681 §4.2: "an ACK SHOULD be generated for at least every second full-sized segment,
//! and MUST be generated within 500 ms of the arrival of the first unacknowledged packet"; it
//! leaves open what "full-sized" means and when to ACK sooner. Linux (`net/ipv4/tcp_input.c`):
//!
//! - **Quick-ACK mode** (`tcp_incr_quickack`, `tcp_enter_quickack_mode`): the first data of a
//!   connection, data after a silence longer than the RTO, and an old duplicate or data sent
//!   into a closed window each allow `min(RCV.WND / (2 · rcv_mss), 16)` (at least 2)
//!   immediate ACKs; each ACK that answers data spends one (`tcp_dec_quickack_mode`).
//! - Otherwise the ACK waits for the delayed-ACK timer unless more than one `rcv_mss` of data
//!   has arrived since the last ACK (`__tcp_ack_snd_check`): bytes, not segments, so one
//!   segment worth two MSS is ACKed at once and six small ones are too.
//! - `rcv_mss` is the peer's segment size as seen (`tcp_measure_rcv_mss`): it starts at
//!   `min(536, MSS, RCV.WND / 2)` (`tcp_initialize_rcv_mss`) and grows to the largest segment
//!   received, up to the MSS we announced.
//!
//! Not taken from Linux: its adaptive delayed-ACK timeout (`ato`, which stays at 40 ms unless
//! segments arrive more than 40 ms apart; ours is [`super::Config::delayed_ack`]), its
//! interactive ("pingpong") mode, which turns quick ACKs off once the application answers
//! requests, and `rcv_mss` shrinking below 536 after two equal non-PSH segments (links with an
//! MTU under 576).

use std::time::Duration;

use crate::time::Instant;

/// `TCP_MAX_QUICKACKS`: the most immediate ACKs one entry into quick-ACK mode allows.
const MAX_QUICKACKS: u8 = 16;

/// `TCP_MSS_DEFAULT`: the first guess of the peer's segment size (RFC 1122's 536).
const INITIAL_RCV_MSS: u16 = 536;

/// `TCP_MIN_MSS`: the smallest segment size assumed.
const MIN_RCV_MSS: u16 = 88;

/// The receiver's ACK policy state of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DelayedAck {
    /// Immediate ACKs left in quick-ACK mode (Linux's `icsk_ack.quick`).
    quick: u8,
    /// Something arrived that is owed an ACK (`ICSK_ACK_SCHED`).
    scheduled: bool,
    /// The peer's segment size as seen (`icsk_ack.rcv_mss`).
    rcv_mss: u16,
    /// When in-order data last arrived (`icsk_ack.lrcvtime`); `None` before the first.
    last_data: Option<Instant>,
}

impl Default for DelayedAck {
    fn default() -> DelayedAck {
        DelayedAck {
            quick: 0,
            scheduled: false,
            rcv_mss: INITIAL_RCV_MSS,
            last_data: None,
        }
    }
}

impl DelayedAck {
    /// The state of a connection just established: `payload_mss` is the most payload per
    /// segment either side uses, `rcv_wnd` the window we offered (`tcp_initialize_rcv_mss`).
    pub(crate) fn new(payload_mss: usize, rcv_wnd: u32) -> DelayedAck {
        let hint = (payload_mss as u32)
            .min(rcv_wnd / 2)
            .min(u32::from(INITIAL_RCV_MSS))
            .max(u32::from(MIN_RCV_MSS));
        DelayedAck {
            rcv_mss: hint as u16,
            ..DelayedAck::default()
        }
    }

    /// In-order data of `len` bytes arrived at `now` (`tcp_event_data_recv`). `adv_mss`: the
    /// most payload per segment we announced; `rcv_wnd`: the window we last advertised; `rto`:
    /// our retransmission timeout, the silence after which the peer is assumed to restart
    /// its window.
    pub(crate) fn on_data(
        &mut self,
        now: Instant,
        len: usize,
        adv_mss: usize,
        rcv_wnd: u32,
        rto: Duration,
    ) {
        self.scheduled = true;
        if len >= usize::from(self.rcv_mss) {
            self.rcv_mss = len.min(adv_mss).clamp(1, usize::from(u16::MAX)) as u16;
        }
        match self.last_data {
            None => self.incr_quickack(rcv_wnd),
            Some(last) if now - last > rto => self.incr_quickack(rcv_wnd),
            Some(_) => {}
        }
        self.last_data = Some(now);
    }

    /// Out-of-order data arrived: an ACK is owed (sent at once, RFC 5681 §4.2).
    pub(crate) fn on_out_of_order(&mut self) {
        self.scheduled = true;
    }

    /// An old duplicate, or data sent into a closed window, arrived: the peer may have lost
    /// our ACKs or be probing, so ACK quickly again (`tcp_enter_quickack_mode`).
    pub(crate) fn enter_quickack(&mut self, rcv_wnd: u32) {
        self.scheduled = true;
        self.incr_quickack(rcv_wnd);
    }

    /// `tcp_incr_quickack`: allow `min(RCV.WND / (2 · rcv_mss), 16)` quick ACKs, at least 2.
    fn incr_quickack(&mut self, rcv_wnd: u32) {
        let allowed = rcv_wnd / (2 * u32::from(self.rcv_mss));
        let allowed = if allowed == 0 { 2 } else { allowed };
        let allowed = allowed.min(u32::from(MAX_QUICKACKS)) as u8;
        self.quick = self.quick.max(allowed);
    }

    /// Whether data just received is ACKed at once rather than by the delayed-ACK timer, with
    /// `unacked` bytes received since our last ACK (`__tcp_ack_snd_check`).
    pub(crate) fn ack_at_once(&self, unacked: u32) -> bool {
        self.quick > 0 || unacked > u32::from(self.rcv_mss)
    }

    /// A segment carrying an ACK went out (`tcp_event_ack_sent`): if one was owed, it spends a
    /// quick ACK (`tcp_dec_quickack_mode`).
    pub(crate) fn on_ack_sent(&mut self) {
        if self.scheduled {
            self.quick = self.quick.saturating_sub(1);
            self.scheduled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTO: Duration = Duration::from_millis(200);
    const WND: u32 = 256 * 1024;

    fn ms(n: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(n)
    }

    #[test]
    fn the_first_sixteen_data_segments_are_acked_at_once_then_the_timer_waits() {
        let mut d = DelayedAck::new(1448, WND);
        for i in 0..16 {
            d.on_data(ms(10 * i), 100, 1448, WND, RTO);
            assert!(d.ack_at_once(100), "segment {i}");
            d.on_ack_sent();
        }
        d.on_data(ms(170), 100, 1448, WND, RTO);
        assert!(!d.ack_at_once(100));
    }

    #[test]
    fn a_small_window_allows_fewer_quick_acks_and_never_fewer_than_two() {
        // 8 KiB / (2 · 536) = 7.
        let mut d = DelayedAck::new(1448, 8192);
        d.on_data(ms(0), 100, 1448, 8192, RTO);
        assert_eq!(d.quick, 7);
        // A full segment in a window smaller than two of them: 2000 / (2 · 1448) = 0, so 2.
        let mut d = DelayedAck::new(1448, 4000);
        d.on_data(ms(0), 1448, 1448, 2000, RTO);
        assert_eq!(d.quick, 2);
    }

    #[test]
    fn only_an_ack_that_answers_data_spends_a_quick_ack() {
        let mut d = DelayedAck::new(1448, WND);
        d.on_data(ms(0), 100, 1448, WND, RTO);
        d.on_ack_sent();
        assert_eq!(d.quick, 15);
        // Our own data or a window update, with nothing received since: no change.
        d.on_ack_sent();
        assert_eq!(d.quick, 15);
    }

    #[test]
    fn data_after_a_silence_longer_than_the_rto_is_acked_quickly_again() {
        let mut d = DelayedAck::new(1448, WND);
        for i in 0..16 {
            d.on_data(ms(i), 1448, 1448, WND, RTO);
            d.on_ack_sent();
        }
        d.on_data(ms(100), 1448, 1448, WND, RTO);
        assert!(!d.ack_at_once(1448));
        d.on_ack_sent();
        d.on_data(ms(301), 1448, 1448, WND, RTO);
        assert!(d.ack_at_once(1448));
    }

    #[test]
    fn outside_quick_ack_mode_more_than_one_segment_size_of_bytes_is_acked_at_once() {
        let mut d = DelayedAck::new(1448, WND);
        d.quick = 0;
        d.last_data = Some(ms(0));
        d.on_data(ms(1), 1448, 1448, WND, RTO);
        assert_eq!(d.rcv_mss, 1448);
        assert!(!d.ack_at_once(1448));
        assert!(d.ack_at_once(2 * 1448));
        // One segment worth two: more than one rcv_mss unacknowledged.
        d.on_data(ms(2), 2896, 1448, WND, RTO);
        assert_eq!(d.rcv_mss, 1448, "capped at the MSS we announced");
        assert!(d.ack_at_once(2896));
    }

    #[test]
    fn small_segments_are_measured_against_536_bytes() {
        let mut d = DelayedAck::new(1448, WND);
        d.quick = 0;
        d.last_data = Some(ms(0));
        for i in 1..=5 {
            d.on_data(ms(i), 100, 1448, WND, RTO);
            assert!(!d.ack_at_once(100 * i as u32), "{i} segments");
        }
        d.on_data(ms(6), 100, 1448, WND, RTO);
        assert!(d.ack_at_once(600));
    }

    #[test]
    fn an_old_duplicate_enters_quick_ack_mode() {
        let mut d = DelayedAck::new(1448, WND);
        d.enter_quickack(WND);
        assert!(d.ack_at_once(0));
        assert_eq!(d.quick, 16);
    }
}
