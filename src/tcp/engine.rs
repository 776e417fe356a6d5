//! The engine: one per worker. Frames and `now` in, frames out, nothing else.
//!
//! `receive` follows RFC 9293 §3.10.7 "SEGMENT ARRIVES": first the connection table, then the
//! TIME-WAIT table, then the listeners (SYN → SYN-ACK, with or without a SYN cookie; an ACK
//! that completes a cookie handshake; anything else gets a rate-limited RST).

use std::net::{IpAddr, SocketAddr};

use super::congestion::NewReno;
use super::conn::{Conn, Negotiated};
use super::conn_table::ConnTable;
use super::hash::{Key, derive_key, hash_tuple};
use super::output::{self, Cx, Outcome};
use super::rate_limit::RateLimiter;
use super::reassembly::Reassembly;
use super::rtt::RttEstimator;
use super::syncookie::{self, CookieError, CookieSecrets};
use super::time_wait::{TimeWait, TimeWaitTable};
use super::timer_wheel::TimerWheel;
use super::{Config, ConnId, FourTuple, SeqNumber, State, SynCookieMode, input, isn, timers};
use crate::app::{App, CloseReason, Shutdown};
use crate::stats::{DropReason, Latencies, Stats};
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::ethernet::MacAddr;
use crate::wire::tcp::{Flags, Options, Repr as TcpRepr};
use crate::wire::{Error as WireError, TcpFrame};

/// Why [`Engine::connect`] could not start a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Local and remote addresses are of different families.
    #[error("local and remote addresses are of different IP families")]
    MixedFamilies,
    /// A connection with this 4-tuple exists (or is in TIME-WAIT).
    #[error("a connection with this 4-tuple already exists")]
    InUse,
    /// The connection table is full.
    #[error("the connection table is full")]
    TableFull,
    /// The SYN could not be sent: no TX frame was free.
    #[error("no transmit frame was free for the SYN")]
    TxFull,
}

/// The keys every keyed hash derives from [`Config::secret`].
#[derive(Clone, Copy)]
pub(crate) struct Keys {
    pub(crate) isn: Key,
    pub(crate) timestamp: Key,
}

/// A share-nothing TCP engine: a connection table, a TIME-WAIT table, timers and an [`App`].
pub struct Engine<A: App> {
    pub(crate) cfg: Config,
    pub(crate) app: A,
    pub(crate) conns: ConnTable<Conn<A::State>>,
    pub(crate) time_wait: TimeWaitTable,
    pub(crate) wheel: TimerWheel<(ConnId, u32, Instant)>,
    pub(crate) keys: Keys,
    table_key: Key,
    cookies: CookieSecrets,
    rst_limiter: RateLimiter,
    pub(crate) stats: Stats,
    accepting: bool,
    /// Scratch list of due timers, kept to avoid an allocation per poll.
    pub(crate) due: Vec<(ConnId, u32, Instant)>,
    /// The `now` of the latest call in.
    pub(crate) last_now: Instant,
    /// When we last sent a SYN cookie.
    last_cookie_at: Option<Instant>,
    latencies: Latencies,
}

fn drop_reason(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::UnsupportedEtherType => DropReason::UnsupportedEtherType,
        WireError::NotTcp => DropReason::NotTcp,
        WireError::BadVersion => DropReason::BadVersion,
        WireError::BadHeaderLength => DropReason::BadHeaderLength,
        WireError::BadLength => DropReason::BadLength,
        WireError::BadChecksum => DropReason::BadChecksum,
        WireError::Fragment => DropReason::Fragment,
        WireError::IpOptions => DropReason::IpOptions,
        WireError::BadOptionLength => DropReason::BadOptionLength,
    }
}

/// Flag combinations no TCP sends (RFC 9293 leaves them undefined; scanners use them).
fn bad_flags(flags: Flags) -> Option<DropReason> {
    let syn = flags.contains(Flags::SYN);
    if syn && flags.contains(Flags::FIN) {
        return Some(DropReason::SynFin);
    }
    if syn && flags.contains(Flags::RST) {
        return Some(DropReason::SynRst);
    }
    if !syn && !flags.contains(Flags::ACK) && !flags.contains(Flags::RST) {
        return Some(DropReason::BadFlags);
    }
    None
}

/// Sources and destinations that can never be one end of a TCP connection.
fn bad_address(a: IpAddr) -> bool {
    match a {
        // 0.0.0.0/8 is "this network" (RFC 1122 §3.2.1.3): never a peer, a martian to Linux.
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified(),
    }
}

/// Where replies to a received frame go: back to the sender's MAC, on the same VLAN.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub(crate) tuple: FourTuple,
    pub(crate) mac: MacAddr,
    pub(crate) vlan: Option<u16>,
}

impl<A: App> Engine<A> {
    /// A new engine with no connections. `now` anchors the timer wheel.
    pub fn new(cfg: Config, app: A, now: Instant) -> Engine<A> {
        // One key for both tables, so one hash of a frame's tuple finds it in either.
        let table_key = derive_key(&cfg.secret, b"table");
        let keys = Keys {
            isn: derive_key(&cfg.secret, b"isn"),
            timestamp: derive_key(&cfg.secret, b"timestamp"),
        };
        let cookies = CookieSecrets::new(derive_key(&cfg.secret, b"cookie"));
        let mut stats = Stats::default();
        stats.states[State::Listen.index()] = cfg.listeners.len() as u64;
        Engine {
            conns: ConnTable::new(table_key, cfg.max_connections),
            time_wait: TimeWaitTable::new(cfg.max_time_wait, table_key),
            table_key,
            wheel: TimerWheel::new(now),
            keys,
            cookies,
            rst_limiter: RateLimiter::new(cfg.rst_per_second, cfg.rst_per_second.max(1)),
            stats,
            accepting: true,
            due: Vec::new(),
            last_now: now,
            last_cookie_at: None,
            latencies: Latencies::default(),
            app,
            cfg,
        }
    }

    /// Counters, drop reasons and per-state connection counts.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handshake latencies recorded so far (SYN to ESTABLISHED; cookie connections excepted,
    /// since nothing of their SYN was kept).
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    /// The latencies, mutably: a worker sends them to the control thread, then resets them.
    pub fn latencies_mut(&mut self) -> &mut Latencies {
        &mut self.latencies
    }

    /// Moves every latency recorded since the last call (the engine's handshakes and the app's
    /// own) into `into`.
    pub fn take_latencies(&mut self, into: &mut Latencies) {
        into.merge(&self.latencies);
        self.latencies.reset();
        if let Some(app) = self.app.latencies() {
            into.merge(app);
            app.reset();
        }
    }

    /// Tells the app that everything written so far was handed to the TX ring at `now`.
    pub fn flushed(&mut self, now: Instant) {
        self.app.on_flushed(now);
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application, mutably.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The configuration this engine runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Live connections (every state but TIME-WAIT).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Entries in the timer wheel (live and lazily cancelled ones): a diagnostic for bounded
    /// memory.
    pub fn timer_entries(&self) -> usize {
        self.wheel.len()
    }

    /// Entries in the TIME-WAIT table.
    pub fn time_wait_len(&self) -> usize {
        self.time_wait.len()
    }

    /// The state of a connection, if it still exists (TIME-WAIT connections have left the
    /// table and report `None`).
    pub fn state(&self, id: ConnId) -> Option<State> {
        self.conns.get(id).map(|c| c.state)
    }

    /// The connection with this 4-tuple, if any.
    pub fn find(&self, tuple: &FourTuple) -> Option<ConnId> {
        self.conns.find(tuple)
    }

    /// Memory the connection `id` costs this engine now, in bytes: its slab slot (control
    /// block and app state), its share of the index (a 4-byte bucket and a control byte at
    /// a load of 7/16 in the worst case, as `TimeWaitTable::ENTRY_BYTES` counts it) and its
    /// heap (send, receive and reassembly buffers).
    pub fn connection_bytes(&self, id: ConnId) -> Option<usize> {
        let c = self.conns.get(id)?;
        let slot = size_of::<Option<Conn<A::State>>>() + size_of::<u32>();
        let index = (5 * 16usize).div_ceil(7);
        Some(slot + index + c.heap_bytes())
    }

    /// Stop accepting new connections (for draining); SYNs are answered with RST from now on.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
        self.stats.states[State::Listen.index()] = 0;
    }

    /// Rotates the SYN-cookie secret; cookies under the previous one stay valid until the
    /// next rotation. Call it every 64 s with fresh random bytes.
    pub fn rotate_cookie_secret(&mut self, key: [u8; 16]) {
        self.cookies.rotate(Key(key));
    }

    /// The earliest time [`Engine::poll_timers`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tw = self
            .time_wait
            .next_expiry()
            .map(|ms| self.ms_to_instant(ms));
        match (self.wheel.next_deadline(), tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Our millisecond clock (wrapping) for compact deadlines.
    pub(crate) fn now_ms(now: Instant) -> u32 {
        now.total_millis() as u32
    }

    fn ms_to_instant(&self, ms: u32) -> Instant {
        // The wheel's notion of now is close to the caller's; rebuild the full instant from
        // the wrapping millisecond value relative to it.
        let base = self.last_now;
        let base_ms = base.total_millis() as u32;
        let delta = ms.wrapping_sub(base_ms) as i32;
        if delta <= 0 {
            base
        } else {
            Instant::from_millis(base.total_millis() + delta as u64)
        }
    }

    /// Handles one received Ethernet frame; replies go to `tx`.
    pub fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        self.last_now = now;
        self.stats.rx_frames += 1;
        let f = match TcpFrame::parse(frame) {
            Ok(f) => f,
            Err(e) => return self.stats.drop(drop_reason(e)),
        };
        if let Some(reason) = bad_flags(f.tcp.flags) {
            return self.stats.drop(reason);
        }
        let (src, dst) = (f.ip.src(), f.ip.dst());
        if bad_address(src) || bad_address(dst) {
            return self.stats.drop(DropReason::BadAddress);
        }
        let route = Route {
            tuple: FourTuple {
                local_addr: dst,
                remote_addr: src,
                local_port: f.tcp.dst_port,
                remote_port: f.tcp.src_port,
            },
            mac: f.eth.src,
            vlan: f.eth.vlan,
        };
        let hash = hash_tuple(&self.table_key, &route.tuple);
        if let Some(id) = self.conns.find_hashed(&route.tuple, hash) {
            return self.segment_for_connection(now, id, &f.tcp, tx);
        }
        if self.time_wait.get_hashed(&route.tuple, hash).is_some()
            && !self.time_wait_segment(now, &route, &f.tcp, tx)
        {
            return;
        }
        let Some(listener) = self.listener_for(&route.tuple) else {
            return self.stats.drop(DropReason::NotServed);
        };
        self.listen_segment(now, listener, &route, &f.tcp, tx);
    }

    fn listener_for(&self, t: &FourTuple) -> Option<u8> {
        self.cfg
            .listeners
            .iter()
            .position(|l| l.port == t.local_port && l.addr.is_none_or(|a| a == t.local_addr))
            .map(|i| i.min(u8::MAX as usize - 1) as u8)
    }

    /// RFC 9293 §3.10.7.2, LISTEN state (plus the SYN-cookie ACK of RFC 4987).
    fn listen_segment<T: Tx>(
        &mut self,
        now: Instant,
        listener: u8,
        route: &Route,
        seg: &TcpRepr<'_>,
        tx: &mut T,
    ) {
        // "First, check for a RST: an incoming RST segment could not be valid since it could
        // not have been sent in response to anything sent by this incarnation."
        if seg.flags.contains(Flags::RST) {
            return self.stats.drop(DropReason::RstNoConnection);
        }
        // "Second, check for an ACK: any acknowledgment is bad if it arrives on a connection
        // still in the LISTEN state. An acceptable reset segment should be formed [...]" —
        // unless it completes a SYN-cookie handshake.
        if seg.flags.contains(Flags::ACK) {
            // Like Linux, `auto` only takes an ACK for a cookie while cookies were being sent
            // (within the two slots a cookie stays valid).
            let cookies_live = match self.cfg.syncookies {
                SynCookieMode::Always => true,
                SynCookieMode::Auto => self
                    .last_cookie_at
                    .is_some_and(|t| now.saturating_since(t) <= 2 * syncookie::SLOT),
                SynCookieMode::Never => false,
            };
            if !seg.flags.contains(Flags::SYN) && cookies_live {
                match self.cookie_ack(now, listener, route, seg, tx) {
                    Ok(()) => return,
                    Err(CookieError::Expired) => self.stats.drop(DropReason::ExpiredCookie),
                    Err(_) => self.stats.drop(DropReason::BadCookie),
                }
            }
            if !self.cfg.reset_unknown {
                return self.stats.drop(DropReason::UnknownConnection);
            }
            return self.send_reset_for(now, route, seg, tx);
        }
        // "Third, check for a SYN."
        self.stats.syns_received += 1;
        if !self.accepting {
            return self.send_reset_for(now, route, seg, tx);
        }
        let half_open = self.stats.in_state(State::SynReceived) as usize;
        let use_cookie = match self.cfg.syncookies {
            SynCookieMode::Always => true,
            SynCookieMode::Auto => half_open >= self.cfg.max_half_open,
            SynCookieMode::Never => {
                if half_open >= self.cfg.max_half_open {
                    return self.stats.drop(DropReason::HalfOpenFull);
                }
                false
            }
        };
        if use_cookie {
            return self.send_cookie_syn_ack(now, route, seg, tx);
        }
        if self.conns.len() >= self.cfg.max_connections {
            return self.stats.drop(DropReason::TableFull);
        }
        let iss = isn::initial_seq(&self.keys.isn, &route.tuple, now);
        let opts = self.negotiate(&route.tuple, &seg.options);
        let mut c = self.new_conn(now, route, State::SynReceived, opts, iss);
        c.passive = true;
        c.listener = listener;
        c.irs = seg.seq;
        c.rcv_nxt = seg.seq + 1u32;
        c.last_ack_sent = c.rcv_nxt;
        c.snd_nxt = iss + 1u32;
        c.snd_max = c.snd_nxt;
        c.snd_wnd = u32::from(seg.window);
        c.max_snd_wnd = c.snd_wnd;
        if let Some((tsval, _)) = seg.options.timestamp {
            c.ts_recent = tsval;
        }
        c.rto_at = Some(now + c.rtt.rto());
        let Ok(id) = self.conns.insert(c) else {
            return self.stats.drop(DropReason::TableFull);
        };
        self.stats.states[State::SynReceived.index()] += 1;
        let (cfg, stats) = (&self.cfg, &mut self.stats);
        if let Some(c) = self.conns.get_mut(id) {
            output::send_syn(c, cfg, stats, tx, now);
        }
        self.reschedule(id);
    }

    /// What the handshake settles on, given the peer's SYN options.
    pub(crate) fn negotiate(&self, _tuple: &FourTuple, peer: &Options) -> Negotiated {
        let peer_mss = peer.mss.unwrap_or(if _tuple.remote_addr.is_ipv4() {
            536
        } else {
            1220
        });
        let ws = peer.window_scale.is_some() && self.cfg.window_scale > 0;
        Negotiated {
            mss: peer_mss.min(self.cfg.mss).max(64),
            snd_wscale: if ws {
                peer.window_scale.unwrap_or(0).min(14)
            } else {
                0
            },
            rcv_wscale: if ws { self.cfg.window_scale.min(14) } else { 0 },
            ts: self.cfg.timestamps && peer.timestamp.is_some(),
            sack: self.cfg.sack && peer.sack_permitted,
        }
    }

    /// A fresh control block; sequence variables the caller completes.
    pub(crate) fn new_conn(
        &self,
        now: Instant,
        route: &Route,
        state: State,
        opts: Negotiated,
        iss: SeqNumber,
    ) -> Conn<A::State> {
        let cfg = &self.cfg;
        Conn {
            tuple: route.tuple,
            mac: route.mac,
            vlan: route.vlan,
            state,
            passive: false,
            from_cookie: false,
            opts,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            send: Default::default(),
            fin_seq: None,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            last_ack_sent: SeqNumber(0),
            recv: Default::default(),
            ooo: Reassembly::default(),
            ts_recent: 0,
            ts_offset: isn::timestamp_offset(&self.keys.timestamp, &route.tuple),
            rto_at: None,
            ack_at: None,
            idle_at: None,
            scheduled: None,
            wheel_latest: None,
            last_rx: now,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_probe: None,
            retries: 0,
            ka_probes: 0,
            listener: u8::MAX,
            cc: NewReno::new(opts.mss, cfg.initial_window),
            unacked_segs: 0,
            ack_now: false,
            challenge: (0, 0),
            last_oow_ack_ms: 0,
            shutdown: Shutdown::Open,
            app_connected: false,
            app_peer_closed: false,
            app_blocked: false,
            opened_at: now,
            app: Default::default(),
        }
    }

    /// A stateless SYN-ACK whose ISN is a SYN cookie (RFC 4987 §3.6).
    fn send_cookie_syn_ack<T: Tx>(
        &mut self,
        now: Instant,
        route: &Route,
        seg: &TcpRepr<'_>,
        tx: &mut T,
    ) {
        let opts = self.negotiate(&route.tuple, &seg.options);
        let peer_mss = seg.options.mss.unwrap_or(536);
        let ts_bits = seg.options.timestamp.map(|_| {
            syncookie::encode_ts_bits(
                seg.options.window_scale.filter(|_| opts.rcv_wscale > 0),
                opts.sack,
            )
        });
        let (iss, _mss) =
            syncookie::make_cookie(&self.cookies, now, &route.tuple, seg.seq, peer_mss, ts_bits);
        let ts = match (ts_bits, seg.options.timestamp) {
            (Some(bits), Some((tsval, _))) if self.cfg.timestamps => {
                let off = isn::timestamp_offset(&self.keys.timestamp, &route.tuple);
                let ts_now = Self::now_ms(now).wrapping_add(off);
                Some((syncookie::cookie_tsval(ts_now, bits), tsval))
            }
            _ => None,
        };
        // Without timestamps, window scale and SACK cannot be carried: offer neither.
        let syn_opts = Options {
            mss: Some(self.cfg.mss),
            window_scale: (ts.is_some() && opts.rcv_wscale > 0).then_some(opts.rcv_wscale),
            sack_permitted: ts.is_some() && opts.sack,
            timestamp: ts,
            ..Options::default()
        };
        let repr = TcpRepr {
            src_port: route.tuple.local_port,
            dst_port: route.tuple.remote_port,
            seq: iss,
            ack: seg.seq + 1u32,
            flags: Flags::SYN | Flags::ACK,
            window: self.cfg.recv_buffer.min(u32::from(u16::MAX)) as u16,
            options: syn_opts,
            payload: &[],
        };
        if output::emit(&self.cfg, &mut self.stats, tx, route, &repr) {
            self.stats.synacks_sent += 1;
            self.stats.cookies_sent += 1;
            self.last_cookie_at = Some(now);
        }
    }

    /// The third step of a cookie handshake: validate, then create the connection directly in
    /// ESTABLISHED and process the rest of the segment.
    fn cookie_ack<T: Tx>(
        &mut self,
        now: Instant,
        listener: u8,
        route: &Route,
        seg: &TcpRepr<'_>,
        tx: &mut T,
    ) -> Result<(), CookieError> {
        let tsecr = seg.options.timestamp.map(|(_, ecr)| ecr);
        let syn = syncookie::check_cookie(
            &self.cookies,
            now,
            &route.tuple,
            seg.seq - 1,
            seg.ack - 1,
            tsecr,
        )?;
        if !self.accepting || self.conns.len() >= self.cfg.max_connections {
            self.stats.drop(DropReason::TableFull);
            return Ok(());
        }
        let ts = self.cfg.timestamps && tsecr.is_some();
        let ws = ts && syn.window_scale.is_some() && self.cfg.window_scale > 0;
        let opts = Negotiated {
            mss: syn.mss.min(self.cfg.mss),
            snd_wscale: if ws { syn.window_scale.unwrap_or(0) } else { 0 },
            rcv_wscale: if ws { self.cfg.window_scale.min(14) } else { 0 },
            ts,
            sack: ts && syn.sack_permitted && self.cfg.sack,
        };
        let iss = seg.ack - 1;
        let mut c = self.new_conn(now, route, State::Established, opts, iss);
        c.passive = true;
        c.from_cookie = true;
        c.listener = listener;
        c.irs = seg.seq - 1;
        c.rcv_nxt = seg.seq;
        c.last_ack_sent = c.rcv_nxt;
        c.rcv_adv = c.rcv_nxt + self.cfg.recv_buffer.min(u32::from(u16::MAX));
        c.snd_una = seg.ack;
        c.snd_nxt = seg.ack;
        c.snd_max = seg.ack;
        c.snd_wnd = u32::from(seg.window) << opts.snd_wscale;
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = seg.seq;
        c.snd_wl2 = seg.ack;
        if let Some((tsval, _)) = seg.options.timestamp {
            c.ts_recent = tsval;
        }
        let Ok(id) = self.conns.insert(c) else {
            self.stats.drop(DropReason::TableFull);
            return Ok(());
        };
        self.stats.states[State::Established.index()] += 1;
        self.stats.cookies_validated += 1;
        // `passive_opens` is counted once, when the app is told (output::deliver).
        // The ACK may carry data (or even a FIN): process it like any segment.
        self.segment_for_connection(now, id, seg, tx);
        Ok(())
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection gets a RST (rate-limited):
    /// "If the ACK bit is off, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; if the ACK bit is
    /// on, <SEQ=SEG.ACK><CTL=RST>".
    pub(crate) fn send_reset_for<T: Tx>(
        &mut self,
        now: Instant,
        route: &Route,
        seg: &TcpRepr<'_>,
        tx: &mut T,
    ) {
        if seg.flags.contains(Flags::RST) {
            return;
        }
        if !self.rst_limiter.allow(now) {
            return self.stats.drop(DropReason::RstRateLimited);
        }
        let (seq, ack, flags) = if seg.flags.contains(Flags::ACK) {
            (seg.ack, SeqNumber(0), Flags::RST)
        } else {
            (
                SeqNumber(0),
                seg.seq + seg.segment_len(),
                Flags::RST | Flags::ACK,
            )
        };
        let repr = TcpRepr {
            src_port: route.tuple.local_port,
            dst_port: route.tuple.remote_port,
            seq,
            ack,
            flags,
            window: 0,
            options: Options::default(),
            payload: &[],
        };
        if output::emit(&self.cfg, &mut self.stats, tx, route, &repr) {
            self.stats.resets_sent += 1;
        }
    }

    /// A segment for a 4-tuple in TIME-WAIT (RFC 9293 §3.10.7.4 and RFC 6191). Returns true
    /// when the entry was recycled and the segment (a SYN) should go on to the listener.
    fn time_wait_segment<T: Tx>(
        &mut self,
        now: Instant,
        route: &Route,
        seg: &TcpRepr<'_>,
        tx: &mut T,
    ) -> bool {
        let Some(tw) = self.time_wait.get(&route.tuple).copied() else {
            return true;
        };
        let flags = seg.flags;
        // RFC 1337: ignore RSTs in TIME-WAIT (no assassination).
        if flags.contains(Flags::RST) {
            self.stats.drop(DropReason::RstNoConnection);
            return false;
        }
        if flags.contains(Flags::SYN) && !flags.contains(Flags::ACK) {
            // RFC 6191 §2: accept a new incarnation if its timestamp is newer, or (without
            // timestamps) if its sequence number is above the old RCV.NXT.
            let newer = match (tw.ts_enabled, seg.options.timestamp) {
                (true, Some((tsval, _))) => (tsval.wrapping_sub(tw.ts_recent) as i32) > 0,
                _ => seg.seq.gt(tw.rcv_nxt),
            };
            if newer {
                self.time_wait.remove(&route.tuple);
                self.stats.time_wait_recycled += 1;
                self.stats.states[State::TimeWait.index()] = self.time_wait.len() as u64;
                return true;
            }
            self.stats.drop(DropReason::TimeWaitOldSyn);
            self.time_wait_ack(now, route, &tw, tx);
            return false;
        }
        // A retransmitted FIN: ACK it again and restart the 2MSL timer.
        if flags.contains(Flags::FIN) {
            let expires = Self::now_ms(now + self.cfg.time_wait);
            let mut tw = tw;
            // RFC 7323 §4.3: the FIN (at RCV.NXT - 1 =< Last.ACK.sent) updates TS.Recent, so
            // the re-ACK echoes it and RFC 6191 compares new SYNs against it (as Linux).
            if let (true, Some((tsval, _))) = (tw.ts_enabled, seg.options.timestamp) {
                if (tsval.wrapping_sub(tw.ts_recent) as i32) >= 0 {
                    tw.ts_recent = tsval;
                }
            }
            tw.expires_ms = expires;
            self.time_wait.insert(tw); // replaces the entry: 2MSL restarts at the head
            self.time_wait_ack(now, route, &tw, tx);
            return false;
        }
        if !seg.payload.is_empty() {
            self.time_wait_ack(now, route, &tw, tx);
        }
        false
    }

    fn time_wait_ack<T: Tx>(&mut self, now: Instant, route: &Route, tw: &TimeWait, tx: &mut T) {
        let ts = tw.ts_enabled.then(|| {
            let off = isn::timestamp_offset(&self.keys.timestamp, &route.tuple);
            (Self::now_ms(now).wrapping_add(off), tw.ts_recent)
        });
        let repr = TcpRepr {
            src_port: route.tuple.local_port,
            dst_port: route.tuple.remote_port,
            seq: tw.snd_nxt,
            ack: tw.rcv_nxt,
            flags: Flags::ACK,
            window: 0,
            options: Options {
                timestamp: ts,
                ..Options::default()
            },
            payload: &[],
        };
        output::emit(&self.cfg, &mut self.stats, tx, route, &repr);
    }

    /// Active open (RFC 9293 §3.10.1): a SYN to `remote` via the next hop `remote_mac`.
    pub fn connect<T: Tx>(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        remote_mac: MacAddr,
        tx: &mut T,
    ) -> Result<ConnId, ConnectError> {
        self.last_now = now;
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(ConnectError::MixedFamilies);
        }
        let route = Route {
            tuple: FourTuple {
                local_addr: local.ip(),
                remote_addr: remote.ip(),
                local_port: local.port(),
                remote_port: remote.port(),
            },
            mac: remote_mac,
            vlan: None,
        };
        if self.conns.find(&route.tuple).is_some() {
            return Err(ConnectError::InUse);
        }
        if self.time_wait.get(&route.tuple).is_some() {
            // RFC 6191 on the active side: a new incarnation starts above the old SND.NXT.
            self.time_wait.remove(&route.tuple);
            self.stats.time_wait_recycled += 1;
            self.stats.states[State::TimeWait.index()] = self.time_wait.len() as u64;
        }
        if self.conns.len() >= self.cfg.max_connections {
            return Err(ConnectError::TableFull);
        }
        let iss = isn::initial_seq(&self.keys.isn, &route.tuple, now);
        let cfg = &self.cfg;
        let offer = Options {
            mss: Some(cfg.mss),
            window_scale: (cfg.window_scale > 0).then_some(cfg.window_scale),
            sack_permitted: cfg.sack,
            timestamp: cfg.timestamps.then_some((0, 0)),
            ..Options::default()
        };
        // What we offer; the SYN-ACK settles it.
        let opts = Negotiated {
            mss: cfg.mss,
            snd_wscale: 0,
            rcv_wscale: cfg.window_scale.min(14),
            ts: offer.timestamp.is_some(),
            sack: cfg.sack,
        };
        let mut c = self.new_conn(now, &route, State::SynSent, opts, iss);
        c.snd_nxt = iss + 1u32;
        c.snd_max = c.snd_nxt;
        c.rto_at = Some(now + c.rtt.rto());
        let id = self.conns.insert(c).map_err(|_| ConnectError::TableFull)?;
        self.stats.states[State::SynSent.index()] += 1;
        let (cfg, stats) = (&self.cfg, &mut self.stats);
        let sent = self
            .conns
            .get_mut(id)
            .is_some_and(|c| output::send_syn(c, cfg, stats, tx, now));
        if !sent {
            self.remove(id);
            return Err(ConnectError::TxFull);
        }
        self.reschedule(id);
        Ok(id)
    }

    /// Runs the state machine for a segment of an existing connection, then lets the app act
    /// and transmits what is due.
    pub(crate) fn segment_for_connection<T: Tx>(
        &mut self,
        now: Instant,
        id: ConnId,
        seg: &TcpRepr<'_>,
        tx: &mut T,
    ) {
        if let Some(outcome) = self.with_conn(id, now, tx, |c, cx| input::on_segment(c, cx, seg)) {
            self.finish(id, outcome, tx);
        }
    }

    /// After an event: let the app act, transmit, then keep, close or retire the connection.
    pub(crate) fn finish<T: Tx>(&mut self, id: ConnId, outcome: Outcome, tx: &mut T) {
        let now = self.last_now;
        let after =
            |c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>| output::after_event(c, cx, outcome);
        match self.with_conn(id, now, tx, after) {
            Some(Outcome::Keep) => self.reschedule(id),
            Some(Outcome::Close(reason)) => self.close(id, reason),
            Some(Outcome::TimeWait) => self.enter_time_wait(now, id),
            None => {}
        }
    }

    /// Runs `f` on connection `id` with everything an event handler may touch.
    fn with_conn<T: Tx, R>(
        &mut self,
        id: ConnId,
        now: Instant,
        tx: &mut T,
        f: impl FnOnce(&mut Conn<A::State>, &mut Cx<'_, A, T>) -> R,
    ) -> Option<R> {
        let c = self.conns.get_mut(id)?;
        let mut cx = Cx {
            cfg: &self.cfg,
            stats: &mut self.stats,
            app: &mut self.app,
            tx,
            now,
            id,
            latencies: &mut self.latencies,
        };
        Some(f(c, &mut cx))
    }

    /// Removes a connection, telling the app why.
    pub(crate) fn close(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(mut c) = self.remove(id) {
            if c.app_connected {
                self.app.on_closed(&mut c.app, reason);
            }
        }
    }

    fn remove(&mut self, id: ConnId) -> Option<Conn<A::State>> {
        let c = self.conns.remove(id)?;
        let gauge = &mut self.stats.states[c.state.index()];
        *gauge = gauge.saturating_sub(1);
        Some(c)
    }

    /// Moves a connection into the compact TIME-WAIT table for 2MSL.
    fn enter_time_wait(&mut self, now: Instant, id: ConnId) {
        let Some(mut c) = self.remove(id) else {
            return;
        };
        if c.app_connected {
            self.app.on_closed(&mut c.app, CloseReason::Normal);
        }
        let entry = TimeWait {
            tuple: c.tuple,
            snd_nxt: c.snd_nxt,
            rcv_nxt: c.rcv_nxt,
            ts_recent: c.ts_recent,
            ts_enabled: c.opts.ts,
            window_scale: c.opts.rcv_wscale,
            expires_ms: Self::now_ms(now + self.cfg.time_wait),
        };
        if self.time_wait.insert(entry).is_some() {
            self.stats.time_wait_evicted += 1;
        }
        self.stats.states[State::TimeWait.index()] = self.time_wait.len() as u64;
    }

    /// Puts the connection's earliest timer into the wheel if it is earlier than the entry
    /// already there (later ones are found when that entry fires: lazy cancellation).
    pub(crate) fn reschedule(&mut self, id: ConnId) {
        let generation = self.conns.generation(id);
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        if let Some(at) = c.next_timer() {
            if c.scheduled.is_none_or(|s| at < s) {
                c.scheduled = Some(at);
                if c.wheel_latest == Some(at) {
                    return; // that entry is still in the wheel
                }
                c.wheel_latest = Some(c.wheel_latest.map_or(at, |l| l.max(at)));
                self.wheel.insert(at, (id, generation, at));
            }
        }
    }

    /// Runs every timer that is due: TIME-WAIT expiry, then connection timers.
    pub fn poll_timers<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.last_now = now;
        if self.time_wait.expire(Self::now_ms(now)) > 0 {
            self.stats.states[State::TimeWait.index()] = self.time_wait.len() as u64;
        }
        let mut due = std::mem::take(&mut self.due);
        self.wheel.expire(now, |item| due.push(item));
        for (id, generation, at) in due.drain(..) {
            if self.conns.generation(id) != generation {
                continue;
            }
            let fire = |c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>| {
                if c.wheel_latest == Some(at) {
                    c.wheel_latest = None;
                }
                if c.scheduled != Some(at) {
                    return None; // superseded by an earlier entry
                }
                c.scheduled = None;
                Some(timers::on_timer(c, cx))
            };
            if let Some(Some(outcome)) = self.with_conn(id, now, tx, fire) {
                self.finish(id, outcome, tx);
            }
        }
        self.due = due;
    }
}
