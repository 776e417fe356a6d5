//! The app's own deadline ([`Io::set_deadline`], [`App::on_deadline`]): one per connection,
//! kept with the connection's timers in the engine's timer wheel, fired once when due (never
//! early), what the app does then goes on the wire as after any callback, and moving it as
//! often as an app likes never piles up wheel entries.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use xdptcp::app::{App, CloseReason, Io};
use xdptcp::time::Instant;

use crate::util::*;

/// When each connection's deadline fired, and what the app was told.
#[derive(Debug, Default)]
struct Fired {
    at: Vec<Instant>,
    closed: Vec<CloseReason>,
}

/// An app with an idle timeout: a deadline `idle` after connect, moved to `idle` after every
/// data arrival (all data is consumed); when it fires, it writes `farewell` and closes, or,
/// with `again`, only sets a new deadline.
#[derive(Clone)]
struct IdleTimeout {
    idle: Duration,
    farewell: &'static [u8],
    again: bool,
    /// Cancel the deadline as soon as data arrives.
    cancel_on_data: bool,
    fired: Rc<RefCell<Fired>>,
}

impl IdleTimeout {
    fn new(idle: Duration) -> IdleTimeout {
        IdleTimeout {
            idle,
            farewell: b"bye\n",
            again: false,
            cancel_on_data: false,
            fired: Rc::default(),
        }
    }
}

impl App for IdleTimeout {
    type State = ();

    fn on_connected(&mut self, _: &mut (), io: &mut Io<'_>) {
        io.set_deadline(Some(io.now() + self.idle));
    }

    fn on_data(&mut self, _: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
        let next = (!self.cancel_on_data).then(|| io.now() + self.idle);
        io.set_deadline(next);
        data.len()
    }

    fn on_deadline(&mut self, _: &mut (), io: &mut Io<'_>) {
        assert_eq!(io.deadline(), None, "cleared before the call");
        self.fired.borrow_mut().at.push(io.now());
        if self.again {
            io.set_deadline(Some(io.now() + self.idle));
            return;
        }
        io.write(self.farewell);
        io.close();
    }

    fn on_closed(&mut self, _: &mut (), reason: CloseReason) {
        self.fired.borrow_mut().closed.push(reason);
    }
}

fn established(app: IdleTimeout) -> (RawPeer<IdleTimeout>, Instant) {
    let mut p = RawPeer::new(server_config(), app);
    p.handshake(Some(7), true);
    let connected = p.now;
    (p, connected)
}

#[test]
fn the_deadline_fires_once_when_due_and_what_the_app_does_goes_out() {
    let app = IdleTimeout::new(Duration::from_secs(10));
    let fired = app.fired.clone();
    let (mut p, connected) = established(app);
    let before = p.advance(Duration::from_millis(9_999));
    recv_nothing!(before, "before the deadline");
    assert!(fired.borrow().at.is_empty());
    let at = p.advance(Duration::from_millis(1));
    recv!(at, [|s| s.is(FIN_ACK) && s.payload == b"bye\n"]);
    assert_eq!(
        fired.borrow().at,
        [connected + Duration::from_secs(10)],
        "at the deadline, to the millisecond"
    );
    // Once: the peer never answers; the FIN is retransmitted, the app is not called again.
    p.advance(Duration::from_secs(30));
    assert_eq!(fired.borrow().at.len(), 1);
}

#[test]
fn a_deadline_moved_by_every_segment_fires_only_after_the_last_one() {
    let app = IdleTimeout::new(Duration::from_secs(10));
    let fired = app.fired.clone();
    let (mut p, _) = established(app);
    for _ in 0..30 {
        p.advance(Duration::from_secs(5));
        p.send(b"x");
    }
    let last = p.now;
    recv_nothing!(p.advance(Duration::from_millis(9_999)));
    assert!(fired.borrow().at.is_empty(), "{:?}", fired.borrow());
    p.advance(Duration::from_secs(1));
    assert_eq!(fired.borrow().at, [last + Duration::from_secs(10)]);
}

#[test]
fn a_cancelled_deadline_never_fires() {
    let mut app = IdleTimeout::new(Duration::from_secs(10));
    app.cancel_on_data = true;
    let fired = app.fired.clone();
    let (mut p, _) = established(app);
    p.send(b"x");
    let quiet = p.advance(Duration::from_secs(3600));
    recv_nothing!(quiet);
    assert!(fired.borrow().at.is_empty());
}

#[test]
fn a_deadline_set_in_on_deadline_fires_again() {
    let mut app = IdleTimeout::new(Duration::from_secs(10));
    app.again = true;
    let fired = app.fired.clone();
    let (mut p, connected) = established(app);
    p.advance(Duration::from_secs(35));
    let want: Vec<Instant> = (1..=3)
        .map(|i| connected + Duration::from_secs(10 * i))
        .collect();
    assert_eq!(fired.borrow().at, want);
}

#[test]
fn the_deadline_goes_with_the_connection() {
    let app = IdleTimeout::new(Duration::from_secs(10));
    let fired = app.fired.clone();
    let (mut p, _) = established(app);
    let snd = p.snd_nxt;
    recv_nothing!(p.send_at(snd, RST, &[]));
    assert_eq!(fired.borrow().closed, [CloseReason::Reset]);
    assert_eq!(p.engine.connections(), 0);
    recv_nothing!(p.advance(Duration::from_secs(60)));
    assert!(
        fired.borrow().at.is_empty(),
        "no call for a connection that is gone"
    );
}

#[test]
fn moving_the_deadline_on_every_segment_keeps_the_timer_wheel_small() {
    // A hundred connections, each sending a byte every 10 ms for 10 s, each byte moving its
    // idle deadline 75 s ahead: were every move a wheel entry, 100 000 would be waiting.
    let app = IdleTimeout::new(Duration::from_secs(75));
    let mut p = Peer::server(server_config(), app);
    let mut next_seq = Vec::new();
    for i in 0..100u16 {
        p.port = 20000 + i;
        let sa = p.handshake(1000);
        next_seq.push((p.port, sa));
    }
    let mut most = 0;
    for round in 0..1000u32 {
        for (port, sa) in &next_seq {
            p.port = *port;
            let seq = 1001 + round;
            let data = seg(PSH_ACK)
                .seq(seq)
                .ack(sa.seq + 1u32)
                .ts(PEER_TS, sa.tsval())
                .data(b"x");
            p.send(data);
        }
        p.advance(Duration::from_millis(10));
        most = most.max(p.engine.timer_entries());
    }
    assert!(
        most <= 100 * 4,
        "{most} timer-wheel entries for 100 connections"
    );
    assert_eq!(p.engine.connections(), 100);
}

fn http_peer() -> RawPeer<xdptcp::app::http::Http> {
    use xdptcp::app::http::{Http, HttpConfig};
    let http = Http::new(HttpConfig {
        header_timeout: Some(Duration::from_secs(3)),
        keepalive_timeout: Some(Duration::from_secs(5)),
        ..HttpConfig::default()
    });
    let mut p = RawPeer::new(server_config(), http);
    p.handshake(Some(7), true);
    p
}

/// The FIN (and nothing else with data) among `sent`.
fn only_fin(sent: &[Sent]) -> &Sent {
    let fins: Vec<&Sent> = sent.iter().filter(|s| s.has(FIN)).collect();
    assert_eq!(fins.len(), 1, "{sent:?}");
    assert!(
        sent.iter().all(|s| s.payload.is_empty()),
        "no 408: {sent:?}"
    );
    fins[0]
}

#[test]
fn the_http_app_closes_a_dribbling_client_at_its_header_deadline() {
    let mut p = http_peer();
    let start = p.now;
    // A byte a second: the head's deadline is 3 s from the connection's start.
    for byte in b"GE" {
        p.advance(Duration::from_secs(1));
        p.send(&[*byte]);
    }
    let sent = p.advance(Duration::from_secs(1));
    assert_eq!(only_fin(&sent).at, start + Duration::from_secs(3));
    assert_eq!(p.engine.app().header_timeouts(), 1);
}

#[test]
fn the_http_app_closes_an_idle_keep_alive_connection_at_its_keepalive_deadline() {
    let mut p = http_peer();
    let sent = p.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = sent.iter().find(|s| s.is_data()).expect("a response");
    let answered = response.at;
    p.rcv_nxt = response.seq + response.len();
    p.send(&[]);
    let sent = p.advance(Duration::from_secs(5));
    assert_eq!(only_fin(&sent).at, answered + Duration::from_secs(5));
    let app = p.engine.app();
    assert_eq!((app.idle_timeouts(), app.header_timeouts()), (1, 0));
}
