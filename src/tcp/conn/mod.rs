//! The transmission control block (RFC 9293 §3.3.1): everything one connection remembers.
//!
//! Grouped as RFC 9293 names them: the send sequence space ([`SendSpace`], Figure 3) and the
//! receive sequence space ([`RecvSpace`], Figure 4), each with its bytes; the options the
//! handshake settled and the RFC 7323 timestamp state; the timers; the app's side. Kept
//! compact: buffers start empty and are released when drained, the timers share one
//! timer-wheel entry, keepalive settings are an index into the listener table.

pub(crate) mod options;

use std::collections::VecDeque;

use super::budget::Budget;
use super::conn_table::Keyed;
use super::contract::{SendFlags, Shutdown};
use super::delayed_ack::DelayedAck;
use super::hash::Keys;
pub(crate) use super::negotiate::Negotiated;
use super::reassembly::Reassembly;
use super::recovery::Recovery;
use super::route::Route;
use super::rtt::RttEstimator;
use super::timer::{Timer, Timers};
use super::{Config, FourTuple, isn};
use crate::state::State;
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::SeqNumber;
use crate::wire::tcp::{Flags, Repr as TcpRepr, TIMESTAMP_OPTION_LEN};
use options::Limits;

/// [`Conn::listener`] of an actively opened connection: no listener's keepalive applies.
pub(crate) const NO_LISTENER: u8 = u8::MAX;

/// A drained send or receive buffer keeps at most this much capacity; a larger one goes back
/// to the allocator, so an idle connection stays small. Zero: an idle keep-alive connection
/// holds no buffer at all. Keeping up to 4 KiB cost an HTTP keep-alive connection ~200 B of
/// retained capacity (at 100 000 connections: 997 B instead of 794 B each, RSS 1153 B instead
/// of 905 B); freeing costs an allocation per burst of data (a few % of the keep-alive request
/// rate in noisy measurements).
pub(crate) const MAX_IDLE_BUFFER: usize = 0;

/// The send sequence space (RFC 9293 §3.3.1, Figure 3) and the bytes in it.
#[derive(Debug)]
pub(crate) struct SendSpace {
    /// ISS: our initial sequence number.
    pub(crate) iss: SeqNumber,
    /// SND.UNA: the oldest unacknowledged sequence number.
    pub(crate) una: SeqNumber,
    /// SND.NXT: the next sequence number to send (back to SND.UNA after a timeout).
    pub(crate) nxt: SeqNumber,
    /// Highest sequence number sent so far (SND.NXT moves back on a timeout, this does not).
    pub(crate) max: SeqNumber,
    /// SND.WND: the peer's window, in bytes (scaled).
    pub(crate) wnd: u32,
    /// The largest window the peer offered (MAX.SND.WND of RFC 5961 §5.2).
    pub(crate) max_wnd: u32,
    /// SND.WL1: the sequence number of the segment of the last window update.
    pub(crate) wl1: SeqNumber,
    /// SND.WL2: the acknowledgment number of the segment of the last window update.
    pub(crate) wl2: SeqNumber,
    /// Bytes from SND.UNA on: in flight first, then not yet sent.
    pub(crate) buf: VecDeque<u8>,
    /// Sequence number of our FIN once it has gone out (right after the last byte of `buf`).
    pub(crate) fin: Option<SeqNumber>,
    /// How the app's writes are pushed: `TCP_NODELAY`, `TCP_CORK`, `MSG_MORE`.
    pub(crate) flags: SendFlags,
    /// The end of the app's last pushed write (Linux `tcp_mark_push`): the segment that
    /// carries it gets PSH.
    pub(crate) push: Option<SeqNumber>,
    /// The end of the last segment sent with PSH (Linux `pushed_seq`): a segment ending more
    /// than half the peer's largest window past it gets PSH too (`forced_push`).
    pub(crate) pushed: SeqNumber,
    /// The end of the last short segment sent (Linux `snd_sml`, for Minshall's Nagle test).
    pub(crate) sml: SeqNumber,
}

/// The receive sequence space (RFC 9293 §3.3.1, Figure 4) and the bytes in it.
#[derive(Debug)]
pub(crate) struct RecvSpace {
    /// IRS: the peer's initial sequence number.
    pub(crate) irs: SeqNumber,
    /// RCV.NXT: the next sequence number we expect.
    pub(crate) nxt: SeqNumber,
    /// Right edge of the window we advertised last; it never moves left (RFC 9293 §3.8.6).
    pub(crate) adv: SeqNumber,
    /// RCV.NXT carried by the last ACK we sent ("Last.ACK.sent", RFC 7323 §4.3).
    pub(crate) last_ack_sent: SeqNumber,
    /// In-order bytes the app has not consumed yet.
    pub(crate) buf: VecDeque<u8>,
    /// Bytes that arrived ahead of a hole.
    pub(crate) ooo: Reassembly,
    /// A duplicate segment to report in the next ACK's first SACK block (RFC 2883 D-SACK).
    pub(crate) dsack: Option<(SeqNumber, SeqNumber)>,
    /// In-order data at RCV.NXT was dropped for want of memory: until RCV.NXT moves, data
    /// beyond it is not kept either (the memory it would take is what the hole needs).
    pub(crate) starved: bool,
}

/// RFC 7323 timestamps of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timestamps {
    /// Added to our millisecond clock for our TSval (RFC 7323 §5.4: a per-connection offset).
    pub(crate) offset: u32,
    /// TS.Recent: the TSval we echo (RFC 7323 §4.3).
    pub(crate) recent: u32,
}

/// The application's side of a connection.
#[derive(Debug)]
pub(crate) struct AppSide<S> {
    /// How far the app shut the connection.
    pub(crate) shutdown: Shutdown,
    /// The app was told the connection is up.
    pub(crate) connected: bool,
    /// The app was told the peer's FIN arrived.
    pub(crate) peer_closed: bool,
    /// The app found the send buffer full; tell it when room appears.
    pub(crate) blocked: bool,
    /// The app's per-connection state.
    pub(crate) state: S,
}

/// One connection in the table.
#[derive(Debug)]
pub(crate) struct Conn<S> {
    /// The 4-tuple, and the peer's (next hop's) MAC and VLAN tag for every frame we send.
    pub(crate) route: Route,
    pub(crate) state: State,
    /// Opened by a listener (true) or by `connect` (false).
    pub(crate) passive: bool,
    /// Established by a SYN-cookie ACK (no SYN-RECEIVED state was ever kept).
    pub(crate) from_cookie: bool,
    /// A TCP Fast Open connection still in SYN-RECEIVED (RFC 7413 §4.2.2): it took the SYN's
    /// data, the app has it, and it may send before the third ACK.
    pub(crate) fastopen: bool,
    /// Index of the listener whose keepalive applies ([`NO_LISTENER`]: none).
    pub(crate) listener: u8,
    /// When the SYN arrived (passive) or was sent (active): handshake latency.
    pub(crate) opened_at: Instant,

    pub(crate) snd: SendSpace,
    pub(crate) rcv: RecvSpace,
    /// The options the handshake settled.
    pub(crate) opts: Negotiated,
    pub(crate) ts: Timestamps,
    /// Retransmission, delayed ACK, keepalive / FIN-WAIT-2 and the app's deadline, and their
    /// timer-wheel entry.
    pub(crate) timers: Timers,

    // Retransmission and congestion control.
    pub(crate) rtt: RttEstimator,
    /// Segment being timed for an RTT sample when timestamps are off (Karn: never a
    /// retransmitted one).
    pub(crate) rtt_probe: Option<(SeqNumber, Instant)>,
    /// Consecutive retransmission timeouts (or unanswered window probes).
    pub(crate) retries: u8,
    /// Loss recovery and congestion control (RFC 6675, RFC 8985, RFC 6937, RFC 9438).
    pub(crate) rec: Recovery,
    /// The socket options set for this connection (`super::sockopt`).
    pub(crate) limits: Limits,
    /// Payload bytes the peer acknowledged, and in-order payload bytes received (`TCP_INFO`'s
    /// `tcpi_bytes_acked`, `tcpi_bytes_received`).
    pub(crate) bytes_acked: u64,
    pub(crate) bytes_received: u64,
    /// Since the first retransmission (a tail loss probe too) or window probe that no ACK has
    /// answered yet: when the oldest unacknowledged segment was sent, what the user timeout
    /// counts from (Linux's `retrans_stamp`).
    pub(crate) timeout_start: Option<Instant>,

    // Keepalive.
    /// When the peer last proved alive (an acceptable segment): keepalive counts idleness
    /// from here, checked when its timer fires (the deadline does not move on every segment).
    pub(crate) last_rx: Instant,
    /// Unanswered keepalive probes.
    pub(crate) ka_probes: u8,

    // ACK bookkeeping.
    /// When received data is ACKed: quick-ACK mode, or delayed (Linux's rules).
    pub(crate) delack: DelayedAck,
    /// An ACK must go out with the next transmission (now, not delayed).
    pub(crate) ack_now: bool,
    /// An ACK for in-order data is owed at the end of the receive batch (the connection is
    /// in the batch's list once).
    pub(crate) ack_batched: bool,
    /// Challenge ACK limiter: (second, count in that second).
    pub(crate) challenge: (u32, u16),
    /// Last time (ms) we answered an out-of-window pure ACK (Linux tcp_invalid_ratelimit).
    pub(crate) last_oow_ack_ms: u32,

    pub(crate) app: AppSide<S>,
}

impl<S> Keyed for Conn<S> {
    fn tuple(&self) -> &FourTuple {
        &self.route.tuple
    }
}

impl<S: Default> Conn<S> {
    /// A fresh control block, still CLOSED, with our ISS and the negotiated options; the
    /// caller completes the sequence variables the segment that opened it decides, files it
    /// and moves it to its first state with [`Conn::set_state`].
    pub(crate) fn new(
        cfg: &Config,
        keys: &Keys,
        now: Instant,
        route: &Route,
        opts: Negotiated,
        iss: SeqNumber,
    ) -> Conn<S> {
        Conn {
            route: *route,
            state: State::Closed,
            passive: false,
            from_cookie: false,
            fastopen: false,
            listener: NO_LISTENER,
            opened_at: now,
            snd: SendSpace {
                iss,
                una: iss,
                nxt: iss,
                max: iss,
                wnd: 0,
                max_wnd: 0,
                wl1: SeqNumber(0),
                wl2: iss,
                buf: VecDeque::new(),
                fin: None,
                flags: SendFlags {
                    nodelay: cfg.nodelay,
                    ..SendFlags::default()
                },
                push: None,
                pushed: iss,
                sml: iss,
            },
            rcv: RecvSpace {
                irs: SeqNumber(0),
                nxt: SeqNumber(0),
                adv: SeqNumber(0),
                last_ack_sent: SeqNumber(0),
                buf: VecDeque::new(),
                ooo: Reassembly::default(),
                dsack: None,
                starved: false,
            },
            opts,
            ts: Timestamps {
                offset: isn::timestamp_offset(&keys.timestamp, &route.tuple),
                recent: 0,
            },
            timers: Timers::default(),
            rtt: RttEstimator::new(cfg.rto_initial, cfg.rto_min, cfg.rto_max, cfg.rto_formula),
            rtt_probe: None,
            retries: 0,
            rec: Recovery::new(
                cfg.congestion_control,
                opts.mss,
                cfg.initial_window,
                false,
                now,
            ),
            limits: Limits::default(),
            bytes_acked: 0,
            bytes_received: 0,
            timeout_start: None,
            last_rx: now,
            ka_probes: 0,
            delack: DelayedAck::default(),
            ack_now: false,
            ack_batched: false,
            challenge: (0, 0),
            last_oow_ack_ms: 0,
            app: AppSide {
                shutdown: Shutdown::Open,
                connected: false,
                peer_closed: false,
                blocked: false,
                state: S::default(),
            },
        }
    }
}

impl<S> Conn<S> {
    /// Bytes sent and not yet acknowledged (SYN and FIN count as one each).
    pub(crate) fn flight(&self) -> u32 {
        self.snd.nxt - self.snd.una
    }

    /// Most payload bytes per segment: the MSS less the options every segment carries
    /// (timestamps: 12 bytes), so header + options + data fit the peer's MSS (RFC 6691).
    pub(crate) fn payload_mss(&self) -> usize {
        usize::from(self.opts.mss)
            .saturating_sub(self.ts_option_len())
            .max(1)
    }

    /// Most payload bytes per segment the peer may send us: the MSS we announced less the
    /// timestamp option (Linux's `advmss`).
    pub(crate) fn rcv_payload_mss(&self, cfg: &Config) -> usize {
        usize::from(self.syn_mss(cfg))
            .saturating_sub(self.ts_option_len())
            .max(1)
    }

    /// Option bytes every segment carries: the timestamp option when timestamps are in use.
    fn ts_option_len(&self) -> usize {
        if self.opts.ts {
            TIMESTAMP_OPTION_LEN
        } else {
            0
        }
    }

    /// Bytes of `send` already transmitted (in flight or acknowledged-but-unread: never).
    pub(crate) fn data_sent(&self) -> usize {
        (self.flight() as usize).min(self.snd.buf.len())
    }

    /// Bytes of `send` not transmitted yet.
    pub(crate) fn unsent(&self) -> usize {
        self.snd.buf.len() - self.data_sent()
    }

    /// Whether our FIN is due (the app shut down writing) once the data before it is out.
    pub(crate) fn fin_queued(&self) -> bool {
        matches!(self.app.shutdown, Shutdown::Write | Shutdown::Close)
    }

    /// Whether our FIN has been acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.snd.fin.is_some_and(|fin| self.snd.una.gt(fin))
    }

    /// Bytes received and kept: in order (not yet consumed) and out of order.
    pub(crate) fn rcv_queued(&self) -> usize {
        self.rcv.buf.len() + self.rcv.ooo.bytes()
    }

    /// Free receive buffer space: what we may advertise.
    pub(crate) fn rcv_space(&self, recv_buffer: u32) -> u32 {
        recv_buffer.saturating_sub(self.rcv_queued() as u32)
    }

    /// The receive buffer the window is advertised into now: the connection's, or under
    /// memory pressure what is queued plus what the budget allows past it (at most 4 MSS).
    /// The right edge already advertised never moves back (`window_to_advertise`).
    pub(crate) fn recv_limit(&self, cfg: &Config, mem: &Budget) -> u32 {
        match mem.window_allowance(self.heap_bytes(), self.rcv_payload_mss(cfg)) {
            None => self.recv_buffer(cfg),
            Some(w) => self
                .recv_buffer(cfg)
                .min((self.rcv_queued() as u32).saturating_add(w)),
        }
    }

    /// The most the send buffer may hold now: the connection's send buffer, or under memory
    /// pressure what its capacity holds already ([`Budget::send_ceiling`]).
    pub(crate) fn send_limit(&self, cfg: &Config, mem: &Budget) -> usize {
        mem.send_ceiling(
            self.heap_bytes(),
            self.snd.buf.capacity(),
            self.send_buffer(cfg) as usize,
        )
    }

    /// The window still open to the peer: from RCV.NXT to the right edge we last advertised
    /// (RCV.ADV), or 0 once data has reached it.
    pub(crate) fn rcv_open(&self) -> u32 {
        if self.rcv.adv.gt(self.rcv.nxt) {
            self.rcv.adv - self.rcv.nxt
        } else {
            0
        }
    }

    /// The largest window we can ever advertise (Linux's `window_clamp`): the receive buffer,
    /// as far as the window field and our scale reach.
    pub(crate) fn window_clamp(&self, recv_buffer: u32) -> u32 {
        (u32::from(u16::MAX) << self.opts.rcv_wscale).min(recv_buffer)
    }

    /// The window field to advertise now (scaled), never shrinking the right edge, and the
    /// right edge it implies.
    pub(crate) fn window_to_advertise(&self, recv_buffer: u32) -> (u16, SeqNumber) {
        let space = self.rcv_space(recv_buffer);
        let scale = self.opts.rcv_wscale;
        // Round down to the scale granularity; at least what we already promised.
        let max = u32::from(u16::MAX) << scale;
        let mut wnd = (space.min(max) >> scale) << scale;
        let promised = self.rcv_open();
        if promised > wnd {
            wnd = promised.min(max);
        }
        let field = (wnd >> scale).min(u32::from(u16::MAX)) as u16;
        let edge = self.rcv.nxt + (u32::from(field) << scale);
        (field, edge.max(self.rcv.adv))
    }

    /// Heap bytes held by the connection's buffers.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.snd.buf.capacity()
            + self.rcv.buf.capacity()
            + self.rcv.ooo.heap_bytes()
            + self.rec.heap_bytes()
    }
}

impl<S> Conn<S> {
    /// Moves to `new` (RFC 9293 §3.3.2), and the per-state gauges with it: every state
    /// change of a connection, from its creation (out of CLOSED) to its removal (back to
    /// CLOSED), goes through here.
    pub(crate) fn set_state(&mut self, new: State, stats: &mut Stats) {
        stats.state_changed(self.state, new);
        self.state = new;
    }

    /// Our TSval now: a millisecond clock plus the per-connection offset (RFC 7323 §5.4).
    pub(crate) fn ts_now(&self, now: Instant) -> u32 {
        now.wrapping_millis().wrapping_add(self.ts.offset)
    }
}

impl<S> Conn<S> {
    /// The peer's SYN had sequence number `irs` (for a cookie connection: the SYN the cookie
    /// stands for) and timestamps `timestamp`: "set RCV.NXT to SEG.SEQ+1, IRS is set to
    /// SEG.SEQ" (RFC 9293 §3.10.7.2 third step), and its TSval is TS.Recent (RFC 7323 §4.3).
    pub(crate) fn synchronize_receive(&mut self, irs: SeqNumber, timestamp: Option<(u32, u32)>) {
        self.rcv.irs = irs;
        self.rcv.nxt = irs + 1u32;
        self.rcv.last_ack_sent = self.rcv.nxt;
        if let Some((tsval, _)) = timestamp {
            self.ts.recent = tsval;
        }
    }

    /// Our SYN (or SYN-ACK) went out: SND.NXT and SND.MAX are past it.
    pub(crate) fn syn_sent(&mut self) {
        self.snd.nxt = self.snd.iss + 1u32;
        self.snd.max = self.snd.nxt;
    }

    /// `seg` acknowledges our SYN (its ACK covers exactly the SYN): ESTABLISHED (RFC 9293
    /// §3.10.7.3 SYN-SENT fourth step, §3.10.7.4 SYN-RECEIVED fifth step). The send sequence
    /// space starts at SEG.ACK with the peer's window ("set SND.WND <- SEG.WND, set SND.WL1 <-
    /// SEG.SEQ, and set SND.WL2 <- SEG.ACK"), scaled unless `seg` is a SYN-ACK: "the window
    /// field in a SYN (i.e., a <SYN> or <SYN,ACK>) segment itself is never scaled" (RFC 7323
    /// §2.2). Congestion control starts at the initial window; the handshake gives an RTT
    /// sample unless our SYN was retransmitted (Karn) or no state was kept for it (a cookie).
    /// A Fast Open connection keeps the send state it has had since its SYN-ACK.
    pub(crate) fn establish(
        &mut self,
        cfg: &Config,
        stats: &mut Stats,
        now: Instant,
        seg: &TcpRepr<'_>,
    ) {
        let shift = if seg.flags.contains(Flags::SYN) {
            0
        } else {
            self.opts.snd_wscale
        };
        let wnd = u32::from(seg.window) << shift;
        self.set_state(State::Established, stats);
        if self.retries == 0 && !self.from_cookie {
            self.rtt.sample(now - self.opened_at);
        }
        self.retries = 0;
        self.delack = DelayedAck::new(self.payload_mss(), self.rcv_wnd());
        if self.fastopen {
            // A Fast Open connection has been sending since its SYN-ACK (SND.UNA past our
            // SYN): what the ACK covers beyond the SYN is data, for the ACK's own processing;
            // the timer goes on guarding what is in flight (Linux
            // `tcp_rcv_synrecv_state_fastopen`, `tcp_rearm_rto`).
            self.fastopen = false;
            self.arm_loss_timer(now);
            return;
        }
        self.timers.stop(Timer::Retransmit);
        self.snd.una = seg.ack;
        self.snd.wnd = wnd;
        self.snd.max_wnd = wnd;
        self.snd.wl1 = seg.seq;
        self.snd.wl2 = seg.ack;
        self.start_sending(cfg, now);
    }

    /// Congestion control from the initial window (RFC 5681 §3.1, RFC 6928), with SACK-based
    /// recovery if the handshake settled on SACK: data may go out from `now` on (idle counts
    /// from here, as Linux's `tcp_init_transfer` sets `lsndtime`).
    pub(crate) fn start_sending(&mut self, cfg: &Config, now: Instant) {
        self.rec = Recovery::new(
            cfg.congestion_control,
            self.payload_mss() as u16,
            cfg.initial_window,
            self.opts.sack,
            now,
        );
    }

    /// RCV.WND as last advertised: from RCV.NXT at our last ACK to the right edge offered.
    pub(crate) fn rcv_wnd(&self) -> u32 {
        if self.rcv.adv.gt(self.rcv.last_ack_sent) {
            self.rcv.adv - self.rcv.last_ack_sent
        } else {
            0
        }
    }

    /// (Re)arms the timer that guards the data in flight: the retransmission timeout, or the
    /// tail loss probe or RACK's reordering timer when recovery asks for one (RFC 8985 §6.3,
    /// §7.2). With nothing in flight it is stopped (the persist timer is armed elsewhere).
    pub(crate) fn arm_loss_timer(&mut self, now: Instant) {
        if self.snd.una == self.snd.max {
            self.timers.stop(Timer::Retransmit);
            return;
        }
        let rto_at = now + self.rtt.rto();
        let one_segment = self.flight() as usize <= self.payload_mss();
        let (at, _) = self
            .rec
            .arm_timer(now, rto_at, self.rtt.srtt(), one_segment);
        self.timers.arm(Timer::Retransmit, at);
    }
}
