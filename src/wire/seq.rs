//! TCP sequence numbers: 32-bit modular arithmetic (RFC 9293 §3.4, "Sequence Numbers").
//!
//! "It is essential to remember that the actual sequence number space is finite, though large
//! [...] all arithmetic dealing with sequence numbers must be performed modulo 2**32."
//! Every comparison goes through [`SeqNumber`]; a raw `u32 <` on sequence numbers is a bug.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number, compared modulo 2^32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self < other` in sequence space.
    pub fn lt(self, other: SeqNumber) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }

    /// `self <= other` in sequence space.
    pub fn le(self, other: SeqNumber) -> bool {
        (self.0.wrapping_sub(other.0) as i32) <= 0
    }

    /// `self > other` in sequence space.
    pub fn gt(self, other: SeqNumber) -> bool {
        other.lt(self)
    }

    /// `self >= other` in sequence space.
    pub fn ge(self, other: SeqNumber) -> bool {
        other.le(self)
    }

    /// The later of the two in sequence space.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.ge(other) { self } else { other }
    }

    /// The earlier of the two in sequence space.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self.le(other) { self } else { other }
    }

    /// Ordering in sequence space (only meaningful within 2^31 of each other).
    pub fn cmp_seq(self, other: SeqNumber) -> Ordering {
        (self.0.wrapping_sub(other.0) as i32).cmp(&0)
    }

    /// `start <= self < end` in sequence space.
    pub fn in_range(self, start: SeqNumber, end: SeqNumber) -> bool {
        start.le(self) && self.lt(end)
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, n: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n as u32))
    }
}

impl AddAssign<u32> for SeqNumber {
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, n: usize) {
        self.0 = self.0.wrapping_add(n as u32);
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(n))
    }
}

/// The distance from `rhs` forward to `self`; callers check `rhs <= self` first.
impl Sub<SeqNumber> for SeqNumber {
    type Output = u32;
    fn sub(self, rhs: SeqNumber) -> u32 {
        self.0.wrapping_sub(rhs.0)
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparisons_hold_across_the_wrap() {
        let a = SeqNumber(u32::MAX - 5);
        let b = a + 10u32;
        assert_eq!(b.0, 4);
        assert!(a.lt(b) && b.gt(a) && a.le(b) && b.ge(a));
        assert_eq!(b - a, 10);
        assert!(SeqNumber(u32::MAX).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    proptest! {
        #[test]
        fn adding_less_than_half_the_space_always_moves_forward(x: u32, n in 1u32..(1 << 31)) {
            let a = SeqNumber(x);
            let b = a + n;
            prop_assert!(a.lt(b));
            prop_assert!(b.gt(a));
            prop_assert_eq!(b - a, n);
            prop_assert_eq!(b - n, a);
            prop_assert_eq!(a.cmp_seq(b), Ordering::Less);
        }

        #[test]
        fn a_number_is_equal_to_itself_and_never_less(x: u32) {
            let a = SeqNumber(x);
            prop_assert!(a.le(a) && a.ge(a) && !a.lt(a) && !a.gt(a));
        }
    }
}
