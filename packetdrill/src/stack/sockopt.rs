//! Socket options: `setsockopt` and `getsockopt` (`TCP_INFO` among them), and what they
//! change in the engine (a listener's settings, a connection's options and push flags).

use std::time::Duration;

use xdptcp::state::State;
use xdptcp::tcp::{ConnId, ConnOptions, FastOpen, FastOpenKey, Keepalive, Listener};

use super::{Errno, Fd, SockOpts, SockState, Socket, Stack, SysResult};
use crate::flags::fastopen;

impl SockOpts {
    /// The engine's per-connection options these stand for. `SO_RCVBUF` gives a receive
    /// buffer (the most the window offers) of the value given: Linux doubles it for its
    /// `sk_buff` overhead and offers about half of that (`tcp_adv_win_scale` 1). `SO_SNDBUF`
    /// gives a send buffer of the doubled value in payload bytes (the shim's rule since it
    /// first took the option: Linux counts the doubled value in `sk_buff` memory).
    pub(super) fn conn_options(&self) -> ConnOptions {
        let u32_of = |b: usize| u32::try_from(b).unwrap_or(u32::MAX);
        ConnOptions {
            max_segment: (self.max_segment > 0).then_some(self.max_segment),
            recv_buffer: self.rcvbuf.map(|b| u32_of(b / 2)),
            send_buffer: self.sndbuf.map(u32_of),
            user_timeout: (self.user_timeout > 0)
                .then(|| Duration::from_millis(self.user_timeout.into())),
            notsent_lowat: (self.notsent_lowat > 0).then_some(self.notsent_lowat),
        }
    }

    /// The keepalive these options ask for, Linux's defaults filling what is not set.
    fn keepalive_settings(&self) -> Option<Keepalive> {
        let d = Keepalive::default();
        self.keepalive.then(|| Keepalive {
            idle: self
                .keep_idle
                .map_or(d.idle, |s| Duration::from_secs(s.into())),
            interval: self
                .keep_intvl
                .map_or(d.interval, |s| Duration::from_secs(s.into())),
            count: self.keep_cnt.unwrap_or(d.count),
        })
    }
}

impl Stack {
    /// `setsockopt(fd, level, name, value)` for the options the layer implements; an integer
    /// option's value is `value`'s first four bytes.
    pub fn setsockopt(&mut self, fd: Fd, level: i32, name: i32, value: &[u8]) -> SysResult<()> {
        self.note_setsockopt(fd, level, name, value);
        let s = self.sock(fd)?;
        if level == libc::IPPROTO_TCP {
            set_tcp_option(s, name, value)?;
        } else {
            set_socket_option(s, level, name, value)?;
        }
        self.apply_option(fd, level, name)
    }

    /// A keepalive or Fast Open option changed: the listener or the connection takes the new
    /// settings.
    fn apply_option(&mut self, fd: Fd, level: i32, name: i32) -> SysResult<()> {
        let keepalive_opt = matches!(
            (level, name),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE)
                | (
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL | libc::TCP_KEEPCNT
                )
        );
        let fastopen_opt = level == libc::IPPROTO_TCP
            && matches!(name, libc::TCP_FASTOPEN | libc::TCP_FASTOPEN_KEY);
        let push_opt =
            level == libc::IPPROTO_TCP && matches!(name, libc::TCP_NODELAY | libc::TCP_CORK);
        if push_opt {
            self.apply_push_options(fd);
            return Ok(());
        }
        let s = self.socket(fd)?;
        if !keepalive_opt && !fastopen_opt {
            // The engine's own per-connection options apply to a connection at once; a
            // listener's pass to the connections it accepts from now on, as in Linux.
            match &s.state {
                SockState::Connected(c) if c.alive() => {
                    let (id, opts) = (c.id, s.opts);
                    self.apply_conn_options(id, &opts);
                }
                SockState::Listening { .. } => {
                    let listener = self.listener(fd)?;
                    self.engine.unlisten(listener.addr, listener.port);
                    self.engine.listen(listener);
                }
                _ => {}
            }
            return Ok(());
        }
        match &s.state {
            SockState::Listening { .. } => {
                let listener = self.listener(fd)?;
                self.engine.unlisten(listener.addr, listener.port);
                self.engine.listen(listener);
            }
            SockState::Connected(c) if c.alive() && keepalive_opt => {
                let (id, settings) = (c.id, s.opts.keepalive_settings());
                self.engine.set_keepalive(self.now, id, settings);
            }
            _ => {}
        }
        Ok(())
    }

    /// `TCP_NODELAY` and `TCP_CORK` as the socket has them, given to its connection (if it has
    /// one yet): setting `TCP_NODELAY` or taking the cork off sends what they held.
    pub(super) fn apply_push_options(&mut self, fd: Fd) {
        let Ok(s) = self.socket(fd) else {
            return;
        };
        let (id, opts) = match &s.state {
            SockState::Connected(c) if c.alive() => (c.id, s.opts),
            SockState::Connecting { id, .. } => (*id, s.opts),
            _ => return,
        };
        self.engine.with_io(self.now, id, &mut self.tx, |_, _, io| {
            let f = io.send_flags();
            if f.nodelay != opts.nodelay || opts.nodelay {
                io.set_nodelay(opts.nodelay);
            }
            if f.cork != opts.cork {
                io.set_cork(opts.cork);
            }
        });
        self.settle();
    }

    /// Gives connection `id` the engine-side options of its socket ([`SockOpts::conn_options`];
    /// `TCP_MAXSEG` acts on the handshake only).
    pub(super) fn apply_conn_options(&mut self, id: ConnId, opts: &SockOpts) {
        let o = opts.conn_options();
        self.engine.set_user_timeout(id, o.user_timeout);
        self.engine.set_recv_buffer(id, o.recv_buffer);
        self.engine.set_send_buffer(id, o.send_buffer);
        self.engine.set_notsent_lowat(id, o.notsent_lowat);
    }

    /// The engine's listener for listening socket `fd`, with its options.
    pub(super) fn listener(&self, fd: Fd) -> SysResult<Listener> {
        let s = self.socket(fd)?;
        let SockState::Listening { key, .. } = &s.state else {
            return Err(Errno::INVAL);
        };
        Ok(Listener {
            addr: key.0,
            port: key.1,
            keepalive: s.opts.keepalive_settings(),
            fastopen: self.fastopen_of(s),
            options: s.opts.conn_options(),
        })
    }

    /// Linux's Fast Open for a listener (`tcp_fastopen_queue_check`, `inet_listen`): served if
    /// `net.ipv4.tcp_fastopen` has the server bit and the socket a queue, from
    /// `TCP_FASTOPEN` or, with bit 0x400, its backlog; the socket's key, else the global one.
    fn fastopen_of(&self, s: &Socket) -> Option<FastOpen> {
        let (sysctl, key) = self.fastopen;
        let queue = match s.opts.fastopen_queue {
            Some(q) => q,
            None if sysctl & fastopen::WITHOUT_SOCKOPT != 0 => s.backlog,
            None => 0,
        };
        (sysctl & fastopen::SERVER != 0 && queue > 0).then_some(FastOpen {
            queue,
            cookie_not_required: sysctl & fastopen::COOKIE_NOT_REQUIRED != 0,
            key: s.opts.fastopen_key.or(key),
        })
    }

    /// The MSS connection `id` sends with (`getsockopt(TCP_MAXSEG)`, Linux's `mss_cache`).
    fn maxseg(&self, id: ConnId) -> i32 {
        self.engine.info(id).map_or(536, |i| i.snd_mss as i32)
    }

    /// Linux's `struct tcp_info` for connection `id`, in the layout of `linux/tcp.h` up to
    /// `tcpi_rcv_wnd` ([`TCP_INFO_LEN`] bytes): the fields the engine keeps ([`xdptcp::tcp::TcpInfo`]),
    /// in Linux's units (microseconds, segments), the rest zero.
    fn tcp_info(&self, id: ConnId) -> Vec<u8> {
        let mut out = vec![0u8; TCP_INFO_LEN];
        let Some(i) = self.engine.info(id) else {
            return out;
        };
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let segs = |bytes: u32| bytes / i.snd_mss.max(1);
        put(0, &[linux_state(i.state), 0, i.retransmits]);
        put(8, &us(i.rto).to_ne_bytes()); // tcpi_rto
        put(16, &i.snd_mss.to_ne_bytes());
        put(20, &i.rcv_mss.to_ne_bytes());
        put(24, &segs(i.unacked).to_ne_bytes()); // tcpi_unacked, segments
        put(68, &i.rtt.map_or(0, us).to_ne_bytes()); // tcpi_rtt
        put(72, &i.rttvar.map_or(0, us).to_ne_bytes()); // tcpi_rttvar
        put(76, &segs(i.ssthresh).to_ne_bytes()); // tcpi_snd_ssthresh
        put(80, &segs(i.cwnd).to_ne_bytes()); // tcpi_snd_cwnd
        put(120, &i.bytes_acked.to_ne_bytes());
        put(128, &i.bytes_received.to_ne_bytes());
        put(144, &i.notsent.to_ne_bytes()); // tcpi_notsent_bytes
        put(160, &i.delivery_rate.unwrap_or(0).to_ne_bytes());
        put(228, &i.snd_wnd.to_ne_bytes());
        put(232, &i.rcv_wnd.to_ne_bytes());
        out
    }

    /// `getsockopt(fd, level, name)`: the option's value (an `int`, or `struct linger`).
    pub fn getsockopt(&mut self, fd: Fd, level: i32, name: i32) -> SysResult<Vec<u8>> {
        let (send_default, recv_default) = {
            let c = self.engine.config();
            (c.send_buffer as usize, c.recv_buffer as usize)
        };
        let s = self.sock(fd)?;
        let flag = |b: bool| i32::from(b);
        let clamp = |v: usize| v.min(i32::MAX as usize) as i32;
        let int = match (level, name) {
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let (on, secs) = s.opts.linger.map_or((0i32, 0i32), |l| (1, l as i32));
                return Ok([on.to_ne_bytes(), secs.to_ne_bytes()].concat());
            }
            (libc::SOL_SOCKET, libc::SO_ERROR) => s.error.take().map_or(0, |e| e.0),
            (libc::SOL_SOCKET, libc::SO_TYPE) => libc::SOCK_STREAM,
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
                flag(matches!(s.state, SockState::Listening { .. }))
            }
            (libc::SOL_SOCKET, libc::SO_REUSEADDR | libc::SO_REUSEPORT) => flag(s.opts.reuse_addr),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => flag(s.opts.keepalive),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => flag(s.opts.nodelay),
            (libc::IPPROTO_TCP, libc::TCP_CORK) => flag(s.opts.cork),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => s.opts.keep_idle.map_or(7200, |v| v as i32),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => s.opts.keep_intvl.map_or(75, |v| v as i32),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => s.opts.keep_cnt.map_or(9, |v| v as i32),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => clamp(s.opts.sndbuf.unwrap_or(send_default)),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => clamp(s.opts.rcvbuf.unwrap_or(recv_default)),
            (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if s.v6 => flag(s.opts.v6only),
            (libc::IPPROTO_TCP, libc::TCP_FASTOPEN) => {
                s.opts.fastopen_queue.map_or(0, |q| clamp(q as usize))
            }
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => clamp(s.opts.user_timeout as usize),
            (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) => s.opts.notsent_lowat as i32,
            (libc::IPPROTO_TCP, libc::TCP_INQ) => flag(s.opts.inq),
            // Linux: the MSS a connection sends with (`mss_cache`); before one, TCP_MAXSEG's
            // value, else TCP_MSS_DEFAULT (536).
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => match &s.state {
                SockState::Connected(c) if c.alive() => {
                    let id = c.id;
                    return Ok(self.maxseg(id).to_ne_bytes().to_vec());
                }
                _ if s.opts.max_segment > 0 => i32::from(s.opts.max_segment),
                _ => 536,
            },
            (libc::IPPROTO_TCP, libc::TCP_INFO) => match &s.state {
                SockState::Connected(c) if c.alive() => {
                    let id = c.id;
                    return Ok(self.tcp_info(id));
                }
                _ => return Ok(vec![0u8; TCP_INFO_LEN]),
            },
            _ => return Err(Errno::NOPROTOOPT),
        };
        Ok(int.to_ne_bytes().to_vec())
    }
}

/// [`Stack::setsockopt`] at `SOL_SOCKET` (and `IPPROTO_IPV6`'s `IPV6_V6ONLY`): the option
/// set on `s`.
fn set_socket_option(s: &mut Socket, level: i32, name: i32, value: &[u8]) -> SysResult<()> {
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR | libc::SO_REUSEPORT) => {
            s.opts.reuse_addr = int(value)? != 0;
        }
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => s.opts.keepalive = int(value)? != 0,
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            let l = value.get(..8).ok_or(Errno::INVAL)?;
            let on = i32::from_ne_bytes([l[0], l[1], l[2], l[3]]);
            let secs = i32::from_ne_bytes([l[4], l[5], l[6], l[7]]);
            s.opts.linger = (on != 0).then_some(secs.max(0) as u32);
        }
        // Linux's sock_setsockopt: twice the value, at least SOCK_MIN_SNDBUF (4608 on
        // x86-64: two sk_buffs of TCP_SKB_MIN_TRUESIZE) or SOCK_MIN_RCVBUF (2304).
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
            s.opts.sndbuf = Some(doubled(int(value)?).max(SOCK_MIN_SNDBUF));
        }
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
            s.opts.rcvbuf = Some(doubled(int(value)?).max(SOCK_MIN_RCVBUF));
        }
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if s.v6 => s.opts.v6only = int(value)? != 0,
        _ => return Err(Errno::NOPROTOOPT),
    }
    Ok(())
}

/// [`Stack::setsockopt`] at `IPPROTO_TCP`: the option set on `s`.
fn set_tcp_option(s: &mut Socket, name: i32, value: &[u8]) -> SysResult<()> {
    match name {
        libc::TCP_KEEPIDLE => s.opts.keep_idle = Some(positive(int(value)?)?),
        libc::TCP_KEEPINTVL => {
            s.opts.keep_intvl = Some(positive(int(value)?)?);
        }
        libc::TCP_KEEPCNT => s.opts.keep_cnt = Some(positive(int(value)?)?),
        libc::TCP_NODELAY => s.opts.nodelay = int(value)? != 0,
        libc::TCP_CORK => s.opts.cork = int(value)? != 0,
        // Linux: a queue for a closed or listening socket (`fastopen_queue_tune`).
        libc::TCP_FASTOPEN => {
            let open = matches!(s.state, SockState::Fresh | SockState::Listening { .. });
            let queue = u32::try_from(int(value)?).ok().filter(|_| open);
            s.opts.fastopen_queue = Some(queue.ok_or(Errno::INVAL)?);
        }
        // Linux: a 16-byte key, or 32 with a backup key after it.
        libc::TCP_FASTOPEN_KEY => {
            let key = |at: usize| {
                value.get(at..at + 16).map(|k| {
                    let mut key = [0u8; 16];
                    key.copy_from_slice(k);
                    xdptcp::tcp::hash::Key(key)
                })
            };
            let (Some(primary), 16 | 32) = (key(0), value.len()) else {
                return Err(Errno::INVAL);
            };
            s.opts.fastopen_key = Some(FastOpenKey {
                primary,
                backup: key(16),
            });
        }
        // Linux's `do_tcp_setsockopt`: a negative timeout is EINVAL, 0 turns it off.
        libc::TCP_USER_TIMEOUT => {
            s.opts.user_timeout = u32::try_from(int(value)?).map_err(|_| Errno::INVAL)?;
        }
        // Linux: 0 (none) or TCP_MIN_MSS (88) to MAX_TCP_WINDOW (32767), else EINVAL. It
        // acts when the MSS is settled: on a listener or before connect().
        libc::TCP_MAXSEG => {
            let v = int(value)?;
            if v != 0 && !(88..=32767).contains(&v) {
                return Err(Errno::INVAL);
            }
            s.opts.max_segment = v as u16;
        }
        // Linux takes any value (0: the sysctl's, by default none).
        libc::TCP_NOTSENT_LOWAT => s.opts.notsent_lowat = int(value)? as u32,
        libc::TCP_INQ => {
            let v = int(value)?;
            if !(0..=1).contains(&v) {
                return Err(Errno::INVAL);
            }
            s.opts.inq = v == 1;
        }
        _ => return Err(Errno::NOPROTOOPT),
    }
    Ok(())
}

/// An integer option's value: `value`'s first four bytes (`EINVAL` if it is shorter).
fn int(value: &[u8]) -> SysResult<i32> {
    value
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(Errno::INVAL)
}

/// A keepalive setting's value, which must be positive (`EINVAL` if not).
fn positive(v: i32) -> SysResult<u32> {
    u32::try_from(v).ok().filter(|v| *v > 0).ok_or(Errno::INVAL)
}

/// Linux's `SOCK_MIN_SNDBUF` on x86-64: the least `SO_SNDBUF` sets.
const SOCK_MIN_SNDBUF: usize = 4608;

/// Linux's `SOCK_MIN_RCVBUF` on x86-64: the least `SO_RCVBUF` sets.
const SOCK_MIN_RCVBUF: usize = 2304;

/// Twice a buffer size given to `SO_SNDBUF` or `SO_RCVBUF` (a negative one counts as 0).
fn doubled(v: i32) -> usize {
    2 * usize::try_from(v.max(0)).unwrap_or(0)
}

/// `struct tcp_info` up to `tcpi_rcv_wnd`, the last field [`Stack::getsockopt`] fills.
pub const TCP_INFO_LEN: usize = 236;

/// Linux's `TCP_*` state number (`include/net/tcp_states.h`) of `state`.
fn linux_state(state: State) -> u8 {
    match state {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}
