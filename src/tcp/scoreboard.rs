//! The sender's SACK scoreboard: every segment between SND.UNA and SND.MAX with what the peer
//! said about it, for loss recovery (RFC 6675), D-SACK (RFC 2883) and RACK (RFC 8985).
//!
//! Read: RFC 6675 §2 (definitions: "IsLost (SeqNum)", "SetPipe ()", "NextSeg ()"), §4 (the
//! scoreboard), §5 (the algorithm); RFC 2018 §3 (the SACK option); RFC 2883 §4 ("Use of the
//! D-SACK option", how the sender tells a D-SACK block from a SACK block); RFC 8985 §6.1
//! (RACK's per-segment state: "Segment.xmit_ts", "Segment.lost", "Segment.retransmitted").
//!
//! Each record is one transmitted segment (split where a SACK block cuts it, as Linux splits
//! an skb), so a lost segment is resent exactly, and RACK knows when each byte was last sent.
//! Records exist only for data in flight: an idle connection's scoreboard holds no heap.

use std::collections::VecDeque;

use super::SeqNumber;
use crate::time::Instant;

/// RFC 6675 §2: "DupThresh: The number of duplicate acknowledgments required to trigger a
/// retransmission [...] this document uses a value of 3".
pub const DUP_THRESH: u32 = 3;

/// What the peer has said about one transmitted segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First sequence number.
    pub start: SeqNumber,
    /// One past the last sequence number.
    pub end: SeqNumber,
    /// When it was last (re)transmitted ("Segment.xmit_ts", RFC 8985 §6.1).
    pub sent_at: Instant,
    /// Transmission order (a counter): breaks ties between segments sent at the same instant.
    /// RFC 8985 breaks them by sequence number, which misorders a retransmission sent after
    /// new data in the same burst.
    pub order: u32,
    /// Selectively acknowledged.
    pub sacked: bool,
    /// Deemed lost (RFC 6675 IsLost, RACK or a timeout): out of the pipe (SetPipe (a)).
    pub lost: bool,
    /// A retransmission of it is in flight: in the pipe again (SetPipe (b)), and not to be
    /// sent again unless it is deemed lost once more.
    pub retransmitting: bool,
    /// Retransmitted at least once ("Segment.retransmitted", RFC 8985 §6.1).
    pub retransmitted: bool,
}

impl Segment {
    fn len(&self) -> u32 {
        self.end - self.start
    }
}

/// "RACK_sent_after(t1, seq1, t2, seq2)" (RFC 8985 §6.2), with the transmission order in
/// place of the sequence number: whether (t1, o1) was sent after (t2, o2).
pub fn sent_after(t1: Instant, o1: u32, t2: Instant, o2: u32) -> bool {
    t1 > t2 || (t1 == t2 && (o1.wrapping_sub(o2) as i32) > 0)
}

/// The newly delivered segment sent last: RACK's input (RFC 8985 §6.2 step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// When it was (last) sent.
    pub sent_at: Instant,
    /// Its transmission order.
    pub order: u32,
    /// Its end sequence number.
    pub end: SeqNumber,
    /// Whether it had been retransmitted (its RTT sample may be ambiguous).
    pub retransmitted: bool,
}

/// What one ACK told the scoreboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckSummary {
    /// Bytes newly acknowledged cumulatively (SND.UNA's advance).
    pub acked: u32,
    /// Bytes newly selectively acknowledged.
    pub sacked: u32,
    /// Bytes delivered to the peer by this ACK that it had not reported before: RFC 6937's
    /// "DeliveredData = (change in snd.una) + (change in SACKed)".
    pub delivered: u32,
    /// The D-SACK block, if the ACK carried one (RFC 2883 §4).
    pub dsack: Option<(SeqNumber, SeqNumber)>,
    /// The newly delivered segment that was sent last (RACK).
    pub latest: Option<Delivered>,
    /// A never-retransmitted segment was delivered below one delivered earlier: the network
    /// reordered (RFC 8985 §6.2 step 3).
    pub reordered: bool,
}

/// The segments in flight, lowest first, contiguous from SND.UNA to SND.MAX, with running
/// totals so the pipe is known without a walk.
#[derive(Debug, Default)]
pub struct Scoreboard {
    segs: VecDeque<Segment>,
    /// Highest end sequence number ever SACKed or ACKed ("RACK.fack" in RFC 8985 §6.1).
    fack: Option<SeqNumber>,
    /// Bytes in the records.
    total: u32,
    /// Bytes SACKed.
    sacked: u32,
    /// Bytes marked lost (retransmitted or not).
    lost: u32,
    /// Bytes whose retransmission is in flight.
    retrans: u32,
    /// Bytes marked lost whose retransmission is in flight.
    lost_retrans: u32,
    /// SACKed records (for RACK's "segs_sacked").
    sacked_segs: u32,
    /// Transmissions recorded (the next [`Segment::order`]).
    sends: u32,
}

impl Scoreboard {
    /// An empty scoreboard (nothing in flight).
    pub fn new() -> Scoreboard {
        Scoreboard::default()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// The highest record: the last segment sent (a tail loss probe resends it).
    pub fn last(&self) -> Option<&Segment> {
        self.segs.back()
    }

    /// The records, lowest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segs.iter()
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// Record `i` (lowest first); panics when `i >= len()`.
    pub fn get(&self, i: usize) -> &Segment {
        &self.segs[i]
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.segs.capacity() * size_of::<Segment>()
    }

    /// Forgets everything (everything was acknowledged, or the connection is gone).
    pub fn clear(&mut self) {
        *self = Scoreboard {
            fack: self.fack,
            sends: self.sends,
            ..Scoreboard::default()
        };
    }

    /// Adds (`add`) or removes a record's bytes from the running totals.
    fn account(&mut self, s: &Segment, add: bool) {
        let len = s.len();
        let apply = |v: &mut u32| *v = if add { *v + len } else { *v - len };
        apply(&mut self.total);
        if s.sacked {
            apply(&mut self.sacked);
            if add {
                self.sacked_segs += 1;
            } else {
                self.sacked_segs -= 1;
            }
        }
        if s.lost {
            apply(&mut self.lost);
        }
        if s.retransmitting {
            apply(&mut self.retrans);
            if s.lost {
                apply(&mut self.lost_retrans);
            }
        }
    }

    /// Changes record `i` through `f`, keeping the totals right.
    fn update(&mut self, i: usize, f: impl FnOnce(&mut Segment)) {
        let before = self.segs[i];
        self.account(&before, false);
        f(&mut self.segs[i]);
        let after = self.segs[i];
        self.account(&after, true);
    }

    /// Records a transmission of `[start, end)` at `now`: new data is appended (it must start
    /// at the previous end); a retransmission marks the records it covers, splitting at its
    /// edges. Returns the bytes that were a retransmission.
    pub fn on_send(&mut self, start: SeqNumber, end: SeqNumber, now: Instant) -> u32 {
        if start == end {
            return 0;
        }
        self.sends = self.sends.wrapping_add(1);
        let order = self.sends;
        let high = self.segs.back().map(|s| s.end);
        if high.is_none_or(|h| start.ge(h)) {
            let seg = Segment {
                start,
                end,
                sent_at: now,
                order,
                sacked: false,
                lost: false,
                retransmitting: false,
                retransmitted: false,
            };
            self.account(&seg, true);
            self.segs.push_back(seg);
            return 0;
        }
        self.split_at(start);
        self.split_at(end);
        let mut resent = 0;
        let first = self.segs.partition_point(|s| s.end.le(start));
        for i in first..self.segs.len() {
            let s = self.segs[i];
            if s.start.ge(end) {
                break;
            }
            if s.sacked {
                continue;
            }
            resent += s.len();
            self.update(i, |s| {
                s.sent_at = now;
                s.order = order;
                s.retransmitting = true;
                s.retransmitted = true;
            });
        }
        // A retransmission may run past SND.MAX (re-segmented after a timeout): append the rest.
        if let Some(h) = high.filter(|h| end.gt(*h)) {
            self.on_send(h, end, now);
        }
        resent
    }

    /// Splits the record containing `seq` (strictly inside it) in two.
    fn split_at(&mut self, seq: SeqNumber) {
        let i = self.segs.partition_point(|s| s.end.le(seq));
        if let Some(s) = self.segs.get(i).copied() {
            if s.start.lt(seq) && seq.lt(s.end) {
                self.segs[i].end = seq;
                self.segs.insert(i + 1, Segment { start: seq, ..s });
                if s.sacked {
                    self.sacked_segs += 1;
                }
            }
        }
    }

    /// Processes an ACK: `ack` is SEG.ACK (at or above SND.UNA), `blocks` its SACK blocks as
    /// sent (the first may be a D-SACK block).
    pub fn on_ack(&mut self, ack: SeqNumber, blocks: &[(SeqNumber, SeqNumber)]) -> AckSummary {
        let mut out = AckSummary::default();
        let una = self.segs.front().map(|s| s.start).unwrap_or(ack);
        // RFC 2883 §4: "If the first SACK block's left edge is below the cumulative ACK, or the
        // first SACK block is contained in the second, it is a D-SACK block".
        let mut blocks = blocks;
        if let Some(&(l, r)) = blocks.first() {
            let below = l.lt(ack);
            let inside = blocks
                .get(1)
                .is_some_and(|&(l2, r2)| l2.le(l) && r.le(r2) && (l, r) != (l2, r2));
            if below || inside {
                out.dsack = Some((l, r));
                blocks = &blocks[1..];
            }
        }
        let prior_fack = self.fack;
        let note = |s: &Segment, out: &mut AckSummary| {
            let later = out
                .latest
                .is_none_or(|d| sent_after(s.sent_at, s.order, d.sent_at, d.order));
            if later {
                out.latest = Some(Delivered {
                    sent_at: s.sent_at,
                    order: s.order,
                    end: s.end,
                    retransmitted: s.retransmitted,
                });
            }
            if !s.retransmitted && prior_fack.is_some_and(|f| s.end.lt(f)) {
                out.reordered = true;
            }
        };
        // Cumulative acknowledgment.
        if ack.gt(una) {
            self.split_at(ack);
            while let Some(s) = self.segs.front().copied() {
                if s.end.gt(ack) {
                    break;
                }
                self.segs.pop_front();
                self.account(&s, false);
                out.acked += s.len();
                if !s.sacked {
                    out.delivered += s.len();
                    note(&s, &mut out);
                }
            }
        }
        // Selective acknowledgments (RFC 6675 §4: "the scoreboard is updated with the SACK
        // information"), only above the cumulative ACK and within what was sent.
        for &(l, r) in blocks {
            let l = l.max(ack);
            if r.le(l) || self.segs.back().is_none_or(|b| r.gt(b.end)) {
                continue;
            }
            self.split_at(l);
            self.split_at(r);
            let first = self.segs.partition_point(|s| s.end.le(l));
            for i in first..self.segs.len() {
                let s = self.segs[i];
                if s.start.ge(r) {
                    break;
                }
                if !s.sacked {
                    self.update(i, |seg| {
                        seg.sacked = true;
                        seg.lost = false;
                        seg.retransmitting = false;
                    });
                    out.sacked += s.len();
                    out.delivered += s.len();
                    note(&s, &mut out);
                }
            }
        }
        if let Some(d) = out.latest {
            self.fack = Some(self.fack.map_or(d.end, |f| f.max(d.end)));
        }
        if self.segs.is_empty() {
            self.clear();
        }
        out
    }

    /// Bytes from SND.UNA to SND.MAX (RFC 6675 FlightSize, SACKed bytes included).
    pub fn outstanding(&self) -> u32 {
        self.total
    }

    /// Bytes SACKed above SND.UNA.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// SACKed records ("RACK.segs_sacked", RFC 8985 §6.1, up to splitting).
    pub fn sacked_segments(&self) -> u32 {
        self.sacked_segs
    }

    /// RFC 6675 §2 "IsLost (SeqNum)": "This routine returns whether the given sequence number
    /// is considered to be lost. The routine returns true when either DupThresh discontiguous
    /// SACKed sequences have arrived above 'SeqNum' or more than (DupThresh - 1) * SMSS bytes
    /// with sequence numbers greater than 'SeqNum' have been SACKed."
    pub fn is_lost(&self, seq: SeqNumber, smss: u32) -> bool {
        let mut ranges = 0u32;
        let mut bytes = 0u32;
        let mut prev_sacked = false;
        for s in self.segs.iter().filter(|s| s.end.gt(seq)) {
            if s.sacked {
                if !prev_sacked {
                    ranges += 1;
                }
                bytes += s.end - s.start.max(seq + 1u32);
            }
            prev_sacked = s.sacked;
            if ranges >= DUP_THRESH || bytes > (DUP_THRESH - 1) * smss {
                return true;
            }
        }
        false
    }

    /// Marks every unSACKed segment that RFC 6675 IsLost deems lost; returns the bytes newly
    /// marked. Walks from the top, so the whole sweep is one pass.
    pub fn mark_lost_by_sack(&mut self, smss: u32) -> u32 {
        if self.sacked == 0 {
            return 0;
        }
        let mut ranges = 0u32;
        let mut bytes = 0u32;
        let mut prev_sacked = false;
        let mut marked = 0;
        for i in (0..self.segs.len()).rev() {
            let s = self.segs[i];
            if s.sacked {
                if !prev_sacked {
                    ranges += 1;
                }
                bytes += s.len();
            } else if (ranges >= DUP_THRESH || bytes > (DUP_THRESH - 1) * smss)
                && !s.lost
                && !s.retransmitting
            {
                self.update(i, |s| s.lost = true);
                marked += s.len();
            }
            prev_sacked = s.sacked;
        }
        marked
    }

    /// Marks one segment (by its start) lost, as RACK or a timeout decides, also a
    /// retransmission that was lost again; returns its length if that changed anything.
    pub fn mark_lost(&mut self, start: SeqNumber) -> u32 {
        let i = self.segs.partition_point(|s| s.end.le(start));
        match self.segs.get(i) {
            Some(s) if !s.sacked && (!s.lost || s.retransmitting) => {
                let len = s.len();
                self.update(i, |s| {
                    s.lost = true;
                    s.retransmitting = false;
                });
                len
            }
            _ => 0,
        }
    }

    /// After a retransmission timeout every unSACKed segment is lost (RFC 6675 §5.1, RFC 8985
    /// §6.3): the pipe is empty and the retransmissions start from SND.UNA.
    pub fn mark_all_lost(&mut self) {
        for i in 0..self.segs.len() {
            if !self.segs[i].sacked {
                self.update(i, |s| {
                    s.lost = true;
                    s.retransmitting = false;
                });
            }
        }
    }

    /// A reduction turned out spurious: nothing not yet retransmitted is lost after all.
    pub fn clear_lost(&mut self) {
        for i in 0..self.segs.len() {
            if self.segs[i].lost && !self.segs[i].retransmitting {
                self.update(i, |s| s.lost = false);
            }
        }
    }

    /// RFC 6675 §2 "SetPipe ()": "for each octet [...] (a) If IsLost (S1) returns false: pipe
    /// is incremented by 1 octet. (b) If S1 <= HighRxt: Pipe is incremented by 1 octet."
    /// Here an octet is lost when its segment is marked lost, and (b) counts retransmissions
    /// still in flight.
    pub fn pipe(&self) -> u32 {
        self.total - self.sacked - self.lost + self.retrans
    }

    /// RFC 6675 §2 "NextSeg ()" rule (1): the lowest unSACKed segment deemed lost and not
    /// retransmitted since, cut to `smss`. Rule (2), new data, is the caller's when this is
    /// `None`.
    pub fn next_lost(&self, smss: u32) -> Option<(SeqNumber, SeqNumber)> {
        if self.lost_bytes() == 0 {
            return None;
        }
        self.segs
            .iter()
            .find(|s| s.lost && !s.retransmitting && !s.sacked)
            .map(|s| (s.start, s.start + s.len().min(smss)))
    }

    /// Bytes marked lost and not retransmitted yet.
    pub fn lost_bytes(&self) -> u32 {
        self.lost - self.lost_retrans
    }

    /// The highest end sequence number SACKed or ACKed so far ("RACK.fack").
    pub fn fack(&self) -> Option<SeqNumber> {
        self.fack
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Ten segments of 1000 bytes from 0, sent 1 ms apart.
    fn ten() -> Scoreboard {
        let mut sb = Scoreboard::new();
        for i in 0..10u32 {
            sb.on_send(
                SeqNumber(i * MSS),
                SeqNumber((i + 1) * MSS),
                t(u64::from(i)),
            );
        }
        sb
    }

    fn seq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn a_cumulative_ack_removes_what_it_covers_and_splits_a_partly_acked_segment() {
        let mut sb = ten();
        let a = sb.on_ack(seq(2500), &[]);
        assert_eq!((a.acked, a.delivered), (2500, 2500));
        assert_eq!(sb.segments().next().unwrap().start, seq(2500));
        assert_eq!(sb.pipe(), 7500);
        assert_eq!(
            a.latest.map(|d| d.end),
            Some(seq(2500)),
            "the part of segment 3 that was acknowledged"
        );
    }

    #[test]
    fn sack_blocks_mark_segments_and_count_delivered_data_once() {
        let mut sb = ten();
        let a = sb.on_ack(seq(0), &[(seq(3000), seq(5000))]);
        assert_eq!((a.acked, a.sacked, a.delivered), (0, 2000, 2000));
        // The same block again delivers nothing new.
        let a = sb.on_ack(seq(0), &[(seq(3000), seq(5000))]);
        assert_eq!(a.delivered, 0);
        // RFC 6937: "DeliveredData = change_in(snd.una) + change_in(SACKd)": acknowledging
        // through 5000 delivers only the 3000 bytes that were not SACKed.
        let a = sb.on_ack(seq(5000), &[]);
        assert_eq!((a.acked, a.delivered), (5000, 3000));
    }

    #[test]
    fn is_lost_after_dupthresh_sacked_segments_above() {
        // RFC 6675 §2: "The routine returns true when either DupThresh discontiguous SACKed
        // sequences have arrived above 'SeqNum' or more than (DupThresh - 1) * SMSS bytes with
        // sequence numbers greater than 'SeqNum' have been SACKed."
        let mut sb = ten();
        sb.on_ack(seq(0), &[(seq(1000), seq(3000))]);
        assert!(!sb.is_lost(seq(0), MSS), "two segments above: not yet");
        sb.on_ack(seq(0), &[(seq(1000), seq(4000))]);
        assert!(sb.is_lost(seq(0), MSS), "three segments above");
        // Three discontiguous SACKed ranges, one byte each segment's worth apart.
        let mut sb = ten();
        sb.on_ack(
            seq(0),
            &[
                (seq(5000), seq(5100)),
                (seq(3000), seq(3100)),
                (seq(1000), seq(1100)),
            ],
        );
        assert!(sb.is_lost(seq(0), MSS));
        assert!(!sb.is_lost(seq(2000), MSS), "only two ranges above 2000");
    }

    #[test]
    fn three_holes_are_marked_lost_in_one_sweep_and_next_seg_returns_them_in_order() {
        let mut sb = ten();
        // Segments 0, 3 and 6 lost; everything else SACKed.
        let a = sb.on_ack(
            seq(0),
            &[
                (seq(7000), seq(10_000)),
                (seq(4000), seq(6000)),
                (seq(1000), seq(3000)),
            ],
        );
        assert_eq!(a.sacked, 7000);
        // Above 6000: 3000 SACKed bytes, "more than (DupThresh - 1) * SMSS".
        assert!(sb.is_lost(seq(6000), MSS));
        assert_eq!(sb.mark_lost_by_sack(MSS), 3000, "all three holes at once");
        assert_eq!(sb.pipe(), 0);
        for hole in [0, 3000, 6000] {
            assert_eq!(sb.next_lost(MSS), Some((seq(hole), seq(hole + 1000))));
            sb.on_send(seq(hole), seq(hole + 1000), t(20));
        }
        assert_eq!(sb.next_lost(MSS), None, "each hole is sent once");
        assert_eq!(sb.pipe(), 3000, "the three retransmissions");
        // A retransmission lost again can be marked again (RACK), and is sent again.
        assert_eq!(sb.mark_lost(seq(3000)), 1000);
        assert_eq!(sb.next_lost(MSS), Some((seq(3000), seq(4000))));
    }

    #[test]
    fn pipe_counts_unsacked_not_lost_bytes_plus_retransmissions_in_flight() {
        // RFC 6675 SetPipe: "(a) If IsLost (S1) returns false: pipe is incremented by 1 octet.
        // (b) If S1 <= HighRxt: Pipe is incremented by 1 octet."
        let mut sb = ten();
        sb.on_ack(seq(0), &[(seq(1000), seq(4000))]);
        assert_eq!(sb.pipe(), 7000);
        sb.mark_lost_by_sack(MSS);
        assert_eq!(sb.pipe(), 6000, "segment 0 is lost: out of the pipe");
        sb.on_send(seq(0), seq(1000), t(30));
        assert_eq!(sb.pipe(), 7000, "its retransmission is in the pipe");
    }

    #[test]
    fn a_dsack_block_below_the_ack_or_inside_the_second_block_is_recognised() {
        // RFC 2883 §4.1.1: "the first SACK block [...] reports the duplicate" with its left
        // edge below the cumulative ACK.
        let mut sb = ten();
        sb.on_ack(seq(2000), &[]);
        let a = sb.on_ack(seq(2000), &[(seq(1000), seq(2000))]);
        assert_eq!(a.dsack, Some((seq(1000), seq(2000))));
        assert_eq!(a.delivered, 0);
        // RFC 2883 §4.2.1: a D-SACK block inside the first SACK block that follows it.
        let a = sb.on_ack(seq(2000), &[(seq(5000), seq(6000)), (seq(4000), seq(7000))]);
        assert_eq!(a.dsack, Some((seq(5000), seq(6000))));
        assert_eq!(a.sacked, 3000, "the second block still counts as a SACK");
        // An ordinary first block is no D-SACK.
        let a = sb.on_ack(seq(2000), &[(seq(8000), seq(9000)), (seq(4000), seq(7000))]);
        assert_eq!(a.dsack, None);
    }

    #[test]
    fn a_retransmission_marks_the_record_and_the_latest_delivered_is_by_send_time() {
        let mut sb = ten();
        sb.mark_lost(seq(0));
        sb.on_send(seq(0), seq(1000), t(50));
        let a = sb.on_ack(seq(0), &[(seq(1000), seq(2000))]);
        assert_eq!(
            a.latest,
            Some(Delivered {
                sent_at: t(1),
                order: 2,
                end: seq(2000),
                retransmitted: false
            })
        );
        let a = sb.on_ack(seq(2000), &[]);
        assert_eq!(
            a.latest,
            Some(Delivered {
                sent_at: t(50),
                order: 11,
                end: seq(1000),
                retransmitted: true
            }),
            "sent last, though lower"
        );
    }

    #[test]
    fn reordering_is_seen_when_an_original_arrives_below_the_highest_delivered() {
        let mut sb = ten();
        let a = sb.on_ack(seq(0), &[(seq(2000), seq(3000))]);
        assert!(!a.reordered);
        let a = sb.on_ack(seq(0), &[(seq(1000), seq(3000))]);
        assert!(
            a.reordered,
            "segment 1 was never retransmitted, yet arrived late"
        );
    }

    #[test]
    fn after_a_timeout_everything_unsacked_is_lost_and_the_pipe_is_empty() {
        let mut sb = ten();
        sb.on_ack(seq(0), &[(seq(5000), seq(6000))]);
        sb.mark_all_lost();
        assert_eq!(sb.pipe(), 0);
        assert_eq!(sb.lost_bytes(), 9000);
    }

    #[test]
    fn the_running_totals_match_the_records_through_random_operations() {
        let mut sb = Scoreboard::new();
        let mut x: u64 = 7;
        let mut rnd = |n: u32| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) as u32) % n
        };
        let (mut una, mut nxt) = (0u32, 0u32);
        for step in 0..5000 {
            match rnd(6) {
                0 | 1 => {
                    let len = 1 + rnd(1500);
                    sb.on_send(seq(nxt), seq(nxt + len), t(step));
                    nxt += len;
                }
                2 if nxt > una => {
                    let l = una + rnd(nxt - una);
                    let r = l + 1 + rnd(nxt - l);
                    let a = una + rnd(1 + (nxt - una) / 8);
                    sb.on_ack(seq(a), &[(seq(l), seq(r))]);
                    una = una.max(a);
                }
                3 if nxt > una => {
                    sb.mark_lost(seq(una + rnd(nxt - una)));
                    sb.mark_lost_by_sack(MSS);
                }
                4 if nxt > una => {
                    let l = una + rnd(nxt - una);
                    sb.on_send(seq(l), seq(l + 1 + rnd(nxt - l)), t(step));
                }
                _ if rnd(50) == 0 => sb.mark_all_lost(),
                _ => {}
            }
            let segs: Vec<Segment> = sb.segments().copied().collect();
            let sum = |f: &dyn Fn(&Segment) -> bool| -> u32 {
                segs.iter().filter(|s| f(s)).map(|s| s.len()).sum()
            };
            let pipe: u32 = segs
                .iter()
                .filter(|s| !s.sacked)
                .map(|s| s.len() * (u32::from(!s.lost) + u32::from(s.retransmitting)))
                .sum();
            assert_eq!(sb.pipe(), pipe, "step {step}");
            assert_eq!(sb.sacked_bytes(), sum(&|s| s.sacked));
            assert_eq!(sb.lost_bytes(), sum(&|s| s.lost && !s.retransmitting));
            assert_eq!(
                sb.sacked_segments() as usize,
                segs.iter().filter(|s| s.sacked).count()
            );
            assert!(
                segs.windows(2).all(|w| w[0].end == w[1].start),
                "contiguous"
            );
        }
    }

    #[test]
    fn an_idle_scoreboard_holds_no_heap() {
        let mut sb = ten();
        sb.on_ack(seq(10_000), &[]);
        assert!(sb.is_empty());
        assert_eq!(sb.heap_bytes(), 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut sb = Scoreboard::new();
        let base = SeqNumber(u32::MAX - 1500);
        for i in 0..4u32 {
            sb.on_send(base + i * MSS, base + (i + 1) * MSS, t(0));
        }
        let a = sb.on_ack(base, &[(base + 1000u32, base + 4000u32)]);
        assert_eq!(a.sacked, 3000);
        assert_eq!(sb.mark_lost_by_sack(MSS), 1000);
        assert_eq!(sb.next_lost(MSS), Some((base, base + 1000u32)));
    }
}
