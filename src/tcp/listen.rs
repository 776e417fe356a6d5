//! LISTEN (RFC 9293 §3.10.7.2): a segment for a served port that matches no connection.
//!
//! In the RFC's order: a RST is dropped; an ACK is bad ("an acceptable reset segment should
//! be formed") unless it completes a SYN-cookie handshake (RFC 4987 §3.6), which opens the
//! connection directly in ESTABLISHED; a SYN opens a SYN-RECEIVED connection, or, when the
//! half-open budget is spent (or always, if configured), gets a stateless cookie SYN-ACK.
//! On a Fast Open listener a SYN with a valid cookie opens a connection that takes the SYN's
//! data at once (RFC 7413 §4.2.2, [`super::fastopen`]). Segments that match nothing are
//! answered with a rate-limited RST (§3.10.7.1). When the engine's memory budget is spent, new
//! connections are refused, silently (the peer's SYN or cookie ACK is retransmitted and taken
//! once memory is free again), and counted.

use super::conn::Conn;
use super::conn_table::ConnTable;
use super::event::Stateless;
use super::fastopen::{self, Decision};
use super::hash::Keys;
use super::negotiate::{Negotiated, default_mss};
use super::rate_limit::RateLimiter;
use super::route::Route;
use super::syncookie::{self, CookieError, CookieKeys, ValidCookie};
use super::timer::Timer;
use super::{Config, ConnId, ConnOptions, Secret, SynCookieMode, isn, output};
use crate::state::State;
use crate::stats::DropReason;
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::tcp::{FastOpenOption, Flags, Options, Repr as TcpRepr};
use core::ops::ControlFlow;
use core::time::Duration;

/// What the listeners remember between segments: the SYN-cookie keys, when cookies were last
/// sent (here or, for us, by the XDP program), whether new connections are welcome, and the RST
/// budget.
#[derive(Debug)]
pub(crate) struct Listen {
    cookies: CookieKeys,
    /// When we last sent a SYN cookie (`auto` takes cookie ACKs only while cookies are live).
    last_cookie_at: Option<Instant>,
    /// The XDP program's cookie mode for our queue.
    xdp: XdpCookieMode,
    /// False once draining: SYNs get a RST.
    accepting: bool,
    /// RSTs for segments that match no connection.
    rst_limiter: RateLimiter,
    /// TCP Fast Open: its keys and the TFO connections waiting for their third ACK.
    fastopen: fastopen::Passive,
}

/// What became of a segment that reached a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// Nothing follows: it was answered statelessly, or dropped and counted.
    Done,
    /// A new SYN-RECEIVED connection; its SYN-ACK is sent, its timer is to be scheduled.
    HalfOpen(ConnId),
    /// A new TCP Fast Open connection, in SYN-RECEIVED with the SYN's data; its SYN-ACK is
    /// sent, the app is to be told (RFC 7413 §4.2.2).
    FastOpen(ConnId),
    /// A valid cookie ACK made this ESTABLISHED connection; the segment goes on to it (it may
    /// carry data, or even a FIN).
    Established(ConnId),
}

/// How long the XDP program's cookie mode stays on at least, and the window over which its
/// SYN-ACKs are counted to decide whether the flood goes on.
pub(crate) const XDP_COOKIE_HOLD: Duration = Duration::from_secs(2);

/// The hysteresis of the XDP program's cookie mode (`auto`): on when the half-open budget is
/// full, off only once the half-open table has drained below half the budget *and* the program
/// answered fewer SYNs than one budget's worth over the last [`XDP_COOKIE_HOLD`] (so a flood
/// whose RST backscatter empties the half-open table keeps it on).
#[derive(Debug, Clone, Copy, Default)]
struct XdpCookieMode {
    on: bool,
    /// When the counting window began, and the program's SYN-ACK count then.
    window: Option<(Instant, u64)>,
}

impl Listen {
    /// Listeners for `cfg`, SYN-cookie keys as of `now`.
    pub(crate) fn new(cfg: &Config, now: Instant) -> Listen {
        let cookies = cfg.cookie_keys(now);
        Listen {
            fastopen: fastopen::Passive::new(&cookies),
            cookies,
            last_cookie_at: None,
            xdp: XdpCookieMode::default(),
            accepting: true,
            rst_limiter: RateLimiter::new(cfg.rst_per_second, cfg.rst_per_second.max(1)),
        }
    }

    /// Stop accepting: SYNs are answered with a RST from now on. True if it was accepting.
    pub(crate) fn stop_accepting(&mut self) -> bool {
        std::mem::replace(&mut self.accepting, false)
    }

    /// Replaces the SYN-cookie secret at `now`; cookies under the old one stay valid for the
    /// rest of the next rotation epoch.
    pub(crate) fn replace_cookie_secret(&mut self, secret: Secret, now: Instant) {
        self.cookies.replace_secret(secret, now);
    }

    /// Whether the XDP program should answer our queue's SYNs with cookies, given the count of
    /// SYN-ACKs it sent so far (`xdp_cookies`) and the half-open connections we hold. While it
    /// does, cookie ACKs are taken as if we had sent the cookies ourselves.
    pub(crate) fn poll_xdp_cookie_mode(
        &mut self,
        cfg: &Config,
        now: Instant,
        half_open: usize,
        xdp_cookies: u64,
    ) -> bool {
        let budget = cfg.max_half_open;
        let on = match cfg.syncookies {
            _ if !self.accepting => false,
            SynCookieMode::Never => false,
            SynCookieMode::Always => true,
            SynCookieMode::Auto if !self.xdp.on => half_open >= budget,
            SynCookieMode::Auto => match self.xdp.window {
                Some((start, count)) if now.saturating_since(start) >= XDP_COOKIE_HOLD => {
                    let answered = xdp_cookies.saturating_sub(count);
                    let flood = answered >= budget as u64 || half_open >= budget / 2;
                    self.xdp.window = Some((now, xdp_cookies));
                    flood
                }
                _ => true,
            },
        };
        if on && !self.xdp.on {
            self.xdp.window = Some((now, xdp_cookies));
        }
        if on {
            self.last_cookie_at = Some(now);
        }
        self.xdp.on = on;
        on
    }

    /// RFC 9293 §3.10.7.2, LISTEN state (plus the SYN-cookie ACK of RFC 4987), for a segment
    /// that reached `listener` on `route`. (`sx` comes by value: a local context the optimizer
    /// keeps in registers on the SYN path.)
    pub(crate) fn handle_segment<S: Default, T: Tx>(
        &mut self,
        mut sx: Stateless<'_, T>,
        conns: &mut ConnTable<Conn<S>>,
        listener: u8,
        route: &Route,
        seg: &TcpRepr<'_>,
    ) -> Accept {
        // "First, check for a RST: an incoming RST segment could not be valid since it could
        // not have been sent in response to anything sent by this incarnation."
        if seg.flags.contains(Flags::RST) {
            sx.stats.drop(DropReason::RstNoConnection);
            return Accept::Done;
        }
        // "Second, check for an ACK: any acknowledgment is bad if it arrives on a connection
        // still in the LISTEN state. An acceptable reset segment should be formed [...]" —
        // unless it completes a SYN-cookie handshake.
        if seg.flags.contains(Flags::ACK) {
            if !seg.flags.contains(Flags::SYN) && self.cookies_live(sx.cfg, sx.now) {
                match self.check_cookie_ack(sx.now, route, seg) {
                    Ok(_) if self.accepting && sx.memory_full => {
                        sx.stats.drop(DropReason::CookieMemory);
                        return Accept::Done;
                    }
                    Ok(valid) if self.accepting => {
                        return established_by_cookie(&mut sx, conns, listener, route, seg, &valid);
                    }
                    Ok(_) => {
                        sx.stats.drop(DropReason::TableFull);
                        return Accept::Done;
                    }
                    Err(CookieError::Expired) => sx.stats.drop(DropReason::ExpiredCookie),
                    Err(_) => sx.stats.drop(DropReason::BadCookie),
                }
            }
            if !sx.cfg.reset_unknown {
                sx.stats.drop(DropReason::UnknownConnection);
                return Accept::Done;
            }
            self.reset(&mut sx, route, seg);
            return Accept::Done;
        }
        // "Third, check for a SYN."
        sx.stats.syns_received += 1;
        if !self.accepting {
            self.reset(&mut sx, route, seg);
            return Accept::Done;
        }
        if sx.memory_full {
            sx.stats.drop(DropReason::SynMemory);
            return Accept::Done;
        }
        let policy = syn_policy(&sx);
        let reply = match self.fast_open(&mut sx, conns, listener, route, seg, policy) {
            ControlFlow::Break(done) => return done,
            ControlFlow::Continue(reply) => reply,
        };
        let use_cookie = match policy {
            Ok(cookie) => cookie,
            Err(reason) => {
                sx.stats.drop(reason);
                return Accept::Done;
            }
        };
        if use_cookie {
            self.send_cookie_syn_ack(&mut sx, route, seg, reply);
            return Accept::Done;
        }
        if !has_room(&mut sx, conns) {
            return Accept::Done;
        }
        let c = syn_received(&sx, listener, route, seg);
        match insert_syn_received(&mut sx, conns, c, reply) {
            Some(id) => Accept::HalfOpen(id),
            None => Accept::Done,
        }
    }

    /// A SYN on a Fast Open listener ([`fastopen`]): `Break` when it opened a TFO connection
    /// (or could not, counted), `Continue` with the Fast Open option for the SYN-ACK of the
    /// ordinary handshake it gets (`policy`: what [`syn_policy`] said, for the counters).
    fn fast_open<S: Default, T: Tx>(
        &mut self,
        sx: &mut Stateless<'_, T>,
        conns: &mut ConnTable<Conn<S>>,
        listener: u8,
        route: &Route,
        seg: &TcpRepr<'_>,
        policy: Result<bool, DropReason>,
    ) -> ControlFlow<Accept, Option<FastOpenOption>> {
        let listening = sx.cfg.listeners.get(usize::from(listener));
        let Some(fo) = listening.and_then(|l| l.fastopen) else {
            return ControlFlow::Continue(None);
        };
        self.cookies.advance(sx.now);
        self.fastopen.follow(&self.cookies);
        let waiting = |id, generation| {
            conns.generation(id) == generation && conns.get(id).is_some_and(|c| c.fastopen)
        };
        let decision = self
            .fastopen
            .decide(&fo, sx.stats, waiting, listener, &route.tuple, seg);
        let (reply, alt_key) = match decision {
            Decision::Open { reply, alt_key } => (reply, alt_key),
            Decision::Handshake { reply } => return ControlFlow::Continue(reply),
        };
        let opened = if has_room(sx, conns) {
            let c = fast_open_conn(sx, listener, route, seg);
            insert_syn_received(sx, conns, c, reply)
        } else {
            None
        };
        let Some(id) = opened else {
            sx.stats.fastopen_passive_fail += 1;
            return ControlFlow::Break(Accept::Done);
        };
        self.fastopen.opened(listener, id, conns.generation(id));
        sx.stats.fastopen_passive += 1;
        sx.stats.fastopen_passive_alt_key += u64::from(alt_key);
        sx.stats.fastopen_over_budget += u64::from(policy != Ok(false));
        ControlFlow::Break(Accept::FastOpen(id))
    }

    /// Whether an ACK may complete a cookie handshake. Like Linux, `auto` only takes one while
    /// cookies were being sent (within the two slots a cookie stays valid), here or by the XDP
    /// program in front of us.
    pub(crate) fn cookies_live(&self, cfg: &Config, now: Instant) -> bool {
        match cfg.syncookies {
            SynCookieMode::Always => true,
            SynCookieMode::Auto => self
                .last_cookie_at
                .is_some_and(|t| now.saturating_since(t) <= 2 * syncookie::SLOT),
            SynCookieMode::Never => false,
        }
    }

    /// The RST of RFC 9293 §3.10.7.1 for a segment that matches nothing, within the RST
    /// budget; never for a RST.
    pub(crate) fn reset<T: Tx>(
        &mut self,
        sx: &mut Stateless<'_, T>,
        route: &Route,
        seg: &TcpRepr<'_>,
    ) {
        if seg.flags.contains(Flags::RST) {
            return;
        }
        if !self.rst_limiter.allow(sx.now) {
            return sx.stats.drop(DropReason::RstRateLimited);
        }
        output::send_reset_for(sx, route, seg);
    }

    /// A stateless SYN-ACK whose ISN is a SYN cookie (RFC 4987 §3.6), with `reply` as its
    /// Fast Open option.
    fn send_cookie_syn_ack<T: Tx>(
        &mut self,
        sx: &mut Stateless<'_, T>,
        route: &Route,
        seg: &TcpRepr<'_>,
        reply: Option<FastOpenOption>,
    ) {
        self.cookies.advance(sx.now);
        let ipv4 = route.tuple.remote_addr.is_ipv4();
        let opts = Negotiated::from_syn(sx.cfg, ipv4, &seg.options);
        let peer_mss = seg.options.mss.unwrap_or(default_mss(ipv4));
        // The options ride in our TSval only if timestamps are in use (the peer sent them and
        // we take them); otherwise the ACK carries no TSecr to give them back.
        let ts_bits = seg
            .options
            .timestamp
            .filter(|_| sx.cfg.timestamps)
            .map(|_| {
                syncookie::encode_ts_bits(
                    seg.options.window_scale.filter(|_| opts.rcv_wscale > 0),
                    opts.sack,
                )
            });
        // One SipHash over the tuple gives the MAC's input and the timestamp offset (its low
        // 32 bits: `isn::timestamp_offset`).
        let tuple_hash = self.cookies.tuple_hash(&route.tuple);
        let (iss, _mss) = syncookie::make_cookie(
            self.cookies.current(),
            self.cookies.slot(sx.now),
            &route.tuple,
            tuple_hash,
            seg.seq,
            peer_mss,
            ts_bits,
        );
        let ts = match (ts_bits, seg.options.timestamp) {
            (Some(bits), Some((tsval, _))) if sx.cfg.timestamps => {
                let ts_now = sx.now.wrapping_millis().wrapping_add(tuple_hash as u32);
                Some((syncookie::cookie_tsval(ts_now, bits), tsval))
            }
            _ => None,
        };
        // Without timestamps, window scale and SACK cannot be carried: offer neither.
        let options = Options {
            mss: Some(sx.cfg.mss),
            window_scale: (ts.is_some() && opts.rcv_wscale > 0).then_some(opts.rcv_wscale),
            sack_permitted: ts.is_some() && opts.sack,
            timestamp: ts,
            fast_open: reply,
            ..Options::default()
        };
        if output::send_cookie_syn_ack(sx, route, iss, seg.seq + 1u32, options) {
            sx.stats.cookies_sent += 1;
            self.last_cookie_at = Some(sx.now);
        }
    }

    /// The third step of a cookie handshake (RFC 4987 §3.6): SEG.ACK - 1 must be a cookie we
    /// made for this tuple and SEG.SEQ - 1; it gives back what the SYN negotiated.
    pub(crate) fn check_cookie_ack(
        &mut self,
        now: Instant,
        route: &Route,
        seg: &TcpRepr<'_>,
    ) -> Result<ValidCookie, CookieError> {
        self.cookies.advance(now);
        let tsecr = seg.options.timestamp.map(|(_, ecr)| ecr);
        syncookie::check_cookie(
            &self.cookies,
            now,
            &route.tuple,
            seg.seq - 1,
            seg.ack - 1,
            tsecr,
        )
    }
}

/// Whether a SYN we accept gets a cookie (`Ok(true)`) or a SYN-RECEIVED connection
/// (`Ok(false)`), from the cookie mode and the half-open budget; `Err` when neither may be.
fn syn_policy<T: Tx>(sx: &Stateless<'_, T>) -> Result<bool, DropReason> {
    let budget_spent = sx.stats.in_state(State::SynReceived) as usize >= sx.cfg.max_half_open;
    match sx.cfg.syncookies {
        SynCookieMode::Always => Ok(true),
        SynCookieMode::Auto => Ok(budget_spent),
        SynCookieMode::Never if budget_spent => Err(DropReason::HalfOpenFull),
        SynCookieMode::Never => Ok(false),
    }
}

/// Whether the table has room for one more connection (counted if not).
fn has_room<S, T: Tx>(sx: &mut Stateless<'_, T>, conns: &ConnTable<Conn<S>>) -> bool {
    let room = conns.len() < sx.cfg.max_connections;
    if !room {
        sx.stats.drop(DropReason::TableFull);
    }
    room
}

/// The control block of a TCP Fast Open connection for `seg` (RFC 7413 §4.2.2, Linux
/// `tcp_fastopen_create_child`): [`syn_received`]'s, with the SYN's data taken as the first
/// bytes of the stream (as far as the window we are about to advertise reaches), to be
/// acknowledged by the SYN-ACK; it may send from now on.
fn fast_open_conn<S: Default, T: Tx>(
    sx: &mut Stateless<'_, T>,
    listener: u8,
    route: &Route,
    seg: &TcpRepr<'_>,
) -> Conn<S> {
    let mut c = syn_received(sx, listener, route, seg);
    c.fastopen = true;
    // Data goes out behind the SYN-ACK: the send buffer starts after our SYN, as if it were
    // acknowledged (Linux's child starts with snd_una = ISS + 1 too); the ACK that completes
    // the handshake must still cover it. The window the next ACK carries replaces the SYN's:
    // SND.WL1 is the SYN's sequence number.
    c.snd.una = c.snd.iss + 1u32;
    c.snd.wl1 = seg.seq;
    let data = &seg.payload[..seg.payload.len().min(output::syn_window(sx.cfg) as usize)];
    if data.len() < seg.payload.len() {
        sx.stats.drop(DropReason::NoRoom);
    }
    c.rcv.buf.extend(data);
    c.rcv.nxt += data.len();
    sx.stats.rx_bytes += data.len() as u64;
    c.start_sending(sx.cfg, sx.now);
    c
}

/// Files `c` (from [`syn_received`]) in SYN-RECEIVED and sends its SYN-ACK, with `reply` as
/// its Fast Open option; `None` (counted) if the table is full.
fn insert_syn_received<S, T: Tx>(
    sx: &mut Stateless<'_, T>,
    conns: &mut ConnTable<Conn<S>>,
    c: Conn<S>,
    reply: Option<FastOpenOption>,
) -> Option<ConnId> {
    let Ok(id) = conns.insert(c) else {
        sx.stats.drop(DropReason::TableFull);
        return None;
    };
    if let Some(c) = conns.get_mut(id) {
        c.set_state(State::SynReceived, sx.stats);
        output::send_syn_ack(c, sx.cfg, sx.stats, sx.tx, sx.now, reply);
    }
    Some(id)
}

/// The socket options of listener `listener` (none for an unknown index).
fn listener_options(cfg: &Config, listener: u8) -> ConnOptions {
    cfg.listeners
        .get(usize::from(listener))
        .map(|l| l.options)
        .unwrap_or_default()
}

/// The control block a SYN opens (still CLOSED, to be filed and moved to SYN-RECEIVED): "Set
/// RCV.NXT to SEG.SEQ+1, IRS is set to SEG.SEQ [...] ISS should be selected and a SYN segment
/// sent [...] SND.NXT is set to ISS+1 and SND.UNA to ISS" (RFC 9293 §3.10.7.2).
fn syn_received<S: Default, T: Tx>(
    sx: &Stateless<'_, T>,
    listener: u8,
    route: &Route,
    seg: &TcpRepr<'_>,
) -> Conn<S> {
    let iss = isn::initial_seq(&sx.keys.isn, &route.tuple, sx.now);
    let opts = Negotiated::from_syn(sx.cfg, route.tuple.remote_addr.is_ipv4(), &seg.options);
    let mut c = Conn::new(sx.cfg, sx.keys, sx.now, route, opts, iss);
    c.take_options(&listener_options(sx.cfg, listener));
    c.passive = true;
    c.listener = listener;
    c.synchronize_receive(seg.seq, seg.options.timestamp);
    c.syn_sent();
    // "The window field in a SYN segment itself is never scaled" (RFC 7323 §2.2).
    c.snd.wnd = u32::from(seg.window);
    c.snd.max_wnd = c.snd.wnd;
    c.timers.arm(Timer::Retransmit, sx.now + c.rtt.rto());
    c
}

/// A valid cookie ACK opens its connection directly in ESTABLISHED, from the SYN options the
/// cookie carried and with the timestamp offset of the secret it was made under; the caller
/// processes the rest of the segment.
fn established_by_cookie<S: Default, T: Tx>(
    sx: &mut Stateless<'_, T>,
    conns: &mut ConnTable<Conn<S>>,
    listener: u8,
    route: &Route,
    seg: &TcpRepr<'_>,
    valid: &ValidCookie,
) -> Accept {
    let syn = &valid.options;
    let cfg = sx.cfg;
    if conns.len() >= cfg.max_connections {
        sx.stats.drop(DropReason::TableFull);
        return Accept::Done;
    }
    // The SYN the cookie stands for: window scale and SACK-permitted rode in our TSval, so
    // without timestamps in use they are lost (as in Linux).
    let carried = cfg.timestamps && seg.options.timestamp.is_some();
    let syn_options = Options {
        mss: Some(syn.mss),
        window_scale: syn.window_scale.filter(|_| carried),
        sack_permitted: carried && syn.sack_permitted,
        timestamp: seg.options.timestamp,
        ..Options::default()
    };
    let opts = Negotiated::from_syn(cfg, route.tuple.remote_addr.is_ipv4(), &syn_options);
    // RFC 7323 §5.4: the offset is per connection, and the SYN-ACK already carried it.
    let keys = Keys {
        timestamp: valid.timestamp_key,
        ..*sx.keys
    };
    let mut c = Conn::new(cfg, &keys, sx.now, route, opts, seg.ack - 1);
    // The cookie's SYN-ACK announced the configured MSS, window and window scale (it kept no
    // state to clamp them by): the scale stays; the MSS we send with and the buffers follow
    // the listener's options (the window offered is never taken back).
    c.take_options(&listener_options(cfg, listener));
    c.opts.rcv_wscale = opts.rcv_wscale;
    c.passive = true;
    c.from_cookie = true;
    c.listener = listener;
    c.synchronize_receive(seg.seq - 1, seg.options.timestamp);
    c.syn_sent();
    c.rcv.adv = c.rcv.nxt + output::syn_window(cfg);
    let Ok(id) = conns.insert(c) else {
        sx.stats.drop(DropReason::TableFull);
        return Accept::Done;
    };
    if let Some(c) = conns.get_mut(id) {
        c.establish(cfg, sx.stats, sx.now, seg);
    }
    sx.stats.cookies_validated += 1;
    // `passive_opens` is counted once, when the app is told (deliver).
    Accept::Established(id)
}
