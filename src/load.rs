//! The load generator's policy, sans-IO: which connections to open and when, when each one
//! sends, and the frames of a SYN flood. `xdptcp load` runs one generator per queue over
//! AF_XDP sockets; tests drive it in memory.
//!
//! - `connect-close`: connections of one request each. Closed loop keeps `concurrency` in
//!   flight and replaces a finished one at once. Open loop (`rate`) opens connection k at
//!   `start + k / rate` whatever the server does (at most `concurrency` in flight; the others
//!   wait their turn) and wakes it with that intended time, from which the app counts its
//!   latency.
//! - `keepalive`: opens `connections` long-lived connections, at most `opening` handshakes at
//!   a time, then is *ready*. Closed loop: the app sends back to back from its connection on.
//!   Open loop (`period`): from ready on, connection k of n is woken at
//!   `ready + k·period/n + j·period` (j = 0, 1, ...), so requests are spread evenly at n/period
//!   per second; the app takes each wake as one request due at that time. Stopping half-closes
//!   every connection (our FIN after the last answer), at most `opening` FINs unacknowledged
//!   at a time, so the server is left with nothing and never gets them all in one burst.
//! - `synflood`: SYNs from spoofed sources (random hosts of a given IPv4 prefix, random ports)
//!   at a target rate; no state is kept for them.
//!
//! Connection k uses source address `sources[k % a]` and port `ports.start + (k / a) % p`
//! (a addresses, p ports): a 4-tuple is reused only after all a·p were used once.
//!
//! Every mode stops opening after `max_conns` connections (or SYNs); the shell bounds the run
//! in time.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::app::{App, Shutdown};
use crate::rng::Rng;
use crate::state::State;
use crate::stats::Stats;
use crate::tcp::{ConnId, ConnectError, Engine};
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::SeqNumber;
use crate::wire::ethernet::{self, ETHERTYPE_IPV4, MacAddr};
use crate::wire::tcp::{Flags, Options, Repr as TcpRepr};
use crate::wire::{IpRepr, TcpFrame, ipv4};

/// How the generator loads the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Short connections.
    ConnectClose {
        /// Connections in flight at most.
        concurrency: usize,
        /// Open loop: connections opened per second on a fixed schedule (`None`: closed loop,
        /// `concurrency` always in flight).
        rate: Option<u64>,
    },
    /// `connections` long-lived connections.
    KeepAlive {
        /// How many.
        connections: usize,
        /// Handshakes in flight at most while opening them.
        opening: usize,
        /// Open loop: each connection is woken once per `period` (`None`: closed loop).
        period: Option<Duration>,
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
    /// Our addresses, of the target's family: the kernel's own address on the interface, or
    /// addresses added to it for the load (so the kernel answers ARP and neighbour
    /// solicitations for them). Never empty.
    pub sources: Vec<IpAddr>,
    /// Source ports we own on each source address (the XDP program steers them to us; on the
    /// kernel's own address keep them out of its ephemeral range).
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

/// `n` split `count` ways: share `index` (the first `n % count` shares get one more).
fn split(n: u64, index: u32, count: u32) -> u64 {
    let (index, count) = (u64::from(index), u64::from(count.max(1)));
    n / count + u64::from(index < n % count)
}

impl LoadConfig {
    /// Distinct 4-tuples this configuration can use at once.
    pub fn tuples(&self) -> u64 {
        self.sources.len() as u64 * self.ports.len() as u64
    }

    /// Keep-alive: the connections this generator will open (no more than its budget and
    /// its distinct 4-tuples allow).
    fn keepalive_target(&self, connections: usize) -> u64 {
        (connections as u64).min(self.max_conns).min(self.tuples())
    }

    /// Connect-close: connections in flight at most (no more than distinct 4-tuples).
    fn in_flight_limit(&self, concurrency: usize) -> usize {
        concurrency.min(self.tuples().min(usize::MAX as u64) as usize)
    }

    /// The part of this load that generator `index` of `count` runs (one per queue): its
    /// share of the connections, in-flight limits, rates and budget, and its own contiguous
    /// slice of the ports, so no two generators ever use the same 4-tuple. Every share keeps
    /// at least one port and one connection in flight.
    pub fn share(&self, index: u32, count: u32) -> LoadConfig {
        let split_usize = |n: usize| (split(n as u64, index, count) as usize).max(1);
        let mode = match self.mode {
            LoadMode::ConnectClose { concurrency, rate } => LoadMode::ConnectClose {
                concurrency: split_usize(concurrency),
                rate: rate.map(|r| split(r, index, count)),
            },
            LoadMode::KeepAlive {
                connections,
                opening,
                period,
            } => LoadMode::KeepAlive {
                connections: split(connections as u64, index, count) as usize,
                opening: split_usize(opening),
                period,
            },
            LoadMode::SynFlood { rate, sources } => LoadMode::SynFlood {
                rate: split(rate, index, count),
                sources,
            },
        };
        let (first, total) = (u64::from(*self.ports.start()), self.ports.len() as u64);
        let before: u64 = (0..index).map(|i| split(total, i, count)).sum();
        let len = split(total, index, count).max(1);
        let start = (first + before).min(u64::from(*self.ports.end()));
        let end = (start + len - 1).min(u64::from(*self.ports.end()));
        LoadConfig {
            mode,
            ports: start as u16..=end as u16,
            max_conns: if self.max_conns == u64::MAX {
                u64::MAX
            } else {
                split(self.max_conns, index, count)
            },
            seed: self.seed ^ u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ..self.clone()
        }
    }
}

/// Most connections (or SYNs) opened per call, so one call never monopolises a worker.
const BURST: usize = 64;

/// Most wakes (or shutdowns) per call.
const WAKE_BURST: usize = 256;

/// After the last connection was opened, how long the keepalive ramp waits for stragglers'
/// handshakes before it calls itself ready (their requests then wait for the handshake).
const READY_WAIT: Duration = Duration::from_secs(1);

/// A load generator over an engine whose app plays the client.
pub struct LoadGen<A: App> {
    /// The client engine.
    pub engine: Engine<A>,
    cfg: LoadConfig,
    /// Index of the next 4-tuple to try (see the module docs); wraps.
    next_tuple: u64,
    opened: u64,
    refused_ports: u64,
    /// The first call's `now`: the flood's and the open loop's epoch.
    started: Option<Instant>,
    rng: Rng,
    stopped: bool,
    last_now: Instant,
    /// Keep-alive: every connection opened, in order.
    conns: Vec<ConnId>,
    /// When the latest connection was opened.
    last_open: Instant,
    /// Keep-alive: when every connection was open (or given up on).
    ready_at: Option<Instant>,
    /// Keep-alive open loop: each connection's next wake, earliest first (all connections
    /// share one period, so pushing at the back keeps the order).
    schedule: VecDeque<(Instant, ConnId)>,
    /// Keep-alive, stopped: how many of `conns` were shut down so far.
    shut: usize,
}

impl<A: App> LoadGen<A> {
    /// A generator over `engine` (configured with our MAC and no listeners).
    pub fn new(engine: Engine<A>, cfg: LoadConfig) -> LoadGen<A> {
        LoadGen {
            engine,
            next_tuple: 0,
            opened: 0,
            refused_ports: 0,
            started: None,
            rng: Rng::new(cfg.seed),
            stopped: false,
            last_now: Instant::ZERO,
            conns: Vec::new(),
            last_open: Instant::ZERO,
            ready_at: None,
            schedule: VecDeque::new(),
            shut: 0,
            cfg,
        }
    }

    /// Connections (or SYNs) opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Times a 4-tuple was skipped because it was still in use.
    pub fn ports_in_use(&self) -> u64 {
        self.refused_ports
    }

    /// Keep-alive: when every connection was open, if that happened.
    pub fn ready_at(&self) -> Option<Instant> {
        self.ready_at
    }

    /// Stop opening new connections and stop the schedule; connections in flight finish, and
    /// keep-alive connections are half-closed (after their outstanding answer, if any).
    pub fn stop(&mut self) {
        self.stopped = true;
        self.schedule.clear();
    }

    /// Whether the generator is done: nothing left to open (stopped, budget spent, or every
    /// keep-alive connection opened), and no connection left.
    pub fn finished(&self) -> bool {
        let all_opened = match self.cfg.mode {
            LoadMode::KeepAlive { connections, .. } => {
                self.opened >= self.cfg.keepalive_target(connections)
            }
            _ => false,
        };
        (self.stopped || all_opened || self.opened >= self.cfg.max_conns)
            && self.engine.connections() == 0
    }

    /// The engine's counters.
    pub fn stats(&self) -> &Stats {
        self.engine.stats()
    }

    /// Handles a received frame, then does what the policy allows.
    pub fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        self.engine.receive(now, frame, tx);
        self.pump(now, tx);
    }

    /// Runs due timers, then does what the policy allows.
    pub fn poll_timers<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.engine.poll_timers(now, tx);
        self.pump(now, tx);
    }

    /// The engine's next timer, or sooner if the policy has something to do: open more (at
    /// once, at the open loop's next intended time, or a millisecond after the last call for
    /// the flood), declare the ramp ready, wake the next connection, or shut more down.
    pub fn next_deadline(&self) -> Option<Instant> {
        let pump = self.next_pump();
        match (self.engine.next_deadline(), pump) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_pump(&self) -> Option<Instant> {
        if self.stopped {
            let more = self.shut < self.conns.len() && self.closing_room() > 0;
            return more.then_some(self.last_now); // else an ACK of our FIN calls us
        }
        let budget = self.opened < self.cfg.max_conns;
        let started = self.started.unwrap_or(self.last_now);
        match self.cfg.mode {
            LoadMode::SynFlood { .. } => budget.then_some(self.last_now + Duration::from_millis(1)),
            LoadMode::ConnectClose { concurrency, rate } => {
                let limit = self.cfg.in_flight_limit(concurrency);
                if !budget || self.engine.connections() >= limit {
                    return None; // a connection that ends makes room (and calls us)
                }
                Some(rate.map_or(self.last_now, |r| intended(started, r, self.opened)))
            }
            LoadMode::KeepAlive {
                connections,
                opening,
                ..
            } => {
                if self.ready_at.is_some() {
                    return self.schedule.front().map(|&(due, _)| due);
                }
                let all = self.opened >= self.cfg.keepalive_target(connections);
                let handshakes = self.engine.stats().in_state(State::SynSent) as usize;
                match (all, handshakes) {
                    (false, h) if h < opening => Some(self.last_now),
                    (false, _) => None, // an established handshake calls us
                    (true, 0) => Some(self.last_now),
                    (true, _) => Some(self.last_open + READY_WAIT),
                }
            }
        }
    }

    /// Does what the mode allows now: opens connections (or sends SYNs), wakes the ones whose
    /// request is due, or shuts them down after a stop.
    pub fn pump<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.last_now = self.last_now.max(now);
        let started = *self.started.get_or_insert(now);
        match self.cfg.mode {
            LoadMode::SynFlood { rate, sources } => self.flood(now, started, rate, sources, tx),
            LoadMode::ConnectClose { concurrency, rate } => {
                self.open_connect_close(now, started, concurrency, rate, tx)
            }
            LoadMode::KeepAlive {
                connections,
                opening,
                period,
            } => {
                if self.stopped {
                    return self.shut_some(now, tx);
                }
                self.open_keepalive(now, connections, opening, tx);
                self.check_ready(now, connections, period);
                if let Some(period) = period {
                    self.wake_due(now, period, tx);
                }
            }
        }
    }

    fn open_connect_close<T: Tx>(
        &mut self,
        now: Instant,
        started: Instant,
        concurrency: usize,
        rate: Option<u64>,
        tx: &mut T,
    ) {
        let limit = self.cfg.in_flight_limit(concurrency);
        for _ in 0..BURST {
            if self.stopped
                || self.opened >= self.cfg.max_conns
                || self.engine.connections() >= limit
            {
                return;
            }
            let due = rate.map(|r| intended(started, r, self.opened));
            if due.is_some_and(|d| d > now) {
                return;
            }
            match self.connect_next(now, tx) {
                Ok(id) => {
                    if let Some(due) = due {
                        self.engine.wake(now, id, due, tx);
                    }
                }
                Err(ConnectError::InUse) => {}
                Err(_) => return,
            }
        }
    }

    fn open_keepalive<T: Tx>(
        &mut self,
        now: Instant,
        connections: usize,
        opening: usize,
        tx: &mut T,
    ) {
        let want = self.cfg.keepalive_target(connections);
        for _ in 0..BURST {
            let handshakes = self.engine.stats().in_state(State::SynSent) as usize;
            if self.opened >= want || handshakes >= opening {
                return;
            }
            match self.connect_next(now, tx) {
                Ok(id) => self.conns.push(id),
                Err(ConnectError::InUse) => {}
                Err(_) => return,
            }
        }
    }

    /// Keep-alive: once every connection is open (or the stragglers had [`READY_WAIT`]),
    /// starts the schedule, connection k of n first at `now + k·period/n`.
    fn check_ready(&mut self, now: Instant, connections: usize, period: Option<Duration>) {
        if self.ready_at.is_some() || self.opened < self.cfg.keepalive_target(connections) {
            return;
        }
        let handshakes = self.engine.stats().in_state(State::SynSent);
        if handshakes > 0 && now < self.last_open + READY_WAIT {
            return;
        }
        self.ready_at = Some(now);
        // A connection that failed while opening may have left its slot to a later one.
        self.conns.sort_unstable();
        self.conns.dedup();
        let engine = &self.engine;
        self.conns.retain(|&id| engine.state(id).is_some());
        if let Some(period) = period {
            let n = self.conns.len().max(1) as u128;
            let period_us = period.as_micros();
            self.schedule = self
                .conns
                .iter()
                .enumerate()
                .map(|(k, &id)| {
                    let offset = (k as u128 * period_us / n) as u64;
                    (now + Duration::from_micros(offset), id)
                })
                .collect();
        }
    }

    fn wake_due<T: Tx>(&mut self, now: Instant, period: Duration, tx: &mut T) {
        for _ in 0..WAKE_BURST {
            let Some(&(due, id)) = self.schedule.front() else {
                return;
            };
            if due > now {
                return;
            }
            self.schedule.pop_front();
            if self.engine.wake(now, id, due, tx) {
                self.schedule.push_back((due + period, id));
            }
        }
    }

    /// Keep-alive, stopped: how many more FINs may go out now (at most `opening` in
    /// FIN-WAIT-1, our FIN unacknowledged).
    fn closing_room(&self) -> usize {
        let LoadMode::KeepAlive { opening, .. } = self.cfg.mode else {
            return 0;
        };
        let unacked = self.engine.stats().in_state(State::FinWait1) as usize;
        opening.saturating_sub(unacked).min(WAKE_BURST)
    }

    fn shut_some<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        for _ in 0..self.closing_room() {
            let Some(&id) = self.conns.get(self.shut) else {
                return;
            };
            self.shut += 1;
            self.engine.shutdown(now, id, Shutdown::Write, tx);
        }
    }

    /// Opens a connection on the next 4-tuple (see the module docs).
    fn connect_next<T: Tx>(&mut self, now: Instant, tx: &mut T) -> Result<ConnId, ConnectError> {
        let k = self.next_tuple;
        self.next_tuple = (k + 1) % self.cfg.tuples().max(1);
        let a = self.cfg.sources.len().max(1) as u64;
        let addr = self.cfg.sources[(k % a) as usize];
        let port = *self.cfg.ports.start() as u64 + (k / a) % self.cfg.ports.len().max(1) as u64;
        let local = SocketAddr::new(addr, port as u16);
        let result = self
            .engine
            .connect(now, local, self.cfg.target, self.cfg.next_hop, tx);
        match result {
            Ok(_) => {
                self.opened += 1;
                self.last_open = now;
            }
            Err(ConnectError::InUse) => self.refused_ports += 1,
            Err(_) => {}
        }
        result
    }

    /// Sends the SYNs due by now at `rate` per second since the flood started.
    fn flood<T: Tx>(
        &mut self,
        now: Instant,
        started: Instant,
        rate: u64,
        sources: (Ipv4Addr, u8),
        tx: &mut T,
    ) {
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

/// When the open loop meant to open connection `k`: `started + k / rate`.
fn intended(started: Instant, rate: u64, k: u64) -> Instant {
    let us = u128::from(k) * 1_000_000 / u128::from(rate.max(1));
    started + Duration::from_micros(us.min(u128::from(u64::MAX)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: LoadMode, ports: RangeInclusive<u16>) -> LoadConfig {
        LoadConfig {
            mode,
            target: "10.0.0.1:80".parse().unwrap(),
            sources: vec!["10.0.0.2".parse().unwrap()],
            ports,
            next_hop: [2, 0, 0, 0, 0, 1],
            local_mac: [2, 0, 0, 0, 0, 2],
            max_conns: 1001,
            seed: 1,
        }
    }

    #[test]
    fn shares_split_everything_and_never_overlap_in_ports() {
        let cfg = config(
            LoadMode::KeepAlive {
                connections: 200_001,
                opening: 128,
                period: Some(Duration::from_secs(5)),
            },
            1024..=65535,
        );
        let shares: Vec<LoadConfig> = (0..3).map(|i| cfg.share(i, 3)).collect();
        let conns: Vec<usize> = shares
            .iter()
            .map(|s| match s.mode {
                LoadMode::KeepAlive { connections, .. } => connections,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(conns, [66_667, 66_667, 66_667]);
        assert_eq!(shares.iter().map(|s| s.max_conns).sum::<u64>(), 1001);
        assert_eq!(*shares[0].ports.start(), 1024);
        for w in shares.windows(2) {
            assert_eq!(*w[0].ports.end() + 1, *w[1].ports.start());
        }
        assert_eq!(*shares[2].ports.end(), 65535);
        let total: u64 = shares.iter().map(|s| s.ports.len() as u64).sum();
        assert_eq!(total, 64512);
        assert_ne!(shares[0].seed, shares[1].seed);
    }

    #[test]
    fn a_share_keeps_at_least_one_port_and_one_in_flight() {
        let cfg = config(
            LoadMode::ConnectClose {
                concurrency: 1,
                rate: Some(3),
            },
            2000..=2000,
        );
        let s = cfg.share(1, 2);
        assert_eq!(s.ports, 2000..=2000);
        assert_eq!(
            s.mode,
            LoadMode::ConnectClose {
                concurrency: 1,
                rate: Some(1)
            }
        );
    }

    #[test]
    fn the_open_loop_schedule_is_exact_at_any_rate() {
        let t0 = Instant::from_secs(10);
        assert_eq!(intended(t0, 1000, 0), t0);
        assert_eq!(intended(t0, 1000, 1500), t0 + Duration::from_millis(1500));
        assert_eq!(intended(t0, 3, 1), t0 + Duration::from_micros(333_333));
        assert_eq!(
            intended(t0, 0, 1),
            t0 + Duration::from_secs(1),
            "rate 0 taken as 1"
        );
    }
}
