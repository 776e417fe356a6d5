//! One worker: a thread pinned to a core that owns one AF_XDP socket and one handler (the
//! engine), and runs the receive / timers / transmit loop of the data path.

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Select, Sender, TryRecvError, TrySendError};

use crate::stats::{Latencies, LatencyKind, Memory, Stats};
use crate::tcp::Secret;
use crate::time::Instant;
use crate::tx::Tx;
use crate::xdp::capture::{Tap, TapCounters};
use crate::xdp::key_schedule::SecretAck;
use crate::xdp::ring::Rings;
use crate::xdp::shared_maps::QueueFlag;
use crate::xdp::socket::{FrameAccount, SocketCounters, XskSocket};
use crate::xdp::sys::{monotonic_now, release_free_memory};

/// What a worker drives: the sans-IO engine, or anything shaped like it.
pub trait Handler {
    /// One received Ethernet frame.
    fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T);
    /// The frames of one RX batch follow, until [`Handler::end_batch`].
    fn begin_batch(&mut self) {}
    /// The RX batch is over: send what was held for its end.
    fn end_batch<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        let _ = (now, tx);
    }
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
    fn replace_cookie_secret(&mut self, now: Instant, secret: Secret) {
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
    /// What the connections cost in memory now (walks them: asked about once a second).
    fn memory(&self) -> Memory {
        Memory::default()
    }
    /// Whether the handler holds more than half its memory budget: while it does, and once
    /// when it falls below, the worker gives the allocator's free pages back to the system at
    /// each snapshot.
    fn memory_above_half(&self) -> bool {
        false
    }
}

/// What the control thread tells a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Stop accepting new connections.
    StopAccepting,
    /// Replace the SYN-cookie secret (a `--cookie-secret-file` that changed), then
    /// acknowledge it: the XDP program takes the secret once every worker has.
    ReplaceCookieSecret(Secret, SecretAck),
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
    /// What the connections cost in memory, in every [`MEMORY_EVERY`]th snapshot and the last.
    pub memory: Option<Memory>,
    /// The pcap tap's counters (zero without `--pcap`).
    pub capture: TapCounters,
    /// Whether this is the last snapshot of a stopped worker.
    pub last: bool,
}

impl Snapshot {
    /// Takes in an older snapshot of the same worker that was never delivered: its latencies
    /// (deltas) are added to ours, and its memory figures kept if we carry none. Every other
    /// field is cumulative, so ours already counts what it counted.
    fn absorb(&mut self, older: Snapshot) {
        self.latencies.merge(&older.latencies);
        if self.memory.is_none() {
            self.memory = older.memory;
        }
    }
}

/// A worker's end of its snapshot channel, which holds one snapshot: a new snapshot replaces
/// one the control thread has not taken yet, adding the replaced one's latencies (deltas) to
/// its own and keeping its memory figures if it carries none (every other field is
/// cumulative), so a control thread that falls behind costs one snapshot per worker, never a
/// queue of them, and loses no latency count.
#[derive(Debug, Clone)]
pub struct SnapshotSender {
    tx: Sender<Snapshot>,
    /// Our own receiving end, to take back the snapshot we replace.
    rx: Receiver<Snapshot>,
}

impl SnapshotSender {
    /// Delivers `snapshot`, replacing the one still waiting, if any. Never blocks: only this
    /// worker sends on the channel, so once the waiting snapshot is gone (taken back here, or
    /// by the control thread meanwhile) there is room.
    pub fn send(&self, mut snapshot: Snapshot) {
        loop {
            match self.tx.try_send(snapshot) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(back)) => {
                    snapshot = back;
                    if let Ok(older) = self.rx.try_recv() {
                        snapshot.absorb(older);
                    }
                }
            }
        }
    }
}

/// One worker's snapshot channel: the worker's end and the control thread's.
pub fn snapshot_channel() -> (SnapshotSender, Receiver<Snapshot>) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    (SnapshotSender { tx, rx: rx.clone() }, rx)
}

/// The control thread's ends of every worker's snapshot channel.
#[derive(Debug, Default)]
pub struct Snapshots {
    channels: Vec<Receiver<Snapshot>>,
}

impl Snapshots {
    /// A channel for one more worker: its end.
    pub fn add(&mut self) -> SnapshotSender {
        let (tx, rx) = snapshot_channel();
        self.channels.push(rx);
        tx
    }

    /// A snapshot waiting on any channel, if there is one.
    pub fn try_recv(&self) -> Result<Snapshot, TryRecvError> {
        self.channels
            .iter()
            .find_map(|c| c.try_recv().ok())
            .ok_or(TryRecvError::Empty)
    }

    /// The first snapshot to arrive on any channel within `wait`.
    pub fn recv_timeout(&self, wait: Duration) -> Result<Snapshot, RecvTimeoutError> {
        let deadline = std::time::Instant::now() + wait;
        let mut select = Select::new();
        for c in &self.channels {
            select.recv(c);
        }
        loop {
            let ready = select
                .ready_deadline(deadline)
                .map_err(|_| RecvTimeoutError::Timeout)?;
            match self.channels[ready].try_recv() {
                Ok(s) => return Ok(s),
                // A worker that ended (it panicked: `Server::supervise` finds out) leaves its
                // channel ready for ever: wait on the others only, or the wait never ends.
                Err(TryRecvError::Disconnected) => select.remove(ready),
                // Ready means a snapshot was there; our own worker may have taken it back to
                // replace it since, in which case its replacement is on the way.
                Err(TryRecvError::Empty) => {}
            }
        }
    }
}

/// How often a worker reports.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);

/// One snapshot in this many carries the memory figures (walking 200 000 connections takes a
/// few milliseconds: once a second, not ten times).
pub const MEMORY_EVERY: u32 = 10;

/// Runs the data-path loop until [`Control::Stop`] arrives or the control side hangs up.
/// With a `tap`, every frame received or sent is also copied into the capture queue; `flag` is
/// the queue's cookie-mode flag in the XDP program, if it has one.
pub fn run<H: Handler, R: Rings>(
    socket: &mut XskSocket<R>,
    handler: &mut H,
    mut tap: Option<Tap>,
    flag: Option<&QueueFlag>,
    control: &Receiver<Control>,
    snapshots: &SnapshotSender,
) {
    let mut next_snapshot = monotonic_now() + SNAPSHOT_INTERVAL;
    let mut snapshots_sent = 0u32;
    let mut latencies = Latencies::default();
    let mut cookie_mode = flag.is_some_and(QueueFlag::cookie_mode);
    let mut was_high = false;
    #[cfg(feature = "test-hooks")]
    let panic_on_frame = test_hooks::panics_on_first_frame(socket.queue());
    loop {
        match control.try_recv() {
            Ok(Control::Stop) | Err(TryRecvError::Disconnected) => break,
            Ok(Control::StopAccepting) => handler.stop_accepting(),
            Ok(Control::ReplaceCookieSecret(secret, ack)) => {
                handler.replace_cookie_secret(monotonic_now(), secret);
                ack.done();
            }
            Err(TryRecvError::Empty) => {}
        }
        let batch_start = monotonic_now();
        handler.begin_batch();
        let received = match tap.as_mut() {
            None => socket.receive_batch(|frame, tx| handler.receive(batch_start, frame, tx)),
            Some(tap) => socket.receive_batch(|frame, tx| {
                tap.copy(batch_start, frame);
                handler.receive(batch_start, frame, &mut tap.tx(tx, batch_start));
            }),
        };
        #[cfg(feature = "test-hooks")]
        if received > 0 && panic_on_frame {
            panic!("a worker bug made on purpose (XDPTCP_TEST_PANIC_QUEUE)");
        }
        match tap.as_mut() {
            None => handler.end_batch(batch_start, &mut socket.tx()),
            Some(tap) => handler.end_batch(batch_start, &mut tap.tx(&mut socket.tx(), batch_start)),
        }
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
            let with_memory = snapshots_sent % MEMORY_EVERY == 0;
            snapshots.send(snapshot(
                socket,
                handler,
                &tap,
                &mut latencies,
                with_memory,
                false,
            ));
            snapshots_sent = snapshots_sent.wrapping_add(1);
            next_snapshot = now + SNAPSHOT_INTERVAL;
            // The budget counts what is allocated; buffers freed as connections drain leave
            // holes in the heap that are free but still resident. In the budget's upper half
            // (pressure and the limit), where the budget is meant to bound the process's
            // growth, they go back to the system.
            let high = handler.memory_above_half();
            if high || was_high {
                release_free_memory();
            }
            was_high = high;
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
    snapshots.send(snapshot(socket, handler, &tap, &mut latencies, true, true));
}

/// Test builds only: hooks that break a worker on purpose, so that interop tests can watch
/// what a worker bug does to the whole process. Compiled with the cargo feature `test-hooks`,
/// which nothing turns on but this crate's own dev-dependency on itself (so `cargo build`,
/// `cargo build --release --bin xdptcp` and `cargo install` never compile it in).
#[cfg(feature = "test-hooks")]
mod test_hooks {
    /// Whether the worker of `queue` is to panic on the first frame it receives
    /// (`XDPTCP_TEST_PANIC_QUEUE=QUEUE`).
    pub(super) fn panics_on_first_frame(queue: u32) -> bool {
        std::env::var("XDPTCP_TEST_PANIC_QUEUE")
            .ok()
            .and_then(|v| v.parse().ok())
            == Some(queue)
    }
}

fn snapshot<H: Handler, R: Rings>(
    socket: &XskSocket<R>,
    handler: &mut H,
    tap: &Option<Tap>,
    latencies: &mut Latencies,
    with_memory: bool,
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
        memory: with_memory.then(|| handler.memory()),
        capture: tap.as_ref().map(Tap::counters).unwrap_or_default(),
        last,
    }
}

/// Sleeps in `poll()` until a frame arrives, the next timer is due or the next snapshot (which
/// is also when control messages are looked at). The poll also wakes the driver when the fill
/// ring needs it (need_wakeup).
fn idle_wait<H: Handler, R: Rings>(
    socket: &mut XskSocket<R>,
    handler: &H,
    now: Instant,
    next: Instant,
) {
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
    socket.wait(timeout_ms);
}

/// The worker drives the sans-IO engine directly.
impl<A: crate::tcp::contract::App> Handler for crate::tcp::Engine<A> {
    fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        crate::tcp::Engine::receive(self, now, frame, tx);
    }

    fn begin_batch(&mut self) {
        crate::tcp::Engine::begin_batch(self);
    }

    fn end_batch<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        crate::tcp::Engine::end_batch(self, now, tx);
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

    fn memory(&self) -> Memory {
        crate::tcp::Engine::memory(self)
    }

    fn memory_above_half(&self) -> bool {
        crate::tcp::Engine::memory_above_half(self)
    }

    fn replace_cookie_secret(&mut self, now: Instant, secret: Secret) {
        crate::tcp::Engine::replace_cookie_secret(self, now, secret);
    }

    fn cookie_mode(&mut self, now: Instant, xdp_cookies: u64) -> bool {
        crate::tcp::Engine::poll_cookie_mode(self, now, xdp_cookies)
    }
}

/// The worker drives the load generator like an engine.
impl<A: crate::tcp::contract::App> Handler for crate::load::LoadGen<A> {
    fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        crate::load::LoadGen::receive(self, now, frame, tx);
    }

    fn begin_batch(&mut self) {
        self.engine.begin_batch();
    }

    fn end_batch<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.engine.end_batch(now, tx);
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
        c.push(("ready", u64::from(self.ready_at().is_some())));
        c.push(("ports_in_use", self.ports_in_use()));
        c
    }

    fn memory(&self) -> Memory {
        self.engine.memory()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::app::echo::Echo;
    use crate::tcp::{Config, Engine, Listener};
    use crate::wire::SeqNumber;
    use crate::wire::tcp::{Flags, Options, Repr as TcpRepr};
    use crate::wire::{IPPROTO_TCP, IpRepr, TcpFrame, ethernet, ipv4};
    use crate::xdp::ring::testing::{self, Kernel};

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const PORT: u16 = 7;

    /// A frame from the client to the server.
    fn frame(seq: u32, ack: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
        frame_from(40_000, seq, ack, flags, payload)
    }

    /// A frame from the client's port `port` to the server.
    fn frame_from(port: u16, seq: u32, ack: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
        let f = TcpFrame {
            eth: ethernet::Repr {
                dst: SERVER_MAC,
                src: CLIENT_MAC,
                vlan: None,
                ethertype: ethernet::ETHERTYPE_IPV4,
            },
            ip: IpRepr::V4(ipv4::Repr {
                src: CLIENT,
                dst: SERVER,
                protocol: IPPROTO_TCP,
                payload_len: 0,
                ttl: 64,
            }),
            tcp: TcpRepr {
                src_port: port,
                dst_port: PORT,
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                flags,
                window: 65_535,
                options: Options {
                    mss: flags.contains(Flags::SYN).then_some(1460),
                    ..Options::default()
                },
                payload,
            },
        };
        let mut buf = vec![0; f.buffer_len()];
        f.emit(&mut buf);
        buf
    }

    /// Plays the kernel until the worker has sent `n` frames (bounded generously in time).
    fn sent(kernel: &Kernel, n: usize) -> Vec<Vec<u8>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while out.len() < n && std::time::Instant::now() < deadline {
            out.extend(kernel.transmit());
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out.len(), n, "frames sent by the worker: {out:?}");
        out
    }

    /// The echo server at SERVER:PORT the tests' frames are for.
    fn server_config() -> Config {
        Config {
            local_mac: SERVER_MAC,
            listeners: vec![Listener {
                addr: Some(IpAddr::V4(SERVER)),
                port: PORT,
                keepalive: None,
                fastopen: None,
                options: Default::default(),
            }],
            secret: Secret([3; 32]),
            ..Config::default()
        }
    }

    /// A snapshot of queue 0 whose stats say `rx` frames and whose latencies hold one
    /// handshake of `us` µs.
    fn snapshot_of(rx: u64, us: u64, memory: Option<Memory>) -> Snapshot {
        let mut latencies = Latencies::default();
        latencies.record(LatencyKind::Handshake, Duration::from_micros(us));
        Snapshot {
            queue: 0,
            stats: Stats::default(),
            socket: SocketCounters {
                rx_frames: rx,
                ..SocketCounters::default()
            },
            frames: FrameAccount::default(),
            latencies,
            app: Vec::new(),
            memory,
            capture: TapCounters::default(),
            last: false,
        }
    }

    #[test]
    fn snapshots_not_taken_are_replaced_by_the_latest_keeping_every_latency_count() {
        let (tx, rx) = snapshot_channel();
        let memory = Memory {
            connections: 7,
            ..Memory::default()
        };
        // A control thread that took nothing for a thousand snapshots holds one.
        tx.send(snapshot_of(1, 10, Some(memory)));
        for i in 2..=1000 {
            tx.send(snapshot_of(i, 10 * i, None));
        }
        let s = rx.try_recv().expect("the latest snapshot");
        assert!(rx.try_recv().is_err(), "one snapshot waits, not a queue");
        assert_eq!(s.socket.rx_frames, 1000, "the counters are the latest");
        let h = s.latencies.get(LatencyKind::Handshake);
        assert_eq!(h.len(), 1000, "no latency of a replaced snapshot is lost");
        assert_eq!(h.min(), h.lowest_equivalent(10_000));
        assert_eq!(s.memory, Some(memory), "the last memory figures are kept");
        // Taken in time, each arrives as it was.
        tx.send(snapshot_of(1001, 5, None));
        let next = rx.try_recv().unwrap();
        assert_eq!(next.latencies.get(LatencyKind::Handshake).len(), 1);
        assert_eq!(next.memory, None);
    }

    #[test]
    fn a_worker_gone_does_not_turn_the_wait_into_a_spin() {
        let mut all = Snapshots::default();
        let gone = all.add();
        let alive = all.add();
        drop(gone);
        let wait = Duration::from_millis(50);
        // On a thread, so that a wait that never ends fails the test instead of hanging it.
        let (done, waited) = crossbeam_channel::bounded(1);
        let waiter = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let timed_out = matches!(all.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
            let _ = done.send((timed_out, start.elapsed()));
            all
        });
        let (timed_out, took) = waited
            .recv_timeout(Duration::from_secs(5))
            .expect("the wait ends although a worker is gone");
        assert!(timed_out && took >= wait, "{timed_out} after {took:?}");
        let all = waiter.join().unwrap();
        alive.send(snapshot_of(3, 1, None));
        assert_eq!(all.recv_timeout(wait).unwrap().socket.rx_frames, 3);
    }

    #[test]
    fn the_control_side_waits_on_every_workers_channel_at_once() {
        let mut all = Snapshots::default();
        let first = all.add();
        let second = all.add();
        assert!(all.try_recv().is_err());
        let waiting = std::time::Instant::now();
        assert!(all.recv_timeout(Duration::from_millis(50)).is_err());
        assert!(waiting.elapsed() >= Duration::from_millis(50));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            second.send(snapshot_of(2, 1, None));
        });
        let s = all
            .recv_timeout(Duration::from_secs(20))
            .expect("a snapshot");
        assert_eq!(s.socket.rx_frames, 2);
        sender.join().unwrap();
        first.send(snapshot_of(1, 1, None));
        assert_eq!(all.try_recv().unwrap().socket.rx_frames, 1);
    }

    #[test]
    fn a_secret_sent_to_a_worker_does_not_show_in_the_message_debug() {
        let c = Control::ReplaceCookieSecret(Secret([0x5c; 32]), SecretAck::new(1));
        assert_eq!(
            format!("{c:?}"),
            "ReplaceCookieSecret(Secret(..), SecretAck(1))"
        );
    }

    #[test]
    fn the_worker_loop_answers_a_handshake_and_echoes_through_in_memory_rings() {
        let (umem, rings, kernel, descs) = testing::pair(64, 2048, 32);
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let (snap_tx, snap_rx) = snapshot_channel();
        // Copy mode: every batch put on the TX ring is kicked.
        let mut socket = XskSocket::new(0, false, umem, rings, descs);
        assert_eq!(kernel.fill_len(), 32, "the fill ring is filled at once");
        let worker = std::thread::spawn(move || {
            let mut engine = Engine::new(server_config(), Echo::new(), monotonic_now());
            run(&mut socket, &mut engine, None, None, &ctl_rx, &snap_tx);
            socket.account()
        });

        assert!(kernel.deliver(&frame(1000, 0, Flags::SYN, &[])));
        let syn_ack = sent(&kernel, 1).remove(0);
        let syn_ack = TcpFrame::parse(&syn_ack).expect("a valid frame");
        assert_eq!(syn_ack.tcp.flags, Flags::SYN | Flags::ACK);
        assert_eq!(syn_ack.tcp.ack, SeqNumber(1001));
        let ack = syn_ack.tcp.seq.0.wrapping_add(1);
        assert!(kernel.deliver(&frame(1001, ack, Flags::ACK | Flags::PSH, b"ping")));
        let echo = sent(&kernel, 1).remove(0);
        let echo = TcpFrame::parse(&echo).expect("a valid frame");
        assert_eq!(echo.tcp.payload, b"ping");
        assert_eq!(echo.tcp.ack, SeqNumber(1005));

        ctl_tx.send(Control::Stop).expect("the worker listens");
        let account = worker.join().expect("the worker ends");
        let last = snap_rx.try_iter().last().expect("a final snapshot");
        assert!(last.last);
        assert_eq!((last.socket.rx_frames, last.socket.tx_frames), (2, 2));
        assert_eq!(last.socket.tx_kicks, kernel.kicks());
        assert!(last.socket.tx_kicks >= 2, "copy mode kicks every batch");
        assert_eq!(last.stats.passive_opens, 1);
        // Every frame is back in one place: none held, none pending, none lost.
        assert_eq!(last.frames, account);
        assert!(account.balanced(), "{account:?}");
        assert_eq!(
            (account.total, account.rx_held, account.tx_pending),
            (64, 0, 0)
        );
        assert_eq!(account.fill, 32, "the fill ring is full again");
        assert_eq!(account.tx_in_flight, 0, "both completions were reaped");
    }

    #[test]
    fn the_worker_turns_its_queues_cookie_flag_on_when_the_half_open_budget_fills_and_off_at_stop()
    {
        let (umem, rings, kernel, descs) = testing::pair(64, 2048, 32);
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
        let (snap_tx, _snap_rx) = snapshot_channel();
        let mut socket = XskSocket::new(0, false, umem, rings, descs);
        let flags = crate::xdp::shared_maps::QueueFlags::anonymous(1);
        let flag = flags.queue(0).expect("queue 0");
        let seen = flag.clone();
        let worker = std::thread::spawn(move || {
            let cfg = Config {
                max_half_open: 2,
                ..server_config()
            };
            let mut engine = Engine::new(cfg, Echo::new(), monotonic_now());
            run(
                &mut socket,
                &mut engine,
                None,
                Some(&flag),
                &ctl_rx,
                &snap_tx,
            );
        });
        assert!(kernel.deliver(&frame_from(50_000, 1000, 0, Flags::SYN, &[])));
        sent(&kernel, 1);
        assert!(
            !seen.cookie_mode(),
            "one half-open connection: no flood yet"
        );
        assert!(kernel.deliver(&frame_from(50_001, 1000, 0, Flags::SYN, &[])));
        sent(&kernel, 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !seen.cookie_mode() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            seen.cookie_mode(),
            "the budget of 2 is full: the XDP program should answer"
        );
        ctl_tx.send(Control::Stop).expect("the worker listens");
        worker.join().expect("the worker ends");
        assert!(
            !seen.cookie_mode(),
            "a stopped worker leaves its queue to the engine path"
        );
    }
}
