//! The two maps user space shares with the XDP program through `mmap` (`BPF_F_MMAPABLE`
//! arrays), so that neither side makes a syscall to read or write them:
//!
//! - `queues`: one [`QueueFlag`] per receive queue. Its worker turns the queue's cookie mode
//!   on and off; the program counts the cookie SYN-ACKs it sent for the queue; the control
//!   thread hands the queue's SYNs to the worker while the driver drops those SYN-ACKs.
//! - `cookie_keys`: the SYN-cookie keys of the current and the next rotation epoch
//!   ([`CookieKeyTable`]), written by the control thread ahead of time.
//!
//! Every access to the shared memory is an atomic load or store of an aligned integer: the
//! program on other CPUs reads and writes the same words at any time.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::tcp::hash::Key;
use crate::xdp::key_schedule::KeySlots;

/// An `mmap` of a `BPF_F_MMAPABLE` array map; unmapped when the last handle is dropped. The
/// mapping keeps the map alive in the kernel even after its fd is closed.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access through it is atomic (see the
// module docs), so handles may be used from any thread, concurrently.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes (rounded up to pages) of the array map `fd`.
    fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let len = len.div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of a map fd we hold; the kernel checks that the map is
        // mmapable and at least `len` long, and the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mapping { ptr, len })
    }

    /// Anonymous shared memory of `len` bytes, zeroed: a stand-in for a map in tests.
    #[cfg(test)]
    fn anonymous(len: usize) -> Mapping {
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            ptr,
            libc::MAP_FAILED,
            "mmap: {}",
            io::Error::last_os_error()
        );
        Mapping {
            ptr: NonNull::new(ptr.cast()).expect("mmap gave NULL"),
            len,
        }
    }

    /// The `u32` at byte `offset`.
    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len, "offset {offset}");
        // SAFETY: in bounds and aligned (checked above; the mapping is page-aligned); the
        // memory lives as long as `self`, and is only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    /// The `u64` at byte `offset`.
    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len, "offset {offset}");
        // SAFETY: as in `u32_at`.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and nothing uses them after this.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Byte layout of `struct queue_state` (bpf/xdptcp.bpf.c), checked against the skeleton's
/// generated type in `program.rs`.
pub(crate) mod queue_layout {
    /// Size of one queue's entry.
    pub(crate) const SIZE: usize = 64;
    /// `cookie_mode` (u32).
    pub(crate) const COOKIE_MODE: usize = 0;
    /// `syns_to_worker` (u32).
    pub(crate) const SYNS_TO_WORKER: usize = 4;
    /// `cookies` (u64).
    pub(crate) const COOKIES: usize = 8;
}

/// Byte layout of `struct cookie_keys`: two `struct cookie_key { epoch, mac_k0, mac_k1, ts_k0,
/// ts_k1 }` (five u64 each), checked against the skeleton's types in `program.rs`.
pub(crate) mod key_layout {
    /// Size of one `struct cookie_key`.
    pub(crate) const ENTRY: usize = 40;
    /// Size of the whole table.
    pub(crate) const SIZE: usize = 2 * ENTRY;
}

/// The epoch value of an entry that holds no key.
const NO_EPOCH: u64 = u64::MAX;

/// One queue's entry of `queues`: its cookie-mode flag and the program's SYN-ACK count.
#[derive(Debug, Clone)]
pub struct QueueFlag {
    map: Arc<Mapping>,
    base: usize,
}

impl QueueFlag {
    /// Turns the queue's cookie mode on (the program answers its SYNs) or off.
    pub fn set_cookie_mode(&self, on: bool) {
        self.map
            .u32_at(self.base + queue_layout::COOKIE_MODE)
            .store(u32::from(on), Ordering::Relaxed);
    }

    /// Whether the queue is in cookie mode.
    pub fn cookie_mode(&self) -> bool {
        self.map
            .u32_at(self.base + queue_layout::COOKIE_MODE)
            .load(Ordering::Relaxed)
            != 0
    }

    /// Makes the program hand the queue's SYNs to the worker even in cookie mode (`on`: the
    /// driver drops its SYN-ACKs), or answer them itself again.
    pub fn set_syns_to_worker(&self, on: bool) {
        self.map
            .u32_at(self.base + queue_layout::SYNS_TO_WORKER)
            .store(u32::from(on), Ordering::Relaxed);
    }

    /// Whether the queue's SYNs go to the worker even in cookie mode.
    pub fn syns_to_worker(&self) -> bool {
        self.map
            .u32_at(self.base + queue_layout::SYNS_TO_WORKER)
            .load(Ordering::Relaxed)
            != 0
    }

    /// Cookie SYN-ACKs the program has sent for this queue so far.
    pub fn cookies(&self) -> u64 {
        self.map
            .u64_at(self.base + queue_layout::COOKIES)
            .load(Ordering::Relaxed)
    }
}

/// The `queues` map, mapped.
#[derive(Debug)]
pub(crate) struct QueueFlags {
    map: Arc<Mapping>,
    queues: u32,
}

impl QueueFlags {
    pub(crate) fn new(fd: BorrowedFd<'_>, queues: u32) -> io::Result<QueueFlags> {
        Ok(QueueFlags {
            map: Arc::new(Mapping::new(fd, queues as usize * queue_layout::SIZE)?),
            queues,
        })
    }

    /// Flags in plain memory, for tests of the worker without a BPF program.
    #[cfg(test)]
    pub(crate) fn anonymous(queues: u32) -> QueueFlags {
        QueueFlags {
            map: Arc::new(Mapping::anonymous(queues as usize * queue_layout::SIZE)),
            queues,
        }
    }

    /// The handle of `queue`, or `None` beyond the map.
    pub(crate) fn queue(&self, queue: u32) -> Option<QueueFlag> {
        (queue < self.queues).then(|| QueueFlag {
            map: Arc::clone(&self.map),
            base: queue as usize * queue_layout::SIZE,
        })
    }
}

/// The `cookie_keys` map, mapped: the keys of two epochs, each at index `epoch % 2`.
#[derive(Debug)]
pub struct CookieKeyTable {
    map: Mapping,
}

impl CookieKeyTable {
    pub(crate) fn new(fd: BorrowedFd<'_>) -> io::Result<CookieKeyTable> {
        let table = CookieKeyTable {
            map: Mapping::new(fd, key_layout::SIZE)?,
        };
        for i in 0..2 {
            table.word(i, 0).store(NO_EPOCH, Ordering::Relaxed);
        }
        Ok(table)
    }

    fn word(&self, entry: usize, word: usize) -> &AtomicU64 {
        self.map.u64_at(entry * key_layout::ENTRY + word * 8)
    }

    /// Puts the keys of `epoch` in its entry. The entry is marked empty while it is written,
    /// and the program reads an entry's epoch before and after its keys (a seqlock whose
    /// sequence is the epoch): a SYN that meets a write in progress goes on to the engine
    /// instead of getting a cookie under half a key. That takes an entry never being rewritten
    /// for the epoch it holds ([`crate::xdp::key_schedule`] sees to it).
    pub fn write(&self, epoch: u64, mac: &Key, timestamp: &Key) {
        let entry = (epoch % 2) as usize;
        self.word(entry, 0).store(NO_EPOCH, Ordering::Relaxed);
        // The mark is visible before any key word changes (smp_wmb in a seqlock writer).
        fence(Ordering::Release);
        let halves = |k: &Key| {
            let (a, b) = k.0.split_at(8);
            [
                u64::from_le_bytes(a.try_into().expect("8 bytes")),
                u64::from_le_bytes(b.try_into().expect("8 bytes")),
            ]
        };
        let [m0, m1] = halves(mac);
        let [t0, t1] = halves(timestamp);
        for (i, w) in [m0, m1, t0, t1].into_iter().enumerate() {
            self.word(entry, i + 1).store(w, Ordering::Relaxed);
        }
        self.word(entry, 0).store(epoch, Ordering::Release);
    }

    /// The epoch whose keys are at `epoch`'s entry now (`None`: empty).
    pub fn epoch_at(&self, epoch: u64) -> Option<u64> {
        let e = self.word((epoch % 2) as usize, 0).load(Ordering::Acquire);
        (e != NO_EPOCH).then_some(e)
    }
}

impl KeySlots for CookieKeyTable {
    fn epoch_at(&self, epoch: u64) -> Option<u64> {
        CookieKeyTable::epoch_at(self, epoch)
    }

    fn write(&self, epoch: u64, mac: &Key, timestamp: &Key) {
        CookieKeyTable::write(self, epoch, mac, timestamp);
    }
}
