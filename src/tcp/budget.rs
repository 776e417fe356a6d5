//! The engine's memory budget, as Linux's `tcp_mem` (net/core/sock.c
//! `__sk_mem_raise_allocated`, net/ipv4/tcp_input.c `tcp_try_rmem_schedule`,
//! `tcp_prune_queue`): every byte of buffer capacity the connections hold (send and receive
//! buffers, reassembly queues, SACK scoreboards: capacities, since that is what the allocator
//! gave) counts against one limit per engine, [`Config::memory_limit`](super::Config).
//!
//! Linux sets `tcp_mem` to low = 3/4, pressure = 1 and high = 3/2 of a share of memory; the
//! limit here is the high mark, so the same ratios put the others at 1/2 and 2/3 of it:
//!
//! ```text
//!   0 ──────────── limit/2 ──────── 2·limit/3 ─────────── limit
//!     normal        │ pressure ends    │ pressure begins      │ hard limit
//! ```
//!
//! - Under memory pressure (entered above 2/3 of the limit, left at or below 1/2, as
//!   `sk_enter_memory_pressure` / `sk_leave_memory_pressure`): the oldest out-of-order queues
//!   are pruned first (the engine's `reclaim`, like `tcp_prune_ofo_queue`), then windows open by
//!   at most 4 MSS ([`Budget::window_allowance`], Linux's `tcp_adjust_rcv_ssthresh`), then send
//!   buffers grow no further than the capacity they already have ([`Budget::send_ceiling`],
//!   like `sk_stream_moderate_sndbuf`). Buffers are not shrunk to their data as Linux's
//!   `tcp_collapse` does: under malloc a buffer shrunk in place gives its tail back to the
//!   allocator, not to the system, so the count would fall while the memory stays (in the
//!   echo interop test the server's RSS grew by 43-47 MiB over a 32 MiB budget with it, by
//!   35-36 MiB without). A buffer that drains is freed whole. The holes freed buffers leave
//!   are free but resident: while the engine holds more than half its budget (and once after),
//!   the worker hands them back to the system at each snapshot (`malloc_trim`, 50 µs-1.5 ms
//!   for this test's 300 connections), so that the budget bounds the process's growth and
//!   not only the allocator's count (there, RSS grew by 34-36 MiB, 0.1-1.5 MiB over the
//!   count; 36-42 MiB without).
//! - At the limit no buffer grows: data that would need memory is dropped unacknowledged (the
//!   peer sends it again), and new connections are refused (SYNs and SYN-cookie ACKs).
//!
//! Nothing acknowledged to the peer and nothing accepted from the app is ever dropped: only
//! out-of-order data (SACKed, never cumulatively acknowledged: RFC 2018 §8 lets a receiver
//! renege on it) is pruned. Progress is guaranteed as Linux guarantees it
//! (`sk_forced_mem_schedule` for an empty receive queue, `tcp_wmem_schedule` up to
//! `tcp_wmem[0]`): a send or receive buffer may always grow to [`MIN_BUFFER`], so the total may
//! pass the limit by at most that much per buffer of the connections that exist.
//!
//! The count is kept incrementally: the engine measures a connection's `heap_bytes()` before and
//! after each event and when it leaves the table (one place, whatever the event grew or freed,
//! the scoreboard's records included, which are another module's to allocate). During an event
//! the connection's own bytes are out of [`Budget::used`] and the decisions add its live
//! `heap_bytes()` (`own` below), so they see the exact total.

use std::collections::VecDeque;

/// What a buffer may always grow to, at any level (Linux's `tcp_rmem[0]` and `tcp_wmem[0]`).
pub(crate) const MIN_BUFFER: usize = 4096;

/// Under memory pressure a window opens by at most this many segments (Linux's
/// `tcp_adjust_rcv_ssthresh`: `rcv_ssthresh = min(rcv_ssthresh, 4U * tp->advmss)`).
const PRESSURE_WINDOW_SEGMENTS: u32 = 4;

/// One engine's memory budget: the limit, the bytes counted, and whether it is under pressure.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    limit: usize,
    used: usize,
    pressure: bool,
}

impl Budget {
    /// A budget of `limit` bytes with nothing counted.
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: 0,
            pressure: false,
        }
    }

    /// The limit, in bytes.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The bytes counted (outside an event: every connection's buffers).
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Whether the engine is under memory pressure (sticky between the two marks).
    pub(crate) fn under_pressure(&self) -> bool {
        self.pressure
    }

    /// A connection's bytes come in (a new connection, or one back from its event).
    pub(crate) fn add(&mut self, bytes: usize) {
        self.used += bytes;
    }

    /// A connection's bytes go out (it left the table, or is taken out for its event).
    pub(crate) fn sub(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Moves in or out of memory pressure after the count changed; true when it just entered.
    pub(crate) fn settle(&mut self) -> bool {
        if !self.pressure && self.used > self.pressure_mark() {
            self.pressure = true;
            return true;
        }
        if self.pressure && self.used <= self.limit / 2 {
            self.pressure = false;
        }
        false
    }

    /// 2/3 of the limit: `tcp_mem[1]` to the limit's `tcp_mem[2]`.
    fn pressure_mark(&self) -> usize {
        self.limit - self.limit / 3
    }

    fn total(&self, own: usize) -> usize {
        self.used.saturating_add(own)
    }

    /// Whether pressure rules apply to a connection holding `own` bytes in its event.
    pub(crate) fn pressured(&self, own: usize) -> bool {
        self.pressure || self.total(own) > self.pressure_mark()
    }

    /// Whether the limit is reached: less than [`MIN_BUFFER`] is left (outside an event, `own`
    /// is 0). New connections are refused then.
    pub(crate) fn full(&self, own: usize) -> bool {
        self.room(own) < MIN_BUFFER
    }

    /// Bytes that may still be allocated before the limit.
    pub(crate) fn room(&self, own: usize) -> usize {
        self.limit.saturating_sub(self.total(own))
    }

    /// Bytes beyond the limit.
    pub(crate) fn excess(&self, own: usize) -> usize {
        self.total(own).saturating_sub(self.limit)
    }

    /// Bytes beyond the pressure mark: what pruning out-of-order queues should free.
    pub(crate) fn reclaim_goal(&self) -> usize {
        self.used.saturating_sub(self.pressure_mark())
    }

    /// The capacity a buffer now of capacity `cap` may grow to: into the room left, and always
    /// to [`MIN_BUFFER`].
    pub(crate) fn growth_ceiling(&self, own: usize, cap: usize) -> usize {
        cap.saturating_add(self.room(own)).max(MIN_BUFFER)
    }

    /// How far past RCV.NXT a window may open now (`None`: as far as the buffer allows): under
    /// pressure at most 4 segments of `mss`, and never beyond the room left.
    pub(crate) fn window_allowance(&self, own: usize, mss: usize) -> Option<u32> {
        if !self.pressured(own) {
            return None;
        }
        let segments = PRESSURE_WINDOW_SEGMENTS.saturating_mul(mss as u32);
        Some(segments.min(u32::try_from(self.room(own)).unwrap_or(u32::MAX)))
    }

    /// The most a send buffer now of capacity `cap` may hold (`send_buffer` configured): the
    /// whole buffer normally; under pressure what its capacity holds already (at least
    /// [`MIN_BUFFER`]); never more than the room left allows it to grow.
    pub(crate) fn send_ceiling(&self, own: usize, cap: usize, send_buffer: usize) -> usize {
        let target = if self.pressured(own) {
            cap.max(MIN_BUFFER)
        } else {
            send_buffer
        };
        target.min(send_buffer).min(self.growth_ceiling(own, cap))
    }
}

/// How a buffer's capacity grows when it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Growth {
    /// Doubling, as a `VecDeque` would (amortized: each byte is copied about once).
    Double,
    /// By an eighth, under memory pressure, so that one buffer near the limit does not take
    /// all the room left (each byte is copied about eight times).
    Eighth,
}

/// Makes room in `buf` for `additional` more bytes without its capacity passing `ceiling`,
/// growing by `growth`, so that the capacity counted is the capacity granted. False (nothing
/// changed) if `len + additional` itself passes `ceiling`.
pub(crate) fn reserve_within(
    buf: &mut VecDeque<u8>,
    additional: usize,
    ceiling: usize,
    growth: Growth,
) -> bool {
    let needed = buf.len() + additional;
    let cap = buf.capacity();
    if needed <= cap {
        return true;
    }
    if needed > ceiling {
        return false;
    }
    let step = match growth {
        Growth::Double => cap,
        Growth::Eighth => cap / 8,
    };
    let target = cap.saturating_add(step).clamp(needed, ceiling);
    buf.reserve_exact(target - buf.len());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_begins_above_two_thirds_and_ends_at_half() {
        let mut b = Budget::new(600);
        b.add(400);
        assert!(!b.settle(), "at 2/3: not yet");
        assert!(!b.pressured(0));
        assert!(b.pressured(1), "an event's own bytes count");
        b.add(1);
        assert!(b.settle(), "entered");
        assert!(!b.settle(), "entered once");
        b.sub(100);
        b.settle();
        assert!(b.under_pressure(), "sticky above half");
        b.sub(1);
        b.settle();
        assert!(!b.under_pressure(), "left at half");
    }

    #[test]
    fn the_limit_bounds_growth_but_min_buffer_is_always_granted() {
        let mut b = Budget::new(100_000);
        b.add(90_000);
        assert_eq!(b.room(5_000), 5_000);
        assert_eq!(b.growth_ceiling(5_000, 20_000), 25_000);
        assert!(!b.full(5_000) && b.full(6_000));
        assert_eq!(b.excess(15_000), 5_000);
        assert_eq!(b.growth_ceiling(15_000, 100), MIN_BUFFER, "progress");
        assert_eq!(b.reclaim_goal(), 90_000 - 66_667);
    }

    #[test]
    fn under_pressure_windows_open_four_segments_and_send_buffers_stop_growing() {
        let mut b = Budget::new(1 << 20);
        assert_eq!(b.window_allowance(0, 1448), None);
        assert_eq!(b.send_ceiling(0, 0, 256 << 10), 256 << 10);
        b.add(800 << 10);
        b.settle();
        assert_eq!(b.window_allowance(0, 1448), Some(4 * 1448));
        assert_eq!(
            b.send_ceiling(0, 64 << 10, 256 << 10),
            64 << 10,
            "its capacity"
        );
        assert_eq!(
            b.send_ceiling(0, 0, 256 << 10),
            MIN_BUFFER,
            "at least 4 KiB"
        );
        b.add(1 << 20);
        assert_eq!(
            b.window_allowance(0, 1448),
            Some(0),
            "nothing past the limit"
        );
    }

    #[test]
    fn reserve_within_doubles_up_to_the_ceiling_and_refuses_past_it() {
        let mut buf: VecDeque<u8> = VecDeque::new();
        let double = Growth::Double;
        assert!(reserve_within(&mut buf, 1000, 1 << 20, double));
        assert_eq!(buf.capacity(), 1000);
        buf.extend([0u8; 1000]);
        assert!(reserve_within(&mut buf, 10, 1 << 20, double));
        assert_eq!(buf.capacity(), 2000, "doubled");
        buf.extend([0u8; 1000]);
        assert!(reserve_within(&mut buf, 10, 2500, double));
        assert_eq!(buf.capacity(), 2500, "clamped to the ceiling");
        buf.extend([0u8; 500]);
        assert!(!reserve_within(&mut buf, 1, 2500, double));
        assert_eq!(buf.capacity(), 2500, "unchanged");
        assert!(reserve_within(&mut buf, 1, 1 << 20, Growth::Eighth));
        assert_eq!(buf.capacity(), 2500 + 2500 / 8, "an eighth under pressure");
    }
}
