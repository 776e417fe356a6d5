//! Out-of-order data kept until the hole before it is filled (RFC 9293 §3.10.7.4, "seventh,
//! process the segment text"), a FIN that arrived ahead of a hole, and the SACK blocks we
//! report over it (RFC 2018 §4, most recent first; RFC 2883 for duplicates).
//!
//! Policy: at most [`MAX_RANGES`] disjoint ranges per connection, each already trimmed to the
//! receive window by the caller, so memory is bounded by the window. Adjacent and overlapping
//! data is merged into one range on insert, so a byte is stored (and delivered) at most once
//! and a long run of segments after one hole costs one range, not one per segment. Data that
//! would need a range beyond the limit is dropped and counted; the peer retransmits it.
//!
//! Under memory pressure the queue is pruned from its highest sequence number down
//! ([`Reassembly::prune_above`], Linux's `tcp_prune_ofo_queue`), which RFC 2018 §8 allows:
//! "the data receiver is permitted to later discard data which have been reported in a SACK
//! option" (the sender keeps it until it is cumulatively acknowledged).

use crate::wire::SeqNumber;

/// Most disjoint out-of-order ranges kept per connection (holes the peer may have open).
pub(crate) const MAX_RANGES: usize = 32;

/// One contiguous out-of-order range.
#[derive(Debug)]
struct Range {
    start: SeqNumber,
    data: Vec<u8>,
    /// When it last grew (a counter): RFC 2018 wants the block with the newest data first.
    stamp: u32,
}

impl Range {
    fn end(&self) -> SeqNumber {
        self.start + self.data.len()
    }
}

/// The out-of-order queue of one connection, sorted by sequence number, ranges disjoint and
/// not adjacent.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    ranges: Vec<Range>,
    /// Sequence number of a FIN that arrived ahead of a hole (RFC 9293 §3.10.7.4: segments,
    /// the FIN included, are processed in sequence order once the hole is filled).
    fin: Option<SeqNumber>,
    clock: u32,
    /// The engine's mark in its list of connections holding out-of-order data (0: not listed).
    pub(crate) listed: u32,
}

impl Reassembly {
    /// Whether no data is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Heap bytes held: the range list and the data.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ranges.capacity() * size_of::<Range>()
            + self.ranges.iter().map(|r| r.data.capacity()).sum::<usize>()
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.ranges.iter().map(|r| r.data.len()).sum()
    }

    /// Whether every byte of `[seq, end)` is already queued (a duplicate: RFC 2883 D-SACK).
    pub(crate) fn contains(&self, seq: SeqNumber, end: SeqNumber) -> bool {
        self.ranges
            .iter()
            .any(|r| r.start.le(seq) && end.le(r.end()))
    }

    /// Queues `data` starting at `seq` (> RCV.NXT); only the bytes not already queued are kept,
    /// merged with the ranges they touch. Returns false when the range limit forced it to be
    /// dropped.
    pub(crate) fn insert(&mut self, seq: SeqNumber, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        let end = seq + data.len();
        self.clock = self.clock.wrapping_add(1);
        // The ranges that overlap or touch [seq, end): first..last.
        let first = self.ranges.partition_point(|r| r.end().lt(seq));
        let last = first
            + self.ranges[first..]
                .iter()
                .take_while(|r| r.start.le(end))
                .count();
        if first == last {
            if self.ranges.len() >= MAX_RANGES {
                return false;
            }
            let range = Range {
                start: seq,
                data: data.to_vec(),
                stamp: self.clock,
            };
            self.ranges.insert(first, range);
            return true;
        }
        // Merge everything touched into the first range, new bytes filling the gaps.
        let mut merged = std::mem::take(&mut self.ranges[first].data);
        let mut start = self.ranges[first].start;
        if seq.lt(start) {
            let mut front = data[..(start - seq) as usize].to_vec();
            front.append(&mut merged);
            merged = front;
            start = seq;
        }
        for i in first + 1..last {
            let r = std::mem::take(&mut self.ranges[i].data);
            let gap_from = start + merged.len();
            let gap_to = self.ranges[i].start;
            merged.extend_from_slice(&data[(gap_from - seq) as usize..(gap_to - seq) as usize]);
            merged.extend_from_slice(&r);
        }
        let merged_end = start + merged.len();
        if end.gt(merged_end) {
            merged.extend_from_slice(&data[(merged_end - seq) as usize..]);
        }
        self.ranges[first] = Range {
            start,
            data: merged,
            stamp: self.clock,
        };
        self.ranges.drain(first + 1..last);
        true
    }

    /// The queued bytes below `rcv_nxt` that in-order data just repeated, in the first range
    /// that has any (ranges are disjoint and not adjacent, so no other can touch it): what
    /// Linux's `tcp_ofo_queue` reports as a D-SACK (RFC 2883 §4) before it moves the range.
    pub(crate) fn repeated_below(&self, rcv_nxt: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        let r = self.ranges.first().filter(|r| r.start.lt(rcv_nxt))?;
        Some((r.start, r.end().min(rcv_nxt)))
    }

    /// Takes the bytes that now continue the stream at `rcv_nxt`, if any, skipping any part
    /// already received. Call repeatedly until `None`.
    pub(crate) fn pop_ready(&mut self, rcv_nxt: SeqNumber) -> Option<Vec<u8>> {
        loop {
            let r = self.ranges.first()?;
            if r.start.gt(rcv_nxt) {
                return None;
            }
            let r = self.ranges.remove(0);
            if r.end().le(rcv_nxt) {
                continue; // entirely old
            }
            let skip = (rcv_nxt - r.start) as usize;
            let mut data = r.data;
            if skip > 0 {
                data.drain(..skip);
            }
            if self.ranges.is_empty() {
                self.ranges = Vec::new();
            }
            return Some(data);
        }
    }

    /// Drops queued bytes from the highest sequence number down, never below `floor`, until
    /// at least `goal` bytes of capacity are freed or nothing above `floor` is left; returns
    /// (capacity freed, bytes dropped). As Linux's `tcp_prune_ofo_queue`: "We drop high
    /// sequences packets to: 1) Let a chance for holes to be filled."
    pub(crate) fn prune_above(&mut self, floor: SeqNumber, goal: usize) -> (usize, usize) {
        let (mut freed, mut dropped) = (0, 0);
        while freed < goal {
            let Some(r) = self.ranges.last_mut() else {
                break;
            };
            if r.end().le(floor) {
                break;
            }
            let below_floor = if r.start.lt(floor) {
                (floor - r.start) as usize
            } else {
                0
            };
            let cap = r.data.capacity();
            let keep = cap
                .saturating_sub(goal - freed)
                .min(r.data.len())
                .max(below_floor);
            dropped += r.data.len() - keep;
            if keep == 0 {
                freed += cap;
                self.ranges.pop();
                continue;
            }
            r.data.truncate(keep);
            r.data.shrink_to_fit();
            freed += cap - r.data.capacity();
            break;
        }
        if self.ranges.is_empty() {
            freed += self.ranges.capacity() * size_of::<Range>();
            self.ranges = Vec::new();
        }
        (freed, dropped)
    }

    /// Remembers a FIN at `seq` that arrived before the data ahead of it.
    pub(crate) fn set_fin(&mut self, seq: SeqNumber) {
        self.fin = Some(seq);
    }

    /// Whether a FIN queued ahead of a hole is now next in sequence (and forgets it).
    pub(crate) fn take_fin(&mut self, rcv_nxt: SeqNumber) -> bool {
        if self.fin == Some(rcv_nxt) {
            self.fin = None;
            return true;
        }
        false
    }

    /// Up to `max` SACK blocks (left edge, right edge) over the queued data, the range that
    /// grew last first (RFC 2018 §4: "The first SACK block [...] MUST specify the contiguous
    /// block of data containing the segment which triggered this ACK"), then the others from
    /// the most recently grown ("SHOULD be filled out by repeating the most recently reported
    /// SACK blocks").
    pub(crate) fn sack_blocks(&self, max: usize) -> impl Iterator<Item = (SeqNumber, SeqNumber)> {
        // The `max` (at most 4) newest ranges, newest first, picked without allocating (this
        // runs for every ACK sent while data is out of order); wrapping stamps compare by
        // their distance from the clock.
        let age = |r: &Range| self.clock.wrapping_sub(r.stamp);
        let mut picked: [Option<usize>; 4] = [None; 4];
        for slot in 0..max.min(4) {
            let next = (0..self.ranges.len())
                .filter(|i| !picked[..slot].contains(&Some(*i)))
                .min_by_key(|&i| age(&self.ranges[i]));
            picked[slot] = next;
        }
        // A kept FIN takes a sequence number of its own: the block ending at it covers it, as
        // Linux's do (its out-of-order queue's end_seq counts the FIN).
        let end = |r: &Range| match self.fin {
            Some(f) if f == r.end() => r.end() + 1u32,
            _ => r.end(),
        };
        picked
            .into_iter()
            .flatten()
            .map(move |i| (self.ranges[i].start, end(&self.ranges[i])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_fin_is_in_its_block_and_taken_only_at_rcv_nxt() {
        let mut r = Reassembly::default();
        let b = SeqNumber(5000);
        assert!(r.insert(b + 10u32, b"0123456789"));
        r.set_fin(b + 20u32);
        assert_eq!(
            r.sack_blocks(3).collect::<Vec<_>>(),
            vec![(b + 10u32, b + 21u32)]
        );
        assert!(!r.take_fin(b + 10u32));
        assert!(r.take_fin(b + 20u32));
        assert!(!r.take_fin(b + 20u32), "taken once");
    }

    #[test]
    fn sack_blocks_go_most_recent_first() {
        let mut r = Reassembly::default();
        let b = SeqNumber(1000);
        assert!(r.insert(b + 100u32, b"x"));
        assert!(r.insert(b + 300u32, b"x"));
        assert!(r.insert(b + 200u32, b"x"));
        let blocks = |r: &Reassembly| r.sack_blocks(4).map(|(l, _)| l - b).collect::<Vec<_>>();
        assert_eq!(blocks(&r), vec![200, 300, 100]);
        // A duplicate of an old range makes it the most recent (it triggered the ACK).
        assert!(r.insert(b + 100u32, b"x"));
        assert_eq!(blocks(&r), vec![100, 200, 300]);
        // Growing a block makes the merged block the most recent.
        assert!(r.insert(b + 301u32, b"y"));
        assert_eq!(blocks(&r), vec![300, 100, 200]);
        assert_eq!(r.sack_blocks(2).count(), 2, "the oldest is left out");
    }

    fn drain(r: &mut Reassembly, mut nxt: SeqNumber) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(d) = r.pop_ready(nxt) {
            nxt += d.len();
            out.extend_from_slice(&d);
        }
        out
    }

    #[test]
    fn overlapping_segments_are_stored_once_and_delivered_in_order() {
        let mut r = Reassembly::default();
        let base = SeqNumber(u32::MAX - 3); // across the wrap
        assert!(r.insert(base + 4u32, b"efgh"));
        assert!(r.insert(base + 2u32, b"cdefghij"));
        assert!(r.insert(base + 6u32, b"ghijkl"));
        assert_eq!(r.bytes(), 10);
        assert_eq!(
            r.sack_blocks(3).collect::<Vec<_>>(),
            vec![(base + 2u32, base + 12u32)]
        );
        assert_eq!(r.pop_ready(base), None, "a hole remains before it");
        assert_eq!(drain(&mut r, base + 2u32), b"cdefghijkl");
        assert!(r.is_empty());
    }

    #[test]
    fn a_segment_bridging_two_ranges_merges_them_with_the_bytes_in_between() {
        let mut r = Reassembly::default();
        r.insert(SeqNumber(10), b"ab");
        r.insert(SeqNumber(20), b"kl");
        r.insert(SeqNumber(30), b"uv");
        assert!(r.insert(SeqNumber(11), b"bcdefghijklmn"));
        assert_eq!(r.ranges.len(), 2);
        assert_eq!(drain(&mut r, SeqNumber(10)), b"abcdefghijklmn");
        assert_eq!(drain(&mut r, SeqNumber(30)), b"uv");
    }

    #[test]
    fn bytes_already_received_are_never_delivered_twice() {
        let mut r = Reassembly::default();
        r.insert(SeqNumber(10), b"0123456789");
        assert_eq!(drain(&mut r, SeqNumber(15)), b"56789");
    }

    #[test]
    fn a_run_of_segments_after_one_hole_is_one_range() {
        let mut r = Reassembly::default();
        for i in 0..200u32 {
            assert!(r.insert(SeqNumber(1000 + 100 * i), &[7; 100]));
        }
        assert_eq!(r.ranges.len(), 1);
        assert_eq!(r.bytes(), 20_000);
    }

    #[test]
    fn the_range_limit_bounds_memory() {
        let mut r = Reassembly::default();
        for i in 0..MAX_RANGES as u32 {
            assert!(r.insert(SeqNumber(100 + 10 * i), b"x"));
        }
        assert!(!r.insert(SeqNumber(5000), b"y"));
        assert_eq!(r.bytes(), MAX_RANGES);
        assert!(r.insert(SeqNumber(101), b"z"), "growing a range needs none");
        assert_eq!(r.sack_blocks(3).count(), 3);
    }

    #[test]
    fn sack_blocks_start_with_the_range_that_grew_last() {
        // RFC 2018 §4: "The first SACK block (i.e., the one immediately following the kind and
        // length fields in the option) MUST specify the contiguous block of data containing
        // the segment which triggered this ACK".
        let mut r = Reassembly::default();
        r.insert(SeqNumber(100), b"a");
        r.insert(SeqNumber(300), b"c");
        r.insert(SeqNumber(200), b"b");
        let blocks: Vec<_> = r.sack_blocks(4).map(|(l, _)| l.0).collect();
        assert_eq!(blocks, vec![200, 300, 100]);
        r.insert(SeqNumber(101), b"a");
        assert_eq!(
            r.sack_blocks(1).next(),
            Some((SeqNumber(100), SeqNumber(102)))
        );
    }

    #[test]
    fn a_duplicate_is_recognised_and_a_fin_ahead_of_a_hole_is_kept_until_its_turn() {
        let mut r = Reassembly::default();
        r.insert(SeqNumber(10), b"abcd");
        assert!(r.contains(SeqNumber(11), SeqNumber(13)));
        assert!(!r.contains(SeqNumber(12), SeqNumber(15)));
        r.set_fin(SeqNumber(14));
        assert!(!r.take_fin(SeqNumber(5)));
        assert_eq!(drain(&mut r, SeqNumber(10)), b"abcd");
        assert!(r.take_fin(SeqNumber(14)));
        assert!(!r.take_fin(SeqNumber(14)), "once");
    }
}
