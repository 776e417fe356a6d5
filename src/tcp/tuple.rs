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
    /// hashes (ISN, SYN cookies, table hashing) agree on the bytes they cover. The sink is
    /// called once, with the whole layout (SipHash is fastest fed in one piece).
    pub fn write_to(&self, out: &mut impl FnMut(&[u8])) {
        let mut buf = [0u8; 37];
        let len = self.pack(&mut buf);
        out(&buf[..len]);
    }

    /// Writes the layout into `buf`: family tag, local address, remote address, local port,
    /// remote port (13 bytes for IPv4, 37 for IPv6). Returns the length.
    pub fn pack(&self, buf: &mut [u8; 37]) -> usize {
        let addrs = match (self.local_addr, self.remote_addr) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                buf[0] = 4;
                buf[1..5].copy_from_slice(&l.octets());
                buf[5..9].copy_from_slice(&r.octets());
                9
            }
            (l, r) => {
                buf[0] = 6;
                buf[1..17].copy_from_slice(&to_v6(l));
                buf[17..33].copy_from_slice(&to_v6(r));
                33
            }
        };
        buf[addrs..addrs + 2].copy_from_slice(&self.local_port.to_be_bytes());
        buf[addrs + 2..addrs + 4].copy_from_slice(&self.remote_port.to_be_bytes());
        addrs + 4
    }
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_layout_is_family_tagged_and_ports_big_endian() {
        let t = FourTuple {
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            local_port: 80,
            remote_port: 0x1234,
        };
        let mut got = Vec::new();
        t.write_to(&mut |b| got.extend_from_slice(b));
        assert_eq!(got, [4, 10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0x12, 0x34]);
        let t6 = FourTuple {
            local_addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            remote_addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..t
        };
        let mut buf = [0u8; 37];
        assert_eq!(t6.pack(&mut buf), 37);
        assert_eq!(buf[0], 6);
        assert_eq!(&buf[33..], &[0, 80, 0x12, 0x34]);
    }
}
