//! The sender's SACK scoreboard: every segment between SND.UNA and SND.MAX with what the peer
//! said about it, for loss recovery (RFC 6675), D-SACK (RFC 2883) and RACK (RFC 8985).
//!
//! Read: RFC 6675 §2 (definitions: "IsLost (SeqNum)", "SetPipe ()", "NextSeg ()"), §4 (the
//! scoreboard), §5 (the algorithm); RFC 2018 §3 (the SACK option); RFC 2883 §4 ("Use of the
//! D-SACK option", how the sender tells a D-SACK block from a SACK block); RFC 8985 §6.1
//! (RACK's per-segment state: "Segment.xmit_ts", "Segment.lost", "Segment.retransmitted").
//! Linux: `tcp_input.c` (`tcp_sacktag_write_queue`, `tcp_match_skb_to_sack`,
//! `tcp_shift_skb_data`), `tcp_recovery.c` (`tcp_rack_detect_loss`), and the fixes of
//! CVE-2019-11477/11478/11479 ("SACK panic").
//!
//! Each record is one transmitted segment, so a lost segment is resent whole and RACK knows
//! when each byte was last sent. Records exist only for data in flight: an idle connection's
//! scoreboard holds no heap.
//!
//! # What a peer's SACK blocks cannot do
//!
//! The peer chooses the blocks. If records followed them byte by byte, duplicate ACKs with
//! four 1-byte blocks each would cut the scoreboard into a record per byte, every ACK would
//! walk all of them, and the holes would go out again as 1-byte segments: one client would
//! stall the worker. So, as Linux since CVE-2019-11477:
//!
//! - **A SACK block never cuts a segment.** It covers the records wholly inside it; an edge
//!   inside a record moves to the record's segment grid (MSS multiples from its start), as in
//!   `tcp_match_skb_to_sack` ("Round if necessary so that SACKs cover only full MSSes and/or
//!   the remaining small portion"): a record of one segment is SACKed whole or not at all, and
//!   only a record longer than the MSS (a segment with our FIN, or records joined below) is
//!   split, at segment boundaries. A record is thus never shorter than the MSS or than the
//!   segment it was sent as. Blocks moved this way are counted ([`AckSummary::rounded`]).
//! - **Runs are one record.** Adjacent SACKed records merge (Linux shifts SACKed data into the
//!   previous SACKed skb, `tcp_shift_skb_data`), and so do the pieces of one transmission (a
//!   retransmission that joined small lost records, as `tcp_retrans_try_collapse`). The blocks
//!   a receiver repeats in every ACK then cost one record each, not one per segment.
//! - **A hard cap.** A block that would split a record of a scoreboard already holding
//!   [`MAX_RECORDS`] is dropped and counted ([`AckSummary::over_cap`]), as Linux refuses
//!   `tcp_fragment` past its send buffer (`TCPWqueueTooBig`). What we send is never refused:
//!   its records are bounded by the send buffer and the MSS floor (`negotiate::MIN_MSS`).
//! - **No walk revisits what is settled.** NextSeg starts from a hint below which nothing
//!   waits for a retransmission (Linux's `retransmit_skb_hint`). RACK looks only at records in
//!   flight: the originals from a cursor below which none is in flight, and the
//!   retransmissions from a list of those sent (Linux walks a send-time list from which SACKed
//!   and lost skbs are removed, `tsorted_sent_queue`). The engine runs RACK only on an ACK
//!   that delivered something ([`super::recovery`]), and each segment is delivered once.
//!
//! So an ACK that delivers nothing new (the shredding ACK above) costs a binary search per
//! block, whatever the peer sent before it; one that does costs the records it settles and the
//! records in flight RACK looks at. [`Scoreboard::visited`] counts every record looked at.

use std::collections::VecDeque;

use crate::time::Instant;
use crate::wire::SeqNumber;

/// RFC 6675 §2: "DupThresh: The number of duplicate acknowledgments required to trigger a
/// retransmission [...] this document uses a value of 3".
pub const DUP_THRESH: u32 = 3;

/// The most records a SACK block may split the scoreboard into: the default send buffer
/// (256 KiB) in segments of the smallest MSS the engine sends with (64 bytes), so that a
/// connection within the defaults never meets it.
pub const MAX_RECORDS: usize = 4096;

/// What the peer has said about one transmitted segment (or a run of them, merged).
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
    /// Segments the record stands for (Linux's `tcp_skb_pcount`): one as sent; merged records
    /// add theirs up, so RACK's "segs_sacked" still counts segments.
    pub segs: u16,
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

    /// Lost, and its retransmission not sent yet: what NextSeg () returns.
    fn waiting(&self) -> bool {
        self.lost && !self.retransmitting
    }

    /// Neither SACKed nor waiting for a retransmission: in the network, for RACK to judge.
    fn in_flight(&self) -> bool {
        !self.sacked && !self.waiting()
    }

    /// Whether `next`, the record right after this one, can join it: both SACKed, or pieces
    /// of one transmission in the same state.
    fn joins(&self, next: &Segment) -> bool {
        let room = u32::from(self.segs) + u32::from(next.segs) <= u32::from(u16::MAX);
        let same_send = Segment {
            start: next.start,
            end: next.end,
            segs: next.segs,
            ..*self
        } == *next;
        room && ((self.sacked && next.sacked) || same_send)
    }

    /// Splits the record at `seq` (strictly inside it); the segment count is shared out.
    fn split(self, seq: SeqNumber) -> (Segment, Segment) {
        let k = u64::from(self.segs);
        let low = if k < 2 {
            1
        } else {
            (k * u64::from(seq - self.start) / u64::from(self.len())).clamp(1, k - 1)
        };
        let high = if k < 2 { 1 } else { k - low };
        (
            Segment {
                end: seq,
                segs: low as u16,
                ..self
            },
            Segment {
                start: seq,
                segs: high as u16,
                ..self
            },
        )
    }

    /// The first sequence number at or above `seq` (inside the record) where a SACK block may
    /// begin to cover it: the record's start, its next segment boundary, or its end.
    fn boundary_above(&self, seq: SeqNumber, mss: u32) -> SeqNumber {
        let off = seq - self.start;
        if off == 0 {
            return seq;
        }
        let up = off.div_ceil(mss).saturating_mul(mss);
        if self.len() <= mss || up >= self.len() {
            self.end
        } else {
            self.start + up
        }
    }

    /// The last sequence number at or below `seq` (inside the record, or its end) where a
    /// SACK block may stop covering it: the record's end, a segment boundary, or its start.
    fn boundary_below(&self, seq: SeqNumber, mss: u32) -> SeqNumber {
        if seq == self.end {
            return seq;
        }
        if self.len() <= mss {
            self.start
        } else {
            self.start + (seq - self.start) / mss * mss
        }
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
    /// The D-SACK block, if the ACK carried one (RFC 2883 §4), as sent: whether it is to be
    /// believed is loss recovery's call.
    pub dsack: Option<(SeqNumber, SeqNumber)>,
    /// The newly delivered segment that was sent last (RACK).
    pub latest: Option<Delivered>,
    /// The newly delivered segment RACK.rtt is taken from, as Linux's `tcp_rack_advance`
    /// takes it: the last its walk meets, which SACKs first (blocks in sequence order) and then
    /// acknowledges cumulatively, so the highest acknowledged cumulatively, else the highest
    /// SACKed.
    pub rtt_from: Option<Delivered>,
    /// Whether `rtt_from` was acknowledged cumulatively.
    rtt_from_cumulative: bool,
    /// A never-retransmitted segment was delivered below one delivered earlier: the network
    /// reordered (RFC 8985 §6.2 step 3).
    pub reordered: bool,
    /// SACK blocks ignored: empty or reversed, beyond SND.MAX, or wholly below SEG.ACK.
    pub rejected: u8,
    /// SACK blocks with an edge inside a segment, moved to its boundaries (maybe to nothing).
    pub rounded: u8,
    /// SACK blocks dropped because splitting a record for them would pass [`MAX_RECORDS`].
    pub over_cap: u8,
}

/// RACK's judgement of one record in flight, for [`Scoreboard::rack_walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent after the most recently delivered segment: RACK cannot judge it (nor, for an
    /// original, any record above it, sent later still).
    SentAfter,
    /// Lost: its time ran out.
    Lost,
    /// Not yet: RACK's reordering window is still open for it.
    Waiting,
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
    /// SACKed segments (for RACK's "segs_sacked").
    sacked_segs: u32,
    /// Transmissions recorded (the next [`Segment::order`]).
    sends: u32,
    /// NextSeg's hint: no record below it waits for a retransmission (at most SND.UNA's
    /// distance below it, like every hint here).
    lost_hint: SeqNumber,
    /// RACK's cursor: no record below it is an original in flight.
    rack_cursor: SeqNumber,
    /// The retransmissions RACK has to judge: (start, order) of each record as it went out.
    /// An entry whose record was since SACKed, lost, acknowledged or sent again is stale, and
    /// dropped when RACK meets it.
    rexmits: Vec<(SeqNumber, u32)>,
    /// Records looked at by every search and walk so far (a binary search counts its steps).
    visited: u64,
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

    /// Records looked at by the scoreboard's searches and walks since it was made: what loss
    /// recovery costs, counted without a clock.
    pub fn visited(&self) -> u64 {
        self.visited
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.segs.capacity() * size_of::<Segment>()
            + self.rexmits.capacity() * size_of::<(SeqNumber, u32)>()
    }

    /// Forgets everything (everything was acknowledged, or the connection is gone).
    pub fn clear(&mut self) {
        *self = Scoreboard {
            fack: self.fack,
            sends: self.sends,
            visited: self.visited,
            ..Scoreboard::default()
        };
    }

    /// Adds (`add`) or removes a record's bytes from the running totals.
    fn account(&mut self, s: &Segment, add: bool) {
        let apply = |v: &mut u32, n: u32| *v = if add { *v + n } else { *v - n };
        let len = s.len();
        apply(&mut self.total, len);
        if s.sacked {
            apply(&mut self.sacked, len);
            apply(&mut self.sacked_segs, u32::from(s.segs));
        }
        if s.lost {
            apply(&mut self.lost, len);
        }
        if s.retransmitting {
            apply(&mut self.retrans, len);
            if s.lost {
                apply(&mut self.lost_retrans, len);
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

    /// The index of the record holding `seq` (or of the first above it; 0 for anything at or
    /// below SND.UNA), by binary search.
    fn find(&mut self, seq: SeqNumber) -> usize {
        self.visited += u64::from(usize::BITS - self.segs.len().leading_zeros());
        match self.segs.front() {
            Some(f) if seq.gt(f.start) => self.segs.partition_point(|s| s.end.le(seq)),
            _ => 0,
        }
    }

    /// Splits the record holding `seq` strictly inside it, unless it is SACKed (nothing is
    /// ever sent or decided for part of a SACKed run). Returns whether it split.
    fn split_at(&mut self, seq: SeqNumber) -> bool {
        let i = self.find(seq);
        let Some(s) = self.segs.get(i).copied() else {
            return false;
        };
        if s.sacked || !(s.start.lt(seq) && seq.lt(s.end)) {
            return false;
        }
        let (low, high) = s.split(seq);
        self.segs[i] = low;
        self.segs.insert(i + 1, high);
        // Both pieces of a retransmission in flight stay on RACK's list.
        if s.retransmitted && s.in_flight() {
            self.note_rexmit(seq, s.order);
        }
        true
    }

    /// Calls `f` with the index and the record of every record not SACKed from the one
    /// holding `lo` up to `hi` (exclusive); returns the index of that first record and one
    /// past the last.
    fn for_each_unsacked(
        &mut self,
        lo: SeqNumber,
        hi: SeqNumber,
        mut f: impl FnMut(&mut Scoreboard, usize, Segment),
    ) -> (usize, usize) {
        let first = self.find(lo);
        let mut i = first;
        while let Some(s) = self.segs.get(i).copied() {
            if s.start.ge(hi) {
                break;
            }
            self.visited += 1;
            if !s.sacked {
                f(self, i, s);
            }
            i += 1;
        }
        (first, i)
    }

    /// Joins the records `lo..=hi` that [`Segment::joins`] allows, in one pass and one move
    /// of the records above; returns the index the record at `hi` ended up in.
    fn coalesce(&mut self, lo: usize, hi: usize) -> usize {
        let hi = hi.min(self.segs.len().saturating_sub(1));
        if lo >= hi {
            return hi;
        }
        let mut w = lo;
        for r in lo + 1..=hi {
            self.visited += 1;
            let (a, b) = (self.segs[w], self.segs[r]);
            if a.joins(&b) {
                self.segs[w] = Segment {
                    end: b.end,
                    segs: a.segs + b.segs,
                    retransmitted: a.retransmitted || b.retransmitted,
                    ..a
                };
            } else {
                w += 1;
                self.segs[w] = b;
            }
        }
        if w < hi {
            self.segs.drain(w + 1..=hi);
        }
        w
    }

    /// Puts a retransmission on RACK's list, dropping stale entries once the list outgrows
    /// the records (so it never holds more than twice as many entries as there are records).
    fn note_rexmit(&mut self, start: SeqNumber, order: u32) {
        if self.rexmits.len() > self.segs.len() + 16 {
            let mut list = std::mem::take(&mut self.rexmits);
            list.retain(|&(start, order)| self.rexmit_index(start, order).is_some());
            self.rexmits = list;
        }
        self.rexmits.push((start, order));
    }

    /// The record an entry of RACK's retransmission list stands for, if it is still that
    /// retransmission and still in flight.
    fn rexmit_index(&mut self, start: SeqNumber, order: u32) -> Option<usize> {
        self.visited += 1;
        let i = self.find(start);
        let s = self.segs.get(i)?;
        (s.order == order && s.retransmitted && s.in_flight()).then_some(i)
    }

    /// Records a transmission of `[start, end)` at `now`: new data is appended (it must start
    /// at the previous end); a retransmission marks the records it covers, splitting at its
    /// edges (which NextSeg () puts at record boundaries, but for a record longer than a
    /// segment), and joins what went out together. Returns the bytes that were a
    /// retransmission.
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
                segs: 1,
                sacked: false,
                lost: false,
                retransmitting: false,
                retransmitted: false,
            };
            if self.segs.is_empty() {
                self.lost_hint = start;
                self.rack_cursor = start;
            }
            self.account(&seg, true);
            self.segs.push_back(seg);
            return 0;
        }
        // A retransmission may run past SND.MAX (re-segmented after a timeout): the rest is
        // appended below.
        let past = high.filter(|h| end.gt(*h));
        let resend_end = past.unwrap_or(end);
        self.split_at(start);
        self.split_at(resend_end);
        let mut resent = 0;
        let (first, i) = self.for_each_unsacked(start, resend_end, |sb, i, s| {
            resent += s.len();
            sb.update(i, |s| {
                s.sent_at = now;
                s.order = order;
                s.retransmitting = true;
                s.retransmitted = true;
            });
        });
        if i > first {
            let last = self.coalesce(first, i - 1);
            for j in first..=last {
                let s = self.segs[j];
                if s.order == order && !s.sacked {
                    self.note_rexmit(s.start, order);
                }
            }
        }
        if let Some(h) = past {
            self.on_send(h, end, now);
        }
        resent
    }

    /// Processes an ACK: `ack` is SEG.ACK (at or above SND.UNA), `blocks` its SACK blocks as
    /// sent (the first may be a D-SACK block), `mss` the segment size we send with.
    pub fn on_ack(
        &mut self,
        ack: SeqNumber,
        blocks: &[(SeqNumber, SeqNumber)],
        mss: u32,
    ) -> AckSummary {
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
        // Cumulative acknowledgment; a segment acknowledged in part keeps the rest.
        if ack.gt(una) {
            while let Some(s) = self.segs.front().copied() {
                if s.start.ge(ack) {
                    break;
                }
                self.visited += 1;
                self.account(&s, false);
                let done = if s.end.gt(ack) {
                    let (done, rest) = s.split(ack);
                    self.segs[0] = rest;
                    self.account(&rest, true);
                    done
                } else {
                    self.segs.pop_front();
                    s
                };
                out.acked += done.len();
                if !done.sacked {
                    out.delivered += done.len();
                    note_delivered(&done, true, prior_fack, &mut out);
                }
            }
            // The hints stay within reach of SND.UNA (sequence numbers compare only so).
            if let Some(f) = self.segs.front().map(|s| s.start) {
                self.lost_hint = self.lost_hint.max(f);
                self.rack_cursor = self.rack_cursor.max(f);
            }
        }
        // Selective acknowledgments (RFC 6675 §4: "the scoreboard is updated with the SACK
        // information"), only above the cumulative ACK and within what was sent.
        for &(l, r) in blocks {
            self.sack_block(l, r, ack, mss, prior_fack, &mut out);
        }
        if let Some(d) = out.latest {
            self.fack = Some(self.fack.map_or(d.end, |f| f.max(d.end)));
        }
        if self.segs.is_empty() {
            self.clear();
        }
        out
    }

    /// One SACK block `[l, r)` of an ACK of `ack`: validated, its edges moved to segment
    /// boundaries, then every record it covers SACKed and joined to its SACKed neighbours.
    fn sack_block(
        &mut self,
        l: SeqNumber,
        r: SeqNumber,
        ack: SeqNumber,
        mss: u32,
        prior_fack: Option<SeqNumber>,
        out: &mut AckSummary,
    ) {
        // Linux `tcp_is_sackblock_valid`: "Too far in future, or reversed (interpretation is
        // ambiguous)"; and a block at or below SEG.ACK says nothing new.
        let l = l.max(ack);
        let high = self.segs.back().map(|s| s.end);
        if r.le(l) || high.is_none_or(|h| r.gt(h)) {
            out.rejected += 1;
            return;
        }
        let i = self.find(l);
        let s = self.segs[i];
        let lo = if s.sacked {
            l
        } else {
            s.boundary_above(l, mss)
        };
        // A block inside one record (the shredding kind) needs one search, not two.
        let t = if r.le(s.end) {
            s
        } else {
            let j = self.find(r - 1u32);
            self.segs[j]
        };
        let hi = if t.sacked {
            r
        } else {
            t.boundary_below(r, mss)
        };
        if (lo, hi) != (l, r) {
            out.rounded += 1;
        }
        if hi.le(lo) {
            return;
        }
        let cuts = |x: &Segment, seq: SeqNumber| !x.sacked && x.start.lt(seq) && seq.lt(x.end);
        let splits = usize::from(cuts(&s, lo)) + usize::from(cuts(&t, hi));
        if splits > 0 && self.segs.len() + splits > MAX_RECORDS {
            out.over_cap += 1;
            return;
        }
        self.split_at(lo);
        self.split_at(hi);
        let (first, end) = self.for_each_unsacked(lo, hi, |sb, i, s| {
            sb.update(i, |seg| {
                seg.sacked = true;
                seg.lost = false;
                seg.retransmitting = false;
            });
            out.sacked += s.len();
            out.delivered += s.len();
            note_delivered(&s, false, prior_fack, out);
        });
        self.coalesce(first.saturating_sub(1), end);
    }

    /// Bytes from SND.UNA to SND.MAX (RFC 6675 FlightSize, SACKed bytes included).
    pub fn outstanding(&self) -> u32 {
        self.total
    }

    /// Bytes SACKed above SND.UNA.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// SACKed segments ("RACK.segs_sacked", RFC 8985 §6.1).
    pub fn sacked_segments(&self) -> u32 {
        self.sacked_segs
    }

    /// Marks record `i` lost, unless SACKed or already waiting for its retransmission;
    /// returns its length if that changed anything.
    fn mark_lost_at(&mut self, i: usize) -> u32 {
        let s = self.segs[i];
        if s.sacked || s.waiting() {
            return 0;
        }
        self.update(i, |s| {
            s.lost = true;
            s.retransmitting = false;
        });
        self.lost_hint = self.lost_hint.min(s.start);
        s.len()
    }

    /// Marks one segment (by its start) lost, as RACK or a timeout decides, also a
    /// retransmission that was lost again; returns its length if that changed anything.
    pub fn mark_lost(&mut self, start: SeqNumber) -> u32 {
        let i = self.find(start);
        if i < self.segs.len() {
            self.mark_lost_at(i)
        } else {
            0
        }
    }

    /// RFC 8985 §6.2 step 5's walk, "For each segment in the scoreboard" that is in flight:
    /// `judge` says whether it is lost, still within the reordering window, or sent after the
    /// latest delivered segment; those it deems lost are marked. Returns the bytes newly
    /// marked.
    ///
    /// Only records in flight are looked at: the retransmissions from their list (in any
    /// order), then the originals lowest first from the cursor, up to the first one sent
    /// after the latest delivered segment (originals go out in sequence order, so every one
    /// above it was sent after it too). The cursor moves past what is settled.
    pub fn rack_walk(&mut self, mut judge: impl FnMut(&Segment) -> Verdict) -> u32 {
        let mut lost = 0;
        let mut list = std::mem::take(&mut self.rexmits);
        list.retain(|&(start, order)| {
            let Some(i) = self.rexmit_index(start, order) else {
                return false;
            };
            let s = self.segs[i];
            match judge(&s) {
                Verdict::Lost => {
                    lost += self.mark_lost_at(i);
                    false
                }
                Verdict::Waiting | Verdict::SentAfter => true,
            }
        });
        self.rexmits = list;
        let mut i = self.find(self.rack_cursor);
        let mut settled = true;
        while let Some(s) = self.segs.get(i).copied() {
            self.visited += 1;
            if s.in_flight() && !s.retransmitted {
                match judge(&s) {
                    Verdict::SentAfter => break,
                    Verdict::Lost => lost += self.mark_lost_at(i),
                    Verdict::Waiting => settled = false,
                }
            }
            if settled {
                self.rack_cursor = s.end;
            }
            i += 1;
        }
        lost
    }

    /// After a retransmission timeout every unSACKed segment is lost (RFC 6675 §5.1, RFC 8985
    /// §6.3): the pipe is empty and the retransmissions start from SND.UNA.
    pub fn mark_all_lost(&mut self) {
        self.visited += self.segs.len() as u64;
        for i in 0..self.segs.len() {
            if !self.segs[i].sacked {
                self.update(i, |s| {
                    s.lost = true;
                    s.retransmitting = false;
                });
            }
        }
        self.lost_hint = self.segs.front().map_or(self.lost_hint, |s| s.start);
        self.rexmits.clear();
    }

    /// A reduction turned out spurious: nothing not yet retransmitted is lost after all, and
    /// RACK looks at all of it again.
    pub fn clear_lost(&mut self) {
        self.visited += self.segs.len() as u64;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.waiting() {
                self.update(i, |s| s.lost = false);
                if s.retransmitted {
                    self.note_rexmit(s.start, s.order);
                }
            }
        }
        self.rack_cursor = self.segs.front().map_or(self.rack_cursor, |s| s.start);
    }

    /// RFC 6675 §2 "SetPipe ()": "for each octet [...] (a) If IsLost (S1) returns false: pipe
    /// is incremented by 1 octet. (b) If S1 <= HighRxt: Pipe is incremented by 1 octet."
    /// Here an octet is lost when its segment is marked lost, and (b) counts retransmissions
    /// still in flight.
    pub fn pipe(&self) -> u32 {
        self.total - self.sacked - self.lost + self.retrans
    }

    /// RFC 6675 §2 "NextSeg ()" rule (1): the lowest unSACKed segment deemed lost and not
    /// retransmitted since, as one segment of at most `smss`: a longer record is cut, and the
    /// lost records right after a short one are joined to it while they fit whole (Linux
    /// `tcp_retrans_try_collapse`), so what was lost goes out in full segments. Rule (2), new
    /// data, is the caller's when this is `None`.
    pub fn next_lost(&mut self, smss: u32) -> Option<(SeqNumber, SeqNumber)> {
        if self.lost_bytes() == 0 {
            return None;
        }
        let mut i = self.find(self.lost_hint);
        while self.segs.get(i).is_some_and(|s| !s.waiting()) {
            self.visited += 1;
            i += 1;
        }
        let s = *self.segs.get(i)?;
        self.lost_hint = s.start;
        if s.len() >= smss {
            return Some((s.start, s.start + smss));
        }
        let mut end = s.end;
        for t in self.segs.range(i + 1..) {
            if !t.waiting() || t.end - s.start > smss {
                break;
            }
            end = t.end;
        }
        self.visited += u64::from(end - s.start > s.len());
        Some((s.start, end))
    }

    /// Whether the byte at `seq` is marked lost and waits for its retransmission.
    pub fn lost_at(&mut self, seq: SeqNumber) -> bool {
        let i = self.find(seq);
        self.segs
            .get(i)
            .is_some_and(|s| s.waiting() && s.start.le(seq))
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

/// Notes the delivery of `s` (not reported before; `cumulative`ly acknowledged or SACKed) in
/// `out`: the latest delivered segment and the one RACK.rtt comes from, and reordering when an
/// original arrives below what was delivered before (`prior_fack`). The cumulative part of an
/// ACK is walked first, in sequence order.
fn note_delivered(
    s: &Segment,
    cumulative: bool,
    prior_fack: Option<SeqNumber>,
    out: &mut AckSummary,
) {
    let d = Delivered {
        sent_at: s.sent_at,
        order: s.order,
        end: s.end,
        retransmitted: s.retransmitted,
    };
    if out
        .latest
        .is_none_or(|l| sent_after(s.sent_at, s.order, l.sent_at, l.order))
    {
        out.latest = Some(d);
    }
    if cumulative || (!out.rtt_from_cumulative && out.rtt_from.is_none_or(|r| s.end.gt(r.end))) {
        out.rtt_from = Some(d);
        out.rtt_from_cumulative = cumulative;
    }
    if !s.retransmitted && prior_fack.is_some_and(|f| s.end.lt(f)) {
        out.reordered = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn seq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    /// `n` segments of 1000 bytes from 0, sent 1 ms apart.
    fn sent(n: u32) -> Scoreboard {
        let mut sb = Scoreboard::new();
        for i in 0..n {
            sb.on_send(
                SeqNumber(i * MSS),
                SeqNumber((i + 1) * MSS),
                t(u64::from(i)),
            );
        }
        sb
    }

    fn ten() -> Scoreboard {
        sent(10)
    }

    fn ack(sb: &mut Scoreboard, a: u32, blocks: &[(u32, u32)]) -> AckSummary {
        let blocks: Vec<_> = blocks.iter().map(|&(l, r)| (seq(l), seq(r))).collect();
        sb.on_ack(seq(a), &blocks, MSS)
    }

    /// The records as (start, end, sacked).
    fn records(sb: &Scoreboard) -> Vec<(u32, u32, bool)> {
        sb.segments()
            .map(|s| (s.start.0, s.end.0, s.sacked))
            .collect()
    }

    #[test]
    fn a_cumulative_ack_removes_what_it_covers_and_trims_a_partly_acked_segment() {
        let mut sb = ten();
        let a = ack(&mut sb, 2500, &[]);
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
        let a = ack(&mut sb, 0, &[(3000, 5000)]);
        assert_eq!((a.acked, a.sacked, a.delivered), (0, 2000, 2000));
        // The same block again delivers nothing new.
        let a = ack(&mut sb, 0, &[(3000, 5000)]);
        assert_eq!(a.delivered, 0);
        // RFC 6937: "DeliveredData = change_in(snd.una) + change_in(SACKd)": acknowledging
        // through 5000 delivers only the 3000 bytes that were not SACKed.
        let a = ack(&mut sb, 5000, &[]);
        assert_eq!((a.acked, a.delivered), (5000, 3000));
    }

    #[test]
    fn a_one_byte_block_inside_a_segment_sacks_nothing_and_splits_nothing() {
        // Linux `tcp_match_skb_to_sack`: a one-segment skb is SACKed whole or not at all.
        let mut sb = ten();
        let a = ack(
            &mut sb,
            0,
            &[(1500, 1501), (3001, 3002), (5998, 5999), (9999, 10_000)],
        );
        assert_eq!((a.sacked, a.delivered, a.rounded), (0, 0, 4));
        assert_eq!(sb.len(), 10);
        assert_eq!(sb.sacked_bytes(), 0);
    }

    #[test]
    fn block_edges_inside_segments_move_to_their_boundaries() {
        let mut sb = ten();
        // 1500..4500 covers segments 2 and 3 whole, 1 and 4 in part.
        let a = ack(&mut sb, 0, &[(1500, 4500)]);
        assert_eq!((a.sacked, a.rounded), (2000, 1));
        assert_eq!(
            records(&sb)[..4],
            [
                (0, 1000, false),
                (1000, 2000, false),
                (2000, 4000, true),
                (4000, 5000, false)
            ]
        );
        // A block on the boundaries is not counted as rounded.
        let a = ack(&mut sb, 0, &[(5000, 6000)]);
        assert_eq!((a.sacked, a.rounded), (1000, 0));
    }

    #[test]
    fn adjacent_sacked_records_are_one_record_that_still_counts_its_segments() {
        let mut sb = ten();
        ack(&mut sb, 0, &[(1000, 2000)]);
        ack(&mut sb, 0, &[(3000, 4000), (1000, 2000)]);
        assert_eq!(sb.len(), 10);
        ack(&mut sb, 0, &[(1000, 4000)]);
        assert_eq!(
            records(&sb)[..3],
            [(0, 1000, false), (1000, 4000, true), (4000, 5000, false)]
        );
        assert_eq!(sb.sacked_segments(), 3, "RACK.segs_sacked counts segments");
    }

    #[test]
    fn a_block_repeated_over_a_long_sacked_run_costs_what_one_over_a_segment_does() {
        // A receiver repeats its blocks in every ACK.
        let mut sb = sent(200);
        ack(&mut sb, 0, &[(1000, 101_000), (150_000, 151_000)]);
        assert_eq!(sb.len(), 101, "the hundred SACKed segments are one record");
        let mut cost = |b: (u32, u32)| {
            let before = sb.visited();
            ack(&mut sb, 0, &[b]);
            sb.visited() - before
        };
        let run = cost((1000, 101_000));
        let one = cost((150_000, 151_000));
        assert_eq!(run, one);
    }

    #[test]
    fn a_record_longer_than_a_segment_is_split_at_segment_boundaries_only() {
        // One record of two and a half segments (as a merged run or a segment with a FIN).
        let mut sb = Scoreboard::new();
        sb.on_send(seq(0), seq(2500), t(0));
        let a = ack(&mut sb, 0, &[(1200, 2500)]);
        assert_eq!((a.sacked, a.rounded), (500, 1), "the small rest, from 2000");
        let a = ack(&mut sb, 0, &[(0, 1700)]);
        assert_eq!((a.sacked, a.rounded), (1000, 1), "the first segment only");
        assert_eq!(
            records(&sb),
            [(0, 1000, true), (1000, 2000, false), (2000, 2500, true)]
        );
    }

    #[test]
    fn blocks_beyond_what_was_sent_or_below_the_ack_are_rejected() {
        let mut sb = ten();
        ack(&mut sb, 2000, &[]);
        // The first block below the ACK is a D-SACK, not rejected; a later one is.
        let a = ack(
            &mut sb,
            2000,
            &[(3000, 11_000), (5000, 4000), (500, 1500), (4000, 5000)],
        );
        assert_eq!((a.rejected, a.sacked, a.dsack), (3, 1000, None));
    }

    #[test]
    fn no_block_splits_a_record_once_the_cap_is_reached_and_the_drop_is_counted() {
        // Records of 10 bytes and one of 1000 (a hundred 10-byte segments): only blocks
        // inside the big one need splits.
        let mss = 10;
        let mut sb = Scoreboard::new();
        let small = MAX_RECORDS as u32 - 4;
        for i in 0..small {
            sb.on_send(seq(i * 10), seq(i * 10 + 10), t(0));
        }
        let big = small * 10;
        sb.on_send(seq(big), seq(big + 1000), t(0));
        let mut block = |a: u32, b: u32| sb.on_ack(seq(0), &[(seq(big + a), seq(big + b))], mss);
        // Two splits: to MAX_RECORDS - 1 records.
        let a = block(100, 200);
        assert_eq!((a.sacked, a.over_cap), (100, 0));
        // Two more would pass the cap: the block is dropped, and counted.
        let a = block(500, 600);
        assert_eq!((a.sacked, a.over_cap), (0, 1));
        // One more fits (and the SACKed run then joins its neighbour).
        let a = block(200, 300);
        assert_eq!((a.sacked, a.over_cap), (100, 0));
        let a = block(900, 1000);
        assert_eq!((a.sacked, a.over_cap), (100, 0));
        assert_eq!(sb.len(), MAX_RECORDS);
        let a = sb.on_ack(seq(0), &[(seq(big + 500), seq(big + 600))], mss);
        assert_eq!((a.sacked, a.over_cap), (0, 1));
        // A block on existing boundaries needs no split and is still taken.
        let a = sb.on_ack(seq(0), &[(seq(0), seq(10))], mss);
        assert_eq!((a.sacked, a.over_cap), (10, 0));
        assert!(sb.len() <= MAX_RECORDS);
    }

    #[test]
    fn shredding_acks_add_no_record_and_cost_the_same_however_many_came_before() {
        let mut sb = sent(200);
        let mut rng = crate::rng::Rng::new(11);
        let mut rnd = |n: u32| (rng.next_u64() % u64::from(n)) as u32;
        let mut costs = Vec::new();
        for _ in 0..30_000 {
            // Four 1-byte blocks: two at SND.UNA's segment, two anywhere in flight.
            let blocks = [
                (1 + rnd(998), 0),
                (1000 + rnd(199_000), 0),
                (1000 + rnd(199_000), 0),
                (2 + rnd(997), 0),
            ]
            .map(|(l, _)| (seq(l), seq(l + 1)));
            let before = sb.visited();
            let a = sb.on_ack(seq(0), &blocks, MSS);
            costs.push(sb.visited() - before);
            assert_eq!(a.delivered, 0);
        }
        assert_eq!(sb.len(), 200, "no block cut a segment");
        let first = costs[..100].iter().max().unwrap();
        let last = costs[costs.len() - 100..].iter().max().unwrap();
        assert_eq!(first, last, "flat: {costs:?}");
        assert!(*last <= 4 * 3 * 8, "a few binary searches a block: {last}");
    }

    #[test]
    fn holes_are_resent_lowest_first_one_segment_each_from_a_hint() {
        let mut sb = ten();
        // Segments 0, 3 and 6 lost; everything else SACKed.
        let a = ack(&mut sb, 0, &[(7000, 10_000), (4000, 6000), (1000, 3000)]);
        assert_eq!(a.sacked, 7000);
        for hole in [0, 3000, 6000] {
            assert_eq!(sb.mark_lost(seq(hole)), 1000);
        }
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
    fn small_lost_records_go_out_joined_into_full_segments() {
        // Five 300-byte segments (an application writing little at a time), all lost.
        let mut sb = Scoreboard::new();
        for i in 0..5 {
            sb.on_send(seq(i * 300), seq(i * 300 + 300), t(0));
        }
        sb.mark_all_lost();
        assert_eq!(
            sb.next_lost(MSS),
            Some((seq(0), seq(900))),
            "three whole records"
        );
        sb.on_send(seq(0), seq(900), t(10));
        assert_eq!(sb.len(), 3, "what went out together is one record");
        assert_eq!(sb.next_lost(MSS), Some((seq(900), seq(1500))));
        // A record longer than a segment (data and our FIN) is cut to one.
        let mut sb = Scoreboard::new();
        sb.on_send(seq(0), seq(1001), t(0));
        sb.mark_all_lost();
        assert_eq!(sb.next_lost(MSS), Some((seq(0), seq(1000))));
    }

    #[test]
    fn pipe_counts_unsacked_not_lost_bytes_plus_retransmissions_in_flight() {
        // RFC 6675 SetPipe: "(a) If IsLost (S1) returns false: pipe is incremented by 1 octet.
        // (b) If S1 <= HighRxt: Pipe is incremented by 1 octet."
        let mut sb = ten();
        ack(&mut sb, 0, &[(1000, 4000)]);
        assert_eq!(sb.pipe(), 7000);
        sb.mark_lost(seq(0));
        assert_eq!(sb.pipe(), 6000, "segment 0 is lost: out of the pipe");
        sb.on_send(seq(0), seq(1000), t(30));
        assert_eq!(sb.pipe(), 7000, "its retransmission is in the pipe");
    }

    #[test]
    fn a_dsack_block_below_the_ack_or_inside_the_second_block_is_recognised() {
        // RFC 2883 §4.1.1: "the first SACK block [...] reports the duplicate" with its left
        // edge below the cumulative ACK.
        let mut sb = ten();
        ack(&mut sb, 2000, &[]);
        let a = ack(&mut sb, 2000, &[(1000, 2000)]);
        assert_eq!(a.dsack, Some((seq(1000), seq(2000))));
        assert_eq!(a.delivered, 0);
        // RFC 2883 §4.2.1: a D-SACK block inside the first SACK block that follows it.
        let a = ack(&mut sb, 2000, &[(5000, 6000), (4000, 7000)]);
        assert_eq!(a.dsack, Some((seq(5000), seq(6000))));
        assert_eq!(a.sacked, 3000, "the second block still counts as a SACK");
        // An ordinary first block is no D-SACK.
        let a = ack(&mut sb, 2000, &[(8000, 9000), (4000, 7000)]);
        assert_eq!(a.dsack, None);
    }

    #[test]
    fn rack_rtt_comes_from_the_highest_cumulatively_acked_else_the_highest_sacked() {
        // Linux `tcp_rack_advance` is called for each skb its walk meets, SACKed ones first
        // (blocks in sequence order), then those the cumulative ACK removes: the last wins.
        let mut sb = ten();
        sb.mark_lost(seq(0));
        sb.on_send(seq(0), seq(1000), t(50));
        let a = ack(&mut sb, 0, &[(7000, 8000), (3000, 4000)]);
        assert_eq!(a.rtt_from.map(|d| d.end), Some(seq(8000)), "highest SACKed");
        assert_eq!(a.latest.map(|d| d.end), Some(seq(8000)));
        let a = ack(&mut sb, 2000, &[(7000, 9000)]);
        let rtt_from = a.rtt_from.expect("a sample");
        assert_eq!(
            (rtt_from.end, rtt_from.sent_at),
            (seq(2000), t(1)),
            "the highest acknowledged cumulatively, not the SACKed one after it"
        );
        assert_eq!(a.latest.map(|d| d.end), Some(seq(1000)), "sent last");
    }

    #[test]
    fn a_retransmission_marks_the_record_and_the_latest_delivered_is_by_send_time() {
        let mut sb = ten();
        sb.mark_lost(seq(0));
        sb.on_send(seq(0), seq(1000), t(50));
        let a = ack(&mut sb, 0, &[(1000, 2000)]);
        assert_eq!(
            a.latest,
            Some(Delivered {
                sent_at: t(1),
                order: 2,
                end: seq(2000),
                retransmitted: false
            })
        );
        let a = ack(&mut sb, 2000, &[]);
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
        let a = ack(&mut sb, 0, &[(2000, 3000)]);
        assert!(!a.reordered);
        let a = ack(&mut sb, 0, &[(1000, 3000)]);
        assert!(
            a.reordered,
            "segment 1 was never retransmitted, yet arrived late"
        );
    }

    #[test]
    fn after_a_timeout_everything_unsacked_is_lost_and_the_pipe_is_empty() {
        let mut sb = ten();
        ack(&mut sb, 0, &[(5000, 6000)]);
        sb.mark_all_lost();
        assert_eq!(sb.pipe(), 0);
        assert_eq!(sb.lost_bytes(), 9000);
    }

    /// RACK's judgement as [`super::super::rack`] makes it, with every segment's time out.
    fn judge_all_lost(latest: (Instant, u32)) -> impl FnMut(&Segment) -> Verdict {
        move |s| {
            if sent_after(latest.0, latest.1, s.sent_at, s.order) {
                Verdict::Lost
            } else {
                Verdict::SentAfter
            }
        }
    }

    #[test]
    fn rack_looks_only_at_records_in_flight_and_not_twice_at_what_it_settled() {
        // Every other segment SACKed, the others lost: 1000 records, none in flight.
        let mut sb = sent(1000);
        let blocks: Vec<(u32, u32)> = (0..500)
            .map(|i| (i * 2000 + 1000, i * 2000 + 2000))
            .collect();
        for b in blocks.chunks(4) {
            ack(&mut sb, 0, b);
        }
        let latest = (t(999), 1000);
        assert_eq!(sb.rack_walk(judge_all_lost(latest)), 500 * 1000);
        assert_eq!(sb.rack_walk(judge_all_lost(latest)), 0);
        // The holes go out again (a few), and RACK judges those only, not the thousand
        // records it already settled.
        for _ in 0..3 {
            let (s, e) = sb.next_lost(MSS).unwrap();
            sb.on_send(s, e, t(2000));
        }
        let before = sb.visited();
        let lost = sb.rack_walk(judge_all_lost((t(2001), 5000)));
        assert_eq!(lost, 3000);
        assert!(sb.visited() - before < 100, "{}", sb.visited() - before);
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
            match rnd(7) {
                0 | 1 => {
                    let len = 1 + rnd(1500);
                    sb.on_send(seq(nxt), seq(nxt + len), t(step));
                    nxt += len;
                }
                2 if nxt > una => {
                    let l = una + rnd(nxt - una);
                    let r = l + 1 + rnd(nxt - l);
                    let a = una + rnd(1 + (nxt - una) / 8);
                    sb.on_ack(seq(a), &[(seq(l), seq(r))], MSS);
                    una = una.max(a);
                }
                3 if nxt > una => {
                    sb.mark_lost(seq(una + rnd(nxt - una)));
                }
                4 if nxt > una => {
                    if let Some((s, e)) = sb.next_lost(MSS) {
                        sb.on_send(s, e, t(step));
                    }
                }
                5 if nxt > una => {
                    let now = t(step);
                    sb.rack_walk(|s| match rnd(3) {
                        0 if s.sent_at < now => Verdict::Lost,
                        1 => Verdict::Waiting,
                        _ => Verdict::SentAfter,
                    });
                }
                _ if rnd(50) == 0 => sb.mark_all_lost(),
                _ if rnd(50) == 0 => sb.clear_lost(),
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
            assert_eq!(sb.outstanding(), sum(&|_| true));
            assert_eq!(sb.sacked_bytes(), sum(&|s| s.sacked));
            assert_eq!(sb.lost_bytes(), sum(&|s| s.lost && !s.retransmitting));
            assert_eq!(
                sb.sacked_segments(),
                segs.iter()
                    .filter(|s| s.sacked)
                    .map(|s| u32::from(s.segs))
                    .sum::<u32>()
            );
            assert!(
                segs.windows(2).all(|w| w[0].end == w[1].start),
                "contiguous"
            );
            assert!(
                segs.windows(2).all(|w| !(w[0].sacked && w[1].sacked)),
                "SACKed runs are one record: {segs:?}"
            );
            // NextSeg's hint never hides a lost record.
            let lowest_lost = segs.iter().find(|s| s.waiting()).map(|s| s.start);
            let mut probe = Scoreboard {
                segs: sb.segs.clone(),
                lost_hint: sb.lost_hint,
                lost: sb.lost,
                lost_retrans: sb.lost_retrans,
                ..Scoreboard::default()
            };
            assert_eq!(
                probe.next_lost(MSS).map(|(s, _)| s),
                lowest_lost,
                "step {step}"
            );
        }
    }

    #[test]
    fn an_idle_scoreboard_holds_no_heap() {
        let mut sb = ten();
        ack(&mut sb, 10_000, &[]);
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
        let a = sb.on_ack(base, &[(base + 1000u32, base + 4000u32)], MSS);
        assert_eq!(a.sacked, 3000);
        assert_eq!(sb.len(), 2);
        assert_eq!(sb.mark_lost(base), 1000);
        assert_eq!(sb.next_lost(MSS), Some((base, base + 1000u32)));
    }
}
