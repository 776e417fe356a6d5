//! TCP Fast Open, server side (RFC 7413), as Linux does it (`net/ipv4/tcp_fastopen.c`).
//!
//! Read first: RFC 7413 §3 (the exchange), §4.1.2 ("Server Cookie Handling": the cookie is a
//! MAC of the client's IP address under a secret key the server may change), §4.2.2 (the
//! server "MAY" hand the SYN's data to the application before the handshake completes, and
//! acknowledges it in the SYN-ACK), §5.1 (resource exhaustion: a limit on the TFO
//! connections that have not completed their handshake).
//!
//! # The cookie
//!
//! Linux's `__tcp_fastopen_cookie_gen_cipher`: SipHash-2-4 under a 128-bit key over the SYN's
//! source and destination addresses (4 + 4 bytes, or 16 + 16 for IPv6), the 64-bit result in
//! little-endian order: 8 bytes. The same key gives the same cookie as a Linux server (the
//! kernel's packetdrill selftests pin the cookies of their key, and the tests here check
//! them). The key comes from the cookie secret and the rotation epoch, as the SYN-cookie keys
//! do ([`epoch_key`]): every engine and every host sharing the secret gives and takes the same
//! cookies without a message. Cookies of the current epoch's key and of the previous one are
//! taken (Linux's primary and backup keys): a cookie lasts one to two rotation epochs
//! ([`Config::cookie_rotation`](super::Config::cookie_rotation)). A listener may be given a
//! fixed key instead ([`FastOpenKey`], Linux's `TCP_FASTOPEN_KEY`).
//!
//! # What a SYN to a Fast Open listener gets (`tcp_try_fastopen`)
//!
//! | the SYN | the answer |
//! | --- | --- |
//! | no data, no cookie option | a normal handshake |
//! | an empty cookie option (a request) | a normal handshake; the SYN-ACK carries a cookie |
//! | a valid cookie (with data or without) | a TFO connection: SYN-RECEIVED, the data taken and acknowledged in the SYN-ACK, the app told at once |
//! | a cookie of the previous key | the same, and the SYN-ACK carries a fresh cookie |
//! | a bad cookie | a normal handshake; the data is not acknowledged; the SYN-ACK carries a valid cookie |
//! | data without a cookie option | a normal handshake, the data not acknowledged (unless the listener does not require cookies) |
//! | any of these with the queue full | a normal handshake, no cookie |
//!
//! The SYN-ACK answers in the option kind the client used (34, or the experimental 254).
//! Unlike Linux, which tries no Fast Open while it sends SYN cookies (`tcp_conn_request` calls
//! `tcp_try_fastopen` only `if (!want_cookie)`), a valid cookie opens a TFO connection also
//! when the half-open budget is full or cookies are always on: the cookie proves the client's
//! address as a SYN cookie's ACK would, one round trip earlier, and the queue bounds what it
//! costs. Those are counted apart (`fastopen_over_budget`).

use core::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

use super::hash::{Key, derive_key};
use super::syncookie::CookieKeys;
use super::{ConnId, FourTuple, Secret};
use crate::stats::Stats;
use crate::wire::tcp::{FastOpenOption, Repr as TcpRepr};

/// Bytes of the cookies we make (Linux `TCP_FASTOPEN_COOKIE_SIZE`).
pub const COOKIE_LEN: usize = 8;

/// Fast Open on a listener: Linux's `TCP_FASTOPEN` socket option (its value is the queue) with
/// the server bits of `net.ipv4.tcp_fastopen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastOpen {
    /// TFO connections that may wait for the third ACK of their handshake at once (Linux
    /// `max_qlen`); beyond, a TFO SYN gets a normal handshake (RFC 7413 §5.1).
    pub queue: u32,
    /// Take data in a SYN that carries no cookie (Linux `TFO_SERVER_COOKIE_NOT_REQD`, bit
    /// 0x200 of `net.ipv4.tcp_fastopen`). Anyone who can forge an address then makes us keep
    /// state and data with one packet: for tests.
    pub cookie_not_required: bool,
    /// A fixed key (Linux `TCP_FASTOPEN_KEY`); `None`: keys derived from the cookie secret,
    /// one per rotation epoch.
    pub key: Option<FastOpenKey>,
}

impl FastOpen {
    /// Fast Open with a queue of `queue` connections, cookies required, keys from the cookie
    /// secret.
    pub fn with_queue(queue: u32) -> FastOpen {
        FastOpen {
            queue,
            cookie_not_required: false,
            key: None,
        }
    }
}

/// A fixed Fast Open key: cookies are made under `primary`; those made under `backup` are
/// taken too (Linux's two keys, so a key can be replaced without refusing the cookies clients
/// hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastOpenKey {
    /// The key cookies are made with.
    pub primary: Key,
    /// A key whose cookies are still taken.
    pub backup: Option<Key>,
}

/// The cookie of a client at `client` for a server at `server` under `key` (Linux's, see the
/// module documentation): SipHash-2-4 over both addresses, little-endian.
pub fn cookie(key: &Key, client: IpAddr, server: IpAddr) -> [u8; COOKIE_LEN] {
    let mut h = SipHasher24::new_with_key(&key.0);
    match (client, server) {
        (IpAddr::V4(c), IpAddr::V4(s)) => {
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&c.octets());
            buf[4..].copy_from_slice(&s.octets());
            h.write(&buf);
        }
        (c, s) => {
            let mut buf = [0u8; 32];
            buf[..16].copy_from_slice(&v6_octets(c));
            buf[16..].copy_from_slice(&v6_octets(s));
            h.write(&buf);
        }
    }
    h.finish().to_le_bytes()
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The Fast Open key of rotation epoch `epoch` under the cookie secret `secret`.
pub fn epoch_key(secret: &[u8; 32], epoch: u64) -> Key {
    let mut label = [0u8; 16];
    label[..8].copy_from_slice(b"fastopen");
    label[8..].copy_from_slice(&epoch.to_be_bytes());
    derive_key(secret, &label)
}

/// The derived keys, following the SYN-cookie keys' secret and epoch: this epoch's, and the
/// one before it (the previous epoch's, or the replaced secret's current one).
#[derive(Debug, Clone)]
struct EpochKeys {
    secret: Secret,
    epoch: u64,
    current: Key,
    previous: Key,
}

impl EpochKeys {
    fn new(cookies: &CookieKeys) -> EpochKeys {
        let (secret, epoch) = (*cookies.secret(), cookies.epoch());
        EpochKeys {
            current: epoch_key(&secret.0, epoch),
            previous: epoch_key(&secret.0, epoch.wrapping_sub(1)),
            secret,
            epoch,
        }
    }

    /// Moves to `cookies`' epoch and secret (cheap when neither changed).
    fn follow(&mut self, cookies: &CookieKeys) {
        let (secret, epoch) = (cookies.secret(), cookies.epoch());
        if *secret == self.secret && epoch == self.epoch {
            return;
        }
        let previous = if *secret != self.secret || epoch == self.epoch.wrapping_add(1) {
            // A new secret: the old one's cookies are taken for one more epoch, as SYN
            // cookies are (`CookieKeys::replace_secret`).
            self.current
        } else {
            epoch_key(&secret.0, epoch.wrapping_sub(1))
        };
        *self = EpochKeys {
            secret: *secret,
            epoch,
            current: epoch_key(&secret.0, epoch),
            previous,
        };
    }
}

/// Which key a cookie was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Primary,
    Backup,
    Neither,
}

/// What a SYN to a Fast Open listener gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A TFO connection: the SYN's data is taken and acknowledged in the SYN-ACK, which
    /// carries `reply` (a fresh cookie when the SYN's was made with the backup key:
    /// `alt_key`).
    Open {
        reply: Option<FastOpenOption>,
        alt_key: bool,
    },
    /// A normal handshake; the data is not taken; the SYN-ACK carries `reply`.
    Handshake { reply: Option<FastOpenOption> },
}

/// The engine's Fast Open state: the derived keys, and per listener the TFO connections that
/// may still be waiting for their third ACK (checked lazily, when the queue looks full).
#[derive(Debug, Clone)]
pub(crate) struct Passive {
    keys: EpochKeys,
    /// Per listener index: (connection, its slot's generation) of each TFO connection opened.
    pending: Vec<Vec<(ConnId, u32)>>,
}

impl Passive {
    /// No TFO connection yet; keys as `cookies` has them.
    pub(crate) fn new(cookies: &CookieKeys) -> Passive {
        Passive {
            keys: EpochKeys::new(cookies),
            pending: Vec::new(),
        }
    }

    /// Moves the derived keys to the epoch and secret of `cookies` (the SYN-cookie keys,
    /// advanced to now).
    pub(crate) fn follow(&mut self, cookies: &CookieKeys) {
        self.keys.follow(cookies);
    }

    /// `tcp_try_fastopen` for a SYN `seg` of connection `tuple` on a listener (index
    /// `listener`) with Fast Open `fo`, the keys followed to now ([`Passive::follow`]). Counts
    /// what it saw. `waiting(id, generation)`: whether a TFO connection this listener opened
    /// is still there and still waiting for its third ACK.
    pub(crate) fn decide(
        &mut self,
        fo: &FastOpen,
        stats: &mut Stats,
        waiting: impl Fn(ConnId, u32) -> bool,
        listener: u8,
        tuple: &FourTuple,
        seg: &TcpRepr<'_>,
    ) -> Decision {
        let (client, server) = (tuple.remote_addr, tuple.local_addr);
        let option = seg.options.fast_open;
        let syn_data = !seg.payload.is_empty();
        if option.is_some_and(|o| o.is_request()) {
            stats.fastopen_cookie_requests += 1;
        }
        let no_tfo = Decision::Handshake { reply: None };
        if !syn_data && option.is_none() {
            return no_tfo;
        }
        // Linux checks the queue before the cookie, "to avoid burning CPU cycles", so a full
        // queue gets no cookie either.
        if !self.has_room(fo.queue, listener, waiting) {
            stats.fastopen_listen_overflow += 1;
            return no_tfo;
        }
        if syn_data && fo.cookie_not_required {
            return Decision::Open {
                reply: None,
                alt_key: false,
            };
        }
        let Some(option) = option else {
            return no_tfo;
        };
        let (primary, backup) = match fo.key {
            Some(k) => (k.primary, k.backup),
            None => (self.keys.current, Some(self.keys.previous)),
        };
        let fresh = cookie(&primary, client, server);
        let fresh_option = FastOpenOption::with_cookie(&fresh, option.experimental);
        if option.is_request() {
            return Decision::Handshake {
                reply: fresh_option,
            };
        }
        let presented = option.cookie();
        let matched = if presented == fresh {
            Match::Primary
        } else if backup.is_some_and(|k| presented == cookie(&k, client, server)) {
            Match::Backup
        } else {
            Match::Neither
        };
        match matched {
            Match::Primary => Decision::Open {
                reply: None,
                alt_key: false,
            },
            Match::Backup => Decision::Open {
                reply: fresh_option,
                alt_key: true,
            },
            Match::Neither => {
                stats.fastopen_passive_fail += 1;
                Decision::Handshake {
                    reply: fresh_option,
                }
            }
        }
    }

    /// Whether listener `listener` may open one more TFO connection under a queue of
    /// `queue`: the connections it opened that are still waiting for their third ACK are
    /// counted (those gone, or past it, are forgotten) only when the list looks full.
    fn has_room(
        &mut self,
        queue: u32,
        listener: u8,
        waiting: impl Fn(ConnId, u32) -> bool,
    ) -> bool {
        let Some(list) = self.pending.get_mut(usize::from(listener)) else {
            return queue > 0;
        };
        if list.len() >= queue as usize {
            list.retain(|&(id, generation)| waiting(id, generation));
        }
        list.len() < queue as usize
    }

    /// Listener `listener` opened TFO connection `id` (its slot's generation `generation`).
    pub(crate) fn opened(&mut self, listener: u8, id: ConnId, generation: u32) {
        let at = usize::from(listener);
        if self.pending.len() <= at {
            self.pending.resize_with(at + 1, Vec::new);
        }
        self.pending[at].push((id, generation));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::syncookie::CookieClock;
    use crate::time::Instant;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The key the kernel's packetdrill selftests set (`defaults.sh`:
    /// `tcp_fastopen_key=a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4`, each word little-endian).
    const KSFT_KEY: Key = Key([
        0xa1, 0xa1, 0xa1, 0xa1, 0xb2, 0xb2, 0xb2, 0xb2, 0xc3, 0xc3, 0xc3, 0xc3, 0xd4, 0xd4, 0xd4,
        0xd4,
    ]);

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn cookies_are_the_ones_linux_makes_under_the_same_key() {
        // ksft_runner.sh's TFO_COOKIE and TFO_COOKIE_ZERO for its addresses.
        let (c4, s4) = (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
        );
        let c6: IpAddr = "fd3d:fa7b:d17d::1".parse().unwrap();
        let s6: IpAddr = "fd3d:a0b:17d6::1".parse().unwrap();
        assert_eq!(hex(&cookie(&KSFT_KEY, c4, s4)), "3021b9d889017eeb");
        assert_eq!(hex(&cookie(&Key([0; 16]), c4, s4)), "b7c12350a90dc8f5");
        assert_eq!(hex(&cookie(&KSFT_KEY, c6, s6)), "c1d1e9742a47a9bc");
        assert_eq!(hex(&cookie(&Key([0; 16]), c6, s6)), "82af1a8f9a205c34");
        // google/packetdrill's simple1.pkt: key a0bf63f7-ed803d81-cd641d30-cebc4a90.
        let key = Key([
            0xf7, 0x63, 0xbf, 0xa0, 0x81, 0x3d, 0x80, 0xed, 0x30, 0x1d, 0x64, 0xcd, 0x90, 0x4a,
            0xbc, 0xce,
        ]);
        let (c, s) = (
            IpAddr::V4(Ipv4Addr::new(10, 248, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2)),
        );
        assert_eq!(hex(&cookie(&key, c, s)), "00abaaabe8e954c2");
    }

    #[test]
    fn the_cookie_is_bound_to_both_addresses() {
        let k = Key([7; 16]);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let c = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_ne!(cookie(&k, a, b), cookie(&k, b, a));
        assert_ne!(cookie(&k, a, b), cookie(&k, a, c));
        assert_ne!(cookie(&k, a, b), cookie(&Key([8; 16]), a, b));
    }

    fn cookie_keys(secret: [u8; 32], secs: u64) -> CookieKeys {
        CookieKeys::new(
            Secret(secret),
            CookieClock {
                offset_us: 0,
                rotation_us: 10_000_000,
            },
            Instant::from_secs(secs),
        )
    }

    #[test]
    fn keys_follow_the_cookie_epochs_and_keep_the_one_before() {
        let secret = [3; 32];
        let mut k = EpochKeys::new(&cookie_keys(secret, 100));
        assert_eq!(k.current, epoch_key(&secret, 10));
        assert_eq!(k.previous, epoch_key(&secret, 9));
        let mut cookies = cookie_keys(secret, 100);
        cookies.advance(Instant::from_secs(112));
        k.follow(&cookies);
        assert_eq!(
            (k.current, k.previous),
            (epoch_key(&secret, 11), epoch_key(&secret, 10))
        );
        cookies.advance(Instant::from_secs(150));
        k.follow(&cookies);
        assert_eq!(
            (k.current, k.previous),
            (epoch_key(&secret, 15), epoch_key(&secret, 14))
        );
        // A replaced secret: its last key stays the backup for one epoch.
        let old = k.current;
        cookies.replace_secret(Secret([4; 32]), Instant::from_secs(151));
        k.follow(&cookies);
        assert_eq!((k.current, k.previous), (epoch_key(&[4; 32], 15), old));
        // Hosts sharing the secret derive the same keys; another secret, others.
        assert_eq!(
            EpochKeys::new(&cookie_keys(secret, 100)).current,
            epoch_key(&secret, 10)
        );
        assert_ne!(epoch_key(&secret, 10), epoch_key(&[4; 32], 10));
        assert_ne!(
            epoch_key(&secret, 10),
            crate::tcp::syncookie::epoch_key(&secret, 10)
        );
    }
}
