//! What the engine sends: SYN and SYN-ACK, data within the send and congestion windows (with
//! sender silly-window avoidance, RFC 9293 §3.8.6.2.1), FIN, ACKs (immediate or delayed,
//! RFC 1122 §4.2.3.2 / RFC 5681 §4.2), RSTs, and the probes the timers ask for. Also where the
//! app is called after each event.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::conn::Conn;
use super::engine::Route;
use super::{Config, ConnId, SeqNumber, State};
use crate::app::{App, CloseReason, Io, Shutdown};
use crate::stats::{Latencies, LatencyKind, Stats};
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::tcp::{Flags, Options, Repr as TcpRepr};
use crate::wire::{IpRepr, TcpFrame, ipv4, ipv6};

/// What happens to a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It lives on.
    Keep,
    /// It is gone (the app is told why).
    Close(CloseReason),
    /// It moves to the TIME-WAIT table.
    TimeWait,
}

/// Everything an event handler may touch besides the connection itself.
pub(crate) struct Cx<'a, A: App, T: Tx> {
    pub(crate) cfg: &'a Config,
    pub(crate) stats: &'a mut Stats,
    pub(crate) app: &'a mut A,
    pub(crate) tx: &'a mut T,
    pub(crate) now: Instant,
    pub(crate) id: ConnId,
    pub(crate) latencies: &'a mut Latencies,
}

/// Builds the whole frame for `tcp` in place in a TX frame. False if no frame was free (or
/// the addresses mix families, which a parsed frame never does).
pub(crate) fn emit<T: Tx>(
    cfg: &Config,
    stats: &mut Stats,
    tx: &mut T,
    route: &Route,
    tcp: &TcpRepr<'_>,
) -> bool {
    let t = &route.tuple;
    let payload_len = tcp.buffer_len();
    let (ethertype, ip) = match (t.local_addr, t.remote_addr) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => (
            ETHERTYPE_IPV4,
            IpRepr::V4(ipv4::Repr {
                src,
                dst,
                protocol: 6,
                payload_len,
                ttl: cfg.ttl,
            }),
        ),
        (IpAddr::V6(src), IpAddr::V6(dst)) => (
            ETHERTYPE_IPV6,
            IpRepr::V6(ipv6::Repr {
                src,
                dst,
                next_header: 6,
                payload_len,
                hop_limit: cfg.ttl,
            }),
        ),
        _ => return false,
    };
    let frame = TcpFrame {
        eth: ethernet::Repr {
            dst: route.mac,
            src: cfg.local_mac,
            vlan: route.vlan,
            ethertype,
        },
        ip,
        tcp: TcpRepr {
            options: tcp.options,
            payload: tcp.payload,
            ..*tcp
        },
    };
    if tx.send(frame.buffer_len(), |buf| frame.emit(buf)) {
        stats.tx_frames += 1;
        stats.tx_bytes += tcp.payload.len() as u64;
        true
    } else {
        stats.drop(crate::stats::DropReason::TxFull);
        false
    }
}

/// Our SYN (in SYN-SENT) or SYN-ACK (in SYN-RECEIVED), with the options we offer / accepted.
pub(crate) fn send_syn<S, T: Tx>(
    c: &mut Conn<S>,
    cfg: &Config,
    stats: &mut Stats,
    tx: &mut T,
    now: Instant,
) -> bool {
    let syn_ack = c.state == State::SynReceived;
    let window = cfg.recv_buffer.min(u32::from(u16::MAX)) as u16;
    let (ws, sack, ts) = if syn_ack {
        (
            (c.opts.rcv_wscale > 0 || c.opts.snd_wscale > 0).then_some(c.opts.rcv_wscale),
            c.opts.sack,
            c.opts.ts.then(|| (c.ts_now(now), c.ts_recent)),
        )
    } else {
        (
            (cfg.window_scale > 0).then_some(c.opts.rcv_wscale),
            cfg.sack,
            cfg.timestamps.then(|| (c.ts_now(now), 0)),
        )
    };
    let repr = TcpRepr {
        src_port: c.tuple.local_port,
        dst_port: c.tuple.remote_port,
        seq: c.iss,
        ack: if syn_ack { c.rcv_nxt } else { SeqNumber(0) },
        flags: if syn_ack {
            Flags::SYN | Flags::ACK
        } else {
            Flags::SYN
        },
        window,
        options: Options {
            mss: Some(cfg.mss),
            window_scale: ws,
            sack_permitted: sack,
            timestamp: ts,
            ..Options::default()
        },
        payload: &[],
    };
    let sent = emit(cfg, stats, tx, &c.route(), &repr);
    if sent && syn_ack {
        stats.synacks_sent += 1;
        c.rcv_adv = c.rcv_nxt + u32::from(window);
        c.last_ack_sent = c.rcv_nxt;
    }
    sent
}

/// The header of a segment of this connection: ACK of RCV.NXT, our window, timestamps and
/// SACK blocks as negotiated.
fn header<'p, S>(
    c: &Conn<S>,
    cfg: &Config,
    now: Instant,
    seq: SeqNumber,
    flags: Flags,
    payload: &'p [u8],
) -> (TcpRepr<'p>, SeqNumber) {
    let (window, edge) = c.window_to_advertise(cfg.recv_buffer);
    let mut options = Options {
        timestamp: c.opts.ts.then(|| (c.ts_now(now), c.ts_recent)),
        ..Options::default()
    };
    // SACK blocks ride on pure ACKs only, so a data segment never outgrows the MSS.
    if c.opts.sack && !c.ooo.is_empty() && payload.is_empty() && !flags.contains(Flags::RST) {
        let max = if c.opts.ts { 3 } else { 4 };
        for (i, block) in c.ooo.sack_blocks(max).enumerate() {
            options.sack_blocks[i] = block;
            options.sack_count = i as u8 + 1;
        }
    }
    let repr = TcpRepr {
        src_port: c.tuple.local_port,
        dst_port: c.tuple.remote_port,
        seq,
        ack: c.rcv_nxt,
        flags: flags | Flags::ACK,
        window,
        options,
        payload,
    };
    (repr, edge)
}

/// Sends one segment of this connection with `len` bytes of `send` from `seq` (and a FIN
/// after them if `fin`). Does not move SND.NXT.
fn send_segment<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seq: SeqNumber,
    len: usize,
    mut flags: Flags,
) -> bool {
    let off = (seq - c.snd_una) as usize;
    let sent;
    let edge;
    {
        let start = off.min(c.send.len());
        let end = (off + len).min(c.send.len());
        // Rotate the ring only when this segment straddles its wrap point (once per lap):
        // rotating for every segment moved the whole send buffer each time.
        if start < c.send.as_slices().0.len() && end > c.send.as_slices().0.len() {
            c.send.make_contiguous();
        }
        let (front, back) = c.send.as_slices();
        let payload = if end <= front.len() {
            &front[start..end]
        } else {
            &back[start - front.len()..end - front.len()]
        };
        if !payload.is_empty() && off + len == c.send.len() {
            flags |= Flags::PSH;
        }
        let (repr, e) = header(c, cx.cfg, cx.now, seq, flags, payload);
        edge = e;
        sent = emit(cx.cfg, cx.stats, cx.tx, &c.route(), &repr);
    }
    if sent {
        c.rcv_adv = edge;
        c.last_ack_sent = c.rcv_nxt;
        c.ack_now = false;
        c.ack_at = None;
        c.unacked_segs = 0;
    }
    sent
}

/// A pure ACK (also used for challenge ACKs and window updates).
///
/// It carries SND.MAX, not SND.NXT: after a timeout SND.NXT is rewound to SND.UNA, and an
/// ACK numbered below what the peer already received is unacceptable to it and dropped with
/// the acknowledgment it carries (two ends both retransmitting would never hear each other).
/// As BSD: "for ACK only packets, we do not want the sequence number of the retransmitted
/// packet, we want the sequence number of the next unsent octet".
pub(crate) fn send_ack<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> bool {
    let seq = c.snd_max;
    send_segment(c, cx, seq, 0, Flags::ACK)
}

/// A probe that the peer must answer with an ACK: SEG.SEQ one below what it expects, no
/// data. Keepalive (RFC 1122 §4.2.3.6) and zero-window probes use it, as Linux does.
pub(crate) fn send_probe<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> bool {
    let seq = c.snd_una - 1;
    let (repr, _) = header(c, cx.cfg, cx.now, seq, Flags::ACK, &[]);
    emit(cx.cfg, cx.stats, cx.tx, &c.route(), &repr)
}

/// RST for an abort: <SEQ=SND.NXT><CTL=RST,ACK> (RFC 9293 §3.10.5 ABORT), with SND.NXT
/// taken before any timeout rewound it (SND.MAX), so the peer finds it at RCV.NXT.
pub(crate) fn send_rst<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    let (mut repr, _) = header(c, cx.cfg, cx.now, c.snd_max, Flags::RST, &[]);
    repr.window = 0;
    if emit(cx.cfg, cx.stats, cx.tx, &c.route(), &repr) {
        cx.stats.resets_sent += 1;
    }
}

/// RST answering an unacceptable ACK: <SEQ=SEG.ACK><CTL=RST>.
pub(crate) fn send_rst_for_ack<A: App, T: Tx>(
    c: &Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    ack: SeqNumber,
) {
    let repr = TcpRepr {
        src_port: c.tuple.local_port,
        dst_port: c.tuple.remote_port,
        seq: ack,
        ack: SeqNumber(0),
        flags: Flags::RST,
        window: 0,
        options: Options::default(),
        payload: &[],
    };
    if emit(cx.cfg, cx.stats, cx.tx, &c.route(), &repr) {
        cx.stats.resets_sent += 1;
    }
}

/// A challenge ACK (RFC 5961 §3.2, §4.2), at most `challenge_acks_per_second` per connection.
pub(crate) fn challenge_ack<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    let second = (cx.now.total_micros() / 1_000_000) as u32;
    if c.challenge.0 != second {
        c.challenge = (second, 0);
    }
    if u32::from(c.challenge.1) >= cx.cfg.challenge_acks_per_second {
        cx.stats
            .drop(crate::stats::DropReason::ChallengeAckRateLimited);
        return;
    }
    c.challenge.1 += 1;
    if send_ack(c, cx) {
        cx.stats.challenge_acks += 1;
    }
}

/// The ACK owed to an unacceptable segment (RFC 9293 §3.10.7.4 first check). Pure ACKs are
/// answered at most every 500 ms, so two ends that disagree cannot ping-pong ACKs forever;
/// data segments always are (Linux `tcp_oow_rate_limited`).
pub(crate) fn ack_unacceptable<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    has_data: bool,
) {
    let now_ms = cx.now.total_millis() as u32;
    if !has_data {
        if c.last_oow_ack_ms != 0 && now_ms.wrapping_sub(c.last_oow_ack_ms) < 500 {
            return;
        }
        c.last_oow_ack_ms = now_ms.max(1);
    }
    send_ack(c, cx);
}

/// Retransmits the first unacknowledged segment (fast retransmit, partial ACK), SND.NXT
/// unchanged.
pub(crate) fn retransmit_first<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    c.rtt_probe = None; // Karn
    let len = c.send.len().min(c.payload_mss());
    let fin = c.fin_seq == Some(c.snd_una + len);
    let seq = c.snd_una;
    let flags = if fin { Flags::FIN } else { Flags(0) };
    if (len > 0 || fin) && send_segment(c, cx, seq, len, flags) {
        cx.stats.fast_retransmits += 1;
    }
}

/// The sender SWS override (RFC 1122 §4.2.3.4): with nothing in flight and a peer window
/// too small for a full segment, send what fits. False if the window is closed.
pub(crate) fn send_into_small_window<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
) -> bool {
    let unsent = c.unsent();
    let wnd = c.snd_wnd.min(c.cc.window());
    let len = unsent
        .min(usize::from(c.opts.mss))
        .min(wnd.saturating_sub(c.flight()) as usize);
    if len == 0 {
        return false;
    }
    let seq = c.snd_nxt;
    let fin = c.fin_queued() && len == unsent && c.fin_seq.is_none_or(|f| f == seq + len);
    let flags = if fin { Flags::FIN } else { Flags(0) };
    if !send_segment(c, cx, seq, len, flags) {
        return false;
    }
    advance(c, cx, seq, len, fin);
    true
}

/// Sends what the windows allow: new (or, after a timeout, rewound) data, our FIN, and an ACK
/// if one is owed and nothing else carried it.
pub(crate) fn transmit<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    if matches!(c.state, State::SynSent | State::SynReceived) {
        if c.ack_now && c.state == State::SynReceived {
            // Nothing but the SYN-ACK is owed here; the timer resends it.
            c.ack_now = false;
        }
        return;
    }
    let mss = c.payload_mss();
    loop {
        let unsent = c.unsent();
        if unsent == 0 {
            break;
        }
        let wnd = c.snd_wnd.min(c.cc.window());
        let usable = wnd.saturating_sub(c.flight()) as usize;
        let len = unsent.min(mss).min(usable);
        if len == 0 {
            break;
        }
        // Sender SWS avoidance: a full segment, everything we have, or half the peer's
        // largest window.
        if len < mss && len < unsent && (len as u32) < c.max_snd_wnd / 2 {
            break;
        }
        let seq = c.snd_nxt;
        let fin = c.fin_queued() && len == unsent && c.fin_seq.is_none_or(|f| f == seq + len);
        let flags = if fin { Flags::FIN } else { Flags(0) };
        if !send_segment(c, cx, seq, len, flags) {
            break;
        }
        advance(c, cx, seq, len, fin);
    }
    if c.fin_queued() && c.unsent() == 0 {
        let seq = c.snd_nxt;
        let due = match c.fin_seq {
            None => seq == c.snd_una + c.send.len(),
            Some(f) => seq == f,
        };
        if due && send_segment(c, cx, seq, 0, Flags::FIN) {
            advance(c, cx, seq, 0, true);
        }
    }
    // Zero window with data waiting and nothing in flight: the persist timer probes it.
    if c.unsent() > 0 && c.flight() == 0 && c.rto_at.is_none() {
        c.rto_at = Some(cx.now + c.rtt.rto());
    }
    if c.ack_now {
        send_ack(c, cx);
    }
}

/// Bookkeeping after sending `len` bytes (and maybe a FIN) at `seq`.
fn advance<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seq: SeqNumber,
    len: usize,
    fin: bool,
) {
    let end = seq + len + usize::from(fin);
    if end.gt(c.snd_max) {
        if c.rtt_probe.is_none() && !c.opts.ts && seq.ge(c.snd_max) {
            c.rtt_probe = Some((seq, cx.now));
        }
        c.snd_max = end;
    } else {
        cx.stats.rto_retransmits += u64::from(len > 0 || fin);
    }
    c.snd_nxt = end;
    if fin && c.fin_seq.is_none() {
        c.fin_seq = Some(seq + len);
        match c.state {
            State::Established => c.set_state(State::FinWait1, cx.stats),
            State::CloseWait => c.set_state(State::LastAck, cx.stats),
            _ => {}
        }
    }
    if c.rto_at.is_none() {
        c.rto_at = Some(cx.now + c.rtt.rto());
    }
}

pub(crate) fn io<'c, S>(
    c: &'c mut Conn<S>,
    cfg: &Config,
    id: ConnId,
    now: Instant,
) -> (Io<'c>, &'c mut S, &'c mut VecDeque<u8>) {
    let io = Io::new(
        id,
        c.tuple,
        now,
        &mut c.send,
        cfg.send_buffer as usize,
        &mut c.shutdown,
    );
    (io, &mut c.app, &mut c.recv)
}

/// Lets the app act on what the event changed: connected, room to write, data, peer's FIN.
fn deliver<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    if !c.state.is_synchronized() {
        return;
    }
    let (cfg, id, now) = (cx.cfg, cx.id, cx.now);
    if !c.app_connected {
        c.app_connected = true;
        if c.passive {
            cx.stats.passive_opens += 1;
        } else {
            cx.stats.active_opens += 1;
        }
        // A cookie connection kept nothing from its SYN, so its handshake time is unknown.
        if !c.from_cookie {
            cx.latencies
                .record(LatencyKind::Handshake, now - c.opened_at);
        }
        let (mut io, state, _) = io(c, cfg, id, now);
        cx.app.on_connected(state, &mut io);
    }
    if c.app_blocked && c.shutdown == Shutdown::Open && c.send.len() < cfg.send_buffer as usize {
        c.app_blocked = false;
        let (mut io, state, _) = io(c, cfg, id, now);
        cx.app.on_writable(state, &mut io);
    }
    if !c.recv.is_empty() {
        if c.shutdown >= Shutdown::Close {
            c.recv.clear();
        } else {
            let before = c.rcv_space(cfg.recv_buffer);
            let (mut io, state, recv) = io(c, cfg, id, now);
            let consumed = cx.app.on_data(state, &mut io, recv.make_contiguous());
            recv.drain(..consumed.min(recv.len()));
            // Window update when reading opened the window by two segments or half the buffer.
            let after = c.rcv_space(cfg.recv_buffer);
            let advertised = c.rcv_adv - c.rcv_nxt;
            let grown = after.saturating_sub(advertised.max(before.min(advertised)));
            if grown >= 2 * u32::from(c.opts.mss) || grown >= cfg.recv_buffer / 2 {
                c.ack_now = true;
            }
        }
    }
    if c.recv.is_empty() && c.recv.capacity() > 4096 {
        c.recv = VecDeque::new();
    }
    if c.state.fin_received() && c.recv.is_empty() && !c.app_peer_closed {
        c.app_peer_closed = true;
        let (mut io, state, _) = io(c, cfg, id, now);
        cx.app.on_peer_closed(state, &mut io);
    }
    if c.shutdown == Shutdown::Open && c.send.len() >= cfg.send_buffer as usize {
        c.app_blocked = true;
    }
}

/// After the state machine or a timer ran: the app acts, then we transmit.
pub(crate) fn after_event<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    outcome: Outcome,
) -> Outcome {
    if let Outcome::Close(_) = outcome {
        return outcome;
    }
    deliver(c, cx);
    if c.shutdown == Shutdown::Abort {
        send_rst(c, cx);
        return Outcome::Close(CloseReason::Aborted);
    }
    transmit(c, cx);
    outcome
}
