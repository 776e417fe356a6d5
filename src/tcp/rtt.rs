//! Retransmission timeout estimation (RFC 6298), with Karn's algorithm.
//!
//! RFC 6298 §2: "When the first RTT measurement R is made, the host MUST set SRTT <- R,
//! RTTVAR <- R/2, RTO <- SRTT + max (G, K*RTTVAR) where K = 4." Subsequent measurements:
//! "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, SRTT <- (1 - alpha) * SRTT + alpha * R'"
//! with alpha = 1/8, beta = 1/4. §5.5: on expiry "set RTO <- RTO * 2 (back off the timer)".

use std::time::Duration;

/// Clock granularity G: our timestamps tick in milliseconds.
const GRANULARITY_US: u32 = 1000;

/// Smoothed RTT state and the current RTO of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RttEstimator {
    srtt_us: u32,
    rttvar_us: u32,
    rto_us: u32,
    min_us: u32,
    max_us: u32,
    sampled: bool,
}

impl RttEstimator {
    /// Before any sample: RTO = the initial value (RFC 6298 §2.1: 1 s).
    pub(crate) fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: initial.as_micros() as u32,
            min_us: min.as_micros() as u32,
            max_us: max.as_micros() as u32,
            sampled: false,
        }
    }

    /// The current RTO.
    pub(crate) fn rto(&self) -> Duration {
        Duration::from_micros(u64::from(self.rto_us))
    }

    /// The smoothed RTT, if there was a sample.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.sampled
            .then(|| Duration::from_micros(u64::from(self.srtt_us)))
    }

    /// The RTT variation (RFC 6298 RTTVAR; zero before a sample).
    pub(crate) fn rttvar(&self) -> Duration {
        Duration::from_micros(u64::from(self.rttvar_us))
    }

    /// Feeds one RTT measurement (never from a retransmitted segment: Karn).
    pub(crate) fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros().min(u128::from(u32::MAX / 8)) as u32;
        if !self.sampled {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
            self.sampled = true;
        } else {
            let delta = self.srtt_us.abs_diff(r);
            self.rttvar_us = self.rttvar_us - self.rttvar_us / 4 + delta / 4;
            self.srtt_us = self.srtt_us - self.srtt_us / 8 + r / 8;
        }
        let rto = self.srtt_us + GRANULARITY_US.max(4 * self.rttvar_us);
        self.rto_us = rto.clamp(self.min_us, self.max_us);
    }

    /// Timer expired: double the RTO, up to the maximum (RFC 6298 §5.5).
    pub(crate) fn back_off(&mut self) {
        self.rto_us = self.rto_us.saturating_mul(2).min(self.max_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn initial_rto_is_one_second_and_doubles_on_backoff_up_to_the_max() {
        let mut e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(2));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(120));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_rttvar() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        // RTO = 100 + 4 * 50 = 300 ms
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn small_rtts_are_clamped_to_the_minimum_rto() {
        let mut e = est();
        for _ in 0..10 {
            e.sample(Duration::from_micros(50));
        }
        assert_eq!(e.rto(), Duration::from_millis(200));
    }
}
