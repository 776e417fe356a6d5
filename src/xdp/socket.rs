//! One AF_XDP socket on one receive queue, with its own UMEM, its four rings and the frame
//! bookkeeping that keeps every UMEM frame in exactly one place (see the rules in
//! [`crate::xdp`]).

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface as XskInterface, LibxdpFlags, QueueSize, SocketConfig,
    UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::tx::Tx;

/// Frames moved per ring operation.
pub const BATCH: usize = 64;

/// How to bind the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy, falling back to copy (veth has no zero-copy).
    Auto,
    /// Zero-copy only (`XDP_ZEROCOPY`).
    ZeroCopy,
    /// Copy only (`XDP_COPY`).
    Copy,
}

/// Sizes of a socket's UMEM and rings.
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// UMEM frames. The default covers a full fill ring, a full RX ring and a full TX ring at
    /// once: with fewer, a burst that fills the RX ring leaves no frame for the replies.
    pub frames: u32,
    /// Bytes per frame (a power of two, 2048 or 4096).
    pub frame_size: u32,
    /// Entries in each of the four rings (a power of two).
    pub ring_size: u32,
    /// How to bind.
    pub bind: BindMode,
}

impl Default for XskConfig {
    fn default() -> XskConfig {
        XskConfig {
            frames: 8192,
            frame_size: 4096,
            ring_size: 2048,
            bind: BindMode::Auto,
        }
    }
}

/// Why a socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The sizes in [`XskConfig`] are not valid (powers of two, frame >= 2048).
    #[error("invalid AF_XDP sizes: {0}")]
    Config(String),
    /// The UMEM could not be registered.
    #[error("creating the UMEM for queue {queue}")]
    Umem {
        /// The queue.
        queue: u32,
        /// What xsk-rs / the kernel said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `bind()` failed in the requested mode.
    #[error(
        "binding the AF_XDP socket to {iface} queue {queue} ({mode:?}){hint}",
        hint = bind_hint(*mode, source)
    )]
    Bind {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// The bind mode tried last.
        mode: BindMode,
        /// The kernel's answer.
        source: io::Error,
    },
}

fn bind_hint(mode: BindMode, e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) if mode == BindMode::ZeroCopy => {
            " (the driver has no zero-copy AF_XDP, e.g. veth: use --bind copy or auto)"
        }
        Some(libc::EBUSY) => {
            " (another AF_XDP socket is bound to this queue: is xdptcp already serving this interface?)"
        }
        Some(libc::EPERM) => " (needs root: CAP_NET_RAW + CAP_NET_ADMIN)",
        Some(libc::EINVAL) => " (queue id beyond the device's queues?)",
        _ => "",
    }
}

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
    /// Received, being handed to the engine.
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

/// Traffic counters of one socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketCounters {
    /// Frames received from the RX ring.
    pub rx_frames: u64,
    /// Frames put on the TX ring.
    pub tx_frames: u64,
    /// `Tx::send` calls refused for want of a free frame (or an oversized frame).
    pub tx_no_frame: u64,
    /// `sendto` kicks.
    pub tx_kicks: u64,
    /// Frames the kernel dropped for want of fill-ring frames or RX-ring room
    /// (`XDP_STATISTICS`: rx_dropped + rx_ring_full).
    pub kernel_rx_dropped: u64,
}

/// An AF_XDP socket bound to one queue, with its own UMEM.
pub struct XskSocket {
    queue: u32,
    zero_copy: bool,
    umem: Umem,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    frame_len: usize,
    free: Vec<FrameDesc>,
    in_fill: u64,
    pending: Vec<FrameDesc>,
    in_flight: u64,
    total: u64,
    scratch: Vec<FrameDesc>,
    counters: SocketCounters,
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("queue", &self.queue)
            .field("zero_copy", &self.zero_copy)
            .field("account", &self.account())
            .finish()
    }
}

impl XskSocket {
    /// Makes a UMEM and binds a socket to `iface` queue `queue`, with libxdp's own XDP program
    /// inhibited (ours steers into our XSKMAP) and need_wakeup on.
    pub fn bind(iface: &str, queue: u32, config: XskConfig) -> Result<XskSocket, SocketError> {
        let modes: &[BindMode] = match config.bind {
            BindMode::Auto => &[BindMode::ZeroCopy, BindMode::Copy],
            BindMode::ZeroCopy => &[BindMode::ZeroCopy],
            BindMode::Copy => &[BindMode::Copy],
        };
        let mut last = None;
        for &mode in modes {
            match Self::bind_once(iface, queue, config, mode) {
                Ok(s) => return Ok(s),
                Err(SocketError::Bind { source, .. })
                    if config.bind == BindMode::Auto
                        && mode == BindMode::ZeroCopy
                        && matches!(
                            source.raw_os_error(),
                            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                        ) =>
                {
                    last = Some(source);
                }
                Err(e) => return Err(e),
            }
        }
        Err(SocketError::Bind {
            iface: iface.to_string(),
            queue,
            mode: config.bind,
            source: last.unwrap_or_else(|| io::Error::other("no bind mode left")),
        })
    }

    fn bind_once(
        iface: &str,
        queue: u32,
        config: XskConfig,
        mode: BindMode,
    ) -> Result<XskSocket, SocketError> {
        let bad = |e: &dyn std::fmt::Display| SocketError::Config(e.to_string());
        let ring = QueueSize::new(config.ring_size).map_err(|e| bad(&e))?;
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(config.frame_size).map_err(|e| bad(&e))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .frame_headroom(0)
            .build()
            .map_err(|e| bad(&e))?;
        let frames = NonZeroU32::new(config.frames).ok_or_else(|| bad(&"zero frames"))?;
        let frame_len = umem_config.mtu() as usize;
        let (umem, descs) =
            Umem::new(umem_config, frames, false).map_err(|e| SocketError::Umem {
                queue,
                source: Box::new(e),
            })?;
        let bind_flags = BindFlags::XDP_USE_NEED_WAKEUP
            | match mode {
                BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
                _ => BindFlags::XDP_COPY,
            };
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind_flags)
            .build();
        let name: XskInterface = iface.parse().map_err(|e| bad(&e))?;
        let bind_error = |source: io::Error| SocketError::Bind {
            iface: iface.to_string(),
            queue,
            mode,
            source,
        };
        // Safety: this UMEM is fresh and used by this socket only, and the caller binds at most
        // one socket per (device, queue) (the kernel refuses a second with EBUSY anyway).
        let (tx, rx, rings) =
            unsafe { Socket::new(socket_config, &umem, &name, queue) }.map_err(|e| {
                let source = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<io::Error>())
                    .and_then(io::Error::raw_os_error)
                    .map(io::Error::from_raw_os_error)
                    .unwrap_or_else(|| io::Error::other(e.to_string()));
                bind_error(source)
            })?;
        let (fill, comp) =
            rings.ok_or_else(|| bind_error(io::Error::other("UMEM rings already taken")))?;
        let total = descs.len() as u64;
        let mut socket = XskSocket {
            queue,
            zero_copy: mode == BindMode::ZeroCopy,
            umem,
            rx,
            tx,
            fill,
            comp,
            frame_len,
            free: descs,
            in_fill: 0,
            pending: Vec::with_capacity(BATCH),
            in_flight: 0,
            total,
            scratch: vec![FrameDesc::default(); BATCH],
            counters: SocketCounters::default(),
        };
        socket.refill();
        Ok(socket)
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the bind is zero-copy (else copy mode).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The socket's file descriptor (for the XSKMAP and for `poll`).
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// Largest frame that fits in a UMEM frame.
    pub fn max_frame_len(&self) -> usize {
        self.frame_len
    }

    /// Where the frames are.
    pub fn account(&self) -> FrameAccount {
        FrameAccount {
            total: self.total,
            free: self.free.len() as u64,
            fill: self.in_fill,
            rx_held: 0,
            tx_pending: self.pending.len() as u64,
            tx_in_flight: self.in_flight,
        }
    }

    /// Traffic counters, with the kernel's drop counts.
    pub fn counters(&self) -> SocketCounters {
        let mut c = self.counters;
        if let Ok(s) = self.rx.fd().xdp_statistics() {
            c.kernel_rx_dropped = s.rx_dropped() + s.rx_ring_full();
        }
        c
    }

    /// Puts free frames on the fill ring, as many as it takes.
    pub fn refill(&mut self) {
        let want = self.fill.nb_free(self.free.len() as u32) as usize;
        let n = want.min(self.free.len());
        if n == 0 {
            return;
        }
        let start = self.free.len() - n;
        // Safety: these frames come off our free list, so neither the kernel nor the engine
        // owns them; they belong to this socket's UMEM.
        let produced = unsafe { self.fill.produce(&self.free[start..]) };
        self.free.truncate(self.free.len() - produced);
        self.in_fill += produced as u64;
    }

    /// Takes back frames the kernel has transmitted.
    pub fn reap_completions(&mut self) {
        loop {
            // Safety: completed frames are owned by user space again; `scratch` only receives
            // descriptors of this UMEM.
            let n = unsafe { self.comp.consume(&mut self.scratch) };
            if n == 0 {
                break;
            }
            self.in_flight -= n as u64;
            self.free.extend_from_slice(&self.scratch[..n]);
            if n < self.scratch.len() {
                break;
            }
        }
    }

    /// Receives up to [`BATCH`] frames and hands each to `handle` with a [`Tx`] that writes
    /// replies straight into free UMEM frames. Returns the number of frames received.
    pub fn receive_batch<F>(&mut self, mut handle: F) -> usize
    where
        F: FnMut(&[u8], &mut XskTx<'_>),
    {
        let mut rx_descs = [FrameDesc::default(); BATCH];
        // Safety: descriptors popped from the RX ring are ours until we give them back.
        let n = unsafe { self.rx.consume(&mut rx_descs) };
        if n == 0 {
            return 0;
        }
        self.in_fill -= n as u64;
        self.counters.rx_frames += n as u64;
        for desc in &rx_descs[..n] {
            let frame: &[u8] = {
                // Safety: the kernel handed this frame to us on the RX ring; nobody writes it
                // while we read (TX frames come off the free list, never from `rx_descs`).
                let data = unsafe { self.umem.data(desc) };
                let contents = data.contents();
                // Safety: the slice points into the mmap'ed UMEM, which outlives this call and
                // whose frame is written by no one until it is recycled below; detaching it
                // from the `umem` borrow lets the handler's `Tx` borrow the socket.
                unsafe { std::slice::from_raw_parts(contents.as_ptr(), contents.len()) }
            };
            let mut tx = XskTx { socket_tx: self };
            handle(frame, &mut tx);
        }
        // Recycle: straight back on the fill ring when it has room, else the free list.
        self.free.extend_from_slice(&rx_descs[..n]);
        self.refill();
        n
    }

    /// A [`Tx`] for sends outside of a receive (timers).
    pub fn tx(&mut self) -> XskTx<'_> {
        XskTx { socket_tx: self }
    }

    /// Puts pending frames on the TX ring and kicks the kernel when it needs it (always in
    /// copy mode, where only `sendto` moves frames). Also reaps completions.
    pub fn flush(&mut self) -> io::Result<()> {
        self.reap_completions();
        let mut produced_any = false;
        while !self.pending.is_empty() {
            let room = self.tx.nb_free(self.pending.len() as u32) as usize;
            let n = room.min(self.pending.len());
            if n == 0 {
                break;
            }
            // Safety: pending frames were written by the engine and are on no ring.
            let produced = unsafe { self.tx.produce(&self.pending[..n]) };
            if produced == 0 {
                break;
            }
            produced_any = true;
            self.pending.drain(..produced);
            self.in_flight += produced as u64;
            self.counters.tx_frames += produced as u64;
        }
        let kick = if self.zero_copy {
            self.in_flight > 0 && self.tx.needs_wakeup()
        } else {
            produced_any || (self.in_flight > 0 && self.tx.needs_wakeup())
        };
        if kick {
            self.counters.tx_kicks += 1;
            self.tx.wakeup()?;
        }
        self.reap_completions();
        Ok(())
    }

    /// Frames still owned by the kernel for transmission.
    pub fn tx_in_flight(&self) -> u64 {
        self.in_flight + self.pending.len() as u64
    }

    /// Whether the fill ring wants a wakeup (`poll` on the fd gives it one).
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }
}

/// The [`Tx`] of one socket: each `send` takes a free UMEM frame, the engine builds the frame
/// in place, and the frame waits in the pending batch for [`XskSocket::flush`].
pub struct XskTx<'a> {
    socket_tx: &'a mut XskSocket,
}

impl std::fmt::Debug for XskTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskTx")
            .field("queue", &self.socket_tx.queue)
            .finish()
    }
}

impl Tx for XskTx<'_> {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, build: F) -> bool {
        let s = &mut *self.socket_tx;
        if len > s.frame_len {
            s.counters.tx_no_frame += 1;
            return false;
        }
        if s.pending.len() >= BATCH {
            // Best effort: a failed kick leaves the frames pending for the next flush.
            let _ = s.flush();
        }
        if s.free.is_empty() {
            s.reap_completions();
        }
        let Some(mut desc) = s.free.pop() else {
            s.counters.tx_no_frame += 1;
            return false;
        };
        {
            // Safety: `desc` came off the free list: no ring and no other reference has it.
            let mut data = unsafe { s.umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            cursor.set_pos(len);
            build(data.contents_mut());
        }
        s.pending.push(desc);
        true
    }
}
