//! A hierarchical timing wheel (Varghese and Lauck, 1987; layout after Linux
//! `kernel/time/timer.c` and tokio's wheel) for the connections' timers: retransmission
//! (RFC 6298 §5), delayed ACK (RFC 9293 §3.8.6.3), keepalive (RFC 1122 §4.2.3.6) and the
//! FIN-WAIT-2 timeout. (TIME-WAIT's 2MSL needs no wheel: its table expires in insertion
//! order.)
//!
//! One tick is 1 ms. Four levels of 64 slots (6 bits each) cover 64^4 ms ≈ 4.66 h:
//!
//! ```text
//!  level 3: 64 slots × 262 144 ms   (up to 4.66 h)
//!  level 2: 64 slots ×   4 096 ms   (up to 4.4 min)
//!  level 1: 64 slots ×      64 ms   (up to 4.1 s)
//!  level 0: 64 slots ×       1 ms   (up to 64 ms)
//! ```
//!
//! A timer sits at the level of the highest 6-bit digit in which its tick differs from the
//! wheel's current tick, in the slot named by its own digit there. When the wheel reaches the
//! start of an upper slot, that slot's timers cascade to lower levels (or fire). Deadlines
//! beyond the top level are clamped into its last reachable slot and re-placed when reached.
//! A u64 occupancy bitmap per level finds the next non-empty slot in a few instructions, so
//! advancing costs per occupied slot reached, not per tick: a jump of an hour is cheap.
//!
//! There is no removal: the engine cancels lazily (items carry a generation it checks).

use core::mem;

use crate::time::Instant;

const LEVELS: usize = 4;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Ticks the levels cover; a deadline further out is clamped to the last reachable slot.
const MAX_SPAN: u64 = 1 << (SLOT_BITS * LEVELS as u32);

#[derive(Debug, Clone)]
struct Entry<T> {
    /// The first tick at which the item may fire: its deadline rounded up to a whole ms.
    tick: u64,
    item: T,
}

/// An O(1) hierarchical timing wheel of items of type `T`, 1 ms per tick.
#[derive(Debug, Clone)]
pub struct TimerWheel<T> {
    /// The latest time handed to `new` or `expire`.
    now: Instant,
    /// The wheel's position: every slot starting at or before this tick has been processed.
    elapsed: u64,
    /// `LEVELS * SLOTS` buckets, level-major.
    slots: Vec<Vec<Entry<T>>>,
    /// Bit `s` of `occupied[l]`: slot `s` of level `l` holds items.
    occupied: [u64; LEVELS],
    /// Items inserted with a deadline already reached: they fire on the next `expire`.
    due: Vec<T>,
    len: usize,
}

/// The tick at which a deadline is reached: rounded up, so nothing fires early.
fn tick_of(deadline: Instant) -> u64 {
    deadline.total_micros().div_ceil(1000)
}

/// The level for a timer at tick `when` (> `elapsed`): the highest differing 6-bit digit.
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = ((elapsed ^ when) | (SLOTS as u64 - 1)).min(MAX_SPAN - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose current time is `now`.
    pub fn new(now: Instant) -> Self {
        TimerWheel {
            now,
            elapsed: now.total_millis(),
            slots: (0..LEVELS * SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
            due: Vec::new(),
            len: 0,
        }
    }

    /// Schedules `item` for `deadline`, in O(1). A deadline at or before the wheel's current
    /// time fires on the next [`expire`](Self::expire).
    pub fn insert(&mut self, deadline: Instant, item: T) {
        self.len += 1;
        if deadline <= self.now {
            self.due.push(item);
            return;
        }
        // deadline > now >= elapsed ms, so the tick is in the future of the wheel.
        self.place(Entry {
            tick: tick_of(deadline),
            item,
        });
    }

    /// Files an entry whose tick is after `elapsed`.
    fn place(&mut self, entry: Entry<T>) {
        let when = entry.tick.min(self.elapsed + MAX_SPAN - 1);
        let level = level_for(self.elapsed, when);
        let slot = ((when >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
        self.slots[level * SLOTS + slot].push(entry);
        self.occupied[level] |= 1 << slot;
    }

    /// The next occupied slot in time order: `(start tick, level, slot)`.
    fn next_slot(&self) -> Option<(u64, usize, usize)> {
        let mut best: Option<(u64, usize, usize)> = None;
        for (level, &occupied) in self.occupied.iter().enumerate() {
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            // Search from the slot after the current one; the current slot comes last, since
            // at the top level it can only hold timers of the next rotation.
            let from = (now_slot + 1) & (SLOTS - 1);
            let ahead = occupied.rotate_right(from as u32).trailing_zeros() as usize;
            let slot = (from + ahead) & (SLOTS - 1);
            let level_start = self.elapsed & !(level_range - 1);
            let mut start = level_start + slot as u64 * slot_range;
            if start <= self.elapsed {
                if level == LEVELS - 1 {
                    // The top level is a ring: a slot at or behind the current one holds
                    // timers of its next rotation.
                    start += level_range;
                } else {
                    // Unreachable while the invariants hold; firing no earlier than an item's
                    // own tick is still guaranteed by the check in `expire`.
                    start = self.elapsed;
                }
            }
            if best.is_none_or(|(b, _, _)| start < b) {
                best = Some((start, level, slot));
            }
        }
        best
    }

    /// Hands every item whose deadline is at or before `now` to `f`: never before its
    /// deadline, at most one tick (1 ms) after it. A `now` earlier than a previous one only
    /// fires items inserted as already due.
    pub fn expire(&mut self, now: Instant, mut f: impl FnMut(T)) {
        if now > self.now {
            self.now = now;
        }
        let due = mem::take(&mut self.due);
        self.len -= due.len();
        due.into_iter().for_each(&mut f);

        let target = self.now.total_millis();
        while let Some((start, level, slot)) = self.next_slot() {
            if start > target {
                break;
            }
            self.elapsed = start;
            let idx = level * SLOTS + slot;
            let mut entries = mem::take(&mut self.slots[idx]);
            self.occupied[level] &= !(1 << slot);
            for entry in entries.drain(..) {
                if entry.tick <= self.elapsed {
                    self.len -= 1;
                    f(entry.item);
                } else {
                    self.place(entry);
                }
            }
            // Keep the slot's allocation for the next round.
            if self.slots[idx].is_empty() {
                self.slots[idx] = entries;
            }
        }
        self.elapsed = self.elapsed.max(target);
    }

    /// No item fires before this instant: polling earlier hands out nothing. It is the exact
    /// firing time for the earliest item at the lowest level, and may be earlier than the
    /// true earliest deadline by the slot granularity of an upper level (the caller simply
    /// polls again). `None` when the wheel is empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.due.is_empty() {
            return Some(self.now);
        }
        self.next_slot()
            .map(|(start, _, _)| Instant::from_micros(start.saturating_mul(1000)))
    }

    /// How many items are scheduled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no item is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;
    use proptest::prelude::*;

    fn drain_at<T>(w: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        w.expire(now, |x| out.push(x));
        out
    }

    #[test]
    fn items_fire_in_deadline_order() {
        let t0 = Instant::from_secs(1000);
        let mut w = TimerWheel::new(t0);
        let offsets_ms = [5000u64, 3, 64, 65, 4096, 1, 70_000, 200, 63, 4095];
        for &ms in &offsets_ms {
            w.insert(t0 + Duration::from_millis(ms), ms);
        }
        assert_eq!(w.len(), offsets_ms.len());
        let mut fired = Vec::new();
        for ms in 0..=70_000 {
            fired.extend(drain_at(&mut w, t0 + Duration::from_millis(ms)));
        }
        let mut sorted = offsets_ms.to_vec();
        sorted.sort();
        assert_eq!(fired, sorted);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn nothing_fires_before_its_deadline() {
        let t0 = Instant::from_micros(1_234_567);
        let mut w = TimerWheel::new(t0);
        let d = t0 + Duration::from_micros(2_500);
        w.insert(d, ());
        assert!(drain_at(&mut w, d - Duration::from_micros(1)).is_empty());
        // Reached, but inside the tick: fires within 1 ms after.
        let fired_at_d = drain_at(&mut w, d).len();
        let fired_later = drain_at(&mut w, d + Duration::from_millis(1)).len();
        assert_eq!(fired_at_d + fired_later, 1);
    }

    #[test]
    fn a_two_hour_deadline_fires_on_time() {
        let t0 = Instant::from_secs(77);
        let mut w = TimerWheel::new(t0);
        let d = t0 + Duration::from_secs(2 * 3600);
        w.insert(d, "two hours");
        w.insert(t0 + Duration::from_secs(20 * 3600), "twenty hours");
        // Jump most of the way in a few big polls; the wheel only visits occupied slots.
        for secs in [1, 600, 3600, 7000, 7199] {
            assert!(drain_at(&mut w, t0 + Duration::from_secs(secs)).is_empty());
            assert!(w.next_deadline().unwrap() <= d);
        }
        assert!(drain_at(&mut w, d - Duration::from_millis(1)).is_empty());
        assert_eq!(drain_at(&mut w, d), vec!["two hours"]);
        assert_eq!(w.len(), 1);
        let d20 = t0 + Duration::from_secs(20 * 3600);
        assert!(drain_at(&mut w, d20 - Duration::from_millis(1)).is_empty());
        assert_eq!(drain_at(&mut w, d20), vec!["twenty hours"]);
    }

    #[test]
    fn next_deadline_never_lies_after_the_earliest_firing_time() {
        let t0 = Instant::from_secs(5);
        let mut w = TimerWheel::new(t0);
        assert_eq!(w.next_deadline(), None);
        let d = t0 + Duration::from_millis(10_000);
        w.insert(d, 1);
        let nd = w.next_deadline().unwrap();
        assert!(nd > t0 && nd <= d);
        // Following next_deadline reaches the item in a few hops, exactly at its deadline.
        let mut hops = 0;
        loop {
            let nd = w.next_deadline().unwrap();
            hops += 1;
            if !drain_at(&mut w, nd).is_empty() {
                assert_eq!(nd, d);
                break;
            }
            assert!(hops < 8);
        }
        // A deadline in the lowest level is reported exactly.
        let now = d;
        w.insert(now + Duration::from_millis(7), 2);
        assert_eq!(w.next_deadline(), Some(now + Duration::from_millis(7)));
    }

    #[test]
    fn inserting_in_the_past_fires_on_the_next_expire() {
        let t0 = Instant::from_millis(50_000);
        let mut w = TimerWheel::new(t0);
        w.insert(t0 - Duration::from_secs(10), 'a');
        w.insert(t0, 'b');
        w.insert(Instant::ZERO, 'c');
        assert_eq!(w.next_deadline(), Some(t0));
        assert_eq!(w.len(), 3);
        let mut got = drain_at(&mut w, t0);
        got.sort();
        assert_eq!(got, vec!['a', 'b', 'c']);
        assert!(w.is_empty());
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_fire_early() {
        let t0 = Instant::from_secs(100);
        let mut w = TimerWheel::new(t0);
        w.insert(t0 + Duration::from_secs(1), 1);
        assert!(drain_at(&mut w, Instant::ZERO).is_empty());
        assert!(drain_at(&mut w, t0 + Duration::from_millis(999)).is_empty());
        assert!(drain_at(&mut w, t0).is_empty());
        assert_eq!(drain_at(&mut w, t0 + Duration::from_secs(1)), vec![1]);
        w.insert(Instant::from_micros(u64::MAX), 2);
        assert!(w.next_deadline().is_some());
        assert!(drain_at(&mut w, Instant::from_secs(1 << 30)).is_empty());
    }

    #[test]
    fn a_wrapped_top_level_timer_does_not_hide_an_earlier_one() {
        // Found by the property test: the top level's current slot holds next-rotation
        // timers and must be searched last.
        let mut w = TimerWheel::new(Instant::ZERO);
        w.insert(Instant::from_micros(262_143_001), 'a');
        assert!(drain_at(&mut w, Instant::from_millis(1)).is_empty());
        w.insert(Instant::from_micros(16_777_215_001), 'b');
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(262_144)));
        assert_eq!(drain_at(&mut w, Instant::from_millis(262_144)), vec!['a']);
        assert_eq!(w.next_deadline(), Some(Instant::from_millis(16_777_216)));
        assert_eq!(
            drain_at(&mut w, Instant::from_millis(16_777_216)),
            vec!['b']
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(i64),
        Poll(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (-5_000i64..300_000).prop_map(Op::Insert),
            2 => (-5_000i64..20_000_000).prop_map(Op::Insert),
            1 => (0i64..40_000_000_000).prop_map(Op::Insert),
            4 => (0u64..3_000).prop_map(Op::Poll),
            3 => (0u64..300_000).prop_map(Op::Poll),
            1 => (0u64..3_600_000_000).prop_map(Op::Poll),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn every_item_fires_once_never_early_and_at_most_a_tick_late(
            start in 0u64..1 << 40,
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let mut now = start;
            let mut w = TimerWheel::new(Instant::from_micros(now));
            let mut deadlines: Vec<u64> = Vec::new();
            let mut fired: Vec<bool> = Vec::new();
            let mut first_poll_past: Vec<Option<u64>> = Vec::new();
            let poll = |w: &mut TimerWheel<usize>, now: u64, deadlines: &[u64],
                            fired: &mut [bool], first: &mut [Option<u64>]|
             -> Result<(), TestCaseError> {
                let mut got = Vec::new();
                w.expire(Instant::from_micros(now), |i| got.push(i));
                for i in got {
                    prop_assert!(!fired[i], "item {} fired twice", i);
                    prop_assert!(deadlines[i] <= now, "item {} early: {} < {}", i, now, deadlines[i]);
                    fired[i] = true;
                }
                for i in 0..deadlines.len() {
                    if fired[i] || deadlines[i] > now {
                        continue;
                    }
                    match first[i] {
                        None => first[i] = Some(now),
                        Some(p) => prop_assert!(now < p + 1000, "item {} late: deadline {}, polled {} and {}", i, deadlines[i], p, now),
                    }
                }
                let pending = fired.iter().filter(|f| !**f).count();
                prop_assert_eq!(w.len(), pending);
                match w.next_deadline() {
                    None => prop_assert_eq!(pending, 0),
                    Some(nd) => {
                        prop_assert!(pending > 0);
                        prop_assert!(nd.total_micros() > now);
                        for i in 0..deadlines.len() {
                            if !fired[i] {
                                prop_assert!(tick_of(Instant::from_micros(deadlines[i])) * 1000 >= nd.total_micros());
                            }
                        }
                    }
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Insert(off) => {
                        let d = now.saturating_add_signed(off);
                        w.insert(Instant::from_micros(d), deadlines.len());
                        deadlines.push(d);
                        fired.push(false);
                        first_poll_past.push(None);
                    }
                    Op::Poll(dt) => {
                        now += dt;
                        poll(&mut w, now, &deadlines, &mut fired, &mut first_poll_past)?;
                    }
                }
            }
            // Walk to the end by following next_deadline, then everything has fired.
            let mut hops = 0;
            while let Some(nd) = w.next_deadline() {
                now = now.max(nd.total_micros());
                poll(&mut w, now, &deadlines, &mut fired, &mut first_poll_past)?;
                hops += 1;
                prop_assert!(hops < 10_000);
            }
            prop_assert!(fired.iter().all(|f| *f));
        }
    }
}
