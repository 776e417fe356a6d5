//! Out-of-order segments kept until the hole before them is filled (RFC 9293 §3.10.7.4,
//! "seventh, process the segment text"; RFC 2018 for the SACK blocks we report).
//!
//! Policy: at most [`MAX_SEGMENTS`] disjoint ranges per connection, each already trimmed to the
//! receive window by the caller, so memory is bounded by the window. Overlaps are trimmed on
//! insert, so a byte is stored (and delivered) at most once. A segment that would need a
//! range beyond the limit is dropped and counted; the peer retransmits it.

use super::SeqNumber;

/// Most disjoint out-of-order ranges kept per connection.
pub(crate) const MAX_SEGMENTS: usize = 16;

/// The out-of-order queue of one connection, sorted by sequence number, ranges disjoint.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    segs: Vec<(SeqNumber, Box<[u8]>)>,
    /// For each range of `segs` (same index), when a segment last landed in it: the SACK blocks
    /// go out most recent first (RFC 2018 §4).
    stamps: Vec<u32>,
    /// Segments inserted so far (the clock of `stamps`).
    clock: u32,
    /// The sequence number of a FIN that arrived ahead of a hole: it counts once RCV.NXT
    /// reaches it (RFC 9293 §3.10.7.4, eighth step), without the peer sending it again.
    fin: Option<SeqNumber>,
}

impl Reassembly {
    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Keeps a FIN at `seq` that arrived ahead of a hole (the first one seen is kept).
    pub(crate) fn set_fin(&mut self, seq: SeqNumber) {
        self.fin.get_or_insert(seq);
    }

    /// The kept FIN, once RCV.NXT has reached it (it is then taken).
    pub(crate) fn take_fin_at(&mut self, rcv_nxt: SeqNumber) -> Option<SeqNumber> {
        self.fin.take_if(|f| *f == rcv_nxt)
    }

    /// Heap bytes held: the segment list and the segments.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.segs.capacity() * size_of::<(SeqNumber, Box<[u8]>)>()
            + self.stamps.capacity() * size_of::<u32>()
            + self.segs.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// Bytes queued.
    pub(crate) fn bytes(&self) -> usize {
        self.segs.iter().map(|(_, d)| d.len()).sum()
    }

    /// Queues `data` starting at `seq` (> RCV.NXT); only the bytes not already queued are kept.
    /// Returns false when the range limit forced (part of) it to be dropped.
    pub(crate) fn insert(&mut self, seq: SeqNumber, data: &[u8]) -> bool {
        let end = seq + data.len();
        self.clock = self.clock.wrapping_add(1);
        let now = self.clock;
        // Uncovered pieces of [seq, end), walking the sorted ranges (those it overlaps are
        // what this segment touched: they become the most recent).
        let mut pieces: Vec<(SeqNumber, SeqNumber)> = Vec::new();
        let mut cursor = seq;
        for (i, (s, d)) in self.segs.iter().enumerate() {
            let e = *s + d.len();
            if e.le(cursor) {
                continue;
            }
            if s.ge(end) {
                break;
            }
            self.stamps[i] = now;
            if s.gt(cursor) {
                pieces.push((cursor, *s));
            }
            cursor = cursor.max(e);
            if cursor.ge(end) {
                break;
            }
        }
        if cursor.lt(end) {
            pieces.push((cursor, end));
        }
        let mut complete = true;
        for (s, e) in pieces {
            if self.segs.len() >= MAX_SEGMENTS {
                complete = false;
                break;
            }
            let off = (s - seq) as usize;
            let len = (e - s) as usize;
            let item = (s, data[off..off + len].to_vec().into_boxed_slice());
            let pos = self.segs.partition_point(|(x, _)| x.lt(s));
            self.segs.insert(pos, item);
            self.stamps.insert(pos, now);
        }
        complete
    }

    /// Takes the bytes that now continue the stream at `rcv_nxt`, if any, skipping any part
    /// already received. Call repeatedly until `None`.
    pub(crate) fn pop_ready(&mut self, rcv_nxt: SeqNumber) -> Option<Box<[u8]>> {
        loop {
            let (s, d) = self.segs.first()?;
            let (s, e) = (*s, *s + d.len());
            if s.gt(rcv_nxt) {
                return None;
            }
            let (_, data) = self.segs.remove(0);
            self.stamps.remove(0);
            if e.le(rcv_nxt) {
                continue; // entirely old
            }
            let skip = (rcv_nxt - s) as usize;
            return Some(if skip == 0 {
                data
            } else {
                data[skip..].to_vec().into_boxed_slice()
            });
        }
    }

    /// Up to `max` SACK blocks (left edge, right edge) over the queued data (and a kept FIN
    /// right after it), adjacent ranges merged, most recent first (RFC 2018 §4: "The first SACK block [...] MUST specify the
    /// contiguous block of data containing the segment which triggered this ACK", the others
    /// in the order they were last touched), as Linux sends them.
    pub(crate) fn sack_blocks(&self, max: usize) -> impl Iterator<Item = (SeqNumber, SeqNumber)> {
        // (left, right, most recent stamp in the block)
        let mut blocks: Vec<(SeqNumber, SeqNumber, u32)> = Vec::new();
        for ((s, d), &stamp) in self.segs.iter().zip(&self.stamps) {
            let mut e = *s + d.len();
            // A kept FIN right after a range is part of its block (as Linux reports it).
            if self.fin == Some(e) {
                e += 1u32;
            }
            match blocks.last_mut() {
                Some(last) if last.1 == *s => {
                    last.1 = e;
                    if stamp.wrapping_sub(last.2) as i32 > 0 {
                        last.2 = stamp;
                    }
                }
                _ => blocks.push((*s, e, stamp)),
            }
        }
        let clock = self.clock;
        blocks.sort_by_key(|b| clock.wrapping_sub(b.2));
        blocks.truncate(max);
        blocks.into_iter().map(|(l, r, _)| (l, r))
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
        assert_eq!(r.take_fin_at(b + 10u32), None);
        assert_eq!(r.take_fin_at(b + 20u32), Some(b + 20u32));
        assert_eq!(r.take_fin_at(b + 20u32), None, "taken once");
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
    fn bytes_already_received_are_never_delivered_twice() {
        let mut r = Reassembly::default();
        r.insert(SeqNumber(10), b"0123456789");
        assert_eq!(drain(&mut r, SeqNumber(15)), b"56789");
    }

    #[test]
    fn the_range_limit_bounds_memory() {
        let mut r = Reassembly::default();
        for i in 0..MAX_SEGMENTS as u32 {
            assert!(r.insert(SeqNumber(100 + 10 * i), b"x"));
        }
        assert!(!r.insert(SeqNumber(5000), b"y"));
        assert_eq!(r.bytes(), MAX_SEGMENTS);
        assert_eq!(r.sack_blocks(3).count(), 3);
    }
}
