//! What the shell asks the system: privileges, interfaces, the monotonic clock, randomness.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use crate::time::Instant;

/// Gives the allocator's free pages back to the system: glibc's `malloc_trim(0)`, which
/// releases (`MADV_DONTNEED`) every whole free page in every arena, not only the top of the
/// heap as `free` does. Takes the arenas' locks in turn and costs a system call per free run
/// of pages: for memory pressure, not for every round. A no-op on other C libraries.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Why an interface could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// No interface of that name in this network namespace.
    #[error("interface {0:?} not found in this network namespace (see `ip link`)")]
    NotFound(String),
    /// The interface's MAC address or MTU could not be read.
    #[error("reading the {what}")]
    Query {
        /// What was asked (the ioctl and the interface).
        what: String,
        /// What went wrong.
        source: io::Error,
    },
}

/// A network interface: what the shell and the engine need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub ifindex: u32,
    /// Its Ethernet address.
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
    /// Its number of receive queues (`/sys/class/net/IF/queues/rx-*`).
    pub rx_queues: u32,
    /// Its driver (`ethtool -i`), if it says: `veth`, `mlx5_core`, ...
    pub driver: Option<String>,
}

impl Interface {
    /// Looks `name` up in the current network namespace.
    pub fn lookup(name: &str) -> Result<Interface, InterfaceError> {
        let not_found = || InterfaceError::NotFound(name.to_string());
        let cname = CString::new(name).map_err(|_| not_found())?;
        // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(not_found());
        }
        let ioctl_error = |what: &str, source: io::Error| InterfaceError::Query {
            what: format!("{what} of {name}"),
            source,
        };
        // ioctls answer for the caller's network namespace even where /sys is the mount of
        // another one (a thread that entered a namespace with setns).
        let sock = IoctlSocket::new().map_err(|e| ioctl_error("socket", e))?;
        let mac = sock
            .hwaddr(name)
            .map_err(|e| ioctl_error("SIOCGIFHWADDR", e))?;
        let mtu = sock.mtu(name).map_err(|e| ioctl_error("SIOCGIFMTU", e))?;
        let rx_queues = sysfs_rx_queues(name, ifindex)
            .or_else(|| sock.rx_channels(name))
            .unwrap_or(1);
        let driver = sock.driver(name);
        Ok(Interface {
            name: name.to_string(),
            ifindex,
            mac,
            mtu,
            rx_queues: rx_queues.max(1),
            driver,
        })
    }
}

/// Counts `/sys/class/net/IF/queues/rx-*`, if that sysfs is this namespace's (same ifindex).
fn sysfs_rx_queues(name: &str, ifindex: u32) -> Option<u32> {
    let dir = Path::new("/sys/class/net").join(name);
    let sys_index: u32 = fs::read_to_string(dir.join("ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if sys_index != ifindex {
        return None;
    }
    let n = fs::read_dir(dir.join("queues"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Some(n as u32)
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETHTOOL_GDRVINFO: u32 = 0x03;

/// `struct ethtool_drvinfo` (linux/ethtool.h).
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// A datagram socket for interface ioctls.
struct IoctlSocket(std::os::fd::OwnedFd);

impl IoctlSocket {
    fn new() -> io::Result<IoctlSocket> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nothing else owns.
        Ok(IoctlSocket(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }))
    }

    fn ifreq(name: &str) -> libc::ifreq {
        // SAFETY: ifreq is plain C data; all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *d = s as libc::c_char;
        }
        req
    }

    fn ioctl(&self, request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: `req` is a valid ifreq for these SIOCGIF*/SIOCETHTOOL requests, which write
        // at most an ifreq (or, for SIOCETHTOOL, the buffer its ifru_data points to).
        if unsafe { libc::ioctl(self.0.as_raw_fd(), request, req as *mut libc::ifreq) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn hwaddr(&self, name: &str) -> io::Result<[u8; 6]> {
        let mut req = Self::ifreq(name);
        self.ioctl(libc::SIOCGIFHWADDR, &mut req)?;
        // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member of the union.
        let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok(mac)
    }

    fn mtu(&self, name: &str) -> io::Result<u32> {
        let mut req = Self::ifreq(name);
        self.ioctl(libc::SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU filled the ifru_mtu member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
    }

    fn driver(&self, name: &str) -> Option<String> {
        // SAFETY: all-zero bytes are a valid ethtool_drvinfo (integers and byte arrays).
        let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        let mut req = Self::ifreq(name);
        req.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
        self.ioctl(libc::SIOCETHTOOL, &mut req).ok()?;
        let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
        let driver = String::from_utf8_lossy(&info.driver[..end]).into_owned();
        (!driver.is_empty()).then_some(driver)
    }

    fn rx_channels(&self, name: &str) -> Option<u32> {
        let mut ch = EthtoolChannels {
            cmd: ETHTOOL_GCHANNELS,
            ..EthtoolChannels::default()
        };
        let mut req = Self::ifreq(name);
        req.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
        self.ioctl(libc::SIOCETHTOOL, &mut req).ok()?;
        Some(ch.rx_count.max(ch.combined_count))
    }
}

/// Why the process may not run the data path.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Missing capabilities.
    #[error(
        "xdptcp needs root, or the capabilities CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and CAP_PERFMON (missing: {0})"
    )]
    Missing(String),
}

/// Checks the effective capabilities setting the data path up needs (root has them all).
pub fn check_privileges() -> Result<(), PrivilegeError> {
    const NEEDED: [(u32, &str); 4] = [
        (12, "CAP_NET_ADMIN"),
        (13, "CAP_NET_RAW"),
        (39, "CAP_BPF"),
        // The program's BTF-typed tracepoints are tracing programs.
        (38, "CAP_PERFMON"),
    ];
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    // CAP_SYS_ADMIN (21) stands in for CAP_BPF and CAP_PERFMON (and is all there was before
    // Linux 5.8).
    let has = |bit: u32| cap_eff & (1 << bit) != 0 || (bit >= 38 && cap_eff & (1 << 21) != 0);
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(bit, _)| !has(*bit))
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::Missing(missing.join(", ")))
    }
}

/// Now on CLOCK_MONOTONIC, as the engine's [`Instant`].
pub fn monotonic_now() -> Instant {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Instant::from_micros(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000)
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, µs: added to the monotonic clock it gives the wall
/// clock, which hosts sharing SYN-cookie keys agree on.
pub fn wall_clock_offset_us() -> i64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on Linux.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

/// `N` bytes from the kernel's CSPRNG.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// Every address of interface `name` (getifaddrs), IPv4 and IPv6, in the kernel's order.
pub fn interface_addresses(name: &str) -> io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs;
        // ifa_name is a NUL-terminated string and ifa_addr, when non-null, points to a
        // sockaddr_in for AF_INET and a sockaddr_in6 for AF_INET6.
        unsafe {
            let ifa = &*cur;
            let ifname = std::ffi::CStr::from_ptr(ifa.ifa_name);
            if !ifa.ifa_addr.is_null() && ifname.to_bytes() == name.as_bytes() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        found.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

/// Whether the process may add and remove entries of directory `dir` now (`access(2)` with
/// `W_OK | X_OK`, as the effective user).
pub fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is NUL-terminated and outlives the call.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

/// Whether `a` is an IPv6 link-local address (fe80::/10), usable only with a scope.
pub fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// One entry of the kernel's neighbour table (ARP for IPv4, neighbour discovery for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// The interface it was learnt on.
    pub ifindex: u32,
    /// The neighbour's IP address.
    pub ip: IpAddr,
    /// Its link-layer address, once resolved.
    pub mac: Option<[u8; 6]>,
    /// Its NUD state (`NUD_*` of linux/neighbour.h).
    pub state: u16,
}

impl Neighbour {
    /// Whether its link-layer address can be used: any state but INCOMPLETE, FAILED and
    /// NONE, with an Ethernet address (as the kernel itself sends to STALE entries).
    pub fn usable(&self) -> bool {
        const USABLE: u16 =
            NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_NOARP | NUD_PERMANENT;
        self.state & USABLE != 0 && self.mac.is_some_and(|m| m != [0; 6])
    }
}

// linux/neighbour.h and linux/rtnetlink.h.
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDR: usize = 16;
/// `struct ndmsg`: family u8, pad u8, pad u16, ifindex i32, state u16, flags u8, type u8.
const NDMSG: usize = 12;

/// Parses one buffer of an rtnetlink RTM_GETNEIGH dump: the neighbours in it, and whether the
/// dump ended (NLMSG_DONE). A netlink error message comes back as that error.
pub fn parse_neighbours(buf: &[u8]) -> io::Result<(Vec<Neighbour>, bool)> {
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let truncated = || io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message");
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + NLMSG_HDR <= buf.len() {
        let len = u32_at(buf, pos) as usize;
        if len < NLMSG_HDR || pos + len > buf.len() {
            return Err(truncated());
        }
        let msg = &buf[pos..pos + len];
        pos += len.next_multiple_of(4);
        match u16_at(msg, 4) {
            NLMSG_DONE => return Ok((out, true)),
            NLMSG_ERROR => {
                let errno = msg.get(NLMSG_HDR..NLMSG_HDR + 4).ok_or_else(truncated)?;
                let errno = i32::from_ne_bytes(errno.try_into().expect("4 bytes"));
                return Err(io::Error::from_raw_os_error(-errno));
            }
            RTM_NEWNEIGH => {}
            _ => continue,
        }
        let nd = msg
            .get(NLMSG_HDR..NLMSG_HDR + NDMSG)
            .ok_or_else(truncated)?;
        let family = i32::from(nd[0]);
        let mut n = Neighbour {
            ifindex: u32_at(nd, 4),
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            mac: None,
            state: u16_at(nd, 8),
        };
        let mut dst = None;
        let mut attrs = &msg[NLMSG_HDR + NDMSG..];
        // struct rtattr: len u16, type u16, then the value, padded to 4 bytes.
        while attrs.len() >= 4 {
            let alen = usize::from(u16_at(attrs, 0));
            if alen < 4 || alen > attrs.len() {
                break;
            }
            let value = &attrs[4..alen];
            match (u16_at(attrs, 2), family, value.len()) {
                (NDA_DST, libc::AF_INET, 4) => {
                    dst = Some(IpAddr::V4(Ipv4Addr::new(
                        value[0], value[1], value[2], value[3],
                    )))
                }
                (NDA_DST, libc::AF_INET6, 16) => {
                    let v: [u8; 16] = value.try_into().expect("16 bytes");
                    dst = Some(IpAddr::V6(Ipv6Addr::from(v)));
                }
                (NDA_LLADDR, _, 6) => n.mac = Some(value.try_into().expect("6 bytes")),
                _ => {}
            }
            attrs = &attrs[alen.next_multiple_of(4).min(attrs.len())..];
        }
        if let Some(ip) = dst {
            n.ip = ip;
            out.push(n);
        }
    }
    Ok((out, false))
}

/// The kernel's neighbour table for one address family, over rtnetlink.
pub fn neighbours(ipv6: bool) -> io::Result<Vec<Neighbour>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = [0u8; NLMSG_HDR + NDMSG];
    req[0..4].copy_from_slice(&((NLMSG_HDR + NDMSG) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[NLMSG_HDR] = if ipv6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
    // SAFETY: sockaddr_nl is plain C data; all zeroes (pid 0: the kernel) is valid.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `req` and `kernel` are valid for the lengths given for the whole call.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // A dump of even a large table takes a few dozen reads; bound it anyway.
    for _ in 0..10_000 {
        // SAFETY: `buf` is valid and writable for its whole length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let (found, done) = parse_neighbours(&buf[..n as usize])?;
        all.extend(found);
        if done || n == 0 {
            return Ok(all);
        }
    }
    Err(io::Error::other("the neighbour dump did not end"))
}

/// The kernel's usable neighbour entry for `ip` on interface `ifindex`, if any.
pub fn neighbour_mac(ip: IpAddr, ifindex: u32) -> io::Result<Option<[u8; 6]>> {
    Ok(neighbours(ip.is_ipv6())?
        .into_iter()
        .find(|n| n.ifindex == ifindex && n.ip == ip && n.usable())
        .and_then(|n| n.mac))
}

/// The next hop's MAC for `ip` on `iface`: from the kernel's neighbour table, or by having the
/// kernel resolve it (one UDP datagram to the discard port makes it send an ARP request or a
/// neighbour solicitation), waiting up to `wait`.
pub fn resolve_mac(
    ip: IpAddr,
    iface: &Interface,
    wait: std::time::Duration,
) -> io::Result<[u8; 6]> {
    if let Some(mac) = neighbour_mac(ip, iface.ifindex)? {
        return Ok(mac);
    }
    let (bind, to): (SocketAddr, SocketAddr) = match ip {
        IpAddr::V4(v4) => ((Ipv4Addr::UNSPECIFIED, 0).into(), (v4, 9).into()),
        IpAddr::V6(v6) => {
            let scope = if is_link_local(ip) { iface.ifindex } else { 0 };
            (
                (Ipv6Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(std::net::SocketAddrV6::new(v6, 9, 0, scope)),
            )
        }
    };
    let sock = std::net::UdpSocket::bind(bind)?;
    let _ = sock.send_to(b"", to);
    let until = std::time::Instant::now() + wait;
    while std::time::Instant::now() < until {
        if let Some(mac) = neighbour_mac(ip, iface.ifindex)? {
            return Ok(mac);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let how = if ip.is_ipv4() {
        "ARP"
    } else {
        "neighbour discovery"
    };
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no {how} answer for {ip} on {} within {wait:?} (is it on this link?)",
            iface.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_and_nonsense_is_not() {
        let lo = Interface::lookup("lo").expect("lo exists in every namespace");
        assert_eq!(lo.ifindex, 1);
        assert!(matches!(
            Interface::lookup("no-such-if0"),
            Err(InterfaceError::NotFound(_))
        ));
    }

    /// One netlink message: header (type, flags 0, seq 1) and body, padded to 4 bytes.
    fn nlmsg(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    fn ndmsg(family: i32, ifindex: u32, state: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = vec![family as u8, 0, 0, 0];
        b.extend_from_slice(&ifindex.to_ne_bytes());
        b.extend_from_slice(&state.to_ne_bytes());
        b.extend_from_slice(&[0, 0]);
        for (kind, value) in attrs {
            let alen = 4 + value.len();
            b.extend_from_slice(&(alen as u16).to_ne_bytes());
            b.extend_from_slice(&kind.to_ne_bytes());
            b.extend_from_slice(value);
            b.resize(b.len().next_multiple_of(4), 0);
        }
        b
    }

    #[test]
    fn a_neighbour_dump_is_parsed_for_both_families_until_done() {
        let mac = [2, 0, 0, 0, 0, 9];
        let v6: Ipv6Addr = "fd00:201:77::1".parse().unwrap();
        let mut buf = nlmsg(
            RTM_NEWNEIGH,
            &ndmsg(
                libc::AF_INET,
                3,
                NUD_REACHABLE,
                &[(NDA_DST, &[10, 0, 0, 1]), (NDA_LLADDR, &mac)],
            ),
        );
        buf.extend(nlmsg(
            RTM_NEWNEIGH,
            &ndmsg(
                libc::AF_INET6,
                3,
                NUD_STALE,
                &[(NDA_DST, &v6.octets()), (NDA_LLADDR, &mac)],
            ),
        ));
        // Still being resolved: no link-layer address yet.
        buf.extend(nlmsg(
            RTM_NEWNEIGH,
            &ndmsg(libc::AF_INET, 3, 0x01, &[(NDA_DST, &[10, 0, 0, 7])]),
        ));
        let (first, done) = parse_neighbours(&buf).unwrap();
        assert!(!done);
        assert_eq!(first.len(), 3);
        assert_eq!(first[0].ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(first[1].ip, IpAddr::V6(v6));
        assert!(first[0].usable() && first[1].usable());
        assert_eq!(first[1].mac, Some(mac));
        assert!(!first[2].usable(), "INCOMPLETE has no address to use");
        buf.extend(nlmsg(NLMSG_DONE, &[0; 4]));
        assert!(parse_neighbours(&buf).unwrap().1);
    }

    #[test]
    fn a_netlink_error_and_a_truncated_message_are_errors_not_panics() {
        let err = nlmsg(NLMSG_ERROR, &(-libc::EPERM).to_ne_bytes());
        let e = parse_neighbours(&err).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let mut cut = nlmsg(RTM_NEWNEIGH, &ndmsg(libc::AF_INET, 1, NUD_REACHABLE, &[]));
        cut.truncate(cut.len() - 4);
        assert!(parse_neighbours(&cut).is_err());
        let short_body = nlmsg(RTM_NEWNEIGH, &[0; 4]);
        assert!(parse_neighbours(&short_body).is_err());
    }

    #[test]
    fn link_local_is_fe80_slash_10_only() {
        assert!(is_link_local("fe80::1".parse().unwrap()));
        assert!(is_link_local("febf::1".parse().unwrap()));
        assert!(!is_link_local("fd00::1".parse().unwrap()));
        assert!(!is_link_local("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn this_namespaces_neighbour_table_can_be_dumped() {
        // Any namespace has a (maybe empty) table; the dump must end without an error.
        neighbours(false).expect("IPv4 neighbours");
        neighbours(true).expect("IPv6 neighbours");
    }

    #[test]
    fn loopback_has_the_loopback_addresses() {
        let a = interface_addresses("lo").unwrap();
        assert!(a.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{a:?}");
    }

    #[test]
    fn the_monotonic_clock_does_not_go_back() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(b >= a);
    }
}
