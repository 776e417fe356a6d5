//! The connection states of RFC 9293 §3.3.2.

use core::fmt;

/// A TCP connection state (RFC 9293 §3.3.2, Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// Waiting for a SYN on a served port.
    Listen,
    /// Our SYN is sent (active open).
    SynSent,
    /// A SYN was received and our SYN-ACK sent.
    SynReceived,
    /// Open; data flows both ways.
    Established,
    /// We sent a FIN; waiting for its ACK or the peer's FIN.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer sent a FIN; we may still send.
    CloseWait,
    /// Both sent FINs at once (simultaneous close); waiting for the ACK of ours.
    Closing,
    /// We sent our FIN after the peer's; waiting for its ACK.
    LastAck,
    /// Waiting 2MSL so delayed segments die out.
    TimeWait,
}

impl State {
    /// Every state, in [`State::index`] order.
    pub const ALL: &'static [State] = &[
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    /// Position in [`State::ALL`] (and in the per-state counters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Listen => "listen",
            State::SynSent => "syn_sent",
            State::SynReceived => "syn_recv",
            State::Established => "established",
            State::FinWait1 => "fin_wait1",
            State::FinWait2 => "fin_wait2",
            State::CloseWait => "close_wait",
            State::Closing => "closing",
            State::LastAck => "last_ack",
            State::TimeWait => "time_wait",
        }
    }

    /// RFC 9293's "synchronized states": ESTABLISHED and everything after it.
    pub fn is_synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }

    /// States in which our FIN has been queued or sent.
    pub fn fin_sent(self) -> bool {
        matches!(
            self,
            State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck | State::TimeWait
        )
    }

    /// States in which the peer's FIN has been received.
    pub fn fin_received(self) -> bool {
        matches!(
            self,
            State::CloseWait | State::Closing | State::LastAck | State::TimeWait
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_in_all() {
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        assert_eq!(State::ALL.len(), crate::stats::STATE_COUNT);
    }
}
