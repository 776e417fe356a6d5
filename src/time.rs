//! Engine time: a monotonic instant in microseconds, always passed in from outside.

use core::ops::{Add, Sub};
use std::time::Duration;

/// A point on a monotonic clock, in microseconds since an arbitrary epoch.
///
/// The engine never reads a clock: the worker (or a test's virtual clock) hands it `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch of the clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis * 1000)
    }

    /// An instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Instant {
        Instant(secs * 1_000_000)
    }

    /// Microseconds since the epoch.
    pub const fn total_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch.
    pub const fn total_millis(self) -> u64 {
        self.0 / 1000
    }

    /// Whole seconds since the epoch.
    pub const fn total_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Milliseconds since the epoch modulo 2^32: the engine's compact wrapping clock (TIME-WAIT
    /// expiry, RFC 7323 timestamps), compared in sequence-number style.
    pub const fn wrapping_millis(self) -> u32 {
        self.total_millis() as u32
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_micros() as u64))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.as_micros() as u64))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtraction_saturates_instead_of_underflowing() {
        let a = Instant::from_millis(5);
        let b = Instant::from_millis(7);
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(b - a, Duration::from_millis(2));
        assert_eq!(a - Duration::from_secs(1), Instant::ZERO);
    }
}
