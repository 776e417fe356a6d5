//! What the engine targets share: frames from a simulated client to the simulated server.

use std::net::{IpAddr, Ipv4Addr};

use xdptcp::sim::{CLIENT_MAC, SERVER_ADDR, SERVER_MAC};
use xdptcp::wire::{IPPROTO_TCP, ethernet, ipv4, tcp};

/// Ethernet + IPv4 around `segment` (a TCP header, options and payload), from `src` to the
/// server, checksums filled so that a fuzzer reaches the state machine instead of the
/// checksum check.
pub fn wrap(src: Ipv4Addr, segment: &[u8]) -> Vec<u8> {
    let IpAddr::V4(dst) = SERVER_ADDR else {
        unreachable!("the simulated server is IPv4")
    };
    let eth_len = ethernet::HEADER_LEN;
    let ip_len = ipv4::Repr::HEADER_LEN;
    let mut frame = vec![0; eth_len + ip_len + segment.len()];
    ethernet::Repr {
        dst: SERVER_MAC,
        src: CLIENT_MAC,
        vlan: None,
        ethertype: ethernet::ETHERTYPE_IPV4,
    }
    .emit(&mut frame[..eth_len]);
    ipv4::Repr {
        src,
        dst,
        protocol: IPPROTO_TCP,
        payload_len: segment.len(),
        ttl: 64,
    }
    .emit(&mut frame[eth_len..eth_len + ip_len]);
    let tcp_buf = &mut frame[eth_len + ip_len..];
    tcp_buf.copy_from_slice(segment);
    if tcp_buf.len() >= tcp::HEADER_LEN {
        tcp::Packet::new_unchecked(tcp_buf).fill_checksum(src.into(), dst.into());
    }
    frame
}
