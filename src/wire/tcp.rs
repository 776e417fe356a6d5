//! TCP headers and options.
//!
//! Read first: RFC 9293 §3.1 (header format) and §3.2 (options: "a TCP implementation MUST be
//! able to receive a TCP Option in any segment", and must handle an illegal option length
//! without crashing), RFC 7323 §2–3 (window scale, timestamps), RFC 2018 (SACK),
//! RFC 1071 / RFC 9293 §3.1 (checksum and pseudo header).

use core::fmt;
use core::ops::{BitOr, BitOrAssign};
use std::net::IpAddr;

use super::{Error, IPPROTO_TCP, checksum, read_u16, read_u32, write_u16, write_u32};
use crate::wire::SeqNumber;

/// Byte offsets of the TCP header.
pub(crate) mod field {
    use crate::wire::Field;

    pub(crate) const SRC_PORT: Field = 0..2;
    pub(crate) const DST_PORT: Field = 2..4;
    pub(crate) const SEQ_NUM: Field = 4..8;
    pub(crate) const ACK_NUM: Field = 8..12;
    /// Data offset in the high nibble; the low nibble is reserved (+ the old NS bit).
    pub(crate) const DATA_OFFSET: usize = 12;
    pub(crate) const FLAGS: usize = 13;
    pub(crate) const WIN_SIZE: Field = 14..16;
    pub(crate) const CHECKSUM: Field = 16..18;
    pub(crate) const URGENT: Field = 18..20;
    pub(crate) const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// The largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// The largest options area.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

/// The largest window scale shift (RFC 7323 §2.3); larger received values are clamped to it.
pub const MAX_WINDOW_SCALE: u8 = 14;

/// The MSS to assume for an IPv4 peer that sent no MSS option (RFC 9293 §3.7.1: "536").
pub const DEFAULT_MSS_IPV4: u16 = 536;

/// The MSS to assume for an IPv6 peer that sent no MSS option: the minimum link MTU of 1280
/// (RFC 8200 §5) less the IPv6 and TCP headers (RFC 8200 §8.3: 1280 - 60).
pub const DEFAULT_MSS_IPV6: u16 = 1220;

/// Bytes the timestamp option takes in a segment as we and Linux lay it out (NOP, NOP, kind,
/// length, TSval, TSecr: RFC 7323 Appendix A).
pub const TIMESTAMP_OPTION_LEN: usize = 12;

/// SACK blocks that fit in the options area (RFC 2018 §3): four alone, three beside the
/// timestamp option.
pub const MAX_SACK_BLOCKS: usize = 4;

/// SACK blocks that fit beside the timestamp option.
pub const MAX_SACK_BLOCKS_WITH_TIMESTAMPS: usize = 3;

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub(super) const EOL: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const MSS: u8 = 2;
    pub(super) const WINDOW_SCALE: u8 = 3;
    pub(super) const SACK_PERMITTED: u8 = 4;
    pub(super) const SACK: u8 = 5;
    pub(super) const TIMESTAMP: u8 = 8;
    /// TCP Fast Open cookie (RFC 7413 §4.1.1).
    pub(super) const FAST_OPEN: u8 = 34;
    /// RFC 6994 shared experimental option; Fast Open's before kind 34 was assigned, told
    /// apart by [`FAST_OPEN_MAGIC`].
    pub(super) const EXPERIMENTAL: u8 = 254;
    /// The experiment identifier of Fast Open under [`EXPERIMENTAL`] (Linux
    /// `TCPOPT_FASTOPEN_MAGIC`).
    pub(super) const FAST_OPEN_MAGIC: u16 = 0xf989;
}

/// The TCP Fast Open cookie option (RFC 7413 §4.1.1): a cookie of 4 to 16 bytes (even), or
/// none, which asks for one. Clients still send it as the experimental option (kind 254,
/// magic 0xF989, RFC 6994) that it was before kind 34 was assigned; a server answers in the
/// kind the client used (as Linux does: `foc->exp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FastOpenOption {
    /// Sent (or to be sent) as the experimental kind 254 with magic 0xF989, not kind 34.
    pub experimental: bool,
    len: u8,
    bytes: [u8; FastOpenOption::MAX_COOKIE],
}

impl FastOpenOption {
    /// The shortest cookie (RFC 7413 §4.1.1: "The cookie MUST be at least 4 bytes").
    pub const MIN_COOKIE: usize = 4;
    /// The longest cookie (RFC 7413 §4.1.1: at most 16 bytes).
    pub const MAX_COOKIE: usize = 16;

    /// The empty option: a cookie request (RFC 7413 §4.1.2).
    pub fn request(experimental: bool) -> FastOpenOption {
        FastOpenOption {
            experimental,
            ..FastOpenOption::default()
        }
    }

    /// An option carrying `cookie`: `None` unless its length is even and 4 to 16 bytes.
    pub fn with_cookie(cookie: &[u8], experimental: bool) -> Option<FastOpenOption> {
        let n = cookie.len();
        if !(Self::MIN_COOKIE..=Self::MAX_COOKIE).contains(&n) || n % 2 != 0 {
            return None;
        }
        let mut bytes = [0; Self::MAX_COOKIE];
        bytes[..n].copy_from_slice(cookie);
        Some(FastOpenOption {
            experimental,
            len: n as u8,
            bytes,
        })
    }

    /// The cookie (empty for a request).
    pub fn cookie(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether this asks for a cookie rather than carrying one.
    pub fn is_request(&self) -> bool {
        self.len == 0
    }

    /// The option's own length byte: kind and length (and the magic) plus the cookie.
    fn option_len(&self) -> usize {
        usize::from(self.len) + if self.experimental { 4 } else { 2 }
    }

    /// Bytes it takes in the options area, padded with NOPs to a multiple of 4.
    fn padded_len(&self) -> usize {
        self.option_len().next_multiple_of(4)
    }

    /// Reads the body of a kind-34 option, or of a kind-254 one after its magic. Linux's
    /// `tcp_parse_fastopen_option`: a length that is odd, or between 1 and 3, or above 16
    /// makes the option count as absent (it is not an error: the segment is processed
    /// without it).
    fn parse(cookie: &[u8], experimental: bool) -> Option<FastOpenOption> {
        if cookie.is_empty() {
            Some(Self::request(experimental))
        } else {
            Self::with_cookie(cookie, experimental)
        }
    }
}

/// The TCP control bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push function.
    pub const PSH: Flags = Flags(0x08);
    /// The acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// The urgent pointer field is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN-Echo.
    pub const ECE: Flags = Flags(0x40);
    /// Congestion window reduced.
    pub const CWR: Flags = Flags(0x80);
    /// No flag set.
    pub const NONE: Flags = Flags(0);

    /// Whether every flag of `other` is set in `self`.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set in `self`.
    pub fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        if self.0 == 0 {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A view of a TCP segment (header, options, payload) over a buffer that ends where the IP
/// payload ends.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; getters panic if it is shorter than the header.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking that it holds the 20-byte header ([`Error::Truncated`])
    /// and that the data offset is at least 5 and within the buffer
    /// ([`Error::BadHeaderLength`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet { buffer };
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = packet.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::BadHeaderLength);
        }
        Ok(packet)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.buffer.as_ref(), field::SEQ_NUM))
    }

    /// Acknowledgment number (meaningful only with ACK).
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.buffer.as_ref(), field::ACK_NUM))
    }

    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The control bits.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// The window field (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options area (between the fixed header and the payload).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The payload (after the options, to the end of the buffer).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over pseudo header, header and payload is right.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let sum = checksum::pseudo_header(src, dst, IPPROTO_TCP, len) + checksum::sum(data);
        checksum::finish(sum) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, seq: SeqNumber) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, seq.0);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, ack: SeqNumber) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, ack.0);
    }

    /// Sets the header length in bytes (a multiple of 4); clears the reserved bits.
    pub fn set_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((header_len / 4) as u8 & 0x0f) << 4;
    }

    /// Sets the control bits.
    pub fn set_flags(&mut self, flags: Flags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, window: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, window);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, urgent: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, urgent);
    }

    /// The options area, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and writes the checksum over pseudo header, header and the whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).expect("a TCP segment is shorter than 4 GiB");
        let sum = checksum::pseudo_header(src, dst, IPPROTO_TCP, len) + checksum::sum(data);
        self.set_checksum(checksum::finish(sum));
    }
}

/// The TCP options the engine uses; others are skipped on parse and never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Maximum segment size (RFC 9293 §3.7.1), SYN only.
    pub mss: Option<u16>,
    /// Window scale shift (RFC 7323 §2), SYN only; at most 14 after parsing.
    pub window_scale: Option<u8>,
    /// SACK-permitted (RFC 2018 §2), SYN only.
    pub sack_permitted: bool,
    /// SACK blocks (left edge, right edge) (RFC 2018 §3); the first `sack_count` are valid.
    pub sack_blocks: [(SeqNumber, SeqNumber); MAX_SACK_BLOCKS],
    /// How many of `sack_blocks` are valid (0..=4).
    pub sack_count: u8,
    /// Timestamps (TSval, TSecr) (RFC 7323 §3).
    pub timestamp: Option<(u32, u32)>,
    /// The TCP Fast Open cookie option (RFC 7413 §4.1.1), SYN and SYN-ACK only.
    pub fast_open: Option<FastOpenOption>,
}

impl Options {
    /// Parses an options area.
    ///
    /// EOL ends it; NOP is skipped; every other kind needs a length byte >= 2 that fits the
    /// remaining bytes. Known kinds must have their exact length (MSS 4, WS 3, SACK-permitted
    /// 2, SACK 2 + 8n with n in 1..=4, TS 10). Anything else is [`Error::BadOptionLength`].
    /// Unknown kinds are skipped, and so is a Fast Open option whose cookie length is not one
    /// RFC 7413 allows (see [`FastOpenOption`]), as Linux skips it. A window scale above 14 is clamped to 14 (RFC 7323 §2.3:
    /// "If a Window Scale option is received with a shift.cnt value larger than 14, the TCP
    /// SHOULD log the error but MUST use 14 instead of the specified value").
    pub fn parse(bytes: &[u8]) -> Result<Options, Error> {
        // Fast paths for the two layouts Linux sends on the hot path; they give exactly what
        // the general loop below would.
        match *bytes {
            // Data segment / ACK: NOP NOP TS.
            [1, 1, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3] => {
                return Ok(Options {
                    timestamp: Some((
                        u32::from_be_bytes([v0, v1, v2, v3]),
                        u32::from_be_bytes([e0, e1, e2, e3]),
                    )),
                    ..Options::default()
                });
            }
            // SYN: MSS, SACK-permitted, TS, NOP, WS.
            [
                2,
                4,
                m0,
                m1,
                4,
                2,
                8,
                10,
                v0,
                v1,
                v2,
                v3,
                e0,
                e1,
                e2,
                e3,
                1,
                3,
                3,
                shift,
            ] => {
                return Ok(Options {
                    mss: Some(u16::from_be_bytes([m0, m1])),
                    window_scale: Some(shift.min(MAX_WINDOW_SCALE)),
                    sack_permitted: true,
                    timestamp: Some((
                        u32::from_be_bytes([v0, v1, v2, v3]),
                        u32::from_be_bytes([e0, e1, e2, e3]),
                    )),
                    ..Options::default()
                });
            }
            _ => {}
        }
        Self::parse_general(bytes)
    }

    /// The option-by-option parser behind [`Options::parse`].
    fn parse_general(bytes: &[u8]) -> Result<Options, Error> {
        let mut opts = Options::default();
        let mut rest = bytes;
        while let Some((&kind, after_kind)) = rest.split_first() {
            match kind {
                kind::EOL => break,
                kind::NOP => {
                    rest = after_kind;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*after_kind.first().ok_or(Error::BadOptionLength)?);
            if len < 2 || len > rest.len() {
                return Err(Error::BadOptionLength);
            }
            let body = &rest[2..len];
            match (kind, body) {
                (kind::MSS, &[a, b]) => opts.mss = Some(u16::from_be_bytes([a, b])),
                (kind::WINDOW_SCALE, &[shift]) => {
                    opts.window_scale = Some(shift.min(MAX_WINDOW_SCALE));
                }
                (kind::SACK_PERMITTED, &[]) => opts.sack_permitted = true,
                (kind::SACK, body)
                    if !body.is_empty() && body.len() <= 32 && body.len() % 8 == 0 =>
                {
                    opts.sack_blocks = Default::default();
                    opts.sack_count = 0;
                    for (slot, block) in opts.sack_blocks.iter_mut().zip(body.chunks_exact(8)) {
                        *slot = (
                            SeqNumber(read_u32(block, 0..4)),
                            SeqNumber(read_u32(block, 4..8)),
                        );
                        opts.sack_count += 1;
                    }
                }
                (kind::TIMESTAMP, &[a, b, c, d, e, f, g, h]) => {
                    opts.timestamp = Some((
                        u32::from_be_bytes([a, b, c, d]),
                        u32::from_be_bytes([e, f, g, h]),
                    ));
                }
                (kind::FAST_OPEN, cookie) => {
                    if let Some(fo) = FastOpenOption::parse(cookie, false) {
                        opts.fast_open = Some(fo);
                    }
                }
                (kind::EXPERIMENTAL, [m0, m1, cookie @ ..])
                    if u16::from_be_bytes([*m0, *m1]) == kind::FAST_OPEN_MAGIC =>
                {
                    if let Some(fo) = FastOpenOption::parse(cookie, true) {
                        opts.fast_open = Some(fo);
                    }
                }
                (
                    kind::MSS
                    | kind::WINDOW_SCALE
                    | kind::SACK_PERMITTED
                    | kind::SACK
                    | kind::TIMESTAMP,
                    _,
                ) => return Err(Error::BadOptionLength),
                _ => {} // Unknown kind: skipped by its length.
            }
            rest = &rest[len..];
        }
        Ok(opts)
    }

    /// Bytes taken by everything but the SACK blocks.
    fn fixed_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        len += match (self.sack_permitted, self.timestamp.is_some()) {
            (_, true) => 12,
            (true, false) => 4,
            (false, false) => 0,
        };
        if self.window_scale.is_some() {
            len += 4;
        }
        if let Some(fo) = &self.fast_open {
            len += fo.padded_len();
        }
        len
    }

    /// How many SACK blocks `emit` writes: `sack_count`, cut to what fits in 40 bytes (3 with
    /// timestamps, as RFC 2018 §3 notes). The first blocks are kept: the most recent ones.
    fn sack_blocks_emitted(&self) -> usize {
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_len() + 4) / 8;
        usize::from(self.sack_count).min(4).min(room)
    }

    /// Bytes `emit` writes: a multiple of 4, at most 40.
    pub fn buffer_len(&self) -> usize {
        let blocks = self.sack_blocks_emitted();
        self.fixed_len() + if blocks > 0 { 4 + 8 * blocks } else { 0 }
    }

    /// Writes the options into `buf[..self.buffer_len()]` and returns that length.
    ///
    /// The layout is Linux's (`tcp_options_write`), so middleboxes see what they are used
    /// to: MSS; then SACK-permitted + TS as `[4,2,8,10,val,ecr]` (or NOP NOP SACK-permitted,
    /// or NOP NOP TS, when only one is set); then NOP WS; then NOP NOP SACK; then the Fast
    /// Open cookie, NOP-padded after it. A SYN thus gets `MSS, SACK-perm, TS, NOP, WS[, FO]`
    /// and a data segment `NOP, NOP, TS[, NOP, NOP, SACK]`.
    ///
    /// Panics if `buf` is shorter than [`Options::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let mut at = 0;
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            put(buf, &mut at, [kind::MSS, 4, hi, lo]);
        }
        match (self.sack_permitted, self.timestamp) {
            (sack_permitted, Some((val, ecr))) => {
                let [v0, v1, v2, v3] = val.to_be_bytes();
                let [e0, e1, e2, e3] = ecr.to_be_bytes();
                let (k0, k1) = if sack_permitted {
                    (kind::SACK_PERMITTED, 2)
                } else {
                    (kind::NOP, kind::NOP)
                };
                let ts = [k0, k1, kind::TIMESTAMP, 10, v0, v1, v2, v3, e0, e1, e2, e3];
                put(buf, &mut at, ts);
            }
            (true, None) => put(
                buf,
                &mut at,
                [kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2],
            ),
            (false, None) => {}
        }
        if let Some(shift) = self.window_scale {
            put(buf, &mut at, [kind::NOP, kind::WINDOW_SCALE, 3, shift]);
        }
        let blocks = self.sack_blocks_emitted();
        if blocks > 0 {
            let len = (2 + 8 * blocks) as u8;
            put(buf, &mut at, [kind::NOP, kind::NOP, kind::SACK, len]);
            for (left, right) in &self.sack_blocks[..blocks] {
                put(buf, &mut at, left.0.to_be_bytes());
                put(buf, &mut at, right.0.to_be_bytes());
            }
        }
        if let Some(fo) = &self.fast_open {
            // Linux `tcp_options_write`: the kind (and magic), then the cookie, then NOP NOP
            // when the option's length is 2 mod 4.
            let len = fo.option_len() as u8;
            if fo.experimental {
                let [m0, m1] = kind::FAST_OPEN_MAGIC.to_be_bytes();
                put(buf, &mut at, [kind::EXPERIMENTAL, len, m0, m1]);
            } else {
                put(buf, &mut at, [kind::FAST_OPEN, len]);
            }
            let cookie = fo.cookie();
            buf[at..at + cookie.len()].copy_from_slice(cookie);
            at += cookie.len();
            for _ in fo.option_len()..fo.padded_len() {
                put(buf, &mut at, [kind::NOP]);
            }
        }
        at
    }
}

/// Copies a fixed-size chunk to `buf[*at..]` and moves `at` past it (fixed size: plain stores,
/// no `memcpy` call).
#[inline(always)]
fn put<const N: usize>(buf: &mut [u8], at: &mut usize, bytes: [u8; N]) {
    buf[*at..*at + N].copy_from_slice(&bytes);
    *at += N;
}

/// A TCP segment as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: SeqNumber,
    /// Acknowledgment number; meaningful iff `flags` has ACK.
    pub ack: SeqNumber,
    /// Control bits.
    pub flags: Flags,
    /// The window field, unscaled.
    pub window: u16,
    /// The options the engine uses.
    pub options: Options,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a checked segment: verifies the checksum with the pseudo header of `src` and
    /// `dst` ([`Error::BadChecksum`]) and parses the options. The urgent pointer is ignored.
    pub fn parse(p: &Packet<&'a [u8]>, src: IpAddr, dst: IpAddr) -> Result<Repr<'a>, Error> {
        if !p.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let data: &'a [u8] = p.buffer;
        let header_len = p.header_len();
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window_len(),
            options: Options::parse(&data[field::OPTIONS..header_len])?,
            payload: &data[header_len..],
        })
    }

    /// Header length: 20 + the options' padded length.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Header + options + payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment takes: payload + 1 for SYN + 1 for FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len()
            + usize::from(self.flags.contains(Flags::SYN))
            + usize::from(self.flags.contains(Flags::FIN))
    }

    /// Writes header, options and payload into `buf[..self.buffer_len()]` and fills the
    /// checksum with the pseudo header of `src` and `dst`. The urgent pointer is 0.
    ///
    /// Panics if `buf` is shorter than [`Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8], src: IpAddr, dst: IpAddr) {
        let header_len = self.header_len();
        let mut p = Packet::new_unchecked(&mut buf[..self.buffer_len()]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq);
        p.set_ack_number(self.ack);
        p.set_header_len(header_len);
        p.set_flags(self.flags);
        p.set_window_len(self.window);
        p.set_urgent_at(0);
        self.options.emit(p.options_mut());
        p.payload_mut().copy_from_slice(self.payload);
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1));

    /// The TCP part of the kernel's SYN-ACK in `captured.rs`.
    fn kernel_syn_ack_tcp() -> [u8; 40] {
        let mut tcp = [0; 40];
        tcp.copy_from_slice(&crate::wire::captured::KERNEL_SYN_ACK[34..]);
        tcp
    }

    fn kernel_syn_ack_repr() -> Repr<'static> {
        Repr {
            src_port: 8080,
            dst_port: 57296,
            seq: SeqNumber(2435742526),
            ack: SeqNumber(2657006918),
            flags: Flags::SYN | Flags::ACK,
            window: 65160,
            options: Options {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamp: Some((2285608436, 3370480142)),
                ..Options::default()
            },
            payload: &[],
        }
    }

    #[test]
    fn syn_ack_emits_byte_for_byte_what_the_kernel_sent() {
        let repr = kernel_syn_ack_repr();
        let mut buf = [0xa5; 40];
        repr.emit(&mut buf, SRC, DST);
        assert_eq!(buf, kernel_syn_ack_tcp());
    }

    #[test]
    fn kernel_syn_ack_parses_to_its_fields() {
        let tcp = kernel_syn_ack_tcp();
        let p = Packet::new_checked(&tcp[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(Repr::parse(&p, SRC, DST), Ok(kernel_syn_ack_repr()));
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.checksum(), 0x7433);
    }

    #[test]
    fn checksum_with_the_wrong_addresses_fails() {
        let tcp = kernel_syn_ack_tcp();
        let p = Packet::new_checked(&tcp[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, DST, SRC).map(|_| ()),
            Ok(()),
            "pseudo header sum is symmetric"
        );
        let other = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 3));
        assert_eq!(Repr::parse(&p, other, DST), Err(Error::BadChecksum));
    }

    #[test]
    fn a_flipped_payload_bit_is_a_bad_checksum() {
        let mut buf = kernel_syn_ack_tcp();
        buf[39] ^= 0x10;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST), Err(Error::BadChecksum));
    }

    #[test]
    fn data_offset_below_five_is_a_bad_header_length() {
        let mut buf = kernel_syn_ack_tcp();
        buf[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&buf[..]).err(),
            Some(Error::BadHeaderLength)
        );
    }

    #[test]
    fn data_offset_beyond_the_segment_is_a_bad_header_length() {
        let mut buf = kernel_syn_ack_tcp();
        buf[12] = 0xb0;
        assert_eq!(
            Packet::new_checked(&buf[..]).err(),
            Some(Error::BadHeaderLength)
        );
        assert_eq!(
            Packet::new_checked(&buf[..19]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn flags_print_like_tcpdump_names() {
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "SYN|ACK");
        assert_eq!(
            format!("{:?}", Flags::FIN | Flags::PSH | Flags::ACK),
            "FIN|PSH|ACK"
        );
        assert_eq!(
            format!("{}", Flags(0xff)),
            "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"
        );
        assert_eq!(format!("{:?}", Flags::NONE), "(none)");
    }

    #[test]
    fn flags_contains_needs_every_bit() {
        let f = Flags::SYN | Flags::ACK;
        assert!(f.contains(Flags::SYN) && f.contains(Flags::ACK) && f.contains(f));
        assert!(!f.contains(Flags::SYN | Flags::FIN));
        assert!(f.intersects(Flags::SYN | Flags::FIN));
        let mut g = Flags::NONE;
        g |= Flags::RST;
        assert_eq!(g, Flags::RST);
    }

    #[test]
    fn segment_len_counts_syn_and_fin() {
        let mut r = kernel_syn_ack_repr();
        assert_eq!(r.segment_len(), 1);
        r.flags = Flags::FIN | Flags::ACK;
        r.payload = b"abc";
        assert_eq!(r.segment_len(), 4);
        r.flags = Flags::ACK;
        assert_eq!(r.segment_len(), 3);
    }

    #[test]
    fn sequence_numbers_near_the_wrap_round_trip() {
        let mut r = kernel_syn_ack_repr();
        r.seq = SeqNumber(u32::MAX);
        r.ack = SeqNumber(u32::MAX - 1);
        r.options.sack_blocks[0] = (SeqNumber(u32::MAX - 10), SeqNumber(5));
        r.options.sack_count = 1;
        let mut buf = vec![0xa5; r.buffer_len()];
        r.emit(&mut buf, SRC, DST);
        let p = Packet::new_checked(&buf[..]).unwrap();
        let back = Repr::parse(&p, SRC, DST).unwrap();
        assert_eq!(back, r);
        assert!(back.seq.lt(back.seq + 1u32));
    }

    #[test]
    fn data_segment_options_use_the_linux_layout() {
        let mut o = Options {
            timestamp: Some((0x01020304, 0x05060708)),
            ..Options::default()
        };
        o.sack_blocks[0] = (SeqNumber(0x11111111), SeqNumber(0x22222222));
        o.sack_count = 1;
        let mut buf = [0xa5; 40];
        let n = o.emit(&mut buf);
        assert_eq!(n, o.buffer_len());
        assert_eq!(
            &buf[..n],
            &[
                1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 5, 10, 0x11, 0x11, 0x11, 0x11, 0x22,
                0x22, 0x22, 0x22
            ]
        );
        assert!(
            buf[n..].iter().all(|&b| b == 0xa5),
            "nothing past buffer_len"
        );
    }

    #[test]
    fn syn_options_with_only_one_of_sack_permitted_and_timestamps_are_nop_padded() {
        let sack_only = Options {
            mss: Some(1460),
            sack_permitted: true,
            window_scale: Some(7),
            ..Options::default()
        };
        let mut buf = [0xa5; 12];
        assert_eq!(sack_only.emit(&mut buf), 12);
        assert_eq!(buf, [2, 4, 5, 180, 1, 1, 4, 2, 1, 3, 3, 7]);
        let ts_only = Options {
            mss: Some(536),
            timestamp: Some((1, 0)),
            ..Options::default()
        };
        let mut buf = [0xa5; 16];
        assert_eq!(ts_only.emit(&mut buf), 16);
        assert_eq!(buf, [2, 4, 2, 24, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn four_sack_blocks_are_cut_to_three_with_timestamps() {
        let mut o = Options {
            timestamp: Some((1, 2)),
            sack_count: 4,
            ..Options::default()
        };
        for (i, b) in o.sack_blocks.iter_mut().enumerate() {
            *b = (SeqNumber(i as u32 * 100), SeqNumber(i as u32 * 100 + 50));
        }
        assert_eq!(o.buffer_len(), 40);
        let mut buf = [0; 40];
        o.emit(&mut buf);
        let back = Options::parse(&buf).unwrap();
        assert_eq!(back.sack_count, 3);
        assert_eq!(back.sack_blocks[..3], o.sack_blocks[..3]);
        o.timestamp = None;
        assert_eq!(o.buffer_len(), 36);
    }

    #[test]
    fn options_end_at_eol_and_skip_nops_and_unknown_kinds() {
        let bytes = [1, 1, 30, 4, 0xaa, 0xbb, 2, 4, 5, 180, 0, 2, 0];
        let o = Options::parse(&bytes).unwrap();
        assert_eq!(o.mss, Some(1460));
        assert_eq!(Options::parse(&[0, 2, 0]), Ok(Options::default()));
    }

    #[test]
    fn window_scale_above_fourteen_is_clamped() {
        assert_eq!(Options::parse(&[3, 3, 15]).unwrap().window_scale, Some(14));
        assert_eq!(Options::parse(&[3, 3, 255]).unwrap().window_scale, Some(14));
        assert_eq!(Options::parse(&[3, 3, 14]).unwrap().window_scale, Some(14));
    }

    #[test]
    fn options_with_zero_length_are_rejected() {
        assert_eq!(Options::parse(&[30, 0, 0, 0]), Err(Error::BadOptionLength));
    }

    #[test]
    fn options_with_length_one_are_rejected() {
        assert_eq!(Options::parse(&[30, 1, 0, 0]), Err(Error::BadOptionLength));
    }

    #[test]
    fn options_longer_than_the_options_area_are_rejected() {
        assert_eq!(Options::parse(&[30, 5, 0, 0]), Err(Error::BadOptionLength));
        assert_eq!(
            Options::parse(&[1, 1, 1, 8]),
            Err(Error::BadOptionLength),
            "no length byte"
        );
    }

    #[test]
    fn known_options_with_a_wrong_length_are_rejected() {
        for bytes in [
            &[2, 3, 5, 0][..],
            &[2, 5, 5, 180, 0][..],
            &[3, 2, 1, 1][..],
            &[3, 4, 7, 0][..],
            &[4, 3, 0, 1][..],
            &[5, 2, 1, 1][..],
            &[5, 9, 0, 0, 0, 0, 0, 0, 0][..],
            &[8, 8, 0, 0, 0, 0, 0, 0][..],
        ] {
            assert_eq!(
                Options::parse(bytes),
                Err(Error::BadOptionLength),
                "{bytes:?}"
            );
        }
        let mut five_blocks = vec![5, 42];
        five_blocks.resize(42, 0);
        assert_eq!(Options::parse(&five_blocks), Err(Error::BadOptionLength));
    }

    #[test]
    fn mss_option_with_length_three_in_a_segment_is_rejected() {
        let mut buf = kernel_syn_ack_tcp();
        buf[21] = 3;
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.fill_checksum(SRC, DST);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST), Err(Error::BadOptionLength));
    }

    #[test]
    fn ipv6_pseudo_header_checksums_verify() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let r = Repr {
            payload: b"hello",
            ..kernel_syn_ack_repr()
        };
        let mut buf = vec![0xa5; r.buffer_len()];
        r.emit(&mut buf, s.into(), d.into());
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(s.into(), d.into()));
        assert!(!p.verify_checksum(SRC, DST));
        assert_eq!(Repr::parse(&p, s.into(), d.into()), Ok(r));
    }

    /// The cookie of the kernel selftests (`TFO_COOKIE` over IPv4).
    const COOKIE: [u8; 8] = [0x30, 0x21, 0xb9, 0xd8, 0x89, 0x01, 0x7e, 0xeb];

    #[test]
    fn fast_open_cookie_follows_the_other_options_nop_padded_as_linux_lays_it_out() {
        let o = Options {
            mss: Some(1460),
            sack_permitted: true,
            window_scale: Some(8),
            fast_open: FastOpenOption::with_cookie(&COOKIE, false),
            ..Options::default()
        };
        let mut buf = [0xa5; 40];
        let n = o.emit(&mut buf);
        assert_eq!(n, o.buffer_len());
        let mut want = vec![2, 4, 5, 180, 1, 1, 4, 2, 1, 3, 3, 8, 34, 10];
        want.extend(COOKIE);
        want.extend([1, 1]);
        assert_eq!(&buf[..n], &want[..]);
        assert!(
            buf[n..].iter().all(|&b| b == 0xa5),
            "nothing past buffer_len"
        );
        assert_eq!(Options::parse(&buf[..n]), Ok(o));
    }

    #[test]
    fn experimental_fast_open_option_carries_the_magic_and_needs_no_padding() {
        let o = Options {
            fast_open: FastOpenOption::with_cookie(&COOKIE, true),
            ..Options::default()
        };
        let mut buf = [0xa5; 16];
        assert_eq!(o.emit(&mut buf), 12);
        let mut want = vec![254, 12, 0xf9, 0x89];
        want.extend(COOKIE);
        assert_eq!(&buf[..12], &want[..]);
        assert_eq!(buf[12..], [0xa5; 4]);
        let request = Options {
            fast_open: Some(FastOpenOption::request(true)),
            ..Options::default()
        };
        assert_eq!(request.emit(&mut buf), 4);
        assert_eq!(buf[..4], [254, 4, 0xf9, 0x89]);
        assert_eq!(Options::parse(&buf[..4]), Ok(request));
    }

    #[test]
    fn a_linux_fast_open_syn_and_cookie_requests_parse() {
        // <mss 1012,sackOK,TS val 1000 ecr 0,wscale 7,nop,nop,nop,FO cookie>
        let mut syn = vec![2, 4, 3, 244, 4, 2, 8, 10, 0, 0, 3, 232, 0, 0, 0, 0, 3, 3, 7];
        syn.extend([1, 1, 1, 34, 10]);
        syn.extend(COOKIE);
        let o = Options::parse(&syn).unwrap();
        assert_eq!(o.mss, Some(1012));
        assert_eq!(o.window_scale, Some(7));
        assert_eq!(o.timestamp, Some((1000, 0)));
        let fo = o.fast_open.unwrap();
        assert_eq!(
            (fo.cookie(), fo.experimental, fo.is_request()),
            (&COOKIE[..], false, false)
        );
        // <mss 1460,FO,nop,nop,sackOK>: a request.
        let req = Options::parse(&[2, 4, 5, 180, 34, 2, 1, 1, 1, 1, 4, 2]).unwrap();
        assert_eq!(req.fast_open, Some(FastOpenOption::request(false)));
        assert!(req.sack_permitted);
    }

    #[test]
    fn fast_open_options_with_a_length_rfc_7413_forbids_are_ignored_as_linux_ignores_them() {
        for bytes in [
            &[34, 3, 0xaa, 1][..],                              // odd
            &[34, 4, 0xaa, 0xbb][..],                           // 2-byte cookie
            &[254, 6, 0xf9, 0x89, 0xaa, 0xbb][..],              // 2-byte cookie, experimental
            &[254, 12, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8][..], // another experiment
            &[254, 3, 0xf9, 1][..],                             // no room for the magic
        ] {
            assert_eq!(Options::parse(bytes), Ok(Options::default()), "{bytes:?}");
        }
        let mut long = vec![34, 20];
        long.resize(20, 7);
        assert_eq!(
            Options::parse(&long),
            Ok(Options::default()),
            "18-byte cookie"
        );
        assert!(FastOpenOption::with_cookie(&[0; 18], false).is_none());
        assert!(FastOpenOption::with_cookie(&[0; 5], false).is_none());
    }

    #[test]
    fn the_largest_fast_open_option_still_fits_beside_every_syn_option() {
        let o = Options {
            mss: Some(1460),
            sack_permitted: true,
            timestamp: Some((1, 2)),
            window_scale: Some(7),
            fast_open: FastOpenOption::with_cookie(&[9; 16], true),
            ..Options::default()
        };
        assert_eq!(o.buffer_len(), MAX_OPTIONS_LEN);
        let mut buf = [0xa5; 40];
        o.emit(&mut buf);
        assert_eq!(Options::parse(&buf), Ok(o));
    }

    /// Arbitrary options that `emit` writes in full (window scale <= 14, SACK blocks that fit).
    pub(crate) fn arb_options() -> impl Strategy<Value = Options> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            proptest::option::of(any::<(u32, u32)>()),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
            proptest::option::of(arb_fast_open()),
        )
            .prop_map(
                |(mss, window_scale, sack_permitted, timestamp, blocks, fo)| {
                    let mut o = Options {
                        mss,
                        window_scale,
                        sack_permitted,
                        timestamp,
                        fast_open: fo,
                        ..Options::default()
                    };
                    let fits = MAX_OPTIONS_LEN.saturating_sub(o.fixed_len() + 4) / 8;
                    for (slot, (l, r)) in o.sack_blocks.iter_mut().zip(blocks.iter().take(fits)) {
                        *slot = (SeqNumber(*l), SeqNumber(*r));
                        o.sack_count += 1;
                    }
                    o
                },
            )
    }

    /// Arbitrary Fast Open options: a request, or a cookie of 4 to 16 bytes (even), in either
    /// kind.
    fn arb_fast_open() -> impl Strategy<Value = FastOpenOption> {
        (
            any::<bool>(),
            prop_oneof![Just(0usize), (2usize..=8).prop_map(|n| 2 * n)],
            any::<[u8; 16]>(),
        )
            .prop_map(|(exp, n, bytes)| {
                FastOpenOption::with_cookie(&bytes[..n], exp)
                    .unwrap_or_else(|| FastOpenOption::request(exp))
            })
    }

    /// Ports, seq, ack, flags, window, options and payload of a generated segment.
    pub(crate) type ArbSegment = (u16, u16, u32, u32, u8, u16, Options, Vec<u8>);

    /// Arbitrary segments with valid options and up to 100 bytes of payload.
    pub(crate) fn arb_segment() -> impl Strategy<Value = ArbSegment> {
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            arb_options(),
            proptest::collection::vec(any::<u8>(), 0..100),
        )
    }

    proptest! {
        #[test]
        fn options_round_trip_through_emit_and_parse(o in arb_options()) {
            let mut buf = [0xa5u8; 40];
            let n = o.emit(&mut buf);
            prop_assert_eq!(n, o.buffer_len());
            prop_assert!(n <= 40 && n % 4 == 0);
            prop_assert_eq!(Options::parse(&buf[..n]), Ok(o));
        }

        #[test]
        fn segments_round_trip_through_emit_and_parse(
            (sp, dp, seq, ack, flags, window, options, payload) in arb_segment(),
            v6 in any::<bool>(),
        ) {
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
            } else {
                (SRC, DST)
            };
            let r = Repr {
                src_port: sp, dst_port: dp, seq: SeqNumber(seq), ack: SeqNumber(ack),
                flags: Flags(flags), window, options, payload: &payload,
            };
            let mut buf = vec![0xa5; r.buffer_len()];
            r.emit(&mut buf, src, dst);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.header_len(), r.header_len());
            prop_assert_eq!(Repr::parse(&p, src, dst), Ok(r));
        }

        #[test]
        fn fast_paths_agree_with_the_general_parser(o in arb_options(), ws in any::<u8>()) {
            let mut buf = [0u8; 40];
            let n = o.emit(&mut buf);
            prop_assert_eq!(Options::parse(&buf[..n]), Options::parse_general(&buf[..n]));
            let syn = Options { mss: Some(1460), sack_permitted: true, timestamp: o.timestamp.or(Some((1, 2))), window_scale: Some(ws), ..Options::default() };
            let n = syn.emit(&mut buf);
            prop_assert_eq!(n, 20);
            prop_assert_eq!(Options::parse(&buf[..n]), Options::parse_general(&buf[..n]));
        }

        #[test]
        fn option_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(o) = Options::parse(&bytes) {
                prop_assert!(o.sack_count <= 4);
                prop_assert!(o.window_scale.is_none_or(|w| w <= 14));
            }
        }

        #[test]
        fn segment_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.options(), p.payload(), p.flags(), p.urgent_at());
                let _ = Repr::parse(&p, SRC, DST);
            }
        }
    }
}
