//! Proportional Rate Reduction (RFC 6937), with the slow-start reduction bound (PRR-SSRB):
//! how much a sender in loss recovery may send per ACK so the flight shrinks smoothly to
//! ssthresh, not in one burst or one stall.
//!
//! Read: RFC 6937 §3 ("The Algorithm": the initialization on entering recovery and the
//! per-ACK computation), §3.1 (examples). Linux: `tcp_input.c` `tcp_init_cwnd_reduction`,
//! `tcp_cwnd_reduction`.

/// PRR state for one recovery episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prr {
    /// "prr_delivered: Total bytes delivered during recovery".
    delivered: u32,
    /// "prr_out: Total bytes sent during recovery".
    out: u32,
    /// "RecoverFS = snd.nxt - snd.una // FlightSize at the start of recovery".
    recover_fs: u32,
}

impl Prr {
    /// RFC 6937 §3, "at the beginning of recovery": "ssthresh = CongCtrlAlg() // Target
    /// cwnd after recovery; prr_delivered = 0; prr_out = 0; RecoverFS = snd.nxt - snd.una".
    pub fn start(flight: u32) -> Prr {
        Prr {
            delivered: 0,
            out: 0,
            recover_fs: flight.max(1),
        }
    }

    /// RFC 6937 §3, "on every ACK during recovery": given
    /// "DeliveredData = change_in(snd.una) + change_in(SACKd)", the pipe after the ACK and
    /// ssthresh, returns `sndcnt`, the bytes that may be sent now; the window is then
    /// pipe + sndcnt. `extra`: PRR-SSRB may add its MSS, which Linux (`tcp_cwnd_reduction`)
    /// does only on an ACK that advances SND.UNA and marks nothing newly lost ("if (flag &
    /// FLAG_SND_UNA_ADVANCED && !newly_lost) sndcnt++"): a duplicate ACK, or one that shows
    /// more loss, lets out no more than was delivered.
    ///
    /// ```text
    /// prr_delivered += DeliveredData
    /// pipe = (RFC 6675 pipe algorithm)
    /// if (pipe > ssthresh) {
    ///    // Proportional Rate Reduction
    ///    sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out
    /// } else {
    ///    // Two versions of the Reduction Bound
    ///    if (conservative) {    // PRR-CRB
    ///      limit = prr_delivered - prr_out
    ///    } else {               // PRR-SSRB
    ///      limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS
    ///    }
    ///    // Attempt to catch up, as permitted by limit
    ///    sndcnt = MIN(ssthresh - pipe, limit)
    /// }
    /// ```
    pub fn on_ack(
        &mut self,
        delivered_data: u32,
        pipe: u32,
        ssthresh: u32,
        mss: u32,
        extra: bool,
    ) -> u32 {
        self.delivered = self.delivered.saturating_add(delivered_data);
        let sndcnt = if pipe > ssthresh {
            // CEIL in whole segments, as Linux computes it in packets: a fraction of a
            // segment would otherwise hold a whole one back until the next ACK.
            let target = (u64::from(self.delivered) * u64::from(ssthresh))
                .div_ceil(u64::from(self.recover_fs))
                .next_multiple_of(u64::from(mss.max(1)));
            target.saturating_sub(u64::from(self.out)) as u32
        } else {
            let limit = self
                .delivered
                .saturating_sub(self.out)
                .max(delivered_data)
                .saturating_add(if extra { mss } else { 0 });
            (ssthresh - pipe).min(limit)
        };
        // Linux (tcp_cwnd_reduction): "Force a fast retransmit upon entering fast recovery",
        // so the first ACK of an episode always lets the retransmission out.
        if self.out == 0 && sndcnt == 0 {
            return mss;
        }
        sndcnt
    }

    /// RFC 6937 §3, "on any data transmission or retransmission": "prr_out += (data sent)".
    pub fn on_send(&mut self, bytes: u32) {
        self.out = self.out.saturating_add(bytes);
    }

    /// Bytes sent so far in this episode.
    pub fn sent(&self) -> u32 {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn rfc6937_example_one_loss_in_twenty_segments_sends_one_segment_per_two_acks() {
        // RFC 6937 §3.1: "a single loss in a window of 20 segments [...] PRR [...] spreads the
        // reduction out: it sends 1 segment for every 2 segments delivered" (ssthresh = 10).
        let mut prr = Prr::start(20 * MSS);
        let ssthresh = 10 * MSS;
        let mut pipe = 19 * MSS; // one segment lost
        let mut sent = Vec::new();
        for _ in 0..19 {
            pipe -= MSS; // one segment delivered per ACK
            let sndcnt = prr.on_ack(MSS, pipe, ssthresh, MSS, true);
            let n = sndcnt / MSS;
            prr.on_send(n * MSS);
            pipe += n * MSS;
            sent.push(n);
        }
        assert_eq!(sent[0], 1, "the retransmission goes out on the first ACK");
        assert_eq!(
            sent.iter().sum::<u32>(),
            10,
            "ssthresh worth sent over the recovery"
        );
        // One segment per two delivered while the pipe exceeds ssthresh: rate halved.
        assert!(sent[..16].chunks(2).all(|w| w == [1, 0]), "{sent:?}");
        assert!(pipe <= ssthresh + MSS);
    }

    #[test]
    fn prr_never_sends_more_than_its_proportional_share_while_the_pipe_exceeds_ssthresh() {
        let mut prr = Prr::start(40 * MSS);
        let ssthresh = 20 * MSS;
        let mut delivered_total = 0u64;
        for k in 1..=30u32 {
            let pipe = 40 * MSS - k * MSS; // still above ssthresh for the first 19
            if pipe <= ssthresh {
                break;
            }
            let s = prr.on_ack(MSS, pipe, ssthresh, MSS, true);
            prr.on_send(s);
            delivered_total += u64::from(MSS);
            // "sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out".
            // (In whole segments, as the sender sends them.)
            let bound = (delivered_total * u64::from(ssthresh))
                .div_ceil(40 * u64::from(MSS))
                .next_multiple_of(u64::from(MSS));
            assert!(u64::from(prr.sent()) <= bound, "after {k} ACKs");
        }
    }

    #[test]
    fn below_ssthresh_the_slow_start_reduction_bound_catches_up_by_at_most_one_mss_more() {
        // PRR-SSRB: "limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS; sndcnt =
        // MIN(ssthresh - pipe, limit)".
        let mut prr = Prr::start(20 * MSS);
        let ssthresh = 10 * MSS;
        // A burst of losses left the pipe far below ssthresh.
        prr.on_send(MSS);
        let s = prr.on_ack(2 * MSS, 2 * MSS, ssthresh, MSS, true);
        assert_eq!(s, 3 * MSS, "MAX(2000 - 1000, 2000) + MSS");
        prr.on_send(s);
        let s = prr.on_ack(MSS, 3 * MSS, ssthresh, MSS, true);
        assert_eq!(s, 2 * MSS, "DeliveredData (1) + MSS: slow start, at most");
        prr.on_send(s);
        // Linux adds the MSS only when SND.UNA advanced and nothing was newly lost.
        let s = prr.on_ack(MSS, 4 * MSS, ssthresh, MSS, false);
        assert_eq!(s, MSS, "DeliveredData (1), no more");
        let s = prr.on_ack(MSS, 9 * MSS + 500, ssthresh, MSS, true);
        assert_eq!(s, 500, "never beyond ssthresh - pipe");
    }
}
