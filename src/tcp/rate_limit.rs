//! A token bucket for rate-limited replies: RFC 5961 §7 (challenge ACK throttling, Linux
//! `tcp_challenge_ack_limit`) and RSTs for segments that match no connection
//! (RFC 9293 §3.10.7.1, Linux `icmp_ratelimit`-style limits).

use crate::time::Instant;

/// One token, in micro-tokens: the bucket refills by `per_second` micro-tokens per µs.
const TOKEN: u64 = 1_000_000;

/// A token bucket: `burst` tokens at most, refilled at `per_second` tokens per second.
///
/// Starts full. A bucket with `burst == 0` never allows anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimiter {
    per_second: u32,
    burst: u32,
    /// Current fill, in micro-tokens (fixed point, so slow rates still refill exactly).
    tokens: u64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens, refilling at `per_second` tokens per second.
    pub fn new(per_second: u32, burst: u32) -> Self {
        RateLimiter {
            per_second,
            burst,
            tokens: u64::from(burst) * TOKEN,
            last: Instant::ZERO,
        }
    }

    /// Takes one token if there is one; `false` means: do not send.
    pub fn allow(&mut self, now: Instant) -> bool {
        // A clock that steps back refills nothing and does not move `last` back, so the
        // same interval is never credited twice.
        if now > self.last {
            let elapsed = (now.total_micros() - self.last.total_micros()).min(u64::from(u32::MAX));
            let refill = elapsed.saturating_mul(u64::from(self.per_second));
            let cap = u64::from(self.burst) * TOKEN;
            self.tokens = self.tokens.saturating_add(refill).min(cap);
            self.last = now;
        }
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn allowed_now(rl: &mut RateLimiter, now: Instant, tries: u32) -> u32 {
        (0..tries).filter(|_| rl.allow(now)).count() as u32
    }

    #[test]
    fn burst_is_allowed_at_once_then_refills_at_the_rate() {
        let mut rl = RateLimiter::new(100, 10);
        let t0 = Instant::from_secs(10);
        assert_eq!(allowed_now(&mut rl, t0, 50), 10);
        // 100/s: one token every 10 ms.
        assert!(!rl.allow(t0 + Duration::from_millis(9)));
        assert!(rl.allow(t0 + Duration::from_millis(10)));
        assert!(!rl.allow(t0 + Duration::from_millis(10)));
        assert_eq!(
            allowed_now(&mut rl, t0 + Duration::from_millis(510), 100),
            10
        );
        // Over a long run the rate holds: 1 s of polling every ms gives 100.
        let start = t0 + Duration::from_secs(60);
        let _ = allowed_now(&mut rl, start, 100);
        let n: u32 = (1..=1000)
            .map(|ms| allowed_now(&mut rl, start + Duration::from_millis(ms), 5))
            .sum();
        assert_eq!(n, 100);
    }

    #[test]
    fn the_bucket_never_holds_more_than_the_burst() {
        let mut rl = RateLimiter::new(1_000, 3);
        let _ = allowed_now(&mut rl, Instant::ZERO, 3);
        assert_eq!(allowed_now(&mut rl, Instant::from_secs(3600), 100), 3);
    }

    #[test]
    fn time_going_backwards_neither_panics_nor_refills() {
        let mut rl = RateLimiter::new(10, 1);
        assert!(rl.allow(Instant::from_secs(100)));
        assert!(!rl.allow(Instant::from_secs(50)));
        assert!(!rl.allow(Instant::ZERO));
        assert!(!rl.allow(Instant::from_secs(100)));
        assert!(rl.allow(Instant::from_millis(100_100)));
    }

    #[test]
    fn extreme_rates_and_times_do_not_overflow() {
        let mut rl = RateLimiter::new(u32::MAX, u32::MAX);
        assert!(rl.allow(Instant::from_micros(u64::MAX)));
        let mut off = RateLimiter::new(u32::MAX, 0);
        assert!(!off.allow(Instant::from_secs(1)));
        assert!(core::mem::size_of::<RateLimiter>() <= 24);
    }
}
