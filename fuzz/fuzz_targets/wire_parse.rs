//! Wire codecs on arbitrary bytes: parsing never panics, and a parsed frame survives
//! `emit` + `parse` unchanged (up to what `emit` normalises by design).
//!
//! Each input is parsed twice: as given, and with its IPv4 header and TCP checksums filled in
//! (the fuzzer almost never guesses two checksums, so without the second pass the round trip
//! would hardly ever run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdptcp::wire::tcp::Options;
use xdptcp::wire::{IpRepr, TcpFrame, ethernet, ipv4, ipv6, tcp};

/// Fills the IPv4 header checksum and the TCP checksum of whatever `frame` looks like, as far
/// as its lengths allow; leaves the rest alone.
fn fill_checksums(frame: &mut [u8]) {
    let Ok(eth) = ethernet::Repr::parse(frame) else {
        return;
    };
    let Some(ip_buf) = frame.get_mut(eth.header_len()..) else {
        return;
    };
    let (segment, src, dst) = match eth.ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let Ok(mut p) = ipv4::Packet::new_checked(&mut *ip_buf) else {
                return;
            };
            p.fill_checksum();
            let (src, dst) = (p.src_addr().into(), p.dst_addr().into());
            let range = p.header_len()..usize::from(p.total_len());
            (&mut ip_buf[range], src, dst)
        }
        ethernet::ETHERTYPE_IPV6 => {
            let Ok(p) = ipv6::Packet::new_checked(&*ip_buf) else {
                return;
            };
            let (src, dst) = (p.src_addr().into(), p.dst_addr().into());
            let end = ipv6::Repr::HEADER_LEN + usize::from(p.payload_len());
            (&mut ip_buf[ipv6::Repr::HEADER_LEN..end], src, dst)
        }
        _ => return,
    };
    if segment.len() >= tcp::HEADER_LEN {
        tcp::Packet::new_unchecked(segment).fill_checksum(src, dst);
    }
}

/// What `emit` is documented to write for `frame`: the IP payload length of the TCP repr as
/// emitted (unknown options and padding are dropped), and only the SACK blocks that fit in
/// 40 option bytes.
fn normalised(frame: TcpFrame<'_>) -> TcpFrame<'_> {
    let mut f = frame;
    let fixed = Options {
        sack_count: 0,
        ..f.tcp.options
    }
    .buffer_len();
    let emitted_blocks = f.tcp.options.buffer_len().saturating_sub(fixed + 4) / 8;
    f.tcp.options.sack_count = emitted_blocks as u8;
    for block in &mut f.tcp.options.sack_blocks[emitted_blocks..] {
        *block = Default::default();
    }
    let payload_len = f.tcp.buffer_len();
    f.ip = match f.ip {
        IpRepr::V4(r) => IpRepr::V4(xdptcp::wire::ipv4::Repr { payload_len, ..r }),
        IpRepr::V6(r) => IpRepr::V6(xdptcp::wire::ipv6::Repr { payload_len, ..r }),
    };
    f
}

/// Parse, emit, parse again, emit again.
fn round_trip(data: &[u8]) {
    let Ok(first) = TcpFrame::parse(data) else {
        return;
    };
    // 0xa5 first, as smoltcp's emit tests do: a field `emit` forgets does not parse as zero.
    let mut buf = vec![0xa5; first.buffer_len()];
    first.emit(&mut buf);
    let second = TcpFrame::parse(&buf).expect("an emitted frame parses");
    assert_eq!(second, normalised(first));

    // A normalised frame is a fixed point: emitting it again gives the same bytes.
    let mut again = vec![0xa5; second.buffer_len()];
    second.emit(&mut again);
    assert_eq!(again, buf);
}

fuzz_target!(|data: &[u8]| {
    let _ = Options::parse(data);
    round_trip(data);
    let mut fixed = data.to_vec();
    fill_checksums(&mut fixed);
    round_trip(&fixed);
});
