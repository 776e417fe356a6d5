//! Ethernet II frames (IEEE 802.3 §3.2.6 EtherType framing) with at most one IEEE 802.1Q tag.

use super::{Error, read_u16, write_u16};

/// A 48-bit MAC address.
pub type MacAddr = [u8; 6];

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType (TPID) of an IEEE 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType (TPID) of an IEEE 802.1ad service tag (QinQ's outer tag): not parsed here (a
/// frame with one is no frame of ours; the XDP program passes it to the kernel).
pub const ETHERTYPE_QINQ: u16 = 0x88A8;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// Byte offsets of the Ethernet header and of an 802.1Q tag that may follow the source MAC.
pub(crate) mod field {
    use crate::wire::Field;

    pub(crate) const DST: Field = 0..6;
    pub(crate) const SRC: Field = 6..12;
    pub(crate) const ETHERTYPE: Field = 12..14;
    pub(crate) const PAYLOAD: usize = 14;
    /// Tag control information (PCP, DEI, VID) when `ETHERTYPE` is 802.1Q.
    pub(crate) const VLAN_TCI: Field = 14..16;
    /// The inner EtherType after an 802.1Q tag.
    pub(crate) const VLAN_ETHERTYPE: Field = 16..18;
    pub(crate) const VLAN_PAYLOAD: usize = 18;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of an Ethernet header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = field::VLAN_PAYLOAD;

/// A view of an untagged Ethernet header over a buffer (the tag, if any, is in the payload).
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; getters panic if it is shorter than 14 bytes.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer that holds at least the 14-byte header, else [`Error::Truncated`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    pub fn dst(&self) -> MacAddr {
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        mac
    }

    /// Source MAC address.
    pub fn src(&self) -> MacAddr {
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        mac
    }

    /// The outer EtherType (`ETHERTYPE_VLAN` for a tagged frame).
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    /// Sets the source MAC address.
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    /// Sets the outer EtherType.
    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    /// Everything after the 14-byte header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// An Ethernet header, with the 802.1Q tag (if any) unwrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Destination MAC address.
    pub dst: MacAddr,
    /// Source MAC address.
    pub src: MacAddr,
    /// The 802.1Q tag control information (PCP, DEI, VLAN id), if the frame is tagged.
    pub vlan: Option<u16>,
    /// The EtherType of the payload (inside the tag, if tagged).
    pub ethertype: u16,
}

impl Repr {
    /// Parses the header and at most one 802.1Q tag. Any EtherType is accepted here (a second
    /// tag shows up as an inner EtherType of `ETHERTYPE_VLAN`); whether it is ours is the
    /// caller's call.
    pub fn parse(buf: &[u8]) -> Result<Repr, Error> {
        let frame = Frame::new_checked(buf)?;
        let outer = frame.ethertype();
        let (vlan, ethertype) = if outer == ETHERTYPE_VLAN {
            if buf.len() < VLAN_HEADER_LEN {
                return Err(Error::Truncated);
            }
            (
                Some(read_u16(buf, field::VLAN_TCI)),
                read_u16(buf, field::VLAN_ETHERTYPE),
            )
        } else {
            (None, outer)
        };
        Ok(Repr {
            dst: frame.dst(),
            src: frame.src(),
            vlan,
            ethertype,
        })
    }

    /// 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header (and tag) into `buf[..self.header_len()]`.
    ///
    /// Panics if `buf` is shorter than [`Repr::header_len`].
    pub fn emit(&self, buf: &mut [u8]) {
        let mut frame = Frame::new_unchecked(&mut buf[..self.header_len()]);
        frame.set_dst(self.dst);
        frame.set_src(self.src);
        match self.vlan {
            Some(tci) => {
                frame.set_ethertype(ETHERTYPE_VLAN);
                let b = frame.into_inner();
                write_u16(b, field::VLAN_TCI, tci);
                write_u16(b, field::VLAN_ETHERTYPE, self.ethertype);
            }
            None => frame.set_ethertype(self.ethertype),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
    const SRC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

    #[test]
    fn untagged_header_emits_exact_bytes_and_round_trips() {
        let repr = Repr {
            dst: DST,
            src: SRC,
            vlan: None,
            ethertype: ETHERTYPE_IPV4,
        };
        let mut buf = [0xa5; 14];
        repr.emit(&mut buf);
        assert_eq!(
            buf,
            [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00],
            "every byte written"
        );
        assert_eq!(Repr::parse(&buf), Ok(repr));
        assert_eq!(repr.header_len(), 14);
    }

    #[test]
    fn vlan_tagged_header_emits_exact_bytes_and_round_trips() {
        let repr = Repr {
            dst: DST,
            src: SRC,
            vlan: Some(0x2064),
            ethertype: ETHERTYPE_IPV6,
        };
        let mut buf = [0xa5; 18];
        repr.emit(&mut buf);
        assert_eq!(
            buf,
            [
                2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x20, 0x64, 0x86, 0xdd
            ]
        );
        assert_eq!(Repr::parse(&buf), Ok(repr));
        assert_eq!(repr.header_len(), 18);
    }

    #[test]
    fn view_getters_and_setters_agree() {
        let mut buf = [0u8; 20];
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.set_dst(DST);
        f.set_src(SRC);
        f.set_ethertype(ETHERTYPE_ARP);
        f.payload_mut()[0] = 7;
        assert_eq!((f.dst(), f.src(), f.ethertype()), (DST, SRC, ETHERTYPE_ARP));
        assert_eq!(f.payload().len(), 6);
        assert_eq!(f.payload()[0], 7);
    }

    #[test]
    fn short_frames_are_truncated() {
        for n in 0..14 {
            assert_eq!(Repr::parse(&[0u8; 14][..n]), Err(Error::Truncated));
        }
        let mut tagged = [0u8; 17];
        tagged[12] = 0x81;
        assert_eq!(Repr::parse(&tagged), Err(Error::Truncated));
    }
}
