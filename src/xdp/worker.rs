//! One worker: a thread pinned to a core that owns one AF_XDP socket and one handler (the
//! engine), and runs the receive / timers / transmit loop of the data path.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::stats::{Latencies, LatencyKind, Stats};
use crate::time::Instant;
use crate::tx::Tx;
use crate::xdp::capture::{Tap, TapCounters};
use crate::xdp::shared_maps::QueueFlag;
use crate::xdp::socket::{FrameAccount, SocketCounters, XskSocket};
use crate::xdp::sys::monotonic_now;

/// What a worker drives: the sans-IO engine, or anything shaped like it.
pub trait Handler {
    /// One received Ethernet frame.
    fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T);
    /// Runs the timers that are due.
    fn poll_timers<T: Tx>(&mut self, now: Instant, tx: &mut T);
    /// When the next timer is due, if any.
    fn next_deadline(&self) -> Option<Instant>;
    /// A copy of the counters.
    fn stats(&self) -> Stats;
    /// Stop accepting new connections; existing ones go on.
    fn stop_accepting(&mut self) {}
    /// Switch to a new SYN-cookie secret at `now` (cookies made under the old one stay
    /// valid for the rest of the next rotation epoch).
    fn replace_cookie_secret(&mut self, now: Instant, secret: [u8; 32]) {
        let _ = (now, secret);
    }
    /// Whether SYNs of this worker's queue should be answered by the XDP program with SYN
    /// cookies, given how many it has answered so far (`xdp_cookies`). Asked after every
    /// batch; the worker sets the queue's flag to the answer.
    fn cookie_mode(&mut self, now: Instant, xdp_cookies: u64) -> bool {
        let _ = (now, xdp_cookies);
        false
    }
    /// Replies written so far were handed to the TX ring at `now`.
    fn flushed(&mut self, now: Instant) {
        let _ = now;
    }
    /// Moves the latencies recorded since the last call into `into`.
    fn take_latencies(&mut self, into: &mut Latencies) {
        let _ = into;
    }
    /// Application counters, as (name, value).
    fn app_counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// What the control thread tells a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Stop accepting new connections.
    StopAccepting,
    /// Replace the SYN-cookie secret (a `--cookie-secret-file` that changed).
    ReplaceCookieSecret([u8; 32]),
    /// Leave the loop and hand the final snapshot back.
    Stop,
}

/// A worker's state, as sent to the control thread about every 100 ms and once at the end.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The queue (and worker) index.
    pub queue: u32,
    /// The handler's counters.
    pub stats: Stats,
    /// The socket's traffic counters.
    pub socket: SocketCounters,
    /// Where the UMEM frames are.
    pub frames: FrameAccount,
    /// Latencies recorded since the previous snapshot (a delta: the receiver adds them up).
    pub latencies: Latencies,
    /// The application's counters.
    pub app: Vec<(&'static str, u64)>,
    /// The pcap tap's counters (zero without `--pcap`).
    pub capture: TapCounters,
    /// Whether this is the last snapshot of a stopped worker.
    pub last: bool,
}

/// How often a worker reports.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the data-path loop until [`Control::Stop`] arrives or the control side hangs up.
/// With a `tap`, every frame received or sent is also copied into the capture queue; `flag` is
/// the queue's cookie-mode flag in the XDP program, if it has one.
pub fn run<H: Handler>(
    socket: &mut XskSocket,
    handler: &mut H,
    mut tap: Option<Tap>,
    flag: Option<&QueueFlag>,
    control: &Receiver<Control>,
    snapshots: &Sender<Snapshot>,
) {
    let mut next_snapshot = monotonic_now() + SNAPSHOT_INTERVAL;
    let mut latencies = Latencies::default();
    let mut cookie_mode = flag.is_some_and(QueueFlag::cookie_mode);
    loop {
        match control.try_recv() {
            Ok(Control::Stop) | Err(TryRecvError::Disconnected) => break,
            Ok(Control::StopAccepting) => handler.stop_accepting(),
            Ok(Control::ReplaceCookieSecret(secret)) => {
                handler.replace_cookie_secret(monotonic_now(), secret);
            }
            Err(TryRecvError::Empty) => {}
        }
        let batch_start = monotonic_now();
        let received = match tap.as_mut() {
            None => socket.receive_batch(|frame, tx| handler.receive(batch_start, frame, tx)),
            Some(tap) => socket.receive_batch(|frame, tx| {
                tap.copy(batch_start, frame);
                handler.receive(batch_start, frame, &mut tap.tx(tx, batch_start));
            }),
        };
        let now = monotonic_now();
        if handler.next_deadline().is_some_and(|d| d <= now) {
            match tap.as_mut() {
                None => handler.poll_timers(now, &mut socket.tx()),
                Some(tap) => handler.poll_timers(now, &mut tap.tx(&mut socket.tx(), now)),
            }
        }
        if let Some(flag) = flag {
            let want = handler.cookie_mode(now, flag.cookies());
            if want != cookie_mode {
                flag.set_cookie_mode(want);
                cookie_mode = want;
            }
        }
        // A failed kick (ENOBUFS and friends are already absorbed) leaves frames pending for
        // the next round; nothing to do but try again.
        let _ = socket.flush();
        if received > 0 {
            let flushed = monotonic_now();
            handler.flushed(flushed);
            latencies.record(LatencyKind::RxBatch, flushed - batch_start);
        }
        if now >= next_snapshot {
            let _ = snapshots.send(snapshot(socket, handler, &tap, &mut latencies, false));
            next_snapshot = now + SNAPSHOT_INTERVAL;
        }
        if received == 0 {
            idle_wait(socket, handler, now, next_snapshot);
        }
    }
    if let Some(flag) = flag {
        flag.set_cookie_mode(false);
    }
    // Give in-flight replies a moment to leave (bounded), then report.
    for _ in 0..100 {
        if socket.flush().is_err() || socket.tx_in_flight() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = snapshots.send(snapshot(socket, handler, &tap, &mut latencies, true));
}

fn snapshot<H: Handler>(
    socket: &XskSocket,
    handler: &mut H,
    tap: &Option<Tap>,
    latencies: &mut Latencies,
    last: bool,
) -> Snapshot {
    handler.take_latencies(latencies);
    let delta = latencies.clone();
    latencies.reset();
    Snapshot {
        queue: socket.queue(),
        stats: handler.stats(),
        socket: socket.counters(),
        frames: socket.account(),
        latencies: delta,
        app: handler.app_counters(),
        capture: tap.as_ref().map(Tap::counters).unwrap_or_default(),
        last,
    }
}

/// Sleeps in `poll()` until a frame arrives, the next timer is due or the next snapshot (which
/// is also when control messages are looked at). The poll also wakes the driver when the fill
/// ring needs it (need_wakeup).
fn idle_wait<H: Handler>(socket: &mut XskSocket, handler: &H, now: Instant, next: Instant) {
    let mut until = next;
    if let Some(d) = handler.next_deadline() {
        until = until.min(d);
    }
    let mut timeout = until.saturating_since(now);
    if socket.tx_in_flight() > 0 {
        timeout = timeout.min(Duration::from_millis(1));
    }
    let timeout_ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    if timeout_ms == 0 && !socket.fill_needs_wakeup() {
        return;
    }
    let mut pfd = libc::pollfd {
        fd: socket.fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Safety: `pfd` is one valid pollfd for the duration of the call. EINTR (a signal) just
    // ends the wait early, which is what we want.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

/// The worker drives the sans-IO engine directly.
impl<A: crate::app::App> Handler for crate::tcp::Engine<A> {
    fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        crate::tcp::Engine::receive(self, now, frame, tx);
    }

    fn poll_timers<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        crate::tcp::Engine::poll_timers(self, now, tx);
    }

    fn next_deadline(&self) -> Option<Instant> {
        crate::tcp::Engine::next_deadline(self)
    }

    fn stats(&self) -> Stats {
        crate::tcp::Engine::stats(self).clone()
    }

    fn stop_accepting(&mut self) {
        crate::tcp::Engine::stop_accepting(self);
    }

    fn flushed(&mut self, now: Instant) {
        crate::tcp::Engine::flushed(self, now);
    }

    fn take_latencies(&mut self, into: &mut Latencies) {
        crate::tcp::Engine::take_latencies(self, into);
    }

    fn app_counters(&self) -> Vec<(&'static str, u64)> {
        self.app().counters()
    }

    fn replace_cookie_secret(&mut self, now: Instant, secret: [u8; 32]) {
        crate::tcp::Engine::replace_cookie_secret(self, now, secret);
    }

    fn cookie_mode(&mut self, now: Instant, xdp_cookies: u64) -> bool {
        crate::tcp::Engine::poll_cookie_mode(self, now, xdp_cookies)
    }
}

/// The worker drives the load generator like an engine.
impl<A: crate::app::App> Handler for crate::load::LoadGen<A> {
    fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        crate::load::LoadGen::receive(self, now, frame, tx);
    }

    fn poll_timers<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        crate::load::LoadGen::poll_timers(self, now, tx);
    }

    fn next_deadline(&self) -> Option<Instant> {
        crate::load::LoadGen::next_deadline(self)
    }

    fn stats(&self) -> Stats {
        crate::load::LoadGen::stats(self).clone()
    }

    fn stop_accepting(&mut self) {
        self.stop();
    }

    fn flushed(&mut self, now: Instant) {
        self.engine.flushed(now);
    }

    fn take_latencies(&mut self, into: &mut Latencies) {
        self.engine.take_latencies(into);
    }

    fn app_counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = self.engine.app().counters();
        c.push(("opened", self.opened()));
        c.push(("in_flight", self.engine.connections() as u64));
        c
    }
}
