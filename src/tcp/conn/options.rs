//! A connection's socket options as its control block keeps them ([`Limits`], the compact
//! form of [`ConnOptions`]), and what they change: the MSS we send with, the window scale, the
//! receive and send buffers, the SYN's window and the `TCP_NOTSENT_LOWAT` mark.

use std::time::Duration;

use super::Conn;
use crate::tcp::Config;
use crate::tcp::negotiate::MIN_MSS;
use crate::tcp::sockopt::{ConnOptions, MAX_BUFFER, MIN_BUFFER};

/// [`ConnOptions`] as the control block keeps them: small, 0 (or `u32::MAX` for the mark) for
/// "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `TCP_USER_TIMEOUT`, milliseconds; 0: off (the retry limit alone applies).
    pub(crate) user_timeout_ms: u32,
    /// `SO_RCVBUF`, bytes; 0: [`Config::recv_buffer`].
    pub(crate) recv_buffer: u32,
    /// `SO_SNDBUF`, bytes; 0: [`Config::send_buffer`].
    pub(crate) send_buffer: u32,
    /// `TCP_NOTSENT_LOWAT`, bytes; `u32::MAX`: none.
    pub(crate) notsent_lowat: u32,
    /// `TCP_MAXSEG`; 0: none.
    pub(crate) max_segment: u16,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            user_timeout_ms: 0,
            recv_buffer: 0,
            send_buffer: 0,
            notsent_lowat: u32::MAX,
            max_segment: 0,
        }
    }
}

/// A user timeout in whole milliseconds, as Linux keeps it (longer than `u32::MAX` ms is
/// that); zero or `None` is off.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> u32 {
    timeout.map_or(0, |t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX))
}

/// A buffer size clamped to what a connection may ask for; `None` is 0 (the configuration's).
pub(crate) fn buffer(bytes: Option<u32>) -> u32 {
    bytes.map_or(0, |b| b.clamp(MIN_BUFFER, MAX_BUFFER))
}

impl Limits {
    /// The compact form of `o`.
    pub(crate) fn of(o: &ConnOptions) -> Limits {
        Limits {
            user_timeout_ms: timeout_ms(o.user_timeout),
            recv_buffer: buffer(o.recv_buffer),
            send_buffer: buffer(o.send_buffer),
            notsent_lowat: o.notsent_lowat.unwrap_or(u32::MAX),
            max_segment: o.max_segment.map_or(0, |m| m.max(MIN_MSS)),
        }
    }

    /// The options these limits stand for.
    pub(crate) fn options(&self) -> ConnOptions {
        let set = |v: u32| (v > 0).then_some(v);
        ConnOptions {
            max_segment: (self.max_segment > 0).then_some(self.max_segment),
            recv_buffer: set(self.recv_buffer),
            send_buffer: set(self.send_buffer),
            user_timeout: set(self.user_timeout_ms).map(|ms| Duration::from_millis(ms.into())),
            notsent_lowat: (self.notsent_lowat != u32::MAX).then_some(self.notsent_lowat),
        }
    }
}

impl<S> Conn<S> {
    /// Takes `options` at creation, before the handshake settles anything: the MSS we send
    /// with is clamped (RFC 6691: the smaller of what both ends allow), and the window scale
    /// shrinks to the smallest that covers a receive buffer set here.
    pub(crate) fn take_options(&mut self, options: &ConnOptions) {
        self.limits = Limits::of(options);
        self.clamp_negotiated();
    }

    /// Clamps what a handshake settled (or what our SYN offers) to the options: the MSS to
    /// `TCP_MAXSEG`, the window scale to the smallest that covers `SO_RCVBUF`'s buffer.
    pub(crate) fn clamp_negotiated(&mut self) {
        if self.limits.max_segment > 0 {
            self.opts.mss = self.opts.mss.min(self.limits.max_segment).max(MIN_MSS);
        }
        if self.limits.recv_buffer > 0 {
            let mut scale = 0;
            while scale < self.opts.rcv_wscale
                && u32::from(u16::MAX) << scale < self.limits.recv_buffer
            {
                scale += 1;
            }
            self.opts.rcv_wscale = scale;
        }
    }

    /// The MSS our SYN or SYN-ACK announces: the configured one, or the smaller
    /// `TCP_MAXSEG`.
    pub(crate) fn syn_mss(&self, cfg: &Config) -> u16 {
        match self.limits.max_segment {
            0 => cfg.mss,
            m => cfg.mss.min(m),
        }
    }

    /// The receive buffer: `SO_RCVBUF`'s, else the configured one.
    pub(crate) fn recv_buffer(&self, cfg: &Config) -> u32 {
        match self.limits.recv_buffer {
            0 => cfg.recv_buffer,
            b => b,
        }
    }

    /// The window our SYN or SYN-ACK advertises: the receive buffer, at most 65 535 bytes
    /// (RFC 7323 §2.2: "the window field in a SYN (i.e., a <SYN> or <SYN,ACK>) segment itself
    /// is never scaled"). A buffer `SO_RCVBUF` set is rounded down to whole segments of the
    /// MSS we announced, as Linux's `tcp_select_initial_window` does (`rounddown(space,
    /// mss)`: SO_RCVBUF 20000 offers 18980 with MSS 1460).
    pub(crate) fn syn_window(&self, cfg: &Config) -> u32 {
        let mut space = self.recv_buffer(cfg);
        let mss = self.rcv_payload_mss(cfg) as u32;
        if self.limits.recv_buffer > 0 && space > mss {
            space -= space % mss;
        }
        space.min(u32::from(u16::MAX))
    }

    /// The send buffer: `SO_SNDBUF`'s, else the configured one.
    pub(crate) fn send_buffer(&self, cfg: &Config) -> u32 {
        match self.limits.send_buffer {
            0 => cfg.send_buffer,
            b => b,
        }
    }

    /// Whether the unsent bytes are below `TCP_NOTSENT_LOWAT` (always without one): the app
    /// may write. `wake`: twice the unsent bytes below it, the test for telling an app that
    /// waits (Linux's `tcp_stream_memory_free(sk, wake)`, `(notsent_bytes << wake) < lowat`).
    pub(crate) fn below_lowat(&self, wake: bool) -> bool {
        ((self.unsent() as u64) << u8::from(wake)) < u64::from(self.limits.notsent_lowat)
    }
}
