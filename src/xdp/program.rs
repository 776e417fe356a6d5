//! The XDP program (`bpf/xdptcp.bpf.c`): load, fill its maps, attach it through a bpf_link.
//!
//! The program is attached with `bpf_link_create`, never through netlink: the link belongs to
//! a file descriptor of this process, so the kernel detaches the program when the process is
//! gone, even after SIGKILL, and the NIC is never left steering packets to nobody.

use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};

use crate::tcp::Config;
use crate::time::Instant;
use crate::xdp::shared_maps::{CookieKeyTable, QueueFlag, QueueFlags};

#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    dead_code,
    unused_imports
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/xdptcp.skel.rs"));
}

use skel::{XdptcpSkel, XdptcpSkelBuilder, types};

/// `AF_INET` / `AF_INET6` as the program's `served_key.family` spells them.
const FAMILY_INET: u8 = libc::AF_INET as u8;
const FAMILY_INET6: u8 = libc::AF_INET6 as u8;

/// The XDP verdicts the program returns (`enum xdp_action`).
pub mod verdict {
    /// Dropped (frames from martian sources; in cookie mode, SYNs with bad checksums, flags
    /// or options).
    pub const XDP_DROP: u32 = 1;
    /// Handed to the kernel stack.
    pub const XDP_PASS: u32 = 2;
    /// Sent back out of the device it came in on (a cookie SYN-ACK).
    pub const XDP_TX: u32 = 3;
    /// Redirected into an AF_XDP socket.
    pub const XDP_REDIRECT: u32 = 4;
}

/// Receive queues the program can serve (the size of its per-queue maps).
pub const MAX_QUEUES: u32 = 64;

/// What the program writes into a cookie SYN-ACK, taken from the engine's configuration so
/// that its SYN-ACK is the engine's, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynAckTemplate {
    /// The MSS we announce.
    pub mss: u16,
    /// The SYN-ACK's window (unscaled, as in every SYN).
    pub window: u16,
    /// The window scale we offer; 0 offers none.
    pub window_scale: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// Whether we take timestamps (and so can carry options in a cookie).
    pub timestamps: bool,
    /// Whether we take SACK.
    pub sack: bool,
    /// The engine's cookie clock: added to CLOCK_MONOTONIC for slots and epochs, µs.
    pub clock_offset_us: i64,
    /// The key rotation epoch, µs.
    pub epoch_us: u64,
}

impl SynAckTemplate {
    /// The SYN-ACK the engine configured by `cfg` sends.
    pub fn from_engine(cfg: &Config) -> SynAckTemplate {
        SynAckTemplate {
            mss: cfg.mss,
            window: cfg.recv_buffer.min(u32::from(u16::MAX)) as u16,
            window_scale: cfg.window_scale.min(crate::wire::tcp::MAX_WINDOW_SCALE),
            ttl: cfg.ttl,
            timestamps: cfg.timestamps,
            sack: cfg.sack,
            clock_offset_us: cfg.cookie_clock_offset_us,
            epoch_us: cfg.cookie_rotation.as_micros().max(1) as u64,
        }
    }
}

/// Everything fixed when the program is loaded.
#[derive(Debug, Clone)]
pub struct ProgramConfig {
    /// Frames for served endpoints arriving on queues `>= xsk_queues` are passed to the kernel
    /// (counted as `no_socket`).
    pub xsk_queues: u32,
    /// The device's MAC: frames to another destination go to the kernel.
    pub local_mac: [u8; 6],
    /// The device's ifindex, whose XDP_TX drops the program counts (0: none).
    pub ifindex: u32,
    /// Send cookie SYN-ACKs with a redirect to the device itself instead of XDP_TX (for veth,
    /// whose XDP_TX frames a peer without its own XDP program only gets late).
    pub tx_by_redirect: bool,
    /// The cookie SYN-ACK.
    pub synack: SynAckTemplate,
    /// Tests only: the program reads this instant of CLOCK_MONOTONIC instead of the clock.
    pub fixed_now: Option<Instant>,
    /// Load the program as frags-aware (`BPF_F_XDP_HAS_FRAGS`, what `SEC("xdp.frags")` asks
    /// for): it takes multi-buffer packets, so a driver may hand it frames larger than a page
    /// (veth then keeps its peer's GSO: 64 KiB frames arrive whole) and the AF_XDP sockets must
    /// bind with `XDP_USE_SG`. Kernels before 5.18 refuse it.
    pub multi_buffer: bool,
}

/// Why the program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel refused the BPF object (not root, no CAP_BPF, or a kernel too old for it).
    #[error(
        "loading the XDP program failed: {0} (needs root or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN, and a kernel >= 5.9 with BTF)"
    )]
    Load(#[source] libbpf_rs::Error),
    /// Mapping a shared map (`queues`, `cookie_keys`) into memory failed.
    #[error("mapping the XDP program's {0} map: {1}")]
    Mmap(&'static str, #[source] io::Error),
}

/// Why a map update or read failed.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// Writing `served` failed (full: at most 65536 endpoints).
    #[error("adding served endpoint {0}: {1}")]
    Served(String, #[source] libbpf_rs::Error),
    /// Inserting a socket into `xsks` failed (socket not bound, or queue beyond 64).
    #[error("inserting the AF_XDP socket of queue {0} into the XSKMAP: {1}")]
    Xsk(u32, #[source] libbpf_rs::Error),
    /// Reading `counters` failed.
    #[error("reading the XDP counters: {0}")]
    Counters(#[source] libbpf_rs::Error),
    /// `BPF_PROG_RUN` failed.
    #[error("BPF_PROG_RUN: {0}")]
    TestRun(#[source] libbpf_rs::Error),
}

/// How the program runs on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`): fast, needs driver support (veth has it).
    Native,
    /// In the generic network stack (`XDP_FLAGS_SKB_MODE`): works on every device, slower.
    Generic,
    /// Native, falling back to generic with a warning.
    Auto,
}

/// Why the program could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Another XDP program is on the device (attached through netlink, by `ip link` or libxdp,
    /// or by another process's link).
    #[error(
        "another XDP program is already attached to ifindex {ifindex} (another xdptcp, or one attached with `ip link`); stop it or detach it, e.g. `ip link set dev IFACE xdp off` (and `xdpgeneric off`)"
    )]
    AlreadyAttached {
        /// The device.
        ifindex: u32,
        /// EBUSY or EEXIST from the kernel.
        source: io::Error,
    },
    /// The driver has no native XDP (try `--xdp-mode generic` or `auto`).
    #[error("{mode:?} XDP is not supported on ifindex {ifindex}; try --xdp-mode generic")]
    NotSupported {
        /// The mode that was refused.
        mode: XdpMode,
        /// The device.
        ifindex: u32,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The device's MTU is larger than native XDP takes there: a driver that keeps each
    /// frame in one page refuses programs that cannot take multi-buffer frames (veth: an MTU
    /// above about 3500 bytes, ERANGE). Generic XDP takes any MTU.
    #[error(
        "the MTU of ifindex {ifindex} is too large for native XDP there (a frame must fit one page: on veth about 3500 bytes); use --xdp-mode generic (auto falls back to it) or a smaller MTU"
    )]
    MtuTooLarge {
        /// The device.
        ifindex: u32,
        /// ERANGE from the kernel.
        source: io::Error,
    },
    /// Not allowed: needs CAP_NET_ADMIN and CAP_BPF.
    #[error("attaching XDP needs root (CAP_NET_ADMIN + CAP_BPF): {0}")]
    Permission(#[source] io::Error),
    /// Any other failure of `bpf_link_create`.
    #[error("attaching XDP to ifindex {ifindex}")]
    Other {
        /// The device.
        ifindex: u32,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// The program attached to a device. Dropping it (or the process dying) detaches it.
#[derive(Debug)]
pub struct Attachment {
    link: OwnedFd,
    mode: XdpMode,
    ifindex: u32,
    /// The tracepoints that count XDP_TX drops.
    _tracepoints: Vec<libbpf_rs::Link>,
}

impl Attachment {
    /// The mode the program actually runs in (never [`XdpMode::Auto`]).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The device.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The bpf_link's file descriptor.
    pub fn link_fd(&self) -> RawFd {
        self.link.as_raw_fd()
    }
}

/// The program's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Frames handed to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that were not ours, passed to the kernel.
    pub passed: u64,
    /// Frames with truncated or impossible headers, passed to the kernel.
    pub malformed: u64,
    /// Frames for a served endpoint on a queue without a socket, passed to the kernel.
    pub no_socket: u64,
    /// Frames for a served endpoint but to another MAC than the device's, passed to the kernel.
    pub other_mac: u64,
    /// SYNs answered with a cookie SYN-ACK in XDP (XDP_TX).
    pub cookie_synacks: u64,
    /// Cookie mode: SYNs dropped for a bad IP or TCP checksum.
    pub syn_bad_checksum: u64,
    /// Cookie mode: SYNs dropped for bad options, flags or addresses.
    pub syn_malformed: u64,
    /// Cookie mode: SYNs handed to the engine instead (IP options, data, no key yet).
    pub syn_to_worker: u64,
    /// Cookie mode: SYNs handed to the engine because the driver drops the program's
    /// SYN-ACKs (the queue's `syns_to_worker` flag, set by the control thread).
    pub syn_tx_fallback: u64,
    /// SYN-ACKs (XDP_TX or redirected to the device itself) the driver dropped (on veth: the
    /// peer has no NAPI; see `serve`'s warning).
    pub tx_dropped: u64,
    /// Cookie mode: bare RSTs answering our cookie SYN-ACKs (a flooder's kernel's backscatter),
    /// dropped before they reach the engine.
    pub rst_backscatter: u64,
    /// Frames for a served endpoint from a source that is never a TCP peer (a group source
    /// MAC; a broadcast, multicast, loopback, unspecified or IPv4-mapped source; one of our
    /// own addresses), dropped: never answered.
    pub martian: u64,
}

impl XdpCounters {
    /// Every counter as (name, value): the one list that reports, metrics and the stats
    /// socket render, so a counter added here shows up everywhere.
    pub fn fields(&self) -> [(&'static str, u64); 13] {
        [
            ("redirected", self.redirected),
            ("passed", self.passed),
            ("malformed", self.malformed),
            ("no_socket", self.no_socket),
            ("other_mac", self.other_mac),
            ("cookie_synacks", self.cookie_synacks),
            ("syn_bad_checksum", self.syn_bad_checksum),
            ("syn_malformed", self.syn_malformed),
            ("syn_to_worker", self.syn_to_worker),
            ("tx_dropped", self.tx_dropped),
            ("rst_backscatter", self.rst_backscatter),
            ("syn_tx_fallback", self.syn_tx_fallback),
            ("martian", self.martian),
        ]
    }

    fn add(&mut self, c: &types::xdp_counters) {
        self.redirected += c.redirected;
        self.passed += c.passed;
        self.malformed += c.malformed;
        self.no_socket += c.no_socket;
        self.other_mac += c.other_mac;
        self.cookie_synacks += c.cookie_synacks;
        self.syn_bad_checksum += c.syn_bad_checksum;
        self.syn_malformed += c.syn_malformed;
        self.syn_to_worker += c.syn_to_worker;
        self.tx_dropped += c.tx_dropped;
        self.rst_backscatter += c.rst_backscatter;
        self.syn_tx_fallback += c.syn_tx_fallback;
        self.martian += c.martian;
    }
}

impl std::fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("xdp")?;
        for (name, v) in self.fields() {
            write!(f, " {name}={v}")?;
        }
        Ok(())
    }
}

/// The loaded (not yet attached) program and its maps.
pub struct Program {
    // Borrows `*storage`: declared first, dropped first (see `Drop`).
    skel: ManuallyDrop<XdptcpSkel<'static>>,
    storage: NonNull<MaybeUninit<OpenObject>>,
    queues: QueueFlags,
    keys: CookieKeyTable,
}

// SAFETY: the skeleton only holds libbpf object pointers and fds; libbpf objects may be used
// from another thread as long as it is not concurrently (`Program` is not `Sync`).
unsafe impl Send for Program {}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("prog_fd", &self.skel.progs.xdptcp_steer.as_fd().as_raw_fd())
            .finish()
    }
}

impl Program {
    /// Loads the program.
    pub fn load(config: &ProgramConfig) -> Result<Program, LoadError> {
        let storage = NonNull::from(Box::leak(Box::new(MaybeUninit::<OpenObject>::uninit())));
        // SAFETY: `storage` comes from a leaked Box, so it is valid and unaliased until `Drop`
        // turns it back into a Box, which happens only after the skeleton borrowing it is gone.
        let object: &'static mut MaybeUninit<OpenObject> = unsafe { &mut *storage.as_ptr() };
        let loaded = open_and_load(object, config)
            .map_err(LoadError::Load)
            .and_then(|skel| {
                let queues = QueueFlags::new(skel.maps.queues.as_fd(), MAX_QUEUES)
                    .map_err(|e| LoadError::Mmap("queues", e))?;
                let keys = CookieKeyTable::new(skel.maps.cookie_keys.as_fd())
                    .map_err(|e| LoadError::Mmap("cookie_keys", e))?;
                Ok((skel, queues, keys))
            });
        match loaded {
            Ok((skel, queues, keys)) => Ok(Program {
                skel: ManuallyDrop::new(skel),
                storage,
                queues,
                keys,
            }),
            Err(e) => {
                // SAFETY: the failed open/load dropped every borrow of `storage`; the Box was
                // leaked above and is reclaimed exactly once.
                drop(unsafe { Box::from_raw(storage.as_ptr()) });
                Err(e)
            }
        }
    }

    /// The cookie-mode flag and SYN-ACK count of `queue`, shared with the program.
    pub fn queue_flag(&self, queue: u32) -> Option<QueueFlag> {
        self.queues.queue(queue)
    }

    /// The cookie key table the program reads.
    pub fn cookie_keys(&self) -> &CookieKeyTable {
        &self.keys
    }

    /// Whether the program was loaded frags-aware ([`ProgramConfig::multi_buffer`]).
    pub fn multi_buffer(&self) -> bool {
        self.skel.progs.xdptcp_steer.flags() & libbpf_sys::BPF_F_XDP_HAS_FRAGS != 0
    }

    /// Serves `port` on `addr`, or on every address of both families when `addr` is `None`.
    /// Port 0 serves every port of `addr` (a load generator's whole source-port range).
    pub fn serve(&mut self, addr: Option<IpAddr>, port: u16) -> Result<(), MapError> {
        let keys = match addr {
            Some(a) => vec![served_key(Some(a), port, family_of(a))],
            None => vec![
                served_key(None, port, FAMILY_INET),
                served_key(None, port, FAMILY_INET6),
            ],
        };
        for key in keys {
            self.skel
                .maps
                .served
                .update(key_bytes(&key), &[1u8], MapFlags::ANY)
                .map_err(|e| MapError::Served(format!("{addr:?}:{port}"), e))?;
        }
        Ok(())
    }

    /// Stops serving `port` on `addr` (segments for it go to the kernel from now on).
    pub fn unserve(&mut self, addr: IpAddr, port: u16) -> Result<(), MapError> {
        let key = served_key(Some(addr), port, family_of(addr));
        self.skel
            .maps
            .served
            .delete(key_bytes(&key))
            .map_err(|e| MapError::Served(format!("{addr}:{port}"), e))
    }

    /// Puts the AF_XDP socket `fd` at index `queue` of the XSKMAP.
    pub fn insert_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), MapError> {
        self.skel
            .maps
            .xsks
            .update(
                &queue.to_ne_bytes(),
                &(fd as u32).to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| MapError::Xsk(queue, e))
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, MapError> {
        let per_cpu = self
            .skel
            .maps
            .counters
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(MapError::Counters)?
            .unwrap_or_default();
        let mut sum = XdpCounters::default();
        for bytes in per_cpu {
            if bytes.len() < size_of::<types::xdp_counters>() {
                continue;
            }
            // SAFETY: `bytes` holds at least one `xdp_counters` (plain u64s, any bit pattern
            // is valid); read_unaligned copes with the Vec's alignment.
            let c: types::xdp_counters = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            sum.add(&c);
        }
        Ok(sum)
    }

    /// Runs the program once over `frame` (`BPF_PROG_RUN`) and returns its verdict.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, MapError> {
        self.test_run_frame(frame).map(|(verdict, _)| verdict)
    }

    /// Runs the program once over `frame` and returns its verdict and the frame as the
    /// program left it (the SYN-ACK, after XDP_TX).
    pub fn test_run_frame(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), MapError> {
        let mut out = vec![0u8; frame.len() + 256];
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let res = self
            .skel
            .progs
            .xdptcp_steer
            .test_run(input)
            .map_err(MapError::TestRun)?;
        let (verdict, len) = (res.return_value, res.data.map_or(0, |d| d.len()));
        out.truncate(len);
        Ok((verdict, out))
    }

    /// Runs the program `repeat` times over `frame` in the kernel (`BPF_PROG_RUN` with
    /// `repeat`) and returns the kernel's mean time per run. The runs share one buffer: from
    /// the second on, they see the frame as the first run left it.
    pub fn bench_run(&self, frame: &[u8], repeat: u32) -> Result<std::time::Duration, MapError> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_out: out.as_mut_ptr().cast(),
            data_size_out: out.len() as u32,
            repeat: repeat.clamp(1, i32::MAX as u32) as i32,
            ..Default::default()
        };
        let fd = self.skel.progs.xdptcp_steer.as_fd().as_raw_fd();
        // SAFETY: `opts` is fully initialised with its size; its buffers outlive the call and
        // their lengths are the ones given.
        let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(fd, &mut opts) };
        if rc < 0 {
            return Err(MapError::TestRun(libbpf_rs::Error::from(
                io::Error::from_raw_os_error(-rc),
            )));
        }
        Ok(std::time::Duration::from_nanos(u64::from(opts.duration)))
    }

    /// Attaches the program to `ifindex` through a bpf_link.
    pub fn attach(&self, ifindex: u32, mode: XdpMode) -> Result<Attachment, AttachError> {
        match mode {
            XdpMode::Native | XdpMode::Generic => self.link(ifindex, mode),
            XdpMode::Auto => match self.link(ifindex, XdpMode::Native) {
                Err(AttachError::NotSupported { source, .. }) => {
                    tracing::warn!(
                        ifindex,
                        %source,
                        "native XDP not supported; using generic XDP"
                    );
                    self.link(ifindex, XdpMode::Generic)
                }
                Err(e @ AttachError::MtuTooLarge { .. }) => {
                    tracing::warn!(ifindex, "{e}: using generic XDP");
                    self.link(ifindex, XdpMode::Generic)
                }
                other => other,
            },
        }
    }

    fn link(&self, ifindex: u32, mode: XdpMode) -> Result<Attachment, AttachError> {
        let flags = match mode {
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
            _ => libbpf_sys::XDP_FLAGS_DRV_MODE,
        };
        let opts = libbpf_sys::bpf_link_create_opts {
            sz: size_of::<libbpf_sys::bpf_link_create_opts>() as _,
            flags,
            ..Default::default()
        };
        let prog_fd = self.skel.progs.xdptcp_steer.as_fd().as_raw_fd();
        // SAFETY: `prog_fd` is our loaded program; `opts` is a fully initialised options struct
        // whose `sz` tells libbpf its size. The call only reads them.
        let fd = unsafe {
            libbpf_sys::bpf_link_create(prog_fd, ifindex as i32, libbpf_sys::BPF_XDP, &opts)
        };
        if fd < 0 {
            let source = io::Error::from_raw_os_error(-fd);
            return Err(match -fd {
                libc::EBUSY | libc::EEXIST => AttachError::AlreadyAttached { ifindex, source },
                libc::EOPNOTSUPP | libc::EINVAL if mode == XdpMode::Native => {
                    AttachError::NotSupported {
                        mode,
                        ifindex,
                        source,
                    }
                }
                libc::ERANGE if mode == XdpMode::Native => {
                    AttachError::MtuTooLarge { ifindex, source }
                }
                libc::EPERM | libc::EACCES => AttachError::Permission(source),
                _ => AttachError::Other { ifindex, source },
            });
        }
        // SAFETY: bpf_link_create returned a fresh fd that nothing else owns.
        let link = unsafe { OwnedFd::from_raw_fd(fd) };
        let progs = &self.skel.progs;
        let tracepoints = match [
            &progs.count_bulk_tx,
            &progs.count_devmap_xmit,
            &progs.count_redirect_err,
            &progs.count_exception,
        ]
        .into_iter()
        .map(|p| p.attach())
        .collect::<Result<Vec<_>, _>>()
        {
            Ok(links) => links,
            Err(e) => {
                // Only a diagnostic is lost: the data path does not need them.
                tracing::warn!(error = %e, "XDP_TX drops will not be counted (no BTF-typed tracepoints)");
                Vec::new()
            }
        };
        Ok(Attachment {
            link,
            mode,
            ifindex,
            _tracepoints: tracepoints,
        })
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the skeleton is dropped exactly once, here, before the storage it borrows;
        // then the Box leaked in `load` is reclaimed exactly once.
        unsafe {
            ManuallyDrop::drop(&mut self.skel);
            drop(Box::from_raw(self.storage.as_ptr()));
        }
    }
}

fn open_and_load(
    object: &'static mut MaybeUninit<OpenObject>,
    config: &ProgramConfig,
) -> libbpf_rs::Result<XdptcpSkel<'static>> {
    let mut open = XdptcpSkelBuilder::default().open(object)?;
    if config.multi_buffer {
        // SEC("xdp") sets no flags of its own: this one is the only one.
        open.progs
            .xdptcp_steer
            .set_flags(libbpf_sys::BPF_F_XDP_HAS_FRAGS);
    }
    let ro = &mut *open.maps.rodata_data;
    let t = &config.synack;
    ro.xsk_queues = config.xsk_queues;
    ro.local_mac = config.local_mac;
    ro.watched_ifindex = config.ifindex as i32;
    // Our network namespace: ifindexes repeat in every namespace. (Unreadable: the drops of
    // every namespace's device of that ifindex count, as they did before.)
    ro.watched_netns = std::fs::metadata("/proc/self/ns/net").map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.ino() as u32
    });
    ro.tx_by_redirect = u8::from(config.tx_by_redirect);
    ro.synack_mss = t.mss;
    ro.synack_window = t.window;
    ro.synack_wscale = t.window_scale;
    ro.synack_ttl = t.ttl;
    ro.use_timestamps = u8::from(t.timestamps);
    ro.use_sack = u8::from(t.sack);
    ro.cookie_clock_offset_us = t.clock_offset_us;
    ro.cookie_epoch_us = t.epoch_us;
    ro.multi_buffer = u8::from(config.multi_buffer);
    ro.fixed_now_ns = config
        .fixed_now
        .map_or(0, |now| now.total_micros().saturating_mul(1000).max(1));
    open.load()
}

fn family_of(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => FAMILY_INET,
        IpAddr::V6(_) => FAMILY_INET6,
    }
}

fn served_key(addr: Option<IpAddr>, port: u16, family: u8) -> types::served_key {
    let mut key = types::served_key {
        family,
        pad: 0,
        port: port.to_be(),
        addr: [0; 16],
    };
    match addr {
        Some(IpAddr::V4(a)) => key.addr[..4].copy_from_slice(&a.octets()),
        Some(IpAddr::V6(a)) => key.addr.copy_from_slice(&a.octets()),
        None => {}
    }
    key
}

fn key_bytes(key: &types::served_key) -> &[u8] {
    // SAFETY: `served_key` is `repr(C)` with only integer fields and no padding
    // (1 + 1 + 2 + 16 bytes, align 2), so all of its bytes are initialised.
    unsafe {
        std::slice::from_raw_parts(
            (key as *const types::served_key).cast::<u8>(),
            size_of::<types::served_key>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp::shared_maps::{key_layout, queue_layout};
    use std::net::Ipv4Addr;

    #[test]
    fn shared_map_layouts_match_the_programs_structs() {
        assert_eq!(size_of::<types::queue_state>(), queue_layout::SIZE);
        assert_eq!(
            std::mem::offset_of!(types::queue_state, cookie_mode),
            queue_layout::COOKIE_MODE
        );
        assert_eq!(
            std::mem::offset_of!(types::queue_state, cookies),
            queue_layout::COOKIES
        );
        assert_eq!(
            std::mem::offset_of!(types::queue_state, syns_to_worker),
            queue_layout::SYNS_TO_WORKER
        );
        assert_eq!(size_of::<types::cookie_key>(), key_layout::ENTRY);
        assert_eq!(size_of::<types::cookie_keys>(), key_layout::SIZE);
        assert_eq!(std::mem::offset_of!(types::cookie_key, epoch), 0);
        assert_eq!(std::mem::offset_of!(types::cookie_key, mac_k0), 8);
        assert_eq!(std::mem::offset_of!(types::cookie_key, ts_k1), 32);
    }

    #[test]
    fn served_key_has_no_padding_and_port_in_network_order() {
        assert_eq!(size_of::<types::served_key>(), 20);
        let key = served_key(
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            80,
            FAMILY_INET,
        );
        let b = key_bytes(&key);
        assert_eq!(&b[..4], &[FAMILY_INET, 0, 0, 80]);
        assert_eq!(&b[4..8], &[10, 0, 0, 1]);
        assert!(b[8..].iter().all(|&x| x == 0));
    }
}
