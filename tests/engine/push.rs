//! Where PSH goes and when short segments wait, as Linux sends them: PSH on the segment that
//! ends a pushed write (`tcp_push` / `tcp_mark_push`, RFC 9293 §3.9.1 SEND's PUSH flag), on
//! the last segment of each burst cut as Linux cuts TSO packets (`__tcp_transmit_skb`, half
//! the congestion window, `tcp_tso_autosize` with `tcp_min_tso_segs`), every half of the
//! peer's largest window (`forced_push`) and on a persist fill (`tcp_write_wakeup`); Nagle's
//! algorithm with Minshall's check (RFC 1122 §4.2.3.4, RFC 896, `tcp_nagle_check`),
//! `TCP_CORK` and `MSG_MORE`; and how much a write after idle sends at once (RFC 5681 §4.1,
//! `tcp_cwnd_restart`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use xdptcp::app::{App, Io};
use xdptcp::tcp::{Config, ConnId};
use xdptcp::time::Instant;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::tcp::Flags;

use crate::util::*;

/// What the app does at its next wake, in order.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `write(n bytes)`.
    Write(usize),
    /// `send(n bytes, MSG_MORE)`.
    More(usize),
    /// `setsockopt(TCP_CORK)`.
    Cork(bool),
}

/// An app that does what the test queued when the test wakes it.
#[derive(Default)]
struct Writer {
    ops: Rc<RefCell<Vec<Op>>>,
    id: Rc<Cell<Option<ConnId>>>,
}

impl App for Writer {
    type State = ();

    fn on_connected(&mut self, _: &mut (), io: &mut Io<'_>) {
        self.id.set(Some(io.id()));
    }

    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        data.len()
    }

    fn on_wake(&mut self, _: &mut (), io: &mut Io<'_>, _: Instant) {
        for op in self.ops.borrow_mut().drain(..) {
            match op {
                Op::Write(n) => assert_eq!(io.write(&vec![b'w'; n]), n),
                Op::More(n) => assert_eq!(io.write_more(&vec![b'm'; n]), n),
                Op::Cork(on) => io.set_cork(on),
            }
        }
    }
}

/// A server engine with a [`Writer`] on one established connection, its first RTT sample
/// `rtt`, behind a peer that advertises `window` (no window scaling).
struct Sender {
    p: RawPeer<Writer>,
    ops: Rc<RefCell<Vec<Op>>>,
    id: ConnId,
    /// The engine's first data byte.
    start: SeqNumber,
}

impl Sender {
    fn new(cfg: Config, window: u16, rtt: Duration) -> Sender {
        let app = Writer::default();
        let (ops, id) = (app.ops.clone(), app.id.clone());
        let mut p = RawPeer::new(cfg, app);
        p.window = window;
        let (_, answer) = p.handshake_in(None, false, rtt);
        recv_nothing!(answer);
        let start = p.rcv_nxt;
        Sender {
            p,
            ops,
            id: id.get().expect("connected"),
            start,
        }
    }

    /// The app does `ops` now; returns what the engine sent.
    fn app(&mut self, ops: &[Op]) -> Vec<Seg> {
        self.ops.borrow_mut().extend_from_slice(ops);
        let mut tx: Vec<Vec<u8>> = Vec::new();
        let now = self.p.now;
        assert!(self.p.engine.wake(now, self.id, now, &mut tx));
        parse_all(&tx)
    }

    /// The peer acknowledges the engine's first `n` data bytes; returns what the engine sent.
    fn ack(&mut self, n: usize) -> Vec<Seg> {
        self.p.rcv_nxt = self.start + n;
        self.p.send(&[]).into_iter().map(|s| s.seg).collect()
    }
}

/// The data segments of `segs` as (offset from `start`, length, PSH).
fn shape(start: SeqNumber, segs: &[Seg]) -> Vec<(u32, usize, bool)> {
    segs.iter()
        .filter(|s| s.is_data())
        .map(|s| (s.seq - start, s.len(), s.has(Flags::PSH)))
        .collect()
}

/// `n` full segments from `from` (MSS 1460), PSH on those whose index `psh` accepts.
fn full(from: u32, n: u32, psh: impl Fn(u32) -> bool) -> Vec<(u32, usize, bool)> {
    (0..n).map(|i| (from + i * 1460, 1460, psh(i))).collect()
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn psh_goes_only_on_the_segment_that_ends_a_pushed_write() {
    let mut s = Sender::new(server_config(), 65_535, MS);
    // One short write: one segment, and it carries the write's end.
    let sent = s.app(&[Op::Write(1000)]);
    assert_eq!(shape(s.start, &sent), [(0, 1000, true)]);
    // A write of three segments in one burst: only the last has PSH.
    let sent = s.app(&[Op::Write(3000)]);
    assert_eq!(
        shape(s.start, &sent),
        [(1000, 1460, false), (2460, 1460, false), (3920, 80, true)]
    );
}

#[test]
fn a_long_write_goes_out_in_bursts_of_half_the_window_each_ending_with_psh() {
    // After a 1 ms first RTT the pacing rate allows 19 segments a burst (tcp_tso_autosize):
    // half the initial window of 10 cuts them (tcp_cwnd_test), as Linux's TSO packets.
    let mut s = Sender::new(server_config(), 65_535, MS);
    let sent = s.app(&[Op::Write(10 * 1460)]);
    assert_eq!(shape(s.start, &sent), full(0, 10, |i| i == 4 || i == 9));
}

#[test]
fn at_a_slow_pacing_rate_bursts_have_min_tso_segs_segments() {
    // 10 segments per 10 ms at 200 %: a millisecond of it is under one segment, so each burst
    // is tcp_min_tso_segs long (packetdrill's initial_window_10_and_slow_start.pkt, Linux's).
    let mut s = Sender::new(server_config(), 65_535, 10 * MS);
    let sent = s.app(&[Op::Write(10 * 1460)]);
    assert_eq!(shape(s.start, &sent), full(0, 10, |i| i % 2 == 1));
    let cfg = Config {
        min_tso_segs: 4,
        ..server_config()
    };
    let mut s = Sender::new(cfg, 65_535, 10 * MS);
    let sent = s.app(&[Op::Write(10 * 1460)]);
    assert_eq!(
        shape(s.start, &sent),
        full(0, 10, |i| [3, 7, 9].contains(&i))
    );
}

#[test]
fn one_segment_bursts_get_psh_every_half_of_the_peers_largest_window() {
    // The peer's window (4380 bytes, three segments) lets one segment out per ACK: no burst
    // has several, so only forced_push marks them, once 2190 bytes passed the last PSH. The
    // first burst: the second segment passes 2190 bytes, the third ends the burst.
    let mut s = Sender::new(server_config(), 4380, MS);
    let sent = s.app(&[Op::Write(10 * 1460)]);
    assert_eq!(shape(s.start, &sent), full(0, 3, |i| i >= 1));
    let mut later = Vec::new();
    for acked in 1..=7 {
        later.extend(s.ack(acked * 1460));
    }
    // Every second one, and the last (the write's end).
    assert_eq!(
        shape(s.start, &later),
        full(3 * 1460, 7, |i| i % 2 == 1 || i == 6)
    );
}

#[test]
fn without_nodelay_a_short_segment_waits_while_an_earlier_short_one_is_unacked() {
    let cfg = Config {
        nodelay: false,
        ..server_config()
    };
    let mut s = Sender::new(cfg, 65_535, MS);
    assert_eq!(
        shape(s.start, &s.app(&[Op::Write(1460)])),
        [(0, 1460, true)]
    );
    // Minshall: only a full segment is in flight, so a short one goes at once (Nagle's own
    // rule would hold it behind any unacknowledged data).
    assert_eq!(
        shape(s.start, &s.app(&[Op::Write(100)])),
        [(1460, 100, true)]
    );
    // Now a short one is in flight: the next waits, past the ACK of the full segment.
    recv_nothing!(shape(s.start, &s.app(&[Op::Write(100)])));
    recv_nothing!(shape(s.start, &s.ack(1460)));
    // The short one's ACK lets it go.
    assert_eq!(shape(s.start, &s.ack(1560)), [(1560, 100, true)]);
}

#[test]
fn a_corked_connection_sends_only_full_segments_until_uncorked() {
    let mut s = Sender::new(server_config(), 65_535, MS);
    recv_nothing!(shape(s.start, &s.app(&[Op::Cork(true), Op::Write(100)])));
    // 1500 bytes: one full segment; the write's end (and PSH) is in the 40 that wait.
    let sent = s.app(&[Op::Write(1400)]);
    assert_eq!(shape(s.start, &sent), [(0, 1460, false)]);
    assert_eq!(
        shape(s.start, &s.app(&[Op::Cork(false)])),
        [(1460, 40, true)]
    );
}

#[test]
fn msg_more_holds_the_short_tail_until_a_plain_write_pushes_it() {
    let mut s = Sender::new(server_config(), 65_535, MS);
    let sent = s.app(&[Op::More(1500)]);
    assert_eq!(shape(s.start, &sent), [(0, 1460, false)]);
    assert_eq!(shape(s.start, &s.app(&[Op::Write(10)])), [(1460, 50, true)]);
}

#[test]
fn a_persist_fill_of_a_small_window_carries_psh() {
    let mut s = Sender::new(server_config(), 65_535, MS);
    assert_eq!(
        shape(s.start, &s.app(&[Op::Write(1000)])),
        [(0, 1000, true)]
    );
    // The peer's window shrinks to 500 bytes: sender SWS avoidance holds 3000 new bytes until
    // the persist timer fills the window (RFC 1122 §4.2.3.4's override timeout).
    s.p.window = 500;
    recv_nothing!(shape(s.start, &s.ack(1000)));
    recv_nothing!(shape(s.start, &s.app(&[Op::Write(3000)])));
    let fill: Vec<Seg> =
        s.p.advance(Duration::from_secs(2))
            .into_iter()
            .map(|t| t.seg)
            .collect();
    assert_eq!(shape(s.start, &fill)[0], (1000, 500, true));
}

#[test]
fn a_write_after_more_than_an_rto_idle_goes_out_at_the_restarted_window() {
    // RFC 5681 §4.1, Linux tcp_cwnd_restart (packetdrill's slow-start-after-idle.pkt): after
    // a first flight of 10 acknowledged, the window is 20 segments; idle 200 ms (under the
    // 300 ms RTO of a 100 ms RTT) it is all used, idle 2 s it halves per RTO down to the
    // initial window's 10.
    let rtt = 100 * MS;
    for (idle, burst, restarts) in [(200 * MS, 20, 0), (Duration::from_secs(2), 10, 1)] {
        let mut s = Sender::new(server_config(), 65_535, rtt);
        assert_eq!(shape(s.start, &s.app(&[Op::Write(10 * 1460)])).len(), 10);
        s.p.advance(rtt);
        recv_nothing!(s.ack(10 * 1460));
        s.p.advance(idle);
        let sent = s.app(&[Op::Write(30 * 1460)]);
        assert_eq!(shape(s.start, &sent).len(), burst, "idle {idle:?}");
        assert_eq!(s.p.engine.stats().cwnd_restarts, restarts, "idle {idle:?}");
    }
}
