//! Degrading instead of dropping: when the driver drops the cookie SYN-ACKs the XDP program
//! sends (a veth whose peer runs no NAPI, a NIC whose XDP TX ring overflows), SYNs go to the
//! workers instead, which answer them over their AF_XDP sockets (that path needs nothing of
//! the peer) with a SYN-RECEIVED connection or, once the half-open budget is full, their own
//! SYN cookies: slower than XDP, but answered.
//!
//! [`XdpTxWatch`] decides from the XDP program's counters, looked at every
//! [`crate::control::control_loop::XDP_TX_CHECK`]: when at least half of the SYN-ACKs sent
//! since the last look were dropped, it falls back. XDP_TX sends nothing while SYNs go to the
//! workers, so whether it works again can only be learnt by trying: after a backoff
//! ([`INITIAL_BACKOFF`], doubling at each failed try up to [`MAX_BACKOFF`]) the program answers
//! SYNs again for [`PROBE`]; drops during it fall back at once (a few SYN-ACKs lost, which
//! their clients retransmit), SYN-ACKs sent without a drop end the fallback and reset the
//! backoff. A probe during which nothing was sent (no flood: the workers answered every SYN
//! themselves) ends the fallback too, but keeps the backoff.

use std::time::Duration;

use crate::time::Instant;

/// How long the first fallback lasts before XDP_TX is tried again.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(5);

/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(320);

/// How long a try lasts when nothing is dropped.
pub const PROBE: Duration = Duration::from_secs(1);

/// What the watch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpTxChange {
    /// The XDP program now hands SYNs to the workers.
    FellBack {
        /// SYN-ACKs the driver dropped since the last look.
        dropped: u64,
        /// SYN-ACKs the program sent since the last look.
        sent: u64,
        /// Whether this is the first fallback (the one worth explaining).
        first: bool,
        /// When XDP_TX is tried again.
        retry_in: Duration,
    },
    /// The XDP program answers SYNs again, for a try.
    Probing,
    /// The try sent SYN-ACKs and the driver dropped none: XDP_TX works again.
    Restored {
        /// SYN-ACKs sent during the try.
        sent: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The XDP program answers SYNs (in cookie mode).
    XdpTx,
    /// SYNs go to the workers until `probe_at`.
    Fallback { probe_at: Instant },
    /// Trying XDP_TX until `until`; `sent` SYN-ACKs so far.
    Probing { until: Instant, sent: u64 },
}

/// Whether SYNs should go to the workers because XDP_TX does not deliver.
#[derive(Debug, Clone)]
pub struct XdpTxWatch {
    mode: Mode,
    /// The program's (SYN-ACKs sent, dropped) at the last look.
    last: Option<(u64, u64)>,
    /// How long the next fallback lasts.
    backoff: Duration,
    fell_back_before: bool,
}

impl Default for XdpTxWatch {
    fn default() -> XdpTxWatch {
        XdpTxWatch {
            mode: Mode::XdpTx,
            last: None,
            backoff: INITIAL_BACKOFF,
            fell_back_before: false,
        }
    }
}

impl XdpTxWatch {
    /// Whether SYNs should go to the workers now.
    pub fn fallback(&self) -> bool {
        matches!(self.mode, Mode::Fallback { .. })
    }

    /// Looks at the program's counters at `now`: `sent` cookie SYN-ACKs so far, `dropped` by
    /// the driver so far. Returns what changed, if anything.
    pub fn poll(&mut self, now: Instant, sent: u64, dropped: u64) -> Option<XdpTxChange> {
        let (new_sent, new_dropped) = match self.last {
            Some((s, d)) => (sent.saturating_sub(s), dropped.saturating_sub(d)),
            None => (0, 0),
        };
        self.last = Some((sent, dropped));
        let failing = new_dropped > 0 && new_dropped.saturating_mul(2) >= new_sent;
        match self.mode {
            Mode::XdpTx | Mode::Probing { .. } if failing => {
                let retry_in = self.backoff;
                self.mode = Mode::Fallback {
                    probe_at: now + retry_in,
                };
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                let first = !std::mem::replace(&mut self.fell_back_before, true);
                Some(XdpTxChange::FellBack {
                    dropped: new_dropped,
                    sent: new_sent,
                    first,
                    retry_in,
                })
            }
            Mode::Probing { until, sent } => {
                let sent = sent + new_sent;
                if now < until {
                    self.mode = Mode::Probing { until, sent };
                    return None;
                }
                self.mode = Mode::XdpTx;
                if sent == 0 {
                    return None;
                }
                self.backoff = INITIAL_BACKOFF;
                Some(XdpTxChange::Restored { sent })
            }
            Mode::Fallback { probe_at } if now >= probe_at => {
                self.mode = Mode::Probing {
                    until: now + PROBE,
                    sent: 0,
                };
                Some(XdpTxChange::Probing)
            }
            Mode::XdpTx | Mode::Fallback { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The XDP program's counters as the watch sees them, and a clock.
    struct Program {
        now: Instant,
        sent: u64,
        dropped: u64,
    }

    impl Program {
        /// `sent` more SYN-ACKs of which `dropped` were dropped, then a look 100 ms later.
        fn look(&mut self, w: &mut XdpTxWatch, sent: u64, dropped: u64) -> Option<XdpTxChange> {
            self.sent += sent;
            self.dropped += dropped;
            self.now = self.now + Duration::from_millis(100);
            w.poll(self.now, self.sent, self.dropped)
        }
    }

    fn start() -> (XdpTxWatch, Program) {
        let mut w = XdpTxWatch::default();
        let mut p = Program {
            now: Instant::from_secs(10),
            sent: 500,
            dropped: 3,
        };
        // The first look only learns where the counters stand.
        assert_eq!(p.look(&mut w, 0, 0), None);
        (w, p)
    }

    #[test]
    fn syn_acks_delivered_or_dropped_now_and_then_keep_xdp_tx() {
        let (mut w, mut p) = start();
        for _ in 0..50 {
            assert_eq!(p.look(&mut w, 1000, 1), None);
            assert_eq!(p.look(&mut w, 0, 0), None);
        }
        assert!(!w.fallback());
    }

    #[test]
    fn dropped_syn_acks_fall_back_at_the_next_look_and_say_so_once() {
        let (mut w, mut p) = start();
        assert_eq!(
            p.look(&mut w, 40, 40),
            Some(XdpTxChange::FellBack {
                dropped: 40,
                sent: 40,
                first: true,
                retry_in: INITIAL_BACKOFF
            })
        );
        assert!(w.fallback());
        // Nothing is sent from XDP meanwhile: nothing changes until the try.
        for _ in 0..49 {
            assert_eq!(p.look(&mut w, 0, 0), None);
        }
        assert_eq!(p.look(&mut w, 0, 0), Some(XdpTxChange::Probing));
        assert!(!w.fallback(), "XDP answers during the try");
        // Still dropped: back to the workers, for twice as long, not explained again.
        assert_eq!(
            p.look(&mut w, 10, 10),
            Some(XdpTxChange::FellBack {
                dropped: 10,
                sent: 10,
                first: false,
                retry_in: INITIAL_BACKOFF * 2
            })
        );
    }

    #[test]
    fn a_try_that_delivers_restores_xdp_tx_and_resets_the_backoff() {
        let (mut w, mut p) = start();
        p.look(&mut w, 40, 40);
        let mut retry = INITIAL_BACKOFF;
        // Three failed tries: 5, 10, 20 s.
        for _ in 0..3 {
            while p.look(&mut w, 0, 0) != Some(XdpTxChange::Probing) {}
            match p.look(&mut w, 5, 5) {
                Some(XdpTxChange::FellBack { retry_in, .. }) => {
                    assert_eq!(retry_in, retry * 2);
                    retry = retry_in;
                }
                other => panic!("{other:?}"),
            }
        }
        let fell_back_at = p.now;
        while p.look(&mut w, 0, 0) != Some(XdpTxChange::Probing) {}
        assert_eq!(
            p.now.saturating_since(fell_back_at),
            Duration::from_secs(40)
        );
        // GRO turned on at the peer: the try's SYN-ACKs all go out.
        for _ in 0..9 {
            assert_eq!(p.look(&mut w, 100, 0), None);
        }
        assert_eq!(
            p.look(&mut w, 100, 0),
            Some(XdpTxChange::Restored { sent: 1000 })
        );
        assert!(!w.fallback());
        match p.look(&mut w, 10, 10) {
            Some(XdpTxChange::FellBack { retry_in, .. }) => assert_eq!(retry_in, INITIAL_BACKOFF),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_try_without_a_syn_ack_ends_the_fallback_quietly_and_keeps_the_backoff() {
        let (mut w, mut p) = start();
        p.look(&mut w, 40, 40);
        while p.look(&mut w, 0, 0) != Some(XdpTxChange::Probing) {}
        for _ in 0..20 {
            assert_eq!(p.look(&mut w, 0, 0), None);
        }
        assert!(!w.fallback());
        match p.look(&mut w, 10, 10) {
            Some(XdpTxChange::FellBack { retry_in, .. }) => {
                assert_eq!(retry_in, INITIAL_BACKOFF * 2)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_backoff_stops_growing_at_its_bound() {
        let (mut w, mut p) = start();
        p.look(&mut w, 1, 1);
        let mut last = Duration::ZERO;
        for _ in 0..12 {
            while p.look(&mut w, 0, 0) != Some(XdpTxChange::Probing) {}
            if let Some(XdpTxChange::FellBack { retry_in, .. }) = p.look(&mut w, 1, 1) {
                last = retry_in;
            }
        }
        assert_eq!(last, MAX_BACKOFF);
    }
}
