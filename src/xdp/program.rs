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
    /// Dropped (never returned by our program).
    pub const XDP_DROP: u32 = 1;
    /// Handed to the kernel stack.
    pub const XDP_PASS: u32 = 2;
    /// Redirected into an AF_XDP socket.
    pub const XDP_REDIRECT: u32 = 4;
}

/// Why the program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel refused the BPF object (not root, no CAP_BPF, or a kernel too old for it).
    #[error(
        "loading the XDP program failed: {0} (needs root or CAP_BPF+CAP_NET_ADMIN, and a kernel >= 5.9 with BTF)"
    )]
    Load(#[source] libbpf_rs::Error),
}

/// Why a map update or read failed.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// Writing `served` failed (full: at most 256 endpoints).
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
}

impl XdpCounters {
    /// Every counter as (name, value): the one list that reports, metrics and the stats
    /// socket render, so a counter added here shows up everywhere.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("redirected", self.redirected),
            ("passed", self.passed),
            ("malformed", self.malformed),
            ("no_socket", self.no_socket),
        ]
    }
}

impl std::fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "xdp")?;
        for (name, value) in self.fields() {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// The loaded (not yet attached) program and its maps.
pub struct Program {
    // Borrows `*storage`: declared first, dropped first (see `Drop`).
    skel: ManuallyDrop<XdptcpSkel<'static>>,
    storage: NonNull<MaybeUninit<OpenObject>>,
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
    /// Loads the program. Frames for served endpoints arriving on queues `>= xsk_queues` are
    /// passed to the kernel (counted as `no_socket`).
    pub fn load(xsk_queues: u32) -> Result<Program, LoadError> {
        let storage = NonNull::from(Box::leak(Box::new(MaybeUninit::<OpenObject>::uninit())));
        // SAFETY: `storage` comes from a leaked Box, so it is valid and unaliased until `Drop`
        // turns it back into a Box, which happens only after the skeleton borrowing it is gone.
        let object: &'static mut MaybeUninit<OpenObject> = unsafe { &mut *storage.as_ptr() };
        match open_and_load(object, xsk_queues) {
            Ok(skel) => Ok(Program {
                skel: ManuallyDrop::new(skel),
                storage,
            }),
            Err(e) => {
                // SAFETY: the failed open/load dropped every borrow of `storage`; the Box was
                // leaked above and is reclaimed exactly once.
                drop(unsafe { Box::from_raw(storage.as_ptr()) });
                Err(LoadError::Load(e))
            }
        }
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
            sum.redirected += c.redirected;
            sum.passed += c.passed;
            sum.malformed += c.malformed;
            sum.no_socket += c.no_socket;
        }
        Ok(sum)
    }

    /// Runs the program once over `frame` (`BPF_PROG_RUN`) and returns its verdict.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, MapError> {
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            ..Default::default()
        };
        let out = self
            .skel
            .progs
            .xdptcp_steer
            .test_run(input)
            .map_err(MapError::TestRun)?;
        Ok(out.return_value)
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
                libc::EPERM | libc::EACCES => AttachError::Permission(source),
                _ => AttachError::Other { ifindex, source },
            });
        }
        // SAFETY: bpf_link_create returned a fresh fd that nothing else owns.
        let link = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Attachment {
            link,
            mode,
            ifindex,
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
    xsk_queues: u32,
) -> libbpf_rs::Result<XdptcpSkel<'static>> {
    let open = XdptcpSkelBuilder::default().open(object)?;
    open.maps.rodata_data.xsk_queues = xsk_queues;
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
    use std::net::Ipv4Addr;

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
