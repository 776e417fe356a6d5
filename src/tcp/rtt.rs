//! Retransmission timeout estimation (RFC 6298), with Karn's algorithm.
//!
//! RFC 6298 §2: "When the first RTT measurement R is made, the host MUST set SRTT <- R,
//! RTTVAR <- R/2, RTO <- SRTT + max (G, K*RTTVAR) where K = 4." Subsequent measurements:
//! "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, SRTT <- (1 - alpha) * SRTT + alpha * R'"
//! with alpha = 1/8, beta = 1/4. §5.5: on expiry "set RTO <- RTO * 2 (back off the timer)".
//!
//! Where the floor goes is a choice ([`RtoFormula`]): RFC 6298 §2.4 bounds the RTO itself
//! ("SHOULD be rounded up to 1 second", Linux and we take 200 ms); Linux's `tcp_rtt_estimator`
//! bounds the variance term instead (`rttvar_us` is at least `tcp_rto_min_us`, and
//! `__tcp_set_rto` returns `srtt + rttvar`), so its RTO is never within 200 ms of the SRTT.

use std::time::Duration;

/// Clock granularity G: our timestamps tick in milliseconds.
const GRANULARITY_US: u32 = 1000;

/// Where the RTO's lower bound applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtoFormula {
    /// Linux's: RTO = SRTT + max(4·RTTVAR, min). On a path whose RTT is long and steady (4·RTTVAR
    /// near zero) a delayed ACK (40 ms here, up to 500 ms elsewhere) cannot outlast the timer:
    /// it never fires within `min` of the SRTT. What Linux peers and packetdrill scripts expect.
    #[default]
    Linux,
    /// RFC 6298 §2: RTO = max(SRTT + max(G, 4·RTTVAR), min); a steady RTT above `min` gets an
    /// RTO just above it.
    Rfc6298,
}

/// Smoothed RTT state and the current RTO of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RttEstimator {
    srtt_us: u32,
    rttvar_us: u32,
    rto_us: u32,
    min_us: u32,
    max_us: u32,
    sampled: bool,
    formula: RtoFormula,
}

impl RttEstimator {
    /// Before any sample: RTO = the initial value (RFC 6298 §2.1: 1 s).
    pub(crate) fn new(
        initial: Duration,
        min: Duration,
        max: Duration,
        formula: RtoFormula,
    ) -> RttEstimator {
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            rto_us: initial.as_micros() as u32,
            min_us: min.as_micros() as u32,
            max_us: max.as_micros() as u32,
            sampled: false,
            formula,
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
        let rto = match self.formula {
            RtoFormula::Linux => self.srtt_us + self.min_us.max(4 * self.rttvar_us),
            RtoFormula::Rfc6298 => self.srtt_us + GRANULARITY_US.max(4 * self.rttvar_us),
        };
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

    fn est(formula: RtoFormula) -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
            formula,
        )
    }

    /// The RTO after `n` samples of `rtt`.
    fn steady(formula: RtoFormula, rtt: Duration, n: usize) -> Duration {
        let mut e = est(formula);
        for _ in 0..n {
            e.sample(rtt);
        }
        e.rto()
    }

    #[test]
    fn initial_rto_is_one_second_and_doubles_on_backoff_up_to_the_max() {
        let mut e = est(RtoFormula::Linux);
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
        for formula in [RtoFormula::Linux, RtoFormula::Rfc6298] {
            let mut e = est(formula);
            e.sample(Duration::from_millis(100));
            assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
            // RTO = 100 + 4 * 50 = 300 ms: the variance term is above the floor either way.
            assert_eq!(e.rto(), Duration::from_millis(300), "{formula:?}");
        }
    }

    #[test]
    fn small_rtts_are_clamped_to_the_minimum_rto_or_put_on_top_of_it() {
        let rtt = Duration::from_micros(50);
        assert_eq!(
            steady(RtoFormula::Rfc6298, rtt, 10),
            Duration::from_millis(200)
        );
        assert_eq!(
            steady(RtoFormula::Linux, rtt, 10),
            Duration::from_micros(200_050)
        );
    }

    #[test]
    fn a_steady_long_rtt_gets_the_floor_on_top_with_linux_and_only_the_granularity_with_the_rfc() {
        // 40 samples of 300 ms: RTTVAR decays to nothing (150 ms × (3/4)^40 < 1 µs).
        let rtt = Duration::from_millis(300);
        assert_eq!(
            steady(RtoFormula::Rfc6298, rtt, 40),
            Duration::from_millis(301)
        );
        assert_eq!(
            steady(RtoFormula::Linux, rtt, 40),
            Duration::from_millis(500)
        );
    }
}
