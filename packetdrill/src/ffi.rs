//! The C side: `struct packetdrill_interface` (packetdrill's `packetdrill.h`, field for field)
//! and one `unsafe extern "C"` entry per function pointer. Every entry catches panics (none
//! may cross into C), turns C arguments into slices and addresses, calls the [`Shim`], and
//! sets `errno` on failure (packetdrill reads it right after the call).

use std::ffi::{CStr, c_char, c_int, c_long, c_longlong, c_uint, c_ulong, c_void};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use libc::{
    epoll_event, iovec, msghdr, nfds_t, pollfd, size_t, sockaddr, socklen_t, ssize_t, timeval,
    useconds_t,
};

use crate::flags::Options;
use crate::shim::{EPOCH_MICROS, Received, Shim};
use crate::stack::{EpollOp, Errno, FdSource, How, Stack, SysResult};

/// packetdrill's `struct packetdrill_interface`, in its field order. `fcntl` and `ioctl` are
/// variadic in C; on x86-64 and aarch64 a variadic call passes its first variadic word where a
/// fixed fourth argument is read, so they are declared with one `long` / pointer argument.
#[repr(C)]
#[allow(missing_docs)]
pub struct PacketdrillInterface {
    pub userdata: *mut c_void,
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
    pub socket: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int) -> c_int>,
    pub bind: Option<unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub listen: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub accept:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut sockaddr, *mut socklen_t) -> c_int>,
    pub connect:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub read: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t) -> ssize_t>,
    pub readv: Option<unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t>,
    pub recv:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, size_t, c_int) -> ssize_t>,
    pub recvfrom: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *mut c_void,
            size_t,
            c_int,
            *mut sockaddr,
            *mut socklen_t,
        ) -> ssize_t,
    >,
    pub recvmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *mut msghdr, c_int) -> ssize_t>,
    pub write: Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t) -> ssize_t>,
    pub writev: Option<unsafe extern "C" fn(*mut c_void, c_int, *const iovec, c_int) -> ssize_t>,
    pub send:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *const c_void, size_t, c_int) -> ssize_t>,
    pub sendto: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *const c_void,
            size_t,
            c_int,
            *const sockaddr,
            socklen_t,
        ) -> ssize_t,
    >,
    pub sendmsg: Option<unsafe extern "C" fn(*mut c_void, c_int, *const msghdr, c_int) -> ssize_t>,
    pub fcntl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_long) -> c_int>,
    pub ioctl: Option<unsafe extern "C" fn(*mut c_void, c_int, c_ulong, *mut c_void) -> c_int>,
    pub close: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub shutdown: Option<unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int>,
    pub getsockopt: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            c_int,
            c_int,
            *mut c_void,
            *mut socklen_t,
        ) -> c_int,
    >,
    pub setsockopt: Option<
        unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int,
    >,
    pub poll: Option<unsafe extern "C" fn(*mut c_void, *mut pollfd, nfds_t, c_int) -> c_int>,
    pub netdev_send: Option<unsafe extern "C" fn(*mut c_void, *const c_void, size_t) -> c_int>,
    pub netdev_receive: Option<
        unsafe extern "C" fn(*mut c_void, *mut c_void, *mut size_t, *mut c_longlong) -> c_int,
    >,
    pub usleep: Option<unsafe extern "C" fn(*mut c_void, useconds_t) -> c_int>,
    pub gettimeofday: Option<unsafe extern "C" fn(*mut c_void, *mut timeval, *mut c_void) -> c_int>,
    pub epoll_create: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    pub epoll_ctl:
        Option<unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *mut epoll_event) -> c_int>,
    pub epoll_wait:
        Option<unsafe extern "C" fn(*mut c_void, c_int, *mut epoll_event, c_int, c_int) -> c_int>,
    pub pipe: Option<unsafe extern "C" fn(*mut c_void, *mut c_int) -> c_int>,
    pub splice: Option<
        unsafe extern "C" fn(
            *mut c_void,
            c_int,
            *mut libc::loff_t,
            c_int,
            *mut libc::loff_t,
            size_t,
            c_uint,
        ) -> ssize_t,
    >,
}

/// packetdrill's entry point: fills `ifc` with a fresh shim configured by `flags`
/// (`--so_flags`, may be NULL). Every call builds new state: packetdrill opens the library
/// with `RTLD_NODELETE`, so nothing may survive from a previous run.
///
/// Bad flags end the process with a message (packetdrill offers no way to fail here).
///
/// # Safety
/// `flags` is NULL or a NUL-terminated string; `ifc` points to a writable interface struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn packetdrill_interface_init(
    flags: *const c_char,
    ifc: *mut PacketdrillInterface,
) {
    let filled = panic::catch_unwind(|| {
        let flags = if flags.is_null() {
            String::new()
        } else {
            // SAFETY: not NULL (checked above), and packetdrill passes `config->so_flags`, its
            // NUL-terminated `--so_flags` string, alive for the whole call.
            unsafe { CStr::from_ptr(flags) }
                .to_string_lossy()
                .into_owned()
        };
        let opts = match Options::parse(&flags) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("xdptcp shim: --so_flags={flags}: {e}");
                std::process::exit(2);
            }
        };
        // XDPTCP_SHIM_RECORD=DIR: the run's calls and packets become a fuzzer seed there.
        let record = std::env::var_os("XDPTCP_SHIM_RECORD").map(std::path::PathBuf::from);
        let shim = Box::new(Shim::recording(&opts, FdSource::Eventfd, record));
        PacketdrillInterface {
            userdata: Box::into_raw(shim).cast(),
            free: Some(pd_free),
            socket: Some(pd_socket),
            bind: Some(pd_bind),
            listen: Some(pd_listen),
            accept: Some(pd_accept),
            connect: Some(pd_connect),
            read: Some(pd_read),
            readv: Some(pd_readv),
            recv: Some(pd_recv),
            recvfrom: Some(pd_recvfrom),
            recvmsg: Some(pd_recvmsg),
            write: Some(pd_write),
            writev: Some(pd_writev),
            send: Some(pd_send),
            sendto: Some(pd_sendto),
            sendmsg: Some(pd_sendmsg),
            fcntl: Some(pd_fcntl),
            ioctl: Some(pd_ioctl),
            close: Some(pd_close),
            shutdown: Some(pd_shutdown),
            getsockopt: Some(pd_getsockopt),
            setsockopt: Some(pd_setsockopt),
            poll: Some(pd_poll),
            netdev_send: Some(pd_netdev_send),
            netdev_receive: Some(pd_netdev_receive),
            usleep: Some(pd_usleep),
            gettimeofday: Some(pd_gettimeofday),
            epoll_create: Some(pd_epoll_create),
            epoll_ctl: Some(pd_epoll_ctl),
            epoll_wait: Some(pd_epoll_wait),
            pipe: Some(pd_pipe),
            splice: Some(pd_splice),
        }
    });
    match filled {
        // SAFETY: packetdrill's `so_instance_init` passes `&instance->ifc`, its own writable,
        // aligned `struct packetdrill_interface` (calloc'd), which this struct mirrors field
        // for field; `write` stores without reading or dropping what was there.
        Ok(filled) => unsafe { ifc.write(filled) },
        Err(_) => {
            eprintln!("xdptcp shim: initialisation panicked");
            std::process::exit(2);
        }
    }
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid and aligned,
    // and only this thread touches it.
    unsafe { *libc::__errno_location() = e };
}

/// Runs an entry's body; a panic becomes `-1` with `EIO` instead of unwinding into C.
fn guard<T: From<i8>>(body: impl FnOnce() -> T) -> T {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            eprintln!("xdptcp shim: a call panicked (reported as EIO)");
            set_errno(libc::EIO);
            T::from(-1)
        }
    }
}

/// The shim behind `userdata`.
///
/// # Safety
/// `userdata` is the pointer `packetdrill_interface_init` stored, not yet freed. packetdrill
/// passes `ifc.userdata` as the first argument of every call (`run_system_call.c`,
/// `so_testing.c`, `run.c`) and hands it to `free` once, in `so_instance_free`, after its
/// last call; so every entry's `ud` satisfies this.
unsafe fn shim<'a>(userdata: *mut c_void) -> &'a Shim {
    // SAFETY: per the contract, `userdata` came from `Box::into_raw` of a `Box<Shim>` that
    // is not freed yet, so it is a valid, aligned `Shim`; only shared references are made
    // from it (the `Shim` locks its state), so threads may hold them at once.
    unsafe { &*userdata.cast::<Shim>() }
}

fn errno_of(e: Errno) -> c_int {
    if e == Errno::BLOCK { libc::EAGAIN } else { e.0 }
}

fn ret<T: TryInto<R>, R: From<i8>>(r: SysResult<T>) -> R {
    match r {
        Ok(v) => v.try_into().unwrap_or_else(|_| R::from(-1)),
        Err(e) => {
            set_errno(errno_of(e));
            R::from(-1)
        }
    }
}

/// A socket address from C.
///
/// # Safety
/// `addr` is NULL or points to `len` readable bytes.
unsafe fn read_addr(addr: *const sockaddr, len: socklen_t) -> SysResult<SocketAddr> {
    if addr.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: `addr` is not NULL (checked above) and readable for `len` bytes (the
    // contract), so its `sa_family` field is; each family's struct is read only when `len`
    // covers it, unaligned since C gives no alignment promise for a byte buffer.
    unsafe {
        match c_int::from((*addr).sa_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
                let a = addr.cast::<libc::sockaddr_in>().read_unaligned();
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
                let a = addr.cast::<libc::sockaddr_in6>().read_unaligned();
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            libc::AF_INET | libc::AF_INET6 => Err(Errno::INVAL),
            _ => Err(Errno(libc::EAFNOSUPPORT)),
        }
    }
}

/// Writes `a` to a C `(addr, *len)` pair (truncated to `*len`, `*len` set to the full size),
/// as `accept` and `recvfrom` do. Nothing happens if either pointer is NULL.
///
/// # Safety
/// `addr` is NULL or writable for `*len` bytes; `len` is NULL or valid.
unsafe fn write_addr(a: SocketAddr, addr: *mut sockaddr, len: *mut socklen_t) {
    if addr.is_null() || len.is_null() {
        return;
    }
    // SAFETY: sockaddr_storage is plain integers and bytes: all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let size = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `storage` is a local sockaddr_storage, larger than sockaddr_in and
            // aligned for any sockaddr type.
            unsafe {
                std::ptr::addr_of_mut!(storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: `storage` is a local sockaddr_storage, larger than sockaddr_in6 and
            // aligned for any sockaddr type.
            unsafe {
                std::ptr::addr_of_mut!(storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: neither pointer is NULL (checked above); `len` is valid and `addr` writable
    // for `*len` bytes (the contract); at most `*len` bytes are copied, from a local that
    // cannot overlap C's buffer; the source holds `size` initialized bytes, `n <= size`.
    unsafe {
        let n = (*len as usize).min(size);
        std::ptr::copy_nonoverlapping(
            std::ptr::addr_of!(storage).cast::<u8>(),
            addr.cast::<u8>(),
            n,
        );
        *len = size as socklen_t;
    }
}

/// The iovecs of a C array as slices.
///
/// # Safety
/// `iov` is NULL (with `n == 0`) or points to `n` iovecs, each NULL-with-zero-length or
/// valid for its length, and unaliased for the returned lifetime.
unsafe fn iovecs<'a>(iov: *const iovec, n: c_int) -> SysResult<Vec<&'a mut [u8]>> {
    let n = usize::try_from(n).map_err(|_| Errno::INVAL)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if iov.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: `iov` is not NULL (checked above) and points to `n` initialized iovecs (the
    // contract), which C does not change during the call.
    let v = unsafe { std::slice::from_raw_parts(iov, n) };
    v.iter()
        .map(|i| {
            if i.iov_len == 0 {
                Ok(&mut [][..])
            } else if i.iov_base.is_null() {
                Err(Errno(libc::EFAULT))
            } else {
                // SAFETY: a non-NULL base with a nonzero length (checked here) is valid for
                // that many bytes and unaliased for the lifetime (the contract).
                Ok(unsafe { std::slice::from_raw_parts_mut(i.iov_base.cast::<u8>(), i.iov_len) })
            }
        })
        .collect()
}

/// A C buffer as a slice (`EFAULT` for NULL with a nonzero length).
///
/// # Safety
/// `buf` is NULL or valid for reads and writes of `len` initialized bytes, unaliased for the
/// returned lifetime.
unsafe fn buffer<'a>(buf: *mut c_void, len: size_t) -> SysResult<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(Errno(libc::EFAULT));
    }
    // SAFETY: not NULL (checked above), so by the contract valid for `len` bytes, unaliased;
    // `u8` has no alignment requirement.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) })
}

/// [`buffer`] for a buffer the call only writes into (read, recv, recvfrom): packetdrill's are
/// malloc'd and not initialized (`alloc_buffer` without `set_zero`), so it is zeroed through
/// the raw pointer first and the slice covers initialized bytes.
///
/// # Safety
/// As [`buffer`], except that the bytes need not be initialized.
unsafe fn out_buffer<'a>(buf: *mut c_void, len: size_t) -> SysResult<&'a mut [u8]> {
    if len != 0 && !buf.is_null() {
        // SAFETY: not NULL, so by the contract valid for writes of `len` bytes.
        unsafe { std::ptr::write_bytes(buf.cast::<u8>(), 0, len) };
    }
    // SAFETY: the caller's contract, and every byte is initialized now.
    unsafe { buffer(buf, len) }
}

/// A blocking read into `bufs` (scattered); `dontwait` makes it non-blocking for this call.
fn read_into(
    shim: &Shim,
    fd: c_int,
    bufs: &mut [&mut [u8]],
    peek: bool,
    dontwait: bool,
) -> SysResult<usize> {
    let max: usize = bufs.iter().map(|b| b.len()).sum();
    let data = shim
        .blocking(None, |s| match s.recv(fd, max, peek) {
            Err(Errno::BLOCK) if dontwait => Err(Errno::AGAIN),
            r => r,
        })?
        .unwrap_or_default();
    let mut at = 0;
    for b in bufs.iter_mut() {
        let n = b.len().min(data.len() - at);
        b[..n].copy_from_slice(&data[at..at + n]);
        at += n;
    }
    Ok(data.len())
}

/// A blocking write of all of `data` (a non-blocking socket takes what fits).
fn write_all(shim: &Shim, fd: c_int, data: &[u8], dontwait: bool, more: bool) -> SysResult<usize> {
    let mut done = 0;
    let r = shim.blocking(None, |s: &mut Stack| {
        let nonblocking = dontwait || s.is_nonblocking(fd);
        loop {
            match s.send(fd, &data[done..], more) {
                Ok(n) => {
                    done += n;
                    if done == data.len() || nonblocking {
                        return Ok(done);
                    }
                }
                Err(Errno::BLOCK) if dontwait => {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::AGAIN)
                    };
                }
                Err(Errno::BLOCK) => return Err(Errno::BLOCK),
                Err(_) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            }
        }
    })?;
    Ok(r.unwrap_or(done))
}

fn gather(bufs: &[&mut [u8]]) -> Vec<u8> {
    bufs.iter().flat_map(|b| b.iter().copied()).collect()
}

/// A C timeout in milliseconds: negative is forever.
fn timeout(ms: c_int) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

unsafe extern "C" fn pd_free(userdata: *mut c_void) {
    guard(|| {
        if !userdata.is_null() {
            // SAFETY: the Box init made; packetdrill frees it once, after its last call. The
            // descriptors still open were closed by packetdrill already (real close()), so
            // dropping the stack closes none of them again.
            drop(unsafe { Box::from_raw(userdata.cast::<Shim>()) });
        }
        0i8
    });
}

unsafe extern "C" fn pd_socket(
    ud: *mut c_void,
    domain: c_int,
    ty: c_int,
    protocol: c_int,
) -> c_int {
    // SAFETY: `ud` is the live handle init stored ([`shim`]).
    guard(|| ret(unsafe { shim(ud) }.call(|s| s.socket_call(domain, ty, protocol))))
}

unsafe extern "C" fn pd_bind(
    ud: *mut c_void,
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    guard(|| {
        // SAFETY: packetdrill passes its sockaddr_storage holding the script's address and
        // that address's length (`run_syscall_bind`), so `addr` is readable for `len` bytes;
        // `ud` is the live handle init stored ([`shim`]).
        let r = unsafe { read_addr(addr, len) }
            .and_then(|a| unsafe { shim(ud) }.call(|s| s.bind(fd, a)));
        ret(r.map(|()| 0))
    })
}

unsafe extern "C" fn pd_listen(ud: *mut c_void, fd: c_int, backlog: c_int) -> c_int {
    guard(|| {
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        ret(unsafe { shim(ud) }
            .call(|s| s.listen(fd, backlog))
            .map(|()| 0))
    })
}

unsafe extern "C" fn pd_accept(
    ud: *mut c_void,
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    guard(|| {
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let r = unsafe { shim(ud) }.blocking(None, |s| s.accept(fd));
        ret(r.map(|a| {
            let (new, peer) = a.expect("no timeout");
            // SAFETY: packetdrill passes `&live_addr`, a sockaddr_storage, and `&live_addrlen`
            // holding its size, so `addr` is writable for `*len` bytes (or either is NULL,
            // which write_addr checks).
            unsafe { write_addr(peer, addr, len) };
            new
        }))
    })
}

unsafe extern "C" fn pd_connect(
    ud: *mut c_void,
    fd: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> c_int {
    guard(|| {
        // SAFETY: a non-NULL `addr` (checked first) is packetdrill's `&live_addr`, a whole
        // sockaddr_storage (`syscall_connect`), so its family field is readable whatever
        // `len` says.
        if !addr.is_null() && c_int::from(unsafe { (*addr).sa_family }) == libc::AF_UNSPEC {
            // SAFETY: `ud` is the live handle init stored ([`shim`]).
            return ret(unsafe { shim(ud) }.call(|s| s.disconnect(fd)).map(|_| 0));
        }
        // SAFETY: that sockaddr_storage holds the script's address and `len` its length
        // (`run_syscall_connect`), so `addr` is readable for `len` bytes.
        let r = unsafe { read_addr(addr, len) }.and_then(|a| {
            let mut first = true;
            // SAFETY: `ud` is the live handle init stored ([`shim`]).
            unsafe { shim(ud) }.blocking(None, |s| {
                if std::mem::take(&mut first) {
                    s.connect(fd, a)
                } else {
                    s.connect_status(fd)
                }
            })
        });
        ret(r.map(|_| 0))
    })
}

unsafe extern "C" fn pd_read(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
) -> ssize_t {
    guard(|| {
        // SAFETY: packetdrill passes its own buffer of `count` bytes (`alloc_buffer`), or
        // NULL, untouched by it during the call (`out_buffer` zeroes it); `ud` is the live
        // handle init stored ([`shim`]).
        let r = unsafe { out_buffer(buf, count) }
            .and_then(|b| read_into(unsafe { shim(ud) }, fd, &mut [b], false, false));
        ret(r)
    })
}

unsafe extern "C" fn pd_readv(ud: *mut c_void, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    guard(|| {
        // SAFETY: packetdrill passes its `n` iovecs (`iovec_new`, and it checks `n` against
        // their count), each base calloc'd for its length; `ud` is the live handle init
        // stored ([`shim`]).
        let r = unsafe { iovecs(iov, n) }
            .and_then(|mut v| read_into(unsafe { shim(ud) }, fd, &mut v, false, false));
        ret(r)
    })
}

unsafe extern "C" fn pd_recv(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    guard(|| {
        let (peek, dontwait) = (flags & libc::MSG_PEEK != 0, flags & libc::MSG_DONTWAIT != 0);
        // SAFETY: packetdrill passes its own buffer of `len` bytes (`alloc_buffer`), or NULL,
        // untouched by it during the call (`out_buffer` zeroes it); `ud` is the live handle
        // init stored ([`shim`]).
        let r = unsafe { out_buffer(buf, len) }
            .and_then(|b| read_into(unsafe { shim(ud) }, fd, &mut [b], peek, dontwait));
        ret(r)
    })
}

unsafe extern "C" fn pd_recvfrom(
    ud: *mut c_void,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    guard(|| {
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let shim = unsafe { shim(ud) };
        let (peek, dontwait) = (flags & libc::MSG_PEEK != 0, flags & libc::MSG_DONTWAIT != 0);
        // SAFETY: packetdrill passes its own buffer of `len` bytes (`alloc_buffer`), or NULL,
        // untouched by it during the call (`out_buffer` zeroes it).
        let r = unsafe { out_buffer(buf, len) }
            .and_then(|b| read_into(shim, fd, &mut [b], peek, dontwait));
        if r.is_ok() {
            if let Some(peer) = shim.call(|s| s.peer(fd)) {
                // SAFETY: packetdrill passes `&live_addr`, a sockaddr_storage, and
                // `&live_addrlen` holding its size (or NULLs, which write_addr checks).
                unsafe { write_addr(peer, addr, addrlen) };
            }
        }
        ret(r)
    })
}

unsafe extern "C" fn pd_recvmsg(
    ud: *mut c_void,
    fd: c_int,
    msg: *mut msghdr,
    flags: c_int,
) -> ssize_t {
    guard(|| {
        if msg.is_null() {
            return ret::<usize, ssize_t>(Err(Errno(libc::EFAULT)));
        }
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let shim = unsafe { shim(ud) };
        let (peek, dontwait) = (flags & libc::MSG_PEEK != 0, flags & libc::MSG_DONTWAIT != 0);
        // SAFETY: `msg` is not NULL (checked above): packetdrill's calloc'd msghdr
        // (`msghdr_new`), aligned and initialized, not touched by it during the call.
        let m = unsafe { &mut *msg };
        // SAFETY: its `msg_iov` holds `msg_iovlen` iovecs, each base calloc'd for its length
        // (`iovec_new`).
        let r = unsafe { iovecs(m.msg_iov, m.msg_iovlen as c_int) }
            .and_then(|mut v| read_into(shim, fd, &mut v, peek, dontwait));
        if r.is_ok() {
            if let Some(peer) = shim.call(|s| s.peer(fd)) {
                let mut len = m.msg_namelen;
                // SAFETY: packetdrill's msg_name is NULL or calloc'd for msg_namelen bytes
                // (a sockaddr_storage); `len` is a local.
                unsafe { write_addr(peer, m.msg_name.cast(), &mut len) };
                m.msg_namelen = len;
            }
            let inq = shim.call(|s| s.inq_hint(fd));
            // SAFETY: packetdrill's msg_control is NULL or calloc'd for msg_controllen bytes
            // (`cmsg_new`).
            m.msg_controllen = unsafe { put_inq(m, inq) };
            m.msg_flags = 0;
        }
        ret(r)
    })
}

/// Writes TCP_INQ's control message (`SOL_TCP`, `TCP_CM_INQ`, an `int`) into `m`'s control
/// buffer if there is one to write and room for it; returns the control length used (0 for
/// none, as for every other `recvmsg`).
///
/// # Safety
/// `m.msg_control` is NULL or writable for `m.msg_controllen` bytes.
unsafe fn put_inq(m: &mut msghdr, inq: Option<i32>) -> usize {
    let Some(inq) = inq else { return 0 };
    let len = std::mem::size_of::<c_int>() as u32;
    // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes; they touch no memory.
    let (space, cmsg_len) = unsafe { (libc::CMSG_SPACE(len), libc::CMSG_LEN(len)) };
    if m.msg_control.is_null() || m.msg_controllen < space as usize {
        return 0;
    }
    // SAFETY: the control buffer is not NULL and holds at least CMSG_SPACE(int) bytes
    // (checked above) and is writable (the contract), so CMSG_FIRSTHDR returns its start
    // (not NULL) and the header and the int at CMSG_DATA lie inside it; the int is written
    // unaligned, and the header is aligned as packetdrill's buffer is calloc'd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(m);
        (*c).cmsg_level = libc::SOL_TCP;
        (*c).cmsg_type = libc::TCP_CM_INQ;
        (*c).cmsg_len = cmsg_len as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<c_int>(), inq);
    }
    space as usize
}

unsafe extern "C" fn pd_write(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    count: size_t,
) -> ssize_t {
    guard(|| {
        // SAFETY: packetdrill passes its own calloc'd buffer of `count` bytes
        // (`alloc_buffer`), or NULL, untouched by it during the call; the slice is only read;
        // `ud` is the live handle init stored ([`shim`]).
        let r = unsafe { buffer(buf.cast_mut(), count) }
            .and_then(|b| write_all(unsafe { shim(ud) }, fd, b, false, false));
        ret(r)
    })
}

unsafe extern "C" fn pd_writev(ud: *mut c_void, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    guard(|| {
        // SAFETY: packetdrill passes its `n` iovecs (`iovec_new`, and it checks `n` against
        // their count), each base calloc'd for its length; they are only read; `ud` is the
        // live handle init stored ([`shim`]).
        let r = unsafe { iovecs(iov, n) }
            .and_then(|v| write_all(unsafe { shim(ud) }, fd, &gather(&v), false, false));
        ret(r)
    })
}

unsafe extern "C" fn pd_send(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    guard(|| {
        let (dontwait, more) = (flags & libc::MSG_DONTWAIT != 0, flags & libc::MSG_MORE != 0);
        // SAFETY: packetdrill passes its own calloc'd buffer of `len` bytes (`alloc_buffer`),
        // or NULL, untouched by it during the call; the slice is only read; `ud` is the live
        // handle init stored ([`shim`]).
        let r = unsafe { buffer(buf.cast_mut(), len) }
            .and_then(|b| write_all(unsafe { shim(ud) }, fd, b, dontwait, more));
        ret(r)
    })
}

unsafe extern "C" fn pd_sendto(
    ud: *mut c_void,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    _addr: *const sockaddr,
    _addrlen: socklen_t,
) -> ssize_t {
    // On a connected TCP socket the address is ignored, as Linux does.
    // SAFETY: packetdrill passes sendto the same `ud` and buffer as send (`syscall_sendto`
    // builds them the same way), so pd_send's contract holds.
    unsafe { pd_send(ud, fd, buf, len, flags) }
}

unsafe extern "C" fn pd_sendmsg(
    ud: *mut c_void,
    fd: c_int,
    msg: *const msghdr,
    flags: c_int,
) -> ssize_t {
    guard(|| {
        if msg.is_null() {
            return ret::<usize, ssize_t>(Err(Errno(libc::EFAULT)));
        }
        let (dontwait, more) = (flags & libc::MSG_DONTWAIT != 0, flags & libc::MSG_MORE != 0);
        // SAFETY: `msg` is not NULL (checked above): packetdrill's calloc'd msghdr
        // (`msghdr_new`), aligned and initialized.
        let m = unsafe { &*msg };
        // SAFETY: its `msg_iov` holds `msg_iovlen` iovecs, each base calloc'd for its length
        // (`iovec_new`); they are only read; `ud` is the live handle init stored ([`shim`]).
        let r = unsafe { iovecs(m.msg_iov, m.msg_iovlen as c_int) }
            .and_then(|v| write_all(unsafe { shim(ud) }, fd, &gather(&v), dontwait, more));
        ret(r)
    })
}

unsafe extern "C" fn pd_fcntl(ud: *mut c_void, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    guard(|| {
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let shim = unsafe { shim(ud) };
        let r = match cmd {
            libc::F_GETFL => shim.call(|s| s.get_flags(fd)),
            libc::F_SETFL => shim
                .call(|s| s.set_nonblocking(fd, arg & c_long::from(libc::O_NONBLOCK) != 0))
                .map(|()| 0),
            libc::F_GETFD | libc::F_SETFD => shim.call(|s| s.get_flags(fd)).map(|_| 0),
            _ => Err(Errno::INVAL),
        };
        ret(r)
    })
}

unsafe extern "C" fn pd_ioctl(
    ud: *mut c_void,
    fd: c_int,
    request: c_ulong,
    arg: *mut c_void,
) -> c_int {
    guard(|| {
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let shim = unsafe { shim(ud) };
        if arg.is_null() {
            return ret::<i32, c_int>(Err(Errno(libc::EFAULT)));
        }
        let out = arg.cast::<c_int>();
        let r = match request {
            libc::FIONREAD => shim.call(|s| s.inq(fd)),
            libc::TIOCOUTQ => shim.call(|s| s.outq(fd)),
            libc::FIONBIO => {
                // SAFETY: `arg` is not NULL (checked above); packetdrill sends FIONBIO, like
                // FIONREAD and TIOCOUTQ, with three arguments, the third `&live_optval`, an
                // int (`syscall_ioctl`); read unaligned, needing no alignment.
                let on = unsafe { out.read_unaligned() } != 0;
                return ret(shim.call(|s| s.set_nonblocking(fd, on)).map(|()| 0));
            }
            _ => Err(Errno(libc::ENOTTY)),
        };
        ret(r.map(|n| {
            // SAFETY: as for FIONBIO: `arg` is packetdrill's `&live_optval`, a writable int.
            unsafe { out.write_unaligned(n.min(c_int::MAX as usize) as c_int) };
            0
        }))
    })
}

unsafe extern "C" fn pd_close(ud: *mut c_void, fd: c_int) -> c_int {
    // SAFETY: `ud` is the live handle init stored ([`shim`]).
    guard(|| ret(unsafe { shim(ud) }.call(|s| s.close(fd)).map(|()| 0)))
}

unsafe extern "C" fn pd_shutdown(ud: *mut c_void, fd: c_int, how: c_int) -> c_int {
    guard(|| {
        let how = match how {
            libc::SHUT_RD => How::Read,
            libc::SHUT_WR => How::Write,
            libc::SHUT_RDWR => How::Both,
            _ => return ret::<i32, c_int>(Err(Errno::INVAL)),
        };
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        ret(unsafe { shim(ud) }
            .call(|s| s.shutdown(fd, how))
            .map(|()| 0))
    })
}

unsafe extern "C" fn pd_getsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    guard(|| {
        if value.is_null() || len.is_null() {
            return ret::<i32, c_int>(Err(Errno(libc::EFAULT)));
        }
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let r = unsafe { shim(ud) }.call(|s| s.getsockopt(fd, level, name));
        ret(r.map(|bytes| {
            // SAFETY: neither is NULL (checked above): packetdrill passes `live_optval`,
            // calloc'd for `live_optlen + 1` bytes, and `&live_optlen`; at most `*len` bytes
            // are copied, from our own vector, which cannot overlap C's buffer.
            unsafe {
                let n = (*len as usize).min(bytes.len());
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.cast::<u8>(), n);
                *len = n as socklen_t;
            }
            0
        }))
    })
}

unsafe extern "C" fn pd_setsockopt(
    ud: *mut c_void,
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    guard(|| {
        // SAFETY: packetdrill passes the script's option value and its length, the pair it
        // would give the real setsockopt (`syscall_setsockopt`): an initialized value (an
        // int, a struct, or a string) of `len` bytes, or NULL; it is only read; `ud` is the
        // live handle init stored ([`shim`]).
        let r = unsafe { buffer(value.cast_mut(), len as usize) }
            .and_then(|v| unsafe { shim(ud) }.call(|s| s.setsockopt(fd, level, name, v)));
        ret(r.map(|()| 0))
    })
}

unsafe extern "C" fn pd_poll(ud: *mut c_void, fds: *mut pollfd, n: nfds_t, ms: c_int) -> c_int {
    guard(|| {
        let fds: &mut [pollfd] = if n == 0 {
            &mut []
        } else if fds.is_null() {
            return ret::<i32, c_int>(Err(Errno(libc::EFAULT)));
        } else {
            // SAFETY: not NULL (checked above): packetdrill passes its array of `n` pollfds
            // (`pollfds_new`, and it checks `n` against their count), aligned and
            // initialized, untouched by it during the call.
            unsafe { std::slice::from_raw_parts_mut(fds, n as usize) }
        };
        let want: Vec<(c_int, i16)> = fds.iter().map(|p| (p.fd, p.events)).collect();
        let always = (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as u32;
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let r = unsafe { shim(ud) }.blocking(timeout(ms), |s| {
            let revents: Vec<i16> = want
                .iter()
                .map(|&(fd, ev)| {
                    if fd < 0 {
                        0
                    } else {
                        (s.poll_mask(fd) & (ev as u16 as u32 | always)) as i16
                    }
                })
                .collect();
            if revents.iter().any(|r| *r != 0) {
                Ok(revents)
            } else {
                Err(Errno::BLOCK)
            }
        });
        ret(r.map(|revents| {
            let revents = revents.unwrap_or_else(|| vec![0; fds.len()]);
            for (p, r) in fds.iter_mut().zip(&revents) {
                p.revents = *r;
            }
            revents.iter().filter(|r| **r != 0).count() as c_int
        }))
    })
}

unsafe extern "C" fn pd_netdev_send(ud: *mut c_void, buf: *const c_void, count: size_t) -> c_int {
    guard(|| {
        // SAFETY: packetdrill passes the packet it built, `packet_start(packet)` and its
        // `ip_bytes` (`so_netdev_send`), initialized and only read here; `ud` is the live
        // handle init stored ([`shim`]).
        let r = unsafe { buffer(buf.cast_mut(), count) }
            .and_then(|p| unsafe { shim(ud) }.call(|s| s.netdev_send(p)));
        ret(r.map(|()| 0))
    })
}

unsafe extern "C" fn pd_netdev_receive(
    ud: *mut c_void,
    buf: *mut c_void,
    count: *mut size_t,
    time_usecs: *mut c_longlong,
) -> c_int {
    guard(|| {
        if count.is_null() || time_usecs.is_null() {
            return -1;
        }
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        match unsafe { shim(ud) }.netdev_receive() {
            Received::Packet(p, at) => {
                // SAFETY: `count` and `time_usecs` are not NULL (checked above):
                // packetdrill's `&in_bytes` and `&packet->time_usecs`, with `buf` its packet
                // buffer of `in_bytes` bytes (`so_netdev_receive`); at most `*count` bytes
                // are copied, from our own vector, which cannot overlap it.
                unsafe {
                    let n = (*count).min(p.len());
                    std::ptr::copy_nonoverlapping(p.as_ptr(), buf.cast::<u8>(), n);
                    *count = n;
                    *time_usecs = EPOCH_MICROS + at.total_micros() as i64;
                }
                0
            }
            // packetdrill asks again at once.
            Received::Busy => -1,
            Received::Nothing => {
                eprintln!(
                    "xdptcp shim: the engine sent nothing and has no timer left: \
                     the packet the script expects never comes"
                );
                // SAFETY: `count` is not NULL (checked above): packetdrill's `&in_bytes`.
                unsafe { *count = 0 };
                0
            }
        }
    })
}

unsafe extern "C" fn pd_usleep(ud: *mut c_void, usec: useconds_t) -> c_int {
    guard(|| {
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        unsafe { shim(ud) }.usleep(u64::from(usec));
        0
    })
}

unsafe extern "C" fn pd_gettimeofday(ud: *mut c_void, tv: *mut timeval, _tz: *mut c_void) -> c_int {
    guard(|| {
        if tv.is_null() {
            return ret::<i32, c_int>(Err(Errno(libc::EFAULT)));
        }
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let us = unsafe { shim(ud) }.gettimeofday();
        // SAFETY: `tv` is not NULL (checked above): packetdrill passes `&tv`, a local
        // timeval (`now_usecs`).
        unsafe {
            (*tv).tv_sec = us / 1_000_000;
            (*tv).tv_usec = us % 1_000_000;
        }
        0
    })
}

unsafe extern "C" fn pd_epoll_create(ud: *mut c_void, size: c_int) -> c_int {
    guard(|| {
        if size <= 0 {
            return ret::<i32, c_int>(Err(Errno::INVAL));
        }
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        ret(unsafe { shim(ud) }.call(|s| s.epoll_create()))
    })
}

unsafe extern "C" fn pd_epoll_ctl(
    ud: *mut c_void,
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut epoll_event,
) -> c_int {
    guard(|| {
        let op = match op {
            libc::EPOLL_CTL_ADD => EpollOp::Add,
            libc::EPOLL_CTL_MOD => EpollOp::Modify,
            libc::EPOLL_CTL_DEL => EpollOp::Delete,
            _ => return ret::<i32, c_int>(Err(Errno::INVAL)),
        };
        let (events, data) = if event.is_null() {
            if op != EpollOp::Delete {
                return ret::<i32, c_int>(Err(Errno(libc::EFAULT)));
            }
            (0, 0)
        } else {
            // SAFETY: not NULL (checked above): packetdrill passes `&event`, its local
            // epoll_event (`syscall_epoll_ctl`), initialized; read unaligned, as the struct
            // is packed on x86-64.
            let e = unsafe { event.read_unaligned() };
            (e.events, e.u64)
        };
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        ret(unsafe { shim(ud) }
            .call(|s| s.epoll_ctl(epfd, op, fd, events, data))
            .map(|()| 0))
    })
}

unsafe extern "C" fn pd_epoll_wait(
    ud: *mut c_void,
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    ms: c_int,
) -> c_int {
    guard(|| {
        let Ok(max) = usize::try_from(max) else {
            return ret::<i32, c_int>(Err(Errno::INVAL));
        };
        if max == 0 {
            return ret::<i32, c_int>(Err(Errno::INVAL));
        }
        if events.is_null() {
            return ret::<i32, c_int>(Err(Errno(libc::EFAULT)));
        }
        // SAFETY: `ud` is the live handle init stored ([`shim`]).
        let r = unsafe { shim(ud) }.blocking(timeout(ms), |s| {
            let ready = s.epoll_ready(epfd, max)?;
            if ready.is_empty() {
                Err(Errno::BLOCK)
            } else {
                Ok(ready)
            }
        });
        ret(r.map(|ready| {
            let ready = ready.unwrap_or_default();
            for (i, (ev, data)) in ready.iter().enumerate() {
                // SAFETY: `events` is not NULL (checked above): packetdrill's array calloc'd
                // for `maxevents` entries (`syscall_epoll_wait`); epoll_ready returns at most
                // `max` events, so `i < max` and the entry is inside it; written unaligned.
                unsafe {
                    events.add(i).write_unaligned(epoll_event {
                        events: *ev,
                        u64: *data,
                    });
                }
            }
            ready.len() as c_int
        }))
    })
}

unsafe extern "C" fn pd_pipe(_ud: *mut c_void, _fds: *mut c_int) -> c_int {
    guard(|| ret::<i32, c_int>(Err(Errno::NOSYS)))
}

unsafe extern "C" fn pd_splice(
    _ud: *mut c_void,
    _fd_in: c_int,
    _off_in: *mut libc::loff_t,
    _fd_out: c_int,
    _off_out: *mut libc::loff_t,
    _len: size_t,
    _flags: c_uint,
) -> ssize_t {
    guard(|| ret::<i32, ssize_t>(Err(Errno::NOSYS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_minus_one_with_eio() {
        set_errno(0);
        let r: c_int = guard(|| panic!("test panic"));
        assert_eq!(r, -1);
        // SAFETY: __errno_location returns this thread's errno slot, valid and aligned.
        assert_eq!(unsafe { *libc::__errno_location() }, libc::EIO);
    }
}
