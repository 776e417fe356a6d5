//! One AF_XDP socket on one receive queue, with its own UMEM, its four rings and the frame
//! bookkeeping that keeps every UMEM frame in exactly one place (see the rules in
//! [`crate::xdp`] and [`super::frames`]). Generic over the kernel's side ([`Rings`]): xsk-rs in
//! production, in-memory fakes in tests.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::RawFd;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface as XskInterface, LibxdpFlags, QueueSize, SocketConfig,
    UmemConfig,
};
use xsk_rs::{Socket, Umem as XskUmem};

pub use super::frames::FrameAccount;
use super::frames::{BATCH, FramePool};
use super::gather::{ChainDrop, Gather, Gathered, MAX_FRAME_LEN};
use super::ring::{Desc, Rings, Umem, XdpRings, XdpUmem};
use crate::tx::Tx;

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
    /// Bind with `XDP_USE_SG`: packets larger than a frame arrive as descriptor chains
    /// (multi-buffer, Linux 6.6+), which the socket gathers into one frame for the engine.
    pub multi_buffer: bool,
}

impl Default for XskConfig {
    fn default() -> XskConfig {
        XskConfig {
            frames: 8192,
            frame_size: 4096,
            ring_size: 2048,
            bind: BindMode::Auto,
            multi_buffer: false,
        }
    }
}

impl XskConfig {
    /// The longest frame one UMEM frame holds, received or sent: `frame_size` less the
    /// kernel's XDP headroom (`XDP_PACKET_HEADROOM`, 256 bytes; the sockets ask for none of
    /// their own), as a bound socket has it ([`XskSocket::max_frame_len`]): 3840 bytes with
    /// the default 4096.
    pub fn frame_len(&self) -> Result<usize, SocketError> {
        let bad = |e: &dyn std::fmt::Display| SocketError::Config(e.to_string());
        let umem = UmemConfig::builder()
            .frame_size(FrameSize::new(self.frame_size).map_err(|e| bad(&e))?)
            .frame_headroom(0)
            .build()
            .map_err(|e| bad(&e))?;
        Ok(umem.mtu() as usize)
    }
}

/// The smallest MSS we announce whatever the link (Linux's `TCP_MIN_MSS`).
const MIN_LINK_MSS: u32 = 88;

/// The MSS a server on a link announces (and so sends with at most: the engine sends the
/// smaller of the peer's and its own): the link MTU's, clamped to what one UMEM frame carries.
/// A full segment is the TCP header and MSS bytes (options come out of the MSS, RFC 6691: the
/// engine's data segments carry MSS - 12 bytes beside the timestamp option, and so do Linux's),
/// so a segment of a connection over IPv4 or IPv6, in a frame with an 802.1Q tag, needs 18 +
/// 40 + 20 + MSS bytes. An MTU above what the frames hold (jumbo frames, 9000) would otherwise
/// have full segments refused by the TX path and dropped by the RX ring, and the connection
/// stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkMss {
    /// The MTU's MSS: the MTU less the IP and TCP headers (RFC 9293 §3.7.1).
    pub from_mtu: u32,
    /// The largest MSS whose full segment fits one frame over either family, with a VLAN tag.
    pub from_frame: u32,
    /// What to announce ([`crate::tcp::Config::mss`]): the smaller of the two, at least 88
    /// bytes.
    pub mss: u16,
}

impl LinkMss {
    /// The MSS for a link of `mtu` bytes whose frames are UMEM frames of `frame_len` bytes
    /// ([`XskConfig::frame_len`]), for connections whose IP header is `ip_header_len` bytes
    /// (IPv4's 20 for a server taking both families, as Linux's MTU - 40; 40 for IPv6 only).
    pub fn new(mtu: u32, frame_len: usize, ip_header_len: usize) -> LinkMss {
        use crate::wire::{ethernet, ipv6, tcp};
        let from_mtu = mtu.saturating_sub((ip_header_len + tcp::HEADER_LEN) as u32);
        let headers = ethernet::VLAN_HEADER_LEN + ipv6::Repr::HEADER_LEN + tcp::HEADER_LEN;
        let from_frame = frame_len.saturating_sub(headers) as u32;
        let mss = from_mtu
            .min(from_frame)
            .clamp(MIN_LINK_MSS, u32::from(u16::MAX));
        LinkMss {
            from_mtu,
            from_frame,
            mss: mss as u16,
        }
    }

    /// Whether the frames, not the MTU, set the MSS (`serve` says so).
    pub fn clamped(&self) -> bool {
        self.from_frame < self.from_mtu
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
        /// Whether it asked for multi-buffer (`XDP_USE_SG`).
        multi_buffer: bool,
        /// The kernel's answer.
        source: io::Error,
    },
}

impl SocketError {
    /// Whether the kernel refused a multi-buffer bind as such (EINVAL before Linux 6.6, or
    /// EOPNOTSUPP from a driver without it): a bind without `XDP_USE_SG` may work.
    pub fn multi_buffer_refused(&self) -> bool {
        matches!(self, SocketError::Bind { multi_buffer: true, source, .. }
            if matches!(source.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)))
    }
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
    /// Kicks after which the kernel had descriptors left (copy mode's `sendto` budget, or a
    /// full completion ring): kicked again at once, up to what is in flight.
    pub tx_kicks_cut: u64,
    /// Frames the kernel dropped for want of fill-ring frames or RX-ring room
    /// (`XDP_STATISTICS`: rx_dropped + rx_ring_full).
    pub kernel_rx_dropped: u64,
    /// Multi-buffer packets (descriptor chains) gathered into one frame for the engine.
    pub rx_chains: u64,
    /// Chains dropped for adding up to more than any IP packet
    /// ([`super::gather::MAX_FRAME_LEN`]).
    pub rx_chain_too_long: u64,
    /// Chains dropped because the RX ring ran dry inside them (a CONTD on the last
    /// descriptor).
    pub rx_chain_cut: u64,
    /// Frames longer than a UMEM frame sent as TX chains.
    pub tx_chains: u64,
}

impl SocketCounters {
    /// Every counter as (name, value), in the order stats, metrics and the report give them.
    pub fn fields(&self) -> [(&'static str, u64); 10] {
        [
            ("rx_frames", self.rx_frames),
            ("tx_frames", self.tx_frames),
            ("tx_no_frame", self.tx_no_frame),
            ("tx_kicks", self.tx_kicks),
            ("tx_kicks_cut", self.tx_kicks_cut),
            ("kernel_rx_dropped", self.kernel_rx_dropped),
            ("rx_chains", self.rx_chains),
            ("rx_chain_too_long", self.rx_chain_too_long),
            ("rx_chain_cut", self.rx_chain_cut),
            ("tx_chains", self.tx_chains),
        ]
    }

    /// Adds `other`'s counts (the totals over the queues).
    pub fn merge(&mut self, other: &SocketCounters) {
        self.rx_frames += other.rx_frames;
        self.tx_frames += other.tx_frames;
        self.tx_no_frame += other.tx_no_frame;
        self.tx_kicks += other.tx_kicks;
        self.tx_kicks_cut += other.tx_kicks_cut;
        self.kernel_rx_dropped += other.kernel_rx_dropped;
        self.rx_chains += other.rx_chains;
        self.rx_chain_too_long += other.rx_chain_too_long;
        self.rx_chain_cut += other.rx_chain_cut;
        self.tx_chains += other.tx_chains;
    }

    fn count_chain_drop(&mut self, why: ChainDrop) {
        match why {
            ChainDrop::TooLong => self.rx_chain_too_long += 1,
            ChainDrop::Cut => self.rx_chain_cut += 1,
        }
    }
}

/// An AF_XDP socket bound to one queue, with its own UMEM.
pub struct XskSocket<R: Rings = XdpRings> {
    queue: u32,
    /// Read for received frames while `port` writes replies into other frames: the borrows
    /// are split, and the frame ownership rules keep the frames apart.
    umem: R::Umem,
    port: Port<R>,
    /// The multi-buffer packet being gathered (outside `port`: handed to the engine while
    /// `port` writes its replies).
    gather: Gather,
}

/// Everything of a socket but its UMEM: the rings, where the frames are, the counters.
struct Port<R: Rings> {
    rings: R,
    frames: FramePool<Desc<R>>,
    zero_copy: bool,
    frame_len: usize,
    /// Bound with `XDP_USE_SG`: frames longer than a UMEM frame go out as TX chains.
    multi_buffer: bool,
    /// Where a frame longer than a UMEM frame is built before it is cut into a chain.
    chain_scratch: Vec<u8>,
    scratch: Vec<Desc<R>>,
    counters: SocketCounters,
}

impl<R: Rings> std::fmt::Debug for XskSocket<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("queue", &self.queue)
            .field("zero_copy", &self.port.zero_copy)
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
            multi_buffer: config.multi_buffer,
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
            XskUmem::new(umem_config, frames, false).map_err(|e| SocketError::Umem {
                queue,
                source: Box::new(e),
            })?;
        let mut bind_flags = BindFlags::XDP_USE_NEED_WAKEUP
            | match mode {
                BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
                _ => BindFlags::XDP_COPY,
            };
        if config.multi_buffer {
            bind_flags |= BindFlags::XDP_USE_SG;
        }
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
            multi_buffer: config.multi_buffer,
            source,
        };
        #[cfg(feature = "test-hooks")]
        if config.multi_buffer && test_hooks::refuses_multi_buffer() {
            return Err(bind_error(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        // SAFETY: this UMEM is fresh and used by this socket only, and the caller binds at most
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
        let rings = XdpRings { rx, tx, fill, comp };
        let umem = XdpUmem { umem, frame_len };
        Ok(
            XskSocket::new(queue, mode == BindMode::ZeroCopy, umem, rings, descs)
                .with_multi_buffer(config.multi_buffer),
        )
    }
}

/// Test builds only (cargo feature `test-hooks`, as in [`super::worker`]): the refusal an
/// older kernel gives a multi-buffer bind, which this one would not.
#[cfg(feature = "test-hooks")]
mod test_hooks {
    /// Whether every `XDP_USE_SG` bind is to fail with EINVAL, as before Linux 6.6
    /// (`XDPTCP_TEST_REFUSE_MULTI_BUFFER=1`).
    pub(super) fn refuses_multi_buffer() -> bool {
        std::env::var_os("XDPTCP_TEST_REFUSE_MULTI_BUFFER").is_some_and(|v| v == "1")
    }
}

impl<R: Rings> XskSocket<R> {
    /// A socket over `rings` and `umem` on `queue`, owning the frames `descs` (all of the
    /// UMEM's), which go on the fill ring at once.
    pub fn new(
        queue: u32,
        zero_copy: bool,
        umem: R::Umem,
        rings: R,
        descs: Vec<Desc<R>>,
    ) -> XskSocket<R> {
        let frame_len = umem.frame_len();
        let mut socket = XskSocket {
            queue,
            umem,
            port: Port {
                rings,
                frames: FramePool::new(descs),
                zero_copy,
                frame_len,
                multi_buffer: false,
                chain_scratch: Vec::new(),
                scratch: vec![Desc::<R>::default(); BATCH],
                counters: SocketCounters::default(),
            },
            gather: Gather::new(),
        };
        socket.port.refill();
        socket
    }

    /// Sends frames longer than a UMEM frame as TX chains (`XDP_PKT_CONTD` on all of a
    /// frame's descriptors but the last), as a socket bound with `XDP_USE_SG` may; without,
    /// such a frame is refused ([`SocketCounters::tx_no_frame`]).
    pub fn with_multi_buffer(mut self, on: bool) -> XskSocket<R> {
        self.port.multi_buffer = on;
        self
    }

    /// In copy mode, lets one kick send a whole TX ring of `ring_size` descriptors
    /// (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17 on; before, and when refused, a kick sends 32).
    /// Nothing to raise in zero-copy mode.
    pub fn raise_tx_budget(&self, ring_size: u32) -> io::Result<()> {
        if self.port.zero_copy {
            return Ok(());
        }
        self.port.rings.raise_tx_budget(ring_size)
    }

    /// Whether the socket takes and sends packets larger than a UMEM frame.
    pub fn multi_buffer(&self) -> bool {
        self.port.multi_buffer
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the bind is zero-copy (else copy mode).
    pub fn zero_copy(&self) -> bool {
        self.port.zero_copy
    }

    /// The socket's file descriptor (for the XSKMAP).
    pub fn fd(&self) -> RawFd {
        self.port.rings.fd()
    }

    /// Largest frame that fits in a UMEM frame.
    pub fn max_frame_len(&self) -> usize {
        self.port.frame_len
    }

    /// Where the frames are.
    pub fn account(&self) -> FrameAccount {
        self.port.frames.account()
    }

    /// Traffic counters, with the kernel's drop counts.
    pub fn counters(&self) -> SocketCounters {
        let mut c = self.port.counters;
        if let Some(dropped) = self.port.rings.kernel_rx_dropped() {
            c.kernel_rx_dropped = dropped;
        }
        c
    }

    /// Puts free frames on the fill ring, as many as it takes.
    pub fn refill(&mut self) {
        self.port.refill();
    }

    /// Takes back frames the kernel has transmitted.
    pub fn reap_completions(&mut self) {
        self.port.reap_completions();
    }

    /// Receives up to [`BATCH`] frames and hands each to `handle` with a [`Tx`] that writes
    /// replies straight into free UMEM frames; a multi-buffer packet (a descriptor chain) is
    /// handed over once, gathered into one frame ([`super::gather`]), after as many more
    /// batches as its chain needs. Returns the number of descriptors received.
    pub fn receive_batch<F>(&mut self, mut handle: F) -> usize
    where
        F: FnMut(&[u8], &mut XskTx<'_, R>),
    {
        let XskSocket {
            umem, port, gather, ..
        } = self;
        let mut rx = [Desc::<R>::default(); BATCH];
        let mut received = 0;
        loop {
            // SAFETY: the frames taken off the RX ring are ours until we release them below.
            let n = unsafe { port.rings.receive(&mut rx) };
            port.frames.received(n);
            port.counters.rx_frames += n as u64;
            received += n;
            // The frames handed to the engine in place, kept to the batch's end (in rx[..held]).
            let mut held = 0;
            for i in 0..n {
                let desc = rx[i];
                let more = R::Umem::continues(&desc);
                if !more && !gather.is_open() {
                    let mut tx = XskTx { umem, port };
                    // SAFETY: `desc` came off the RX ring and is held until the release
                    // below; nobody writes it meanwhile, since replies are written only into
                    // frames taken off the free list, which a held frame is not on.
                    unsafe { umem.read(&desc, |frame| handle(frame, &mut tx)) };
                    rx[held] = desc;
                    held += 1;
                    continue;
                }
                // SAFETY: as above, until the release right after the copy.
                let gathered = unsafe { umem.read(&desc, |piece| gather.push(piece, more)) };
                // Its bytes are in the gather buffer: free for replies at once.
                port.frames.release(&[desc]);
                match gathered {
                    Gathered::Nothing => {}
                    Gathered::Dropped(why) => port.counters.count_chain_drop(why),
                    Gathered::Frame(frame) => {
                        port.counters.rx_chains += 1;
                        handle(frame, &mut XskTx { umem, port });
                    }
                }
            }
            // Recycle: straight back on the fill ring when it has room, else the free list.
            if n > 0 {
                port.frames.release(&rx[..held]);
                port.refill();
            }
            // A chain cut by the batch's end goes on in the next descriptors; a chain still
            // open when the ring is dry was cut for good (the kernel publishes whole chains).
            if n < BATCH || !gather.is_open() {
                if let Some(why) = gather.ring_dry() {
                    port.counters.count_chain_drop(why);
                }
                return received;
            }
        }
    }

    /// A [`Tx`] for sends outside of a receive (timers).
    pub fn tx(&mut self) -> XskTx<'_, R> {
        XskTx {
            umem: &self.umem,
            port: &mut self.port,
        }
    }

    /// Puts pending frames on the TX ring and kicks the kernel when it needs it (always in
    /// copy mode, where only `sendto` moves frames). Also reaps completions.
    pub fn flush(&mut self) -> io::Result<()> {
        self.port.flush()
    }

    /// Frames still owned by the kernel for transmission, or waiting to be handed to it.
    pub fn tx_in_flight(&self) -> u64 {
        self.port.frames.tx_outstanding()
    }

    /// Whether the fill ring wants a wakeup (`poll` on the fd gives it one).
    pub fn fill_needs_wakeup(&self) -> bool {
        self.port.rings.fill_needs_wakeup()
    }

    /// Waits up to `timeout_ms` for a frame (see [`Rings::wait`]).
    pub fn wait(&self, timeout_ms: i32) {
        self.port.rings.wait(timeout_ms);
    }
}

impl<R: Rings> Port<R> {
    fn refill(&mut self) {
        let n = self.rings.fill_room(self.frames.free_len());
        let offered = self.frames.to_fill(n);
        if offered.is_empty() {
            return;
        }
        // SAFETY: these frames come off our free list, so neither the kernel nor the engine
        // owns them; they belong to this socket's UMEM.
        let produced = unsafe { self.rings.fill(offered) };
        self.frames.filled(produced);
    }

    fn reap_completions(&mut self) {
        loop {
            // SAFETY: completed frames are owned by user space again; `scratch` only receives
            // descriptors of this UMEM.
            let n = unsafe { self.rings.complete(&mut self.scratch) };
            if n == 0 {
                break;
            }
            self.frames.completed(&self.scratch[..n]);
            if n < self.scratch.len() {
                break;
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.reap_completions();
        let mut produced_any = false;
        while !self.frames.pending().is_empty() {
            let pending = self.frames.pending();
            let room = self.rings.tx_room(pending.len());
            // Whole packets only: a chain's descriptors go on the ring together.
            let n = pending[..room]
                .iter()
                .rposition(|d| !R::Umem::continues(d))
                .map_or(0, |last| last + 1);
            if n == 0 {
                break;
            }
            // SAFETY: pending frames were written by the engine and are on no ring.
            let produced = unsafe { self.rings.transmit(&pending[..n]) };
            if produced == 0 {
                break;
            }
            produced_any = true;
            self.frames.submitted(produced);
            self.counters.tx_frames += produced as u64;
        }
        let in_flight = self.frames.in_flight() > 0;
        let kick = if self.zero_copy {
            in_flight && self.rings.tx_needs_wakeup()
        } else {
            produced_any || (in_flight && self.rings.tx_needs_wakeup())
        };
        if kick {
            // One copy-mode `sendto` sends at most the kernel's budget (32 unless
            // `XDP_MAX_TX_SKB_BUDGET` raised it): kick until the ring is drained, or a reply
            // would wait for the next turn of the loop, maybe behind a 1 ms poll. Each kick
            // sends 32 or more, so what is in flight bounds the kicks.
            let most = self.frames.in_flight() / 32 + 1;
            for _ in 0..most {
                self.counters.tx_kicks += 1;
                if !self.rings.kick()? {
                    break;
                }
                self.counters.tx_kicks_cut += 1;
                self.reap_completions();
            }
        }
        self.reap_completions();
        Ok(())
    }
}

/// The [`Tx`] of one socket: each `send` takes a free UMEM frame, the engine builds the frame
/// in place, and the frame waits in the pending batch for [`XskSocket::flush`].
pub struct XskTx<'a, R: Rings = XdpRings> {
    umem: &'a R::Umem,
    port: &'a mut Port<R>,
}

impl<R: Rings> std::fmt::Debug for XskTx<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskTx")
            .field("pending", &self.port.frames.pending().len())
            .finish()
    }
}

impl<R: Rings> Tx for XskTx<'_, R> {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, build: F) -> bool {
        let (umem, p) = (self.umem, &mut *self.port);
        if len > p.frame_len {
            return p.send_chain(umem, len, build);
        }
        if !p.make_room(1) {
            p.counters.tx_no_frame += 1;
            return false;
        }
        p.frames.send(|desc| {
            // SAFETY: `desc` comes off the free list: no ring, no received frame and no other
            // reference has it.
            unsafe { umem.write(desc, len, build) };
            // A frame that last came in as part of a chain still says CONTD.
            R::Umem::set_continues(desc, false);
        })
    }
}

impl<R: Rings> Port<R> {
    /// Whether `frames` free frames are there for a packet, after flushing a full pending
    /// batch and reaping completions as needed.
    fn make_room(&mut self, frames: usize) -> bool {
        if self.frames.pending().len() + frames > BATCH {
            // Best effort: a failed kick leaves the frames pending for the next flush.
            let _ = self.flush();
        }
        if self.frames.free_len() < frames {
            self.reap_completions();
        }
        self.frames.free_len() >= frames
    }

    /// A frame longer than a UMEM frame, as a TX chain: built whole in the scratch buffer,
    /// then copied into as many free frames as it needs, all of them or none. Refused without
    /// multi-buffer, and beyond the longest IP packet.
    fn send_chain<F: FnOnce(&mut [u8])>(&mut self, umem: &R::Umem, len: usize, build: F) -> bool {
        let pieces = len.div_ceil(self.frame_len);
        if !self.multi_buffer || len > MAX_FRAME_LEN || !self.make_room(pieces) {
            self.counters.tx_no_frame += 1;
            return false;
        }
        let mut whole = std::mem::take(&mut self.chain_scratch);
        whole.resize(len, 0);
        build(&mut whole);
        for (i, piece) in whole.chunks(self.frame_len).enumerate() {
            let sent = self.frames.send(|desc| {
                // SAFETY: as in `send`: a frame off the free list, nobody else's.
                unsafe { umem.write(desc, piece.len(), |b| b.copy_from_slice(piece)) };
                R::Umem::set_continues(desc, i + 1 < pieces);
            });
            debug_assert!(sent, "make_room counted the frames");
        }
        self.chain_scratch = whole;
        self.counters.tx_chains += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::wire::SeqNumber;
    use crate::wire::tcp::{Flags, Options, Repr as TcpRepr};
    use crate::wire::{IpRepr, TcpFrame, ethernet, ipv4, ipv6};

    use crate::xdp::ring::testing::{self, FakeRings, Kernel};

    /// A socket over fake rings of `ring` entries and a UMEM of `frames` frames of
    /// `frame_len` bytes, with the kernel's side.
    fn fake_socket(frames: usize, frame_len: usize, ring: usize) -> (XskSocket<FakeRings>, Kernel) {
        let (umem, rings, kernel, descs) = testing::pair(frames, frame_len, ring);
        (XskSocket::new(0, false, umem, rings, descs), kernel)
    }

    /// Runs one receive batch and returns the frames the handler was given.
    fn receive(socket: &mut XskSocket<FakeRings>) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        socket.receive_batch(|frame, _| got.push(frame.to_vec()));
        got
    }

    /// `len` bytes that say where they are.
    fn packet(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    /// Every frame is in one place, none held, and the fill ring is full again.
    fn assert_all_back(socket: &XskSocket<FakeRings>, kernel: &Kernel, ring: usize) {
        let a = socket.account();
        assert!(a.balanced(), "{a:?}");
        assert_eq!(
            (a.rx_held, a.tx_pending, a.tx_in_flight),
            (0, 0, 0),
            "{a:?}"
        );
        assert_eq!(kernel.fill_len(), ring, "{a:?}");
    }

    #[test]
    fn a_chain_is_handed_over_once_whole_and_its_frames_go_back_to_the_fill_ring() {
        let (mut socket, kernel) = fake_socket(64, 256, 32);
        let (big, small) = (packet(1000, 1), packet(60, 2));
        assert!(kernel.deliver_chain(&big), "four descriptors");
        assert!(kernel.deliver(&small));
        assert_eq!(receive(&mut socket), [big, small]);
        let c = socket.counters();
        assert_eq!((c.rx_frames, c.rx_chains), (5, 1));
        assert_eq!((c.rx_chain_cut, c.rx_chain_too_long), (0, 0));
        assert_all_back(&socket, &kernel, 32);
    }

    #[test]
    fn a_chain_cut_by_the_end_of_a_batch_goes_on_in_the_next_descriptors() {
        let (mut socket, kernel) = fake_socket(512, 128, 256);
        let singles: Vec<Vec<u8>> = (0..BATCH - 2).map(|i| packet(100, i as u8)).collect();
        for p in &singles {
            assert!(kernel.deliver(p));
        }
        let chain = packet(4 * 128, 9);
        assert!(
            kernel.deliver_chain(&chain),
            "two in this batch, two in the next"
        );
        let got = receive(&mut socket);
        assert_eq!(got.len(), BATCH - 1);
        assert_eq!(&got[..BATCH - 2], &singles[..]);
        assert_eq!(got[BATCH - 2], chain);
        assert_eq!(socket.counters().rx_chain_cut, 0);
        assert_all_back(&socket, &kernel, 256);
    }

    #[test]
    fn a_chain_whose_last_descriptor_says_more_is_dropped_counted_and_leaks_no_frame() {
        let (mut socket, kernel) = fake_socket(64, 256, 32);
        assert!(kernel.deliver_descs(&[(&packet(256, 1), true), (&packet(10, 2), true)]));
        assert!(
            receive(&mut socket).is_empty(),
            "half a packet is never handed over"
        );
        assert_eq!(socket.counters().rx_chain_cut, 1);
        assert_all_back(&socket, &kernel, 32);
        // The next packet starts afresh.
        let next = packet(300, 3);
        assert!(kernel.deliver_chain(&next));
        assert_eq!(receive(&mut socket), [next]);
    }

    #[test]
    fn a_chain_longer_than_any_ip_packet_is_dropped_counted_and_leaks_no_frame() {
        let (mut socket, kernel) = fake_socket(128, 4096, 64);
        let huge = packet(MAX_FRAME_LEN + 1, 4);
        assert!(kernel.deliver_chain(&huge), "17 descriptors");
        let fits = packet(MAX_FRAME_LEN, 5);
        assert!(kernel.deliver_chain(&fits));
        assert_eq!(receive(&mut socket), [fits], "only the one that fits");
        let c = socket.counters();
        assert_eq!((c.rx_chain_too_long, c.rx_chains), (1, 1));
        assert_all_back(&socket, &kernel, 64);
    }

    #[test]
    fn a_frame_that_came_in_as_part_of_a_chain_goes_out_as_a_packet_of_its_own() {
        // 8 frames, all filled; a chain takes 4 of them, which come back on the free list.
        let (mut socket, kernel) = fake_socket(8, 256, 8);
        assert!(kernel.deliver_chain(&packet(1000, 1)));
        socket.receive_batch(|_, tx| {
            for i in 0..4u8 {
                assert!(tx.send(64, |b| b.fill(i)));
            }
        });
        socket.flush().unwrap();
        let sent = kernel.transmit();
        assert_eq!(
            sent.len(),
            4,
            "four replies, not one chain of them: {sent:?}"
        );
        assert!(
            sent.iter()
                .enumerate()
                .all(|(i, f)| f == &vec![i as u8; 64])
        );
    }

    #[test]
    fn a_frame_longer_than_a_umem_frame_goes_out_as_one_chain_only_with_multi_buffer() {
        // 32 frames, 16 of them on the fill ring.
        let (socket, kernel) = fake_socket(32, 256, 16);
        let mut socket = socket.with_multi_buffer(true);
        let big = packet(700, 7);
        assert!(socket.tx().send(700, |b| b.copy_from_slice(&big)));
        assert!(socket.tx().send(10, |b| b.fill(1)));
        socket.flush().unwrap();
        assert_eq!(
            kernel.transmit(),
            [big, vec![1; 10]],
            "three descriptors, then one"
        );
        let c = socket.counters();
        assert_eq!((c.tx_frames, c.tx_chains, c.tx_no_frame), (4, 1, 0));
        socket.reap_completions();
        assert_eq!(socket.account().free, 16);

        let (mut single, _) = fake_socket(32, 256, 16);
        assert!(!single.tx().send(700, |_| panic!("never built")));
        assert_eq!(single.counters().tx_no_frame, 1);
    }

    #[test]
    fn a_chain_is_sent_whole_or_not_at_all() {
        // Seven frames, four on the fill ring: a four-frame chain is refused, none touched.
        let (socket, _kernel) = fake_socket(7, 256, 4);
        let mut socket = socket.with_multi_buffer(true);
        assert!(!socket.tx().send(1000, |_| panic!("never built")));
        assert_eq!(socket.account().free, 3);
        assert_eq!(socket.counters().tx_no_frame, 1);
        assert!(
            socket.tx().send(700, |b| b.fill(3)),
            "three frames do for 700 bytes"
        );
        assert_eq!(socket.account().tx_pending, 3);
    }

    #[test]
    fn the_tx_ring_takes_a_chain_with_all_of_its_descriptors() {
        // A ring of 4: one 2-frame packet and a 3-frame chain pending; only the first fits now.
        let (socket, kernel) = fake_socket(16, 256, 4);
        let mut socket = socket.with_multi_buffer(true);
        assert!(socket.tx().send(300, |b| b.fill(1)));
        assert!(socket.tx().send(600, |b| b.fill(2)));
        socket.flush().unwrap();
        assert_eq!(socket.counters().tx_frames, 2, "not half of the chain");
        assert_eq!(kernel.transmit(), [vec![1; 300]]);
        socket.flush().unwrap();
        assert_eq!(kernel.transmit(), [vec![2; 600]]);
    }

    #[test]
    fn a_copy_mode_flush_kicks_until_the_kernel_s_32_descriptor_budget_has_sent_everything() {
        // 100 replies pending, a kernel that sends 32 per `sendto` and says EAGAIN while any
        // are left: one flush sends all of them, in order.
        let (mut socket, kernel) = fake_socket(256, 128, 128);
        kernel.send_on_kick(32);
        for i in 0..100u8 {
            assert!(socket.tx().send(60, |b| b.fill(i)));
        }
        socket.flush().unwrap();
        let sent = kernel.kicked();
        assert_eq!(sent.len(), 100);
        assert!(
            sent.iter()
                .enumerate()
                .all(|(i, p)| *p == vec![i as u8; 60])
        );
        // The sends flush each full batch of 64 (32 + 32: two kicks, the first cut), the flush
        // the other 36 (32 + 4).
        let c = socket.counters();
        assert_eq!((c.tx_kicks, c.tx_kicks_cut), (4, 2), "{c:?}");
        assert_eq!(kernel.kicks(), 4);
        // A budget raised to the ring's size sends each batch with one kick.
        kernel.send_on_kick(128);
        for i in 0..100u8 {
            assert!(socket.tx().send(60, |b| b.fill(i)));
        }
        socket.flush().unwrap();
        assert_eq!(kernel.kicked().len(), 100);
        let c = socket.counters();
        assert_eq!((c.tx_kicks, c.tx_kicks_cut), (6, 2), "{c:?}");
        assert_all_back(&socket, &kernel, 128);
    }

    proptest::proptest! {
        /// Packets of any length, as the kernel cuts them into descriptor chains, with a cut
        /// chain now and then: the handler gets every whole packet once, in order, and after
        /// every batch each frame is in exactly one place and none is held.
        #[test]
        fn chains_keep_every_frame_accounted_for(
            rounds in proptest::collection::vec(
                (proptest::collection::vec(1usize..1500, 0..12), proptest::bool::ANY), 1..30),
        ) {
            let (frame_len, ring) = (256, 64);
            let (mut socket, kernel) = fake_socket(4 * ring, frame_len, ring);
            let mut cuts = 0;
            for (r, (lens, cut)) in rounds.iter().enumerate() {
                let mut want = Vec::new();
                for (i, &len) in lens.iter().enumerate() {
                    let p = packet(len, (r * 16 + i) as u8);
                    if kernel.deliver_chain(&p) {
                        want.push(p);
                    }
                }
                if *cut && kernel.deliver_descs(&[(&packet(10, 0), true)]) {
                    cuts += 1;
                }
                proptest::prop_assert_eq!(receive(&mut socket), want);
                let a = socket.account();
                proptest::prop_assert!(a.balanced(), "{:?}", a);
                proptest::prop_assert_eq!(a.rx_held, 0);
                proptest::prop_assert_eq!(kernel.fill_len(), ring);
            }
            proptest::prop_assert_eq!(socket.counters().rx_chain_cut, cuts);
        }
    }

    #[test]
    fn a_4096_byte_frame_holds_3840_bytes_of_packet() {
        assert_eq!(XskConfig::default().frame_len().unwrap(), 3840);
        let odd = XskConfig {
            frame_size: 3000,
            ..XskConfig::default()
        };
        assert!(odd.frame_len().is_err(), "not a power of two");
    }

    #[test]
    fn the_mtu_sets_the_mss_until_the_frame_is_smaller() {
        let v4 = ipv4::Repr::HEADER_LEN;
        let ethernet_mtu = LinkMss::new(1500, 3840, v4);
        assert_eq!((ethernet_mtu.mss, ethernet_mtu.clamped()), (1460, false));
        assert_eq!(LinkMss::new(1500, 3840, ipv6::Repr::HEADER_LEN).mss, 1440);
        let jumbo = LinkMss::new(9000, 3840, v4);
        assert_eq!(
            jumbo,
            LinkMss {
                from_mtu: 8960,
                from_frame: 3840 - 18 - 40 - 20,
                mss: 3762,
            }
        );
        assert!(jumbo.clamped());
        // 2 KiB frames (2048 - 256 headroom) hold a 1500-byte MTU's segment, not a 4000's.
        assert!(!LinkMss::new(1500, 1792, v4).clamped());
        assert_eq!(LinkMss::new(4000, 1792, v4).mss, 1792 - 78);
        assert_eq!(
            LinkMss::new(40, 3840, v4).mss,
            88,
            "never below Linux's minimum"
        );
        assert_eq!(LinkMss::new(200_000, 1 << 20, v4).mss, u16::MAX);
    }

    /// The frame of a full data segment (MSS bytes of header options and payload: the
    /// timestamp option and MSS - 12 bytes) from `src` to `dst`, tagged.
    fn full_segment_frame(mss: u16, src: IpAddr, dst: IpAddr) -> usize {
        let payload = vec![0u8; usize::from(mss) - 12];
        let tcp = TcpRepr {
            src_port: 8080,
            dst_port: 40000,
            seq: SeqNumber(1),
            ack: SeqNumber(1),
            flags: Flags::ACK | Flags::PSH,
            window: 1000,
            options: Options {
                timestamp: Some((1, 2)),
                ..Options::default()
            },
            payload: &payload,
        };
        let ip = match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => IpRepr::V4(ipv4::Repr {
                src,
                dst,
                protocol: 6,
                payload_len: 0,
                ttl: 64,
            }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => IpRepr::V6(ipv6::Repr {
                src,
                dst,
                next_header: 6,
                payload_len: 0,
                hop_limit: 64,
            }),
            _ => unreachable!(),
        };
        let f = TcpFrame {
            eth: ethernet::Repr {
                dst: [2; 6],
                src: [4; 6],
                vlan: Some(5),
                ethertype: 0,
            },
            ip,
            tcp,
        };
        f.buffer_len()
    }

    #[test]
    fn a_full_segment_at_the_clamped_mss_fills_a_frame_exactly_over_ipv6_and_fits_over_ipv4() {
        let frame_len = XskConfig::default().frame_len().unwrap();
        let mss = LinkMss::new(9000, frame_len, ipv4::Repr::HEADER_LEN).mss;
        let v6 = full_segment_frame(mss, "fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        assert_eq!(v6, frame_len);
        let v4 = full_segment_frame(
            mss,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
        );
        assert_eq!(v4, frame_len - 20);
        // The MTU's own MSS would not fit.
        assert!(
            full_segment_frame(
                8960,
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap()
            ) > frame_len
        );
    }
}
