//! The load generator's policy, sans-IO: which connections to open and when, and the frames
//! of a SYN flood. `xdptcp load` drives it over an AF_XDP socket; tests drive it in memory.
//!
//! - `connect-close`: keeps `concurrency` connections in flight; each does a handshake, one
//!   request and a close (the app decides the request), and a finished one is replaced at once.
//! - `keepalive`: opens `connections` connections once; the app sends requests back to back.
//! - `synflood`: SYNs from spoofed sources (random hosts of a given IPv4 prefix, random ports)
//!   at a target rate; no state is kept for them.
//!
//! Every mode stops opening after `max_conns` connections (or SYNs); the shell bounds the run
//! in time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::app::App;
use crate::rng::Rng;
use crate::stats::Stats;
use crate::tcp::{ConnectError, Engine, SeqNumber};
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, MacAddr};
use crate::wire::tcp::{Flags, Options, Repr as TcpRepr};
use crate::wire::{IpRepr, TcpFrame, ipv4};

/// How the generator loads the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Short connections, `concurrency` at a time.
    ConnectClose {
        /// Connections in flight at once.
        concurrency: usize,
    },
    /// `connections` long-lived connections.
    KeepAlive {
        /// How many.
        connections: usize,
    },
    /// Spoofed-source SYNs at `rate` per second.
    SynFlood {
        /// SYNs per second.
        rate: u64,
        /// Sources are random hosts of this prefix: (network, prefix length).
        sources: (Ipv4Addr, u8),
    },
}

/// What to load and how.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The mode.
    pub mode: LoadMode,
    /// The server.
    pub target: SocketAddr,
    /// Our address (the kernel's address on the interface, so ARP keeps working).
    pub local_addr: IpAddr,
    /// Source ports we own (the XDP program steers them to us; keep them out of the kernel's
    /// ephemeral range).
    pub ports: RangeInclusive<u16>,
    /// The next hop's Ethernet address.
    pub next_hop: MacAddr,
    /// Our Ethernet address (for SYN-flood frames; the engine has its own copy).
    pub local_mac: MacAddr,
    /// Stop opening after this many connections or SYNs.
    pub max_conns: u64,
    /// Seed for the flood's source addresses and sequence numbers.
    pub seed: u64,
}

/// Most connections (or SYNs) opened per call, so one call never monopolises a worker.
const BURST: usize = 64;

/// A load generator over an engine whose app plays the client.
pub struct LoadGen<A: App> {
    /// The client engine.
    pub engine: Engine<A>,
    cfg: LoadConfig,
    next_port: u16,
    opened: u64,
    refused_ports: u64,
    flood_started: Option<Instant>,
    rng: Rng,
    stopped: bool,
    last_now: Instant,
}

impl<A: App> LoadGen<A> {
    /// A generator over `engine` (configured with our MAC and no listeners).
    pub fn new(engine: Engine<A>, cfg: LoadConfig) -> LoadGen<A> {
        LoadGen {
            engine,
            next_port: *cfg.ports.start(),
            opened: 0,
            refused_ports: 0,
            flood_started: None,
            rng: Rng::new(cfg.seed),
            stopped: false,
            last_now: Instant::ZERO,
            cfg,
        }
    }

    /// Connections (or SYNs) opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Times a port was skipped because its 4-tuple was still in use.
    pub fn ports_in_use(&self) -> u64 {
        self.refused_ports
    }

    /// Stop opening new connections; the ones in flight finish.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether the generator is done: stopped or out of budget, and nothing left in flight.
    pub fn finished(&self) -> bool {
        (self.stopped || self.opened >= self.cfg.max_conns) && self.engine.connections() == 0
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Stats {
        self.engine.stats()
    }

    /// Handles a received frame, then opens what the policy allows.
    pub fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        self.engine.receive(now, frame, tx);
        self.pump(now, tx);
    }

    /// Runs due timers, then opens what the policy allows.
    pub fn poll_timers<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.engine.poll_timers(now, tx);
        self.pump(now, tx);
    }

    /// The engine's next timer, or sooner if the policy has more to open (at once for
    /// connections; a millisecond after the last call for the flood, which is paced).
    pub fn next_deadline(&self) -> Option<Instant> {
        let engine = self.engine.next_deadline();
        let pump = self.wants_to_open().then_some(match self.cfg.mode {
            LoadMode::SynFlood { .. } => self.last_now + Duration::from_millis(1),
            _ => self.last_now,
        });
        match (engine, pump) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wants_to_open(&self) -> bool {
        if self.stopped || self.opened >= self.cfg.max_conns {
            return false;
        }
        match self.cfg.mode {
            LoadMode::ConnectClose { concurrency } => self.engine.connections() < concurrency,
            LoadMode::KeepAlive { connections } => self.opened < connections as u64,
            LoadMode::SynFlood { .. } => true,
        }
    }

    /// Opens connections (or sends SYNs) up to what the mode allows now.
    pub fn pump<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.last_now = self.last_now.max(now);
        if let LoadMode::SynFlood { rate, sources } = self.cfg.mode {
            return self.flood(now, rate, sources, tx);
        }
        for _ in 0..BURST {
            if !self.wants_to_open() {
                return;
            }
            match self.connect_next(now, tx) {
                Ok(()) => self.opened += 1,
                Err(ConnectError::InUse) => self.refused_ports += 1,
                Err(_) => return,
            }
        }
    }

    fn connect_next<T: Tx>(&mut self, now: Instant, tx: &mut T) -> Result<(), ConnectError> {
        let port = self.next_port;
        self.next_port = if port >= *self.cfg.ports.end() {
            *self.cfg.ports.start()
        } else {
            port + 1
        };
        let local = SocketAddr::new(self.cfg.local_addr, port);
        self.engine
            .connect(now, local, self.cfg.target, self.cfg.next_hop, tx)
            .map(|_| ())
    }

    /// Sends the SYNs due by now at `rate` per second since the flood started.
    fn flood<T: Tx>(&mut self, now: Instant, rate: u64, sources: (Ipv4Addr, u8), tx: &mut T) {
        let started = *self.flood_started.get_or_insert(now);
        let due = ((now - started).as_micros() as u64).saturating_mul(rate) / 1_000_000 + 1;
        let due = due.min(self.cfg.max_conns);
        let IpAddr::V4(dst) = self.cfg.target.ip() else {
            return;
        };
        let (net, len) = sources;
        let host_bits = 32 - u32::from(len.min(32));
        let mask = if host_bits == 0 {
            0
        } else {
            u32::MAX >> (32 - host_bits)
        };
        let net = u32::from(net) & !mask;
        for _ in 0..BURST * 4 {
            if self.opened >= due || self.stopped {
                return;
            }
            let r = self.rng.next_u64();
            // Host part never 0 (network) nor all ones (broadcast).
            let host = ((r as u32) & mask).clamp(1, mask.saturating_sub(1).max(1));
            let src = Ipv4Addr::from(net | host);
            let repr = TcpRepr {
                src_port: 1024 + ((r >> 32) as u16 % 64000),
                dst_port: self.cfg.target.port(),
                seq: SeqNumber((r >> 16) as u32),
                ack: SeqNumber(0),
                flags: Flags::SYN,
                window: 64240,
                options: Options {
                    mss: Some(1460),
                    window_scale: Some(7),
                    sack_permitted: true,
                    timestamp: Some(((r >> 8) as u32, 0)),
                    ..Options::default()
                },
                payload: &[],
            };
            let frame = TcpFrame {
                eth: ethernet::Repr {
                    dst: self.cfg.next_hop,
                    src: self.cfg.local_mac,
                    vlan: None,
                    ethertype: ETHERTYPE_IPV4,
                },
                ip: IpRepr::V4(ipv4::Repr {
                    src,
                    dst,
                    protocol: 6,
                    payload_len: repr.buffer_len(),
                    ttl: 64,
                }),
                tcp: repr,
            };
            if !tx.send(frame.buffer_len(), |buf| frame.emit(buf)) {
                return;
            }
            self.opened += 1;
        }
    }
}
