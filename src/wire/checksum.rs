//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Partial sums are `u32`s already folded to 16 bits (at most `0xffff`), so a handful of them
//! (pseudo header + header + payload) can be added with a plain `+` and then [`finish`]ed.
//!
//! RFC 1071 §2(B): "The sum of 16-bit integers can be computed in either byte order." We add
//! the data as native-endian 64-bit words with end-around carry (RFC 1071 §2(C), "Parallel
//! summation": 2^64 ≡ 1 mod 2^16 - 1, so wider words fold to the same 16-bit sum) and swap the
//! folded result to big-endian once at the end.

use std::net::IpAddr;

/// Partial ones'-complement sum of `data` as big-endian 16-bit words (an odd trailing byte is
/// padded with a zero byte), folded to 16 bits but not complemented.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // Two accumulators, each word split in 32-bit halves: no carry chain, and no overflow
    // before 2^31 words (16 GiB), far beyond any frame.
    let mut acc_a: u64 = 0;
    let mut acc_b: u64 = 0;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        let a = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let b = u64::from_ne_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
        acc_a += (a >> 32) + (a & 0xffff_ffff);
        acc_b += (b >> 32) + (b & 0xffff_ffff);
    }
    let mut acc = acc_a + acc_b;
    // The tail (< 16 bytes) in at most one step each of 8, 4, 2 and 1 bytes.
    let mut rest = chunks.remainder();
    if let [b0, b1, b2, b3, b4, b5, b6, b7, tail @ ..] = rest {
        let w = u64::from_ne_bytes([*b0, *b1, *b2, *b3, *b4, *b5, *b6, *b7]);
        acc += (w >> 32) + (w & 0xffff_ffff);
        rest = tail;
    }
    if let [b0, b1, b2, b3, tail @ ..] = rest {
        acc += u64::from(u32::from_ne_bytes([*b0, *b1, *b2, *b3]));
        rest = tail;
    }
    if let [b0, b1, tail @ ..] = rest {
        acc += u64::from(u16::from_ne_bytes([*b0, *b1]));
        rest = tail;
    }
    if let [last] = rest {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    // The folded native-endian sum is the byte swap of the big-endian one (RFC 1071 §2(B)).
    u32::from(u16::from_be(fold(acc)))
}

/// Folds the carries of a ones'-complement sum into 16 bits (not complemented).
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Partial sum of the TCP/UDP pseudo header: RFC 9293 §3.1 for IPv4 (src, dst, zero,
/// protocol, 16-bit length), RFC 8200 §8.1 for IPv6 (src, dst, 32-bit length, zeros, next
/// header). If only one address is IPv6, the other is taken as IPv4-mapped.
#[inline]
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, length: u32) -> u32 {
    let acc: u64 = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let s = s.octets();
            let d = d.octets();
            u64::from(u16::from_be_bytes([s[0], s[1]]))
                + u64::from(u16::from_be_bytes([s[2], s[3]]))
                + u64::from(u16::from_be_bytes([d[0], d[1]]))
                + u64::from(u16::from_be_bytes([d[2], d[3]]))
                + u64::from(protocol)
                + u64::from(length & 0xffff)
                + u64::from(length >> 16)
        }
        (s, d) => {
            u64::from(sum(&v6_octets(s)))
                + u64::from(sum(&v6_octets(d)))
                + u64::from(length >> 16)
                + u64::from(length & 0xffff)
                + u64::from(protocol)
        }
    };
    u32::from(fold(acc))
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The checksum field value for a partial sum: `!fold(sum)`.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(u64::from(sum))
}

/// Incremental update of a checksum when one 16-bit word changes, RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let acc = u64::from(!old_checksum) + u64::from(!old_word) + u64::from(new_word);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// RFC 1071 §4.1, word by word, as the reference.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            acc += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < data.len() {
            acc += u32::from(data[i]) << 8;
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_worked_example_sums_to_ddf2() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to dd f2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn empty_data_sums_to_zero_and_finishes_to_ffff() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(finish(0), 0xffff);
    }

    #[test]
    fn odd_trailing_byte_is_padded_with_zero() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x00, 0x01, 0x12]), 0x1201);
    }

    #[test]
    fn ipv4_pseudo_header_matches_the_bytes_it_stands_for() {
        let (s, d) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&[0, 6, 0, 40]);
        assert_eq!(
            pseudo_header(s.into(), d.into(), 6, 40),
            u32::from(reference_sum(&bytes))
        );
    }

    #[test]
    fn ipv6_pseudo_header_matches_the_bytes_it_stands_for() {
        let s: Ipv6Addr = "fd00::1".parse().unwrap();
        let d: Ipv6Addr = "fd00:ffff::abcd:2".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&70000u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(
            pseudo_header(s.into(), d.into(), 6, 70000),
            u32::from(reference_sum(&bytes))
        );
    }

    proptest! {
        #[test]
        fn sum_agrees_with_the_rfc1071_reference(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(sum(&data), u32::from(reference_sum(&data)));
        }

        #[test]
        fn sum_of_a_suffix_at_an_even_offset_adds_up(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..150) {
            let cut = (cut * 2).min(data.len() & !1);
            let whole = finish(sum(&data));
            let split = finish(sum(&data[..cut]) + sum(&data[cut..]));
            prop_assert_eq!(whole, split);
        }

        #[test]
        fn update_agrees_with_recomputing(mut data in proptest::collection::vec(any::<u8>(), 2..200), idx in any::<usize>(), new_word: u16) {
            let words = data.len() / 2;
            let i = (idx % words) * 2;
            let before = finish(sum(&data));
            let old_word = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new_word.to_be_bytes());
            let after = finish(sum(&data));
            // Ones' complement has two zeros (0x0000 and 0xffff); compare as sums.
            let updated = update(before, old_word, new_word);
            prop_assert_eq!(fold(u64::from(!updated)) % 0xffff, fold(u64::from(!after)) % 0xffff);
        }
    }
}
