//! The engine: one per worker. Frames and `now` in, frames out, nothing else.
//!
//! It owns the tables (connections, TIME-WAIT, the timer wheel) and dispatches: `receive`
//! checks a frame (malformed frames, impossible flags and addresses are dropped and counted),
//! then follows RFC 9293 §3.10.7 "SEGMENT ARRIVES": a connection in the table gets the
//! segment ([`super::input`]), else a TIME-WAIT entry ([`super::time_wait`]), else the
//! listener of its port ([`super::listen`]). After every event the app acts and the
//! connection transmits ([`super::deliver`]); `poll_timers` fires what is due
//! ([`super::timeout`]).

mod memory;

use std::net::{IpAddr, SocketAddr};

use super::conn::{Conn, NO_LISTENER, Negotiated};
use super::conn_table::ConnTable;
use super::contract::{App, CloseReason};
use super::event::{AckBatch, Cx, Outcome, Stateless};
use super::hash::{INDEX_BYTES_PER_ENTRY, Key, Keys, derive_key, hash_tuple, timestamp_key};
use super::listen::{Accept, Listen};
use super::route::Route;
use super::sockopt::ConnOptions;
use super::time_wait::TimeWaitTable;
use super::timer::Timer;
use super::timer_wheel::TimerWheel;
use super::{Config, ConnId, FourTuple, Secret, deliver, input, isn, output, timeout};
use crate::state::State;
use crate::stats::{DropReason, Latencies, Stats};
use crate::time::Instant;
use crate::tx::Tx;
use crate::wire::ethernet::MacAddr;
use crate::wire::tcp::{Flags, Repr as TcpRepr};
use crate::wire::{Error as WireError, TcpFrame};
use memory::MemoryAccount;

/// Why [`Engine::connect`] could not start a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Local and remote addresses are of different families.
    #[error("local and remote addresses are of different IP families")]
    MixedFamilies,
    /// A connection with this 4-tuple exists (or is in TIME-WAIT).
    #[error("a connection with this 4-tuple already exists")]
    InUse,
    /// The connection table is full.
    #[error("the connection table is full")]
    TableFull,
    /// The SYN could not be sent: no TX frame was free.
    #[error("no transmit frame was free for the SYN")]
    TxFull,
    /// The engine's memory budget ([`Config::memory_limit`]) is spent.
    #[error("the memory budget is spent")]
    NoMemory,
}

/// A share-nothing TCP engine: a connection table, a TIME-WAIT table, timers and an [`App`].
pub struct Engine<A: App> {
    pub(crate) cfg: Config,
    pub(crate) app: A,
    pub(crate) conns: ConnTable<Conn<A::State>>,
    pub(crate) time_wait: TimeWaitTable,
    pub(crate) wheel: TimerWheel<(ConnId, u32, Instant)>,
    pub(crate) keys: Keys,
    table_key: Key,
    listen: Listen,
    pub(crate) stats: Stats,
    /// Scratch list of due timers, kept to avoid an allocation per poll.
    pub(crate) due: Vec<(ConnId, u32, Instant)>,
    /// The `now` of the latest call in.
    pub(crate) last_now: Instant,
    latencies: Latencies,
    /// The receive batch in progress and the ACKs it owes.
    batch: AckBatch,
    /// The memory budget every connection's buffers count against.
    pub(crate) memory: MemoryAccount,
}

fn drop_reason(e: WireError) -> DropReason {
    match e {
        WireError::Truncated => DropReason::Truncated,
        WireError::UnsupportedEtherType => DropReason::UnsupportedEtherType,
        WireError::QinQ => DropReason::QinQ,
        WireError::NotTcp => DropReason::NotTcp,
        WireError::BadVersion => DropReason::BadVersion,
        WireError::BadHeaderLength => DropReason::BadHeaderLength,
        WireError::BadLength => DropReason::BadLength,
        WireError::BadChecksum => DropReason::BadChecksum,
        WireError::Fragment => DropReason::Fragment,
        WireError::IpOptions => DropReason::IpOptions,
        WireError::BadOptionLength => DropReason::BadOptionLength,
    }
}

/// Flag combinations no TCP sends (RFC 9293 leaves them undefined; scanners use them).
fn bad_flags(flags: Flags) -> Option<DropReason> {
    let syn = flags.contains(Flags::SYN);
    if syn && flags.contains(Flags::FIN) {
        return Some(DropReason::SynFin);
    }
    if syn && flags.contains(Flags::RST) {
        return Some(DropReason::SynRst);
    }
    if !syn && !flags.contains(Flags::ACK) && !flags.contains(Flags::RST) {
        return Some(DropReason::BadFlags);
    }
    None
}

/// Whether a segment can be the third step of a cookie handshake: an ACK, neither SYN nor RST
/// (it may carry data, or a FIN).
fn cookie_ack_shape(seg: &TcpRepr<'_>) -> bool {
    seg.flags.contains(Flags::ACK) && !seg.flags.intersects(Flags::SYN | Flags::RST)
}

/// Destinations that can never be our end of a TCP connection (Linux's martian destinations:
/// `ip_route_input_slow` drops 0.0.0.0/8 and 127/8, broadcast and multicast are no unicast
/// destination for `tcp_v4_conn_request`; `ip6_rcv_core` drops ::1, `tcp_v6_conn_request`
/// anything but unicast).
fn bad_destination(a: IpAddr) -> bool {
    match a {
        // 0.0.0.0/8 is "this network" (RFC 1122 §3.2.1.3): never a peer, a martian to Linux.
        IpAddr::V4(v4) => {
            v4.is_broadcast() || v4.is_multicast() || v4.octets()[0] == 0 || v4.is_loopback()
        }
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified() || v6.is_loopback(),
    }
}

/// A source that can never be a TCP peer, a martian (counted, never answered: a SYN-ACK or a
/// RST to it would go to a whole segment, to ourselves, or nowhere):
/// - a group source MAC (the I/G bit, broadcast included: IEEE 802 §8.2), which no station
///   sends from;
/// - IPv4 multicast, limited broadcast, 0.0.0.0/8 and 127/8, as Linux's
///   `ip_route_input_slow` ("goto martian_source");
/// - IPv6 ::, ::1 (RFC 4291 §2.5.3: "must not be used as the source address in IPv6 packets
///   that are sent outside of a single node", `ip6_rcv_core`), multicast (`ip6_rcv_core`) and
///   IPv4-mapped ::ffff:0:0/96 (`tcp_v6_conn_request`: "Security models could be fooled by
///   ::ffff:127.0.0.1");
/// - our own addresses: the frame's destination (a LAND attack) and every address a listener
///   serves (Linux's `fib_validate_source` refuses a local source). A listener without an
///   address serves whatever reaches the engine, so beyond the destination we do not know our
///   addresses: the XDP program in front, which serves the interface's addresses by name,
///   drops those (see `bpf/xdptcp.bpf.c`).
fn martian_source(cfg: &Config, src_mac: MacAddr, src: IpAddr, dst: IpAddr) -> bool {
    let group_mac = src_mac[0] & 1 != 0;
    let never_a_peer = match src {
        IpAddr::V4(v4) => {
            v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] == 0 || v4.is_loopback()
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.to_ipv4_mapped().is_some()
        }
    };
    group_mac || never_a_peer || src == dst || cfg.listeners.iter().any(|l| l.addr == Some(src))
}

impl<A: App> Engine<A> {
    /// A new engine with no connections. `now` anchors the timer wheel.
    pub fn new(cfg: Config, app: A, now: Instant) -> Engine<A> {
        Self::build(cfg, app, now, Latencies::default())
    }

    /// A fresh engine with `cfg`, as [`Engine::new`] would make it, that keeps this one's app
    /// and latency histograms (their allocations are the costly part of a new engine): for
    /// fuzzing and tests that need thousands of engines. What the app and the histograms
    /// recorded stays; everything else starts over.
    pub fn recycle(self, cfg: Config, now: Instant) -> Engine<A> {
        let Engine { app, latencies, .. } = self;
        Self::build(cfg, app, now, latencies)
    }

    fn build(cfg: Config, app: A, now: Instant, latencies: Latencies) -> Engine<A> {
        // One key for both tables, so one hash of a frame's tuple finds it in either.
        let table_key = derive_key(&cfg.secret.0, b"table");
        let keys = Keys::derive(&cfg.secret.0, &cfg.cookie_master().0);
        let listen = Listen::new(&cfg, now);
        let mut stats = Stats::default();
        for _ in &cfg.listeners {
            stats.state_changed(State::Closed, State::Listen);
        }
        Engine {
            conns: ConnTable::new(table_key, cfg.max_connections),
            time_wait: TimeWaitTable::new(cfg.max_time_wait, table_key),
            table_key,
            wheel: TimerWheel::new(now),
            keys,
            listen,
            stats,
            due: Vec::new(),
            last_now: now,
            latencies,
            batch: AckBatch::default(),
            memory: MemoryAccount::new(cfg.memory_limit),
            app,
            cfg,
        }
    }

    /// Counters, drop reasons and per-state connection counts.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handshake latencies recorded so far (SYN to ESTABLISHED; cookie connections excepted,
    /// since nothing of their SYN was kept).
    pub fn latencies(&self) -> &Latencies {
        &self.latencies
    }

    /// The latencies, mutably: a worker sends them to the control thread, then resets them.
    pub fn latencies_mut(&mut self) -> &mut Latencies {
        &mut self.latencies
    }

    /// Moves every latency recorded since the last call (the engine's handshakes and the app's
    /// own) into `into`.
    pub fn take_latencies(&mut self, into: &mut Latencies) {
        into.merge(&self.latencies);
        self.latencies.reset();
        if let Some(app) = self.app.latencies() {
            into.merge(app);
            app.reset();
        }
    }

    /// Tells the app that everything written so far was handed to the TX ring at `now`.
    pub fn flushed(&mut self, now: Instant) {
        self.app.on_flushed(now);
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application, mutably.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The configuration this engine runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Live connections (every state but TIME-WAIT).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Entries in the timer wheel (live and lazily cancelled ones): a diagnostic for bounded
    /// memory.
    pub fn timer_entries(&self) -> usize {
        self.wheel.len()
    }

    /// Entries in the TIME-WAIT table.
    pub fn time_wait_len(&self) -> usize {
        self.time_wait.len()
    }

    /// The state of a connection, if it still exists (TIME-WAIT connections have left the
    /// table and report `None`).
    pub fn state(&self, id: ConnId) -> Option<State> {
        self.conns.get(id).map(|c| c.state)
    }

    /// A connection's congestion window in bytes, if it still exists (for tests and
    /// diagnostics).
    pub fn congestion_window(&self, id: ConnId) -> Option<u32> {
        self.conns.get(id).map(|c| c.rec.window())
    }

    /// A connection's SACK scoreboard, if it still exists: the records it holds and the
    /// records its searches and walks have looked at so far ([`Scoreboard::visited`]: the
    /// cost of loss recovery, counted without a clock; for tests and diagnostics).
    ///
    /// [`Scoreboard::visited`]: super::scoreboard::Scoreboard::visited
    pub fn scoreboard_census(&self, id: ConnId) -> Option<(usize, u64)> {
        let sb = self.conns.get(id)?.rec.scoreboard();
        Some((sb.len(), sb.visited()))
    }

    /// The connection with this 4-tuple, if any.
    pub fn find(&self, tuple: &FourTuple) -> Option<ConnId> {
        self.conns.find(tuple)
    }

    /// Memory the connection `id` costs this engine now, in bytes: its slab slot (control
    /// block, app state and the slot's generation), its share of the index in the worst case
    /// ([`INDEX_BYTES_PER_ENTRY`], as `TimeWaitTable::ENTRY_BYTES` counts it) and its heap
    /// (send, receive and reassembly buffers).
    pub fn connection_bytes(&self, id: ConnId) -> Option<usize> {
        let c = self.conns.get(id)?;
        let slot = size_of::<Option<Conn<A::State>>>() + size_of::<u32>();
        Some(slot + INDEX_BYTES_PER_ENTRY + c.heap_bytes())
    }

    /// Stop accepting new connections (for draining); SYNs are answered with RST from now on.
    pub fn stop_accepting(&mut self) {
        if self.listen.stop_accepting() {
            for _ in &self.cfg.listeners {
                self.stats.state_changed(State::Listen, State::Closed);
            }
        }
    }

    /// Replaces the secret SYN-cookie keys and timestamp offsets derive from (a shared secret
    /// file that changed). Cookies made under the old secret stay valid for the rest of the
    /// next rotation epoch; connections keep their timestamp offsets. (Keys rotate by
    /// themselves every [`Config::cookie_rotation`]: nothing to call for that.)
    pub fn replace_cookie_secret(&mut self, now: Instant, secret: Secret) {
        self.last_now = now;
        self.listen.replace_cookie_secret(secret, now);
        self.keys.timestamp = timestamp_key(&secret.0);
    }

    /// Whether SYNs for this engine should be answered with SYN cookies in front of it, by the
    /// XDP program, which has answered `xdp_cookies` of them so far. `always`: yes; `never`:
    /// no; `auto`: from when the half-open budget fills until the flood is over (the half-open
    /// table drained below half and the program answered fewer than a budget's worth of SYNs
    /// in two seconds). While yes, ACKs completing those cookies are taken. The worker asks
    /// after every batch.
    pub fn poll_cookie_mode(&mut self, now: Instant, xdp_cookies: u64) -> bool {
        let half_open = self.stats.in_state(State::SynReceived) as usize;
        self.listen
            .poll_xdp_cookie_mode(&self.cfg, now, half_open, xdp_cookies)
    }

    /// The earliest time [`Engine::poll_timers`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tw = self
            .time_wait
            .next_expiry()
            .map(|ms| self.ms_to_instant(ms));
        match (self.wheel.next_deadline(), tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn ms_to_instant(&self, ms: u32) -> Instant {
        // The wheel's notion of now is close to the caller's; rebuild the full instant from
        // the wrapping millisecond value relative to it.
        let base = self.last_now;
        let base_ms = base.wrapping_millis();
        let delta = ms.wrapping_sub(base_ms) as i32;
        if delta <= 0 {
            base
        } else {
            Instant::from_millis(base.total_millis() + delta as u64)
        }
    }

    /// Starts a receive batch: the frames given to [`Engine::receive`] until
    /// [`Engine::end_batch`] are taken as one burst, as a NIC's GRO would merge them. In-order
    /// data that would be acknowledged at once (quick-ACK mode, or more than a segment's worth
    /// unacknowledged: Linux's rules, see `delayed_ack.rs`) is acknowledged when the batch
    /// ends instead, once per connection, with RCV.NXT past all of it. Out-of-order data, a
    /// filled hole, a FIN and replies that carry data are not held back. A driver that hands
    /// its replies to the NIC once per batch loses no time by it and sends (and makes the
    /// peer process) fewer ACKs.
    pub fn begin_batch(&mut self) {
        self.batch.open = true;
    }

    /// Ends the receive batch begun by [`Engine::begin_batch`] and sends the ACKs it owes to
    /// `tx`. (Were it never ended, the delayed-ACK timer would send them.)
    pub fn end_batch<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.batch.open = false;
        self.last_now = now;
        let mut owed = std::mem::take(&mut self.batch.owed);
        for id in owed.drain(..) {
            // A connection gone in the batch may have left its id to a new one, which owes
            // nothing unless it is in the list itself.
            self.with_conn(id, now, tx, |c, cx| {
                if c.ack_batched {
                    output::send_ack(c, cx);
                }
            });
            self.reschedule(id);
        }
        self.batch.owed = owed;
    }

    /// Handles one received Ethernet frame; replies go to `tx`.
    pub fn receive<T: Tx>(&mut self, now: Instant, frame: &[u8], tx: &mut T) {
        self.last_now = now;
        self.stats.rx_frames += 1;
        let f = match TcpFrame::parse(frame) {
            Ok(f) => f,
            Err(e) => return self.stats.drop(drop_reason(e)),
        };
        if let Some(reason) = bad_flags(f.tcp.flags) {
            return self.stats.drop(reason);
        }
        let (src, dst) = (f.ip.src(), f.ip.dst());
        if martian_source(&self.cfg, f.eth.src, src, dst) {
            return self.stats.drop(DropReason::Martian);
        }
        if bad_destination(dst) {
            return self.stats.drop(DropReason::BadAddress);
        }
        let route = Route {
            tuple: FourTuple {
                local_addr: dst,
                remote_addr: src,
                local_port: f.tcp.dst_port,
                remote_port: f.tcp.src_port,
            },
            mac: f.eth.src,
            vlan: f.eth.vlan,
        };
        let hash = hash_tuple(&self.table_key, &route.tuple);
        if let Some(id) = self.conns.find_hashed(&route.tuple, hash) {
            if !self.cookie_ack_replaces_half_open(now, id, &route, &f.tcp) {
                return self.segment_for_connection(now, id, &f.tcp, tx);
            }
        }
        let mut sx = Stateless {
            cfg: &self.cfg,
            stats: &mut self.stats,
            keys: &self.keys,
            tx,
            now,
            memory_full: self.memory.budget.full(0),
        };
        if let Some(&tw) = self.time_wait.get_hashed(&route.tuple, hash) {
            let recycled = if cookie_ack_shape(&f.tcp) && tw.is_older_than(&f.tcp) {
                // The SYN of a new incarnation was answered with a cookie in front of us (the
                // XDP program), so it never recycled the entry (RFC 6191): its ACK does.
                self.listen.cookies_live(sx.cfg, now)
                    && self.listen.check_cookie_ack(now, &route, &f.tcp).is_ok()
            } else {
                false
            };
            if recycled {
                self.time_wait.recycle(&route.tuple, sx.stats);
            } else if !self.time_wait.handle_segment(&mut sx, &route, tw, &f.tcp) {
                return;
            }
        }
        let Some(listener) = listener_for(&self.cfg, &route.tuple) else {
            // RFC 9293 §3.10.7.1 for a port nobody listens on, when this engine owns them all.
            if sx.cfg.reset_unserved && sx.cfg.reset_unknown {
                return self.listen.reset(&mut sx, &route, &f.tcp);
            }
            return sx.stats.drop(DropReason::NotServed);
        };
        match self
            .listen
            .handle_segment(sx, &mut self.conns, listener, &route, &f.tcp)
        {
            Accept::Done => {}
            Accept::HalfOpen(id) => {
                self.admit(id);
                self.reschedule(id);
            }
            // The app has the connection and the SYN's data now (RFC 7413 §4.2.2).
            Accept::FastOpen(id) => {
                self.admit(id);
                self.finish(id, Outcome::Keep, tx);
            }
            Accept::Established(id) => {
                self.admit(id);
                self.segment_for_connection(now, id, &f.tcp, tx);
            }
        }
    }

    /// A half-open connection whose peer ACKs a SYN cookie instead of our SYN-ACK: its SYN
    /// (retransmitted) was answered with a cookie in front of us once the XDP program took
    /// over. The cookie stands for the peer's incarnation, so the half-open entry goes and the
    /// ACK opens the connection as a listener's cookie ACK does. Anything else is the
    /// connection's business (RFC 9293's unacceptable-ACK reset included).
    fn cookie_ack_replaces_half_open(
        &mut self,
        now: Instant,
        id: ConnId,
        route: &Route,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let replace = cookie_ack_shape(seg)
            && self
                .conns
                .get(id)
                .is_some_and(|c| c.state == State::SynReceived && seg.ack != c.snd.nxt)
            && self.listen.cookies_live(&self.cfg, now)
            && self.listen.check_cookie_ack(now, route, seg).is_ok();
        if replace {
            self.remove(id);
        }
        replace
    }

    /// Active open (RFC 9293 §3.10.1): a SYN to `remote` via the next hop `remote_mac`.
    pub fn connect<T: Tx>(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        remote_mac: MacAddr,
        tx: &mut T,
    ) -> Result<ConnId, ConnectError> {
        let none = ConnOptions::default();
        self.connect_with(now, local, remote, remote_mac, &none, tx)
    }

    /// [`Engine::connect`] for a connection with socket `options` from the start (a socket's
    /// `setsockopt`s before `connect()`): its SYN announces `TCP_MAXSEG`'s MSS and a window
    /// scale and window that fit `SO_RCVBUF`'s buffer ([`ConnOptions`]).
    pub fn connect_with<T: Tx>(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        remote_mac: MacAddr,
        options: &ConnOptions,
        tx: &mut T,
    ) -> Result<ConnId, ConnectError> {
        self.last_now = now;
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(ConnectError::MixedFamilies);
        }
        let route = Route {
            tuple: FourTuple {
                local_addr: local.ip(),
                remote_addr: remote.ip(),
                local_port: local.port(),
                remote_port: remote.port(),
            },
            mac: remote_mac,
            vlan: None,
        };
        if self.conns.find(&route.tuple).is_some() {
            return Err(ConnectError::InUse);
        }
        // RFC 6191 on the active side: a new incarnation starts above the old SND.NXT.
        self.time_wait.recycle(&route.tuple, &mut self.stats);
        if self.conns.len() >= self.cfg.max_connections {
            return Err(ConnectError::TableFull);
        }
        if self.memory.budget.full(0) {
            return Err(ConnectError::NoMemory);
        }
        let iss = isn::initial_seq(&self.keys.isn, &route.tuple, now);
        // What we offer; the SYN-ACK settles it.
        let opts = Negotiated::offer(&self.cfg);
        let mut c = Conn::new(&self.cfg, &self.keys, now, &route, opts, iss);
        c.take_options(options);
        c.syn_sent();
        c.timers.arm(Timer::Retransmit, now + c.rtt.rto());
        let id = self.conns.insert(c).map_err(|_| ConnectError::TableFull)?;
        self.admit(id);
        let (cfg, stats) = (&self.cfg, &mut self.stats);
        let sent = self.conns.get_mut(id).is_some_and(|c| {
            c.set_state(State::SynSent, stats);
            output::send_syn(c, cfg, stats, tx, now)
        });
        if !sent {
            self.remove(id);
            return Err(ConnectError::TxFull);
        }
        self.reschedule(id);
        Ok(id)
    }

    /// Runs the state machine for a segment of an existing connection, then lets the app act
    /// and transmits what is due.
    pub(crate) fn segment_for_connection<T: Tx>(
        &mut self,
        now: Instant,
        id: ConnId,
        seg: &TcpRepr<'_>,
        tx: &mut T,
    ) {
        if let Some(outcome) =
            self.with_conn(id, now, tx, |c, cx| input::handle_segment(c, cx, seg))
        {
            self.finish(id, outcome, tx);
        }
    }

    /// After an event: let the app act, transmit, then keep, close or retire the connection.
    pub(crate) fn finish<T: Tx>(&mut self, id: ConnId, outcome: Outcome, tx: &mut T) {
        let now = self.last_now;
        let after =
            |c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>| deliver::after_event(c, cx, outcome);
        match self.with_conn(id, now, tx, after) {
            Some(Outcome::Keep) => self.reschedule(id),
            Some(Outcome::Close(reason)) => self.close(id, reason),
            Some(Outcome::TimeWait) => self.enter_time_wait(now, id),
            None => {}
        }
    }

    /// Runs `f` on connection `id` with everything an event handler may touch, keeping the
    /// memory budget's count exact around it (and pruning out-of-order queues after it if
    /// memory is under pressure).
    pub(crate) fn with_conn<T: Tx, R>(
        &mut self,
        id: ConnId,
        now: Instant,
        tx: &mut T,
        f: impl FnOnce(&mut Conn<A::State>, &mut Cx<'_, A, T>) -> R,
    ) -> Option<R> {
        let generation = self.conns.generation(id);
        let c = self.conns.get_mut(id)?;
        self.memory.begin(c);
        let mut cx = Cx {
            cfg: &self.cfg,
            stats: &mut self.stats,
            app: &mut self.app,
            tx,
            now,
            id,
            latencies: &mut self.latencies,
            batch: &mut self.batch,
            mem: &self.memory.budget,
        };
        let r = f(c, &mut cx);
        self.memory.end(c, id, generation, &mut self.stats);
        self.reclaim();
        Some(r)
    }

    /// Removes a connection, telling the app why.
    pub(crate) fn close(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(mut c) = self.remove(id) {
            if c.app.connected {
                self.app.on_closed(&mut c.app.state, reason);
            }
        }
    }

    /// Takes a connection out of the table: it is CLOSED.
    fn remove(&mut self, id: ConnId) -> Option<Conn<A::State>> {
        let mut c = self.conns.remove(id)?;
        self.memory.forget(&c, &mut self.stats);
        c.set_state(State::Closed, &mut self.stats);
        Some(c)
    }

    /// Moves a connection in TIME-WAIT out of the table into the compact TIME-WAIT table for
    /// 2MSL (it stays in TIME-WAIT).
    fn enter_time_wait(&mut self, now: Instant, id: ConnId) {
        let Some(mut c) = self.conns.remove(id) else {
            return;
        };
        self.memory.forget(&c, &mut self.stats);
        if c.app.connected {
            self.app.on_closed(&mut c.app.state, CloseReason::Normal);
        }
        let expires_ms = (now + self.cfg.time_wait).wrapping_millis();
        self.time_wait.enter(&c, expires_ms, &mut self.stats);
    }

    /// Puts the connection's earliest timer into the wheel if it is earlier than the entry
    /// already there (later ones are found when that entry fires: lazy cancellation).
    pub(crate) fn reschedule(&mut self, id: ConnId) {
        let generation = self.conns.generation(id);
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        if let Some(at) = c.timers.schedule() {
            self.wheel.insert(at, (id, generation, at));
        }
    }

    /// Runs every timer that is due: TIME-WAIT expiry, then connection timers.
    pub fn poll_timers<T: Tx>(&mut self, now: Instant, tx: &mut T) {
        self.last_now = now;
        for _ in 0..self.time_wait.expire(now.wrapping_millis()) {
            self.stats.state_changed(State::TimeWait, State::Closed);
        }
        let mut due = std::mem::take(&mut self.due);
        self.wheel.expire(now, |item| due.push(item));
        for (id, generation, at) in due.drain(..) {
            if self.conns.generation(id) != generation {
                continue;
            }
            let fire = |c: &mut Conn<A::State>, cx: &mut Cx<'_, A, T>| {
                c.timers.fire(at).then(|| timeout::handle_timeout(c, cx))
            };
            if let Some(Some(outcome)) = self.with_conn(id, now, tx, fire) {
                self.finish(id, outcome, tx);
            }
        }
        self.due = due;
    }
}

/// The listener (its index in [`Config::listeners`]) that serves `t`'s local end, if any.
fn listener_for(cfg: &Config, t: &FourTuple) -> Option<u8> {
    cfg.listeners
        .iter()
        .position(|l| l.port == t.local_port && l.addr.is_none_or(|a| a == t.local_addr))
        .map(|i| i.min(usize::from(NO_LISTENER) - 1) as u8)
}
