//! The engine-wide memory budget (`Config::memory_limit`, Linux's `tcp_mem`): the running count
//! equals the walk; out-of-order hoarders are pruned and recover; never-reading peers of echo
//! are held to the budget by the windows and send space, and get every byte back; at the limit
//! new connections are refused while existing ones keep working; windows shrink without
//! moving their right edge back (RFC 9293 §3.8.6).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use xdptcp::app::echo::Echo;
use xdptcp::app::{App, Io, Shutdown};
use xdptcp::sim::{Dir, LinkConfig, Pair, Rng, configs};
use xdptcp::stats::DropReason;
use xdptcp::tcp::{Config, ConnId, Engine, SynCookieMode};
use xdptcp::wire::SeqNumber;

use crate::netsim::{Pattern, Server};
use crate::util::*;

/// Payload bytes per segment with timestamps (MSS 1460 less the 12-byte option).
const MSS: usize = 1448;
/// Our window scale in every handshake here (the engine's default, 7).
const WSCALE: u8 = 7;
/// What a buffer may always grow to, whatever the budget (`tcp/budget.rs`'s `MIN_BUFFER`).
const MIN_BUFFER: u64 = 4096;

/// Checks the running count against the walk and returns the bytes counted.
#[track_caller]
fn counted<A: App>(e: &Engine<A>) -> u64 {
    let m = e.memory();
    assert_eq!(
        m.budget_used, m.buffer_bytes,
        "running count vs walk: {m:?}"
    );
    m.budget_used
}

fn limited(limit: usize) -> Config {
    Config {
        memory_limit: limit,
        ..server_config()
    }
}

// ---------------------------------------------------------------------------------------------
// One peer playing many clients by hand

/// A connection a [`Peer`] plays by hand: its port, the engine's ISS + 1 (what it
/// acknowledges), and the engine's cumulative ACK and advertised right edge as last heard.
struct Hand {
    port: u16,
    engine_nxt: SeqNumber,
    ack: SeqNumber,
    edge: SeqNumber,
}

/// Our ISN in every handshake: data starts at ISN + 1.
const ISN: u32 = 1000;

fn start(seq: usize) -> SeqNumber {
    SeqNumber(ISN + 1) + seq
}

/// Opens connection `port` (a Linux-like SYN: MSS 1460, SACK, timestamps, window scale 7).
fn open<A: App>(p: &mut Peer<A>, port: u16) -> Hand {
    p.port = port;
    let sa = p.handshake(ISN);
    Hand {
        port,
        engine_nxt: sa.seq + 1u32,
        ack: start(0),
        edge: start(0) + usize::from(sa.window),
    }
}

/// Sends `len` bytes of `port`'s pattern at stream offset `at` on `h` and takes what the
/// engine answered on that connection into `h`.
fn send_data<A: App>(p: &mut Peer<A>, h: &mut Hand, at: usize, len: usize) -> Vec<Seg> {
    p.port = h.port;
    let mut data = vec![0; len];
    Pattern::new(u64::from(h.port)).fill(at, &mut data);
    let s = seg(ACK)
        .seq(start(at).0)
        .ack(h.engine_nxt)
        .ts(PEER_TS + 1, 0)
        .data(&data);
    let replies = p.send(s);
    hear(h, &replies);
    replies
}

/// Takes the engine's ACKs for `h` among `replies`: its cumulative ACK and right edge.
fn hear(h: &mut Hand, replies: &[Seg]) {
    for r in replies.iter().filter(|r| r.dst_port == h.port) {
        if r.ack.gt(h.ack) {
            h.ack = r.ack;
        }
        let edge = r.ack + (u32::from(r.window) << WSCALE);
        if edge.gt(h.edge) {
            h.edge = edge;
        }
    }
}

/// Runs the engine's timers for `d` (delayed ACKs) and hears them on every connection.
fn settle<A: App>(p: &mut Peer<A>, hands: &mut [Hand], d: Duration) {
    let sent: Vec<Seg> = p.run_timers(d).into_iter().map(|(_, s)| s).collect();
    for h in hands.iter_mut() {
        hear(h, &sent);
    }
}

/// Offset of `seq` in the stream.
fn offset(seq: SeqNumber) -> usize {
    (seq - start(0)) as usize
}

/// Sends the stream `[0, len)` of every hand in order, from what the engine acknowledged up to
/// its right edge, again and again (whatever the engine dropped or pruned is sent again) until
/// all of it is acknowledged; false if that takes more than `rounds` rounds.
fn deliver_in_order<A: App>(p: &mut Peer<A>, hands: &mut [Hand], len: usize, rounds: u32) -> bool {
    for _ in 0..rounds {
        let mut pending = false;
        for h in hands.iter_mut() {
            let mut at = offset(h.ack);
            while at < len && start(at).lt(h.edge) {
                let n = MSS.min(len - at).min((h.edge - start(at)) as usize);
                send_data(p, h, at, n);
                at += n;
            }
            pending |= offset(h.ack) < len;
        }
        if !pending {
            return true;
        }
        settle(p, hands, Duration::from_millis(50));
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Out-of-order hoarding

/// Per-connection stream of the hoarding test: the whole receive window.
const HOARD: usize = 256 * 1024;

#[test]
fn out_of_order_hoarding_across_hundreds_of_connections_stays_under_the_budget_and_recovers() {
    const CONNS: u16 = 200;
    const LIMIT: usize = 2 << 20;
    let app = Server::new(false, Some(HOARD));
    let tally = app.tally.clone();
    let mut p = Peer::server(limited(LIMIT), app);
    let mut hands: Vec<Hand> = (0..CONNS).map(|i| open(&mut p, 41_000 + i)).collect();
    // Every connection fills its window out of order, never sending its first segment.
    let mut highest = 0u64;
    for round in 0..3 {
        for h in &mut hands {
            let mut at = MSS;
            while at < HOARD && start(at).lt(h.edge) {
                let n = MSS.min(HOARD - at).min((h.edge - start(at)) as usize);
                send_data(&mut p, h, at, n);
                at += n;
                highest = highest.max(counted(&p.engine));
            }
            assert_eq!(h.ack, start(0), "round {round}: the hole is never filled");
        }
    }
    let s = p.engine.stats().clone();
    eprintln!(
        "hoarding: at most {highest} B held of a {LIMIT} B budget; {} prunes, {} B pruned, \
         {} dropped; {s}",
        s.ofo_prunes,
        s.ofo_pruned_bytes,
        s.dropped(DropReason::OfoMemory)
    );
    // After every event the oldest holders were pruned back to the pressure mark.
    assert!(highest <= (LIMIT - LIMIT / 3) as u64, "{highest} B held");
    assert!(
        u64::from(CONNS) * HOARD as u64 > 10 * LIMIT as u64,
        "the hoarders offered far more than the budget"
    );
    assert!(
        s.ofo_prunes > 0 && s.ofo_pruned_bytes > 0,
        "pruning is counted"
    );
    assert!(s.memory_pressures > 0);
    assert!(
        p.engine.memory().under_pressure == 1,
        "still under pressure"
    );
    // A new connection that loses a segment keeps what follows it: the hoarders make room.
    let mut young = open(&mut p, 41_000 + CONNS);
    send_data(&mut p, &mut young, MSS, MSS);
    assert_eq!(p.engine.stats().ooo_segments, s.ooo_segments + 1);
    send_data(&mut p, &mut young, 0, MSS);
    assert_eq!(
        young.ack,
        start(2 * MSS),
        "the kept segment was delivered too"
    );
    assert_eq!(
        p.engine.stats().dropped(DropReason::OfoMemory),
        s.dropped(DropReason::OfoMemory)
    );
    assert!(deliver_in_order(
        &mut p,
        std::slice::from_mut(&mut young),
        HOARD,
        1000
    ));
    tally.borrow_mut().completed -= 1;
    tally.borrow_mut().received -= HOARD as u64;
    // The holes are filled: every connection gets its whole stream, byte-exact.
    assert!(deliver_in_order(&mut p, &mut hands, HOARD, 10_000));
    let t = tally.borrow();
    assert_eq!(t.completed, u64::from(CONNS), "{t:?}");
    assert_eq!(t.mismatched, 0);
    assert_eq!(t.received, u64::from(CONNS) * HOARD as u64);
    drop(t);
    assert!(counted(&p.engine) <= LIMIT as u64);
}

// ---------------------------------------------------------------------------------------------
// Never-reading peers of echo

/// A client that writes `len` bytes of its pattern and reads nothing back until `reading` is
/// set; then it reads the echo, checks every byte and closes.
#[derive(Clone)]
struct Hoarder {
    len: usize,
    reading: Rc<Cell<bool>>,
    completed: Rc<Cell<u64>>,
    mismatched: Rc<Cell<u64>>,
}

#[derive(Default)]
struct HoarderConn {
    pattern: Option<Pattern>,
    written: usize,
    read: usize,
}

impl Hoarder {
    fn write_more(&self, st: &mut HoarderConn, io: &mut Io<'_>) {
        let Some(pattern) = &st.pattern else { return };
        let mut chunk = vec![0; 16 * 1024];
        while st.written < self.len {
            let n = chunk.len().min(self.len - st.written).min(io.send_space());
            if n == 0 {
                return;
            }
            pattern.fill(st.written, &mut chunk[..n]);
            st.written += io.write(&chunk[..n]);
        }
    }
}

impl App for Hoarder {
    type State = HoarderConn;

    fn on_connected(&mut self, st: &mut HoarderConn, io: &mut Io<'_>) {
        st.pattern = Some(Pattern::new(u64::from(io.tuple().local_port)));
        self.write_more(st, io);
    }

    fn on_writable(&mut self, st: &mut HoarderConn, io: &mut Io<'_>) {
        self.write_more(st, io);
    }

    fn on_data(&mut self, st: &mut HoarderConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        if !self.reading.get() {
            return 0;
        }
        let pattern = st.pattern.as_ref().expect("connected");
        if st.read + data.len() > self.len || !pattern.matches(st.read, data) {
            self.mismatched
                .set(self.mismatched.get() + data.len() as u64);
        }
        st.read += data.len();
        if st.read == self.len {
            self.completed.set(self.completed.get() + 1);
            io.close();
        }
        self.write_more(st, io);
        data.len()
    }

    fn on_peer_closed(&mut self, _: &mut HoarderConn, io: &mut Io<'_>) {
        io.close();
    }
}

#[test]
fn never_reading_peers_of_echo_stay_under_the_budget_then_read_every_byte_exactly() {
    const CONNS: u16 = 24;
    const LEN: usize = 1 << 20;
    const LIMIT: usize = 1 << 20;
    let (ccfg, mut scfg) = configs(5);
    scfg.memory_limit = LIMIT;
    let client = Hoarder {
        len: LEN,
        reading: Rc::default(),
        completed: Rc::default(),
        mismatched: Rc::default(),
    };
    let (reading, completed, mismatched) = (
        client.reading.clone(),
        client.completed.clone(),
        client.mismatched.clone(),
    );
    let mut p = Pair::new(ccfg, client, scfg, Echo::new(), LinkConfig::default());
    let ids: Vec<ConnId> = (0..CONNS)
        .map(|i| p.connect(42_000 + i).expect("connect"))
        .collect();
    // What the budget may be passed by: each connection's send and receive buffer may always
    // hold MIN_BUFFER, so that it makes progress.
    let bound = LIMIT as u64 + 2 * MIN_BUFFER * u64::from(CONNS);
    let (mut highest, mut above_half) = (0, false);
    let limit = p.now + Duration::from_secs(30);
    while p.step(limit) {
        highest = highest.max(counted(&p.server));
        above_half |= p.server.memory_above_half();
    }
    assert!(above_half, "the shell is told to give free pages back");
    let s = p.server.stats().clone();
    eprintln!(
        "never reading: at most {highest} B held of a {LIMIT} B budget (bound {bound}); \
         echoed {} B; {s}",
        p.server.app().bytes()
    );
    assert!(highest <= bound, "{highest} B held");
    assert!(
        highest > LIMIT as u64 / 2,
        "the peers did try to fill it: {highest}"
    );
    assert!(s.memory_pressures > 0);
    assert!(s.rcv_window_clamped > 0, "windows shrank");
    assert!(s.send_memory_limited > 0, "send space shrank");
    // Now they read: everything comes back, byte-exact, and the budget still holds.
    reading.set(true);
    for id in &ids {
        let mut out = Vec::new();
        p.client.with_io(p.now, *id, &mut out, |_, _, _| ());
        p.send(Dir::ToServer, out);
    }
    let limit = p.now + Duration::from_secs(600);
    while completed.get() < u64::from(CONNS) && p.step(limit) {
        highest = highest.max(counted(&p.server));
    }
    if completed.get() < u64::from(CONNS) {
        for id in &ids {
            eprintln!(
                "client {:?} {:?} {:?} cwnd {:?}",
                id,
                p.client.state(*id),
                p.client.buffers(*id),
                p.client.congestion_window(*id)
            );
        }
        for port in 42_000..42_000 + CONNS {
            let t = xdptcp::tcp::FourTuple {
                local_addr: xdptcp::sim::SERVER_ADDR,
                remote_addr: xdptcp::sim::CLIENT_ADDR,
                local_port: 80,
                remote_port: port,
            };
            if let Some(id) = p.server.find(&t) {
                eprintln!(
                    "server {port} {:?} {:?} {:?}",
                    p.server.state(id),
                    p.server.buffers(id),
                    p.server.connection_bytes(id)
                );
            }
        }
        eprintln!(
            "server {:?}\nclient {}\nnext {:?}",
            p.server.memory(),
            p.client.stats(),
            p.next_event()
        );
    }
    assert_eq!(completed.get(), u64::from(CONNS), "{}", p.server.stats());
    assert_eq!(mismatched.get(), 0);
    assert_eq!(p.server.app().bytes(), u64::from(CONNS) * LEN as u64);
    assert!(highest <= bound, "{highest} B held");
    p.run_for(Duration::from_secs(5));
    assert_eq!(p.server.connections(), 0);
    assert!(!p.server.memory_above_half());
    assert_eq!(
        counted(&p.server),
        0,
        "every byte went back with its connection"
    );
}

// ---------------------------------------------------------------------------------------------
// At the hard limit

/// Echoes on connections from ports below [`STALL_FROM`]; consumes nothing on the others until
/// `unstall` is set.
#[derive(Clone, Default)]
struct Mixed {
    unstall: Rc<Cell<bool>>,
}

const STALL_FROM: u16 = 50_000;

impl App for Mixed {
    type State = ();

    fn on_data(&mut self, _: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
        if io.tuple().remote_port >= STALL_FROM && !self.unstall.get() {
            return 0;
        }
        if io.tuple().remote_port >= STALL_FROM {
            return data.len();
        }
        io.write(data)
    }
}

#[test]
fn at_the_limit_new_connections_are_refused_and_counted_while_existing_ones_keep_working() {
    const LIMIT: usize = 256 * 1024;
    let mut cfg = limited(LIMIT);
    cfg.syncookies = SynCookieMode::Always;
    let app = Mixed::default();
    let unstall = app.unstall.clone();
    let mut p = Peer::server(cfg, app);
    // A working connection, and a cookie SYN-ACK whose ACK comes later (as when the XDP
    // program answers the SYN).
    p.port = 40_001;
    let sa = p.send(linux_syn(ISN)).remove(0);
    let mut worker = Hand {
        port: 40_001,
        engine_nxt: sa.seq + 1u32,
        ack: start(0),
        edge: start(0) + usize::from(sa.window),
    };
    p.send(cookie_ack(ISN, &sa));
    assert!(p.engine.find(&p.tuple()).is_some(), "established");
    p.port = 40_002;
    let late = p.send(linux_syn(ISN)).remove(0);
    // Stalled readers fill the budget with data they do not consume.
    let mut stalled = Vec::new();
    for port in STALL_FROM.. {
        if p.engine.memory().at_limit == 1 {
            break;
        }
        p.port = port;
        let sa = p.send(linux_syn(ISN)).remove(0);
        p.send(cookie_ack(ISN, &sa));
        let mut h = Hand {
            port,
            engine_nxt: sa.seq + 1u32,
            ack: start(0),
            edge: start(0) + usize::from(sa.window),
        };
        // The last one may not fit whole: what the budget has no room for is dropped.
        deliver_in_order(&mut p, std::slice::from_mut(&mut h), 48 * 1024, 20);
        stalled.push(h);
        assert!(port < STALL_FROM + 100, "the budget never filled");
    }
    let held = counted(&p.engine);
    assert!(held + MIN_BUFFER > LIMIT as u64, "{held}");
    // A new SYN: no answer, counted.
    p.port = 40_003;
    recv_nothing!(p.send(linux_syn(ISN)), "a SYN at the limit");
    assert_eq!(p.engine.stats().dropped(DropReason::SynMemory), 1);
    // The cookie ACK of a SYN answered before: no connection, no answer, counted.
    p.port = 40_002;
    recv_nothing!(p.send(cookie_ack(ISN, &late)), "a cookie ACK at the limit");
    assert_eq!(p.engine.stats().dropped(DropReason::CookieMemory), 1);
    assert!(p.engine.find(&p.tuple()).is_none());
    // The existing connection still echoes.
    let echoed = send_data(&mut p, &mut worker, 0, 1000);
    let back: Vec<u8> = echoed.iter().flat_map(|s| s.payload.clone()).collect();
    let mut want = vec![0; 1000];
    Pattern::new(40_001).fill(0, &mut want);
    assert_eq!(back, want, "echoed at the limit: {echoed:?}");
    assert!(counted(&p.engine) <= held + 2 * MIN_BUFFER);
    // Out-of-order data finds no room either: dropped, counted, never acknowledged.
    let ofo_drops = p.engine.stats().dropped(DropReason::OfoMemory);
    let sacked = send_data(&mut p, &mut worker, 1000 + 4 * MSS, MSS);
    assert!(
        sacked.iter().all(|s| s.options.sack_count == 0),
        "nothing to SACK: {sacked:?}"
    );
    assert_eq!(
        p.engine.stats().dropped(DropReason::OfoMemory),
        ofo_drops + 1
    );
    assert!(counted(&p.engine) <= held + 2 * MIN_BUFFER);
    // Memory comes back once the stalled readers read: the same cookie ACK, retransmitted, is
    // taken, and a new SYN is answered.
    unstall.set(true);
    for h in &mut stalled {
        send_data(&mut p, h, 48 * 1024, 1);
    }
    assert!(p.engine.memory().at_limit == 0, "{:?}", p.engine.memory());
    p.port = 40_002;
    p.send(cookie_ack(ISN, &late));
    assert!(
        p.engine.find(&p.tuple()).is_some(),
        "the retransmitted cookie ACK is taken"
    );
    p.port = 40_003;
    let r = p.send(linux_syn(ISN));
    assert!(r.len() == 1 && r[0].is(SYN_ACK), "{r:?}");
    assert_eq!(p.engine.stats().dropped(DropReason::SynMemory), 1);
}

#[test]
fn data_beyond_a_hole_the_budget_made_is_not_kept_until_the_hole_is_filled() {
    const LIMIT: usize = 128 * 1024;
    let mut p = Peer::server(limited(LIMIT), Mixed::default());
    // Two stalled readers; the first fills the budget until its data is dropped.
    let mut a = open(&mut p, STALL_FROM);
    let mut b = open(&mut p, STALL_FROM + 1);
    assert!(deliver_in_order(
        &mut p,
        std::slice::from_mut(&mut b),
        32 * 1024,
        100
    ));
    let mut at = 0;
    while p.engine.stats().dropped(DropReason::RcvMemory) == 0 {
        send_data(&mut p, &mut a, at, MSS);
        at += MSS;
        assert!(at < 2 * LIMIT, "never dropped");
    }
    let hole = at - MSS;
    assert_eq!(
        a.ack,
        start(hole),
        "the last segment was dropped, unacknowledged"
    );
    // The other one goes, and its memory with it: there is room again, but not for data
    // beyond the hole, which the hole needs first.
    p.port = b.port;
    p.send(seg(RST).seq(start(32 * 1024).0));
    assert!(counted(&p.engine) + 8 * MSS as u64 <= LIMIT as u64);
    let kept = p.engine.stats().ooo_segments;
    send_data(&mut p, &mut a, hole + MSS, MSS);
    assert_eq!(
        p.engine.stats().ooo_segments,
        kept,
        "not kept beyond the hole"
    );
    assert_eq!(p.engine.stats().dropped(DropReason::OfoMemory), 1);
    // The hole is filled: the stream goes on, and data beyond a hole is kept again.
    send_data(&mut p, &mut a, hole, MSS);
    settle(
        &mut p,
        std::slice::from_mut(&mut a),
        Duration::from_millis(50),
    );
    assert_eq!(a.ack, start(hole + MSS));
    send_data(&mut p, &mut a, hole + 2 * MSS, MSS);
    assert_eq!(p.engine.stats().ooo_segments, kept + 1);
}

// ---------------------------------------------------------------------------------------------
// Windows under pressure

/// Puts the engine under memory pressure with stalled readers of 64 KiB each; returns them.
fn press<A: App>(p: &mut Peer<A>) -> Vec<Hand> {
    let mut stalled = Vec::new();
    while p.engine.memory().under_pressure == 0 {
        let mut h = open(p, STALL_FROM + stalled.len() as u16);
        deliver_in_order(p, std::slice::from_mut(&mut h), 64 * 1024, 100);
        stalled.push(h);
        assert!(stalled.len() < 100, "never under pressure");
    }
    stalled
}

#[test]
fn under_pressure_an_app_gets_no_more_send_space_than_its_buffer_holds() {
    const LIMIT: usize = 512 * 1024;
    let mut p = Peer::server(limited(LIMIT), Mixed::default());
    let mut h = open(&mut p, 40_001);
    let id = p.engine.find(&p.tuple()).expect("established");
    let space = |p: &Peer<Mixed>| p.engine.buffers(id).expect("live").send_space;
    assert_eq!(space(&p), 256 * 1024, "the whole send buffer");
    press(&mut p);
    assert!(
        counted(&p.engine) + (64 << 10) < LIMIT as u64,
        "room is left"
    );
    assert_eq!(
        space(&p),
        MIN_BUFFER as usize,
        "an empty buffer may hold 4 KiB"
    );
    // It still echoes, through the 4 KiB it may hold.
    let echoed = send_data(&mut p, &mut h, 0, 3000);
    assert_eq!(echoed.iter().map(Seg::len).sum::<usize>(), 3000);
    assert_eq!(space(&p), MIN_BUFFER as usize - 3000, "in flight");
}

#[test]
fn under_pressure_the_window_opens_by_four_segments_and_its_right_edge_never_moves_back() {
    const LIMIT: usize = 512 * 1024;
    let mut p = Peer::server(limited(LIMIT), Mixed::default());
    // Stalled readers put the engine under pressure (above 2/3 of the budget). What they hold
    // is acknowledged: it stays, whatever the pressure.
    let port = STALL_FROM + press(&mut p).len() as u16;
    let held = (port - STALL_FROM) as u64 * 64 * 1024;
    // Another stalled reader, sending a segment at a time at its cumulative ACK: the window it
    // was promised in the SYN-ACK stays; past it, the window opens by at most 4 segments
    // beyond RCV.NXT, and by no more than the budget has room for.
    let mut h = open(&mut p, port);
    let clamped_before = p.engine.stats().rcv_window_clamped;
    let mut last_edge = h.edge;
    let mut watch = |h: &Hand, segs: &[Seg]| {
        for r in segs.iter().filter(|r| r.dst_port == h.port && r.is(ACK)) {
            // RFC 7323 §2.4: within the scale's granularity an edge may look retracted (the
            // receiver still honours the old one); never more.
            let edge = r.ack + (u32::from(r.window) << WSCALE);
            assert!(
                (edge + (1u32 << WSCALE)).gt(last_edge),
                "the right edge moved back: {r:?}"
            );
            let four_segments = r.ack + (4 * MSS + (1 << WSCALE));
            assert!(
                edge.le(last_edge + (1u32 << WSCALE)) || edge.le(four_segments),
                "{} B past RCV.NXT under pressure: {r:?}",
                edge - r.ack
            );
            if edge.gt(last_edge) {
                last_edge = edge;
            }
        }
    };
    for _ in 0..1000 {
        let (before, at) = (h.ack, offset(h.ack));
        if !start(at).lt(h.edge) {
            break;
        }
        let n = MSS.min((h.edge - start(at)) as usize);
        let replies = send_data(&mut p, &mut h, at, n);
        watch(&h, &replies);
        if h.ack == before {
            let sent: Vec<Seg> = p
                .run_timers(Duration::from_millis(50))
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            hear(&mut h, &sent);
            watch(&h, &sent);
            if h.ack == before {
                break;
            }
        }
    }
    let taken = offset(h.ack) as u64;
    eprintln!("under pressure: {taken} B taken beside {held} B held");
    assert!(p.engine.stats().rcv_window_clamped > clamped_before);
    assert!(
        taken >= 65_535 - MSS as u64,
        "the promised window is honoured: {taken}"
    );
    assert!(
        taken + held <= LIMIT as u64,
        "{taken} B taken beside {held} B: past the budget"
    );
    assert!(counted(&p.engine) <= LIMIT as u64);
}

// ---------------------------------------------------------------------------------------------
// The running count

/// A client that reads everything; the test writes on its connections, shuts them down and
/// aborts them at random.
#[derive(Default)]
struct Random;

impl App for Random {
    type State = ();

    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

#[test]
fn the_running_count_equals_the_walk_through_thousands_of_random_events() {
    const CONNS: u16 = 40;
    let (mut ccfg, mut scfg) = configs(11);
    // Tight budgets on both sides, so pressure, pruning, collapsing and drops all happen.
    ccfg.memory_limit = 384 * 1024;
    scfg.memory_limit = 256 * 1024;
    let link = LinkConfig {
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.1,
        ..LinkConfig::default()
    };
    let mut p = Pair::new(ccfg, Random, scfg, Echo::new(), link);
    let mut rng = Rng::new(99);
    let mut ids: BTreeMap<u16, ConnId> = BTreeMap::new();
    let mut events = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    while events < 20_000 {
        events += 1;
        let next = p.now + Duration::from_millis(10);
        p.step(next);
        counted(&p.client);
        counted(&p.server);
        let port = 43_000 + (rng.next_u64() % u64::from(CONNS)) as u16;
        match rng.next_u64() % 8 {
            0 if !ids.contains_key(&port) => {
                if let Ok(id) = p.connect(port) {
                    ids.insert(port, id);
                }
            }
            1..=4 => {
                if let Some(id) = ids.get(&port) {
                    let n = (rng.next_u64() % chunk.len() as u64) as usize;
                    rng.fill(&mut chunk[..n]);
                    let mut out = Vec::new();
                    p.client
                        .with_io(p.now, *id, &mut out, |_, _, io| io.write(&chunk[..n]));
                    p.send(Dir::ToServer, out);
                }
            }
            5 if rng.next_u64() % 16 == 0 => {
                if let Some(id) = ids.remove(&port) {
                    let how = if rng.next_u64() % 2 == 0 {
                        Shutdown::Close
                    } else {
                        Shutdown::Abort
                    };
                    let mut out = Vec::new();
                    p.client.shutdown(p.now, id, how, &mut out);
                    p.send(Dir::ToServer, out);
                }
            }
            _ => {}
        }
        counted(&p.client);
        counted(&p.server);
    }
    let (c, s) = (p.client.stats(), p.server.stats());
    eprintln!("{events} events\n  client {c}\n  server {s}");
    assert!(
        s.memory_pressures > 0 && c.memory_pressures > 0,
        "pressure was reached"
    );
    assert!(s.ooo_segments > 0, "out-of-order data was kept");
    assert!(
        s.ofo_prunes + c.ofo_prunes > 0,
        "out-of-order data was pruned"
    );
}

/// The budget of a connection made by hand is the same whether data reaches it in order or out
/// of order, and a closed connection leaves nothing counted.
#[test]
fn a_connection_counts_what_it_holds_and_nothing_once_gone() {
    let app = Mixed::default();
    let mut p = Peer::server(limited(1 << 20), app);
    let mut h = open(&mut p, STALL_FROM);
    send_data(&mut p, &mut h, MSS, MSS);
    let ooo = counted(&p.engine);
    assert!(ooo >= MSS as u64, "{ooo}");
    send_data(&mut p, &mut h, 0, MSS);
    assert!(counted(&p.engine) >= 2 * MSS as u64);
    p.port = STALL_FROM;
    p.send(seg(RST).seq(start(2 * MSS).0));
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(counted(&p.engine), 0);
}
