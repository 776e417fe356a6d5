//! Where the frames of one AF_XDP socket's UMEM are, as plain data: no rings, no memory, no
//! `unsafe`. [`super::socket`] moves descriptors between the rings and tells the pool; the
//! pool keeps the free list and the pending TX batch and counts the rest, so that every frame
//! is in exactly one place (the ownership table in [`crate::xdp`]):
//!
//! ```text
//!          to_fill/filled          received            release
//!   free ─────────────────► fill ────────────► rx_held ─────────► free
//!   free ─────────────────► pending ─────────► in_flight ────────► free
//!          send                    submitted            completed
//! ```
//!
//! `fill` counts frames on the fill ring or the RX ring (the kernel's until received),
//! `in_flight` frames on the TX ring or the completion ring (the kernel's until completed).

/// Frames moved per ring operation, and the most a pending TX batch holds.
pub const BATCH: usize = 64;

/// Where a socket's frames are right now. `free + fill + rx_held + tx_pending + tx_in_flight
/// == total` at all times: no frame is leaked or owned twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameAccount {
    /// Frames in the UMEM.
    pub total: u64,
    /// On the free list, owned by user space.
    pub free: u64,
    /// On the fill ring or the RX ring: owned by the kernel until received.
    pub fill: u64,
    /// Received, being handed to the engine (zero between receive batches).
    pub rx_held: u64,
    /// Written by the engine, not yet on the TX ring.
    pub tx_pending: u64,
    /// On the TX ring or the completion ring: owned by the kernel until completed.
    pub tx_in_flight: u64,
}

impl FrameAccount {
    /// Whether every frame is in exactly one place.
    pub fn balanced(&self) -> bool {
        self.free + self.fill + self.rx_held + self.tx_pending + self.tx_in_flight == self.total
    }
}

/// The frame bookkeeping of one socket; `D` is a frame descriptor.
#[derive(Debug, Clone)]
pub struct FramePool<D> {
    free: Vec<D>,
    fill: u64,
    rx_held: u64,
    pending: Vec<D>,
    in_flight: u64,
    total: u64,
}

/// Takes `n` from a count the kernel side should never overdraw (it hands back only what it
/// was given); a violation is a bug, loud in debug builds, clamped in release builds.
fn take(count: &mut u64, n: usize) {
    let n = n as u64;
    debug_assert!(
        n <= *count,
        "{n} frames back from a place that holds {count}"
    );
    *count = count.saturating_sub(n);
}

impl<D: Copy> FramePool<D> {
    /// A pool owning `frames`, all free.
    pub fn new(frames: Vec<D>) -> FramePool<D> {
        FramePool {
            total: frames.len() as u64,
            pending: Vec::with_capacity(frames.len().min(BATCH)),
            free: frames,
            fill: 0,
            rx_held: 0,
            in_flight: 0,
        }
    }

    /// The free frames to offer the fill ring: the last `n` of the free list (or all of it).
    /// Tell [`FramePool::filled`] how many the ring took.
    pub fn to_fill(&self, n: usize) -> &[D] {
        &self.free[self.free.len() - n.min(self.free.len())..]
    }

    /// The fill ring took the last `n` free frames (a ring takes a whole batch or nothing, so
    /// `n` is all that [`FramePool::to_fill`] offered, or zero).
    pub fn filled(&mut self, n: usize) {
        let n = n.min(self.free.len());
        self.free.truncate(self.free.len() - n);
        self.fill += n as u64;
    }

    /// `n` frames came off the RX ring: the engine holds them until [`FramePool::release`].
    pub fn received(&mut self, n: usize) {
        take(&mut self.fill, n);
        self.rx_held += n as u64;
    }

    /// Received frames the engine is done with go back on the free list.
    pub fn release(&mut self, frames: &[D]) {
        take(&mut self.rx_held, frames.len());
        self.free.extend_from_slice(frames);
    }

    /// Takes a free frame, lets `write` fill it, and queues it for the TX ring. False, without
    /// calling `write`, when no frame is free.
    pub fn send(&mut self, write: impl FnOnce(&mut D)) -> bool {
        let Some(mut frame) = self.free.pop() else {
            return false;
        };
        write(&mut frame);
        self.pending.push(frame);
        true
    }

    /// The written frames waiting for the TX ring, oldest first.
    pub fn pending(&self) -> &[D] {
        &self.pending
    }

    /// The TX ring took the first `n` pending frames.
    pub fn submitted(&mut self, n: usize) {
        let n = n.min(self.pending.len());
        self.pending.drain(..n);
        self.in_flight += n as u64;
    }

    /// Frames the kernel transmitted came back on the completion ring: free again.
    pub fn completed(&mut self, frames: &[D]) {
        take(&mut self.in_flight, frames.len());
        self.free.extend_from_slice(frames);
    }

    /// Whether a frame is free.
    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// How many frames are free.
    pub fn free_len(&self) -> usize {
        self.free.len()
    }

    /// Frames the kernel holds for transmission, or that wait to be handed to it.
    pub fn tx_outstanding(&self) -> u64 {
        self.in_flight + self.pending.len() as u64
    }

    /// Frames on the TX or the completion ring.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Where the frames are.
    pub fn account(&self) -> FrameAccount {
        FrameAccount {
            total: self.total,
            free: self.free.len() as u64,
            fill: self.fill,
            rx_held: self.rx_held,
            tx_pending: self.pending.len() as u64,
            tx_in_flight: self.in_flight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// What the socket and the kernel do to frames, in the order they can.
    #[derive(Debug, Clone)]
    enum Op {
        /// Offer `n` free frames to the fill ring, which takes them all or (when full) none.
        Fill(usize, bool),
        /// The kernel fills up to `n` frames with packets; the socket takes them off the RX
        /// ring and hands them to the engine.
        Receive(usize),
        /// The engine is done with the frames it holds.
        Release,
        /// The engine writes a reply.
        Send,
        /// The pending batch goes on the TX ring (all of it, or none when the ring is full).
        Submit(bool),
        /// The kernel transmits up to `n` frames and the socket reaps their completions.
        Complete(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..40, any::<bool>()).prop_map(|(n, ok)| Op::Fill(n, ok)),
            (0usize..40).prop_map(Op::Receive),
            Just(Op::Release),
            Just(Op::Send),
            any::<bool>().prop_map(Op::Submit),
            (0usize..40).prop_map(Op::Complete),
        ]
    }

    /// The kernel's side: the frames it holds, on which ring.
    #[derive(Default)]
    struct Kernel {
        fill_ring: VecDeque<u32>,
        tx_ring: VecDeque<u32>,
    }

    proptest! {
        #[test]
        fn every_frame_is_in_exactly_one_place(
            total in 0u32..64,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut pool = FramePool::new((0..total).collect());
            let mut kernel = Kernel::default();
            let mut held: Vec<u32> = Vec::new();
            let (mut written, mut sends) = (0u32, 0u32);
            for op in ops {
                match op {
                    Op::Fill(n, ok) => {
                        let offered = pool.to_fill(n).to_vec();
                        if ok {
                            kernel.fill_ring.extend(&offered);
                            pool.filled(offered.len());
                        } else {
                            pool.filled(0);
                        }
                    }
                    Op::Receive(n) => {
                        let got: Vec<u32> = (0..n).map_while(|_| kernel.fill_ring.pop_front()).collect();
                        pool.received(got.len());
                        held.extend(got);
                    }
                    Op::Release => {
                        pool.release(&held);
                        held.clear();
                    }
                    Op::Send => {
                        let had_free = pool.has_free();
                        let sent = pool.send(|_| written += 1);
                        prop_assert_eq!(sent, had_free);
                        sends += u32::from(sent);
                    }
                    Op::Submit(ok) => {
                        let n = if ok { pool.pending().len() } else { 0 };
                        kernel.tx_ring.extend(&pool.pending()[..n]);
                        pool.submitted(n);
                    }
                    Op::Complete(n) => {
                        let done: Vec<u32> = (0..n).map_while(|_| kernel.tx_ring.pop_front()).collect();
                        pool.completed(&done);
                    }
                }
                // Every frame in exactly one place, and the counts say where.
                let a = pool.account();
                prop_assert!(a.balanced(), "{a:?}");
                prop_assert_eq!(a.total, u64::from(total));
                prop_assert_eq!(a.fill, kernel.fill_ring.len() as u64);
                prop_assert_eq!(a.rx_held, held.len() as u64);
                prop_assert_eq!(a.tx_in_flight, kernel.tx_ring.len() as u64);
                prop_assert_eq!(a.tx_pending, pool.pending().len() as u64);
                let mut all: Vec<u32> = pool.free.iter()
                    .chain(pool.pending())
                    .chain(&held)
                    .chain(&kernel.fill_ring)
                    .chain(&kernel.tx_ring)
                    .copied()
                    .collect();
                all.sort_unstable();
                prop_assert_eq!(all, (0..total).collect::<Vec<_>>());
            }
            prop_assert_eq!(written, sends, "write runs once per frame sent");
        }
    }

    #[test]
    fn a_pool_with_no_free_frame_sends_nothing_and_does_not_call_write() {
        let mut pool = FramePool::new(vec![7u32]);
        assert!(pool.send(|_| {}));
        assert!(!pool.send(|_| panic!("no frame to write")));
        assert_eq!(pool.pending(), &[7]);
        pool.submitted(1);
        assert_eq!((pool.in_flight(), pool.tx_outstanding()), (1, 1));
        pool.completed(&[7]);
        assert!(pool.has_free() && pool.account().balanced());
    }
}
