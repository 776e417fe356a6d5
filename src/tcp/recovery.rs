//! The sender's loss recovery, as Linux does it by default: the SACK scoreboard (RFC 6675)
//! says what is outstanding, RACK-TLP (RFC 8985) decides what is lost and probes a lost tail,
//! PRR (RFC 6937) paces the window through a recovery episode, a congestion controller (CUBIC
//! or NewReno, [`super::cc`]) sets the window outside it, and a reduction proved spurious by a
//! D-SACK (RFC 2883 §5) or by timestamps (RFC 5682's Eifel detection, RFC 3522) is undone.
//!
//! Read: RFC 6675 §5 (the algorithm: entering recovery, "RecoveryPoint = HighData", leaving
//! it), RFC 8985 §6–§7, RFC 6937 §3, RFC 5682 §3 and RFC 3522 §2 (a retransmission is spurious
//! when the ACK echoes a timestamp older than the retransmission's), RFC 6582 (a peer without
//! SACK: three duplicate ACKs, then one hole per partial ACK). Linux: `tcp_input.c`
//! (`tcp_fastretrans_alert`, `tcp_try_undo_*`), `tcp_recovery.c`, `tcp_timer.c`.
//!
//! RFC 6675's DupThresh rule (IsLost) is RACK's here, as in Linux with RACK on (its
//! `tcp_time_to_recover` skips the duplicate-ACK count then): while no reordering was seen and
//! DupThresh segments are SACKed, RFC 8985 §6.2 sets the reordering window to zero, which
//! marks lost every segment sent before a delivered one, the holes IsLost would find.
//!
//! A peer's D-SACK blocks are checked before they count (Linux `tcp_check_dsack`,
//! `tcp_dsack_seen`, `tcp_sacktag_one`'s `undo_retrans`): one is believed only below SND.MAX
//! and while the D-SACKed bytes do not outnumber those ever retransmitted, so it widens RACK's
//! reordering window only for duplicates we sent; and it undoes an episode only for what the
//! episode itself retransmitted, each byte once.
//!
//! RACK runs on an ACK only when the ACK delivered something (Linux runs it when RACK's latest
//! segment advanced): a duplicate ACK that reports nothing new changes no verdict but the
//! clock's, which the reordering timer keeps, so a flood of them costs no walk
//! ([`super::scoreboard`] says what the rest costs).
//!
//! After idle (RFC 5681 §4.1: "when TCP has not received a segment for more than one
//! retransmission timeout, cwnd is reduced to the value of the restart window before
//! transmission begins"), as Linux's `tcp_cwnd_restart`: idle is counted from the last data
//! segment sent with nothing in flight, and the window halves for each RTO of it, down to the
//! restart window min(IW, cwnd).
//!
//! No I/O and no clock: the engine feeds ACKs and transmissions in, and asks what to send and
//! which timer to run.

use std::time::Duration;

use super::cc::{Algorithm, CongestionControl, Controller};
use super::prr::Prr;
use super::rack::{Rack, Tlp, TlpOutcome};
use super::scoreboard::{AckSummary, Delivered, Scoreboard};
use crate::time::Instant;
use crate::wire::SeqNumber;

/// Which timer guards the data in flight (one at a time, as Linux multiplexes its RTO timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossTimer {
    /// The retransmission timeout (RFC 6298).
    Retransmission,
    /// The tail loss probe timeout (RFC 8985 §7.2).
    Probe,
    /// RACK's reordering timer (RFC 8985 §6.3): a segment is lost unless acknowledged by then.
    Reorder,
}

/// Where the sender is (Linux's `icsk_ca_state`, reduced to what matters here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No loss being repaired.
    Open,
    /// Fast recovery (RFC 6675 §5) until SND.UNA passes `point` ("RecoveryPoint").
    Recovery { point: SeqNumber },
    /// After a retransmission timeout, until SND.UNA passes `point`.
    Loss { point: SeqNumber },
}

/// The most ranges of retransmitted data an episode keeps for its D-SACKs: past them, only
/// timestamps can undo it (a D-SACK can no longer be checked against what was sent).
const UNDO_RANGES: usize = 16;

/// What is needed to undo a reduction (Linux's `undo_marker`, `undo_retrans`, `retrans_stamp`).
#[derive(Debug, Clone)]
struct Undo {
    /// What the episode retransmitted and no D-SACK has reported duplicate yet, lowest first,
    /// disjoint (at most [`UNDO_RANGES`]).
    rexmit: Vec<(SeqNumber, SeqNumber)>,
    /// `rexmit` holds everything retransmitted, each byte sent once: a D-SACK for all of it
    /// proves every retransmission unnecessary. False once a range did not fit, or a byte
    /// went out twice (its first retransmission was deemed lost: not all was spurious).
    exact: bool,
    /// Whether anything was retransmitted at all.
    any: bool,
    /// TSval of the episode's first retransmission.
    tsval: Option<u32>,
}

impl Undo {
    /// A new episode, nothing retransmitted yet.
    fn new() -> Box<Undo> {
        Box::new(Undo {
            rexmit: Vec::new(),
            exact: true,
            any: false,
            tsval: None,
        })
    }

    /// `[start, end)` was retransmitted.
    fn on_retransmit(&mut self, start: SeqNumber, end: SeqNumber) {
        self.any = true;
        if !self.exact {
            return;
        }
        // The first range ending at or after `start`: it overlaps, touches, or lies above.
        let i = self.rexmit.partition_point(|&(_, r)| r.lt(start));
        match self.rexmit.get(i).copied() {
            Some((l, r)) if l.lt(end) && start.lt(r) => self.exact = false,
            Some((_, r)) if r == start => {
                self.rexmit[i].1 = end;
                if self.rexmit.get(i + 1).is_some_and(|&(l, _)| l == end) {
                    self.rexmit[i].1 = self.rexmit.remove(i + 1).1;
                }
            }
            Some((l, _)) if l == end => self.rexmit[i].0 = start,
            _ if self.rexmit.len() < UNDO_RANGES => self.rexmit.insert(i, (start, end)),
            _ => self.exact = false,
        }
    }

    /// A D-SACK for `[l, r)`: takes out of [`Undo::rexmit`] what it covers; returns the
    /// bytes it covered there (zero: it reports nothing this episode retransmitted).
    fn credit(&mut self, l: SeqNumber, r: SeqNumber) -> u32 {
        let mut covered = 0;
        let mut left = Vec::with_capacity(self.rexmit.len() + 1);
        for &(a, b) in &self.rexmit {
            if b.le(l) || r.le(a) {
                left.push((a, b));
                continue;
            }
            covered += b.min(r) - a.max(l);
            if a.lt(l) {
                left.push((a, l));
            }
            if r.lt(b) {
                left.push((r, b));
            }
        }
        if left.len() > UNDO_RANGES {
            self.exact = false;
        }
        self.rexmit = left;
        covered
    }

    /// Every retransmission of the episode was reported duplicate (Linux
    /// `tcp_try_undo_dsack`: "undo_retrans" reached zero).
    fn all_duplicate(&self) -> bool {
        self.any && self.exact && self.rexmit.is_empty()
    }
}

/// One ACK, as the engine parsed it.
#[derive(Debug, Clone, Copy)]
pub struct AckInput<'a> {
    /// When it arrived.
    pub now: Instant,
    /// SEG.ACK (acceptable: within SND.UNA..=SND.MAX).
    pub ack: SeqNumber,
    /// Its SACK blocks as received.
    pub blocks: &'a [(SeqNumber, SeqNumber)],
    /// Its TSecr, when timestamps are in use.
    pub tsecr: Option<u32>,
    /// Our TSval clock now (to tell how old `tsecr` is).
    pub ts_now: u32,
    /// SND.MAX: the highest sequence number sent.
    pub snd_max: SeqNumber,
    /// The smoothed RTT (or the initial RTO before any sample).
    pub srtt: Duration,
    /// A duplicate ACK in RFC 5681's sense (no data, window unchanged, nothing new
    /// acknowledged, data outstanding).
    pub dup_ack: bool,
}

/// What an ACK changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Bytes newly acknowledged cumulatively.
    pub acked: u32,
    /// Bytes newly delivered (cumulatively or selectively).
    pub delivered: u32,
    /// The last reduction was found spurious and undone.
    pub undone: bool,
    /// A recovery episode (fast or after a timeout) ended.
    pub recovered: bool,
    /// A fast recovery episode began.
    pub entered: bool,
    /// SACK blocks ignored: empty, reversed, beyond SND.MAX or below SEG.ACK.
    pub sack_rejected: u8,
    /// SACK blocks with an edge inside a segment, moved to its boundaries.
    pub sack_rounded: u8,
    /// SACK blocks dropped because the scoreboard holds its most records.
    pub sack_over_cap: u8,
    /// The ACK's D-SACK block was not believed, or in an episode reported nothing it
    /// retransmitted.
    pub dsack_ignored: bool,
}

/// What [`Recovery::on_ack`] needs of the state before the ACK.
#[derive(Clone, Copy)]
struct Prior {
    /// The pipe (RFC 6675).
    pipe: u32,
    /// Duplicate ACKs counted (without SACK).
    dupacks: u8,
    /// RFC 6937: "RecoverFS = snd.nxt - snd.una", before this ACK.
    flight: u32,
}

impl Prior {
    fn of(r: &Recovery) -> Prior {
        Prior {
            pipe: r.sb.pipe(),
            dupacks: r.dupacks,
            flight: r.sb.outstanding(),
        }
    }
}

/// The loss recovery state of one connection.
#[derive(Debug)]
pub struct Recovery {
    sb: Scoreboard,
    rack: Rack,
    tlp: Tlp,
    prr: Prr,
    cc: Controller,
    phase: Phase,
    /// Boxed: it is there only during an episode, and a connection is mostly not in one.
    undo: Option<Box<Undo>>,
    /// When RACK's reordering timer is due, if it is armed.
    reorder_at: Option<Instant>,
    /// The timer [`Recovery::arm_timer`] chose last.
    armed: LossTimer,
    /// Duplicate ACKs in a row (peers without SACK).
    dupacks: u8,
    /// The last transmission stopped because the window was full (Linux `is_cwnd_limited`).
    cwnd_limited: bool,
    /// Bytes retransmitted over the connection's life less those D-SACK blocks reported
    /// duplicate (Linux's `total_retrans - dsack_dups`, in bytes): what D-SACKs may still
    /// report.
    dsack_room: u32,
    /// When the last data segment went out (Linux `lsndtime`): idle counts from here.
    last_sent: Instant,
    mss: u32,
    sack: bool,
}

impl Recovery {
    /// Fresh state for a connection sending segments of `mss` bytes, with an initial window of
    /// `iw` segments; `sack`: the peer sends SACK blocks.
    pub fn new(algorithm: Algorithm, mss: u16, iw: u32, sack: bool, now: Instant) -> Recovery {
        Recovery {
            sb: Scoreboard::new(),
            rack: Rack::new(),
            tlp: Tlp::default(),
            prr: Prr::default(),
            cc: Controller::new(algorithm, mss, iw),
            phase: Phase::Open,
            undo: None,
            reorder_at: None,
            armed: LossTimer::Retransmission,
            dupacks: 0,
            cwnd_limited: false,
            dsack_room: 0,
            last_sent: now,
            mss: u32::from(mss.max(1)),
            sack,
        }
    }

    /// The congestion window, bytes.
    pub fn window(&self) -> u32 {
        self.cc.window()
    }

    /// The slow-start threshold, bytes.
    pub fn ssthresh(&self) -> u32 {
        self.cc.ssthresh()
    }

    /// Bytes in the network (RFC 6675 pipe).
    pub fn pipe(&self) -> u32 {
        self.sb.pipe()
    }

    /// The scoreboard (read only).
    pub fn scoreboard(&self) -> &Scoreboard {
        &self.sb
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let undo = self.undo.as_ref().map_or(0, |u| {
            size_of::<Undo>() + u.rexmit.capacity() * size_of::<(SeqNumber, SeqNumber)>()
        });
        self.sb.heap_bytes() + undo
    }

    /// Whether a fast recovery or timeout recovery episode is in progress.
    pub fn in_recovery(&self) -> bool {
        self.phase != Phase::Open
    }

    /// Whether the episode in progress began with a retransmission timeout.
    pub fn in_timeout_recovery(&self) -> bool {
        matches!(self.phase, Phase::Loss { .. })
    }

    /// Whether RACK waits on a reordering window (its timer should run).
    pub fn reorder_pending(&self) -> bool {
        self.reorder_at.is_some()
    }

    /// The timer chosen by the last [`Recovery::arm_timer`].
    pub fn armed(&self) -> LossTimer {
        self.armed
    }

    /// Whether `bytes` more may be sent now: RFC 6675 §5 "(cwnd - pipe) >= 1 SMSS", with
    /// PRR's allowance folded into cwnd during recovery.
    pub fn can_send(&self, bytes: u32) -> bool {
        self.sb.pipe().saturating_add(bytes) <= self.cc.window()
    }

    /// Bytes the window lets out now.
    pub fn room(&self) -> u32 {
        self.cc
            .window()
            .saturating_sub(self.pipe_less_limited_transmit())
    }

    /// The pipe, less a segment for each of the first two duplicate ACKs from a peer without
    /// SACK outside recovery: RFC 3042's limited transmit ("sending a new data segment in
    /// response to each of the first two duplicate acknowledgments", keeping what is
    /// outstanding within cwnd + 2 SMSS), as Linux counts each such ACK as a segment that left
    /// the network (`tcp_add_reno_sack`). With SACK the blocks themselves shrink the pipe.
    fn pipe_less_limited_transmit(&self) -> u32 {
        let pipe = self.sb.pipe();
        if self.sack || self.phase != Phase::Open {
            return pipe;
        }
        pipe.saturating_sub(u32::from(self.dupacks.min(2)) * self.mss)
    }

    /// The sender stopped with data left because the window was full (`true`), or had nothing
    /// more to send (`false`): an application-limited flow does not grow its window.
    pub fn set_cwnd_limited(&mut self, limited: bool) {
        self.cwnd_limited = limited;
    }

    /// Before sending with nothing in flight (Linux `tcp_slow_start_after_idle_check`): if
    /// the last data went out more than `rto` ago, the window restarts (`tcp_cwnd_restart`):
    /// ssthresh becomes at least ¾ of the window (`tcp_current_ssthresh`), and the window
    /// halves for each RTO idle after the first, but not below min(`initial`, cwnd). Returns
    /// whether the window shrank.
    pub fn restart_after_idle(&mut self, now: Instant, rto: Duration, initial: u32) -> bool {
        let rto = rto.max(Duration::from_millis(1));
        let mut idle = now.saturating_since(self.last_sent);
        if idle <= rto {
            return false;
        }
        let cwnd = self.cc.window();
        let ssthresh = if self.phase == Phase::Open {
            self.cc.ssthresh().max((cwnd >> 1) + (cwnd >> 2))
        } else {
            self.cc.ssthresh()
        };
        let restart = initial.min(cwnd);
        let mut w = cwnd;
        // "while ((delta -= icsk_rto) > 0 && cwnd > restart_cwnd) cwnd >>= 1"
        while idle > rto && w > restart {
            idle -= rto;
            w >>= 1;
        }
        let w = w.max(restart);
        self.cc.restart(w, ssthresh);
        w < cwnd
    }

    /// RFC 6675 NextSeg () rule (1): the next lost segment to retransmit, holes first.
    pub fn next_retransmission(&mut self) -> Option<(SeqNumber, SeqNumber)> {
        self.sb.next_lost(self.mss)
    }

    /// Whether the byte at `seq` waits for its retransmission (a lost run goes on there).
    pub fn lost_at(&mut self, seq: SeqNumber) -> bool {
        self.sb.lost_at(seq)
    }

    /// `[start, end)` went out at `now` with TSval `tsval` (new data or a retransmission).
    pub fn on_transmit(&mut self, start: SeqNumber, end: SeqNumber, now: Instant, tsval: u32) {
        if end != start {
            self.last_sent = now;
        }
        let resent = self.sb.on_send(start, end, now);
        if let Phase::Recovery { .. } = self.phase {
            self.prr.on_send(end - start);
        }
        if resent > 0 {
            self.dsack_room = self.dsack_room.saturating_add(resent);
            if let Some(u) = &mut self.undo {
                u.on_retransmit(start, end);
                u.tsval.get_or_insert(tsval);
            }
        }
    }

    /// Processes an acceptable ACK.
    pub fn on_ack(&mut self, a: &AckInput<'_>) -> AckOutcome {
        let prior = Prior::of(self);
        let s = self.sb.on_ack(a.ack, a.blocks, self.mss);
        let mut out = AckOutcome {
            acked: s.acked,
            delivered: s.delivered,
            sack_rejected: s.rejected,
            sack_rounded: s.rounded,
            sack_over_cap: s.over_cap,
            ..AckOutcome::default()
        };
        let dsack = self.rack_and_dsack(a, &s, &mut out);

        // A tail loss probe's outcome (RFC 8985 §7.4).
        let tlp = self
            .tlp
            .on_ack(a.ack, dsack, a.dup_ack && a.blocks.is_empty());
        if tlp == TlpOutcome::LossRepaired && self.phase == Phase::Open {
            self.cc.on_congestion_event(a.now);
            self.cc.on_recovery_end();
        }

        // Loss detection (Linux's `rs->losses`: what this ACK newly marked lost).
        let newly_lost = if self.sack {
            self.detect_loss(a.now, a.srtt, s.delivered > 0)
        } else {
            self.newreno_dupacks(a.ack, a.dup_ack, s.acked > 0)
        };

        let window_set = self.leave_or_enter_episode(a, prior.flight, &mut out);
        self.set_window(a, &s, prior, newly_lost, tlp, window_set);
        out
    }

    /// RACK (RFC 8985 §6.2 steps 2–4) on what `s` delivered; which of its D-SACK is
    /// believed, reordering, and the undo it allows (RFC 2883 §5, RFC 5682 §3 / RFC 3522).
    /// Returns the believed D-SACK block.
    fn rack_and_dsack(
        &mut self,
        a: &AckInput<'_>,
        s: &AckSummary,
        out: &mut AckOutcome,
    ) -> Option<(SeqNumber, SeqNumber)> {
        // RACK (RFC 8985 §6.2 steps 2–4).
        if let Some(latest) = s.latest {
            // The TSecr in our clock's milliseconds, against the segment's send time.
            let echo_before_xmit = |d: &Delivered| {
                a.tsecr.is_some_and(|e| {
                    let age_ms = a.ts_now.wrapping_sub(e);
                    let echo_ms = a.now.total_millis().saturating_sub(u64::from(age_ms));
                    echo_ms < d.sent_at.total_millis()
                })
            };
            let rtt_from = s.rtt_from.map(|d| (d, echo_before_xmit(&d)));
            self.rack
                .update(latest, rtt_from, a.now, echo_before_xmit(&latest));
        }
        let dsack = s
            .dsack
            .filter(|&(l, r)| self.believe_dsack(l, r, a.snd_max));
        out.dsack_ignored = s.dsack.is_some() && dsack.is_none();
        // Reordering seen: an original delivered below one delivered before it, or a D-SACK
        // (a retransmission was unnecessary: its original was only late, Linux's view too).
        if s.reordered || dsack.is_some() {
            self.rack.on_reordering();
        }
        self.rack.on_ack_dsack(a.ack, a.snd_max, dsack.is_some());

        // Spurious retransmissions (RFC 2883 §5, RFC 5682 §3 / RFC 3522). A D-SACK counts for
        // what this episode retransmitted only (Linux `tcp_sacktag_one`: "undo_retrans" falls
        // only for a D-SACKed skb that was retransmitted).
        let dsack_undo = match (&mut self.undo, dsack) {
            (Some(u), Some((l, r))) => {
                if u.credit(l, r) == 0 {
                    out.dsack_ignored = true;
                }
                u.all_duplicate()
            }
            _ => false,
        };
        if dsack_undo || self.spurious_by_timestamps(a, s.acked > 0) {
            self.do_undo();
            out.undone = true;
        }
        dsack
    }

    /// Leaving an episode or entering fast recovery on this ACK (`prior_flight`: what was
    /// outstanding before it). Returns whether it ended fast recovery, which sets the window.
    fn leave_or_enter_episode(
        &mut self,
        a: &AckInput<'_>,
        prior_flight: u32,
        out: &mut AckOutcome,
    ) -> bool {
        // Whether this ACK ended fast recovery, which sets the window to ssthresh. The end of
        // an RTO's loss episode does not (Linux `tcp_in_cwnd_reduction` holds in CWR and
        // Recovery only): the window keeps its slow start from one segment.
        let mut window_set = false;
        // Leaving an episode (RFC 6675 §5: "once SND.UNA > RecoveryPoint" — at or past, as
        // RFC 6582 and Linux).
        match self.phase {
            Phase::Recovery { point } | Phase::Loss { point } if a.ack.ge(point) => {
                if let Phase::Recovery { .. } = self.phase {
                    self.cc.on_recovery_end();
                    window_set = true;
                }
                self.rack.on_recovery_exit();
                self.phase = Phase::Open;
                self.undo = None;
                out.recovered = true;
            }
            _ => {}
        }
        // Entering fast recovery: something is deemed lost.
        if self.phase == Phase::Open && self.sb.lost_bytes() > 0 {
            self.phase = Phase::Recovery { point: a.snd_max };
            self.cc.on_congestion_event(a.now);
            self.prr = Prr::start(prior_flight);
            self.undo = Some(Undo::new());
            self.tlp.reset();
            out.entered = true;
        }
        window_set
    }

    /// The window after this ACK: PRR in fast recovery, else growth on what it delivered.
    fn set_window(
        &mut self,
        a: &AckInput<'_>,
        s: &AckSummary,
        prior: Prior,
        newly_lost: u32,
        tlp: TlpOutcome,
        window_set: bool,
    ) {
        match self.phase {
            Phase::Recovery { .. } => {
                let pipe = self.sb.pipe();
                // Linux `tcp_cwnd_reduction`: PRR-SSRB's extra segment "if (flag &
                // FLAG_SND_UNA_ADVANCED && !newly_lost)".
                let extra = s.acked > 0 && newly_lost == 0;
                let sndcnt =
                    self.prr
                        .on_ack(s.delivered, pipe, self.cc.ssthresh(), self.mss, extra);
                self.cc.set_window(pipe + sndcnt);
            }
            // The window grows on delivered data, only when the ACK advances SND.UNA (RFC 5681
            // §3.1: "when a new ACK is received"; Linux `tcp_may_raise_cwnd`: "only grow cwnd
            // on in-order delivery", so `tcp_cong_control` skips `tcp_cong_avoid` on a
            // duplicate ACK that only SACKs new data), not on the ACK that ends fast recovery
            // (the window was just set to ssthresh) nor on one that repaired a probed loss;
            // the ACK that ends an RTO's loss episode grows it like any other.
            // (Linux also grows on SACKs once it measured reordering deeper than three
            // segments, a degree the engine does not keep.)
            Phase::Open | Phase::Loss { .. }
                if s.acked > 0 && tlp != TlpOutcome::LossRepaired && !window_set =>
            {
                let cwnd = self.cc.window();
                let slow_start = cwnd < self.cc.ssthresh();
                // Linux `tcp_is_cwnd_limited`: "If in slow start, ensure cwnd grows to twice
                // what was ACKed", else only if the window was what limited the sender.
                let limited = self.cwnd_limited || (slow_start && 2 * prior.pipe > cwnd);
                // Without SACK, the duplicate ACKs before this one already told of segments
                // that arrived: it delivers the rest, at least one (Linux
                // `tcp_remove_reno_sacks`: "One ACK acked hole. The rest eat duplicate ACKs").
                let delivered = if self.sack || prior.dupacks == 0 {
                    s.delivered
                } else {
                    let eaten = u32::from(prior.dupacks) * self.mss;
                    s.delivered
                        .saturating_sub(eaten)
                        .max(s.delivered.min(self.mss))
                };
                self.cc.on_ack(delivered, a.now, a.srtt, !limited);
            }
            _ => {}
        }
    }

    /// RACK (RFC 8985 §6.2 step 5), when `delivered` (this ACK delivered something, or the
    /// reordering timer fired): otherwise nothing it judges changed, and the reordering timer
    /// already covers the clock. Returns the bytes newly marked lost.
    fn detect_loss(&mut self, now: Instant, srtt: Duration, delivered: bool) -> u32 {
        if self.sb.sacked_bytes() == 0 && self.phase == Phase::Open {
            // Nothing delivered above a hole: nothing RACK could deem lost.
            self.reorder_at = None;
            return 0;
        }
        if !delivered {
            return 0;
        }
        let reo_wnd = self
            .rack
            .reo_wnd(self.in_recovery(), self.sb.sacked_segments(), srtt);
        let (lost, timeout) = self.rack.detect_loss(&mut self.sb, now, reo_wnd);
        self.reorder_at = timeout.map(|t| now + t);
        lost
    }

    /// A peer without SACK (RFC 6582): the third duplicate ACK marks the first segment lost,
    /// and in recovery every partial ACK marks the next one. Returns the bytes newly marked
    /// lost.
    fn newreno_dupacks(&mut self, ack: SeqNumber, dup_ack: bool, advanced: bool) -> u32 {
        if dup_ack {
            self.dupacks = self.dupacks.saturating_add(1);
            if self.dupacks == 3 && self.phase == Phase::Open {
                return self.sb.mark_lost(ack);
            }
        } else if advanced {
            self.dupacks = 0;
            if let Phase::Recovery { point } = self.phase {
                if ack.lt(point) {
                    return self.sb.mark_lost(ack);
                }
            }
        }
        0
    }

    /// RFC 2883 §5 and Linux `tcp_dsack_seen`: whether to believe the D-SACK block `[l, r)`:
    /// it lies below SND.MAX, and with it no more bytes were reported duplicate than were
    /// ever retransmitted ("Skip the DSACK if dup segs weren't retransmitted by sender").
    fn believe_dsack(&mut self, l: SeqNumber, r: SeqNumber, snd_max: SeqNumber) -> bool {
        if !l.lt(r) || r.gt(snd_max) || r - l > self.dsack_room {
            return false;
        }
        self.dsack_room -= r - l;
        true
    }

    /// Whether this ACK proves the episode's retransmissions unnecessary by its timestamp:
    /// "the ACK [...] echoes a timestamp value [...] older than that of the retransmission"
    /// (RFC 3522 §2): the original was delivered.
    fn spurious_by_timestamps(&self, a: &AckInput<'_>, advanced: bool) -> bool {
        let first = self.undo.as_ref().and_then(|u| u.tsval);
        matches!((advanced, a.tsecr, first),
            (true, Some(tsecr), Some(first)) if (tsecr.wrapping_sub(first) as i32) < 0)
    }

    /// Undoes the last reduction: window and threshold back, nothing lost after all.
    fn do_undo(&mut self) {
        self.cc.undo();
        self.sb.clear_lost();
        self.phase = Phase::Open;
        self.undo = None;
        self.reorder_at = None;
    }

    /// The retransmission timer expired (the engine backs the RTO off and counts the retry):
    /// everything unSACKed is lost, the window collapses (RFC 5681 §3.1, RFC 6675 §5.1), and
    /// the episode can still be undone if the original turns out to have arrived.
    pub fn on_retransmission_timeout(&mut self, now: Instant, snd_max: SeqNumber) {
        let episode = self.undo.take().filter(|_| self.in_recovery());
        self.cc.on_timeout(now);
        self.sb.mark_all_lost();
        self.phase = Phase::Loss { point: snd_max };
        self.undo = Some(episode.unwrap_or_else(Undo::new));
        self.tlp.reset();
        self.reorder_at = None;
        self.dupacks = 0;
    }

    /// RACK's reordering timer fired (RFC 8985 §6.3): look again; lost segments are then
    /// retransmitted by the engine's next transmission.
    pub fn on_reorder_timeout(&mut self, now: Instant, srtt: Duration, snd_max: SeqNumber) {
        self.detect_loss(now, srtt, true);
        if self.phase == Phase::Open && self.sb.lost_bytes() > 0 {
            self.phase = Phase::Recovery { point: snd_max };
            self.cc.on_congestion_event(now);
            self.prr = Prr::start(self.sb.outstanding());
            self.undo = Some(Undo::new());
            // RFC 6937: the first retransmission goes out at once.
            let pipe = self.sb.pipe();
            self.cc.set_window(pipe + self.mss);
        }
    }

    /// A tail loss probe went out (RFC 8985 §7.3): `snd_max` after it, and whether it was a
    /// retransmission (no new data could be sent).
    pub fn on_probe_sent(&mut self, snd_max: SeqNumber, retransmission: bool) {
        self.tlp.on_probe(snd_max, retransmission);
    }

    /// The timer to run while data is in flight, and when (RFC 8985 §7.2: a probe instead of
    /// the RTO while no loss is being repaired and the peer SACKs; the reordering timer when
    /// RACK is waiting on one). `rto_at`: when the retransmission timer would fire;
    /// `srtt`: the smoothed RTT if sampled; `one_segment`: only one segment is in flight.
    pub fn arm_timer(
        &mut self,
        now: Instant,
        rto_at: Instant,
        srtt: Option<Duration>,
        one_segment: bool,
    ) -> (Instant, LossTimer) {
        let (at, kind) = if let Some(at) = self.reorder_at.filter(|at| *at < rto_at) {
            (at, LossTimer::Reorder)
        } else if self.sack
            && self.phase == Phase::Open
            && !self.tlp.in_flight()
            && !self.sb.is_empty()
        {
            let pto = Tlp::pto(srtt, one_segment, rto_at - now);
            (now + pto, LossTimer::Probe)
        } else {
            (rto_at, LossTimer::Retransmission)
        };
        self.armed = kind;
        (at, kind)
    }

    /// The engine runs the timer as a plain retransmission timeout from here on (a probe went
    /// out, or the persist or a backed-off timer was armed).
    pub fn arm_retransmission(&mut self) {
        self.armed = LossTimer::Retransmission;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;
    const RTT: Duration = Duration::from_millis(10);

    fn seq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    /// A sender with `n` segments of 1000 bytes in flight, sent at 0 ms, past slow start.
    fn sending(n: u32) -> Recovery {
        let mut r = Recovery::new(Algorithm::NewReno, MSS as u16, n, true, ms(0));
        for i in 0..n {
            r.on_transmit(seq(i * MSS), seq((i + 1) * MSS), ms(0), 0);
        }
        r.set_cwnd_limited(true);
        r
    }

    fn ack(r: &mut Recovery, now: u64, a: u32, blocks: &[(u32, u32)], snd_max: u32) -> AckOutcome {
        let blocks: Vec<_> = blocks.iter().map(|&(l, h)| (seq(l), seq(h))).collect();
        r.on_ack(&AckInput {
            now: ms(now),
            ack: seq(a),
            blocks: &blocks,
            tsecr: None,
            ts_now: now as u32,
            snd_max: seq(snd_max),
            srtt: RTT,
            dup_ack: blocks.is_empty() && a == 0,
        })
    }

    #[test]
    fn three_holes_in_one_window_are_repaired_in_one_episode_holes_first() {
        let mut r = sending(20);
        // Segments 2, 7 and 12 lost; the rest SACKed as they arrive (10 ms RTT).
        ack(&mut r, 10, 2000, &[], 20_000);
        ack(&mut r, 10, 2000, &[(3000, 7000)], 20_000);
        assert!(
            r.in_recovery(),
            "RFC 6675 IsLost: 4 segments SACKed above 2000"
        );
        ack(&mut r, 10, 2000, &[(8000, 12_000), (3000, 7000)], 20_000);
        ack(
            &mut r,
            10,
            2000,
            &[(13_000, 20_000), (8000, 12_000), (3000, 7000)],
            20_000,
        );
        let mut resent = Vec::new();
        while let Some((s, e)) = r.next_retransmission() {
            resent.push(s.0);
            r.on_transmit(s, e, ms(10), 10);
        }
        assert_eq!(resent, vec![2000, 7000, 12_000]);
        // The retransmissions arrive: one ACK covers everything, the episode ends.
        let out = ack(&mut r, 20, 20_000, &[], 20_000);
        assert!(out.recovered);
        assert!(!r.in_recovery());
        // NewReno: half the window at the loss (22 segments, after the first ACK's growth).
        assert_eq!((r.window(), r.ssthresh()), (11_000, 11_000));
    }

    #[test]
    fn slow_start_grows_the_window_only_on_acks_that_advance_snd_una() {
        // RFC 5681 §3.1 and Linux (`tcp_may_raise_cwnd`): duplicate ACKs that only SACK new
        // data leave the window alone, so ssthresh at the loss is half of the window that was
        // sent, not of one grown by the duplicates (packetdrill's prr-ss-10pkt-lost-1).
        let mut r = sending(10);
        ack(&mut r, 10, 0, &[(1000, 2000)], 10_000);
        ack(&mut r, 10, 0, &[(1000, 3000)], 10_000);
        assert_eq!(r.window(), 10_000, "SACK-only duplicate ACKs");
        ack(&mut r, 10, 0, &[(1000, 4000)], 10_000);
        assert!(r.in_recovery());
        assert_eq!(r.ssthresh(), 5000, "NewReno: half of the 10 segments sent");

        // An ACK that advances SND.UNA grows it by everything it delivered, SACKed too.
        let mut r = sending(10);
        ack(&mut r, 10, 1000, &[(2000, 3000)], 10_000);
        assert_eq!(r.window(), 12_000);
    }

    #[test]
    fn prr_sends_within_its_bound_through_the_episode() {
        // RFC 6937 §3: while pipe > ssthresh, "sndcnt = CEIL(prr_delivered * ssthresh /
        // RecoverFS) - prr_out": what goes out is proportional to what was delivered.
        let mut r = sending(20);
        let mut nxt = 20_000;
        let mut sent_in_recovery = 0u64;
        let mut delivered = 0u64;
        for k in 4..20u32 {
            let out = ack(&mut r, 10 + u64::from(k), 0, &[(1000, (k + 1) * MSS)], nxt);
            if !r.in_recovery() {
                continue;
            }
            delivered += u64::from(out.delivered);
            let ssthresh = u64::from(r.ssthresh());
            while let Some((s, e)) = r.next_retransmission() {
                if !r.can_send(e - s) {
                    break;
                }
                r.on_transmit(s, e, ms(20), 20);
                sent_in_recovery += u64::from(e - s);
            }
            while r.can_send(MSS) {
                r.on_transmit(seq(nxt), seq(nxt + MSS), ms(20), 20);
                nxt += MSS;
                sent_in_recovery += u64::from(MSS);
            }
            let bound = (delivered * ssthresh)
                .div_ceil(20_000)
                .next_multiple_of(1000);
            assert!(
                sent_in_recovery <= bound,
                "k={k}: {sent_in_recovery} > {bound}"
            );
        }
        assert!(sent_in_recovery > 0);
        assert!(r.pipe() <= r.ssthresh() + MSS, "pipe down to ssthresh");
    }

    #[test]
    fn prr_ssrb_adds_its_extra_segment_only_when_snd_una_advances_and_nothing_new_is_lost() {
        // Linux `tcp_cwnd_reduction`, below ssthresh: "sndcnt = max(prr_delivered - prr_out,
        // newly_acked_sacked); if (flag & FLAG_SND_UNA_ADVANCED && !newly_lost) sndcnt++".
        let mut r = sending(14);
        // Segments 0 to 9 lost, 10 to 12 SACKed: the third SACK marks all ten lost.
        ack(&mut r, 10, 0, &[(10_000, 11_000)], 14_000);
        ack(&mut r, 10, 0, &[(10_000, 12_000)], 14_000);
        ack(&mut r, 10, 0, &[(10_000, 13_000)], 14_000);
        assert!(r.in_recovery());
        assert_eq!(r.ssthresh(), 7000);
        // Not advanced, new loss: only what it delivered (pipe 1000 + 1000).
        assert_eq!(r.window(), 2000);
        assert_eq!(r.next_retransmission(), Some((seq(0), seq(1000))));
        r.on_transmit(seq(0), seq(1000), ms(10), 10);
        // SND.UNA advances over the retransmission, nothing newly lost: delivered 2000,
        // prr_delivered - prr_out 2000, and the extra segment (pipe 0 + 3000).
        ack(&mut r, 20, 1000, &[(10_000, 14_000)], 14_000);
        assert_eq!((r.pipe(), r.window()), (0, 3000));
        for (i, at) in [(14, 20), (15, 20), (16, 25)] {
            r.on_transmit(seq(i * MSS), seq((i + 1) * MSS), ms(at), at as u32);
        }
        // A duplicate ACK SACKing one new segment, nothing newly lost: one segment, not two
        // (pipe 2000 + 1000).
        ack(&mut r, 30, 1000, &[(10_000, 15_000)], 17_000);
        assert_eq!((r.pipe(), r.window()), (2000, 3000));
        // SND.UNA advances over segment 1's retransmission, sent after 16: RACK.rtt is its
        // 12 ms (Linux takes it from the highest segment acknowledged cumulatively), and 15,
        // sent before it, is lost: what the ACK delivered (2000), no extra segment (pipe 0).
        r.on_transmit(seq(MSS), seq(2 * MSS), ms(33), 33);
        ack(
            &mut r,
            45,
            2000,
            &[(10_000, 15_000), (16_000, 17_000)],
            17_000,
        );
        assert_eq!((r.pipe(), r.window()), (0, 2000));
    }

    #[test]
    fn a_lost_tail_gets_a_probe_timer_not_the_rto() {
        let mut r = sending(10);
        let (at, kind) = r.arm_timer(ms(0), ms(200), Some(RTT), false);
        assert_eq!(kind, LossTimer::Probe);
        assert_eq!(at, ms(22), "2 SRTT + 2 ms");
        let (at, _) = r.arm_timer(ms(0), ms(200), Some(RTT), true);
        assert_eq!(
            at,
            ms(200),
            "one segment: 2 SRTT + 200 ms, capped by the RTO"
        );
    }

    #[test]
    fn a_probe_that_repairs_a_tail_loss_reduces_the_window_once() {
        let mut r = sending(10);
        // The last segment was lost; its probe (a retransmission) is acknowledged.
        ack(&mut r, 10, 9000, &[], 10_000);
        r.on_transmit(seq(9000), seq(10_000), ms(30), 30);
        r.on_probe_sent(seq(10_000), true);
        let before = r.window();
        // RFC 8985 §7.4: an ACK of exactly TLP.end_seq decides nothing yet (a D-SACK may
        // follow, if the original arrived after all)...
        let out = ack(&mut r, 40, 10_000, &[], 10_000);
        assert_eq!(out.acked, 1000);
        assert!(r.window() >= before);
        // ... one beyond it, without a D-SACK, proves the loss: "Invoke congestion control to
        // lower cwnd and ssthresh".
        r.on_transmit(seq(10_000), seq(11_000), ms(40), 40);
        ack(&mut r, 50, 11_000, &[], 11_000);
        assert!(r.window() < before);
        assert!(r.ssthresh() < before);
        assert!(!r.in_recovery());
    }

    #[test]
    fn a_spurious_timeout_is_undone_by_timestamps() {
        let mut r = sending(10);
        let cwnd = r.window();
        r.on_retransmission_timeout(ms(200), seq(10_000));
        assert_eq!(r.window(), MSS);
        let (s, e) = r.next_retransmission().unwrap();
        r.on_transmit(s, e, ms(200), 200);
        // The original's ACK: it echoes TSval 0, older than the retransmission's 200.
        let out = r.on_ack(&AckInput {
            now: ms(210),
            ack: seq(10_000),
            blocks: &[],
            tsecr: Some(0),
            ts_now: 210,
            snd_max: seq(10_000),
            srtt: RTT,
            dup_ack: false,
        });
        assert!(out.undone);
        assert!(r.window() >= cwnd, "RFC 5682: the window is restored");
    }

    #[test]
    fn the_ack_that_ends_a_timeout_s_loss_episode_grows_the_window_in_slow_start() {
        // Linux grows cwnd on it (only CWR and Recovery are reductions, tcp_in_cwnd_reduction):
        // one segment after the timeout, two once its retransmission is acknowledged.
        let mut r = sending(1);
        r.on_retransmission_timeout(ms(200), seq(1000));
        assert_eq!(r.window(), MSS);
        let (s, e) = r.next_retransmission().unwrap();
        r.on_transmit(s, e, ms(200), 200);
        r.set_cwnd_limited(false);
        let out = r.on_ack(&AckInput {
            now: ms(300),
            ack: seq(1000),
            blocks: &[],
            tsecr: Some(200),
            ts_now: 300,
            snd_max: seq(1000),
            srtt: RTT,
            dup_ack: false,
        });
        assert!(out.recovered && !out.undone);
        assert_eq!(r.window(), 2 * MSS);
    }

    #[test]
    fn a_dsack_for_every_retransmission_undoes_the_recovery() {
        let mut r = sending(10);
        ack(&mut r, 10, 0, &[(1000, 5000)], 10_000);
        assert!(r.in_recovery());
        let cwnd_before = 10 * MSS;
        let (s, e) = r.next_retransmission().unwrap();
        r.on_transmit(s, e, ms(10), 10);
        // Segment 0 was only delayed: the original and the retransmission both arrive.
        ack(&mut r, 12, 5000, &[], 10_000);
        let out = ack(&mut r, 20, 5000, &[(0, 1000)], 10_000);
        assert!(
            out.undone,
            "RFC 2883 §5: the retransmission was unnecessary"
        );
        assert!(!r.in_recovery());
        assert!(r.window() >= cwnd_before);
    }

    /// A sender in recovery for segments 0 and 5 (of ten, the rest SACKed), both
    /// retransmitted, SND.UNA still at 0.
    fn two_holes_retransmitted() -> Recovery {
        let mut r = sending(10);
        ack(&mut r, 10, 0, &[(6000, 10_000), (1000, 5000)], 10_000);
        assert!(r.in_recovery());
        for hole in [0, 5000] {
            assert_eq!(r.next_retransmission(), Some((seq(hole), seq(hole + 1000))));
            r.on_transmit(seq(hole), seq(hole + 1000), ms(10), 10);
        }
        r
    }

    #[test]
    fn a_dsack_for_data_never_retransmitted_or_past_snd_max_undoes_nothing() {
        // Linux `tcp_sacktag_one`: "undo_retrans" falls only for a D-SACKed skb that was
        // retransmitted; `tcp_is_sackblock_valid`: nothing past SND.NXT.
        let mut r = two_holes_retransmitted();
        let window = r.window();
        // Segment 2 was never retransmitted (a D-SACK inside the second block).
        let out = ack(&mut r, 20, 0, &[(2000, 3000), (1000, 5000)], 10_000);
        assert!(!out.undone && out.dsack_ignored, "{out:?}");
        // A D-SACK over both retransmissions, but reaching past SND.MAX.
        let out = ack(&mut r, 20, 1000, &[(0, 11_000)], 10_000);
        assert!(!out.undone && out.dsack_ignored, "{out:?}");
        assert!(r.in_recovery());
        assert_eq!(r.window(), window);
    }

    #[test]
    fn one_retransmission_reported_duplicate_twice_does_not_undo_the_other() {
        let mut r = two_holes_retransmitted();
        for _ in 0..2 {
            let out = ack(&mut r, 20, 1000, &[(0, 1000), (6000, 10_000)], 10_000);
            assert!(!out.undone, "5000:6000 may still have been lost: {out:?}");
        }
        assert!(r.in_recovery());
        // Each reported once: both retransmissions were unnecessary.
        let mut r = two_holes_retransmitted();
        ack(&mut r, 20, 1000, &[(0, 1000), (6000, 10_000)], 10_000);
        let out = ack(&mut r, 21, 1000, &[(5000, 6000), (1000, 10_000)], 10_000);
        assert!(out.undone);
    }

    #[test]
    fn dsacks_widen_racks_reordering_window_only_for_data_that_was_retransmitted() {
        // RFC 8985 §6.2 step 4 grows RACK.reo_wnd_mult by one per round with a D-SACK; Linux
        // `tcp_dsack_seen` skips a D-SACK "if dup segs weren't retransmitted by sender".
        let srtt = Duration::from_secs(1);
        let mut r = sending(10);
        ack(&mut r, 10, 1000, &[], 10_000);
        let wnd = r.rack.reo_wnd(false, 0, srtt);
        // D-SACKs in five rounds, for data never retransmitted.
        for round in 1..=5u32 {
            let una = round * 1000 + 1000;
            let out = ack(&mut r, 10, una, &[(una - 1000, una)], 10_000);
            assert!(out.dsack_ignored);
        }
        assert_eq!(r.rack.reo_wnd(false, 0, srtt), wnd);
        assert!(!r.rack.reordering_seen());
    }

    #[test]
    fn duplicate_acks_that_deliver_nothing_cost_no_walk_however_many_segments_wait() {
        // Reordering seen, then the last of 1000 segments SACKed: the 999 before it wait out
        // RACK's reordering window. A flood of 1-byte SACK blocks changes none of that.
        let mut r = sending(1000);
        r.rack.on_reordering();
        ack(&mut r, 10, 0, &[(999_000, 1_000_000)], 1_000_000);
        assert!(r.reorder_pending() && !r.in_recovery());
        let before = r.sb.visited();
        for i in 0..1000u32 {
            let b = 1 + i * 997;
            let blocks = [(b, b + 1), (b + 5, b + 6), (b + 9, b + 10), (1, 2)];
            let out = ack(&mut r, 10, 0, &blocks, 1_000_000);
            assert_eq!(out.delivered, 0);
        }
        // Two binary searches of ten steps a block, and no walk of the 999.
        let per_ack = (r.sb.visited() - before) / 1000;
        assert!(per_ack <= 4 * 2 * 10, "{per_ack} records looked at per ACK");
        assert!(r.reorder_pending(), "the reordering timer still runs");
    }

    #[test]
    fn a_reordered_segment_does_not_trigger_recovery_once_reordering_was_seen() {
        let mut r = sending(20);
        // Reordering seen once: segment 1 arrived after 2.
        ack(&mut r, 10, 1000, &[(2000, 3000)], 20_000);
        ack(&mut r, 10, 3000, &[], 20_000);
        assert!(r.rack.reordering_seen());
        assert!(!r.in_recovery());
        // Segment 3 now overtaken by 4..8: within the reordering window, not lost yet.
        let out = ack(&mut r, 11, 3000, &[(4000, 9000)], 20_000);
        assert!(!r.in_recovery());
        assert!(r.reorder_at.is_some(), "RACK waits for it");
        assert_eq!(out.delivered, 5000);
        ack(&mut r, 12, 9000, &[], 20_000);
        assert_eq!(r.next_retransmission(), None);
    }

    #[test]
    fn idle_over_an_rto_halves_the_window_per_rto_down_to_the_restart_window() {
        let rto = Duration::from_millis(300);
        // 10 segments of window, a restart window of 3: idle 1.3 s is four RTOs past the
        // first, 10 -> 5 -> 2 (below 3, so 3); idle under an RTO changes nothing.
        let mut r = Recovery::new(Algorithm::NewReno, MSS as u16, 10, true, ms(0));
        r.on_transmit(seq(0), seq(MSS), ms(0), 0);
        assert!(!r.restart_after_idle(ms(300), rto, 3 * MSS));
        assert_eq!(r.window(), 10 * MSS);
        assert!(r.restart_after_idle(ms(1300), rto, 3 * MSS));
        assert_eq!(r.window(), 3 * MSS);
        // ssthresh: at least ¾ of the window before (tcp_current_ssthresh), here still high.
        assert_eq!(r.ssthresh(), u32::MAX);
        // Idle counts from the last data sent, not from the check.
        r.on_transmit(seq(MSS), seq(2 * MSS), ms(1400), 0);
        assert!(!r.restart_after_idle(ms(1650), rto, MSS));
        assert_eq!(r.window(), 3 * MSS);
        // One RTO and a bit: one halving; ssthresh after a reduction is ¾ of the window.
        let mut r = Recovery::new(Algorithm::NewReno, MSS as u16, 8, true, ms(0));
        r.cc.on_congestion_event(ms(0));
        r.cc.on_recovery_end();
        assert_eq!((r.window(), r.ssthresh()), (4 * MSS, 4 * MSS));
        assert!(r.restart_after_idle(ms(450), rto, MSS));
        assert_eq!((r.window(), r.ssthresh()), (2 * MSS, 4 * MSS));
    }

    #[test]
    fn without_sack_each_of_the_first_two_duplicate_acks_lets_one_new_segment_out() {
        // RFC 3042 (packetdrill's limited-transmit-no-sack.pkt): the window of 10 is full.
        let mut r = Recovery::new(Algorithm::NewReno, MSS as u16, 10, false, ms(0));
        for i in 0..10 {
            r.on_transmit(seq(i * MSS), seq((i + 1) * MSS), ms(0), 0);
        }
        r.set_cwnd_limited(true);
        assert_eq!(r.room(), 0);
        ack(&mut r, 110, 0, &[], 10_000);
        assert_eq!(r.room(), MSS, "the first duplicate ACK");
        r.on_transmit(seq(10_000), seq(11_000), ms(110), 0);
        assert_eq!(r.room(), 0);
        ack(&mut r, 120, 0, &[], 11_000);
        assert_eq!(r.room(), MSS, "the second");
        r.on_transmit(seq(11_000), seq(12_000), ms(120), 0);
        // Reordering, not loss: 3000 bytes acknowledged, two of the three segments already
        // told of by the duplicate ACKs, so the window grows by one (tcp_remove_reno_sacks),
        // and 9 in flight leave room for 2.
        ack(&mut r, 130, 3000, &[], 12_000);
        assert!(!r.in_recovery());
        assert_eq!((r.window(), r.room()), (11 * MSS, 2 * MSS));
    }

    #[test]
    fn without_sack_the_third_duplicate_ack_starts_recovery() {
        let mut r = Recovery::new(Algorithm::NewReno, MSS as u16, 10, false, ms(0));
        for i in 0..10 {
            r.on_transmit(seq(i * MSS), seq((i + 1) * MSS), ms(0), 0);
        }
        for _ in 0..2 {
            ack(&mut r, 10, 0, &[], 10_000);
            assert!(!r.in_recovery());
        }
        ack(&mut r, 10, 0, &[], 10_000);
        assert!(r.in_recovery());
        assert_eq!(r.next_retransmission(), Some((seq(0), seq(1000))));
        r.on_transmit(seq(0), seq(1000), ms(10), 10);
        // A partial ACK: the next hole (RFC 6582).
        ack(&mut r, 20, 3000, &[], 10_000);
        assert_eq!(r.next_retransmission(), Some((seq(3000), seq(4000))));
    }
}
