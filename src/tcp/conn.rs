//! The transmission control block (RFC 9293 §3.3.1): everything one connection remembers.
//!
//! Kept compact: buffers start empty and are released when drained, timers are three optional
//! deadlines folded into one timer-wheel entry, keepalive settings are an index into the
//! listener table.

use std::collections::VecDeque;

use super::congestion::NewReno;
use super::conn_table::Keyed;
use super::hash::Keys;
pub(crate) use super::negotiate::Negotiated;
use super::reassembly::Reassembly;
use super::route::Route;
use super::rtt::RttEstimator;
use super::timer::{Timer, Timers};
use super::{Config, FourTuple, SeqNumber, State, isn};
use crate::app::Shutdown;
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::ethernet::MacAddr;
use crate::wire::tcp::{Repr as TcpRepr, TIMESTAMP_OPTION_LEN};

/// [`Conn::listener`] of an actively opened connection: no listener's keepalive applies.
pub(crate) const NO_LISTENER: u8 = u8::MAX;

/// A drained send or receive buffer keeps at most this much capacity; a larger one goes back
/// to the allocator, so an idle connection stays small.
pub(crate) const MAX_IDLE_BUFFER: usize = 4096;

/// One connection in the table.
#[derive(Debug)]
pub(crate) struct Conn<S> {
    pub(crate) tuple: FourTuple,
    /// The peer's (next hop's) Ethernet address and our VLAN tag, for every frame we send.
    pub(crate) mac: MacAddr,
    pub(crate) vlan: Option<u16>,
    pub(crate) state: State,
    /// Opened by a listener (true) or by `connect` (false).
    pub(crate) passive: bool,
    /// Established by a SYN-cookie ACK (no SYN-RECEIVED state was ever kept).
    pub(crate) from_cookie: bool,
    pub(crate) opts: Negotiated,

    // Send sequence space (RFC 9293 §3.3.1, Figure 3).
    pub(crate) iss: SeqNumber,
    pub(crate) snd_una: SeqNumber,
    pub(crate) snd_nxt: SeqNumber,
    /// Highest sequence number sent so far (SND.NXT moves back on a timeout, this does not).
    pub(crate) snd_max: SeqNumber,
    pub(crate) snd_wnd: u32,
    pub(crate) max_snd_wnd: u32,
    pub(crate) snd_wl1: SeqNumber,
    pub(crate) snd_wl2: SeqNumber,
    /// Bytes from SND.UNA on: in flight first, then not yet sent.
    pub(crate) send: VecDeque<u8>,
    /// Sequence number of our FIN once it has gone out (right after the last byte of `send`).
    pub(crate) fin_seq: Option<SeqNumber>,

    // Receive sequence space.
    pub(crate) irs: SeqNumber,
    pub(crate) rcv_nxt: SeqNumber,
    /// Right edge of the window we advertised last; it never moves left (RFC 9293 §3.8.6).
    pub(crate) rcv_adv: SeqNumber,
    /// RCV.NXT carried by the last ACK we sent ("Last.ACK.sent", RFC 7323 §4.3).
    pub(crate) last_ack_sent: SeqNumber,
    /// In-order bytes the app has not consumed yet.
    pub(crate) recv: VecDeque<u8>,
    pub(crate) ooo: Reassembly,

    // Timestamps (RFC 7323).
    pub(crate) ts_recent: u32,
    pub(crate) ts_offset: u32,

    /// Retransmission, delayed ACK and keepalive / FIN-WAIT-2, and their timer-wheel entry.
    pub(crate) timers: Timers,
    /// When the peer last proved alive (an acceptable segment): keepalive counts idleness
    /// from here, checked when its timer fires (the deadline does not move on every segment).
    pub(crate) last_rx: Instant,
    pub(crate) rtt: RttEstimator,
    /// Segment being timed for an RTT sample when timestamps are off (Karn: never a
    /// retransmitted one).
    pub(crate) rtt_probe: Option<(SeqNumber, Instant)>,
    /// Consecutive retransmission timeouts (or unanswered window probes).
    pub(crate) retries: u8,
    /// Unanswered keepalive probes.
    pub(crate) ka_probes: u8,
    /// Index of the listener whose keepalive applies ([`NO_LISTENER`]: none).
    pub(crate) listener: u8,
    pub(crate) cc: NewReno,

    // ACK bookkeeping.
    /// Full-sized segments received since our last ACK.
    pub(crate) unacked_segs: u8,
    /// An ACK must go out with the next transmission (now, not delayed).
    pub(crate) ack_now: bool,
    /// Challenge ACK limiter: (second, count in that second).
    pub(crate) challenge: (u32, u16),
    /// Last time (ms) we answered an out-of-window pure ACK (Linux tcp_invalid_ratelimit).
    pub(crate) last_oow_ack_ms: u32,

    // The app's side.
    pub(crate) shutdown: Shutdown,
    pub(crate) app_connected: bool,
    pub(crate) app_peer_closed: bool,
    /// The app found the send buffer full; tell it when room appears.
    pub(crate) app_blocked: bool,
    /// When the SYN arrived (passive) or was sent (active): handshake latency.
    pub(crate) opened_at: Instant,
    pub(crate) app: S,
}

impl<S> Keyed for Conn<S> {
    fn tuple(&self) -> &FourTuple {
        &self.tuple
    }
}

impl<S: Default> Conn<S> {
    /// A fresh control block in `state` with our ISS and the negotiated options; the caller
    /// completes the sequence variables the segment that opened it decides.
    pub(crate) fn new(
        cfg: &Config,
        keys: &Keys,
        now: Instant,
        route: &Route,
        state: State,
        opts: Negotiated,
        iss: SeqNumber,
    ) -> Conn<S> {
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
            ts_offset: isn::timestamp_offset(&keys.timestamp, &route.tuple),
            timers: Timers::default(),
            last_rx: now,
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max),
            rtt_probe: None,
            retries: 0,
            ka_probes: 0,
            listener: NO_LISTENER,
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
}

impl<S> Conn<S> {
    /// Bytes sent and not yet acknowledged (SYN and FIN count as one each).
    pub(crate) fn flight(&self) -> u32 {
        self.snd_nxt - self.snd_una
    }

    /// Most payload bytes per segment: the MSS less the options every segment carries
    /// (timestamps: 12 bytes), so header + options + data fit the peer's MSS (RFC 6691).
    pub(crate) fn payload_mss(&self) -> usize {
        let ts = if self.opts.ts {
            TIMESTAMP_OPTION_LEN
        } else {
            0
        };
        usize::from(self.opts.mss).saturating_sub(ts).max(1)
    }

    /// Bytes of `send` already transmitted (in flight or acknowledged-but-unread: never).
    pub(crate) fn data_sent(&self) -> usize {
        (self.flight() as usize).min(self.send.len())
    }

    /// Bytes of `send` not transmitted yet.
    pub(crate) fn unsent(&self) -> usize {
        self.send.len() - self.data_sent()
    }

    /// Whether our FIN is due (the app shut down writing) once the data before it is out.
    pub(crate) fn fin_queued(&self) -> bool {
        matches!(self.shutdown, Shutdown::Write | Shutdown::Close)
    }

    /// Whether our FIN has been acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|fin| self.snd_una.gt(fin))
    }

    /// Free receive buffer space: what we may advertise.
    pub(crate) fn rcv_space(&self, recv_buffer: u32) -> u32 {
        let used = self.recv.len() + self.ooo.bytes();
        recv_buffer.saturating_sub(used as u32)
    }

    /// The window field to advertise now (scaled), never shrinking the right edge, and the
    /// right edge it implies.
    pub(crate) fn window_to_advertise(&self, recv_buffer: u32) -> (u16, SeqNumber) {
        let space = self.rcv_space(recv_buffer);
        let scale = self.opts.rcv_wscale;
        // Round down to the scale granularity; at least what we already promised.
        let max = u32::from(u16::MAX) << scale;
        let mut wnd = (space.min(max) >> scale) << scale;
        let promised = self.rcv_adv - self.rcv_nxt;
        if self.rcv_adv.gt(self.rcv_nxt) && promised > wnd {
            wnd = promised.min(max);
        }
        let field = (wnd >> scale).min(u32::from(u16::MAX)) as u16;
        let edge = self.rcv_nxt + (u32::from(field) << scale);
        (field, edge.max(self.rcv_adv))
    }

    /// Heap bytes held by the connection's buffers.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.send.capacity() + self.recv.capacity() + self.ooo.heap_bytes()
    }
}

impl<S> Conn<S> {
    /// Moves to `new`, keeping the per-state gauges right.
    pub(crate) fn set_state(&mut self, new: State, stats: &mut Stats) {
        let old = &mut stats.states[self.state.index()];
        *old = old.saturating_sub(1);
        stats.states[new.index()] += 1;
        self.state = new;
    }

    /// Our TSval now: a millisecond clock plus the per-connection offset (RFC 7323 §5.4).
    pub(crate) fn ts_now(&self, now: Instant) -> u32 {
        now.wrapping_millis().wrapping_add(self.ts_offset)
    }

    /// Where this connection's frames go.
    pub(crate) fn route(&self) -> Route {
        Route {
            tuple: self.tuple,
            mac: self.mac,
            vlan: self.vlan,
        }
    }
}

impl<S> Conn<S> {
    /// The peer's SYN had sequence number `irs` (for a cookie connection: the SYN the cookie
    /// stands for) and timestamps `timestamp`: "set RCV.NXT to SEG.SEQ+1, IRS is set to
    /// SEG.SEQ" (RFC 9293 §3.10.7.2 third step), and its TSval is TS.Recent (RFC 7323 §4.3).
    pub(crate) fn synchronize_receive(&mut self, irs: SeqNumber, timestamp: Option<(u32, u32)>) {
        self.irs = irs;
        self.rcv_nxt = irs + 1u32;
        self.last_ack_sent = self.rcv_nxt;
        if let Some((tsval, _)) = timestamp {
            self.ts_recent = tsval;
        }
    }

    /// Our SYN (or SYN-ACK) went out: SND.NXT and SND.MAX are past it.
    pub(crate) fn syn_sent(&mut self) {
        self.snd_nxt = self.iss + 1u32;
        self.snd_max = self.snd_nxt;
    }

    /// `seg` acknowledges our SYN (its ACK covers exactly the SYN): ESTABLISHED (RFC 9293
    /// §3.10.7.3 SYN-SENT fourth step, §3.10.7.4 SYN-RECEIVED fifth step). The send sequence
    /// space starts at SEG.ACK with the peer's window `wnd` in bytes ("set SND.WND <- SEG.WND,
    /// set SND.WL1 <- SEG.SEQ, and set SND.WL2 <- SEG.ACK"), congestion control at the
    /// initial window; the handshake gives an RTT sample unless our SYN was retransmitted
    /// (Karn) or no state was kept for it (a cookie).
    pub(crate) fn establish(
        &mut self,
        cfg: &Config,
        stats: &mut Stats,
        now: Instant,
        seg: &TcpRepr<'_>,
        wnd: u32,
    ) {
        self.set_state(State::Established, stats);
        if self.retries == 0 && !self.from_cookie {
            self.rtt.sample(now - self.opened_at);
        }
        self.retries = 0;
        self.timers.stop(Timer::Rto);
        self.snd_una = seg.ack;
        self.snd_wnd = wnd;
        self.max_snd_wnd = wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        self.cc = NewReno::new(self.opts.mss, cfg.initial_window);
    }
}
