//! IPv6 fixed headers (RFC 8200 §3). Extension headers are not followed: the engine only
//! takes a TCP header right after the fixed one.

use std::net::Ipv6Addr;

use super::{Error, read_u16, read_u32, write_u16, write_u32};

/// Byte offsets of the IPv6 fixed header.
pub(crate) mod field {
    use crate::wire::Field;

    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub(crate) const VER_TC_FLOW: Field = 0..4;
    pub(crate) const PAYLOAD_LEN: Field = 4..6;
    pub(crate) const NEXT_HEADER: usize = 6;
    pub(crate) const HOP_LIMIT: usize = 7;
    pub(crate) const SRC_ADDR: Field = 8..24;
    pub(crate) const DST_ADDR: Field = 24..40;
}

/// A view of an IPv6 packet over a buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; getters panic if it is shorter than 40 bytes.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking the version and that the payload length fits in the
    /// buffer. Trailing bytes past the payload (Ethernet padding) are allowed and cut off by
    /// [`Packet::payload`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet { buffer };
        let len = packet.buffer.as_ref().len();
        if len < Repr::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        if usize::from(packet.payload_len()) > len - Repr::HEADER_LEN {
            return Err(Error::BadLength);
        }
        Ok(packet)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// The traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// The payload length field.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// The next header (6 for TCP).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(o)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(o)
    }

    /// The payload, cut at the payload length.
    pub fn payload(&self) -> &[u8] {
        let end = Repr::HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[Repr::HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, the traffic class and the flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    /// Sets the payload length field.
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, writable, cut at the payload length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = Repr::HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[Repr::HEADER_LEN..end]
    }
}

/// An IPv6 fixed header as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The next header (6 for TCP; anything is accepted by `parse`).
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// The hop limit.
    pub hop_limit: u8,
}

impl Repr {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;

    /// Parses a checked packet (IPv6 has no header checksum; traffic class and flow label are
    /// ignored).
    pub fn parse(p: &Packet<&[u8]>) -> Result<Repr, Error> {
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        })
    }

    /// Always [`Repr::HEADER_LEN`].
    pub fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes the 40-byte header into `buf[..40]`, traffic class and flow label 0.
    ///
    /// Panics if `buf` is shorter than 40 bytes or `payload_len` exceeds 65535 (no jumbograms).
    pub fn emit(&self, buf: &mut [u8]) {
        let payload_len =
            u16::try_from(self.payload_len).expect("IPv6 payload_len fits in 16 bits");
        let mut p = Packet::new_unchecked(&mut buf[..Self::HEADER_LEN]);
        p.set_version_tc_flow(0, 0);
        p.set_payload_len(payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Repr {
        Repr {
            src: "fd00::1".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
            next_header: 6,
            payload_len: 20,
            hop_limit: 64,
        }
    }

    #[test]
    fn emit_writes_every_header_byte() {
        let mut buf = [0xa5; 40];
        repr().emit(&mut buf);
        let mut expected = [0u8; 40];
        expected[0] = 0x60;
        expected[5] = 20;
        expected[6] = 6;
        expected[7] = 64;
        expected[8] = 0xfd;
        expected[23] = 1;
        expected[24] = 0xfd;
        expected[39] = 2;
        assert_eq!(buf, expected);
    }

    #[test]
    fn parse_of_emit_round_trips_with_trailing_padding() {
        let mut buf = [0xa5; 70];
        repr().emit(&mut buf);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr()));
        assert_eq!(p.payload().len(), 20);
        assert_eq!((p.traffic_class(), p.flow_label()), (0, 0));
    }

    #[test]
    fn traffic_class_and_flow_label_are_read_back() {
        let mut buf = [0u8; 40];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_version_tc_flow(0xb8, 0xabcde);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xb8, 0xabcde)
        );
    }

    #[test]
    fn payload_length_beyond_the_buffer_is_a_bad_length() {
        let mut buf = [0u8; 59];
        repr().emit(&mut buf);
        assert_eq!(Packet::new_checked(&buf[..]).err(), Some(Error::BadLength));
    }

    #[test]
    fn wrong_version_and_short_buffers_are_rejected() {
        let mut buf = [0u8; 60];
        repr().emit(&mut buf);
        buf[0] = 0x40;
        assert_eq!(Packet::new_checked(&buf[..]).err(), Some(Error::BadVersion));
        assert_eq!(
            Packet::new_checked(&buf[..39]).err(),
            Some(Error::Truncated)
        );
    }
}
