//! `--so_flags`: engine settings for one run, as `key=value` pairs separated by commas or
//! spaces. Without flags the engine runs with its defaults (Linux's where a number is needed:
//! MSS 1460, window scale 7, IW10, 40 ms delayed ACK, 200 ms minimum RTO).
//!
//! | key | value |
//! | --- | --- |
//! | `syncookies` | `always`, `auto`, `never` |
//! | `mss` | the MSS we announce |
//! | `wscale` | the window scale we offer |
//! | `timestamps`, `sack` | `0` or `1` |
//! | `syn_retries`, `synack_retries`, `retries` | retransmission limits |
//! | `recv_buffer`, `send_buffer` | bytes per connection |
//! | `initial_window` | segments |
//! | `rto_formula` | `linux` (default) or `rfc6298`: where the RTO floor applies |
//! | `rto_min_ms`, `rto_initial_ms`, `rto_max_ms`, `delayed_ack_ms`, `time_wait_ms`, `fin_wait2_ms` | timers |
//! | `max_half_open` | half-open connections before cookies (`auto`) or drops (`never`) |
//! | `local_ip` | the address an unbound `connect()` uses (IPv4 or IPv6; one per family) |
//! | `fastopen` | Linux's `net.ipv4.tcp_fastopen` bits, in hex or decimal: 0x2 serves TCP Fast Open, 0x200 takes data in a SYN without a cookie, 0x400 gives every listener Fast Open without `TCP_FASTOPEN` (its queue the `listen()` backlog); default 0x1 (Linux's: no server side) |
//! | `fastopen_key`, `fastopen_backup_key` | Fast Open keys in Linux's `net.ipv4.tcp_fastopen_key` form, four 32-bit hex words (`a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4`); default: the engine's keys, derived from its cookie secret |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use xdptcp::tcp::hash::Key;
use xdptcp::tcp::{Config, FastOpenKey, RtoFormula, Secret, SynCookieMode};

/// What `--so_flags` could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// Not `key=value`.
    #[error("`{0}` is not key=value")]
    NotPair(String),
    /// A key this shim does not know.
    #[error("unknown key `{0}` (see the shim's flags documentation)")]
    UnknownKey(String),
    /// The value does not parse for its key.
    #[error("bad value `{value}` for `{key}`")]
    BadValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
    },
}

/// Everything a run is configured with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The engine's configuration (listeners are added by `listen()`).
    pub engine: Config,
    /// The IPv4 address an unbound `connect()` sends from (`--local_ip` of packetdrill).
    pub local_v4: Ipv4Addr,
    /// The IPv6 address an unbound `connect()` sends from.
    pub local_v6: Ipv6Addr,
    /// Linux's `net.ipv4.tcp_fastopen` ([`fastopen`]).
    pub fastopen: u32,
    /// Linux's `net.ipv4.tcp_fastopen_key`: the Fast Open keys of listeners that set none.
    pub fastopen_key: Option<FastOpenKey>,
}

/// The bits of Linux's `net.ipv4.tcp_fastopen` the server side reads
/// (`include/net/tcp.h`, `Documentation/networking/ip-sysctl.rst`).
pub mod fastopen {
    /// `TFO_CLIENT_ENABLE`: Linux's default (the shim has no client side).
    pub const CLIENT: u32 = 0x1;
    /// `TFO_SERVER_ENABLE`: listeners that ask for it serve Fast Open.
    pub const SERVER: u32 = 0x2;
    /// `TFO_SERVER_COOKIE_NOT_REQD`: data in a SYN is taken without a cookie.
    pub const COOKIE_NOT_REQUIRED: u32 = 0x200;
    /// `TFO_SERVER_WO_SOCKOPT1`: every listener serves it, its queue the `listen()` backlog.
    pub const WITHOUT_SOCKOPT: u32 = 0x400;
}

/// packetdrill's usual `--local_ip` for IPv4 (Linux's selftests use it).
pub const DEFAULT_LOCAL_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// packetdrill's usual `--local_ip` for IPv6.
pub const DEFAULT_LOCAL_V6: Ipv6Addr = Ipv6Addr::new(0xfd3d, 0x0a0b, 0x17d6, 0, 0, 0, 0, 1);

impl Default for Options {
    fn default() -> Options {
        Options {
            engine: Config {
                secret: Secret(*b"xdptcp packetdrill shim secret!!"),
                ..Config::default()
            },
            local_v4: DEFAULT_LOCAL_V4,
            local_v6: DEFAULT_LOCAL_V6,
            fastopen: fastopen::CLIENT,
            fastopen_key: None,
        }
    }
}

fn bad(key: &str, v: &str) -> FlagError {
    FlagError::BadValue {
        key: key.to_string(),
        value: v.to_string(),
    }
}

fn value<T: FromStr>(key: &str, v: &str) -> Result<T, FlagError> {
    v.parse().map_err(|_| bad(key, v))
}

fn millis(key: &str, v: &str) -> Result<Duration, FlagError> {
    value::<u64>(key, v).map(Duration::from_millis)
}

/// A number in decimal, or in hex after `0x` (as sysctl takes it).
fn number(key: &str, v: &str) -> Result<u32, FlagError> {
    match v.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).map_err(|_| bad(key, v)),
        None => value(key, v),
    }
}

/// A key in `net.ipv4.tcp_fastopen_key`'s form: four 32-bit words in hex, `-` between them,
/// each stored little-endian (as Linux's `proc_tcp_fastopen_key` does on x86).
fn fastopen_key(key: &str, v: &str) -> Result<Key, FlagError> {
    let words: Vec<&str> = v.split('-').collect();
    if words.len() != 4 {
        return Err(bad(key, v));
    }
    let mut k = [0u8; 16];
    for (chunk, w) in k.chunks_mut(4).zip(words) {
        let word = u32::from_str_radix(w, 16).map_err(|_| bad(key, v))?;
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Ok(Key(k))
}

fn boolean(key: &str, v: &str) -> Result<bool, FlagError> {
    match v {
        "1" | "on" | "true" => Ok(true),
        "0" | "off" | "false" => Ok(false),
        _ => Err(bad(key, v)),
    }
}

impl Options {
    /// Parses `--so_flags` (empty: the defaults).
    pub fn parse(flags: &str) -> Result<Options, FlagError> {
        let mut o = Options::default();
        for item in flags
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| FlagError::NotPair(item.to_string()))?;
            let e = &mut o.engine;
            match k {
                "syncookies" => {
                    e.syncookies = match v {
                        "always" => SynCookieMode::Always,
                        "auto" => SynCookieMode::Auto,
                        "never" => SynCookieMode::Never,
                        _ => return Err(bad(k, v)),
                    }
                }
                "mss" => e.mss = value(k, v)?,
                "wscale" => e.window_scale = value(k, v)?,
                "timestamps" => e.timestamps = boolean(k, v)?,
                "sack" => e.sack = boolean(k, v)?,
                "syn_retries" => e.syn_retries = value(k, v)?,
                "synack_retries" => e.synack_retries = value(k, v)?,
                "retries" => e.retries = value(k, v)?,
                "recv_buffer" => e.recv_buffer = value(k, v)?,
                "send_buffer" => e.send_buffer = value(k, v)?,
                "initial_window" => e.initial_window = value(k, v)?,
                "max_half_open" => e.max_half_open = value(k, v)?,
                "rto_min_ms" => e.rto_min = millis(k, v)?,
                "rto_initial_ms" => e.rto_initial = millis(k, v)?,
                "rto_max_ms" => e.rto_max = millis(k, v)?,
                "rto_formula" => {
                    e.rto_formula = match v {
                        "linux" => RtoFormula::Linux,
                        "rfc6298" => RtoFormula::Rfc6298,
                        _ => return Err(bad(k, v)),
                    }
                }
                "delayed_ack_ms" => e.delayed_ack = millis(k, v)?,
                "time_wait_ms" => e.time_wait = millis(k, v)?,
                "fin_wait2_ms" => e.fin_wait2_timeout = millis(k, v)?,
                "local_ip" => match value::<IpAddr>(k, v)? {
                    IpAddr::V4(a) => o.local_v4 = a,
                    IpAddr::V6(a) => o.local_v6 = a,
                },
                "fastopen" => o.fastopen = number(k, v)?,
                "fastopen_key" => {
                    let primary = fastopen_key(k, v)?;
                    let backup = o.fastopen_key.and_then(|f| f.backup);
                    o.fastopen_key = Some(FastOpenKey { primary, backup });
                }
                "fastopen_backup_key" => {
                    let backup = Some(fastopen_key(k, v)?);
                    let primary = o.fastopen_key.map(|f| f.primary).ok_or_else(|| bad(k, v))?;
                    o.fastopen_key = Some(FastOpenKey { primary, backup });
                }
                _ => return Err(FlagError::UnknownKey(k.to_string())),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_give_the_linux_like_defaults() {
        let o = Options::parse("").unwrap();
        assert_eq!(o.engine.mss, 1460);
        assert_eq!(o.engine.window_scale, 7);
        assert_eq!(o.engine.initial_window, 10);
        assert_eq!(o.engine.delayed_ack, Duration::from_millis(40));
        assert_eq!(o.engine.rto_min, Duration::from_millis(200));
        assert_eq!(o.engine.rto_formula, RtoFormula::Linux);
        assert_eq!(o.local_v4, DEFAULT_LOCAL_V4);
    }

    #[test]
    fn flags_set_their_keys_and_bad_ones_are_named() {
        let o = Options::parse(
            "syncookies=always, wscale=8 local_ip=fd00::5,rto_min_ms=300,rto_max_ms=1000,rto_formula=rfc6298",
        )
        .unwrap();
        assert_eq!(o.engine.rto_formula, RtoFormula::Rfc6298);
        assert_eq!(o.engine.syncookies, SynCookieMode::Always);
        assert_eq!(o.engine.window_scale, 8);
        assert_eq!(o.engine.rto_min, Duration::from_millis(300));
        assert_eq!(o.engine.rto_max, Duration::from_millis(1000));
        assert_eq!(o.local_v6, "fd00::5".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            Options::parse("bogus=1").unwrap_err(),
            FlagError::UnknownKey("bogus".into())
        );
        assert!(matches!(
            Options::parse("mss=big"),
            Err(FlagError::BadValue { .. })
        ));
        assert_eq!(
            Options::parse("mss").unwrap_err(),
            FlagError::NotPair("mss".into())
        );
        assert!(Options::parse("syncookies=sometimes").is_err());
    }

    #[test]
    fn fastopen_flags_read_as_linux_sysctls() {
        let o = Options::parse("fastopen=0x602,fastopen_key=a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4")
            .unwrap();
        assert_eq!(o.fastopen, 0x602);
        let k = o.fastopen_key.unwrap();
        assert_eq!(
            k.primary.0[..8],
            [0xa1, 0xa1, 0xa1, 0xa1, 0xb2, 0xb2, 0xb2, 0xb2]
        );
        assert_eq!(k.backup, None);
        // Each word little-endian: what TCP_FASTOPEN_KEY takes as "\xf7\x63\xbf\xa0...".
        let o = Options::parse("fastopen_key=a0bf63f7-0-0-1,fastopen_backup_key=0-0-0-0").unwrap();
        let k = o.fastopen_key.unwrap();
        assert_eq!(k.primary.0[..4], [0xf7, 0x63, 0xbf, 0xa0]);
        assert_eq!(k.primary.0[12..], [1, 0, 0, 0]);
        assert_eq!(k.backup, Some(Key([0; 16])));
        assert_eq!(Options::parse("fastopen=3").unwrap().fastopen, 3);
        assert_eq!(Options::parse("").unwrap().fastopen, fastopen::CLIENT);
        for bad in [
            "fastopen=0xzz",
            "fastopen_key=1-2-3",
            "fastopen_key=g-0-0-0",
            "fastopen_backup_key=0-0-0-0",
        ] {
            assert!(Options::parse(bad).is_err(), "{bad}");
        }
    }
}
