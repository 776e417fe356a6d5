//! Wire formats: typed views over byte slices and plain `Repr` structs with parse and emit.
//!
//! Two layers, the smoltcp way: a view (`Packet<T: AsRef<[u8]>>`, `Frame<T>`) whose byte
//! offsets live in a `mod field`, checked once by `new_checked` so that every later getter is
//! in bounds; and a plain `Repr` that the engine works with, with `parse` and `emit`.
//! [`TcpFrame`] puts them together for a whole Ethernet frame carrying TCP.
//!
//! Nothing here allocates, and no input makes anything here panic: a bad frame is an [`Error`]
//! naming why it was dropped. `emit` functions expect a buffer of the size their `Repr` asks
//! for (`header_len` / `buffer_len`) and panic on a shorter one: that is a caller bug.
#![forbid(unsafe_code)]

pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod ipv6;
pub mod seq;
pub mod tcp;

pub use frame::{IpRepr, TcpFrame};
pub use seq::SeqNumber;

/// The IP protocol number (and IPv6 next header) of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// Why a frame could not be parsed; each variant is one counted drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than a header, or than a length field says.
    #[error("truncated: buffer shorter than a header or a length field says")]
    Truncated,
    /// The EtherType (after at most one 802.1Q tag) is not IPv4 or IPv6: not ours, not malformed.
    #[error("unsupported EtherType (not IPv4 or IPv6)")]
    UnsupportedEtherType,
    /// An IEEE 802.1ad service tag (EtherType 0x88A8, QinQ), outside or inside an 802.1Q
    /// tag: we take single 802.1Q tags only (the XDP program passes these to the kernel).
    #[error("IEEE 802.1ad (QinQ) service tag")]
    QinQ,
    /// The IP protocol or IPv6 next header is not TCP (this includes IPv6 extension headers).
    #[error("not TCP")]
    NotTcp,
    /// The IP version field does not match the EtherType.
    #[error("bad IP version")]
    BadVersion,
    /// IPv4 IHL < 5, TCP data offset < 5, or a header longer than the packet.
    #[error("bad header length")]
    BadHeaderLength,
    /// IPv4 total length or IPv6 payload length is inconsistent with the buffer.
    #[error("bad IP length")]
    BadLength,
    /// The IPv4 header checksum or the TCP checksum is wrong.
    #[error("bad checksum")]
    BadChecksum,
    /// An IPv4 fragment (MF set or fragment offset != 0): we do not reassemble.
    #[error("IPv4 fragment")]
    Fragment,
    /// IPv4 header with options (IHL > 5): dropped by policy.
    #[error("IPv4 options")]
    IpOptions,
    /// A TCP option with an illegal length.
    #[error("bad TCP option length")]
    BadOptionLength,
}

/// A byte range of a header field.
pub(crate) type Field = core::ops::Range<usize>;

/// Reads a big-endian `u16` at `field`; the caller has checked the buffer covers it.
#[inline]
pub(crate) fn read_u16(data: &[u8], field: Field) -> u16 {
    let b = &data[field];
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads a big-endian `u32` at `field`; the caller has checked the buffer covers it.
#[inline]
pub(crate) fn read_u32(data: &[u8], field: Field) -> u32 {
    let b = &data[field];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Writes a big-endian `u16` at `field`.
#[inline]
pub(crate) fn write_u16(data: &mut [u8], field: Field, value: u16) {
    data[field].copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian `u32` at `field`.
#[inline]
pub(crate) fn write_u32(data: &mut [u8], field: Field, value: u32) {
    data[field].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod captured;
