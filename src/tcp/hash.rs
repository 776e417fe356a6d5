//! Keyed, flood-resistant hashing of 4-tuples (RFC 6528 §3 asks for a keyed PRF; SipHash is
//! the same defence Linux uses against hash-flooding of its connection tables).
//!
//! An attacker who can choose ports and addresses must not be able to make tuples collide in
//! our tables, so every table hash is SipHash under a secret key that comes in from outside.

use core::fmt;
use core::hash::Hasher;

use siphasher::sip::{SipHasher13, SipHasher24};

use super::FourTuple;

/// A 128-bit secret key for SipHash; the engine is handed it, never generates it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub [u8; 16]);

impl fmt::Debug for Key {
    /// Never prints the key bytes: a secret in a log line is a leaked secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Derives the key for one use (`label`) from an engine's 32-byte secret
/// ([`Config::secret`](super::Config::secret)): SipHash-2-4 under the secret's first half over
/// its second half, the label and the output half's index.
pub(crate) fn derive_key(secret: &[u8; 32], label: &[u8]) -> Key {
    let mut k = [0u8; 16];
    for (i, half) in k.chunks_mut(8).enumerate() {
        let mut h = SipHasher24::new_with_key(secret[..16].try_into().expect("16 bytes"));
        h.write(&secret[16..]);
        h.write(label);
        h.write_u8(i as u8);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    Key(k)
}

/// The key of the per-connection timestamp offsets that go with SYN cookies made under `secret`
/// (hosts sharing cookies must share it too: a connection's TSvals continue from its
/// SYN-ACK's, whoever sent that).
pub fn timestamp_key(secret: &[u8; 32]) -> Key {
    derive_key(secret, b"timestamp")
}

/// The keys of an engine's keyed per-connection hashes, derived once from its secret.
#[derive(Clone, Copy)]
pub(crate) struct Keys {
    /// RFC 6528 initial sequence numbers.
    pub(crate) isn: Key,
    /// Per-connection timestamp offsets (RFC 7323 §5.4).
    pub(crate) timestamp: Key,
}

impl Keys {
    /// The keys for `secret`, timestamp offsets from `cookie_secret` (the secret SYN cookies
    /// derive from, which hosts sharing cookies share, so a connection's TSvals continue from
    /// a SYN-ACK another host sent: [`timestamp_key`]).
    pub(crate) fn derive(secret: &[u8; 32], cookie_secret: &[u8; 32]) -> Keys {
        Keys {
            isn: derive_key(secret, b"isn"),
            timestamp: timestamp_key(cookie_secret),
        }
    }
}

/// Index bytes per entry of a table whose keyed index is a hashbrown `HashTable<u32>` (a
/// 4-byte position and a control byte a bucket), in the worst case: right after the index
/// doubled, at a load of 7/16 (5 × 16/7 ≈ 11.4 B, rounded up). At a full index (load 7/8) it
/// is half that.
pub const INDEX_BYTES_PER_ENTRY: usize = ((size_of::<u32>() + 1) * 16).div_ceil(7);

/// Hashes a 4-tuple for table lookups: SipHash-1-3 over [`FourTuple::write_to`]'s bytes.
pub fn hash_tuple(key: &Key, tuple: &FourTuple) -> u64 {
    let mut h = SipHasher13::new_with_key(&key.0);
    tuple.write_to(&mut |bytes: &[u8]| h.write(bytes));
    h.finish()
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::FourTuple;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// An IPv4 tuple whose remote address and port are derived from `n`.
    pub(crate) fn tuple_v4(n: u32) -> FourTuple {
        FourTuple {
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            remote_addr: IpAddr::V4(Ipv4Addr::from(0x0a01_0000 | (n >> 16))),
            local_port: 80,
            remote_port: (n & 0xffff) as u16,
        }
    }

    /// An IPv6 tuple whose remote port is `port`.
    pub(crate) fn tuple_v6(port: u16) -> FourTuple {
        FourTuple {
            local_addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            remote_addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
            local_port: 443,
            remote_port: port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn debug_output_hides_the_key_bytes() {
        let key = Key([0xab; 16]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn the_hash_depends_on_key_and_tuple() {
        let k1 = Key([1; 16]);
        let k2 = Key([2; 16]);
        let a = tuple_v4(1000);
        let b = tuple_v4(1001);
        assert_eq!(hash_tuple(&k1, &a), hash_tuple(&k1, &a));
        assert_ne!(hash_tuple(&k1, &a), hash_tuple(&k2, &a));
        assert_ne!(hash_tuple(&k1, &a), hash_tuple(&k1, &b));
        assert_ne!(hash_tuple(&k1, &tuple_v6(1000)), hash_tuple(&k1, &a));
    }
}
