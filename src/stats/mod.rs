//! Counters, drop reasons and per-state connection counts.
//!
//! Every frame the engine does not act on is counted under a [`DropReason`]; every state has a
//! live count (like `ss -s`). A worker's [`Stats`] is plain data: the worker sends copies to the
//! control thread, which [`Stats::merge`]s them.

use std::fmt;

use crate::state::State;

mod latency;
mod memory;

pub use latency::{Latencies, LatencyKind, hgrm, svg, write_reports};
pub use memory::Memory;

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident => $label:literal,)*) => {
        /// Why a received frame was dropped without being acted on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum DropReason {
            $($(#[doc = $doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];

            /// A short snake_case label for reports.
            pub fn label(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than its headers or length fields say.
    Truncated => "truncated",
    /// IPv4 header or TCP checksum wrong.
    BadChecksum => "bad_checksum",
    /// IPv4 IHL or TCP data offset impossible.
    BadHeaderLength => "bad_header_length",
    /// IP length field inconsistent with the frame.
    BadLength => "bad_length",
    /// IP version field wrong.
    BadVersion => "bad_version",
    /// A TCP option with an illegal length.
    BadOptionLength => "bad_option_length",
    /// IPv4 with options.
    IpOptions => "ip_options",
    /// An IPv4 fragment.
    Fragment => "fragment",
    /// Not TCP (or IPv6 with extension headers).
    NotTcp => "not_tcp",
    /// Not IPv4 or IPv6.
    UnsupportedEtherType => "ethertype",
    /// TCP to an address or port we do not serve.
    NotServed => "not_served",
    /// SYN and FIN together.
    SynFin => "syn_fin",
    /// SYN and RST together.
    SynRst => "syn_rst",
    /// Flag combination no TCP sends (no SYN/ACK/RST, e.g. NULL or FIN-only scans).
    BadFlags => "bad_flags",
    /// A destination address that is never ours: broadcast, multicast, unspecified, loopback.
    BadAddress => "bad_address",
    /// ACK that matched no connection and failed the SYN-cookie check.
    BadCookie => "bad_cookie",
    /// SYN-cookie ACK from an expired time slot.
    ExpiredCookie => "expired_cookie",
    /// Segment outside the receive window (answered by an ACK unless it was a RST).
    OutOfWindow => "out_of_window",
    /// Rejected by PAWS (RFC 7323 §5): timestamp older than TS.Recent.
    Paws => "paws",
    /// ACK for data we never sent.
    AckTooHigh => "ack_too_high",
    /// ACK older than the window (RFC 5961 §5).
    AckTooOld => "ack_too_old",
    /// RST in the window but not exactly at RCV.NXT (a challenge ACK may have been sent).
    RstNotExact => "rst_not_exact",
    /// RST that matched no connection (never answered).
    RstNoConnection => "rst_no_connection",
    /// SYN on a synchronized connection (answered by a rate-limited challenge ACK).
    SynChallenged => "syn_challenged",
    /// Segment without ACK in a synchronized state.
    NoAck => "no_ack",
    /// Segment for no connection, not reset because `reset_unknown` is off (several queues).
    UnknownConnection => "unknown_connection",
    /// Our RST for a segment that matched no connection was suppressed by the rate limit.
    RstRateLimited => "rst_rate_limited",
    /// A challenge ACK was suppressed by its per-connection rate limit.
    ChallengeAckRateLimited => "challenge_ack_rate_limited",
    /// SYN refused: the connection table is full.
    TableFull => "table_full",
    /// SYN refused: half-open budget full and SYN cookies are off.
    HalfOpenFull => "half_open_full",
    /// SYN for a TIME-WAIT 4-tuple that is not newer than the old connection (RFC 6191).
    TimeWaitOldSyn => "time_wait_old_syn",
    /// Data that arrived after the app closed, or beyond the receive buffer.
    NoRoom => "no_room",
    /// No TX frame was free for a reply.
    TxFull => "tx_full",
    /// A source that is never a TCP peer (a martian): a group source MAC, a broadcast,
    /// multicast, loopback, unspecified or IPv4-mapped source address, or one of ours.
    Martian => "martian",
    /// An IEEE 802.1ad (QinQ, EtherType 0x88A8) service tag: only single 802.1Q tags are ours.
    QinQ => "qinq",
    /// The ACK a segment for a TIME-WAIT 4-tuple was owed was held back: that tuple answered
    /// less than 500 ms before (Linux `tcp_invalid_ratelimit`).
    TimeWaitRateLimited => "time_wait_rate_limited",
    /// In-order data not taken: the memory budget had no room for it (not acknowledged: the
    /// peer sends it again; Linux's `TCPRcvQDrop`).
    RcvMemory => "rcv_memory",
    /// Out-of-order data not kept: the memory budget had no room for it, or it lay beyond a
    /// hole that `rcv_memory` made (Linux's `TCPOFODrop`).
    OfoMemory => "ofo_memory",
    /// SYN refused: the memory budget is spent.
    SynMemory => "syn_memory",
    /// Valid SYN-cookie ACK refused: the memory budget is spent (the peer retransmits it).
    CookieMemory => "cookie_memory",
}

/// Number of connection states counted (RFC 9293's eleven, LISTEN included as a gauge of
/// listeners).
pub const STATE_COUNT: usize = 11;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// One engine's counters. Plain data: copy it, merge it, print it.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Stats {
            $($(#[doc = $doc])* pub $name: u64,)*
            /// Frames dropped, by reason (indexed like [`DropReason::ALL`]).
            pub drops: [u64; DropReason::ALL.len()],
            /// Live connections per state (indexed by [`State::index`]).
            pub states: [u64; STATE_COUNT],
        }

        impl Default for Stats {
            fn default() -> Stats {
                Stats {
                    $($name: 0,)*
                    drops: [0; DropReason::ALL.len()],
                    states: [0; STATE_COUNT],
                }
            }
        }

        impl Stats {
            /// Adds another engine's counters and gauges into this one.
            pub fn merge(&mut self, other: &Stats) {
                $(self.$name += other.$name;)*
                for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
                    *a += b;
                }
                for (a, b) in self.states.iter_mut().zip(other.states.iter()) {
                    *a += b;
                }
            }

            /// Counters, drop reasons and state gauges as one JSON object.
            pub fn to_json(&self) -> serde_json::Value {
                let mut counters = serde_json::Map::new();
                $(counters.insert(stringify!($name).into(), self.$name.into());)*
                let mut drops = serde_json::Map::new();
                for r in DropReason::ALL {
                    drops.insert(r.label().into(), self.dropped(*r).into());
                }
                let mut states = serde_json::Map::new();
                for s in State::ALL {
                    states.insert(s.label().into(), self.in_state(*s).into());
                }
                serde_json::json!({ "counters": counters, "drops": drops, "states": states })
            }

            /// Every named counter as (name, value), for JSON and text reports.
            pub fn counters(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }

            /// Every named counter's name and description (its doc line), in the order of
            /// [`Stats::counters`].
            pub const COUNTER_HELP: &'static [(&'static str, &'static str)] =
                &[$((stringify!($name), concat!($($doc),*)),)*];
        }
    };
}

counters! {
    /// Frames handed to the engine.
    rx_frames,
    /// Frames the engine transmitted.
    tx_frames,
    /// Payload bytes received in order.
    rx_bytes,
    /// Payload bytes transmitted (first transmissions and retransmissions).
    tx_bytes,
    /// SYNs received on a served port.
    syns_received,
    /// SYN-ACKs sent (including retransmissions and cookie SYN-ACKs).
    synacks_sent,
    /// SYN-ACKs that carried a SYN cookie.
    cookies_sent,
    /// ACKs that completed a handshake by a valid SYN cookie.
    cookies_validated,
    /// Connections established by passive open.
    passive_opens,
    /// Connections established by active open.
    active_opens,
    /// Active opens that failed (refused or timed out).
    failed_opens,
    /// RSTs we sent.
    resets_sent,
    /// RSTs that reset one of our connections.
    resets_received,
    /// Challenge ACKs sent (RFC 5961).
    challenge_acks,
    /// Segments retransmitted on a retransmission timeout.
    rto_retransmits,
    /// Segments retransmitted in fast recovery (SACK scoreboard and RACK, or duplicate ACKs).
    fast_retransmits,
    /// Fast recovery episodes entered (RFC 6675 §5).
    recovery_episodes,
    /// Tail loss probes sent (RFC 8985 §7).
    tail_loss_probes,
    /// Window reductions undone as spurious (D-SACK, RFC 2883; timestamps, RFC 5682).
    undos,
    /// Congestion windows restarted after the sender was idle longer than an RTO (RFC 5681
    /// §4.1).
    cwnd_restarts,
    /// Connections aborted after the retry limit.
    timeouts,
    /// Connections aborted after unanswered keepalive probes.
    keepalive_timeouts,
    /// Keepalive probes sent.
    keepalive_probes,
    /// Zero-window probes sent.
    window_probes,
    /// TIME-WAIT entries recycled by a newer SYN (RFC 6191).
    time_wait_recycled,
    /// TIME-WAIT entries evicted because the table was full.
    time_wait_evicted,
    /// Connections closed by FIN-WAIT-2 timeout.
    fin_wait2_timeouts,
    /// Half-open connections dropped after the SYN-ACK retry limit.
    syn_recv_timeouts,
    /// Out-of-order segments kept for reassembly.
    ooo_segments,
    /// TCP Fast Open connections opened from a SYN (RFC 7413; Linux `TCPFastOpenPassive`).
    fastopen_passive,
    /// Fast Open cookies refused, or TFO connections that could not be opened (Linux
    /// `TCPFastOpenPassiveFail`).
    fastopen_passive_fail,
    /// Fast Open connections whose cookie was made with the previous key; their SYN-ACK
    /// carried a fresh one (Linux `TCPFastOpenPassiveAltKey`).
    fastopen_passive_alt_key,
    /// SYNs that asked for a Fast Open cookie (Linux `TCPFastOpenCookieReqd`).
    fastopen_cookie_requests,
    /// Fast Open SYNs given a normal handshake because the listener's TFO queue was full
    /// (Linux `TCPFastOpenListenOverflow`).
    fastopen_listen_overflow,
    /// Fast Open connections opened while the half-open budget was full (other SYNs got SYN
    /// cookies, or were dropped).
    fastopen_over_budget,
    /// SACK blocks ignored: empty or reversed, beyond SND.MAX, or below the cumulative ACK
    /// (Linux TCPSACKDiscard).
    sack_blocks_rejected,
    /// SACK blocks with an edge inside a segment, rounded to its boundaries (a block inside one
    /// segment to nothing): SACK never splits a segment (Linux `tcp_match_skb_to_sack`).
    sack_blocks_rounded,
    /// SACK blocks dropped because the scoreboard held its most records ("too many SACK
    /// fragments", Linux TCPWqueueTooBig).
    sack_blocks_over_cap,
    /// D-SACK blocks not believed (beyond SND.MAX, or more than was ever retransmitted: Linux
    /// TCPDSACKIgnoredDubious) or reporting nothing the episode retransmitted (no undo: Linux
    /// TCPDSACKIgnoredNoUndo).
    dsack_ignored,
    /// Times the engine entered memory pressure (Linux's `TCPMemoryPressures`).
    memory_pressures,
    /// Out-of-order queues pruned to free memory (Linux's `OfoPruned`).
    ofo_prunes,
    /// Out-of-order bytes pruned (SACKed but never acknowledged: the peer resends them).
    ofo_pruned_bytes,
    /// Segments sent with a window the memory budget made smaller than the buffer's room.
    rcv_window_clamped,
    /// Times an app found its send buffer full below the configured size (memory pressure).
    send_memory_limited,
    /// Connections reset because new data arrived after the app closed them (RFC 1122
    /// §4.2.2.13; Linux `TCPAbortOnData`).
    aborts_on_data,
    /// Connections reset because the app closed them with received data unread (RFC 1122
    /// §4.2.2.13; Linux `TCPAbortOnClose`).
    aborts_on_close,
}

impl Stats {
    /// Counts one dropped frame.
    pub fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// How many frames were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops added up.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Live connections in `state`.
    pub fn in_state(&self, state: State) -> u64 {
        self.states[state.index()]
    }

    /// The one place the per-state gauges move: a connection (a TIME-WAIT entry, a listener)
    /// went from `from` to `to`. CLOSED is never counted: it is the absence of a connection.
    pub(crate) fn state_changed(&mut self, from: State, to: State) {
        if from != State::Closed {
            let gauge = &mut self.states[from.index()];
            *gauge = gauge.saturating_sub(1);
        }
        if to != State::Closed {
            self.states[to.index()] += 1;
        }
    }
}

/// One line, like `ss -s`: connections by state (non-zero only), then drops by reason.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conns")?;
        let mut any = false;
        for state in State::ALL {
            let n = self.in_state(*state);
            if n > 0 {
                write!(f, " {}={}", state.label(), n)?;
                any = true;
            }
        }
        if !any {
            write!(f, " none")?;
        }
        write!(
            f,
            " | syn={} synack={} cookies={}/{} est={}+{} rst_out={} rst_in={} rexmit={}+{}",
            self.syns_received,
            self.synacks_sent,
            self.cookies_sent,
            self.cookies_validated,
            self.passive_opens,
            self.active_opens,
            self.resets_sent,
            self.resets_received,
            self.rto_retransmits,
            self.fast_retransmits,
        )?;
        write!(f, " | drops={}", self.total_drops())?;
        for reason in DropReason::ALL {
            let n = self.dropped(*reason);
            if n > 0 {
                write!(f, " {}={}", reason.label(), n)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counters_drops_and_state_gauges() {
        let mut a = Stats {
            rx_frames: 3,
            ..Stats::default()
        };
        a.drop(DropReason::BadChecksum);
        a.states[State::Established.index()] = 2;
        let mut b = a.clone();
        b.drop(DropReason::Fragment);
        a.merge(&b);
        assert_eq!(a.rx_frames, 6);
        assert_eq!(a.dropped(DropReason::BadChecksum), 2);
        assert_eq!(a.dropped(DropReason::Fragment), 1);
        assert_eq!(a.in_state(State::Established), 4);
        assert_eq!(a.total_drops(), 3);
    }

    #[test]
    fn every_counter_has_its_doc_line_as_help_in_the_same_order() {
        let names: Vec<&str> = Stats::default().counters().iter().map(|c| c.0).collect();
        let help: Vec<&str> = Stats::COUNTER_HELP.iter().map(|c| c.0).collect();
        assert_eq!(names, help);
        assert_eq!(
            Stats::COUNTER_HELP[0].1.trim(),
            "Frames handed to the engine."
        );
    }

    #[test]
    fn display_names_live_states_and_nonzero_drop_reasons() {
        let mut s = Stats::default();
        s.states[State::TimeWait.index()] = 7;
        s.drop(DropReason::SynFin);
        let line = s.to_string();
        assert!(line.starts_with("conns time_wait=7 |"), "{line}");
        assert!(line.ends_with("drops=1 syn_fin=1"), "{line}");
    }
}
