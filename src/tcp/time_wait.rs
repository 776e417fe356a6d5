//! TIME-WAIT (RFC 9293 §3.6.1 and §3.10.7.4, 2MSL): compact entries in their own table, and
//! what a segment for one of them gets. A retransmitted FIN is ACKed again and restarts 2MSL;
//! a new SYN may recycle the tuple (RFC 6191: higher sequence number or newer timestamp);
//! RSTs are ignored (RFC 1337). Bounded like Linux `tcp_max_tw_buckets`: when full, the
//! oldest entry is evicted and counted.
//!
//! Every other segment but a bare ACK at RCV.NXT is unacceptable (the window is closed) and
//! owed an ACK (RFC 9293 §3.10.7.4), but at most one per 500 ms per tuple, as Linux answers
//! from `tcp_timewait_state_process` through `tcp_oow_rate_limited` (`tcp_invalid_ratelimit`):
//! a peer cannot make a closed connection echo its segments one for one. (Linux exempts data
//! without SYN, which it does not expect in an ACK loop; here the limit is also against a peer
//! that replays a dead connection's segments, so it covers everything. A retransmitted FIN
//! still restarts 2MSL when its ACK is held back, and the peer's next retransmission, after
//! its backed-off RTO, gets one.)
//!
//! Since 2MSL is the same for every entry, insertion order is expiry order: entries live in a
//! ring (a FIFO), and expiring is popping from the tail. Lookups go through a keyed hash table
//! of ring positions ([`hash_tuple`]; 4 bytes a bucket, the tuple is read from the ring).
//! Removing an entry leaves a tombstone the tail skips; restarting an entry's 2MSL timer moves
//! it to the head. The ring has room for a quarter more positions than entries, and is
//! compacted when tombstones fill it, so compaction always frees at least that fifth of the
//! ring and costs O(1) amortized per operation. Ring memory is allocated lazily in chunks
//! and released when the live span of the ring leaves them.

use core::mem::size_of;

use hashbrown::HashTable;

use super::conn::Conn;
use super::event::Stateless;
use super::hash::{INDEX_BYTES_PER_ENTRY, Key, hash_tuple};
use super::route::Route;
use super::{FourTuple, isn, output};
use crate::state::State;
use crate::stats::{DropReason, Stats};
use crate::tx::Tx;
use crate::wire::SeqNumber;
use crate::wire::tcp::{Flags, Repr as TcpRepr};

/// What the engine keeps of a connection in TIME-WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWait {
    /// The connection's 4-tuple.
    pub tuple: FourTuple,
    /// Our next sequence number (after our FIN): the SEQ of a re-sent ACK.
    pub snd_nxt: SeqNumber,
    /// The next sequence number we expect (after the peer's FIN): the ACK we re-send.
    pub rcv_nxt: SeqNumber,
    /// The last timestamp the peer sent (RFC 7323 TS.Recent), for PAWS and RFC 6191.
    pub ts_recent: u32,
    /// Whether the connection used timestamps.
    pub ts_enabled: bool,
    /// When 2MSL runs out, on the engine's wrapping millisecond clock.
    pub expires_ms: u32,
    /// When the entry last answered a segment, on the same clock (0: never).
    pub last_reply_ms: u32,
}

impl TimeWait {
    /// RFC 6191 §2: whether `seg` belongs to a newer incarnation of the connection: its
    /// timestamp is newer than TS.Recent, or (without timestamps) its sequence number is above
    /// the old RCV.NXT.
    pub(crate) fn is_older_than(&self, seg: &TcpRepr<'_>) -> bool {
        match (self.ts_enabled, seg.options.timestamp) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => seg.seq.gt(self.rcv_nxt),
        }
    }
}

/// The re-ACK of a connection in TIME-WAIT, with its timestamps if it used them, unless the
/// entry answered less than [`output::OUT_OF_WINDOW_ACK_INTERVAL_MS`] ago (counted). Returns
/// whether it was sent.
fn send_ack<T: Tx>(sx: &mut Stateless<'_, T>, route: &Route, tw: &TimeWait) -> bool {
    let now_ms = sx.now.wrapping_millis();
    if tw.last_reply_ms != 0
        && now_ms.wrapping_sub(tw.last_reply_ms) < output::OUT_OF_WINDOW_ACK_INTERVAL_MS
    {
        sx.stats.drop(DropReason::TimeWaitRateLimited);
        return false;
    }
    let ts = tw.ts_enabled.then(|| {
        let off = isn::timestamp_offset(&sx.keys.timestamp, &route.tuple);
        (now_ms.wrapping_add(off), tw.ts_recent)
    });
    output::send_time_wait_ack(sx, route, tw.snd_nxt, tw.rcv_nxt, ts);
    true
}

/// One ring position: an entry, or `None` for a tombstone or unused position.
type Slot = Option<TimeWait>;

/// Ring positions per lazily allocated chunk.
const CHUNK: usize = 256;

/// Entries of the compact TIME-WAIT table, bounded and evicting the oldest when full.
#[derive(Debug, Clone)]
pub struct TimeWaitTable {
    key: Key,
    /// The ring, `ring_len` positions in chunks of [`CHUNK`]; `None` chunks are unallocated.
    chunks: Vec<Option<Box<[Slot]>>>,
    ring_len: usize,
    /// The oldest position in use; it holds a live entry whenever `span > 0`.
    tail: usize,
    /// Positions in use from `tail` on: live entries and tombstones.
    span: usize,
    index: HashTable<u32>,
    len: usize,
    capacity: usize,
    evicted: u64,
}

fn slot_in(chunks: &[Option<Box<[Slot]>>], pos: usize) -> Option<&TimeWait> {
    chunks
        .get(pos / CHUNK)?
        .as_ref()?
        .get(pos % CHUNK)?
        .as_ref()
}

impl TimeWaitTable {
    /// Honest memory per entry, in bytes: one ring slot (60 B) plus the hash index's share in
    /// the worst case ([`INDEX_BYTES_PER_ENTRY`]: 12 B right after the index doubled). At a
    /// full index (load 7/8) the share is 5.7 B and an entry costs 66 B. Tombstones and the
    /// last partly used chunk come on top.
    pub const ENTRY_BYTES: usize = size_of::<Slot>() + INDEX_BYTES_PER_ENTRY;

    /// An empty table for at most `capacity` entries (like `tcp_max_tw_buckets`); memory is
    /// allocated as entries arrive.
    pub fn new(capacity: usize, key: Key) -> Self {
        // Ring positions are u32 in the index; keep the ring well inside that.
        let capacity = capacity.min(u32::MAX as usize / 2);
        let ring_len = capacity + (capacity / 4).max(1);
        TimeWaitTable {
            key,
            chunks: Vec::new(),
            ring_len,
            tail: 0,
            span: 0,
            index: HashTable::new(),
            len: 0,
            capacity,
            evicted: 0,
        }
    }

    /// Adds an entry, replacing any entry of the same tuple (which then moves to the head).
    /// When the table is full the oldest entry is evicted, counted, and its tuple returned.
    pub fn insert(&mut self, entry: TimeWait) -> Option<FourTuple> {
        if self.capacity == 0 {
            self.evicted += 1;
            return Some(entry.tuple);
        }
        self.remove(&entry.tuple);
        let evicted = if self.len >= self.capacity {
            let oldest = self.take_at(self.tail);
            self.evicted += 1;
            oldest.map(|e| e.tuple)
        } else {
            None
        };
        self.push(entry);
        evicted
    }

    /// The entry for `tuple`, if it is in TIME-WAIT.
    pub fn get(&self, tuple: &FourTuple) -> Option<&TimeWait> {
        self.get_hashed(tuple, self.hash(tuple))
    }

    /// [`TimeWaitTable::get`] with `hash = hash_tuple(key, tuple)` already computed (under the
    /// key this table was made with), so one hash can serve several tables.
    pub fn get_hashed(&self, tuple: &FourTuple, hash: u64) -> Option<&TimeWait> {
        if self.is_empty() {
            return None;
        }
        slot_in(&self.chunks, self.find_pos_hashed(tuple, hash)?)
    }

    /// Restarts the 2MSL timer of `entry.tuple` (a retransmitted FIN was re-ACKed, RFC 9293
    /// §3.10.7.4): `entry` (with its new `expires_ms`, and the TS.Recent the FIN brought)
    /// replaces the old one and moves to the head. `false`, and nothing stored, if absent.
    pub fn restart(&mut self, entry: TimeWait) -> bool {
        if self.remove(&entry.tuple).is_none() {
            return false;
        }
        self.push(entry);
        true
    }

    /// `c`, in TIME-WAIT, leaves the connection table for this one until `expires_ms`; an
    /// entry evicted to make room (the oldest) is CLOSED.
    pub(crate) fn enter<S>(&mut self, c: &Conn<S>, expires_ms: u32, stats: &mut Stats) {
        let entry = TimeWait {
            tuple: c.route.tuple,
            snd_nxt: c.snd.nxt,
            rcv_nxt: c.rcv.nxt,
            ts_recent: c.ts.recent,
            ts_enabled: c.opts.ts,
            expires_ms,
            last_reply_ms: 0,
        };
        if self.insert(entry).is_some() {
            stats.time_wait_evicted += 1;
            stats.state_changed(State::TimeWait, State::Closed);
        }
    }

    /// A new incarnation takes over `tuple` (RFC 6191): its entry, if any, is CLOSED.
    pub(crate) fn recycle(&mut self, tuple: &FourTuple, stats: &mut Stats) {
        if self.remove(tuple).is_some() {
            stats.time_wait_recycled += 1;
            stats.state_changed(State::TimeWait, State::Closed);
        }
    }

    /// A segment for `tw`, a 4-tuple in TIME-WAIT (RFC 9293 §3.10.7.4 and RFC 6191). True
    /// when it is a SYN that recycled the entry: it goes on to the listener.
    pub(crate) fn handle_segment<T: Tx>(
        &mut self,
        sx: &mut Stateless<'_, T>,
        route: &Route,
        tw: TimeWait,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let flags = seg.flags;
        // RFC 1337: ignore RSTs in TIME-WAIT (no assassination).
        if flags.contains(Flags::RST) {
            sx.stats.drop(DropReason::RstNoConnection);
            return false;
        }
        if flags.contains(Flags::SYN) && !flags.contains(Flags::ACK) {
            // RFC 6191 §2: accept a new incarnation if its timestamp is newer, or (without
            // timestamps) if its sequence number is above the old RCV.NXT.
            if tw.is_older_than(seg) {
                self.recycle(&route.tuple, sx.stats);
                return true;
            }
            sx.stats.drop(DropReason::TimeWaitOldSyn);
            self.reply(sx, route, tw);
            return false;
        }
        // A retransmitted FIN: ACK it again and restart the 2MSL timer.
        if flags.contains(Flags::FIN) {
            let mut tw = tw;
            // RFC 7323 §4.3: the FIN (at RCV.NXT - 1 =< Last.ACK.sent) updates TS.Recent, so
            // the re-ACK echoes it and RFC 6191 compares new SYNs against it (as Linux).
            if let (true, Some((tsval, _))) = (tw.ts_enabled, seg.options.timestamp) {
                if (tsval.wrapping_sub(tw.ts_recent) as i32) >= 0 {
                    tw.ts_recent = tsval;
                }
            }
            tw.expires_ms = (sx.now + sx.cfg.time_wait).wrapping_millis();
            self.restart(tw);
            self.reply(sx, route, tw);
            return false;
        }
        // RFC 9293 §3.10.7.4: the window is closed, so only a bare ACK at RCV.NXT is
        // acceptable (and needs nothing); "If an incoming segment is not acceptable, an
        // acknowledgment should be sent in reply".
        if !seg.payload.is_empty() || seg.seq != tw.rcv_nxt {
            self.reply(sx, route, tw);
        }
        false
    }

    /// Sends `tw`'s ACK, rate-limited per tuple, and notes when in the stored entry.
    fn reply<T: Tx>(&mut self, sx: &mut Stateless<'_, T>, route: &Route, tw: TimeWait) {
        if !send_ack(sx, route, &tw) {
            return;
        }
        let now_ms = sx.now.wrapping_millis().max(1);
        if let Some(pos) = self.find_pos(&tw.tuple) {
            if let Some(e) = self.slot_mut(pos) {
                e.last_reply_ms = now_ms;
            }
        }
    }

    /// Takes the entry for `tuple` out (the tuple is being recycled by a new SYN, RFC 6191).
    pub fn remove(&mut self, tuple: &FourTuple) -> Option<TimeWait> {
        let pos = self.find_pos(tuple)?;
        self.take_at(pos)
    }

    /// Removes the entries whose `expires_ms` is at or before `now_ms` (compared modulo 2^32)
    /// and returns how many; stops at the first entry not yet due, in insertion order.
    pub fn expire(&mut self, now_ms: u32) -> usize {
        let mut removed = 0;
        while self.span > 0 {
            let Some(oldest) = slot_in(&self.chunks, self.tail) else {
                self.skip_tombstones();
                continue;
            };
            if (now_ms.wrapping_sub(oldest.expires_ms) as i32) < 0 {
                break;
            }
            self.take_at(self.tail);
            removed += 1;
        }
        removed
    }

    /// When the oldest entry expires, on the engine's millisecond clock.
    pub fn next_expiry(&self) -> Option<u32> {
        if self.span == 0 {
            return None;
        }
        slot_in(&self.chunks, self.tail).map(|e| e.expires_ms)
    }

    /// How many entries are in TIME-WAIT.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is in TIME-WAIT.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many entries were evicted because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn hash(&self, tuple: &FourTuple) -> u64 {
        hash_tuple(&self.key, tuple)
    }

    fn find_pos(&self, tuple: &FourTuple) -> Option<usize> {
        self.find_pos_hashed(tuple, self.hash(tuple))
    }

    fn find_pos_hashed(&self, tuple: &FourTuple, hash: u64) -> Option<usize> {
        let chunks = &self.chunks;
        self.index
            .find(hash, |&p| {
                slot_in(chunks, p as usize).is_some_and(|e| e.tuple == *tuple)
            })
            .map(|&p| p as usize)
    }

    /// The slot at `pos`, allocating its chunk if needed.
    fn slot_mut(&mut self, pos: usize) -> &mut Slot {
        let c = pos / CHUNK;
        if self.chunks.len() <= c {
            self.chunks.resize_with(c + 1, || None);
        }
        let chunk_len = CHUNK.min(self.ring_len - c * CHUNK);
        let chunk = self.chunks[c].get_or_insert_with(|| vec![None; chunk_len].into_boxed_slice());
        &mut chunk[pos % CHUNK]
    }

    /// Empties position `pos` (leaving a tombstone) and drops it from the index.
    fn take_at(&mut self, pos: usize) -> Option<TimeWait> {
        let entry = self
            .chunks
            .get_mut(pos / CHUNK)?
            .as_mut()?
            .get_mut(pos % CHUNK)?
            .take()?;
        let hash = self.hash(&entry.tuple);
        if let Ok(found) = self.index.find_entry(hash, |&p| p as usize == pos) {
            found.remove();
        }
        self.len -= 1;
        self.skip_tombstones();
        Some(entry)
    }

    /// Advances the tail past tombstones, releasing chunks the span has left.
    fn skip_tombstones(&mut self) {
        while self.span > 0 && slot_in(&self.chunks, self.tail).is_none() {
            let old_chunk = self.tail / CHUNK;
            self.tail = (self.tail + 1) % self.ring_len;
            self.span -= 1;
            if self.tail / CHUNK != old_chunk {
                self.release_if_unused(old_chunk);
            }
        }
    }

    fn chunk_in_use(&self, c: usize) -> bool {
        let start = c * CHUNK;
        let end = (start + CHUNK).min(self.ring_len);
        self.span > 0
            && ((start..end).contains(&self.tail)
                || (start + self.ring_len - self.tail) % self.ring_len < self.span)
    }

    fn release_if_unused(&mut self, c: usize) {
        if !self.chunk_in_use(c) {
            if let Some(chunk) = self.chunks.get_mut(c) {
                *chunk = None;
            }
        }
    }

    /// Appends at the head. Precondition: `len < capacity`.
    fn push(&mut self, entry: TimeWait) {
        if self.span == self.ring_len {
            self.compact();
        }
        let pos = (self.tail + self.span) % self.ring_len;
        let hash = self.hash(&entry.tuple);
        *self.slot_mut(pos) = Some(entry);
        let (key, chunks) = (&self.key, &self.chunks);
        self.index.insert_unique(hash, pos as u32, |&p| {
            slot_in(chunks, p as usize).map_or(0, |e| hash_tuple(key, &e.tuple))
        });
        self.span += 1;
        self.len += 1;
    }

    /// Slides live entries toward the tail over the tombstones, keeping their order.
    fn compact(&mut self) {
        let mut write = self.tail;
        for i in 0..self.span {
            let read = (self.tail + i) % self.ring_len;
            let Some(entry) = slot_in(&self.chunks, read).copied() else {
                continue;
            };
            if read != write {
                *self.slot_mut(read) = None;
                *self.slot_mut(write) = Some(entry);
                let hash = self.hash(&entry.tuple);
                if let Some(p) = self.index.find_mut(hash, |&p| p as usize == read) {
                    *p = write as u32;
                }
            }
            write = (write + 1) % self.ring_len;
        }
        self.span = self.len;
        for c in 0..self.chunks.len() {
            self.release_if_unused(c);
        }
    }

    /// Heap bytes in use: ring chunks, the chunk table and the hash index.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        let ring: usize = self.chunks.iter().flatten().map(|c| c.len()).sum();
        ring * size_of::<Slot>()
            + self.chunks.capacity() * size_of::<Option<Box<[Slot]>>>()
            + self.index.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::hash::test_util::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    const KEY: Key = Key([9; 16]);

    fn tw(n: u32, expires_ms: u32) -> TimeWait {
        TimeWait {
            tuple: tuple_v4(n),
            snd_nxt: SeqNumber(n),
            rcv_nxt: SeqNumber(n.wrapping_mul(7)),
            ts_recent: n,
            ts_enabled: n % 2 == 0,
            expires_ms,
            last_reply_ms: 0,
        }
    }

    #[test]
    fn entry_bytes_is_the_ring_slot_plus_the_worst_case_index_share() {
        assert_eq!(size_of::<Slot>(), 60);
        assert_eq!(TimeWaitTable::ENTRY_BYTES, 72);
    }

    #[test]
    fn entries_are_inserted_found_and_removed() {
        let mut t = TimeWaitTable::new(10, KEY);
        assert!(t.is_empty());
        assert_eq!(t.insert(tw(1, 100)), None);
        assert_eq!(t.insert(tw(2, 200)), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&tuple_v4(1)), Some(&tw(1, 100)));
        assert_eq!(t.get(&tuple_v4(3)), None);
        assert_eq!(t.remove(&tuple_v4(1)), Some(tw(1, 100)));
        assert_eq!(t.remove(&tuple_v4(1)), None);
        assert_eq!(t.get(&tuple_v4(1)), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_expiry(), Some(200));
        assert_eq!(t.capacity(), 10);
    }

    #[test]
    fn inserting_the_same_tuple_replaces_the_entry() {
        let mut t = TimeWaitTable::new(10, KEY);
        t.insert(tw(1, 100));
        t.insert(tw(2, 150));
        let mut newer = tw(1, 300);
        newer.rcv_nxt = SeqNumber(5);
        assert_eq!(t.insert(newer), None);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&tuple_v4(1)), Some(&newer));
        assert_eq!(t.next_expiry(), Some(150));
    }

    #[test]
    fn the_oldest_entry_is_evicted_when_full_and_counted() {
        let mut t = TimeWaitTable::new(3, KEY);
        for n in 0..3 {
            assert_eq!(t.insert(tw(n, n)), None);
        }
        assert_eq!(t.insert(tw(3, 3)), Some(tuple_v4(0)));
        assert_eq!(t.insert(tw(4, 4)), Some(tuple_v4(1)));
        assert_eq!(t.evicted(), 2);
        assert_eq!(t.len(), 3);
        assert!(t.get(&tuple_v4(0)).is_none() && t.get(&tuple_v4(4)).is_some());
        let mut none = TimeWaitTable::new(0, KEY);
        assert_eq!(none.insert(tw(1, 1)), Some(tuple_v4(1)));
        assert_eq!((none.len(), none.evicted()), (0, 1));
    }

    #[test]
    fn restart_moves_the_expiry_and_the_order() {
        let mut t = TimeWaitTable::new(10, KEY);
        t.insert(tw(1, 10));
        t.insert(tw(2, 20));
        assert!(t.restart(tw(1, 30)));
        assert!(!t.restart(tw(9, 30)));
        assert_eq!(t.next_expiry(), Some(20));
        assert_eq!(t.expire(25), 1);
        assert!(t.get(&tuple_v4(2)).is_none());
        assert_eq!(t.get(&tuple_v4(1)).map(|e| e.expires_ms), Some(30));
        // Eviction now takes the restarted entry last.
        let mut full = TimeWaitTable::new(2, KEY);
        full.insert(tw(1, 10));
        full.insert(tw(2, 20));
        full.restart(tw(1, 30));
        assert_eq!(full.insert(tw(3, 40)), Some(tuple_v4(2)));
    }

    #[test]
    fn expire_removes_only_due_entries() {
        let mut t = TimeWaitTable::new(100, KEY);
        for n in 0..10 {
            t.insert(tw(n, 1000 + n * 10));
        }
        t.remove(&tuple_v4(0));
        assert_eq!(t.expire(999), 0);
        assert_eq!(t.expire(1030), 3);
        assert_eq!(t.len(), 6);
        assert_eq!(t.next_expiry(), Some(1040));
        assert_eq!(t.expire(5000), 6);
        assert!(t.is_empty());
        assert_eq!(t.next_expiry(), None);
        assert_eq!(t.expire(6000), 0);
    }

    #[test]
    fn expiry_survives_the_millisecond_clock_wrapping() {
        let mut t = TimeWaitTable::new(10, KEY);
        t.insert(tw(1, u32::MAX - 5));
        t.insert(tw(2, 10));
        assert_eq!(t.expire(u32::MAX - 10), 0);
        assert_eq!(t.expire(3), 1);
        assert_eq!(t.expire(9), 0);
        assert_eq!(t.expire(10), 1);
    }

    #[test]
    fn tombstones_do_not_grow_the_ring() {
        let mut t = TimeWaitTable::new(1000, KEY);
        for n in 0..1000 {
            t.insert(tw(n, n));
        }
        let full = t.heap_bytes();
        // Restart every entry in a scattered order, many times over: each leaves a tombstone.
        for round in 0..20u32 {
            for n in 0..1000u32 {
                let m = (n * 617 + round) % 1000;
                assert!(t.restart(tw(m, 10_000 + round)));
            }
            assert!(t.span <= t.ring_len);
        }
        // Churn through insert/remove as well.
        for n in 1000..5000u32 {
            t.remove(&tuple_v4(n - 1000));
            t.insert(tw(n, 20_000 + n));
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.evicted(), 0);
        for n in 4000..5000 {
            assert_eq!(t.get(&tuple_v4(n)), Some(&tw(n, 20_000 + n)));
        }
        assert!(t.heap_bytes() <= full * 5 / 4 + 2 * CHUNK * size_of::<Slot>());
    }

    #[test]
    fn a_hundred_thousand_entries_stay_within_entry_bytes_each() {
        let mut t = TimeWaitTable::new(262_144, KEY);
        assert_eq!(t.heap_bytes(), 0);
        for n in 0..100_000 {
            t.insert(tw(n, n));
        }
        assert_eq!(t.len(), 100_000);
        let bytes = t.heap_bytes();
        let slack = 2 * CHUNK * size_of::<Slot>() + 64 * 1024;
        assert!(
            bytes <= TimeWaitTable::ENTRY_BYTES * t.len() + slack,
            "{bytes} B for {} entries ({} B each)",
            t.len(),
            bytes / t.len()
        );
        for n in (0..100_000).step_by(97) {
            assert_eq!(t.get(&tuple_v4(n)), Some(&tw(n, n)));
        }
        // Expiring everything gives the ring memory back.
        assert_eq!(t.expire(200_000), 100_000);
        assert!(t.heap_bytes() <= t.index.allocation_size() + 64 * 1024);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u32),
        Remove(u32),
        Restart(u32, u32),
        Expire(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let exp = prop_oneof![0u32..200, (u32::MAX - 100)..=u32::MAX];
        prop_oneof![
            4 => (0u32..40, exp.clone()).prop_map(|(n, e)| Op::Insert(n, e)),
            2 => (0u32..40).prop_map(Op::Remove),
            2 => (0u32..40, exp.clone()).prop_map(|(n, e)| Op::Restart(n, e)),
            1 => exp.prop_map(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn the_table_behaves_like_a_fifo_with_lookup(
            capacity in 0usize..20,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut t = TimeWaitTable::new(capacity, KEY);
            let mut model: VecDeque<TimeWait> = VecDeque::new();
            let mut evicted = 0u64;
            for op in ops {
                match op {
                    Op::Insert(n, e) => {
                        model.retain(|x| x.tuple != tuple_v4(n));
                        let want = if model.len() >= capacity {
                            evicted += 1;
                            if capacity == 0 { Some(tuple_v4(n)) } else { model.pop_front().map(|x| x.tuple) }
                        } else { None };
                        if capacity > 0 { model.push_back(tw(n, e)); }
                        prop_assert_eq!(t.insert(tw(n, e)), want);
                    }
                    Op::Remove(n) => {
                        let want = model.iter().position(|x| x.tuple == tuple_v4(n)).and_then(|i| model.remove(i));
                        prop_assert_eq!(t.remove(&tuple_v4(n)), want);
                    }
                    Op::Restart(n, e) => {
                        let found = model.iter().position(|x| x.tuple == tuple_v4(n)).and_then(|i| model.remove(i));
                        if let Some(mut x) = found {
                            x.expires_ms = e;
                            model.push_back(x);
                        }
                        prop_assert_eq!(t.restart(tw(n, e)), found.is_some());
                    }
                    Op::Expire(now) => {
                        let mut want = 0;
                        while model.front().is_some_and(|x| (now.wrapping_sub(x.expires_ms) as i32) >= 0) {
                            model.pop_front();
                            want += 1;
                        }
                        prop_assert_eq!(t.expire(now), want);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.evicted(), evicted);
                prop_assert_eq!(t.next_expiry(), model.front().map(|x| x.expires_ms));
                prop_assert!(t.span <= t.ring_len && t.span >= t.len);
                for n in 0..40 {
                    prop_assert_eq!(t.get(&tuple_v4(n)), model.iter().find(|x| x.tuple == tuple_v4(n)));
                }
            }
        }
    }
}
