//! What the shell asks the system: privileges, interfaces, the monotonic clock, randomness.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::time::Instant;

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
        "xdptcp needs root, or the capabilities CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (missing: {0})"
    )]
    Missing(String),
}

/// Checks the effective capabilities the data path needs (root has them all).
pub fn check_privileges() -> Result<(), PrivilegeError> {
    const NEEDED: [(u32, &str); 3] = [(12, "CAP_NET_ADMIN"), (13, "CAP_NET_RAW"), (39, "CAP_BPF")];
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    // CAP_SYS_ADMIN (21) stands in for CAP_BPF on kernels before 5.8.
    let has = |bit: u32| cap_eff & (1 << bit) != 0 || (bit == 39 && cap_eff & (1 << 21) != 0);
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

/// Every IPv4 and IPv6 address of interface `name` (getifaddrs), in the kernel's order.
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
        // sockaddr of the family it names (sockaddr_in / sockaddr_in6).
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

/// The first IPv4 address of interface `name`, if it has one.
pub fn ipv4_address(name: &str) -> io::Result<Option<Ipv4Addr>> {
    Ok(interface_addresses(name)?
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }))
}

/// The kernel's neighbour-table entry (`/proc/net/arp`) for `ip` on `iface`, if complete.
pub fn neighbour_mac(ip: std::net::Ipv4Addr, iface: &str) -> Option<[u8; 6]> {
    let table = std::fs::read_to_string("/proc/net/arp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags, HW address, Mask, Device; flags 0x2 = complete.
        if f.len() < 6 || f[0] != ip.to_string() || f[5] != iface || f[2] == "0x0" {
            return None;
        }
        let mut mac = [0u8; 6];
        let mut parts = f[3].split(':');
        for b in &mut mac {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        (mac != [0; 6]).then_some(mac)
    })
}

/// The next hop's MAC for `ip`: from the neighbour table, or by having the kernel resolve it
/// (one UDP datagram to the discard port makes it ARP), waiting up to `wait`.
pub fn resolve_mac(
    ip: std::net::Ipv4Addr,
    iface: &str,
    wait: std::time::Duration,
) -> io::Result<[u8; 6]> {
    if let Some(mac) = neighbour_mac(ip, iface) {
        return Ok(mac);
    }
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let _ = sock.send_to(b"", (ip, 9));
    let until = std::time::Instant::now() + wait;
    while std::time::Instant::now() < until {
        if let Some(mac) = neighbour_mac(ip, iface) {
            return Ok(mac);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no ARP answer for {ip} on {iface} within {wait:?} (is it on this link?)"),
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

    #[test]
    fn the_monotonic_clock_does_not_go_back() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(b >= a);
    }
}
