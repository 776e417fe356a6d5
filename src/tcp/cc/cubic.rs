//! CUBIC congestion control (RFC 9438), Linux's default.
//!
//! Read: RFC 9438 §4.1 (the window function "W_cubic(t) = C * (t - K)^3 + W_max", C = 0.4),
//! §4.2 (K, t_epoch, cwnd_epoch and the per-ACK target), §4.3 (the Reno-friendly region and
//! W_est), §4.6 (multiplicative decrease, β_cubic = 0.7), §4.7 (fast convergence), §4.8
//! (timeout), §4.9 (spurious congestion events), §4.10 (slow start). Linux:
//! `net/ipv4/tcp_cubic.c`. HyStart++ (RFC 9406) is not done: slow start is RFC 5681's.
//!
//! Windows are kept in segments as floating point, as the RFC writes them.

use std::time::Duration;

use super::CongestionControl;
use crate::time::Instant;

/// RFC 9438 §5: "C SHOULD be set to 0.4".
const C: f64 = 0.4;
/// RFC 9438 §4.6: "β_cubic SHOULD be set to 0.7".
const BETA: f64 = 0.7;
/// RFC 9438 §4.3: "α_cubic = 3 * (1 - β_cubic) / (1 + β_cubic)".
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// The state a spurious congestion event restores (RFC 9438 §4.9: "cwnd_prior, W_max, K,
/// t_epoch" and ssthresh).
#[derive(Debug, Clone, Copy)]
struct Saved {
    w: f64,
    ssthresh: u32,
    w_max: f64,
    cwnd_prior: f64,
}

/// CUBIC's per-connection state.
#[derive(Debug, Clone, Copy)]
pub struct Cubic {
    /// cwnd, in segments.
    w: f64,
    ssthresh: u32,
    mss: u32,
    /// "W_max: size of cwnd just before cwnd was reduced in the last congestion event" (after
    /// fast convergence).
    w_max: f64,
    /// "cwnd_prior: size of cwnd at the most recent congestion event".
    cwnd_prior: f64,
    /// "K: the time period that the above function takes to increase the current window size
    /// to W_max", seconds.
    k: f64,
    /// "t_epoch: the time in seconds at which the current congestion avoidance stage started".
    epoch: Option<Instant>,
    /// "W_est: an estimate for the congestion window in segments in the Reno-friendly region".
    w_est: f64,
    saved: Option<Saved>,
}

impl Cubic {
    /// Initial window `iw` segments (RFC 6928: 10), ssthresh "arbitrarily high".
    pub fn new(mss: u16, iw: u32) -> Cubic {
        Cubic {
            w: f64::from(iw.max(1)),
            ssthresh: u32::MAX,
            mss: u32::from(mss.max(1)),
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            epoch: None,
            w_est: 0.0,
            saved: None,
        }
    }

    /// RFC 9438 §4.1: "W_cubic(t) = C * (t - K)^3 + W_max".
    fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.w_max
    }

    fn bytes(&self, segments: f64) -> u32 {
        (segments * f64::from(self.mss)).clamp(f64::from(self.mss), f64::from(u32::MAX)) as u32
    }

    /// RFC 9438 §4.6 and §4.7: the reduction shared by a congestion event and a timeout.
    fn reduce(&mut self) {
        self.saved = Some(Saved {
            w: self.w,
            ssthresh: self.ssthresh,
            w_max: self.w_max,
            cwnd_prior: self.cwnd_prior,
        });
        // §4.7: "if cwnd < W_max and fast convergence enabled, further reduce W_max: W_max =
        // cwnd * (1 + β_cubic) / 2; otherwise, remember cwnd before reduction: W_max = cwnd".
        self.w_max = if self.w < self.w_max {
            self.w * (1.0 + BETA) / 2.0
        } else {
            self.w
        };
        // §4.6: "cwnd_prior = cwnd; ssthresh = flight_size * β_cubic [...] ssthresh =
        // max(ssthresh, 2)" (Linux: the window, as here).
        self.cwnd_prior = self.w;
        self.ssthresh = self.bytes((self.w * BETA).max(2.0));
        self.epoch = None;
    }

    /// RFC 9438 §4.2: a new congestion avoidance stage starts at `now`:
    /// "K = cubic_root((W_max - cwnd_epoch) / C)", and §4.3: "W_est is set equal to
    /// cwnd_epoch at the start of the congestion avoidance stage".
    fn start_epoch(&mut self, now: Instant) {
        self.epoch = Some(now);
        let cwnd_epoch = self.w;
        self.k = ((self.w_max - cwnd_epoch).max(0.0) / C).cbrt();
        if self.w_max < cwnd_epoch {
            // No congestion event yet (or the window already passed it): the plateau is here.
            self.w_max = cwnd_epoch;
        }
        self.w_est = cwnd_epoch;
    }
}

impl CongestionControl for Cubic {
    fn window(&self) -> u32 {
        self.bytes(self.w)
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, acked: u32, now: Instant, rtt: Duration, app_limited: bool) {
        if app_limited || acked == 0 {
            return;
        }
        let mut segs = f64::from(acked) / f64::from(self.mss);
        // §4.10: slow start below ssthresh.
        let ssthresh = f64::from(self.ssthresh) / f64::from(self.mss);
        if self.w < ssthresh {
            let grow = segs.min(ssthresh - self.w);
            self.w += grow;
            segs -= grow;
            if segs <= 0.0 {
                return;
            }
        }
        let epoch = match self.epoch {
            Some(e) => e,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let t = (now - epoch).as_secs_f64();
        // §4.3: "W_est = W_est + α_cubic * segments_acked / cwnd"; "Once W_est has grown to
        // reach the cwnd at the time of most recently setting ssthresh [...] the sender SHOULD
        // set α_cubic to 1".
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.w_est += alpha * segs / self.w;
        if self.w_cubic(t) < self.w_est {
            // §4.3: "If so, CUBIC is in the Reno-friendly region and cwnd SHOULD be set to
            // W_est at each reception of a new ACK."
            self.w = self.w.max(self.w_est);
            return;
        }
        // §4.2: "target = cwnd if W_cubic(t + RTT) < cwnd; 1.5 * cwnd if W_cubic(t + RTT) >
        // 1.5 * cwnd; W_cubic(t + RTT) otherwise", then "cwnd SHOULD be incremented by
        // (target - cwnd) / cwnd for each received new ACK" (per segment acknowledged).
        let target = self
            .w_cubic(t + rtt.as_secs_f64())
            .clamp(self.w, 1.5 * self.w);
        self.w += (target - self.w) / self.w * segs;
    }

    fn on_congestion_event(&mut self, _now: Instant) {
        self.reduce();
    }

    fn set_window(&mut self, cwnd: u32) {
        self.w = (f64::from(cwnd) / f64::from(self.mss)).max(1.0);
    }

    fn on_recovery_end(&mut self) {
        self.w = f64::from(self.ssthresh) / f64::from(self.mss);
    }

    fn on_timeout(&mut self, _now: Instant) {
        // §4.8: "CUBIC follows the standard TCP to reduce cwnd [...] but sets ssthresh using
        // β_cubic".
        self.reduce();
        self.w = 1.0;
    }

    fn undo(&mut self) {
        // §4.9: "cwnd = max(cwnd, cwnd_prior)" and the rest of the state as it was.
        if let Some(s) = self.saved.take() {
            self.w = self.w.max(s.w);
            self.ssthresh = self.ssthresh.max(s.ssthresh);
            self.w_max = s.w_max;
            self.cwnd_prior = s.cwnd_prior;
            self.epoch = None;
        }
    }

    fn restart(&mut self, cwnd: u32, ssthresh: u32) {
        self.w = (f64::from(cwnd) / f64::from(self.mss)).max(1.0);
        self.ssthresh = ssthresh;
        // The next growth past ssthresh starts a new epoch (Linux's bictcp_cwnd_event moves
        // the old one past the idle time instead; its curve then climbs from a window the
        // restart cut, which a fresh epoch does from here too).
        self.epoch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u16 = 1000;

    /// Drives `cc` for `secs` seconds at a fixed RTT: each round trip the whole window is
    /// acknowledged, one segment per ACK spread over the round. Returns (t, cwnd segments) at
    /// the end of each round.
    fn run(cc: &mut Cubic, start: Instant, rtt: Duration, secs: f64) -> Vec<(f64, f64)> {
        let mut now = start;
        let mut out = Vec::new();
        while (now - start).as_secs_f64() < secs {
            let segs = (cc.window() / u32::from(MSS)).max(1);
            let step = rtt / segs;
            for _ in 0..segs {
                now = now + step;
                cc.on_ack(u32::from(MSS), now, rtt, false);
            }
            out.push(((now - start).as_secs_f64(), cc.w));
        }
        out
    }

    /// A CUBIC sender that had 100 segments when it saw its first loss.
    fn after_loss_at_100() -> (Cubic, Instant) {
        let mut cc = Cubic::new(MSS, 10);
        cc.w = 100.0;
        let now = Instant::from_secs(10);
        cc.on_congestion_event(now);
        cc.on_recovery_end();
        (cc, now)
    }

    #[test]
    fn a_congestion_event_reduces_the_window_by_beta_and_sets_k() {
        // RFC 9438 §4.6: "ssthresh = flight_size * β_cubic", β_cubic = 0.7.
        let (mut cc, now) = after_loss_at_100();
        assert_eq!(cc.ssthresh(), 70_000);
        assert_eq!(cc.window(), 70_000);
        cc.on_ack(1000, now, Duration::from_millis(100), false);
        // §4.2: "K = cubic_root((W_max - cwnd_epoch) / C)" = cbrt(30 / 0.4).
        assert!((cc.k - 75f64.cbrt()).abs() < 1e-9, "{}", cc.k);
    }

    #[test]
    fn the_window_follows_w_cubic_through_the_concave_and_convex_regions() {
        // RFC 9438 §4.1: "W_cubic(t) = C * (t - K)^3 + W_max"; the sender aims one RTT ahead,
        // so after each round the window is close to W_cubic(t).
        let (mut cc, now) = after_loss_at_100();
        // At 200 ms the Reno-friendly estimate stays below W_cubic for the whole run.
        let rtt = Duration::from_millis(200);
        let k = 75f64.cbrt();
        let trace = run(&mut cc, now, rtt, 8.0);
        for &(t, w) in trace.iter().filter(|(t, _)| *t > 0.5) {
            let expect = C * (t - k).powi(3) + 100.0;
            let err = (w - expect).abs() / expect;
            assert!(err < 0.03, "t={t:.2}s cwnd={w:.2} W_cubic={expect:.2}");
        }
        // The plateau around W_max at t = K, then convex growth past it.
        let at_k = trace.iter().find(|(t, _)| *t >= k).unwrap().1;
        assert!((at_k - 100.0).abs() < 1.5, "{at_k}");
        assert!(trace.last().unwrap().1 > 120.0);
    }

    #[test]
    fn with_a_short_rtt_the_reno_friendly_estimate_takes_over() {
        // RFC 9438 §4.3: "If W_cubic(t) is less than W_est [...] cwnd SHOULD be set to W_est".
        // At 1 ms RTT, Reno grows a segment per millisecond-round: far faster than W_cubic.
        let (mut cc, now) = after_loss_at_100();
        let rtt = Duration::from_millis(1);
        let trace = run(&mut cc, now, rtt, 0.2);
        let (t, w) = *trace.last().unwrap();
        let w_cubic = C * (t - 75f64.cbrt()).powi(3) + 100.0;
        assert!(w > w_cubic + 20.0, "cwnd {w:.1} vs W_cubic {w_cubic:.1}");
        // W_est grows by α_cubic per round until it reaches cwnd_prior (100), then by 1.
        let rounds = trace.len() as f64;
        let expect = 100.0 + (rounds - 30.0 / ALPHA);
        assert!(
            (w - expect).abs() < 3.0,
            "cwnd {w:.1}, W_est model {expect:.1}"
        );
    }

    #[test]
    fn fast_convergence_lowers_w_max_when_the_window_did_not_regain_it() {
        // RFC 9438 §4.7: "if cwnd < W_max [...] W_max = cwnd * (1 + β_cubic) / 2".
        let (mut cc, now) = after_loss_at_100();
        cc.w = 80.0;
        cc.on_congestion_event(now);
        assert!((cc.w_max - 80.0 * 1.7 / 2.0).abs() < 1e-9);
        assert_eq!(cc.ssthresh(), 56_000);
    }

    #[test]
    fn an_undo_restores_the_window_and_w_max() {
        // RFC 9438 §4.9: on a spurious congestion event "cwnd = max(cwnd, cwnd_prior)" and
        // W_max, K and ssthresh as they were.
        let (mut cc, now) = after_loss_at_100();
        cc.on_ack(1000, now, Duration::from_millis(100), false);
        let before = (cc.window(), cc.ssthresh(), cc.w_max);
        cc.on_timeout(now);
        assert_eq!(cc.window(), 1000);
        cc.undo();
        assert_eq!((cc.window(), cc.ssthresh(), cc.w_max), before);
    }

    #[test]
    fn slow_start_grows_by_what_is_acknowledged_up_to_ssthresh() {
        let (mut cc, now) = after_loss_at_100();
        cc.on_timeout(now);
        assert_eq!(cc.window(), 1000);
        for _ in 0..100 {
            cc.on_ack(1000, now, Duration::from_millis(100), false);
        }
        assert!(cc.window() >= cc.ssthresh(), "slow start reached ssthresh");
        assert!(cc.window() < cc.ssthresh() + 10_000, "then it grows slowly");
    }
}
