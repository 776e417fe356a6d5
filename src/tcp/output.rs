//! What the engine sends: SYN and SYN-ACK, data within the send and congestion windows (with
//! sender silly-window avoidance, RFC 9293 §3.8.6.2.1), FIN, ACKs (immediate or delayed,
//! RFC 1122 §4.2.3.2 / RFC 5681 §4.2), RSTs, and the probes the timers ask for; and the
//! stateless replies to segments that match no connection: the RST of RFC 9293 §3.10.7.1,
//! the SYN-cookie SYN-ACK (RFC 4987 §3.6) and the TIME-WAIT ACK (RFC 9293 §3.10.7.4).
//!
//! Segment boundaries and PSH as Linux sends them (RFC 1122 §4.2.2.2, the use of PUSH: the
//! sender marks where the data of a SEND is to be delivered, no record boundary; RFC 9293
//! §3.9.1, SEND's PUSH flag): on the segment that ends a pushed write (`tcp_push`,
//! `tcp_mark_push`), on the last segment of each burst cut as Linux cuts TSO packets
//! (`tcp_tso_autosize` with `tcp_min_tso_segs`, `tcp_cwnd_test`'s half window;
//! `__tcp_transmit_skb` marks every multi-segment packet), on the last of a run of
//! retransmissions (`tcp_retransmit_skb`), every half of the peer's largest window
//! (`forced_push`) and on a persist fill (`tcp_write_wakeup`). Whether a short last segment
//! waits: Nagle's algorithm (RFC 896, RFC 1122 §4.2.3.4) with Minshall's check as
//! `tcp_nagle_check`, unless `TCP_NODELAY`; `TCP_CORK` and `MSG_MORE` (`tcp_push`'s
//! `TCP_NAGLE_CORK`, `TCP_NAGLE_PUSH`).

use std::net::IpAddr;

use super::Config;
use super::conn::Conn;
use super::contract::App;
use super::event::{Cx, Stateless};
use super::recovery::LossTimer;
use super::route::Route;
use super::timer::Timer;
use crate::state::State;
use crate::stats::Stats;
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::SeqNumber;
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
        // The segment that carries the end of the app's last pushed write gets PSH (Linux
        // `tcp_mark_push`); a retransmission keeps it.
        let end = seq + len;
        if !payload.is_empty() && c.snd.push.is_some_and(|p| p.gt(seq) && p.le(end)) {
            flags |= Flags::PSH;
        }
        let (repr, e) = header(c, cx.now, recv_buffer, seq, flags, payload);
        edge = e;
        sent = emit(cx.cfg, cx.stats, cx.tx, &c.route, &repr);
    }
    if sent {
        if flags.contains(Flags::PSH) && (seq + len).gt(c.snd.pushed) {
            c.snd.pushed = seq + len;
        }
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
    push: Flags,
) -> bool {
    c.rtt_probe = None; // Karn: no RTT sample from a retransmission
    let data_end = c.snd.una + c.snd.buf.len();
    let fin = c.snd.fin.is_some_and(|f| end.gt(f));
    let len = if data_end.gt(start) {
        (data_end.min(end) - start) as usize
    } else {
        0
    };
    let flags = if fin { Flags::FIN | push } else { push };
    if (len == 0 && !fin) || !send_segment(c, cx, start, len, flags) {
        return false;
    }
    let tsval = c.ts_now(cx.now);
    c.rec.on_transmit(start, end, cx.now, tsval);
    true
}

/// RFC 6675 §5 NextSeg (): the segments loss recovery deems lost go out first, as far as
/// the window (PRR's during recovery) lets them. A run of several contiguous ones ends with
/// PSH: Linux resends them as one TSO packet (`tcp_retransmit_skb` keeps TSO packets whole),
/// which `__tcp_transmit_skb` marks as it marks new ones.
fn retransmit_lost<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) {
    let mut run_end = None;
    while let Some((start, end)) = c.rec.next_retransmission() {
        if !c.rec.can_send(end - start) {
            break;
        }
        // After a timeout the RTO's one-segment-at-a-time resends carry none (as Linux's).
        let in_run = run_end == Some(start) && !c.rec.in_timeout_recovery();
        let run_goes_on = c.rec.lost_at(end) && c.rec.can_send((end - start) * 2);
        let push = if in_run && !run_goes_on {
            Flags::PSH
        } else {
            Flags(0)
        };
        if !retransmit(c, cx, start, end, push) {
            break;
        }
        run_end = Some(end);
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
    let sent_new = len > 0 && (len == mss || len == unsent) && send_new(c, cx, len, Flags(0));
    // The last segment sent: the end of the last record, which may hold several (a SACKed
    // run), as one segment (with our FIN, if it is there).
    let last = c.rec.scoreboard().last().map(|s| {
        let fin = c.snd.fin.is_some_and(|f| f.lt(s.end));
        let len = (s.end - s.start).min(mss as u32 + u32::from(fin));
        (s.end - len, s.end)
    });
    let probed =
        sent_new || last.is_some_and(|(start, end)| retransmit(c, cx, start, end, Flags(0)));
    if probed {
        cx.stats.tail_loss_probes += 1;
        c.rec.on_probe_sent(c.snd.max, !sent_new);
    }
    c.rec.arm_retransmission();
    c.timers.arm(Timer::Retransmit, cx.now + c.rtt.rto());
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
    // Linux's tcp_write_wakeup marks what it sends into the window with PSH.
    len > 0 && send_new(c, cx, len, Flags::PSH)
}

/// Sends the next `len` unsent bytes at SND.NXT (with our FIN if they are the last and the app
/// shut down writing, and with `push`: PSH or nothing) and moves SND.NXT past them.
fn send_new<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    len: usize,
    push: Flags,
) -> bool {
    let seq = c.snd.nxt;
    let fin = c.fin_queued()
        && len == c.unsent()
        && c.snd.fin.is_none_or(|f| f == seq + len)
        && c.state != State::SynReceived;
    let mut flags = if fin { Flags::FIN | push } else { push };
    // Linux `forced_push`: PSH at least every half of the peer's largest window, so a long
    // write is delivered as it arrives rather than when it ends.
    let end = seq + len;
    if end.gt(c.snd.pushed) && end - c.snd.pushed > c.snd.max_wnd / 2 {
        flags |= Flags::PSH;
    }
    if !send_segment(c, cx, seq, len, flags) {
        return false;
    }
    if len < c.payload_mss() {
        c.snd.sml = end; // Minshall: the last short segment sent
    }
    advance(c, cx, seq, len, fin);
    true
}

/// The most segments one burst of new data sends before it ends with PSH: how Linux cuts a
/// burst into TSO packets, each a `tcp_skb_pcount() > 1` packet that `__tcp_transmit_skb`
/// marks with PSH ("to expedite GRO flush at receiver"): at most half the congestion window
/// (`tcp_cwnd_test`: "ensure we have at least 2 GSO packets in flight"), and about a
/// millisecond at the pacing rate, never below `tcp_min_tso_segs` (`tcp_tso_autosize`; the
/// pacing rate of `tcp_update_pacing_rate`: 200 % of cwnd per SRTT in slow start, 120 % after,
/// unbounded before the first RTT sample).
fn burst_segments<S>(c: &Conn<S>, cfg: &Config, mss: usize) -> usize {
    let cwnd = (c.rec.window() as usize / mss).max(1);
    let half = (cwnd / 2).max(1);
    let Some(srtt) = c.rtt.srtt() else {
        return half;
    };
    let ratio = if c.rec.window() < c.rec.ssthresh() / 2 {
        200
    } else {
        120
    };
    let packets = cwnd.max(c.flight() as usize / mss) as u128;
    // Bytes per second, and what `sk_pacing_rate >> sk_pacing_shift` (10) leaves of it.
    let rate = mss as u128 * packets * ratio * 1_000_000 / 100 / srtt.as_micros().max(1);
    let autosize = ((rate >> 10) / mss as u128).max(u128::from(cfg.min_tso_segs.max(1)));
    half.min(usize::try_from(autosize).unwrap_or(usize::MAX))
}

/// Nagle's algorithm as Linux applies it (`tcp_nagle_check`, RFC 1122 §4.2.3.4 with Minshall's
/// variant): the short last segment of the queue waits while the socket is corked (or the
/// write was `MSG_MORE`), or, without `TCP_NODELAY`, while an earlier short segment is
/// unacknowledged. Never a FIN's segment, nor after `TCP_NODELAY` was just set
/// (`TCP_NAGLE_PUSH`).
fn nagle_holds<S>(c: &Conn<S>) -> bool {
    let f = c.snd.flags;
    if f.flush || c.fin_queued() {
        return false;
    }
    let minshall = c.snd.sml.gt(c.snd.una) && c.snd.sml.le(c.snd.nxt);
    f.cork || f.more || (!f.nodelay && c.flight() > 0 && minshall)
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
    if std::mem::take(&mut c.snd.flags.pushed) {
        c.snd.push = Some(c.snd.una + c.snd.buf.len());
    }
    retransmit_lost(c, cx);
    // RFC 5681 §4.1: idle longer than an RTO, the window restarts before new data goes out
    // (Linux checks when data is queued and when a window update opens the way).
    if c.flight() == 0 && c.unsent() > 0 {
        let initial = cx.cfg.initial_window.saturating_mul(mss as u32);
        if c.rec.restart_after_idle(cx.now, c.rtt.rto(), initial) {
            cx.stats.cwnd_restarts += 1;
        }
    }
    'bursts: loop {
        let unsent = c.unsent();
        if unsent == 0 {
            c.rec.set_cwnd_limited(false);
            break;
        }
        let peer_room = c.snd.wnd.saturating_sub(c.flight()) as usize;
        let cwnd_room = c.rec.room() as usize;
        c.rec.set_cwnd_limited(cwnd_room < unsent.min(mss));
        let max = burst_segments(c, cx.cfg, mss) * mss;
        let mut len = unsent.min(peer_room).min(cwnd_room).min(max);
        // A short last segment: sender SWS avoidance if more data follows it (a full
        // segment, everything we have, or half the peer's largest window), else Nagle.
        let tail = len % mss;
        if tail > 0 {
            let held = if len < unsent {
                (tail as u32) < c.snd.max_wnd / 2
            } else {
                nagle_holds(c)
            };
            if held {
                len -= tail;
            }
        }
        if len == 0 {
            break;
        }
        // One burst of at most `burst_segments`; a burst of several segments ends with PSH.
        let several = len > mss;
        while len > 0 {
            let n = len.min(mss);
            len -= n;
            let push = if len == 0 && several {
                Flags::PSH
            } else {
                Flags(0)
            };
            if !send_new(c, cx, n, push) {
                break 'bursts;
            }
        }
    }
    // MSG_MORE holds a short tail for this push only; so does a TCP_NODELAY flush.
    c.snd.flags.more = false;
    c.snd.flags.flush = false;
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
        c.timers
            .arm_if_stopped(Timer::Retransmit, cx.now + c.rtt.rto());
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
    if !c.timers.is_armed(Timer::Retransmit) || c.rec.armed() == LossTimer::Probe {
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
