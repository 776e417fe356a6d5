//! The kernel's side of an AF_XDP socket, as [`super::socket::XskSocket`] drives it: the
//! four rings ([`Rings`]) and the frame memory they point into ([`Umem`]). In production they
//! are xsk-rs's ([`XdpRings`], [`XdpUmem`]); in tests, in-memory fakes whose other end the
//! test plays (`ring::testing`, test builds only, after s2n-quic-xdp's `ring.rs` test pairs).
//!
//! Every `unsafe fn` here has one contract, the frame ownership of [`crate::xdp`]: a
//! descriptor handed to the fill or TX ring belongs to this UMEM and to user space until then,
//! and is not touched again until the RX or completion ring gives it back; a frame is read or
//! written only while user space owns it, by one party at a time.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue};

/// A socket's frame memory.
pub trait Umem {
    /// A frame descriptor: where a frame is in the UMEM, and its length.
    type Desc: Copy + Default + std::fmt::Debug;

    /// Runs `f` on the bytes of the received frame `desc`.
    ///
    /// # Safety
    ///
    /// `desc` is a frame of this UMEM that user space owns (it came off the RX ring and has not
    /// been given back), and nobody writes it while `f` runs.
    unsafe fn read<T>(&self, desc: &Self::Desc, f: impl FnOnce(&[u8]) -> T) -> T;

    /// Sets the length of frame `desc` to `len` and lets `build` write all of it.
    ///
    /// # Safety
    ///
    /// `desc` is a frame of this UMEM that user space owns (it came off the free list), and
    /// nobody else reads or writes it while `build` runs.
    unsafe fn write(&self, desc: &mut Self::Desc, len: usize, build: impl FnOnce(&mut [u8]));

    /// The largest frame a UMEM frame holds.
    fn frame_len(&self) -> usize;

    /// Whether more frames of the same packet follow `desc` (`XDP_PKT_CONTD`, set by the
    /// kernel on every descriptor of a multi-buffer packet but the last, and by us on a TX
    /// chain's).
    fn continues(desc: &Self::Desc) -> bool;

    /// Marks `desc` as followed by more frames of its packet, or as a packet's last (or only)
    /// frame.
    fn set_continues(desc: &mut Self::Desc, more: bool);
}

/// `XDP_PKT_CONTD` (`linux/if_xdp.h`): the descriptor's packet goes on in the next one.
const XDP_PKT_CONTD: u32 = 1;

/// `XDP_MAX_TX_SKB_BUDGET` (`linux/if_xdp.h`, Linux 6.17): the socket option that sets how
/// many descriptors one copy-mode `sendto` sends (libc does not have it yet).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// The descriptor type of a [`Rings`]' UMEM.
pub type Desc<R> = <<R as Rings>::Umem as Umem>::Desc;

/// The fill, RX, TX and completion rings of one socket.
pub trait Rings {
    /// The frame memory the rings' descriptors point into.
    type Umem: Umem;

    /// How many of `n` more entries the fill ring has room for (at most `n`).
    fn fill_room(&mut self, n: usize) -> usize;

    /// Hands `frames` to the kernel to receive into; returns how many it took (all or none).
    ///
    /// # Safety
    ///
    /// User space owns `frames` (free list) and gives them up until the RX ring returns them.
    unsafe fn fill(&mut self, frames: &[Desc<Self>]) -> usize;

    /// Whether the driver needs a wakeup (a `poll`) to go on filling.
    fn fill_needs_wakeup(&self) -> bool;

    /// Takes received frames off the RX ring into `out`; returns how many.
    ///
    /// # Safety
    ///
    /// The caller owns the frames written to `out` from now on and gives them back to the
    /// kernel only through [`Rings::fill`] or [`Rings::transmit`].
    unsafe fn receive(&mut self, out: &mut [Desc<Self>]) -> usize;

    /// How many of `n` more entries the TX ring has room for (at most `n`).
    fn tx_room(&mut self, n: usize) -> usize;

    /// Hands written `frames` to the kernel to send; returns how many it took (all or none).
    ///
    /// # Safety
    ///
    /// User space owns `frames` (written, pending) and gives them up until the completion
    /// ring returns them.
    unsafe fn transmit(&mut self, frames: &[Desc<Self>]) -> usize;

    /// Whether the kernel needs a kick (`sendto`) to send what the TX ring holds.
    fn tx_needs_wakeup(&self) -> bool;

    /// Kicks the kernel to send. `Ok(true)`: it stopped with descriptors left on the TX ring
    /// (copy mode's `sendto` sends at most its budget, `XDP_MAX_TX_SKB_BUDGET`, 32 unless
    /// raised, and says EAGAIN; also when the completion ring is full), so kick again.
    fn kick(&self) -> io::Result<bool>;

    /// Lets one copy-mode kick send up to `budget` descriptors (`XDP_MAX_TX_SKB_BUDGET`, Linux
    /// 6.17; at most the TX ring's size). Older kernels refuse it (ENOPROTOOPT): the kicks
    /// then go on until the ring is drained.
    fn raise_tx_budget(&self, budget: u32) -> io::Result<()>;

    /// Takes sent frames off the completion ring into `out`; returns how many.
    ///
    /// # Safety
    ///
    /// As for [`Rings::receive`]: the caller owns the frames written to `out`.
    unsafe fn complete(&mut self, out: &mut [Desc<Self>]) -> usize;

    /// Frames the kernel dropped for want of fill-ring frames or RX-ring room, if it says.
    fn kernel_rx_dropped(&self) -> Option<u64>;

    /// The socket's file descriptor (for the XSKMAP), if it has one.
    fn fd(&self) -> RawFd;

    /// Waits up to `timeout_ms` for a frame to arrive (and gives the driver its fill-ring
    /// wakeup); returns early on a signal.
    fn wait(&self, timeout_ms: i32);
}

/// xsk-rs's UMEM.
#[derive(Debug)]
pub struct XdpUmem {
    pub(crate) umem: xsk_rs::Umem,
    pub(crate) frame_len: usize,
}

impl Umem for XdpUmem {
    type Desc = FrameDesc;

    unsafe fn read<T>(&self, desc: &FrameDesc, f: impl FnOnce(&[u8]) -> T) -> T {
        // SAFETY: the caller guarantees `desc` is a received frame of this UMEM that user space
        // owns and nobody writes (xsk-rs `Umem::data`'s contract).
        let data = unsafe { self.umem.data(desc) };
        f(data.contents())
    }

    unsafe fn write(&self, desc: &mut FrameDesc, len: usize, build: impl FnOnce(&mut [u8])) {
        // SAFETY: the caller guarantees `desc` is a free frame of this UMEM that user space owns
        // and nobody else touches (xsk-rs `Umem::data_mut`'s contract).
        let mut data = unsafe { self.umem.data_mut(desc) };
        data.cursor().set_pos(len);
        build(data.contents_mut());
    }

    fn frame_len(&self) -> usize {
        self.frame_len
    }

    fn continues(desc: &FrameDesc) -> bool {
        desc.options() & XDP_PKT_CONTD != 0
    }

    fn set_continues(desc: &mut FrameDesc, more: bool) {
        let options = desc.options() & !XDP_PKT_CONTD;
        desc.set_options(if more {
            options | XDP_PKT_CONTD
        } else {
            options
        });
    }
}

/// xsk-rs's four rings of one bound socket.
#[derive(Debug)]
pub struct XdpRings {
    pub(crate) rx: RxQueue,
    pub(crate) tx: TxQueue,
    pub(crate) fill: FillQueue,
    pub(crate) comp: CompQueue,
}

impl Rings for XdpRings {
    type Umem = XdpUmem;

    fn fill_room(&mut self, n: usize) -> usize {
        // nb_free may say more than asked: it counts every free entry.
        (self.fill.nb_free(n as u32) as usize).min(n)
    }

    unsafe fn fill(&mut self, frames: &[FrameDesc]) -> usize {
        // SAFETY: the caller owns `frames` and gives them to the kernel (our contract is
        // FillQueue::produce's).
        unsafe { self.fill.produce(frames) }
    }

    fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    unsafe fn receive(&mut self, out: &mut [FrameDesc]) -> usize {
        // SAFETY: the caller takes ownership of the received frames (RxQueue::consume's
        // contract).
        unsafe { self.rx.consume(out) }
    }

    fn tx_room(&mut self, n: usize) -> usize {
        (self.tx.nb_free(n as u32) as usize).min(n)
    }

    unsafe fn transmit(&mut self, frames: &[FrameDesc]) -> usize {
        // SAFETY: the caller owns the written `frames` and gives them to the kernel
        // (TxQueue::produce's contract).
        unsafe { self.tx.produce(frames) }
    }

    fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    fn kick(&self) -> io::Result<bool> {
        // xsk-rs's `TxQueue::wakeup` takes EAGAIN for success: our own `sendto`, to tell.
        // SAFETY: a zero-length `sendto` with no buffer and no address on our own socket's fd.
        let ret = unsafe {
            libc::sendto(
                self.fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if ret >= 0 {
            return Ok(false);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => Ok(true),
            // No skb now, another sender at the queue, the device down: the next flush tries
            // again (what xsk-rs and libxdp's samples do).
            Some(libc::ENOBUFS | libc::EBUSY | libc::ENETDOWN) => Ok(false),
            _ => Err(err),
        }
    }

    fn raise_tx_budget(&self, budget: u32) -> io::Result<()> {
        // SAFETY: a setsockopt on our own fd with a pointer to a live u32 and its size.
        let ret = unsafe {
            libc::setsockopt(
                self.fd(),
                libc::SOL_XDP,
                XDP_MAX_TX_SKB_BUDGET,
                (&budget as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    unsafe fn complete(&mut self, out: &mut [FrameDesc]) -> usize {
        // SAFETY: the caller takes ownership of the completed frames (CompQueue::consume's
        // contract).
        unsafe { self.comp.consume(out) }
    }

    fn kernel_rx_dropped(&self) -> Option<u64> {
        let s = self.rx.fd().xdp_statistics().ok()?;
        Some(s.rx_dropped() + s.rx_ring_full())
    }

    fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    fn wait(&self, timeout_ms: i32) {
        let mut pfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call. EINTR (a signal) just
        // ends the wait early, which is what we want.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    }
}

/// In-memory rings and UMEM for tests: [`testing::pair`] gives the socket's side
/// ([`testing::FakeRings`]) and the kernel's ([`testing::Kernel`]), which a test (or another
/// thread) drives to deliver frames and collect what was sent.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex, TryLockError};

    use super::*;

    /// A frame descriptor of the fake UMEM: the frame's index, its length and whether the
    /// packet goes on in the next descriptor.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub(crate) struct FakeDesc {
        pub(crate) frame: usize,
        pub(crate) len: usize,
        pub(crate) more: bool,
    }

    /// The fake UMEM: one lock per frame, taken with `try_lock`, so two parties touching the
    /// same frame at once (a broken ownership rule) panic instead of racing.
    #[derive(Debug)]
    pub(crate) struct FakeUmem {
        frames: Vec<Mutex<Vec<u8>>>,
        frame_len: usize,
    }

    impl FakeUmem {
        fn frame(&self, i: usize) -> std::sync::MutexGuard<'_, Vec<u8>> {
            match self.frames[i].try_lock() {
                Ok(g) => g,
                Err(TryLockError::WouldBlock) => panic!("frame {i} is touched by two parties"),
                Err(TryLockError::Poisoned(e)) => panic!("frame {i}: {e}"),
            }
        }
    }

    impl Umem for Arc<FakeUmem> {
        type Desc = FakeDesc;

        unsafe fn read<T>(&self, desc: &FakeDesc, f: impl FnOnce(&[u8]) -> T) -> T {
            f(&self.frame(desc.frame)[..desc.len])
        }

        unsafe fn write(&self, desc: &mut FakeDesc, len: usize, build: impl FnOnce(&mut [u8])) {
            desc.len = len;
            build(&mut self.frame(desc.frame)[..len]);
        }

        fn frame_len(&self) -> usize {
            self.frame_len
        }

        fn continues(desc: &FakeDesc) -> bool {
            desc.more
        }

        fn set_continues(desc: &mut FakeDesc, more: bool) {
            desc.more = more;
        }
    }

    /// The four rings, shared by both sides.
    #[derive(Debug, Default)]
    struct Queues {
        fill: VecDeque<FakeDesc>,
        rx: VecDeque<FakeDesc>,
        tx: VecDeque<FakeDesc>,
        comp: VecDeque<FakeDesc>,
        kicks: u64,
        /// Copy mode's `sendto`: with a budget, each kick sends at most that many descriptors
        /// itself (into `kicked`) and says whether any are left.
        kick_budget: Option<usize>,
        kicked: Vec<Vec<u8>>,
    }

    /// The socket's side of the fake rings.
    #[derive(Debug)]
    pub(crate) struct FakeRings {
        queues: Arc<Mutex<Queues>>,
        umem: Arc<FakeUmem>,
        size: usize,
    }

    /// The kernel's side: delivers frames into filled UMEM frames, takes sent ones.
    #[derive(Debug, Clone)]
    pub(crate) struct Kernel {
        queues: Arc<Mutex<Queues>>,
        umem: Arc<FakeUmem>,
        size: usize,
    }

    /// Rings of `size` entries over a UMEM of `frames` frames of `frame_len` bytes: the
    /// socket's UMEM and rings, the kernel's side, and the descriptors of every frame.
    pub(crate) fn pair(
        frames: usize,
        frame_len: usize,
        size: usize,
    ) -> (Arc<FakeUmem>, FakeRings, Kernel, Vec<FakeDesc>) {
        let umem = Arc::new(FakeUmem {
            frames: (0..frames)
                .map(|_| Mutex::new(vec![0; frame_len]))
                .collect(),
            frame_len,
        });
        let queues = Arc::new(Mutex::new(Queues::default()));
        let descs = (0..frames)
            .map(|frame| FakeDesc {
                frame,
                len: 0,
                more: false,
            })
            .collect();
        let rings = FakeRings {
            queues: queues.clone(),
            umem: umem.clone(),
            size,
        };
        let kernel = Kernel {
            queues,
            umem: umem.clone(),
            size,
        };
        (umem, rings, kernel, descs)
    }

    impl FakeRings {
        fn q(&self) -> std::sync::MutexGuard<'_, Queues> {
            self.queues.lock().expect("rings")
        }
    }

    /// Moves all of `frames` onto `ring` if it has room for them, else none (as xsk-rs).
    fn produce(ring: &mut VecDeque<FakeDesc>, size: usize, frames: &[FakeDesc]) -> usize {
        if ring.len() + frames.len() > size {
            return 0;
        }
        ring.extend(frames);
        frames.len()
    }

    fn consume(ring: &mut VecDeque<FakeDesc>, out: &mut [FakeDesc]) -> usize {
        let n = out.len().min(ring.len());
        for (slot, d) in out.iter_mut().zip(ring.drain(..n)) {
            *slot = d;
        }
        n
    }

    impl Rings for FakeRings {
        type Umem = Arc<FakeUmem>;

        fn fill_room(&mut self, n: usize) -> usize {
            n.min(self.size - self.q().fill.len())
        }

        unsafe fn fill(&mut self, frames: &[FakeDesc]) -> usize {
            let size = self.size;
            produce(&mut self.q().fill, size, frames)
        }

        fn fill_needs_wakeup(&self) -> bool {
            false
        }

        unsafe fn receive(&mut self, out: &mut [FakeDesc]) -> usize {
            consume(&mut self.q().rx, out)
        }

        fn tx_room(&mut self, n: usize) -> usize {
            n.min(self.size - self.q().tx.len())
        }

        unsafe fn transmit(&mut self, frames: &[FakeDesc]) -> usize {
            let size = self.size;
            produce(&mut self.q().tx, size, frames)
        }

        fn tx_needs_wakeup(&self) -> bool {
            true
        }

        fn kick(&self) -> io::Result<bool> {
            let mut q = self.q();
            q.kicks += 1;
            let Some(budget) = q.kick_budget else {
                return Ok(false);
            };
            let n = budget.min(q.tx.len());
            for desc in q.tx.drain(..n).collect::<Vec<_>>() {
                let packet = self.umem.frame(desc.frame)[..desc.len].to_vec();
                q.kicked.push(packet);
                q.comp.push_back(desc);
            }
            Ok(!q.tx.is_empty())
        }

        fn raise_tx_budget(&self, budget: u32) -> io::Result<()> {
            let mut q = self.q();
            if q.kick_budget.is_some() {
                q.kick_budget = Some(budget as usize);
            }
            Ok(())
        }

        unsafe fn complete(&mut self, out: &mut [FakeDesc]) -> usize {
            consume(&mut self.q().comp, out)
        }

        fn kernel_rx_dropped(&self) -> Option<u64> {
            None
        }

        fn fd(&self) -> RawFd {
            -1
        }

        fn wait(&self, timeout_ms: i32) {
            let ms = timeout_ms.clamp(0, 1) as u64;
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    impl Kernel {
        fn q(&self) -> std::sync::MutexGuard<'_, Queues> {
            self.queues.lock().expect("rings")
        }

        /// Receives `frame` into the next frame of the fill ring and puts it on the RX ring;
        /// false when the fill ring is empty or the RX ring full (the kernel's drop).
        pub(crate) fn deliver(&self, frame: &[u8]) -> bool {
            self.deliver_descs(&[(frame, false)])
        }

        /// Receives `frame` as a multi-buffer packet: cut into UMEM-frame-sized pieces, one
        /// fill-ring frame each, `XDP_PKT_CONTD` on all but the last, published together (as
        /// `__xsk_rcv` reserves every descriptor before the producer moves) or not at all.
        pub(crate) fn deliver_chain(&self, frame: &[u8]) -> bool {
            let pieces: Vec<(&[u8], bool)> = frame
                .chunks(self.umem.frame_len)
                .enumerate()
                .map(|(i, piece)| (piece, (i + 1) * self.umem.frame_len < frame.len()))
                .collect();
            self.deliver_descs(&pieces)
        }

        /// Puts `pieces` on the RX ring as they are, each in its own fill-ring frame with the
        /// given `XDP_PKT_CONTD` (a test may break the rules, e.g. end on a CONTD), all or none.
        pub(crate) fn deliver_descs(&self, pieces: &[(&[u8], bool)]) -> bool {
            let mut q = self.q();
            if q.rx.len() + pieces.len() > self.size || q.fill.len() < pieces.len() {
                return false;
            }
            for &(piece, more) in pieces {
                let mut desc = q.fill.pop_front().expect("checked above");
                let mut bytes = self.umem.frame(desc.frame);
                bytes[..piece.len()].copy_from_slice(piece);
                desc.len = piece.len();
                desc.more = more;
                drop(bytes);
                q.rx.push_back(desc);
            }
            true
        }

        /// Sends what the TX ring holds: returns the packets (a TX chain's descriptors joined
        /// into one, as the kernel builds one skb of them) and puts their descriptors on the
        /// completion ring. A chain not yet complete stays on the ring.
        pub(crate) fn transmit(&self) -> Vec<Vec<u8>> {
            let mut q = self.q();
            let mut sent = Vec::new();
            while let Some(end) = q.tx.iter().position(|d| !d.more) {
                let mut packet = Vec::new();
                for desc in q.tx.drain(..=end).collect::<Vec<_>>() {
                    packet.extend_from_slice(&self.umem.frame(desc.frame)[..desc.len]);
                    q.comp.push_back(desc);
                }
                sent.push(packet);
            }
            sent
        }

        /// Frames on the fill ring, ready to receive into.
        pub(crate) fn fill_len(&self) -> usize {
            self.q().fill.len()
        }

        /// `sendto` kicks so far.
        pub(crate) fn kicks(&self) -> u64 {
            self.q().kicks
        }

        /// From now on each kick sends up to `budget` descriptors, as copy mode's `sendto`
        /// does (one-descriptor packets only); the packets sent so go to [`Kernel::kicked`].
        pub(crate) fn send_on_kick(&self, budget: usize) {
            self.q().kick_budget = Some(budget);
        }

        /// The packets kicks have sent so far.
        pub(crate) fn kicked(&self) -> Vec<Vec<u8>> {
            std::mem::take(&mut self.q().kicked)
        }
    }

    #[test]
    fn a_frame_delivered_into_a_filled_frame_comes_off_the_rx_ring() {
        let (umem, mut rings, kernel, descs) = pair(4, 64, 4);
        // SAFETY: the fake has no unsafe contract of its own; these frames are ours.
        assert_eq!(unsafe { rings.fill(&descs[..2]) }, 2);
        assert!(kernel.deliver(b"hello"));
        let mut out = [FakeDesc::default(); 4];
        // SAFETY: as above.
        let n = unsafe { rings.receive(&mut out) };
        assert_eq!(n, 1);
        // SAFETY: `out[0]` was just received: ours, and no one else touches it.
        let got = unsafe { umem.read(&out[0], <[u8]>::to_vec) };
        assert_eq!(got, b"hello");
        assert_eq!(kernel.fill_len(), 1);
    }

    #[test]
    fn a_ring_takes_a_whole_batch_or_nothing() {
        let (_, mut rings, kernel, descs) = pair(8, 64, 4);
        // SAFETY: the fake has no unsafe contract of its own; these frames are ours.
        let first = unsafe { rings.transmit(&descs[..3]) };
        assert_eq!(first, 3);
        // SAFETY: as above.
        let second = unsafe { rings.transmit(&descs[3..5]) };
        assert_eq!(second, 0, "room for 1, not 2");
        assert_eq!(rings.tx_room(4), 1);
        assert_eq!(kernel.transmit().len(), 3);
        let mut out = [FakeDesc::default(); 8];
        // SAFETY: as above.
        assert_eq!(unsafe { rings.complete(&mut out) }, 3);
    }

    #[test]
    #[should_panic(expected = "touched by two parties")]
    fn a_frame_read_while_written_is_caught() {
        let (umem, _, _, descs) = pair(1, 64, 1);
        let mut d = descs[0];
        // SAFETY: deliberately broken, to see the fake catch it.
        unsafe { umem.read(&descs[0], |_| umem.write(&mut d, 1, |_| {})) };
    }
}
