//! IPv4 headers (RFC 791 §3.1). We take no options and no fragments; we send DF (RFC 1191).

use std::net::Ipv4Addr;

use super::{Error, checksum, read_u16, write_u16};

/// Byte offsets of the IPv4 header.
pub(crate) mod field {
    use crate::wire::Field;

    pub(crate) const VER_IHL: usize = 0;
    pub(crate) const DSCP_ECN: usize = 1;
    pub(crate) const LENGTH: Field = 2..4;
    pub(crate) const IDENT: Field = 4..6;
    pub(crate) const FLG_OFF: Field = 6..8;
    pub(crate) const TTL: usize = 8;
    pub(crate) const PROTOCOL: usize = 9;
    pub(crate) const CHECKSUM: Field = 10..12;
    pub(crate) const SRC_ADDR: Field = 12..16;
    pub(crate) const DST_ADDR: Field = 16..20;
}

/// The "don't fragment" flag in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
/// The "more fragments" flag.
const FLAG_MF: u16 = 0x2000;
/// The fragment offset bits (in 8-byte units).
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet over a buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; getters panic if it is shorter than the header.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking the version, the header length and the total length
    /// against the buffer. A buffer longer than the total length is fine (Ethernet padding):
    /// [`Packet::payload`] stops at the total length.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet { buffer };
        let len = packet.buffer.as_ref().len();
        if len < Repr::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = packet.header_len();
        if header_len < Repr::HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(packet.total_len());
        if total_len < header_len || total_len > len {
            return Err(Error::BadLength);
        }
        Ok(packet)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The total length field (header + payload).
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The DF flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The MF flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol of the payload (6 for TCP).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header checksum is right (over the whole header, options included).
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0
    }

    /// The payload, from the end of the header to the total length (padding cut off).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length field.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Sets the flags and fragment offset: DF, MF and the offset in bytes (a multiple of 8).
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut word = (offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            word |= FLAG_DF;
        }
        if more_frags {
            word |= FLAG_MF;
        }
        write_u16(self.buffer.as_mut(), field::FLG_OFF, word);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol of the payload.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and writes the header checksum (the other header fields must be set).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let sum = checksum::sum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(checksum::finish(sum));
    }

    /// The payload, writable, from the end of the header to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[start..end]
    }
}

/// An IPv4 header as the engine sees it: no options, not a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload (6 for TCP; anything is accepted by `parse`).
    pub protocol: u8,
    /// Payload length in bytes (total length − 20).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Repr {
    /// Length of the header we parse and emit (no options).
    pub const HEADER_LEN: usize = 20;

    /// Parses a checked packet: the header checksum must be right ([`Error::BadChecksum`]),
    /// options are dropped by policy ([`Error::IpOptions`]), and so are fragments
    /// ([`Error::Fragment`]). Any protocol is accepted.
    pub fn parse(p: &Packet<&[u8]>) -> Result<Repr, Error> {
        if !p.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if p.header_len() > Self::HEADER_LEN {
            return Err(Error::IpOptions);
        }
        if p.more_frags() || p.frag_offset() != 0 {
            return Err(Error::Fragment);
        }
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: usize::from(p.total_len()) - Self::HEADER_LEN,
            ttl: p.ttl(),
        })
    }

    /// Always [`Repr::HEADER_LEN`].
    pub fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes the 20-byte header into `buf[..20]`: TOS 0, ident 0, DF, checksum filled.
    ///
    /// Panics if `buf` is shorter than 20 bytes or `payload_len` does not fit the total length.
    pub fn emit(&self, buf: &mut [u8]) {
        let total_len = u16::try_from(Self::HEADER_LEN + self.payload_len)
            .expect("IPv4 payload_len fits in the 16-bit total length");
        let mut p = Packet::new_unchecked(&mut buf[..Self::HEADER_LEN]);
        p.set_version_and_header_len(Self::HEADER_LEN);
        p.set_dscp_ecn(0);
        p.set_total_len(total_len);
        p.set_ident(0);
        p.set_flags_and_frag_offset(true, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Repr {
        Repr {
            src: Ipv4Addr::new(10, 77, 0, 2),
            dst: Ipv4Addr::new(10, 77, 0, 1),
            protocol: 6,
            payload_len: 40,
            ttl: 64,
        }
    }

    /// The IPv4 header of the kernel's SYN-ACK in `captured.rs` (ident 0, DF, TTL 64).
    const KERNEL_HEADER: [u8; 20] = {
        let mut h = [0; 20];
        let mut i = 0;
        while i < 20 {
            h[i] = crate::wire::captured::KERNEL_SYN_ACK[14 + i];
            i += 1;
        }
        h
    };

    fn with_len(header: &[u8]) -> Vec<u8> {
        let mut v = header.to_vec();
        let total = usize::from(u16::from_be_bytes([v[2], v[3]]));
        v.resize(total.max(v.len()), 0);
        v
    }

    #[test]
    fn emit_writes_the_same_header_as_the_kernel() {
        let mut buf = [0xa5; 20];
        repr().emit(&mut buf);
        assert_eq!(buf, KERNEL_HEADER);
    }

    #[test]
    fn parse_of_emit_round_trips() {
        let mut buf = vec![0xa5; 60];
        repr().emit(&mut buf);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr()));
        assert!(p.dont_frag());
        assert_eq!(p.payload().len(), 40);
    }

    #[test]
    fn ethernet_padding_after_total_length_is_cut_from_the_payload() {
        let mut r = repr();
        r.payload_len = 6;
        let mut buf = vec![0xa5; 46];
        r.emit(&mut buf);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 6);
        assert_eq!(Repr::parse(&p).unwrap().payload_len, 6);
    }

    #[test]
    fn wrong_version_is_rejected() {
        let mut v = with_len(&KERNEL_HEADER);
        v[0] = 0x65;
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadVersion));
    }

    #[test]
    fn ihl_below_five_is_a_bad_header_length() {
        let mut v = with_len(&KERNEL_HEADER);
        v[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&v[..]).err(),
            Some(Error::BadHeaderLength)
        );
    }

    #[test]
    fn total_length_beyond_the_buffer_or_below_the_header_is_a_bad_length() {
        let mut v = with_len(&KERNEL_HEADER);
        v[3] = 0x3d;
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadLength));
        v[2] = 0;
        v[3] = 19;
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::BadLength));
    }

    #[test]
    fn header_longer_than_the_buffer_is_truncated() {
        let mut v = KERNEL_HEADER.to_vec();
        v[0] = 0x4f;
        assert_eq!(Packet::new_checked(&v[..]).err(), Some(Error::Truncated));
        assert_eq!(Packet::new_checked(&v[..19]).err(), Some(Error::Truncated));
    }

    #[test]
    fn bad_header_checksum_is_rejected() {
        let mut v = with_len(&KERNEL_HEADER);
        v[11] ^= 1;
        let p = Packet::new_checked(&v[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::BadChecksum));
    }

    #[test]
    fn header_with_options_is_rejected_as_ip_options() {
        let mut v = [0u8; 64];
        v[..20].copy_from_slice(&KERNEL_HEADER);
        v[0] = 0x46;
        v[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        let mut p = Packet::new_unchecked(&mut v[..]);
        p.set_total_len(64);
        p.fill_checksum();
        let p = Packet::new_checked(&v[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p), Err(Error::IpOptions));
    }

    #[test]
    fn fragments_are_rejected() {
        for (mf, offset) in [(true, 0), (false, 8), (true, 1480)] {
            let mut v = with_len(&KERNEL_HEADER);
            let mut p = Packet::new_unchecked(&mut v[..]);
            p.set_flags_and_frag_offset(false, mf, offset);
            p.fill_checksum();
            let p = Packet::new_checked(&v[..]).unwrap();
            assert_eq!((p.more_frags(), p.frag_offset()), (mf, offset));
            assert_eq!(Repr::parse(&p), Err(Error::Fragment));
        }
    }

    #[test]
    fn other_protocols_parse_fine() {
        let mut r = repr();
        r.protocol = 17;
        let mut buf = vec![0; 60];
        r.emit(&mut buf);
        assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), Ok(r));
    }
}
