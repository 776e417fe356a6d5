//! Helpers for the reliable-data scenarios: a timed trace of every segment two engines send,
//! with a drop rule ([`Net`]), and apps that move checkable byte patterns ([`Bulk`],
//! [`Server`], [`PingPong`]). The segments are [`Sent`] records of the one [`Seg`] type of
//! `util`, which also has the hand-driven peers.

use std::cell::{Cell, Ref, RefCell};
use std::rc::Rc;
use std::time::Duration;

use xdptcp::app::{App, CloseReason, Io};
use xdptcp::sim::{Dir, LinkConfig, Pair, Rng};
use xdptcp::tcp::{Config, ConnId};
use xdptcp::time::Instant;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::tcp::Flags;

use crate::util::{Seg, Sent};

/// Decides, for a segment about to go on the link and everything sent before it, whether the
/// link loses it.
pub type DropRule = Box<dyn FnMut(&Sent, &[Sent]) -> bool>;

#[derive(Default)]
struct TraceInner {
    segs: Vec<Sent>,
    /// Segments from here on were sent during the current step and still need their time.
    unstamped: usize,
    rule: Option<DropRule>,
}

/// A [`Pair`] whose every sent segment is recorded with its time, and which loses the
/// segments a [`DropRule`] picks (before the link's own seeded faults).
pub struct Net<C: App, S: App> {
    pub p: Pair<C, S>,
    trace: Rc<RefCell<TraceInner>>,
}

impl<C: App, S: App> Net<C, S> {
    pub fn new(ccfg: Config, capp: C, scfg: Config, sapp: S, link: LinkConfig) -> Net<C, S> {
        let mut p = Pair::new(ccfg, capp, scfg, sapp, link);
        let trace = Rc::new(RefCell::new(TraceInner::default()));
        let t = trace.clone();
        p.set_filter(move |dir, f| {
            let mut t = t.borrow_mut();
            let mut seg = Sent::new(Instant::ZERO, dir, Seg::from(f));
            let TraceInner { segs, rule, .. } = &mut *t;
            seg.dropped = rule.as_mut().is_some_and(|r| r(&seg, segs));
            let keep = !seg.dropped;
            t.segs.push(seg);
            keep
        });
        Net { p, trace }
    }

    /// Loses every segment `rule` picks from now on (replacing any earlier rule).
    pub fn drop_when(&mut self, rule: impl FnMut(&Sent, &[Sent]) -> bool + 'static) {
        self.trace.borrow_mut().rule = Some(Box::new(rule));
    }

    fn stamp(&mut self) {
        let mut t = self.trace.borrow_mut();
        let now = self.p.now;
        let from = t.unstamped;
        for s in &mut t.segs[from..] {
            s.at = now;
        }
        t.unstamped = t.segs.len();
    }

    pub fn connect(&mut self, port: u16) -> ConnId {
        let id = self.p.connect(port).expect("connect");
        self.stamp();
        id
    }

    /// Steps until `done` holds, for at most `d` of virtual time; returns whether it held.
    pub fn run_until(&mut self, d: Duration, mut done: impl FnMut(&Pair<C, S>) -> bool) -> bool {
        let limit = self.p.now + d;
        loop {
            if done(&self.p) {
                return true;
            }
            let more = self.p.step(limit);
            self.stamp();
            if !more {
                return done(&self.p);
            }
        }
    }

    /// Steps for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Every segment sent so far, in order.
    pub fn segs(&self) -> Ref<'_, Vec<Sent>> {
        Ref::map(self.trace.borrow(), |t| &t.segs)
    }

    /// The segments sent in direction `dir` that match `f`, cloned.
    pub fn sent(&self, dir: Dir, mut f: impl FnMut(&Sent) -> bool) -> Vec<Sent> {
        self.segs()
            .iter()
            .filter(|s| s.dir == dir && f(s))
            .cloned()
            .collect()
    }
}

/// Whether some earlier segment in `dir` already carried sequence number `seq` as data.
pub fn sent_before(history: &[Sent], dir: Dir, seq: SeqNumber) -> bool {
    history
        .iter()
        .any(|s| s.dir == dir && s.is_data() && s.seq == seq)
}

/// A drop rule that loses the first transmission of the `nth` (1-based) new data segments the
/// client sends.
pub fn lose_first_transmission_of(nth: &'static [usize]) -> impl FnMut(&Sent, &[Sent]) -> bool {
    let mut n = 0;
    move |s, h| {
        if s.dir != Dir::ToServer || !s.is_data() || sent_before(h, Dir::ToServer, s.seq) {
            return false;
        }
        n += 1;
        nth.contains(&n)
    }
}

/// The ISN a direction used (from its SYN), if a SYN was sent.
pub fn isn_of(history: &[Sent], dir: Dir) -> Option<SeqNumber> {
    history
        .iter()
        .find(|s| s.dir == dir && s.has(Flags::SYN))
        .map(|s| s.seq)
}

// ---------------------------------------------------------------------------------------
// Byte patterns

/// A per-connection pseudo-random byte stream: a 4093-byte random table (a prime length, so
/// no segment size lines it up) plus a per-lap offset, so a byte moved, duplicated or lost
/// anywhere shows.
#[derive(Clone)]
pub struct Pattern(Rc<[u8]>);

const PATTERN_TABLE: usize = 4093;

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut t = vec![0u8; PATTERN_TABLE];
        Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xa5a5).fill(&mut t);
        Pattern(t.into())
    }

    /// Writes bytes `from..from + out.len()` of the stream into `out`.
    pub fn fill(&self, from: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let at = from + i;
            *b = self.0[at % PATTERN_TABLE].wrapping_add((at / PATTERN_TABLE) as u8);
        }
    }

    /// Whether `data` equals bytes `from..` of the stream.
    pub fn matches(&self, from: usize, data: &[u8]) -> bool {
        data.iter().enumerate().all(|(i, b)| {
            let at = from + i;
            *b == self.0[at % PATTERN_TABLE].wrapping_add((at / PATTERN_TABLE) as u8)
        })
    }

    /// The first `len` bytes.
    pub fn bytes(&self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(0, &mut v);
        v
    }
}

// ---------------------------------------------------------------------------------------
// Apps

/// What a [`Bulk`] client or a [`Server`] saw, summed over its connections.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections that reached `on_connected`.
    pub connected: u64,
    /// Connections whose received stream was complete and exact.
    pub completed: u64,
    /// Bytes that did not match the pattern (any is a failure).
    pub mismatched: u64,
    /// Bytes received in order, all connections.
    pub received: u64,
    /// Why connections ended.
    pub closed: Vec<CloseReason>,
    /// When the first connection completed and when the last did.
    pub first_done: Option<Instant>,
    pub last_done: Option<Instant>,
}

impl Tally {
    pub fn closed_with(&self, reason: CloseReason) -> usize {
        self.closed.iter().filter(|r| **r == reason).count()
    }
}

/// An active-open app: writes `len` bytes of its connection's [`Pattern`] (seeded by its local
/// port), then either half-closes (`echo` false) or reads `len` echoed bytes back, checks them
/// and closes.
#[derive(Clone)]
pub struct Bulk {
    pub len: usize,
    pub echo: bool,
    /// Neither half-close after writing nor close after reading: the connection stays open.
    pub stay_open: bool,
    pub tally: Rc<RefCell<Tally>>,
    scratch: Vec<u8>,
}

impl Bulk {
    pub fn new(len: usize, echo: bool) -> Bulk {
        Bulk {
            len,
            echo,
            stay_open: false,
            tally: Rc::default(),
            scratch: Vec::new(),
        }
    }

    fn write_more(&mut self, st: &mut BulkConn, io: &mut Io<'_>) {
        let Some(pattern) = &st.pattern else { return };
        while st.written < self.len {
            let n = (self.len - st.written).min(io.send_space()).min(16 * 1024);
            if n == 0 {
                return;
            }
            self.scratch.resize(n, 0);
            pattern.fill(st.written, &mut self.scratch);
            let w = io.write(&self.scratch);
            st.written += w;
            if w < n {
                return;
            }
        }
        if !self.echo && !self.stay_open {
            io.shutdown_write();
        }
    }
}

#[derive(Default)]
pub struct BulkConn {
    pattern: Option<Pattern>,
    written: usize,
    read: usize,
    done: bool,
}

impl App for Bulk {
    type State = BulkConn;

    fn on_connected(&mut self, st: &mut BulkConn, io: &mut Io<'_>) {
        st.pattern = Some(Pattern::new(u64::from(io.tuple().local_port)));
        self.tally.borrow_mut().connected += 1;
        self.write_more(st, io);
    }

    fn on_writable(&mut self, st: &mut BulkConn, io: &mut Io<'_>) {
        self.write_more(st, io);
    }

    fn on_data(&mut self, st: &mut BulkConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        let mut t = self.tally.borrow_mut();
        t.received += data.len() as u64;
        let pattern = st.pattern.as_ref().expect("connected");
        let expected = data.len().min(self.len.saturating_sub(st.read));
        if !pattern.matches(st.read, &data[..expected]) || expected < data.len() {
            t.mismatched += data.len() as u64;
        }
        st.read += data.len();
        if self.echo && st.read >= self.len && !st.done {
            st.done = true;
            t.completed += 1;
            t.first_done.get_or_insert(io.now());
            t.last_done = Some(io.now());
            if !self.stay_open {
                io.close();
            }
        }
        drop(t);
        self.write_more(st, io);
        data.len()
    }

    fn on_peer_closed(&mut self, _: &mut BulkConn, io: &mut Io<'_>) {
        io.close();
    }

    fn on_closed(&mut self, _: &mut BulkConn, reason: CloseReason) {
        self.tally.borrow_mut().closed.push(reason);
    }
}

/// A passive-open app: echoes (or, with `echo` false, just reads) and checks what it reads
/// against the peer's [`Pattern`] (seeded by the remote port) when `expect` is set. While
/// `stalled` is set it consumes nothing, so its receive buffer fills and the window closes.
#[derive(Clone)]
pub struct Server {
    pub echo: bool,
    /// Stream length expected from each peer (checked against the pattern), if any.
    pub expect: Option<usize>,
    pub stalled: Rc<Cell<bool>>,
    pub tally: Rc<RefCell<Tally>>,
    /// Every `on_data` call: (time, bytes offered, bytes consumed).
    pub offers: Rc<RefCell<Vec<(Instant, usize, usize)>>>,
}

impl Server {
    pub fn new(echo: bool, expect: Option<usize>) -> Server {
        Server {
            echo,
            expect,
            stalled: Rc::default(),
            tally: Rc::default(),
            offers: Rc::default(),
        }
    }
}

#[derive(Default)]
pub struct ServerConn {
    pattern: Option<Pattern>,
    read: usize,
}

impl App for Server {
    type State = ServerConn;

    fn on_connected(&mut self, st: &mut ServerConn, io: &mut Io<'_>) {
        st.pattern = Some(Pattern::new(u64::from(io.tuple().remote_port)));
        self.tally.borrow_mut().connected += 1;
    }

    fn on_data(&mut self, st: &mut ServerConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        let n = if self.stalled.get() {
            0
        } else if self.echo {
            io.write(data)
        } else {
            data.len()
        };
        self.offers.borrow_mut().push((io.now(), data.len(), n));
        let mut t = self.tally.borrow_mut();
        t.received += n as u64;
        if let (Some(len), Some(p)) = (self.expect, &st.pattern) {
            let expected = n.min(len.saturating_sub(st.read));
            if expected < n || !p.matches(st.read, &data[..n]) {
                t.mismatched += n as u64;
            }
            if st.read < len && st.read + n >= len {
                t.completed += 1;
                t.first_done.get_or_insert(io.now());
                t.last_done = Some(io.now());
            }
        }
        st.read += n;
        n
    }

    fn on_peer_closed(&mut self, _: &mut ServerConn, io: &mut Io<'_>) {
        io.close();
    }

    fn on_closed(&mut self, _: &mut ServerConn, reason: CloseReason) {
        self.tally.borrow_mut().closed.push(reason);
    }
}

/// An active-open app for request/response rounds: writes a `size`-byte message, waits for
/// its echo, writes the next, `rounds` times, then closes. Each message is one segment.
#[derive(Clone)]
pub struct PingPong {
    pub size: usize,
    pub rounds: usize,
    pub tally: Rc<RefCell<Tally>>,
}

impl PingPong {
    pub fn new(size: usize, rounds: usize) -> PingPong {
        PingPong {
            size,
            rounds,
            tally: Rc::default(),
        }
    }

    fn message(&self, round: usize) -> Vec<u8> {
        vec![round as u8; self.size]
    }
}

#[derive(Default)]
pub struct PingPongConn {
    round: usize,
    read: usize,
}

impl App for PingPong {
    type State = PingPongConn;

    fn on_connected(&mut self, _: &mut PingPongConn, io: &mut Io<'_>) {
        self.tally.borrow_mut().connected += 1;
        assert_eq!(io.write(&self.message(0)), self.size);
    }

    fn on_data(&mut self, st: &mut PingPongConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        let mut t = self.tally.borrow_mut();
        t.received += data.len() as u64;
        for b in data {
            if *b != st.round as u8 {
                t.mismatched += 1;
            }
            st.read += 1;
            if st.read == self.size {
                st.read = 0;
                st.round += 1;
                if st.round == self.rounds {
                    t.completed += 1;
                    io.close();
                } else {
                    assert_eq!(io.write(&self.message(st.round)), self.size);
                }
            }
        }
        data.len()
    }

    fn on_closed(&mut self, _: &mut PingPongConn, reason: CloseReason) {
        self.tally.borrow_mut().closed.push(reason);
    }
}
