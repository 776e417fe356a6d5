//! SYN cookies (RFC 4987 §3.6), as pure functions over header fields, modelled on Linux
//! `net/ipv4/syncookies.c` and `net/ipv6/syncookies.c`; options carried in the timestamp
//! as Linux does (`cookie_init_timestamp`, RFC 7323 §3 for the TSval/TSecr echo).
//!
//! Under a SYN flood we answer a SYN without keeping state: everything we need to finish the
//! handshake is folded into the SYN-ACK's sequence number (our ISN, "the cookie"), and the
//! peer gives it back as `SEG.ACK - 1` in the third segment.
//!
//! ```text
//!  31          26 25  24 23                                            0
//! +--------------+------+-----------------------------------------------+
//! | slot mod 64  | MSS  |  MAC: low 24 bits of SipHash-2-4(epoch key,    |
//! |  (6 bits)    | idx  |   tuple hash, slot (full u32), peer ISN,       |
//! |              |(2 b) |   MSS index, timestamp option bits)            |
//! +--------------+------+-----------------------------------------------+
//!  slot = now / 64 s; a cookie is accepted in its own slot and the next one (64 to 128 s).
//! ```
//!
//! The tuple enters the MAC as its 64-bit keyed hash, [`isn::timestamp_hash`] under the
//! timestamp key, whose low 32 bits are also the connection's timestamp offset (RFC 7323
//! §5.4): the SipHash over the tuple that the offset needs anyway is the only one, and the MAC
//! is one SipHash over 18 bytes (three message words) on top of it, where it was one over the
//! whole tuple plus a second for the offset. What each must not reveal holds: the MAC's
//! security rests on its own secret epoch key, whatever the peer knows of its input (the
//! tuple was public input before; the hash adds nothing to forge with: a cookie made for one
//! tuple fits another only if their 64-bit hashes collide, and a peer learns at most the low
//! 32 bits of one, through our TSvals); the offset comes from another key and is no function
//! of the MAC, so the 24 MAC bits say nothing about it, nor it about them.
//!
//! When the peer sent timestamps, window scale and SACK-permitted ride in the low 6 bits of
//! our TSval, which the peer echoes in TSecr:
//!
//! ```text
//!   5        4        3      0
//! +----------+--------+--------+
//! | reserved | SACK   | wscale |   wscale 0..=14, 15 = the peer sent no window scale
//! |   (0)    | perm.  |        |
//! +----------+--------+--------+
//! ```
//! Those bits are covered by the MAC, so a peer cannot flip them. Without timestamps they are
//! lost (the connection runs without window scaling and SACK), exactly as in Linux.
//!
//! A blind forger must hit the right 6 slot bits and 24 MAC bits: one ACK in about 2^24 (with
//! the slot bits right) is accepted by chance, so millions of ACKs buy one connection.
//!
//! # Keys
//!
//! The MAC key rotates: the key of rotation epoch `e` (`e = cookie clock / rotation`) is
//! [`epoch_key`]`(secret, e)`, a pure function, so every engine, the XDP program (which makes
//! the same cookies in front of the engines) and every host sharing the secret agree on it
//! without a message. [`CookieKeys`] accepts the keys of epochs `e - 1` (cookies made just
//! before a rotation), `e` and `e + 1` (an XDP program or a host whose clock is slightly ahead).
//! A replaced secret's keys of the same three epochs stay accepted for two more epochs: the XDP
//! program in front of us goes on making cookies under the old secret until the control thread
//! has told every engine the new one (then up to the end of the epoch it is in), and a
//! connection opened by such a cookie keeps the old secret's timestamp offset, as its SYN-ACK
//! had it.
//! The cookie clock is the engine's `now` plus an offset: in production the wall clock's offset
//! from the monotonic one, so that hosts agree on slots and epochs too.

use core::hash::Hasher;
use core::time::Duration;

use siphasher::sip::SipHasher24;

use super::hash::{Key, derive_key, timestamp_key};
use super::isn;
use super::{FourTuple, Secret};
use crate::time::Instant;
use crate::wire::SeqNumber;
use crate::wire::tcp::MAX_WINDOW_SCALE;

/// The length of one cookie time slot: a cookie stays valid for one to two slots.
pub const SLOT: Duration = Duration::from_secs(64);

/// MSS values an IPv4 cookie can encode, sorted (Linux `msstab`).
///
/// After S. Alcock and R. Nelson, "An Analysis of TCP Maximum Segment Sizes" (2011), as cited
/// by Linux: values below 536 are rare (< 0.2 %); 537..1299 make under 1.5 %; 1300..1349
/// about 15-20 % (tunnels, VPNs); 1440 and 1452 come from PPPoE; 1460 (Ethernet, 1500 - 40)
/// is the single most common value (30-46 %); above 1460 is very rare (< 0.04 %).
/// 536 is also RFC 9293's default when no MSS option is sent.
pub const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];

/// MSS values an IPv6 cookie can encode, sorted (Linux `net/ipv6/syncookies.c`).
///
/// IPv6's minimum MTU of 1280 (RFC 8200 §5) makes 1280 - 60 = 1220 the smallest possible MSS;
/// 1480 - 60 covers PPPoE/common encapsulation, 1500 - 60 Ethernet and 9000 - 60 jumbo frames.
pub const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

const SLOT_SHIFT: u32 = 26;
const MSS_SHIFT: u32 = 24;
const MAC_MASK: u32 = (1 << MSS_SHIFT) - 1;
/// The MAC's stand-in for "no timestamps": out of the 6-bit range, so never equal to real bits.
const NO_TS: u8 = 0xff;
/// The timestamp bits live in the low 6 bits of TSval.
const TS_BITS_MASK: u32 = 0x3f;
const TS_WSCALE_MASK: u8 = 0x0f;
const TS_WSCALE_NONE: u8 = 0x0f;
const TS_SACK: u8 = 1 << 4;
const TS_RESERVED: u8 = !(TS_WSCALE_MASK | TS_SACK);

/// The MAC key of rotation epoch `epoch` under `secret`.
pub fn epoch_key(secret: &[u8; 32], epoch: u64) -> Key {
    let mut label = [0u8; 14];
    label[..6].copy_from_slice(b"cookie");
    label[6..].copy_from_slice(&epoch.to_be_bytes());
    derive_key(secret, &label)
}

/// The clock cookies are made on: the engine's `now` plus an offset, cut into 64 s slots
/// (the cookie's age) and rotation epochs (which key makes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieClock {
    /// Added to `now`, µs.
    pub offset_us: i64,
    /// The length of a rotation epoch, µs (at least 1).
    pub rotation_us: u64,
}

impl CookieClock {
    fn micros(&self, now: Instant) -> u64 {
        now.total_micros().wrapping_add_signed(self.offset_us)
    }

    /// The cookie slot of `now` (wrapping, as the cookie's 6 bits do).
    pub fn slot(&self, now: Instant) -> u32 {
        (self.micros(now) / SLOT.as_micros() as u64) as u32
    }

    /// The rotation epoch of `now`.
    pub fn epoch(&self, now: Instant) -> u64 {
        self.micros(now) / self.rotation_us.max(1)
    }

    /// How far into its rotation epoch `now` is, µs.
    pub fn into_epoch_us(&self, now: Instant) -> u64 {
        self.micros(now) % self.rotation_us.max(1)
    }
}

/// The keys an engine makes and accepts cookies with: the epochs around `now` of the current
/// secret, and, for one epoch after the secret was replaced, the old secret's too.
#[derive(Debug, Clone)]
pub struct CookieKeys {
    secret: Secret,
    /// The secret's [`timestamp_key`]: the tuple hash in every MAC is made with it.
    timestamp: Key,
    clock: CookieClock,
    epoch: u64,
    /// The cookie-clock µs at which `epoch` starts and the next one starts (so that moving
    /// on is a comparison, not a division, on the packet path).
    epoch_start_us: u64,
    next_epoch_us: u64,
    /// The keys of epochs `epoch - 1`, `epoch` and `epoch + 1`.
    keys: [Key; 3],
    /// The replaced secret's, while its cookies are still accepted.
    retired: Option<Retired>,
}

/// A replaced secret, still accepted for a while.
#[derive(Debug, Clone)]
struct Retired {
    /// Its keys of epochs `e - 1`, `e` and `e + 1`, `e` the epoch it was replaced in: the XDP
    /// program may still make cookies under its key of `e + 1` (the control thread wrote it
    /// ahead of time, and replaces it only once every engine knows the new secret).
    keys: [Key; 3],
    /// Its timestamp-offset key: a connection one of its cookies opens goes on from the TSval
    /// of that cookie's SYN-ACK.
    timestamp: Key,
    /// The first epoch in which its cookies are refused: `e + 3`, so that a cookie made under
    /// its key of `e + 1` is still taken in the epoch after, as any cookie is.
    until: u64,
}

impl CookieKeys {
    /// The keys of `secret` around `now`.
    pub fn new(secret: Secret, clock: CookieClock, now: Instant) -> CookieKeys {
        let epoch = clock.epoch(now);
        let rotation = clock.rotation_us.max(1);
        CookieKeys {
            keys: Self::around(&secret.0, epoch),
            timestamp: timestamp_key(&secret.0),
            secret,
            clock,
            epoch,
            epoch_start_us: epoch * rotation,
            next_epoch_us: (epoch + 1).saturating_mul(rotation),
            retired: None,
        }
    }

    fn around(secret: &[u8; 32], epoch: u64) -> [Key; 3] {
        [
            epoch_key(secret, epoch.wrapping_sub(1)),
            epoch_key(secret, epoch),
            epoch_key(secret, epoch.wrapping_add(1)),
        ]
    }

    /// Moves on to `now`'s epoch (cheap when it has not changed).
    pub fn advance(&mut self, now: Instant) {
        let us = self.clock.micros(now);
        if (self.epoch_start_us..self.next_epoch_us).contains(&us) {
            return;
        }
        let epoch = self.clock.epoch(now);
        let rotation = self.clock.rotation_us.max(1);
        self.epoch_start_us = epoch * rotation;
        self.next_epoch_us = (epoch + 1).saturating_mul(rotation);
        self.keys = if epoch == self.epoch.wrapping_add(1) {
            [
                self.keys[1],
                self.keys[2],
                epoch_key(&self.secret.0, epoch.wrapping_add(1)),
            ]
        } else {
            Self::around(&self.secret.0, epoch)
        };
        self.epoch = epoch;
        if self.retired.as_ref().is_some_and(|r| epoch >= r.until) {
            self.retired = None;
        }
    }

    /// Replaces the secret at `now`; cookies made under the old one in the last, this and the
    /// next epoch stay valid until two epochs after this one end.
    pub fn replace_secret(&mut self, secret: Secret, now: Instant) {
        self.advance(now);
        if secret == self.secret {
            return;
        }
        self.retired = Some(Retired {
            keys: self.keys,
            timestamp: self.timestamp,
            until: self.epoch.wrapping_add(3),
        });
        self.secret = secret;
        self.timestamp = timestamp_key(&secret.0);
        self.keys = Self::around(&self.secret.0, self.epoch);
        self.timestamp = timestamp_key(&self.secret.0);
    }

    /// The key new cookies are made with (this epoch's).
    pub fn current(&self) -> &Key {
        &self.keys[1]
    }

    /// The key of `epoch` under the current secret.
    pub fn key_of(&self, epoch: u64) -> Key {
        match epoch.wrapping_sub(self.epoch) {
            0 => self.keys[1],
            1 => self.keys[2],
            u64::MAX => self.keys[0],
            _ => epoch_key(&self.secret.0, epoch),
        }
    }

    /// The epoch [`CookieKeys::advance`] last moved to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The clock.
    pub fn clock(&self) -> &CookieClock {
        &self.clock
    }

    /// The secret the keys derive from.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The current secret's timestamp key ([`timestamp_key`]).
    pub fn timestamp(&self) -> &Key {
        &self.timestamp
    }

    /// The hash `tuple` has in the MACs of new cookies, [`isn::timestamp_hash`] under
    /// [`CookieKeys::timestamp`] (whose low 32 bits are the tuple's timestamp offset).
    pub fn tuple_hash(&self, tuple: &FourTuple) -> u64 {
        isn::timestamp_hash(&self.timestamp, tuple)
    }

    /// The cookie slot of `now`.
    pub fn slot(&self, now: Instant) -> u32 {
        self.clock.slot(now)
    }

    /// The timestamp-offset key of the secret one of whose accepted keys `matches(key, tuple
    /// hash)` holds for, with `tuple`'s hash under that secret's timestamp key.
    fn accepts(
        &self,
        tuple: &FourTuple,
        mut matches: impl FnMut(&Key, u64) -> bool,
    ) -> Option<Key> {
        let hash = self.tuple_hash(tuple);
        if self.keys.iter().any(|k| matches(k, hash)) {
            return Some(self.timestamp);
        }
        self.retired
            .as_ref()
            .filter(|r| {
                let hash = isn::timestamp_hash(&r.timestamp, tuple);
                r.keys.iter().any(|k| matches(k, hash))
            })
            .map(|r| r.timestamp)
    }
}

/// What the peer offered in its SYN and we must recover from the ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynOptions {
    /// The MSS we use: the table entry the cookie encodes.
    pub mss: u16,
    /// The peer's window scale shift, if it sent one (and timestamps carried it).
    pub window_scale: Option<u8>,
    /// Whether the peer sent SACK-permitted (and timestamps carried it).
    pub sack_permitted: bool,
}

/// A cookie that checked out ([`check_cookie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidCookie {
    /// What the SYN negotiated.
    pub options: SynOptions,
    /// The timestamp-offset key of the secret the cookie was made under: the connection's
    /// TSvals go on from its SYN-ACK's, also when that secret has been replaced since.
    pub timestamp_key: Key,
}

/// Why the third segment's cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// The slot bits match neither the current nor the previous slot.
    #[error("SYN cookie expired")]
    Expired,
    /// The MAC does not match: forged, tampered with, or made under a retired key.
    #[error("SYN cookie MAC mismatch")]
    BadMac,
    /// The MAC matched but the option bits echoed in TSecr are invalid.
    #[error("SYN cookie timestamp option bits invalid")]
    BadOptions,
}

/// Encodes window scale (4 bits, 0..=14; 15 = none) and SACK-permitted (1 bit) into the low
/// 6 bits carried in our TSval (bit 5 reserved, zero). A scale above 14 is sent as 14
/// (RFC 7323 §2.3).
pub fn encode_ts_bits(window_scale: Option<u8>, sack_permitted: bool) -> u8 {
    let ws = window_scale.map_or(TS_WSCALE_NONE, |ws| ws.min(MAX_WINDOW_SCALE));
    ws | if sack_permitted { TS_SACK } else { 0 }
}

/// Decodes the bits of [`encode_ts_bits`]: `(window_scale, sack_permitted)`, or `None` if a
/// reserved bit (5 or above) is set.
pub fn decode_ts_bits(bits: u8) -> Option<(Option<u8>, bool)> {
    if bits & TS_RESERVED != 0 {
        return None;
    }
    let ws = bits & TS_WSCALE_MASK;
    let window_scale = if ws == TS_WSCALE_NONE { None } else { Some(ws) };
    Some((window_scale, bits & TS_SACK != 0))
}

/// Our SYN-ACK TSval with the option bits in its low 6 bits, never later than `ts_now`
/// (Linux `cookie_init_timestamp`: `(ts_now & !0x3f) | bits`, minus 64 if that exceeds
/// `ts_now`, in the wrapping timestamp space of RFC 7323 §5.2).
pub fn cookie_tsval(ts_now: u32, bits: u8) -> u32 {
    let ts = (ts_now & !TS_BITS_MASK) | (u32::from(bits) & TS_BITS_MASK);
    if ts > ts_now {
        ts.wrapping_sub(TS_BITS_MASK + 1)
    } else {
        ts
    }
}

fn mss_table(tuple: &FourTuple) -> &'static [u16; 4] {
    if tuple.remote_addr.is_ipv4() && tuple.local_addr.is_ipv4() {
        &MSS_V4
    } else {
        &MSS_V6
    }
}

/// The MAC: SipHash-2-4 under the epoch key of tuple hash | slot | peer ISN | MSS index | TS
/// bits, little-endian (18 bytes: two message words and a last one, which the XDP program
/// builds in registers, bpf/xdptcp.bpf.c `cookie_mac`).
fn mac(key: &Key, slot: u32, tuple_hash: u64, peer_isn: SeqNumber, mss_idx: u8, ts: u8) -> u32 {
    let mut buf = [0u8; 18];
    buf[..8].copy_from_slice(&tuple_hash.to_le_bytes());
    buf[8..12].copy_from_slice(&slot.to_le_bytes());
    buf[12..16].copy_from_slice(&peer_isn.0.to_le_bytes());
    buf[16] = mss_idx;
    buf[17] = ts;
    let mut h = SipHasher24::new_with_key(&key.0);
    h.write(&buf);
    h.finish() as u32 & MAC_MASK
}

/// Makes the cookie for a SYN under `key` in cookie slot `slot` ([`CookieKeys::current`] and
/// [`CookieKeys::slot`]): returns our ISN and the MSS we will use (the largest table entry not
/// above `peer_mss`, or the smallest entry).
///
/// `tuple` picks the MSS table (IPv4 or IPv6); `tuple_hash` is its hash
/// ([`CookieKeys::tuple_hash`], the low 32 bits of which are the SYN-ACK's timestamp offset).
/// `ts_bits` is `Some(bits)` (from [`encode_ts_bits`]) when timestamps are in use, so the
/// options ride in our TSval (see [`cookie_tsval`]); `None` otherwise, and window scale and
/// SACK are then lost, as in Linux.
pub fn make_cookie(
    key: &Key,
    slot: u32,
    tuple: &FourTuple,
    tuple_hash: u64,
    peer_isn: SeqNumber,
    peer_mss: u16,
    ts_bits: Option<u8>,
) -> (SeqNumber, u16) {
    let table = mss_table(tuple);
    let idx = table.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
    let ts = ts_bits.map_or(NO_TS, |b| b & TS_BITS_MASK as u8);
    let mac = mac(key, slot, tuple_hash, peer_isn, idx as u8, ts);
    let cookie = (slot << SLOT_SHIFT) | ((idx as u32) << MSS_SHIFT) | mac;
    (SeqNumber(cookie), table[idx])
}

/// Checks the ACK of the third step: `cookie` = SEG.ACK - 1, `peer_isn` = SEG.SEQ - 1,
/// `tsecr` = the ACK's TSecr if it carries timestamps. Accepts the current and the previous
/// slot, under every key `keys` accepts. Returns what the SYN negotiated, and which secret's
/// timestamp offsets the connection takes.
pub fn check_cookie(
    keys: &CookieKeys,
    now: Instant,
    tuple: &FourTuple,
    peer_isn: SeqNumber,
    cookie: SeqNumber,
    tsecr: Option<u32>,
) -> Result<ValidCookie, CookieError> {
    let now_slot = keys.slot(now);
    let cookie_slot = cookie.0 >> SLOT_SHIFT;
    // RFC 4987 §3.6: the time counter limits how long a cookie is replayable. The 6 bits say
    // which of the two acceptable slots it was made in; the MAC covers the full slot number,
    // so a cookie 64 slots old matches the bits but not the MAC.
    let slot = if cookie_slot == now_slot & 0x3f {
        now_slot
    } else if cookie_slot == now_slot.wrapping_sub(1) & 0x3f {
        now_slot.wrapping_sub(1)
    } else {
        return Err(CookieError::Expired);
    };
    let idx = ((cookie.0 >> MSS_SHIFT) & 0x3) as u8;
    let ts = tsecr.map_or(NO_TS, |t| (t & TS_BITS_MASK) as u8);
    let got = cookie.0 & MAC_MASK;
    let timestamp_key = keys
        .accepts(tuple, |key, hash| {
            mac(key, slot, hash, peer_isn, idx, ts) == got
        })
        .ok_or(CookieError::BadMac)?;
    let (window_scale, sack_permitted) = if ts == NO_TS {
        (None, false)
    } else {
        decode_ts_bits(ts).ok_or(CookieError::BadOptions)?
    };
    Ok(ValidCookie {
        options: SynOptions {
            mss: mss_table(tuple)[idx as usize],
            window_scale,
            sack_permitted,
        },
        timestamp_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::hash::test_util::*;
    use proptest::prelude::*;

    const SECRET: [u8; 32] = [0x11; 32];

    /// The keys of `SECRET` at `now`, rotating every `rotation_s` seconds.
    fn keys_rotating(now: Instant, rotation_s: u64) -> CookieKeys {
        CookieKeys::new(
            Secret(SECRET),
            CookieClock {
                offset_us: 0,
                rotation_us: rotation_s * 1_000_000,
            },
            now,
        )
    }

    /// The keys at `now` with the default rotation (one slot).
    fn keys(now: Instant) -> CookieKeys {
        keys_rotating(now, 64)
    }

    /// A cookie as an engine makes it at `now`.
    fn make(
        now: Instant,
        t: &FourTuple,
        isn: SeqNumber,
        mss: u16,
        ts: Option<u8>,
    ) -> (SeqNumber, u16) {
        let k = keys(now);
        make_cookie(k.current(), k.slot(now), t, k.tuple_hash(t), isn, mss, ts)
    }

    /// `check_cookie` with the keys an engine has at `now`.
    fn check(
        now: Instant,
        t: &FourTuple,
        isn: SeqNumber,
        cookie: SeqNumber,
        tsecr: Option<u32>,
    ) -> Result<SynOptions, CookieError> {
        check_cookie(&keys(now), now, t, isn, cookie, tsecr).map(|v| v.options)
    }

    /// The cookie for `t` made at `now` with the key of `now`'s epoch (rotating every 10 s).
    fn cookie_of_epoch_at(now: Instant, t: &FourTuple) -> SeqNumber {
        let k = keys_rotating(now, 10);
        make_cookie(
            k.current(),
            k.slot(now),
            t,
            k.tuple_hash(t),
            PEER_ISN,
            1500,
            None,
        )
        .0
    }

    fn t0() -> Instant {
        // The start of slot 1000.
        Instant::from_secs(64 * 1000)
    }

    const PEER_ISN: SeqNumber = SeqNumber(0xdead_beef);

    #[test]
    fn cookie_validates_in_the_same_slot_and_the_next_one() {
        let t = tuple_v4(1);
        let (cookie, mss) = make(t0(), &t, PEER_ISN, 1460, None);
        assert_eq!(mss, 1460);
        let want = SynOptions {
            mss: 1460,
            window_scale: None,
            sack_permitted: false,
        };
        for later in [0, 1, 63, 64, 127] {
            let now = t0() + Duration::from_secs(later);
            assert_eq!(
                check(now, &t, PEER_ISN, cookie, None),
                Ok(want),
                "{later} s later"
            );
        }
    }

    #[test]
    fn cookie_from_two_slots_ago_is_refused() {
        let t = tuple_v4(1);
        let (cookie, _) = make(t0() + Duration::from_secs(63), &t, PEER_ISN, 1460, None);
        let now = t0() + Duration::from_secs(128);
        assert_eq!(
            check(now, &t, PEER_ISN, cookie, None),
            Err(CookieError::Expired)
        );
    }

    #[test]
    fn cookie_from_sixty_four_slots_ago_matches_the_bits_but_not_the_mac() {
        let t = tuple_v4(1);
        let (cookie, _) = make(t0(), &t, PEER_ISN, 1460, None);
        let now = t0() + SLOT * 64;
        assert_eq!(
            check(now, &t, PEER_ISN, cookie, None),
            Err(CookieError::BadMac)
        );
    }

    #[test]
    fn cookie_made_before_the_slot_counter_wraps_is_accepted_after() {
        let t = tuple_v4(1);
        let last = Instant::from_micros((u64::from(u32::MAX)) * 64_000_000);
        let (cookie, _) = make(last, &t, PEER_ISN, 1460, None);
        assert!(check(last + SLOT, &t, PEER_ISN, cookie, None).is_ok());
    }

    #[test]
    fn tampered_mss_bits_are_refused() {
        let t = tuple_v4(1);
        let (cookie, _) = make(t0(), &t, PEER_ISN, 1460, None);
        for idx in 0..3u32 {
            let forged = SeqNumber((cookie.0 & !(3 << MSS_SHIFT)) | (idx << MSS_SHIFT));
            assert_eq!(
                check(t0(), &t, PEER_ISN, forged, None),
                Err(CookieError::BadMac)
            );
        }
    }

    #[test]
    fn tampered_tsecr_option_bits_are_refused() {
        let t = tuple_v4(1);
        let bits = encode_ts_bits(Some(7), true);
        let (cookie, _) = make(t0(), &t, PEER_ISN, 1460, Some(bits));
        let tsval = cookie_tsval(123_456_789, bits);
        assert_eq!(
            check(t0(), &t, PEER_ISN, cookie, Some(tsval)),
            Ok(SynOptions {
                mss: 1460,
                window_scale: Some(7),
                sack_permitted: true
            })
        );
        let more_scale = cookie_tsval(123_456_789, encode_ts_bits(Some(14), true));
        let no_sack = cookie_tsval(123_456_789, encode_ts_bits(Some(7), false));
        for tsecr in [Some(more_scale), Some(no_sack), None] {
            assert_eq!(
                check(t0(), &t, PEER_ISN, cookie, tsecr),
                Err(CookieError::BadMac)
            );
        }
    }

    #[test]
    fn reserved_option_bit_passes_the_mac_but_is_refused_as_bad_options() {
        let t = tuple_v4(1);
        let bits = 0x20 | encode_ts_bits(None, false);
        let (cookie, _) = make(t0(), &t, PEER_ISN, 1460, Some(bits));
        assert_eq!(
            check(t0(), &t, PEER_ISN, cookie, Some(cookie_tsval(99_999, bits))),
            Err(CookieError::BadOptions)
        );
    }

    #[test]
    fn the_tuple_hash_in_the_mac_is_the_one_whose_low_bits_are_the_timestamp_offset() {
        let k = keys(t0());
        let t = tuple_v6(3);
        let hash = k.tuple_hash(&t);
        assert_eq!(
            hash as u32,
            isn::timestamp_offset(&timestamp_key(&SECRET), &t)
        );
        let make_with =
            |hash| make_cookie(k.current(), k.slot(t0()), &t, hash, PEER_ISN, 1440, None);
        let (cookie, _) = make_with(hash);
        assert!(check(t0(), &t, PEER_ISN, cookie, None).is_ok());
        // All 64 bits are MAC input, the 32 a peer never sees included.
        for bit in [0, 31, 32, 63] {
            let (other, _) = make_with(hash ^ (1 << bit));
            assert_ne!(other, cookie, "bit {bit} of the tuple hash");
        }
    }

    #[test]
    fn cookie_for_another_tuple_or_peer_isn_is_refused() {
        let t = tuple_v4(1);
        let (cookie, _) = make(t0(), &t, PEER_ISN, 1460, None);
        assert_eq!(
            check(t0(), &tuple_v4(2), PEER_ISN, cookie, None),
            Err(CookieError::BadMac)
        );
        assert_eq!(
            check(t0(), &t, PEER_ISN + 1u32, cookie, None),
            Err(CookieError::BadMac)
        );
    }

    #[test]
    fn a_cookie_stays_valid_one_rotation_epoch_and_is_refused_two_epochs_on() {
        // Rotation every 10 s: well inside the cookie's own 64 s slot window.
        let t = tuple_v6(5);
        let at = |secs| t0() + Duration::from_secs(secs);
        let k = keys_rotating(at(1), 10);
        let (cookie, _) = make_cookie(
            k.current(),
            k.slot(at(1)),
            &t,
            k.tuple_hash(&t),
            PEER_ISN,
            1500,
            None,
        );
        let check_at = |secs| {
            check_cookie(
                &keys_rotating(at(secs), 10),
                at(secs),
                &t,
                PEER_ISN,
                cookie,
                None,
            )
        };
        assert!(check_at(1).is_ok());
        assert!(check_at(19).is_ok(), "the next epoch still takes it");
        assert_eq!(check_at(21), Err(CookieError::BadMac), "two epochs on");
        // A host (or XDP program) one epoch ahead makes a cookie this epoch already takes.
        let early = cookie_of_epoch_at(at(11), &t);
        assert!(check_cookie(&keys_rotating(at(9), 10), at(9), &t, PEER_ISN, early, None).is_ok());
    }

    #[test]
    fn advancing_keeps_the_keys_a_fresh_derivation_would_have() {
        let mut k = keys_rotating(t0(), 10);
        for secs in [0, 5, 10, 11, 25, 100, 1000] {
            let now = t0() + Duration::from_secs(secs);
            k.advance(now);
            let fresh = keys_rotating(now, 10);
            assert_eq!(k.epoch(), fresh.epoch(), "{secs} s");
            assert_eq!(k.current(), fresh.current(), "{secs} s");
            assert_eq!(k.key_of(k.epoch() + 1), epoch_key(&SECRET, k.epoch() + 1));
            assert_eq!(k.key_of(k.epoch() - 1), epoch_key(&SECRET, k.epoch() - 1));
        }
    }

    #[test]
    fn after_a_secret_is_replaced_its_cookies_last_two_more_epochs_with_its_timestamp_key() {
        let t = tuple_v4(9);
        let at = |secs| t0() + Duration::from_secs(secs);
        let mut k = keys_rotating(at(1), 10);
        let (old, _) = make_cookie(
            k.current(),
            k.slot(at(1)),
            &t,
            k.tuple_hash(&t),
            PEER_ISN,
            1460,
            None,
        );
        k.replace_secret(Secret([0x77; 32]), at(2));
        let (new, _) = make_cookie(
            k.current(),
            k.slot(at(2)),
            &t,
            k.tuple_hash(&t),
            PEER_ISN,
            1460,
            None,
        );
        assert_ne!(old, new);
        let mut later = k.clone();
        later.advance(at(12));
        let valid = check_cookie(&later, at(12), &t, PEER_ISN, new, None).unwrap();
        assert_eq!(valid.timestamp_key, timestamp_key(&[0x77; 32]));
        for (secs, old_ok) in [(2, true), (15, true), (25, true), (31, false)] {
            k.advance(at(secs));
            let got = check_cookie(&k, at(secs), &t, PEER_ISN, old, None);
            assert_eq!(
                got.is_ok(),
                old_ok,
                "old secret's cookie at {secs} s: {got:?}"
            );
            if let Ok(v) = got {
                assert_eq!(v.timestamp_key, timestamp_key(&SECRET), "{secs} s");
            }
        }
        // Replacing a secret with itself changes nothing.
        let before = k.current().to_owned();
        k.replace_secret(Secret([0x77; 32]), at(32));
        assert_eq!(*k.current(), before);
    }

    #[test]
    fn a_replaced_secrets_key_of_the_next_epoch_is_accepted_through_the_epoch_after() {
        // The XDP program has the old secret's key of the next epoch (written ahead of time)
        // and may use it until every engine knows the new secret.
        let t = tuple_v6(3);
        let at = |secs| t0() + Duration::from_secs(secs);
        let mut k = keys_rotating(at(1), 10);
        k.replace_secret(Secret([0x77; 32]), at(1));
        let old_next = cookie_of_epoch_at(at(19), &t);
        for (secs, ok) in [(19, true), (29, true), (31, false)] {
            k.advance(at(secs));
            let got = check_cookie(&k, at(secs), &t, PEER_ISN, old_next, None);
            assert_eq!(got.is_ok(), ok, "at {secs} s: {got:?}");
        }
    }

    #[test]
    fn the_cookie_clock_offset_moves_slots_and_epochs_alike() {
        let clock = CookieClock {
            offset_us: 64_000_000,
            rotation_us: 64_000_000,
        };
        let plain = CookieClock {
            offset_us: 0,
            ..clock
        };
        assert_eq!(clock.slot(t0()), plain.slot(t0()) + 1);
        assert_eq!(clock.epoch(t0()), plain.epoch(t0()) + 1);
    }

    #[test]
    fn mss_is_the_largest_table_entry_not_above_the_peers() {
        let v4 = tuple_v4(1);
        let v6 = tuple_v6(1);
        let cases = [
            (&v4, 1460, 1460),
            (&v4, 1400, 1300),
            (&v4, 100, 536),
            (&v4, 65535, 1460),
            (&v4, 1452, 1440),
            (&v6, 1440, 1440),
            (&v6, 9000, 8940),
            (&v6, 1280, 1220),
            (&v6, 0, 1220),
        ];
        for (t, peer, want) in cases {
            let (cookie, mss) = make(t0(), t, PEER_ISN, peer, None);
            assert_eq!(mss, want, "peer {peer}");
            let got = check(t0(), t, PEER_ISN, cookie, None).unwrap();
            assert_eq!(got.mss, want, "peer {peer}");
        }
    }

    #[test]
    fn random_cookies_are_refused_but_for_a_handful_in_a_hundred_thousand() {
        let t = tuple_v4(1);
        // xorshift: deterministic, no randomness generated by the module under test.
        let mut x: u32 = 0x9e37_79b9;
        let mut accepted = 0;
        for i in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Half of them carry the current slot bits so the MAC is what refuses them.
            let c = if i % 2 == 0 {
                (x & !(0x3f << SLOT_SHIFT)) | ((keys(t0()).slot(t0()) & 0x3f) << SLOT_SHIFT)
            } else {
                x
            };
            if check(t0(), &t, PEER_ISN, SeqNumber(c), None).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted <= 3, "{accepted} forged cookies accepted");
    }

    proptest! {
        #[test]
        fn random_cookie_values_are_refused(cookie: u32, isn: u32, port: u16, secs in 0u64..1 << 40) {
            let now = Instant::from_secs(secs);
            let t = tuple_v6(port);
            let (real, _) = make(now, &t, SeqNumber(isn), 1440, None);
            prop_assume!(real.0 != cookie);
            prop_assert!(check(now, &t, SeqNumber(isn), SeqNumber(cookie), None).is_err());
        }

        #[test]
        fn cookie_tsval_never_exceeds_now_and_carries_the_bits(ts_now: u32, bits in 0u8..64) {
            let ts = cookie_tsval(ts_now, bits);
            prop_assert_eq!(ts & 0x3f, u32::from(bits));
            // Not later than ts_now in the wrapping timestamp space, and less than 64 behind.
            prop_assert!(ts_now.wrapping_sub(ts) < 64);
        }

        #[test]
        fn ts_bits_round_trip(ws in proptest::option::of(0u8..=14), sack: bool) {
            let bits = encode_ts_bits(ws, sack);
            prop_assert!(bits < 0x20);
            prop_assert_eq!(decode_ts_bits(bits), Some((ws, sack)));
        }

        #[test]
        fn options_survive_the_handshake(ws in proptest::option::of(0u8..=14), sack: bool,
                                         ts_now: u32, isn: u32, mss: u16) {
            let t = tuple_v4(77);
            let bits = encode_ts_bits(ws, sack);
            let (cookie, used) = make(t0(), &t, SeqNumber(isn), mss, Some(bits));
            let got = check(t0() + SLOT, &t, SeqNumber(isn), cookie,
                                   Some(cookie_tsval(ts_now, bits)));
            prop_assert_eq!(got, Ok(SynOptions { mss: used, window_scale: ws, sack_permitted: sack }));
        }
    }

    #[test]
    fn window_scale_above_fourteen_is_clamped_and_reserved_bits_are_invalid() {
        assert_eq!(
            decode_ts_bits(encode_ts_bits(Some(200), false)),
            Some((Some(14), false))
        );
        assert_eq!(
            decode_ts_bits(encode_ts_bits(None, true)),
            Some((None, true))
        );
        assert_eq!(decode_ts_bits(0x20), None);
        assert_eq!(decode_ts_bits(0xff), None);
    }
}
