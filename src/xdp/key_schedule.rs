//! What the XDP program's SYN-cookie key table holds, epoch by epoch, kept by the control
//! thread: the keys of the current and the next rotation epoch, and — when the secret is
//! replaced — the order that never lets the program make a cookie an engine refuses.
//!
//! The program makes cookies in front of the engines (one per queue, each on its own thread),
//! and the engines take the third ACKs. A new secret therefore goes in three steps:
//!
//! 1. *Telling*: every worker is sent the new secret ([`KeyEvents::tell`]) and the table is left
//!    alone, so the program goes on making cookies under the old secret, which the engines keep
//!    accepting ([`crate::tcp::syncookie::CookieKeys::replace_secret`]). The engines already make
//!    their own cookies under the new one.
//! 2. Once every worker has acknowledged ([`SecretAck`]), the new secret's keys go into the
//!    table's free entries: the next epoch's, and the current one's only if it is not in use.
//!    An entry is never rewritten for the epoch it holds, so the program, which checks an
//!    entry's epoch before and after reading its keys, never reads half a key
//!    ([`crate::xdp::CookieKeyTable::write`]); the program switches within two epochs.
//! 3. *Settling*: a later secret waits until the epoch after the switch, so that an engine,
//!    which remembers one replaced secret, never forgets one the program still makes cookies
//!    under (the latest secret asked for is kept; the ones in between are skipped).
//!
//! The program reads the kernel's coarse clock, which lags the control thread's by up to a
//! scheduler tick: an entry that held the epoch just ended is rewritten only
//! [`COARSE_CLOCK_GRACE`] into the new one, so that a SYN the program still dates to the old
//! epoch finds its keys.
//!
//! Sans-IO: the table is a [`KeySlots`], the clock comes in as `now`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::tcp::Secret;
use crate::tcp::hash::Key;
use crate::tcp::hash::timestamp_key;
use crate::tcp::syncookie::CookieKeys;
use crate::time::Instant;

/// The XDP program's key table: two entries, the keys of `epoch` at entry `epoch % 2`
/// ([`crate::xdp::CookieKeyTable`]; a plain one in tests).
pub trait KeySlots {
    /// The epoch whose keys are at `epoch`'s entry now (`None`: empty).
    fn epoch_at(&self, epoch: u64) -> Option<u64>;
    /// Puts the keys of `epoch` (its MAC key and the secret's timestamp-offset key) in its
    /// entry.
    fn write(&self, epoch: u64, mac: &Key, timestamp: &Key);
}

/// The workers' acknowledgement of a new secret: each worker calls [`SecretAck::done`] once
/// its engine has it.
#[derive(Debug, Clone)]
pub struct SecretAck(Arc<AtomicUsize>);

impl SecretAck {
    /// An acknowledgement `workers` workers owe.
    pub fn new(workers: usize) -> SecretAck {
        SecretAck(Arc::new(AtomicUsize::new(workers)))
    }

    /// One worker has the secret (a worker that will never answer, e.g. gone, counts too).
    pub fn done(&self) {
        // Release: the engine's switch happens before the control thread sees the count drop.
        let _ = self
            .0
            .fetch_update(Ordering::Release, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Whether every worker has acknowledged.
    pub fn all_done(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }
}

impl PartialEq for SecretAck {
    fn eq(&self, other: &SecretAck) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SecretAck {}

/// How long into an epoch the entry of the epoch just ended stays as it is: the XDP program
/// dates SYNs by `bpf_ktime_get_coarse_ns`, up to a tick (10 ms at HZ=100) behind the
/// control thread's clock, and a SYN whose epoch's entry was rewritten goes to an engine.
pub const COARSE_CLOCK_GRACE: Duration = Duration::from_millis(50);

/// What a [`KeySchedule::poll`] asks of the control thread, and what it did.
#[derive(Debug, Default)]
pub struct KeyEvents {
    /// The epoch that began since the last poll, if one did.
    pub epoch: Option<u64>,
    /// Send this secret to every worker, each to acknowledge it through the [`SecretAck`].
    pub tell: Option<(Secret, SecretAck)>,
    /// Every worker has the new secret: the program makes its cookies under it from this
    /// epoch on.
    pub switch_at: Option<u64>,
}

/// Where a secret replacement stands.
#[derive(Debug)]
enum Phase {
    /// Nothing under way.
    Steady,
    /// The workers were told `secret` and have not all acknowledged yet; the table keeps the
    /// old secret.
    Telling { secret: Secret, ack: SecretAck },
    /// The table has the new secret from epoch `until - 1` on; the next replacement may start
    /// in epoch `until`.
    Settling { until: u64 },
}

/// The control thread's schedule of the XDP program's key table.
#[derive(Debug)]
pub struct KeySchedule {
    /// The keys the table is written from.
    keys: CookieKeys,
    phase: Phase,
    /// A secret asked for while another replacement was under way: the latest wins.
    queued: Option<Secret>,
}

impl KeySchedule {
    /// The schedule of `keys` (the engines' keys at start).
    pub fn new(keys: CookieKeys) -> KeySchedule {
        KeySchedule {
            keys,
            phase: Phase::Steady,
            queued: None,
        }
    }

    /// The epoch whose keys are in use.
    pub fn epoch(&self) -> u64 {
        self.keys.epoch()
    }

    /// Fills the table for `now`'s epoch and the next (at start, before the program runs:
    /// the keys were made when the configuration was, maybe epochs ago).
    pub fn install(&mut self, now: Instant, table: &impl KeySlots) {
        self.keys.advance(now);
        let ts = timestamp_key(&self.keys.secret().0);
        let e = self.keys.epoch();
        for epoch in [e, e + 1] {
            table.write(epoch, &self.keys.key_of(epoch), &ts);
        }
    }

    /// Asks for `secret` to replace the current one; it starts at the next [`poll`] that may
    /// start it (a replacement under way is finished first).
    ///
    /// [`poll`]: KeySchedule::poll
    pub fn replace_secret(&mut self, secret: Secret) {
        self.queued = Some(secret);
    }

    /// Moves on to `now`: a new epoch's keys into the table, the replacement's next step.
    /// `workers` is how many workers a new secret must be told to. Call it often (the
    /// control loop does, every 100 ms or less; an epoch is at least a second).
    pub fn poll(&mut self, now: Instant, table: &impl KeySlots, workers: usize) -> KeyEvents {
        let mut events = KeyEvents::default();
        let before = self.keys.epoch();
        self.keys.advance(now);
        let epoch = self.keys.epoch();
        if epoch != before {
            events.epoch = Some(epoch);
        }
        match &self.phase {
            Phase::Telling { secret, ack } if ack.all_done() => {
                let secret = *secret;
                // Two entries cannot hold three epochs: one of these is free.
                let from = [epoch, epoch + 1]
                    .into_iter()
                    .find(|&e| table.epoch_at(e) != Some(e))
                    .unwrap_or(epoch + 2);
                self.keys.replace_secret(secret, now);
                self.phase = Phase::Settling { until: from + 1 };
                events.switch_at = Some(from);
            }
            Phase::Settling { until } if epoch >= *until => self.phase = Phase::Steady,
            _ => {}
        }
        if matches!(self.phase, Phase::Telling { .. }) {
            return events;
        }
        let complete = self.write_free(now, table);
        // The workers are told after the table's last writes under the old secret: the
        // engines keep that secret's keys of the epochs around theirs.
        if complete && matches!(self.phase, Phase::Steady) {
            if let Some(secret) = self.queued.take().filter(|s| s != self.keys.secret()) {
                let ack = SecretAck::new(workers);
                events.tell = Some((secret, ack.clone()));
                self.phase = Phase::Telling { secret, ack };
            }
        }
        events
    }

    /// Writes the keys of the current and the next epoch into the entries that do not hold
    /// those epochs already (an entry in use keeps its keys until its epoch is over, and
    /// [`COARSE_CLOCK_GRACE`] after). Returns whether both are in place.
    fn write_free(&self, now: Instant, table: &impl KeySlots) -> bool {
        let ts = timestamp_key(&self.keys.secret().0);
        let e = self.keys.epoch();
        let in_grace = self.keys.clock().into_epoch_us(now) < COARSE_CLOCK_GRACE.as_micros() as u64;
        let mut complete = true;
        for epoch in [e, e + 1] {
            let held = table.epoch_at(epoch);
            if held == Some(epoch) {
                continue;
            }
            if in_grace && held == e.checked_sub(1) {
                complete = false;
                continue;
            }
            table.write(epoch, &self.keys.key_of(epoch), &ts);
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::syncookie::{CookieClock, epoch_key};
    use std::cell::RefCell;
    use std::time::Duration;

    const A: Secret = Secret([0xa; 32]);
    const B: Secret = Secret([0xb; 32]);
    const C: Secret = Secret([0xc; 32]);

    /// The table as plain memory, with a log of the writes.
    #[derive(Default)]
    struct Table {
        entries: RefCell<[Option<(u64, Key)>; 2]>,
        writes: RefCell<Vec<u64>>,
    }

    impl KeySlots for Table {
        fn epoch_at(&self, epoch: u64) -> Option<u64> {
            self.entries.borrow()[(epoch % 2) as usize].map(|(e, _)| e)
        }
        fn write(&self, epoch: u64, mac: &Key, _timestamp: &Key) {
            self.entries.borrow_mut()[(epoch % 2) as usize] = Some((epoch, *mac));
            self.writes.borrow_mut().push(epoch);
        }
    }

    impl Table {
        /// Which of A, B, C the program makes cookies under in `epoch` (`None`: it passes
        /// SYNs to the engines).
        fn secret_of(&self, epoch: u64) -> Option<Secret> {
            let (e, key) = self.entries.borrow()[(epoch % 2) as usize]?;
            (e == epoch).then_some(())?;
            [A, B, C]
                .into_iter()
                .find(|s| epoch_key(&s.0, epoch) == key)
        }
    }

    /// Rotation every 10 s; the clock at the start of epoch 100.
    fn at(secs: u64) -> Instant {
        Instant::from_secs(1000 + secs)
    }

    fn schedule() -> (KeySchedule, Table) {
        let clock = CookieClock {
            offset_us: 0,
            rotation_us: 10_000_000,
        };
        let mut s = KeySchedule::new(CookieKeys::new(A, clock, at(0)));
        let t = Table::default();
        s.install(at(0), &t);
        (s, t)
    }

    #[test]
    fn rotation_writes_the_next_epoch_ahead_and_never_rewrites_an_entry_in_use() {
        let (mut s, t) = schedule();
        assert_eq!(*t.writes.borrow(), [100, 101]);
        assert_eq!(s.poll(at(5), &t, 1).epoch, None);
        assert_eq!(s.poll(at(10), &t, 1).epoch, Some(101));
        // The program's coarse clock may still say epoch 100 for a tick.
        let grace_ends = at(10) + COARSE_CLOCK_GRACE;
        s.poll(grace_ends - Duration::from_micros(1), &t, 1);
        assert_eq!(*t.writes.borrow(), [100, 101], "100 kept for the grace");
        assert_eq!(t.secret_of(100), Some(A));
        s.poll(grace_ends, &t, 1);
        assert_eq!(*t.writes.borrow(), [100, 101, 102], "101 was in place");
        assert_eq!(t.secret_of(102), Some(A));
    }

    #[test]
    fn install_writes_the_epochs_of_when_it_runs_not_of_when_the_keys_were_made() {
        let clock = CookieClock {
            offset_us: 0,
            rotation_us: 10_000_000,
        };
        let mut s = KeySchedule::new(CookieKeys::new(A, clock, at(0)));
        let t = Table::default();
        s.install(at(25), &t);
        assert_eq!(*t.writes.borrow(), [102, 103]);
        assert_eq!((t.secret_of(102), t.secret_of(103)), (Some(A), Some(A)));
        assert_eq!(s.poll(at(26), &t, 1).epoch, None, "already at 102");
        assert_eq!(*t.writes.borrow(), [102, 103]);
    }

    #[test]
    fn a_new_secret_is_told_only_once_the_next_epoch_s_entry_is_written() {
        let (mut s, t) = schedule();
        s.poll(at(5), &t, 1);
        s.replace_secret(B);
        // In the grace, entry 102 still holds 100: the workers are told after it is written.
        assert!(s.poll(at(10), &t, 1).tell.is_none());
        assert!(s.poll(at(10) + COARSE_CLOCK_GRACE, &t, 1).tell.is_some());
        assert_eq!(t.secret_of(102), Some(A));
    }

    #[test]
    fn a_new_secret_reaches_the_table_only_after_every_worker_has_it_and_then_a_free_entry() {
        let (mut s, t) = schedule();
        s.replace_secret(B);
        let ev = s.poll(at(1), &t, 2);
        let (secret, ack) = ev.tell.expect("the workers are told first");
        assert_eq!(secret, B);
        ack.done();
        // One worker has it, the other not yet: the program keeps the old secret, also
        // across an epoch boundary (no new entries of the old secret, either).
        for secs in [2, 10] {
            let ev = s.poll(at(secs), &t, 2);
            assert_eq!((ev.tell.is_some(), ev.switch_at), (false, None), "{secs} s");
        }
        assert_eq!(t.secret_of(101), Some(A), "101 was written before");
        assert_eq!(*t.writes.borrow(), [100, 101]);
        ack.done();
        // Entry 101 is in use (epoch 101): the new secret takes entry 102.
        assert_eq!(s.poll(at(11), &t, 2).switch_at, Some(102));
        assert_eq!(t.secret_of(101), Some(A));
        assert_eq!(t.secret_of(102), Some(B));
        s.poll(at(21), &t, 2);
        assert_eq!(t.secret_of(103), Some(B));
    }

    /// `B` asked for at 1 s, and the acknowledgement the one worker owes.
    fn b_told(s: &mut KeySchedule, t: &Table) -> SecretAck {
        s.replace_secret(B);
        s.poll(at(1), t, 1).tell.expect("the worker is told").1
    }

    #[test]
    fn a_worker_that_acknowledges_within_the_epoch_switches_the_program_at_the_epoch_after_next() {
        let (mut s, t) = schedule();
        b_told(&mut s, &t).done();
        // Entries 100 and 101 hold the old secret's keys already: 102 is the first free one.
        assert_eq!(s.poll(at(1), &t, 1).switch_at, Some(102));
        assert_eq!(t.secret_of(101), Some(A));
        s.poll(at(11), &t, 1);
        assert_eq!(t.secret_of(102), Some(B));
    }

    #[test]
    fn a_later_secret_waits_for_the_epoch_after_the_switch_and_the_latest_wins() {
        let (mut s, t) = schedule();
        let ack = b_told(&mut s, &t);
        s.replace_secret(C);
        s.replace_secret(A);
        s.replace_secret(C);
        ack.done();
        assert_eq!(s.poll(at(2), &t, 1).switch_at, Some(102));
        for secs in [3, 10, 20, 29] {
            assert!(
                s.poll(at(secs), &t, 1).tell.is_none(),
                "{secs} s: too early"
            );
        }
        let (secret, _) = s.poll(at(31), &t, 1).tell.expect("epoch 103: C starts");
        assert_eq!(secret, C);
        assert_eq!(t.secret_of(103), Some(B));
    }

    #[test]
    fn the_same_secret_again_changes_nothing() {
        let (mut s, t) = schedule();
        s.replace_secret(A);
        let ev = s.poll(at(1) + Duration::from_millis(1), &t, 1);
        assert!(ev.tell.is_none());
        assert_eq!(*t.writes.borrow(), [100, 101]);
    }

    #[test]
    fn with_no_worker_to_tell_the_switch_follows_at_once() {
        let (mut s, t) = schedule();
        s.replace_secret(B);
        let ev = s.poll(at(1), &t, 0);
        assert!(ev.tell.is_some());
        assert_eq!(s.poll(at(1), &t, 0).switch_at, Some(102));
    }
}
