//! What the engine sends: SYN and SYN-ACK, data within the send and congestion windows (with
//! sender silly-window avoidance, RFC 9293 §3.8.6.2.1), FIN, ACKs (immediate or delayed,
//! RFC 1122 §4.2.3.2 / RFC 5681 §4.2), RSTs, and the probes the timers ask for; and the
//! stateless replies to segments that match no connection: the RST of RFC 9293 §3.10.7.1,
//! the SYN-cookie SYN-ACK (RFC 4987 §3.6) and the TIME-WAIT ACK (RFC 9293 §3.10.7.4).

use std::net::IpAddr;

use super::conn::Conn;
use super::event::{Cx, Stateless};
use super::recovery::LossTimer;
use super::route::Route;
use super::timer::Timer;
use super::{Config, SeqNumber, State};
use crate::app::App;
use crate::stats::Stats;
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::tcp::{
    FastOpenOption, Flags, MAX_SACK_BLOCKS, MAX_SACK_BLOCKS_WITH_TIMESTAMPS, Options,
    Repr as TcpRepr,
};
use crate::wire::{IPPROTO_TCP, IpRepr, TcpFrame, ipv4, ipv6};

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
                protocol: IPPROTO_TCP,
                payload_len,
                ttl: cfg.ttl,
            }),
        ),
        (IpAddr::V6(src), IpAddr::V6(dst)) => (
            ETHERTYPE_IPV6,
            IpRepr::V6(ipv6::Repr {
                src,
                dst,
                next_header: IPPROTO_TCP,
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

/// Pure ACKs that answer unacceptable pure ACKs (and the segments for a TIME-WAIT tuple) are
/// this far apart at least (Linux `tcp_invalid_ratelimit`: 500 ms).
pub(crate) const OUT_OF_WINDOW_ACK_INTERVAL_MS: u32 = 500;

/// The window our SYN or SYN-ACK advertises: the receive buffer, at most 65 535 bytes, since
/// "the window field in a SYN (i.e., a <SYN> or <SYN,ACK>) segment itself is never scaled"
/// (RFC 7323 §2.2).
pub(crate) fn syn_window(cfg: &Config) -> u32 {
    cfg.recv_buffer.min(u32::from(u16::MAX))
}

/// Our SYN (in SYN-SENT) or SYN-ACK (in SYN-RECEIVED), with the options we offer / accepted.
pub(crate) fn send_syn<S, T: Tx>(
    c: &mut Conn<S>,
    cfg: &Config,
    stats: &mut Stats,
    tx: &mut T,
    now: Instant,
) -> bool {
    send_syn_ack(c, cfg, stats, tx, now, None)
}

/// [`send_syn`] with `fast_open` as the segment's Fast Open option: the first SYN-ACK of a
/// passive open answers the SYN's (RFC 7413 §4.1.2; like Linux, retransmitted SYN-ACKs carry
/// none).
pub(crate) fn send_syn_ack<S, T: Tx>(
    c: &mut Conn<S>,
    cfg: &Config,
    stats: &mut Stats,
    tx: &mut T,
    now: Instant,
    fast_open: Option<FastOpenOption>,
) -> bool {
    let syn_ack = c.state == State::SynReceived;
    let window = c.syn_window(cfg) as u16;
    let (ws, sack, ts) = if syn_ack {
        (
            (c.opts.rcv_wscale > 0 || c.opts.snd_wscale > 0).then_some(c.opts.rcv_wscale),
            c.opts.sack,
            c.opts.ts.then(|| (c.ts_now(now), c.ts.recent)),
        )
    } else {
        (
            (cfg.window_scale > 0).then_some(c.opts.rcv_wscale),
            cfg.sack,
            cfg.timestamps.then(|| (c.ts_now(now), 0)),
        )
    };
    let repr = TcpRepr {
        src_port: c.route.tuple.local_port,
        dst_port: c.route.tuple.remote_port,
        seq: c.snd.iss,
        ack: if syn_ack { c.rcv.nxt } else { SeqNumber(0) },
        flags: if syn_ack {
            Flags::SYN | Flags::ACK
        } else {
            Flags::SYN
        },
        window,
        options: Options {
            mss: Some(c.syn_mss(cfg)),
            window_scale: ws,
            sack_permitted: sack,
            timestamp: ts,
            fast_open,
            ..Options::default()
        },
        payload: &[],
    };
    let sent = emit(cfg, stats, tx, &c.route, &repr);
    if sent && syn_ack {
        stats.synacks_sent += 1;
        c.rcv.adv = c.rcv.nxt + u32::from(window);
        c.rcv.last_ack_sent = c.rcv.nxt;
    }
    sent
}

/// The header of a segment of this connection: ACK of RCV.NXT, our window into `recv_buffer`
/// (what the memory budget allows now: `Conn::recv_limit`), timestamps and SACK blocks as
/// negotiated.
fn header<'p, S>(
    c: &Conn<S>,
    now: Instant,
    recv_buffer: u32,
    seq: SeqNumber,
    flags: Flags,
    payload: &'p [u8],
) -> (TcpRepr<'p>, SeqNumber) {
    let (window, edge) = c.window_to_advertise(recv_buffer);
    let mut options = Options {
        timestamp: c.opts.ts.then(|| (c.ts_now(now), c.ts.recent)),
        ..Options::default()
    };
    // SACK blocks ride on pure ACKs only, so a data segment never outgrows the MSS: a D-SACK
    // block first (RFC 2883 §4: "the first SACK block [...] MUST specify the contiguous block
    // of data containing the duplicate"), then the out-of-order ranges, newest first (RFC
    // 2018 §4), as many as fit beside the timestamps.
    let has_blocks = !c.rcv.ooo.is_empty() || c.rcv.dsack.is_some();
    if c.opts.sack && has_blocks && payload.is_empty() && !flags.contains(Flags::RST) {
        let max = if c.opts.ts {
            MAX_SACK_BLOCKS_WITH_TIMESTAMPS
        } else {
            MAX_SACK_BLOCKS
        };
        let blocks = c.rcv.dsack.into_iter().chain(c.rcv.ooo.sack_blocks(max));
        for (i, block) in blocks.take(max).enumerate() {
            options.sack_blocks[i] = block;
            options.sack_count = i as u8 + 1;
        }
    }
    let repr = TcpRepr {
        src_port: c.route.tuple.local_port,
        dst_port: c.route.tuple.remote_port,
        seq,
        ack: c.rcv.nxt,
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
    let off = (seq - c.snd.una) as usize;
    let recv_buffer = c.recv_limit(cx.cfg, cx.mem);
    let sent;
    let edge;
    {
        let start = off.min(c.snd.buf.len());
        let end = (off + len).min(c.snd.buf.len());
        // Rotate the ring only when this segment straddles its wrap point (once per lap):
        // rotating for every segment moved the whole send buffer each time.
        if start < c.snd.buf.as_slices().0.len() && end > c.snd.buf.as_slices().0.len() {
            c.snd.buf.make_contiguous();
        }
        let (front, back) = c.snd.buf.as_slices();
        let payload = if end <= front.len() {
            &front[start..end]
        } else {
            &back[start - front.len()..end - front.len()]
        };
        if !payload.is_empty() && off + len == c.snd.buf.len() {
            flags |= Flags::PSH;
        }
        let (repr, e) = header(c, cx.now, recv_buffer, seq, flags, payload);
        edge = e;
        sent = emit(cx.cfg, cx.stats, cx.tx, &c.route, &repr);
    }
    if sent {
        if recv_buffer < c.recv_buffer(cx.cfg) {
            cx.stats.rcv_window_clamped += 1;
        }
        c.rcv.adv = edge;
        c.rcv.last_ack_sent = c.rcv.nxt;
        c.ack_now = false;
        c.ack_batched = false;
        c.timers.stop(Timer::DelayedAck);
        c.delack.on_ack_sent();
        if len == 0 {
            c.rcv.dsack = None; // carried by this pure ACK
        }
    }
    sent
}

/// An ACK for in-order data (or a window the app opened) is due: at once, or, in a receive
/// batch ([`super::Engine::begin_batch`]), when the batch ends, once for all of its segments.
/// The delayed-ACK timer covers a batch that is never ended.
pub(crate) fn ack_by_batch_end<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    if !cx.batch.open {
        c.ack_now = true;
        return;
    }
    if !c.ack_batched {
        c.ack_batched = true;
        cx.batch.owed.push(cx.id);
    }
    c.timers
        .arm_if_stopped(Timer::DelayedAck, cx.now + cx.cfg.delayed_ack);
}

/// A pure ACK (also used for challenge ACKs and window updates).
///
/// It carries SND.MAX, not SND.NXT: after a timeout SND.NXT is rewound to SND.UNA, and an
/// ACK numbered below what the peer already received is unacceptable to it and dropped with
/// the acknowledgment it carries (two ends both retransmitting would never hear each other).
/// As BSD: "for ACK only packets, we do not want the sequence number of the retransmitted
/// packet, we want the sequence number of the next unsent octet".
pub(crate) fn send_ack<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> bool {
    let seq = c.snd.max;
    send_segment(c, cx, seq, 0, Flags::ACK)
}

/// A probe that the peer must answer with an ACK: SEG.SEQ one below what it expects, no
/// data. Keepalive (RFC 1122 §4.2.3.6) and zero-window probes use it, as Linux does.
pub(crate) fn send_probe<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> bool {
    let seq = c.snd.una - 1;
    let recv_buffer = c.recv_limit(cx.cfg, cx.mem);
    let (repr, _) = header(c, cx.now, recv_buffer, seq, Flags::ACK, &[]);
    emit(cx.cfg, cx.stats, cx.tx, &c.route, &repr)
}

/// RST for an abort: <SEQ=SND.NXT><CTL=RST,ACK> (RFC 9293 §3.10.5 ABORT), with SND.NXT
/// taken before any timeout rewound it (SND.MAX), so the peer finds it at RCV.NXT. Its window
/// is the one we advertise, as Linux's `tcp_send_active_reset` sends it.
pub(crate) fn send_rst<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    let recv_buffer = c.recv_limit(cx.cfg, cx.mem);
    let (repr, _) = header(c, cx.now, recv_buffer, c.snd.max, Flags::RST, &[]);
    if emit(cx.cfg, cx.stats, cx.tx, &c.route, &repr) {
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
        src_port: c.route.tuple.local_port,
        dst_port: c.route.tuple.remote_port,
        seq: ack,
        ack: SeqNumber(0),
        flags: Flags::RST,
        window: 0,
        options: Options::default(),
        payload: &[],
    };
    if emit(cx.cfg, cx.stats, cx.tx, &c.route, &repr) {
        cx.stats.resets_sent += 1;
    }
}

/// A challenge ACK (RFC 5961 §3.2, §4.2), at most `challenge_acks_per_second` per connection.
pub(crate) fn challenge_ack<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    let second = cx.now.total_secs() as u32;
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
/// answered at most every [`OUT_OF_WINDOW_ACK_INTERVAL_MS`], so two ends that disagree cannot
/// ping-pong ACKs forever;
/// data segments always are (Linux `tcp_oow_rate_limited`).
pub(crate) fn ack_unacceptable<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    has_data: bool,
) {
    let now_ms = cx.now.wrapping_millis();
    if !has_data {
        if c.last_oow_ack_ms != 0
            && now_ms.wrapping_sub(c.last_oow_ack_ms) < OUT_OF_WINDOW_ACK_INTERVAL_MS
        {
            return;
        }
        c.last_oow_ack_ms = now_ms.max(1);
    }
    send_ack(c, cx);
}

/// Sends `[start, end)` again (data from the send buffer, our FIN if it is the last sequence
/// number), SND.NXT unchanged, and tells loss recovery.
fn retransmit<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    start: SeqNumber,
    end: SeqNumber,
) -> bool {
    c.rtt_probe = None; // Karn: no RTT sample from a retransmission
    let data_end = c.snd.una + c.snd.buf.len();
    let fin = c.snd.fin.is_some_and(|f| end.gt(f));
    let len = if data_end.gt(start) {
        (data_end.min(end) - start) as usize
    } else {
        0
    };
    let flags = if fin { Flags::FIN } else { Flags(0) };
    if (len == 0 && !fin) || !send_segment(c, cx, start, len, flags) {
        return false;
    }
    let tsval = c.ts_now(cx.now);
    c.rec.on_transmit(start, end, cx.now, tsval);
    true
}

/// RFC 6675 §5 NextSeg (): the segments loss recovery deems lost go out first, as far as
/// the window (PRR's during recovery) lets them.
fn retransmit_lost<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    while let Some((start, end)) = c.rec.next_retransmission() {
        if !c.rec.can_send(end - start) || !retransmit(c, cx, start, end) {
            break;
        }
        if c.rec.in_timeout_recovery() {
            cx.stats.rto_retransmits += 1;
        } else {
            cx.stats.fast_retransmits += 1;
        }
    }
}

/// RFC 8985 §7.3, the tail loss probe: "If such a segment is available and the receive window
/// allows, send one new segment" (the congestion window does not hold a probe back, as in
/// Linux), else retransmit the last segment sent; then the RTO guards what is in flight.
pub(crate) fn send_loss_probe<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    let mss = c.payload_mss();
    let unsent = c.unsent();
    let peer_room = c.snd.wnd.saturating_sub(c.flight()) as usize;
    let len = unsent.min(mss).min(peer_room);
    let sent_new = len > 0 && (len == mss || len == unsent) && send_new(c, cx, len);
    // The last segment sent: the end of the last record, which may hold several (a SACKed
    // run), as one segment (with our FIN, if it is there).
    let last = c.rec.scoreboard().last().map(|s| {
        let fin = c.snd.fin.is_some_and(|f| f.lt(s.end));
        let len = (s.end - s.start).min(mss as u32 + u32::from(fin));
        (s.end - len, s.end)
    });
    let probed = sent_new || last.is_some_and(|(start, end)| retransmit(c, cx, start, end));
    if probed {
        cx.stats.tail_loss_probes += 1;
        c.rec.on_probe_sent(c.snd.max, !sent_new);
    }
    c.rec.arm_retransmission();
    c.timers.arm(Timer::Rto, cx.now + c.rtt.rto());
}

/// The sender SWS override (RFC 1122 §4.2.3.4): with nothing in flight and a peer window
/// too small for a full segment, send what fits. False if the window is closed.
pub(crate) fn send_into_small_window<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
) -> bool {
    let unsent = c.unsent();
    let len = unsent
        .min(usize::from(c.opts.mss))
        .min(c.snd.wnd.saturating_sub(c.flight()) as usize)
        .min(c.rec.room() as usize);
    len > 0 && send_new(c, cx, len)
}

/// Sends the next `len` unsent bytes at SND.NXT (with our FIN if they are the last and the app
/// shut down writing) and moves SND.NXT past them.
fn send_new<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>, len: usize) -> bool {
    let seq = c.snd.nxt;
    let fin = c.fin_queued()
        && len == c.unsent()
        && c.snd.fin.is_none_or(|f| f == seq + len)
        && c.state != State::SynReceived;
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
    // A Fast Open connection sends in SYN-RECEIVED (RFC 7413 §4.2.2, as Linux does).
    if c.state == State::SynSent || (c.state == State::SynReceived && !c.fastopen) {
        if c.ack_now && c.state == State::SynReceived {
            // Nothing but the SYN-ACK is owed here; the timer resends it.
            c.ack_now = false;
        }
        return;
    }
    let mss = c.payload_mss();
    retransmit_lost(c, cx);
    loop {
        let unsent = c.unsent();
        if unsent == 0 {
            c.rec.set_cwnd_limited(false);
            break;
        }
        let peer_room = c.snd.wnd.saturating_sub(c.flight()) as usize;
        let cwnd_room = c.rec.room() as usize;
        let len = unsent.min(mss).min(peer_room).min(cwnd_room);
        c.rec.set_cwnd_limited(cwnd_room < unsent.min(mss));
        if len == 0 {
            break;
        }
        // Sender SWS avoidance: a full segment, everything we have, or half the peer's
        // largest window.
        if len < mss && len < unsent && (len as u32) < c.snd.max_wnd / 2 {
            break;
        }
        if !send_new(c, cx, len) {
            break;
        }
    }
    // RFC 9293 §3.10.4, CLOSE in SYN-RECEIVED after SENDs: "queue for processing after
    // entering ESTABLISHED state" (a Fast Open connection's FIN waits for the third ACK).
    if c.fin_queued() && c.unsent() == 0 && c.state != State::SynReceived {
        let seq = c.snd.nxt;
        let due = match c.snd.fin {
            None => seq == c.snd.una + c.snd.buf.len(),
            Some(f) => seq == f,
        };
        if due && send_segment(c, cx, seq, 0, Flags::FIN) {
            advance(c, cx, seq, 0, true);
        }
    }
    // Zero window with data waiting and nothing in flight: the persist timer probes it.
    if c.unsent() > 0 && c.flight() == 0 {
        c.timers.arm_if_stopped(Timer::Rto, cx.now + c.rtt.rto());
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
    if end.gt(c.snd.max) {
        if c.rtt_probe.is_none() && !c.opts.ts && seq.ge(c.snd.max) {
            c.rtt_probe = Some((seq, cx.now));
        }
        c.snd.max = end;
    }
    let tsval = c.ts_now(cx.now);
    c.rec.on_transmit(seq, end, cx.now, tsval);
    c.snd.nxt = end;
    if fin && c.snd.fin.is_none() {
        c.snd.fin = Some(seq + len);
        match c.state {
            State::Established => c.set_state(State::FinWait1, cx.stats),
            State::CloseWait => c.set_state(State::LastAck, cx.stats),
            _ => {}
        }
    }
    // RFC 6298 §5.1 starts the timer if it is not running; a probe timer moves with the last
    // new data sent (Linux re-arms the PTO after every transmission).
    if !c.timers.is_armed(Timer::Rto) || c.rec.armed() == LossTimer::Probe {
        c.arm_loss_timer(cx.now);
    }
}

/// RFC 9293 §3.10.7.1: the RST for a segment that matches no connection: "If the ACK bit is
/// off, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>".
pub(crate) fn send_reset_for<T: Tx>(sx: &mut Stateless<'_, T>, route: &Route, seg: &TcpRepr<'_>) {
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
    if emit(sx.cfg, sx.stats, sx.tx, route, &repr) {
        sx.stats.resets_sent += 1;
    }
}

/// A SYN-ACK for which no connection is kept: its ISN `iss` is a SYN cookie (RFC 4987 §3.6)
/// and `options` are what the cookie can carry. False if no frame was free.
pub(crate) fn send_cookie_syn_ack<T: Tx>(
    sx: &mut Stateless<'_, T>,
    route: &Route,
    iss: SeqNumber,
    ack: SeqNumber,
    options: Options,
) -> bool {
    let repr = TcpRepr {
        src_port: route.tuple.local_port,
        dst_port: route.tuple.remote_port,
        seq: iss,
        ack,
        flags: Flags::SYN | Flags::ACK,
        window: syn_window(sx.cfg) as u16,
        options,
        payload: &[],
    };
    let sent = emit(sx.cfg, sx.stats, sx.tx, route, &repr);
    if sent {
        sx.stats.synacks_sent += 1;
    }
    sent
}

/// The ACK a connection in TIME-WAIT owes a retransmitted FIN or new data (RFC 9293
/// §3.10.7.4): <SEQ=SND.NXT><ACK=RCV.NXT>, a zero window, and timestamps if it used them.
pub(crate) fn send_time_wait_ack<T: Tx>(
    sx: &mut Stateless<'_, T>,
    route: &Route,
    seq: SeqNumber,
    ack: SeqNumber,
    timestamp: Option<(u32, u32)>,
) {
    let repr = TcpRepr {
        src_port: route.tuple.local_port,
        dst_port: route.tuple.remote_port,
        seq,
        ack,
        flags: Flags::ACK,
        window: 0,
        options: Options {
            timestamp,
            ..Options::default()
        },
        payload: &[],
    };
    emit(sx.cfg, sx.stats, sx.tx, route, &repr);
}
