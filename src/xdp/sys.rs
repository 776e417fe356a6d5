//! What the shell asks the system: privileges, interfaces, the monotonic clock, randomness.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::time::Instant;

/// Why an interface could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// No interface of that name in this network namespace.
    #[error("interface {0:?} not found in this network namespace (see `ip link`)")]
    NotFound(String),
    /// A sysfs attribute could not be read or parsed.
    #[error("reading {path}: {source}")]
    Sysfs {
        /// The file.
        path: String,
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
}

impl Interface {
    /// Looks `name` up in the current network namespace.
    pub fn lookup(name: &str) -> Result<Interface, InterfaceError> {
        let not_found = || InterfaceError::NotFound(name.to_string());
        let cname = CString::new(name).map_err(|_| not_found())?;
        // Safety: `cname` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(not_found());
        }
        let dir = Path::new("/sys/class/net").join(name);
        let read = |attr: &str| {
            let path = dir.join(attr);
            fs::read_to_string(&path).map_err(|source| InterfaceError::Sysfs {
                path: path.display().to_string(),
                source,
            })
        };
        let mac = parse_mac(read("address")?.trim()).ok_or_else(|| InterfaceError::Sysfs {
            path: dir.join("address").display().to_string(),
            source: io::Error::new(io::ErrorKind::InvalidData, "not a MAC address"),
        })?;
        let mtu = read("mtu")?
            .trim()
            .parse()
            .map_err(|e| InterfaceError::Sysfs {
                path: dir.join("mtu").display().to_string(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?;
        let queues_dir = dir.join("queues");
        let rx_queues = fs::read_dir(&queues_dir)
            .map_err(|source| InterfaceError::Sysfs {
                path: queues_dir.display().to_string(),
                source,
            })?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count() as u32;
        Ok(Interface {
            name: name.to_string(),
            ifindex,
            mac,
            mtu,
            rx_queues: rx_queues.max(1),
        })
    }
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
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
    // Safety: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Instant::from_micros(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000)
}

/// `N` bytes from the kernel's CSPRNG.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_parse_only_when_complete() {
        assert_eq!(
            parse_mac("02:00:0a:c9:00:01"),
            Some([2, 0, 0x0a, 0xc9, 0, 1])
        );
        assert_eq!(parse_mac("02:00:0a:c9:00"), None);
        assert_eq!(parse_mac("02:00:0a:c9:00:01:02"), None);
        assert_eq!(parse_mac("zz:00:0a:c9:00:01"), None);
    }

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
