//! SEGMENT ARRIVES for a connection in the table: RFC 9293 §3.10.7.3 (SYN-SENT) and
//! §3.10.7.4 (every other state), with RFC 5961's defences and RFC 7323's PAWS. The order:
//!
//! 1. SYN-SENT has its own steps ([`handle_syn_sent`]). In SYN-RECEIVED a retransmitted SYN
//!    gets our SYN-ACK again, and the SYN-ACK of a simultaneous open establishes.
//! 2. PAWS (RFC 7323 §5.3 R1) drops an old duplicate before the sequence check.
//! 3. A SYN gets a challenge ACK whatever its sequence number (RFC 5961 §4.2: RFC 9293's
//!    fourth step, done first as RFC 5961 asks).
//! 4. "First, check the sequence number", then record TS.Recent (RFC 7323 §5.3 R3).
//! 5. "Second, check the RST bit" (RFC 5961 §3.2: exactly RCV.NXT resets, else a challenge
//!    ACK).
//! 6. "Fifth, check the ACK field": SYN-RECEIVED → ESTABLISHED, RFC 5961 §5.2's acceptable
//!    range, new data acknowledged (RTT, RFC 6298), the ACK and its SACK blocks fed to loss
//!    recovery ([`super::recovery`]), the window update, our FIN acknowledged.
//! 7. "Seventh, process the segment text": in order, or into reassembly, as far as the memory
//!    budget allows (Linux's `tcp_try_rmem_schedule`); delayed ACKs. New data after the app's
//!    close resets the connection (RFC 1122 §4.2.2.13, as Linux's `tcp_rcv_state_process`).
//! 8. "Eighth, check the FIN bit", once every byte before it has arrived (a FIN ahead of a
//!    hole is kept until then).
//!
//! The third step (security compartments) has nothing to check here, and the sixth (URG) is
//! not implemented: urgent data is delivered as ordinary data.

use std::time::Duration;

use super::budget::{Growth, reserve_within};
use super::conn::{Conn, MAX_IDLE_BUFFER, Negotiated};
use super::contract::{App, CloseReason, Shutdown};
use super::event::{Cx, Outcome};
use super::keepalive;
use super::output;
use super::recovery::AckInput;
use super::timer::Timer;
use crate::state::State;
use crate::stats::DropReason;
use crate::tx::Tx;
use crate::wire::SeqNumber;
use crate::wire::tcp::{Flags, Repr as TcpRepr};

/// An echoed timestamp further back than this gives no RTT sample: it is stale (or bogus).
const MAX_TIMESTAMP_RTT_MS: u32 = 60_000;

/// Handles one segment; the caller then lets the app act and transmits.
pub(crate) fn handle_segment<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
) -> Outcome {
    if c.state == State::SynSent {
        return handle_syn_sent(c, cx, seg);
    }
    if c.state == State::SynReceived && seg.flags.contains(Flags::SYN) {
        if let Some(outcome) = handle_syn_received_syn(c, cx, seg) {
            return outcome;
        }
    }
    // PAWS (RFC 7323 §5.3 R1): a timestamp older than TS.Recent marks an old duplicate.
    if is_old_duplicate(c, seg) {
        cx.stats.drop(DropReason::Paws);
        send_dupack(c, cx, seg, false);
        return Outcome::Keep;
    }
    // RFC 5961 §4.2: "If the SYN bit is set, irrespective of the sequence number, TCP
    // endpoints MUST send a 'challenge ACK' to the remote peer".
    if seg.flags.contains(Flags::SYN) {
        output::challenge_ack(c, cx);
        cx.stats.drop(DropReason::SynChallenged);
        return Outcome::Keep;
    }
    // First, check the sequence number.
    let Some(right) = check_sequence(c, cx, seg) else {
        return Outcome::Keep;
    };
    // Second, check the RST bit.
    if seg.flags.contains(Flags::RST) {
        return handle_rst(c, cx, seg);
    }
    // Fifth, check the ACK field.
    if let Some(outcome) = check_ack(c, cx, seg) {
        return outcome;
    }
    // RFC 7323 §5.3 R3, once the ACK is known acceptable (as Linux): a segment whose ACK is
    // then dropped (RFC 5961 §5.2) must not move TS.Recent, or a blind attacker's one forged
    // segment with a far-future TSval would make PAWS drop every real one.
    update_ts_recent(c, seg);
    keepalive::touch(c, cx);
    // RFC 1122 §4.2.2.13: "if new data is received after CLOSE is called, its TCP SHOULD send
    // a RST to show that data was lost". As Linux's tcp_rcv_state_process after close() (not
    // shutdown(SHUT_WR): the app reads on): data beyond RCV.NXT resets the connection, with a
    // RST that answers the segment (<SEQ=SEG.ACK>, as tcp_v4_send_reset), the FIN still unsent
    // or unacknowledged; data already received, or a bare FIN, is processed as usual.
    if aborts_on_data(c, seg) {
        cx.stats.aborts_on_data += 1;
        output::send_rst_for_ack(c, cx, seg.ack);
        return Outcome::Close(CloseReason::Aborted);
    }
    // Seventh, process the segment text; eighth, check the FIN bit.
    text_and_fin(c, cx, seg, right)
}

/// RFC 9293 §3.10.7.4 fifth step, check the ACK field: without ACK the segment is dropped;
/// the ACK that completes a handshake establishes the connection (it is no duplicate, even
/// when a Fast Open connection has data in flight that it does not cover); then the ACK is
/// processed. `Some` ends the segment's processing.
fn check_ack<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
) -> Option<Outcome> {
    if !seg.flags.contains(Flags::ACK) {
        cx.stats.drop(DropReason::NoAck);
        return Some(Outcome::Keep);
    }
    let first_ack = c.state == State::SynReceived;
    if first_ack {
        if !ack_acceptable_syn(c, seg) {
            output::send_rst_for_ack(c, cx, seg.ack);
            cx.stats.drop(DropReason::AckTooHigh);
            return Some(Outcome::Keep);
        }
        c.establish(cx.cfg, cx.stats, cx.now, seg);
    }
    process_ack(c, cx, seg, first_ack)
}

/// RFC 9293 §3.10.7.4 seventh and eighth steps: the segment text (within the window, whose
/// right edge is `right`), then the FIN bit (or the one kept ahead of a hole this segment
/// filled).
fn text_and_fin<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
    right: SeqNumber,
) -> Outcome {
    if matches!(
        c.state,
        State::Established | State::FinWait1 | State::FinWait2
    ) && !seg.payload.is_empty()
    {
        receive_data(c, cx, seg.seq, seg.payload, right);
    }
    if seg.flags.contains(Flags::FIN) {
        return handle_fin(c, cx, seg);
    }
    if c.rcv.ooo.take_fin(c.rcv.nxt) && !c.state.fin_received() {
        return accept_fin(c, cx);
    }
    Outcome::Keep
}

/// Whether `seg` brings data beyond RCV.NXT to a connection the app has closed (Linux's
/// `RCV_SHUTDOWN` in FIN-WAIT-1 or FIN-WAIT-2: here ESTABLISHED too, where the FIN still waits
/// behind queued data, Linux having moved to FIN-WAIT-1 at close()).
fn aborts_on_data<S>(c: &Conn<S>, seg: &TcpRepr<'_>) -> bool {
    c.app.shutdown == Shutdown::Close
        && matches!(
            c.state,
            State::Established | State::FinWait1 | State::FinWait2
        )
        && (!seg.payload.is_empty() || seg.flags.contains(Flags::FIN))
        && (seg.seq + seg.payload.len()).gt(c.rcv.nxt)
}

/// A SYN in SYN-RECEIVED: the peer's retransmitted SYN (our SYN-ACK was lost: send it again),
/// or, in a simultaneous open, the peer's SYN-ACK acknowledging our SYN. `None` for any other
/// SYN, which goes on to the challenge ACK.
fn handle_syn_received_syn<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
) -> Option<Outcome> {
    let ack = seg.flags.contains(Flags::ACK);
    if c.passive && !ack && seg.seq == c.rcv.irs {
        output::send_syn(c, cx.cfg, cx.stats, cx.tx, cx.now);
        return Some(Outcome::Keep);
    }
    if !c.passive && ack && seg.seq == c.rcv.irs && ack_acceptable_syn(c, seg) {
        c.establish(cx.cfg, cx.stats, cx.now, seg);
        c.ack_now = true;
        return Some(Outcome::Keep);
    }
    None
}

/// RFC 7323 §5.3 R1: with timestamps in use, a segment (but a RST) whose TSval is older than
/// TS.Recent.
fn is_old_duplicate<S>(c: &Conn<S>, seg: &TcpRepr<'_>) -> bool {
    c.opts.ts
        && !seg.flags.contains(Flags::RST)
        && seg
            .options
            .timestamp
            .is_some_and(|(tsval, _)| (tsval.wrapping_sub(c.ts.recent) as i32) < 0)
}

/// RFC 9293 §3.10.7.4 first step, the acceptability test of the segment against the receive
/// window. Returns the window's right edge, or `None` (after the ACK an unacceptable segment
/// is owed) to end processing.
fn check_sequence<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
) -> Option<SeqNumber> {
    let seq = seg.seq;
    let rcv_wnd = c.rcv_open();
    let seg_len = seg.segment_len() as u32;
    let right = c.rcv.nxt + rcv_wnd;
    let acceptable = match (seg_len, rcv_wnd) {
        (0, 0) => seq == c.rcv.nxt,
        (0, _) => seq.in_range(c.rcv.nxt, right),
        (_, 0) => false,
        (_, _) => {
            seq.in_range(c.rcv.nxt, right) || (seq + (seg_len - 1)).in_range(c.rcv.nxt, right)
        }
    };
    // "If the RCV.WND is zero, no segments will be acceptable, but special allowance should be
    // made to accept valid ACKs, URGs, and RSTs."
    let zero_window_control = !acceptable && rcv_wnd == 0 && seq == c.rcv.nxt;
    if !acceptable && !zero_window_control {
        if !seg.flags.contains(Flags::RST) {
            send_dupack(c, cx, seg, rcv_wnd == 0);
        }
        cx.stats.drop(DropReason::OutOfWindow);
        return None;
    }
    Some(right)
}

/// The ACK owed to an unacceptable segment, as Linux's `tcp_send_dupack`: data at least
/// partly below RCV.NXT (an original overtaken by its retransmission, or our ACK lost) is
/// reported as a duplicate in a D-SACK block up to RCV.NXT (RFC 2883 §4.1.1), and the next
/// segments are ACKed at once too, as they are when the peer probes a closed window
/// (`window_closed`, Linux's `tcp_data_queue`).
fn send_dupack<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
    window_closed: bool,
) {
    let data = !seg.payload.is_empty();
    let below = data && seg.seq.lt(c.rcv.nxt);
    if below && c.opts.sack {
        c.rcv.dsack = Some((seg.seq, (seg.seq + seg.payload.len()).min(c.rcv.nxt)));
    }
    if below || (data && window_closed) {
        c.delack.enter_quickack(c.rcv_wnd());
    }
    output::ack_unacceptable(c, cx, data);
}

/// RFC 7323 §5.3 R3: "If an arriving segment satisfies SEG.TSval >= TS.Recent and SEG.SEQ
/// <= Last.ACK.sent (see Section 4.3), then record its timestamp in TS.Recent."
fn update_ts_recent<S>(c: &mut Conn<S>, seg: &TcpRepr<'_>) {
    if !c.opts.ts || seg.flags.contains(Flags::RST) {
        return;
    }
    if let Some((tsval, _)) = seg.options.timestamp {
        if (tsval.wrapping_sub(c.ts.recent) as i32) >= 0 && seg.seq.le(c.rcv.last_ack_sent) {
            c.ts.recent = tsval;
        }
    }
}

/// RFC 9293 §3.10.7.4 second step, as RFC 5961 §3.2 sharpens it: a RST at exactly RCV.NXT
/// resets the connection; any other (in-window) RST gets a challenge ACK.
fn handle_rst<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
) -> Outcome {
    if seg.seq != c.rcv.nxt {
        output::challenge_ack(c, cx);
        cx.stats.drop(DropReason::RstNotExact);
        return Outcome::Keep;
    }
    cx.stats.resets_received += 1;
    Outcome::Close(match c.state {
        State::SynReceived if !c.passive => CloseReason::Refused,
        _ => CloseReason::Reset,
    })
}

/// RFC 9293 §3.10.7.4 eighth step: a FIN counts only once every byte before it has arrived
/// (one ahead of a hole is kept in reassembly until the hole is filled), and only once.
fn handle_fin<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
) -> Outcome {
    if c.state.fin_received() {
        return Outcome::Keep;
    }
    let fin_seq = seg.seq + seg.payload.len();
    if c.rcv.ooo.take_fin(c.rcv.nxt) || fin_seq == c.rcv.nxt {
        return accept_fin(c, cx);
    }
    // Ahead of a hole: RFC 9293 §3.10.7.4 processes segments, the FIN included, in sequence
    // order, so it is kept until the data before it has arrived (not dropped, to be resent).
    if fin_seq.gt(c.rcv.nxt)
        && matches!(
            c.state,
            State::Established | State::FinWait1 | State::FinWait2
        )
    {
        c.rcv.ooo.set_fin(fin_seq);
    }
    Outcome::Keep
}

/// The peer's FIN, next in sequence: RCV.NXT passes it, and the state moves on.
fn accept_fin<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>) -> Outcome {
    c.rcv.nxt += 1u32;
    c.ack_now = true;
    match c.state {
        State::Established => c.set_state(State::CloseWait, cx.stats),
        State::FinWait1 if !c.fin_acked() => c.set_state(State::Closing, cx.stats),
        State::FinWait1 | State::FinWait2 => {
            c.set_state(State::TimeWait, cx.stats);
            return Outcome::TimeWait;
        }
        _ => {}
    }
    Outcome::Keep
}

/// An ACK of our SYN in SYN-SENT / SYN-RECEIVED must cover exactly the SYN or more.
fn ack_acceptable_syn<S>(c: &Conn<S>, seg: &TcpRepr<'_>) -> bool {
    seg.ack.gt(c.snd.iss) && seg.ack.le(c.snd.max)
}

/// RFC 9293 §3.10.7.4 fifth step for the synchronized states (`first_ack`: the segment just
/// completed the handshake). `Some` ends processing.
fn process_ack<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
    first_ack: bool,
) -> Option<Outcome> {
    let ack = seg.ack;
    // RFC 5961 §5.2: acceptable iff (SND.UNA - MAX.SND.WND) <= SEG.ACK <= SND.NXT.
    if ack.gt(c.snd.max) {
        output::ack_unacceptable(c, cx, !seg.payload.is_empty());
        cx.stats.drop(DropReason::AckTooHigh);
        return Some(Outcome::Keep);
    }
    if ack.lt(c.snd.una - c.snd.max_wnd.max(1)) {
        output::ack_unacceptable(c, cx, !seg.payload.is_empty());
        cx.stats.drop(DropReason::AckTooOld);
        return Some(Outcome::Keep);
    }
    let window = u32::from(seg.window) << c.opts.snd_wscale;
    // A duplicate ACK (RFC 5681 §2).
    let dup_ack = ack == c.snd.una
        && !first_ack
        && seg.payload.is_empty()
        && !seg.flags.contains(Flags::FIN)
        && window == c.snd.wnd
        && c.snd.max != c.snd.una;
    let advanced = ack.gt(c.snd.una);
    let outstanding = c.snd.max != c.snd.una;
    if advanced {
        handle_new_ack(c, cx, seg);
    }
    if advanced || (ack == c.snd.una && outstanding) {
        feed_recovery(c, cx, seg, ack, dup_ack);
    } else if ack.lt(c.snd.una) && outstanding && c.opts.sack && seg.options.sack_count > 0 {
        // An ACK below SND.UNA (one reordered behind a later one) says nothing of the
        // cumulative ACK, but its SACK blocks are news: taken at SND.UNA, as Linux's tcp_ack
        // tags them and lets recovery send ("This ACK is old [...] but it may carry SACK").
        feed_recovery(c, cx, seg, c.snd.una, false);
    }
    if c.flight() == 0 {
        c.retries = 0; // a window probe was answered
        // The user timeout goes on counting while the window stays shut (Linux resets
        // `icsk_probes_tstamp` only once the window opens, `tcp_ack_probe`).
        if window > 0 {
            c.timeout_start = None;
        }
    }
    // "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK), set SND.WND <-
    // SEG.WND, set SND.WL1 <- SEG.SEQ, and set SND.WL2 <- SEG.ACK."
    if c.snd.wl1.lt(seg.seq) || (c.snd.wl1 == seg.seq && c.snd.wl2.le(ack)) {
        c.snd.wnd = window;
        c.snd.wl1 = seg.seq;
        c.snd.wl2 = ack;
        c.snd.max_wnd = c.snd.max_wnd.max(window);
        if window > 0 && c.flight() == 0 && c.unsent() == 0 {
            c.timers.stop(Timer::Retransmit);
        }
    }
    if c.fin_acked() {
        return handle_fin_acked(c, cx);
    }
    None
}

/// SND.UNA < SEG.ACK: "set SND.UNA <- SEG.ACK", drop the acknowledged bytes, take an RTT
/// sample (RFC 7323 §4 from the echoed timestamp, else the timed segment; RFC 6298), feed
/// congestion control and restart (or stop) the retransmission timer (RFC 6298 §5.2, §5.3).
fn handle_new_ack<A: App, T: Tx>(c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>, seg: &TcpRepr<'_>) {
    let ack = seg.ack;
    let acked = ack - c.snd.una;
    let fin_acked_now = c.snd.fin.is_some_and(|f| ack.gt(f));
    let data = (acked as usize - usize::from(fin_acked_now)).min(c.snd.buf.len());
    c.snd.buf.drain(..data);
    c.bytes_acked += data as u64;
    if c.snd.buf.is_empty() && c.snd.buf.capacity() > MAX_IDLE_BUFFER {
        c.snd.buf = Default::default();
    }
    if c.opts.ts {
        if let Some((_, ecr)) = seg.options.timestamp.filter(|(_, e)| *e != 0) {
            let ms = c.ts_now(cx.now).wrapping_sub(ecr);
            if ms < MAX_TIMESTAMP_RTT_MS {
                c.rtt.sample(Duration::from_millis(u64::from(ms)));
            }
        }
    } else if let Some((probe, at)) = c.rtt_probe {
        if ack.gt(probe) {
            c.rtt.sample(cx.now - at);
            c.rtt_probe = None;
        }
    }
    c.snd.una = ack;
    if c.snd.nxt.lt(ack) {
        c.snd.nxt = ack;
    }
    c.retries = 0;
    c.timeout_start = None;
}

/// Feeds an acceptable ACK, as acknowledging `ack` (at or above SND.UNA), to loss recovery:
/// the scoreboard takes its SACK blocks, RACK decides what is lost, the window follows (PRR in
/// recovery, the congestion controller outside), and the loss timer is re-armed: restarted
/// when new data was acknowledged (RFC 6298 §5.3), moved earlier when RACK is waiting on a
/// reordering window.
fn feed_recovery<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
    ack: SeqNumber,
    dup_ack: bool,
) {
    let blocks = if c.opts.sack {
        &seg.options.sack_blocks[..usize::from(seg.options.sack_count).min(4)]
    } else {
        &[]
    };
    let tsecr = seg
        .options
        .timestamp
        .filter(|_| c.opts.ts)
        .map(|(_, ecr)| ecr);
    let srtt = c.rtt.srtt().unwrap_or_else(|| c.rtt.rto());
    let out = c.rec.on_ack(&AckInput {
        now: cx.now,
        ack,
        blocks,
        tsecr,
        ts_now: c.ts_now(cx.now),
        snd_max: c.snd.max,
        srtt,
        dup_ack,
    });
    cx.stats.recovery_episodes += u64::from(out.entered);
    cx.stats.undos += u64::from(out.undone);
    cx.stats.sack_blocks_rejected += u64::from(out.sack_rejected);
    cx.stats.sack_blocks_rounded += u64::from(out.sack_rounded);
    cx.stats.sack_blocks_over_cap += u64::from(out.sack_over_cap);
    cx.stats.dsack_ignored += u64::from(out.dsack_ignored);
    if out.acked > 0 || out.entered || out.undone || c.rec.reorder_pending() {
        c.arm_loss_timer(cx.now);
    }
}

/// Our FIN is acknowledged: FIN-WAIT-1 → FIN-WAIT-2, CLOSING → TIME-WAIT, LAST-ACK → CLOSED.
fn handle_fin_acked<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
) -> Option<Outcome> {
    match c.state {
        State::FinWait1 => {
            c.set_state(State::FinWait2, cx.stats);
            // Like Linux, only a fully closed connection times out in FIN-WAIT-2; a
            // half-closed one keeps receiving as long as the peer sends.
            if c.app.shutdown == Shutdown::Close {
                c.timers
                    .arm(Timer::FinWait2, cx.now + cx.cfg.fin_wait2_timeout);
            }
            None
        }
        State::Closing => {
            c.set_state(State::TimeWait, cx.stats);
            Some(Outcome::TimeWait)
        }
        State::LastAck => Some(Outcome::Close(CloseReason::Normal)),
        _ => None,
    }
}

/// Data within the window: in order into `recv`, ahead of a hole into the reassembly queue.
fn receive_data<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seq: SeqNumber,
    payload: &[u8],
    right: SeqNumber,
) {
    let mut data = payload;
    let mut dseq = seq;
    if dseq.lt(c.rcv.nxt) {
        let skip = ((c.rcv.nxt - dseq) as usize).min(data.len());
        // RFC 2883 §4.1.1: the part already received is reported in a D-SACK block.
        c.rcv.dsack = Some((seq, seq + skip));
        data = &data[skip..];
        dseq = c.rcv.nxt;
    }
    let room = if right.gt(dseq) {
        (right - dseq) as usize
    } else {
        0
    };
    if data.len() > room {
        data = &data[..room];
        cx.stats.drop(DropReason::NoRoom);
    }
    if data.is_empty() {
        c.ack_now = true;
        return;
    }
    if dseq != c.rcv.nxt {
        if c.rcv.starved {
            // Not kept beyond a hole the memory budget made; like that hole, not acknowledged.
            cx.stats.drop(DropReason::OfoMemory);
            return;
        }
        // Out of order: keep it and say so at once with a duplicate ACK (RFC 5681 §4.2); one
        // already held is a duplicate to report (RFC 2883 §4.1.2).
        let end = dseq + data.len();
        if c.rcv.ooo.contains(dseq, end) {
            c.rcv.dsack = Some((dseq, end));
        }
        if !c.rcv.ooo.insert(dseq, data) {
            cx.stats.drop(DropReason::NoRoom);
        } else if keep_within_budget(c, cx, dseq) {
            cx.stats.ooo_segments += 1;
        }
        c.delack.on_out_of_order();
        c.ack_now = true;
        return;
    }
    // Within the memory budget, or dropped unacknowledged: the peer sends it again (as
    // Linux's tcp_data_queue drops for tcp_try_rmem_schedule, with no ACK to hurry it). Data
    // after the app's close() never gets here: it resets the connection (`aborts_on_data`).
    let own = c.heap_bytes();
    let ceiling = cx
        .mem
        .growth_ceiling(own, c.rcv.buf.capacity())
        .min((c.recv_buffer(cx.cfg) as usize).max(c.rcv.buf.len() + data.len()));
    let growth = if cx.mem.pressured(own) {
        Growth::Eighth
    } else {
        Growth::Double
    };
    if !reserve_within(&mut c.rcv.buf, data.len(), ceiling, growth) {
        cx.stats.drop(DropReason::RcvMemory);
        c.rcv.starved = true;
        return;
    }
    c.rcv.buf.extend(data);
    c.rcv.starved = false;
    c.rcv.nxt += data.len();
    cx.stats.rx_bytes += data.len() as u64;
    c.bytes_received += data.len() as u64;
    let filled_hole = !c.rcv.ooo.is_empty();
    // Queued data the in-order bytes repeated is a duplicate too, reported (or joined to the
    // D-SACK block above when they touch) as Linux's tcp_ofo_queue does with tcp_dsack_extend.
    if let Some((start, end)) = c.rcv.ooo.repeated_below(c.rcv.nxt) {
        c.rcv.dsack = Some(match c.rcv.dsack {
            Some((s, e)) if start.le(e) && end.ge(s) => (s.min(start), e.max(end)),
            Some(block) => block,
            None => (start, end),
        });
    }
    while let Some(more) = c.rcv.ooo.pop_ready(c.rcv.nxt) {
        c.rcv.nxt += more.len();
        cx.stats.rx_bytes += more.len() as u64;
        c.bytes_received += more.len() as u64;
        // Data held already changes queues: it always fits, in no more than the buffer.
        let ceiling = (c.recv_buffer(cx.cfg) as usize).max(c.rcv.buf.len() + more.len());
        reserve_within(&mut c.rcv.buf, more.len(), ceiling, Growth::Double);
        c.rcv.buf.extend(more.iter());
    }
    // At once in quick-ACK mode, with more than a segment's worth unacknowledged, or when a
    // hole was filled (RFC 5681 §4.2); else at most `delayed_ack` later. In a receive batch,
    // "at once" for in-order data is the batch's end: one ACK for all of it, as Linux sends
    // one for a GRO-merged segment.
    let adv_mss = c.rcv_payload_mss(cx.cfg);
    let rcv_wnd = c.rcv_wnd();
    c.delack
        .on_data(cx.now, data.len(), adv_mss, rcv_wnd, c.rtt.rto());
    if filled_hole {
        c.ack_now = true;
    } else if c.delack.ack_at_once(c.rcv.nxt - c.rcv.last_ack_sent) {
        output::ack_by_batch_end(c, cx);
    } else {
        c.timers
            .arm_if_stopped(Timer::DelayedAck, cx.now + cx.cfg.delayed_ack);
    }
}

/// Out-of-order data from `seq` was just queued: if that took the engine past its memory
/// limit, the new bytes go again (from the highest down, as Linux's `tcp_prune_ofo_queue`
/// drops, so the bytes nearest the hole stay), counted. (Older out-of-order data is pruned
/// after the event, oldest holders first, whenever memory is under pressure: the engine's
/// `reclaim`.) Whether the segment was kept whole.
fn keep_within_budget<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seq: SeqNumber,
) -> bool {
    let excess = cx.mem.excess(c.heap_bytes());
    if excess == 0 {
        return true;
    }
    c.rcv.ooo.prune_above(seq, excess);
    cx.stats.drop(DropReason::OfoMemory);
    false
}

/// RFC 9293 §3.10.7.3, SYN-SENT.
fn handle_syn_sent<A: App, T: Tx>(
    c: &mut Conn<A::State>,
    cx: &mut Cx<'_, A, T>,
    seg: &TcpRepr<'_>,
) -> Outcome {
    let flags = seg.flags;
    // "First, check the ACK bit: If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
    // (unless the RST bit is set, if so drop the segment and return)".
    if flags.contains(Flags::ACK) && !ack_acceptable_syn(c, seg) {
        if !flags.contains(Flags::RST) {
            output::send_rst_for_ack(c, cx, seg.ack);
        }
        cx.stats.drop(DropReason::AckTooHigh);
        return Outcome::Keep;
    }
    // "Second, check the RST bit: If the ACK was acceptable, then signal to the user 'error:
    // connection reset', drop the segment, enter CLOSED state".
    if flags.contains(Flags::RST) {
        if flags.contains(Flags::ACK) {
            cx.stats.failed_opens += 1;
            cx.stats.resets_received += 1;
            return Outcome::Close(CloseReason::Refused);
        }
        cx.stats.drop(DropReason::RstNotExact);
        return Outcome::Keep;
    }
    // "Fourth, check the SYN bit".
    if !flags.contains(Flags::SYN) {
        cx.stats.drop(DropReason::NoAck);
        return Outcome::Keep;
    }
    c.synchronize_receive(seg.seq, seg.options.timestamp);
    // The window our SYN offered (never scaled, RFC 7323 §2.2) now has a left edge: anchor
    // the advertised right edge and Last.ACK.sent to RCV.NXT, not to sequence number 0.
    c.rcv.adv = c.rcv.nxt + c.syn_window(cx.cfg);
    c.opts = Negotiated::from_syn(cx.cfg, c.route.tuple.remote_addr.is_ipv4(), &seg.options);
    // What our SYN offered under the socket options (`TCP_MAXSEG`, `SO_RCVBUF`) holds.
    c.clamp_negotiated();
    if flags.contains(Flags::ACK) {
        // Our SYN is acknowledged: ESTABLISHED.
        c.establish(cx.cfg, cx.stats, cx.now, seg);
        c.ack_now = true;
    } else {
        // Simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment and send it".
        c.set_state(State::SynReceived, cx.stats);
        // "The window field in a SYN segment itself is never scaled" (RFC 7323 §2.2).
        c.snd.wnd = u32::from(seg.window);
        c.snd.max_wnd = c.snd.wnd;
        output::send_syn(c, cx.cfg, cx.stats, cx.tx, cx.now);
    }
    Outcome::Keep
}
