//! Engine configuration: Linux defaults wherever a number is needed.

use std::net::IpAddr;
use std::time::Duration;

use super::rtt::RtoFormula;
use super::secret::Secret;
use super::syncookie::{CookieClock, CookieKeys};
use crate::time::Instant;

/// When to answer SYNs with SYN cookies (RFC 4987) instead of keeping half-open state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynCookieMode {
    /// Every SYN gets a cookie; no state is kept before the third ACK.
    Always,
    /// Half-open state until [`Config::max_half_open`] is reached, cookies beyond (as Linux).
    #[default]
    Auto,
    /// Never; SYNs beyond the half-open budget are dropped.
    Never,
}

/// RFC 1122 §4.2.3.6 keepalive settings (Linux: 7200 s / 75 s / 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is aborted.
    pub count: u32,
}

impl Default for Keepalive {
    fn default() -> Keepalive {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

/// An address and port we accept connections on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// The local address, or `None` for any address that reaches this engine.
    pub addr: Option<IpAddr>,
    /// The local port.
    pub port: u16,
    /// Keepalive for connections accepted here (off when `None`).
    pub keepalive: Option<Keepalive>,
    /// TCP Fast Open (RFC 7413) for SYNs here (off when `None`).
    pub fastopen: Option<super::fastopen::FastOpen>,
    /// Socket options every connection accepted here starts with (`TCP_MAXSEG`,
    /// `SO_RCVBUF`, ...: [`super::ConnOptions`]).
    pub options: super::ConnOptions,
}

/// Everything an [`Engine`](crate::tcp::Engine) needs to know up front.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our Ethernet address (source of every frame we send).
    pub local_mac: [u8; 6],
    /// Where we accept connections.
    pub listeners: Vec<Listener>,
    /// SYN-cookie policy.
    pub syncookies: SynCookieMode,
    /// Half-open (SYN-RECEIVED) connections kept before cookies (or drops) take over.
    pub max_half_open: usize,
    /// Connections in the table (all states but TIME-WAIT).
    pub max_connections: usize,
    /// TIME-WAIT entries kept (Linux `tcp_max_tw_buckets`).
    pub max_time_wait: usize,
    /// TIME-WAIT duration, 2MSL (Linux: 60 s).
    pub time_wait: Duration,
    /// FIN-WAIT-2 timeout (Linux `tcp_fin_timeout`: 60 s).
    pub fin_wait2_timeout: Duration,
    /// The MSS we announce (link MTU minus IP and TCP headers, clamped to what one frame
    /// carries: [`crate::xdp::LinkMss`]).
    pub mss: u16,
    /// Receive buffer per connection, bytes (the most we advertise).
    pub recv_buffer: u32,
    /// Send buffer per connection, bytes.
    pub send_buffer: u32,
    /// Bytes of buffers all the connections of this engine may hold together: send, receive
    /// and reassembly buffers and SACK scoreboards, counted by capacity (Linux's `tcp_mem`
    /// high mark, per engine). Memory pressure begins above 2/3 of it and ends at 1/2 (see
    /// `tcp/budget.rs`); at the limit buffers stop growing and new connections are refused.
    /// `xdptcp serve` derives it from the machine's memory, as Linux derives `tcp_mem`.
    pub memory_limit: usize,
    /// The window scale we offer (Linux: 7).
    pub window_scale: u8,
    /// Send and accept RFC 7323 timestamps.
    pub timestamps: bool,
    /// Offer SACK-permitted.
    pub sack: bool,
    /// Initial retransmission timeout (RFC 6298: 1 s).
    pub rto_initial: Duration,
    /// Lower bound of the RTO (Linux: 200 ms).
    pub rto_min: Duration,
    /// Whether `rto_min` bounds the RTO (RFC 6298) or its variance term (Linux, the default).
    pub rto_formula: RtoFormula,
    /// Upper bound of the RTO (Linux: 120 s).
    pub rto_max: Duration,
    /// Retransmissions of data or FIN before the connection is aborted (Linux `tcp_retries2`).
    pub retries: u8,
    /// Retransmissions of our SYN (Linux `tcp_syn_retries`).
    pub syn_retries: u8,
    /// Retransmissions of our SYN-ACK (Linux `tcp_synack_retries`).
    pub synack_retries: u8,
    /// Delayed-ACK timeout (Linux: 40 ms minimum, RFC 1122: at most 500 ms).
    pub delayed_ack: Duration,
    /// Initial congestion window in segments (RFC 6928).
    pub initial_window: u32,
    /// The congestion controller (Linux's default: CUBIC).
    pub congestion_control: super::cc::Algorithm,
    /// RSTs per second we send for segments matching no connection.
    pub rst_per_second: u32,
    /// Challenge ACKs per second per connection (RFC 5961 §7).
    pub challenge_acks_per_second: u32,
    /// IPv4 TTL / IPv6 hop limit of our packets.
    pub ttl: u8,
    /// Answer segments that match no connection (and are no valid cookie ACK) with a RST.
    /// Turn it off when several engines share a link whose packets may move between them (on
    /// veth a flow can change RX queue): such segments are then dropped and counted
    /// (`unknown_connection`) instead of resetting a connection another engine owns.
    pub reset_unknown: bool,
    /// Answer segments for ports no listener serves with a RST too (rate-limited like the
    /// others), as a host that owns the whole address does. Off for the XDP server, where such a
    /// segment never arrives (or belongs to another program); on for a socket layer that owns
    /// every port of its address, as the packetdrill shim does.
    pub reset_unserved: bool,
    /// Secret seed all keyed hashes derive from (ISNs, cookies, tables, timestamps). Fill it
    /// from a CSPRNG: the engine creates no randomness of its own.
    pub secret: Secret,
    /// A secret shared by several hosts: when set, SYN-cookie keys and timestamp offsets derive
    /// from it instead of [`Config::secret`], so hosts behind one balancer validate each
    /// other's cookies (give them one clock too: [`Config::cookie_clock_offset_us`]).
    pub cookie_secret: Option<Secret>,
    /// SYN-cookie keys rotate every this long: the key of a rotation epoch derives from the
    /// cookie secret and the epoch number, so every engine and the XDP program agree on it
    /// without talking. A cookie stays valid one epoch after the one it was made in.
    pub cookie_rotation: Duration,
    /// Added to `now` (µs) for SYN-cookie slots and key epochs: the wall clock's offset from
    /// the monotonic clock, so that hosts sharing [`Config::cookie_secret`] agree on both.
    pub cookie_clock_offset_us: i64,
    /// New connections start with `TCP_NODELAY` ([`crate::tcp::contract::SendFlags`]): no Nagle
    /// delay for short segments. On by default, as nginx sets it on its connections (the
    /// built-in apps write whole responses, so Nagle would only add latency); off makes a
    /// connection start as a Linux socket does. An app changes it per connection with
    /// [`crate::tcp::contract::Io::set_nodelay`].
    pub nodelay: bool,
    /// Linux's `tcp_min_tso_segs`: the fewest segments of the bursts PSH is placed by
    /// (Linux sends a burst as TSO packets of about a millisecond at the pacing rate, at
    /// least this many segments, and marks each multi-segment one with PSH). Default 2. It
    /// moves PSH only (one transmission sends all its bursts at once: no TSO, no pacing), so
    /// `xdptcp serve` has no flag for it; the packetdrill shim sets it (`min_tso_segs=`) for
    /// scripts that set the sysctl.
    pub min_tso_segs: u32,
}

impl Config {
    /// The secret SYN-cookie keys and timestamp offsets derive from.
    pub fn cookie_master(&self) -> &Secret {
        self.cookie_secret.as_ref().unwrap_or(&self.secret)
    }

    /// The SYN-cookie keys of this configuration at `now`: what every engine built from it
    /// uses, and what the XDP program is given.
    pub fn cookie_keys(&self, now: Instant) -> CookieKeys {
        CookieKeys::new(
            *self.cookie_master(),
            CookieClock {
                offset_us: self.cookie_clock_offset_us,
                rotation_us: self.cookie_rotation.as_micros().max(1) as u64,
            },
            now,
        )
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            local_mac: [0; 6],
            listeners: Vec::new(),
            syncookies: SynCookieMode::Auto,
            max_half_open: 4096,
            max_connections: 1 << 20,
            max_time_wait: 262_144,
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            mss: 1460,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
            memory_limit: 1 << 30,
            window_scale: 7,
            timestamps: true,
            sack: true,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_formula: RtoFormula::Linux,
            rto_max: Duration::from_secs(120),
            retries: 15,
            syn_retries: 6,
            synack_retries: 5,
            delayed_ack: Duration::from_millis(40),
            initial_window: 10,
            congestion_control: super::cc::Algorithm::Cubic,
            rst_per_second: 1000,
            challenge_acks_per_second: 10,
            ttl: 64,
            reset_unknown: true,
            reset_unserved: false,
            secret: Secret::default(),
            cookie_secret: None,
            cookie_rotation: Duration::from_secs(64),
            cookie_clock_offset_us: 0,
            nodelay: true,
            min_tso_segs: 2,
        }
    }
}
