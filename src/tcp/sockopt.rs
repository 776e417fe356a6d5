//! Per-connection socket options (what Linux's `setsockopt` sets on one TCP socket), kept in
//! the control block: RFC 5482's user timeout (`TCP_USER_TIMEOUT`), RFC 9293 §3.7.1's MSS
//! clamp (`TCP_MAXSEG`, RFC 6691), the receive and send buffers that bound the window we
//! offer and what the app may queue (`SO_RCVBUF`, `SO_SNDBUF`, RFC 9293 §3.8.6), and the
//! low-water mark of unsent data below which the app is told it may write
//! (`TCP_NOTSENT_LOWAT`).
//!
//! A [`super::Listener`]'s options apply to every connection it opens (as a Linux listener's
//! pass to the sockets it accepts), [`super::Engine::connect_with`]'s to its one connection;
//! the `Engine::set_*` calls change one connection's afterwards.

use std::time::Duration;

/// The largest send or receive buffer a connection may ask for: what a window scale of 14
/// can advertise (RFC 7323 §2.3), about 1 GiB. The memory budget bounds what is held.
pub const MAX_BUFFER: u32 = (u16::MAX as u32) << 14;

/// The smallest send or receive buffer a connection may ask for: a floor, as Linux's
/// `SOCK_MIN_SNDBUF` and `SOCK_MIN_RCVBUF` are (those count `sk_buff` memory, about 2 KiB
/// for one small segment), so that a buffer alone never stalls a connection.
pub const MIN_BUFFER: u32 = 1024;

/// Socket options of one connection; `None` leaves the engine's [`Config`](super::Config) in charge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnOptions {
    /// `TCP_MAXSEG`: the MSS we announce in our SYN or SYN-ACK and the most we send with, if
    /// smaller than [`Config::mss`](super::Config::mss) and the peer's (Linux's `user_mss`, which clamps
    /// `mss_clamp`). At least 64 bytes. It acts on the handshake: set on a listener or
    /// at connect time (Linux too only uses it when the MSS is computed).
    pub max_segment: Option<u16>,
    /// `SO_RCVBUF`: the receive buffer in payload bytes, in place of [`Config::recv_buffer`](super::Config::recv_buffer):
    /// the most we advertise. The window scale of the handshake is the smallest that covers
    /// it (Linux's `tcp_select_initial_window` with a locked receive buffer), so a small
    /// buffer gives window scale 0; set later, it moves the window within the scale the
    /// handshake chose and never takes back a window already offered (RFC 9293 §3.8.6).
    /// Linux doubles the value given to `SO_RCVBUF` for its `sk_buff` overhead and, with
    /// `tcp_adv_win_scale` 1, offers about half of that: about the value given, which is
    /// what the packetdrill shim passes here. Clamped to [`MIN_BUFFER`]..=[`MAX_BUFFER`].
    pub recv_buffer: Option<u32>,
    /// `SO_SNDBUF`: the send buffer in payload bytes, in place of [`Config::send_buffer`](super::Config::send_buffer):
    /// sent-but-unacknowledged plus unsent bytes the app may queue (the memory budget may
    /// allow less). Clamped to [`MIN_BUFFER`]..=[`MAX_BUFFER`]. (The packetdrill shim passes
    /// twice the `SO_SNDBUF` value, as Linux stores it.)
    pub send_buffer: Option<u32>,
    /// `TCP_USER_TIMEOUT` (RFC 5482): see [`super::Engine::set_user_timeout`].
    pub user_timeout: Option<Duration>,
    /// `TCP_NOTSENT_LOWAT`: the app is told it may write ([`crate::tcp::contract::App::on_writable`])
    /// only once fewer than this many bytes wait unsent, and [`super::Buffers::send_space`]
    /// is zero until then (Linux's `tcp_stream_memory_free`); a low mark keeps the queue of
    /// not-yet-sent data, and so the latency of what the app writes next, short.
    pub notsent_lowat: Option<u32>,
}

/// What a connection knows of itself ([`super::Engine::info`]), the fields of Linux's
/// `struct tcp_info` (`TCP_INFO`) the engine keeps as Linux means them. What it does not keep
/// is absent here, not made up: no delivery-rate sampler (`tcpi_delivery_rate` is `None`),
/// no total retransmission count, no pacing, no per-segment loss or SACK counters (the
/// packetdrill shim reports those fields as zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// The connection's state (`tcpi_state`).
    pub state: crate::state::State,
    /// The smoothed RTT (RFC 6298 SRTT, `tcpi_rtt`), once there was a sample.
    pub rtt: Option<Duration>,
    /// The RTT variation (RFC 6298 RTTVAR, `tcpi_rttvar`), once there was a sample.
    pub rttvar: Option<Duration>,
    /// The retransmission timeout now, backed off if it was (`tcpi_rto`).
    pub rto: Duration,
    /// Payload bytes per segment we send (`tcpi_snd_mss`, Linux's `mss_cache`; also what
    /// `getsockopt(TCP_MAXSEG)` returns on a connection).
    pub snd_mss: u32,
    /// Payload bytes per segment we announced we take (`tcpi_advmss` less the timestamps).
    pub rcv_mss: u32,
    /// The congestion window, bytes (`tcpi_snd_cwnd` counts segments of `snd_mss`).
    pub cwnd: u32,
    /// The slow-start threshold, bytes (`tcpi_snd_ssthresh` counts segments; very large
    /// before the first loss).
    pub ssthresh: u32,
    /// Consecutive retransmission timeouts (or unanswered window probes) since the last
    /// ACK of new data (`tcpi_retransmits`, Linux's `icsk_retransmits`).
    pub retransmits: u8,
    /// Sequence space in flight: sent and not acknowledged, SYN and FIN counting one each
    /// (`tcpi_unacked` counts segments).
    pub unacked: u32,
    /// Bytes written and not yet sent (`tcpi_notsent_bytes`).
    pub notsent: u32,
    /// The peer's window, bytes (`tcpi_snd_wnd`).
    pub snd_wnd: u32,
    /// The window still open to the peer, bytes (`tcpi_rcv_wnd`).
    pub rcv_wnd: u32,
    /// Payload bytes the peer acknowledged (`tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// In-order payload bytes received (`tcpi_bytes_received`).
    pub bytes_received: u64,
    /// Bytes per second delivered (`tcpi_delivery_rate`): `None`, the engine has no
    /// delivery-rate sampler.
    pub delivery_rate: Option<u64>,
}
