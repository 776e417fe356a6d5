//! Threads and time around the [`Stack`].
//!
//! packetdrill calls from its main thread, and, for calls a script gives an end time
//! (`0...0.2 accept(...)`), from a second thread that must really block: the main thread only
//! goes on once that thread sleeps. So:
//!
//! - the clock is virtual: `gettimeofday` moves it on by 1 µs (packetdrill spins on it),
//!   `usleep` by the amount asked, and `netdev_receive` to the engine's next timer when
//!   nothing is queued; every timer fires at its own instant on the way;
//! - a blocking call on another thread parks on a condition variable; whenever the stack
//!   changes, parked calls are woken and re-checked, and whoever changed it waits until they
//!   have (the "quiet" wait), so a call that can complete completes at the virtual instant
//!   that made it possible, and returns that instant from its thread's next `gettimeofday`
//!   (packetdrill reads the end time right after the call);
//! - a blocking call on the main thread cannot wait for packets (the main thread is the one
//!   that would inject them), so it runs the clock through the engine's timers instead, as a
//!   kernel socket would sleep through them; with no timer left it fails with `EAGAIN`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Duration;

use xdptcp::time::Instant;

use crate::flags::Options;
use crate::stack::{Errno, FdSource, Stack, SysResult};

/// Where the virtual clock starts.
pub const START: Instant = Instant::from_secs(100);
/// What `gettimeofday` adds to the virtual clock (µs): a plausible wall-clock time.
pub const EPOCH_MICROS: i64 = 1_700_000_000_000_000;
/// How long the quiet wait lets another thread stay busy before going on regardless.
const QUIET_LIMIT: Duration = Duration::from_secs(5);

/// What `netdev_receive` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A packet the engine sent, and when.
    Packet(Vec<u8>, Instant),
    /// Another thread is inside a call and may still send: ask again.
    Busy,
    /// Nothing queued and no timer left: nothing will ever come.
    Nothing,
}

struct Shared {
    stack: Stack,
    /// Bumped whenever the stack changed; parked calls re-check on a new generation.
    generation: u64,
    /// Threads inside a call that are not parked (and not in a quiet wait).
    busy: usize,
    /// Threads parked at the current generation.
    parked: usize,
    /// Deadlines of parked calls with a timeout (`poll`, `epoll_wait`), with their counts.
    wake_at: BTreeMap<Instant, usize>,
    /// When a thread's blocking call completed: its next `gettimeofday` returns this.
    returned_at: HashMap<ThreadId, Instant>,
}

/// The shim's whole state, behind the one handle packetdrill keeps as `userdata`.
pub struct Shim {
    shared: Mutex<Shared>,
    changed: Condvar,
    quiet: Condvar,
    main: ThreadId,
    /// Where the run's calls and packets go as fuzzer seeds, when recording.
    record_dir: Option<PathBuf>,
}

type Guard<'a> = MutexGuard<'a, Shared>;

impl Shim {
    /// A fresh stack; the calling thread owns the clock.
    pub fn new(opts: &Options, fds: FdSource) -> Shim {
        Self::recording(opts, fds, None)
    }

    /// A fresh stack that records its calls and packets ([`crate::ops`]) and writes them to
    /// `DIR/PID.ops` when dropped, if `record_dir` is set.
    pub fn recording(opts: &Options, fds: FdSource, record_dir: Option<PathBuf>) -> Shim {
        let mut stack = Stack::new(opts, fds, START);
        if record_dir.is_some() {
            stack.start_recording();
        }
        Shim {
            record_dir,
            shared: Mutex::new(Shared {
                stack,
                generation: 0,
                busy: 0,
                parked: 0,
                wake_at: BTreeMap::new(),
                returned_at: HashMap::new(),
            }),
            changed: Condvar::new(),
            quiet: Condvar::new(),
            main: thread::current().id(),
        }
    }

    fn lock(&self) -> Guard<'_> {
        // A panic inside a call already failed that call; the state it left is what the next
        // call sees (the engine itself never panics on input).
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self) -> Guard<'_> {
        let mut g = self.lock();
        g.busy += 1;
        g
    }

    fn leave(&self, mut g: Guard<'_>) {
        g.busy -= 1;
        drop(g);
        self.quiet.notify_all();
    }

    fn on_main(&self) -> bool {
        thread::current().id() == self.main
    }

    /// A call that never blocks.
    pub fn call<T>(&self, f: impl FnOnce(&mut Stack) -> T) -> T {
        let mut g = self.enter();
        let r = f(&mut g.stack);
        let g = self.publish(g);
        self.leave(g);
        r
    }

    /// Wakes parked calls if the stack changed, and waits until they have looked.
    fn publish<'a>(&'a self, mut g: Guard<'a>) -> Guard<'a> {
        if !g.stack.take_dirty() {
            return g;
        }
        self.wake_all(&mut g);
        self.wait_quiet(g)
    }

    fn wake_all(&self, g: &mut Guard<'_>) {
        g.generation += 1;
        g.busy += g.parked;
        g.parked = 0;
        self.changed.notify_all();
    }

    fn wait_quiet<'a>(&'a self, mut g: Guard<'a>) -> Guard<'a> {
        g.busy -= 1;
        let start = std::time::Instant::now();
        while g.busy > 0 {
            if start.elapsed() > QUIET_LIMIT {
                eprintln!("xdptcp shim: another thread stayed busy for {QUIET_LIMIT:?}; going on");
                break;
            }
            g = self
                .quiet
                .wait_timeout(g, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        g.busy += 1;
        g
    }

    /// The earliest instant something is due: an engine timer or a parked call's timeout.
    fn next_due(g: &Shared) -> Option<Instant> {
        let waiter = g.wake_at.keys().next().copied();
        match (g.stack.next_deadline(), waiter) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the clock to `target`, firing every timer and timeout at its own instant.
    fn advance<'a>(&'a self, mut g: Guard<'a>, target: Instant) -> Guard<'a> {
        let mut stuck = 0;
        while let Some(t) = Self::next_due(&g).filter(|t| *t <= target) {
            let now = g.stack.now();
            let t = t.max(now);
            g.stack.advance_to(t);
            if g.wake_at.keys().next().is_some_and(|w| *w <= t) {
                self.wake_all(&mut g);
                g = self.wait_quiet(g);
            }
            g = self.publish(g);
            // A deadline at the current instant that polling did not clear: go on in time.
            stuck = if t == now { stuck + 1 } else { 0 };
            if stuck > 2 {
                break;
            }
        }
        g.stack.advance_to(target);
        self.publish(g)
    }

    /// A call that may block: `op` is retried until it returns anything but
    /// [`Errno::BLOCK`]; `Ok(None)` when `timeout` (virtual) passed first.
    pub fn blocking<T>(
        &self,
        timeout: Option<Duration>,
        mut op: impl FnMut(&mut Stack) -> SysResult<T>,
    ) -> SysResult<Option<T>> {
        let mut g = self.enter();
        let deadline = timeout.map(|d| g.stack.now() + d);
        let main = self.on_main();
        let mut waited = false;
        let result = loop {
            let r = op(&mut g.stack);
            g = self.publish(g);
            match r {
                Err(Errno::BLOCK) => {}
                r => break r.map(Some),
            }
            let now = g.stack.now();
            if deadline.is_some_and(|d| now >= d) {
                break Ok(None);
            }
            if main {
                // Only timers can change anything now: sleep through the next one.
                let next = match (g.stack.next_deadline(), deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let Some(t) = next else {
                    eprintln!(
                        "xdptcp shim: a blocking call on packetdrill's main thread would wait \
                         forever (nothing due at virtual time {} µs); give it an end time \
                         (`0...1 call`) or make the socket non-blocking",
                        now.total_micros()
                    );
                    break Err(Errno::AGAIN);
                };
                g = self.advance(g, t.max(now));
                continue;
            }
            waited = true;
            if let Some(d) = deadline {
                *g.wake_at.entry(d).or_default() += 1;
            }
            g.parked += 1;
            g.busy -= 1;
            self.quiet.notify_all();
            let generation = g.generation;
            while g.generation == generation {
                g = self.changed.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
            // `wake_all` counted this thread busy again.
            if let Some(d) = deadline {
                if let Some(n) = g.wake_at.get_mut(&d) {
                    *n -= 1;
                    if *n == 0 {
                        g.wake_at.remove(&d);
                    }
                }
            }
        };
        if waited {
            let now = g.stack.now();
            g.returned_at.insert(thread::current().id(), now);
        }
        self.leave(g);
        result
    }

    /// `gettimeofday`: microseconds on the virtual clock (plus [`EPOCH_MICROS`]); the clock
    /// moves on by 1 µs, firing what falls due. Whichever thread packetdrill is running spins on
    /// it while waiting for an event's time (the syscall thread does too, for a blocking call
    /// scheduled later, while the main thread waits for it), so every thread's call moves it.
    pub fn gettimeofday(&self) -> i64 {
        let mut g = self.enter();
        let me = thread::current().id();
        let t = match g.returned_at.remove(&me) {
            Some(t) => t,
            None => {
                let target = g.stack.now() + Duration::from_micros(1);
                g = self.advance(g, target);
                g.stack.now()
            }
        };
        self.leave(g);
        EPOCH_MICROS + t.total_micros() as i64
    }

    /// `usleep`: the clock moves on by `micros`, firing what falls due.
    pub fn usleep(&self, micros: u64) {
        let g = self.enter();
        let target = g.stack.now() + Duration::from_micros(micros);
        let g = self.advance(g, target);
        self.leave(g);
    }

    /// `netdev_receive`: the next packet the engine sent; if none is queued, the clock runs to
    /// the next timer.
    pub fn netdev_receive(&self) -> Received {
        let mut g = self.enter();
        let received = loop {
            if let Some((p, t)) = g.stack.netdev_receive() {
                break Received::Packet(p, t);
            }
            if g.busy > 1 {
                break Received::Busy;
            }
            let now = g.stack.now();
            match Self::next_due(&g) {
                None => break Received::Nothing,
                Some(t) => {
                    g = self.advance(g, t.max(now));
                    if g.stack.now() == now && Self::next_due(&g).is_some_and(|d| d <= now) {
                        // Nothing moved and nothing came: a timer that fires no packet.
                        g.stack.advance_to(now + Duration::from_millis(1));
                    }
                }
            }
        };
        self.leave(g);
        if received == Received::Busy {
            thread::yield_now();
        }
        received
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let Some(dir) = &self.record_dir else {
            return;
        };
        let recording = self.lock().stack.take_recording().unwrap_or_default();
        let path = dir.join(format!("{}.ops", std::process::id()));
        if let Err(e) = std::fs::write(&path, recording) {
            eprintln!(
                "xdptcp shim: cannot write the recording {}: {e}",
                path.display()
            );
        }
    }
}
