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
use super::frames::FramePool;
use super::ring::{Desc, Rings, Umem, XdpRings, XdpUmem};
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
pub struct XskSocket<R: Rings = XdpRings> {
    queue: u32,
    /// Read for received frames while `port` writes replies into other frames: the borrows
    /// are split, and the frame ownership rules keep the frames apart.
    umem: R::Umem,
    port: Port<R>,
}

/// Everything of a socket but its UMEM: the rings, where the frames are, the counters.
struct Port<R: Rings> {
    rings: R,
    frames: FramePool<Desc<R>>,
    zero_copy: bool,
    frame_len: usize,
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
        Ok(XskSocket::new(
            queue,
            mode == BindMode::ZeroCopy,
            umem,
            rings,
            descs,
        ))
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
                scratch: vec![Desc::<R>::default(); BATCH],
                counters: SocketCounters::default(),
            },
        };
        socket.port.refill();
        socket
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
    /// replies straight into free UMEM frames. Returns the number of frames received.
    pub fn receive_batch<F>(&mut self, mut handle: F) -> usize
    where
        F: FnMut(&[u8], &mut XskTx<'_, R>),
    {
        let XskSocket { umem, port, .. } = self;
        let mut rx = [Desc::<R>::default(); BATCH];
        // SAFETY: the frames taken off the RX ring are ours until we release them below.
        let n = unsafe { port.rings.receive(&mut rx) };
        if n == 0 {
            return 0;
        }
        port.frames.received(n);
        port.counters.rx_frames += n as u64;
        for desc in &rx[..n] {
            let mut tx = XskTx { umem, port };
            // SAFETY: `desc` came off the RX ring and is held until the release below; nobody
            // writes it meanwhile, since replies are written only into frames taken off the
            // free list, which a held frame is not on.
            unsafe { umem.read(desc, |frame| handle(frame, &mut tx)) };
        }
        // Recycle: straight back on the fill ring when it has room, else the free list.
        port.frames.release(&rx[..n]);
        port.refill();
        n
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
            let n = self.rings.tx_room(pending.len());
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
            self.counters.tx_kicks += 1;
            self.rings.kick()?;
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
            p.counters.tx_no_frame += 1;
            return false;
        }
        if p.frames.pending().len() >= BATCH {
            // Best effort: a failed kick leaves the frames pending for the next flush.
            let _ = p.flush();
        }
        if !p.frames.has_free() {
            p.reap_completions();
        }
        // SAFETY: `desc` comes off the free list: no ring, no received frame and no other
        // reference has it.
        let sent = p
            .frames
            .send(|desc| unsafe { umem.write(desc, len, build) });
        if !sent {
            p.counters.tx_no_frame += 1;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::tcp::SeqNumber;
    use crate::wire::tcp::{Flags, Options, Repr as TcpRepr};
    use crate::wire::{IpRepr, TcpFrame, ethernet, ipv4, ipv6};

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
