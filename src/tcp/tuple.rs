//! The 4-tuple that names a connection, seen from our side.

use std::net::IpAddr;

/// Local and remote address and port of one connection (our side is `local`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our address.
    pub local_addr: IpAddr,
    /// The peer's address.
    pub remote_addr: IpAddr,
    /// Our port.
    pub local_port: u16,
    /// The peer's port.
    pub remote_port: u16,
}

impl FourTuple {
    /// Feeds the tuple into a hasher-like byte sink in a fixed, family-tagged layout, so keyed
    /// hashes (ISN, SYN cookies, table hashing) agree on the bytes they cover.
    pub fn write_to(&self, out: &mut impl FnMut(&[u8])) {
        match (self.local_addr, self.remote_addr) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                out(&[4]);
                out(&l.octets());
                out(&r.octets());
            }
            (l, r) => {
                out(&[6]);
                out(&to_v6(l));
                out(&to_v6(r));
            }
        }
        out(&self.local_port.to_be_bytes());
        out(&self.remote_port.to_be_bytes());
    }
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}
