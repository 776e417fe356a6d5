//! Initial sequence numbers per RFC 6528 §3, and per-connection timestamp offsets
//! (RFC 7323 §5.4 and Appendix G; Linux `secure_tcp_ts_off`).
//!
//! RFC 6528 §3: "ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//! where M is the 4 microsecond timer, and F() is a pseudorandom function (PRF) of the
//! connection-id." F is SipHash-2-4 under the engine's secret, truncated to 32 bits, so an
//! off-path attacker who sees our ISN on one connection learns nothing about another.

use core::hash::Hasher;

use siphasher::sip::SipHasher24;

use super::FourTuple;
use super::hash::Key;
use crate::time::Instant;
use crate::wire::SeqNumber;

/// Domain tags keep the two uses of the same key unrelated.
const DOMAIN_ISN: u8 = 1;
const DOMAIN_TS_OFFSET: u8 = 2;

fn prf(key: &Key, domain: u8, tuple: &FourTuple) -> u64 {
    let mut buf = [0u8; 38];
    buf[0] = domain;
    let mut t = [0u8; 37];
    let n = tuple.pack(&mut t);
    buf[1..=n].copy_from_slice(&t[..n]);
    let mut h = SipHasher24::new_with_key(&key.0);
    h.write(&buf[..=n]);
    h.finish()
}

/// The initial send sequence number for `tuple` at `now` (RFC 6528 §3).
pub fn initial_seq(key: &Key, tuple: &FourTuple, now: Instant) -> SeqNumber {
    // M: "the 4 microsecond timer", wrapping like the 32-bit clock of RFC 9293 §3.4.1.
    let m = (now.total_micros() / 4) as u32;
    SeqNumber(m.wrapping_add(prf(key, DOMAIN_ISN, tuple) as u32))
}

/// The offset added to our TSval clock on this connection, so that timestamps do not reveal
/// uptime or correlate connections (RFC 7323 §5.4, Linux `secure_tcp_ts_off`): the low 32
/// bits of [`timestamp_hash`].
pub fn timestamp_offset(key: &Key, tuple: &FourTuple) -> u32 {
    timestamp_hash(key, tuple) as u32
}

/// The keyed hash of `tuple` that timestamp offsets and SYN cookies share: SipHash-2-4 of the
/// timestamp domain tag and the tuple. Its low 32 bits are the offset, which a peer can
/// estimate from our TSvals; all 64 stand for the tuple in the cookie's MAC input
/// (`syncookie`), so a cookie costs one SipHash over the tuple, not two, and the MAC, under
/// its own rotating key, reveals nothing of the offset nor the offset of the MAC.
pub fn timestamp_hash(key: &Key, tuple: &FourTuple) -> u64 {
    prf(key, DOMAIN_TS_OFFSET, tuple)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::hash::test_util::*;
    use std::collections::HashSet;

    const KEY: Key = Key([7; 16]);

    #[test]
    fn isn_differs_across_tuples_and_keys() {
        let now = Instant::from_secs(100);
        let a = initial_seq(&KEY, &tuple_v4(1), now);
        assert_ne!(a, initial_seq(&KEY, &tuple_v4(2), now));
        assert_ne!(a, initial_seq(&Key([8; 16]), &tuple_v4(1), now));
        assert_ne!(
            initial_seq(&KEY, &tuple_v6(1), now),
            initial_seq(&Key([8; 16]), &tuple_v6(1), now)
        );
    }

    #[test]
    fn isn_advances_with_time_at_250k_per_second() {
        let t = tuple_v4(9);
        let t0 = Instant::from_secs(1_000);
        let a = initial_seq(&KEY, &t, t0);
        let b = initial_seq(&KEY, &t, t0 + core::time::Duration::from_secs(1));
        assert_eq!(b - a, 250_000);
        let c = initial_seq(&KEY, &t, t0 + core::time::Duration::from_micros(4));
        assert_eq!(c - a, 1);
    }

    #[test]
    fn isn_wraps_instead_of_overflowing() {
        // 2^32 * 4 µs later the timer has wrapped exactly once.
        let t = tuple_v4(3);
        let a = initial_seq(&KEY, &t, Instant::ZERO);
        let b = initial_seq(&KEY, &t, Instant::from_micros(4 << 32));
        assert_eq!(a, b);
        let _ = initial_seq(&KEY, &t, Instant::from_micros(u64::MAX));
    }

    #[test]
    fn tuples_differing_only_in_port_have_unrelated_isns() {
        let now = Instant::from_secs(5);
        let isns: Vec<u32> = (1000..1256)
            .map(|p| initial_seq(&KEY, &tuple_v4(p), now).0)
            .collect();
        let distinct: HashSet<u32> = isns.iter().copied().collect();
        assert_eq!(distinct.len(), isns.len());
        // Neighbouring ports must not give neighbouring or evenly spaced ISNs.
        let steps: HashSet<u32> = isns.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        assert!(steps.len() > 250, "steps repeat: {}", steps.len());
        let near = isns
            .windows(2)
            .filter(|w| w[1].wrapping_sub(w[0]).min(w[0].wrapping_sub(w[1])) < 1 << 16)
            .count();
        assert!(near <= 2, "{near} neighbouring ISNs are close");
        // Roughly half the bits flip between neighbours.
        let flips: u32 = isns.windows(2).map(|w| (w[0] ^ w[1]).count_ones()).sum();
        let mean = flips as f64 / 255.0;
        assert!((12.0..20.0).contains(&mean), "mean bit flips {mean}");
    }

    #[test]
    fn timestamp_offset_is_keyed_and_unrelated_to_the_isn() {
        let t = tuple_v4(42);
        let off = timestamp_offset(&KEY, &t);
        assert_eq!(off, timestamp_offset(&KEY, &t));
        assert_ne!(off, timestamp_offset(&Key([9; 16]), &t));
        assert_ne!(off, timestamp_offset(&KEY, &tuple_v4(43)));
        assert_ne!(off, initial_seq(&KEY, &t, Instant::ZERO).0);
    }
}
