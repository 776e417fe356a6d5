//! A simulated network for tests and benchmarks: two engines joined by an in-memory link with
//! seeded loss, duplication, reordering and delay, on a virtual clock.
//!
//! Deterministic: the same seed and the same calls give the same trace (the quinn-proto `Pair`
//! idea, with smoltcp's fault injector on the link).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::app::App;
pub use crate::rng::Rng;
use crate::tcp::{Config, ConnId, ConnectError, Engine, Listener};
use crate::time::Instant;
use crate::wire::TcpFrame;

/// The client's address in a [`Pair`].
pub const CLIENT_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
/// The server's address in a [`Pair`].
pub const SERVER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
/// The client's MAC in a [`Pair`].
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
/// The server's MAC in a [`Pair`].
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
/// The port the server listens on in a [`Pair`].
pub const SERVER_PORT: u16 = 80;

/// What the link does to frames, each direction independently.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability a frame is held back by an extra `reorder_delay` (so later ones overtake).
    pub reorder: f64,
    /// Extra delay of a reordered frame.
    pub reorder_delay: Duration,
    /// One-way delay of every frame.
    pub delay: Duration,
    /// Seed of the link's random choices.
    pub seed: u64,
    /// Largest IP packet the link carries (frames beyond it are dropped and counted in
    /// [`Pair::oversized`], as a veth or NIC drops them).
    pub mtu: usize,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(3),
            delay: Duration::from_millis(1),
            seed: 1,
            mtu: 1500,
        }
    }
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

/// A frame in flight: when it arrives, a tie-breaking order, its direction, its bytes.
type InFlight = Reverse<(Instant, u64, Dir, Vec<u8>)>;

/// A frame filter: return false to drop the frame (for tests that lose one exact segment).
pub type Filter = Box<dyn FnMut(Dir, &TcpFrame<'_>) -> bool>;

/// A client engine and a server engine joined by a simulated link.
pub struct Pair<C: App, S: App> {
    /// The active-open side.
    pub client: Engine<C>,
    /// The passive-open side (listens on [`SERVER_PORT`]).
    pub server: Engine<S>,
    /// The virtual clock.
    pub now: Instant,
    link: LinkConfig,
    rng: Rng,
    queue: BinaryHeap<InFlight>,
    order: u64,
    filter: Option<Filter>,
    /// Frames the link delivered, per direction.
    pub delivered: [u64; 2],
    /// Frames the link lost (randomly or by the filter), per direction.
    pub lost: [u64; 2],
    /// Frames dropped for exceeding the MTU, per direction (a correct engine sends none).
    pub oversized: [u64; 2],
    /// A running hash of every delivered frame and its time: equal traces, equal hashes.
    pub trace_hash: u64,
}

/// Configurations for a pair: the server listens on [`SERVER_PORT`], both get their MAC and
/// a secret derived from `seed`.
pub fn configs(seed: u64) -> (Config, Config) {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut client = Config {
        local_mac: CLIENT_MAC,
        ..Config::default()
    };
    rng.fill(&mut client.secret.0);
    let mut server = Config {
        local_mac: SERVER_MAC,
        listeners: vec![Listener {
            addr: Some(SERVER_ADDR),
            port: SERVER_PORT,
            keepalive: None,
            fastopen: None,
            options: Default::default(),
        }],
        ..Config::default()
    };
    rng.fill(&mut server.secret.0);
    (client, server)
}

impl<C: App, S: App> Pair<C, S> {
    /// Two engines on a link, the clock at 1000 s.
    pub fn new(
        client_cfg: Config,
        client_app: C,
        server_cfg: Config,
        server_app: S,
        link: LinkConfig,
    ) -> Pair<C, S> {
        let now = Instant::from_secs(1000);
        Pair {
            client: Engine::new(client_cfg, client_app, now),
            server: Engine::new(server_cfg, server_app, now),
            now,
            rng: Rng::new(link.seed),
            link,
            queue: BinaryHeap::new(),
            order: 0,
            filter: None,
            delivered: [0; 2],
            lost: [0; 2],
            oversized: [0; 2],
            trace_hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    /// Installs a filter that sees every frame before the link's random faults.
    pub fn set_filter(&mut self, filter: impl FnMut(Dir, &TcpFrame<'_>) -> bool + 'static) {
        self.filter = Some(Box::new(filter));
    }

    /// Removes the filter.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Changes the link's faults from now on.
    pub fn set_link(&mut self, link: LinkConfig) {
        self.link = link;
    }

    /// The client opens a connection from `port` to the server.
    pub fn connect(&mut self, port: u16) -> Result<ConnId, ConnectError> {
        let mut out = Vec::new();
        let id = self.client.connect(
            self.now,
            SocketAddr::new(CLIENT_ADDR, port),
            SocketAddr::new(SERVER_ADDR, SERVER_PORT),
            SERVER_MAC,
            &mut out,
        )?;
        self.send(Dir::ToServer, out);
        Ok(id)
    }

    /// Puts frames on the link as if `dir`'s sender had transmitted them now.
    pub fn send(&mut self, dir: Dir, frames: Vec<Vec<u8>>) {
        for frame in frames {
            let ip_len = TcpFrame::parse(&frame)
                .map(|f| f.buffer_len() - f.eth.header_len())
                .unwrap_or(0);
            if ip_len > self.link.mtu {
                self.oversized[dir as usize] += 1;
                continue;
            }
            let keep = match (&mut self.filter, TcpFrame::parse(&frame)) {
                (Some(f), Ok(parsed)) => f(dir, &parsed),
                _ => true,
            };
            if !keep || self.rng.next_f64() < self.link.loss {
                self.lost[dir as usize] += 1;
                continue;
            }
            let mut at = self.now + self.link.delay;
            if self.rng.next_f64() < self.link.reorder {
                at = at + self.link.reorder_delay;
            }
            if self.rng.next_f64() < self.link.duplicate {
                self.enqueue(at + Duration::from_micros(10), dir, frame.clone());
            }
            self.enqueue(at, dir, frame);
        }
    }

    fn enqueue(&mut self, at: Instant, dir: Dir, frame: Vec<u8>) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, dir, frame)));
    }

    /// The time of the next thing that happens: a frame arriving or a timer.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.queue.peek().map(|Reverse((at, ..))| *at),
            self.client.next_deadline(),
            self.server.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances the clock to the next event (not past `limit`) and processes everything due.
    /// Returns false when nothing is left to happen before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        let Some(next) = self.next_event() else {
            self.now = self.now.max(limit);
            return false;
        };
        if next > limit {
            self.now = self.now.max(limit);
            return false;
        }
        self.now = self.now.max(next);
        while let Some(Reverse((at, ..))) = self.queue.peek() {
            if *at > self.now {
                break;
            }
            let Some(Reverse((at, _, dir, frame))) = self.queue.pop() else {
                break;
            };
            self.delivered[dir as usize] += 1;
            self.trace_hash = fnv(self.trace_hash, &at.total_micros().to_le_bytes());
            self.trace_hash = fnv(self.trace_hash, &frame);
            let mut out = Vec::new();
            let back = match dir {
                Dir::ToServer => {
                    self.server.receive(self.now, &frame, &mut out);
                    Dir::ToClient
                }
                Dir::ToClient => {
                    self.client.receive(self.now, &frame, &mut out);
                    Dir::ToServer
                }
            };
            self.send(back, out);
        }
        let mut out = Vec::new();
        self.server.poll_timers(self.now, &mut out);
        self.send(Dir::ToClient, out);
        let mut out = Vec::new();
        self.client.poll_timers(self.now, &mut out);
        self.send(Dir::ToServer, out);
        // Everything sent this step is "on the wire" now, as after a worker's TX batch.
        self.server.flushed(self.now);
        self.client.flushed(self.now);
        true
    }

    /// Steps until `done` holds or `limit` is reached; returns whether `done` held.
    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.step(limit) {
                return done(self);
            }
        }
    }

    /// Steps for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
    }
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
