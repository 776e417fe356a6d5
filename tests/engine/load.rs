//! The load generator's policy against a real server engine, in memory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use xdptcp::app::http::Http;
use xdptcp::app::http_client::{ClientMode, HttpClient, Pacing};
use xdptcp::load::{LoadConfig, LoadGen, LoadMode};
use xdptcp::sim::{CLIENT_ADDR, CLIENT_MAC, SERVER_ADDR, SERVER_MAC, SERVER_PORT, configs};
use xdptcp::tcp::{Engine, FourTuple, SynCookieMode};
use xdptcp::time::Instant;
use xdptcp::wire::TcpFrame;
use xdptcp::wire::tcp::Flags;

use crate::util::Scripted;

fn load_config(mode: LoadMode, max_conns: u64) -> LoadConfig {
    LoadConfig {
        mode,
        target: SocketAddr::new(SERVER_ADDR, SERVER_PORT),
        sources: vec![CLIENT_ADDR],
        ports: 10000..=10099,
        next_hop: SERVER_MAC,
        local_mac: CLIENT_MAC,
        max_conns,
        seed: 7,
    }
}

/// Exchanges frames between the generator and the server until both are quiet, with the
/// clock advancing 10 µs per round trip and timers run as they fall due.
fn run(
    lg: &mut LoadGen<Scripted>,
    server: &mut Engine<Scripted>,
    now: &mut Instant,
    limit: Instant,
) {
    let mut to_server = Vec::new();
    lg.pump(*now, &mut to_server);
    while *now < limit && !lg.finished() {
        let mut to_client = Vec::new();
        for f in to_server.drain(..) {
            server.receive(*now, &f, &mut to_client);
        }
        server.poll_timers(*now, &mut to_client);
        for f in to_client.drain(..) {
            lg.receive(*now, &f, &mut to_server);
        }
        lg.poll_timers(*now, &mut to_server);
        *now = *now + Duration::from_micros(10);
    }
}

#[test]
fn connect_close_keeps_the_concurrency_and_stops_at_max_conns() {
    let (ccfg, scfg) = configs(11);
    let t0 = Instant::from_secs(1000);
    let client_app = Scripted {
        greeting: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        close_on_peer_close: true,
        ..Scripted::default()
    };
    // The server closes once it has read the request: closed before the request came, or with
    // it unread, it would reset the connection (RFC 1122 §4.2.2.13).
    let server_app = Scripted {
        greeting: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        close_on_data: true,
        ..Scripted::default()
    };
    let slog = server_app.log.clone();
    let mut server = Engine::new(scfg, server_app, t0);
    let mut lg = LoadGen::new(
        Engine::new(ccfg, client_app, t0),
        load_config(
            LoadMode::ConnectClose {
                concurrency: 8,
                rate: None,
            },
            500,
        ),
    );
    let mut now = t0;
    run(&mut lg, &mut server, &mut now, t0 + Duration::from_secs(30));
    assert!(lg.finished(), "opened {}", lg.opened());
    assert_eq!(lg.opened(), 500);
    assert_eq!(slog.borrow().connected.len(), 500);
    assert_eq!(lg.stats().active_opens, 500);
    assert_eq!(lg.stats().failed_opens, 0);
    // The server closed first: TIME-WAIT is on its side, and 100 ports were each reused 5 times
    // by recycling it (RFC 6191).
    assert_eq!(server.stats().time_wait_recycled, 400);
    assert_eq!(server.time_wait_len(), 100);
}

#[test]
fn synflood_paces_spoofed_syns_and_a_cookie_server_answers_each_statelessly() {
    let (ccfg, mut scfg) = configs(12);
    scfg.syncookies = SynCookieMode::Always;
    let t0 = Instant::from_secs(1000);
    let mut server = Engine::new(scfg, Scripted::default(), t0);
    let mut lg = LoadGen::new(
        Engine::new(ccfg, Scripted::default(), t0),
        load_config(
            LoadMode::SynFlood {
                rate: 100_000,
                sources: (Ipv4Addr::new(10, 0, 128, 0), 17),
            },
            1_000,
        ),
    );
    let mut syns = Vec::new();
    lg.pump(t0, &mut syns);
    assert_eq!(syns.len(), 1, "one SYN due at the start");
    lg.poll_timers(t0 + Duration::from_millis(2), &mut syns);
    assert_eq!(syns.len(), 201, "100k/s for 2 ms");
    // One call sends at most a burst of 256; later calls catch up, never past max_conns.
    lg.poll_timers(t0 + Duration::from_secs(1), &mut syns);
    assert_eq!(syns.len(), 201 + 256);
    for _ in 0..10 {
        lg.poll_timers(t0 + Duration::from_secs(1), &mut syns);
    }
    assert_eq!(syns.len(), 1000, "bounded by max_conns");
    let mut replies = Vec::new();
    for f in &syns {
        let parsed = TcpFrame::parse(f).unwrap();
        let src = match parsed.ip.src() {
            std::net::IpAddr::V4(v4) => v4,
            other => panic!("{other}"),
        };
        assert_eq!(src.octets()[..2], [10, 0]);
        assert!(src.octets()[2] >= 128, "{src} outside 10.0.128.0/17");
        assert_eq!(parsed.tcp.flags, Flags::SYN);
        server.receive(t0, f, &mut replies);
    }
    assert_eq!(replies.len(), 1000);
    assert_eq!(server.stats().cookies_sent, 1000);
    assert_eq!(server.connections(), 0, "no state for cookie SYN-ACKs");
}

/// The HTTP client generator and the HTTP server joined by a link of one-way `delay`; frames
/// sent to the server between `stall.0` and `stall.1` arrive at `stall.1` (a server that
/// stops answering for a while). The clock jumps from event to event.
struct HttpLink {
    lg: LoadGen<HttpClient>,
    server: Engine<Http>,
    now: Instant,
    delay: Duration,
    stall: Option<(Instant, Instant)>,
    to_server: Vec<(Instant, Vec<u8>)>,
    to_client: Vec<(Instant, Vec<u8>)>,
}

impl HttpLink {
    /// A keep-alive client paced as `pacing`.
    fn new(cfg: LoadConfig, pacing: Pacing, seed: u64) -> HttpLink {
        let client = HttpClient::new(ClientMode::KeepAlive { requests: u64::MAX }, "/", "x")
            .with_pacing(pacing);
        HttpLink::with_client(cfg, client, seed)
    }

    fn with_client(cfg: LoadConfig, client: HttpClient, seed: u64) -> HttpLink {
        let (ccfg, scfg) = configs(seed);
        let now = Instant::from_secs(1000);
        HttpLink {
            lg: LoadGen::new(Engine::new(ccfg, client, now), cfg),
            server: Engine::new(scfg, Http::default(), now),
            now,
            delay: Duration::from_micros(50),
            stall: None,
            to_server: Vec::new(),
            to_client: Vec::new(),
        }
    }

    /// Runs until `until` (virtual time), or until nothing is left to do.
    fn run_until(&mut self, until: Instant) {
        let mut out = Vec::new();
        self.lg.pump(self.now, &mut out);
        self.send_to_server(out);
        loop {
            let next = [
                self.to_server.iter().map(|f| f.0).min(),
                self.to_client.iter().map(|f| f.0).min(),
                self.lg.next_deadline(),
                self.server.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|&n| n <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let mut replies = Vec::new();
            for f in arrived(&mut self.to_server, now) {
                self.server.receive(now, &f, &mut replies);
            }
            if self.server.next_deadline().is_some_and(|d| d <= now) {
                self.server.poll_timers(now, &mut replies);
            }
            self.to_client
                .extend(replies.into_iter().map(|f| (now + self.delay, f)));
            let mut out = Vec::new();
            for f in arrived(&mut self.to_client, now) {
                self.lg.receive(now, &f, &mut out);
            }
            if self.lg.next_deadline().is_some_and(|d| d <= now) {
                self.lg.poll_timers(now, &mut out);
            }
            self.send_to_server(out);
        }
    }

    fn send_to_server(&mut self, frames: Vec<Vec<u8>>) {
        for f in frames {
            let mut at = self.now + self.delay;
            if let Some((from, to)) = self.stall {
                if (from..to).contains(&at) {
                    at = to;
                }
            }
            self.to_server.push((at, f));
        }
    }

    fn client(&self) -> &HttpClient {
        self.lg.engine.app()
    }
}

/// Takes the frames in flight that have arrived by `now` out of `link`.
fn arrived(link: &mut Vec<(Instant, Vec<u8>)>, now: Instant) -> Vec<Vec<u8>> {
    let (due, rest): (Vec<_>, Vec<_>) = link.drain(..).partition(|f| f.0 <= now);
    *link = rest;
    due.into_iter().map(|(_, f)| f).collect()
}

/// `connections` keep-alive connections woken once per `period`, run until they are all open
/// (and a little more); returns the link and when the generator was ready.
fn paced(connections: usize, period: Duration, seed: u64) -> (HttpLink, Instant) {
    let cfg = load_config(keepalive(connections, Some(period)), u64::MAX);
    let mut link = HttpLink::new(cfg, Pacing::Scheduled { period }, seed);
    let t0 = link.now;
    link.run_until(t0 + Duration::from_millis(100));
    let ready = link.lg.ready_at().expect("all open");
    (link, ready)
}

fn keepalive(connections: usize, period: Option<Duration>) -> LoadMode {
    LoadMode::KeepAlive {
        connections,
        opening: 16,
        period,
    }
}

#[test]
fn keepalive_spreads_connections_over_every_source_address_and_port() {
    let sources: Vec<IpAddr> = (10..14)
        .map(|h| IpAddr::V4(Ipv4Addr::new(10, 0, 0, h)))
        .collect();
    let mut cfg = load_config(keepalive(400, None), u64::MAX);
    cfg.sources = sources.clone();
    let mut link = HttpLink::new(cfg, Pacing::BackToBack, 21);
    let t0 = link.now;
    // Back to back, 400 connections answer every 100 µs: a few milliseconds are plenty.
    link.run_until(t0 + Duration::from_millis(20));
    assert_eq!(link.lg.opened(), 400);
    assert_eq!(link.server.connections(), 400);
    assert!(link.lg.ready_at().is_some());
    let mut used = std::collections::HashSet::new();
    for a in &sources {
        for p in 10000..=10099 {
            let t = FourTuple {
                local_addr: SERVER_ADDR,
                remote_addr: *a,
                local_port: SERVER_PORT,
                remote_port: p,
            };
            if link.server.find(&t).is_some() {
                used.insert((*a, p));
            }
        }
    }
    assert_eq!(used.len(), 400, "4 addresses × 100 ports, each tuple once");
    assert!(link.client().completed() > 400, "closed loop: back to back");
}

#[test]
fn the_open_loop_wakes_each_connection_once_per_period_evenly_spread() {
    let (mut link, ready) = paced(100, Duration::from_millis(100), 22);
    let before = link.client().completed();
    assert_eq!(before, link.client().due(), "every due request answered");
    link.run_until(ready + Duration::from_secs(2) + Duration::from_micros(1));
    // 100 connections every 100 ms for 2 s: 1000 req/s offered, and all of it achieved.
    let due = link.client().due();
    assert!((2000..=2100).contains(&due), "due {due}");
    assert!(link.client().completed() + 100 >= due);
    assert_eq!(link.client().failed(), 0);
    assert_eq!(link.client().late(), 0);
    assert_eq!(link.lg.stats().rto_retransmits, 0);
    assert_eq!(link.server.stats().rto_retransmits, 0);
    // Evenly spread: latency is one round trip, nothing ever waits for another request.
    let lat = link.client().request_latency();
    assert!(lat.max() < 1_000_000, "max {} ns", lat.max());
}

#[test]
fn a_stalled_server_shows_in_the_open_loop_latency_of_every_request_it_delayed() {
    // Coordinated omission: one connection, a request every 10 ms, and a server that answers
    // nothing for 200 ms. A closed loop would record one slow request; the open loop records
    // the ~20 that fell due meanwhile, each timed from when it was due.
    let (mut link, ready) = paced(1, Duration::from_millis(10), 23);
    link.stall = Some((
        ready + Duration::from_millis(300),
        ready + Duration::from_millis(500),
    ));
    link.run_until(ready + Duration::from_secs(1));
    let lat = link.client().request_latency();
    let slow: u64 = lat
        .iter_recorded()
        .filter(|v| v.value_iterated_to() > 50_000_000)
        .map(|v| v.count_at_value())
        .sum();
    assert!(slow >= 15, "{slow} requests over 50 ms");
    assert!(
        lat.max() >= 190_000_000,
        "the first one waited the whole stall"
    );
    assert_eq!(link.client().failed(), 0);
    let due = link.client().due();
    assert!(
        (99..=101).contains(&due),
        "the schedule went on during the stall: {due}"
    );
}

#[test]
fn stopping_half_closes_every_keepalive_connection_and_leaves_the_server_empty() {
    let period = Duration::from_millis(50);
    let mut cfg = load_config(keepalive(300, Some(period)), u64::MAX);
    cfg.ports = 10000..=10299;
    let mut link = HttpLink::new(cfg, Pacing::Scheduled { period }, 24);
    let t0 = link.now;
    link.run_until(t0 + Duration::from_millis(500));
    assert_eq!(link.server.connections(), 300);
    link.lg.stop();
    // At most `opening` (16) FINs unacknowledged at a time: 300 take many round trips.
    link.run_until(link.now + Duration::from_micros(150));
    let closing = link.lg.stats().in_state(xdptcp::state::State::FinWait1);
    assert!((1..=16).contains(&closing), "{closing} FINs in flight");
    assert!(link.server.connections() > 250);
    link.run_until(t0 + Duration::from_secs(2));
    assert_eq!(link.server.connections(), 0);
    assert_eq!(
        link.server.time_wait_len(),
        0,
        "we closed first: TIME-WAIT is ours"
    );
    assert_eq!(link.lg.engine.connections(), 0);
    assert!(link.lg.finished());
    assert_eq!(link.server.stats().resets_sent, 0);
    assert_eq!(link.lg.stats().resets_received, 0);
    assert_eq!(link.client().failed(), 0);
}

#[test]
fn connect_close_open_loop_opens_at_the_rate_and_times_from_the_intended_open() {
    let cfg = load_config(
        LoadMode::ConnectClose {
            concurrency: 64,
            rate: Some(2000),
        },
        u64::MAX,
    );
    let client =
        HttpClient::new(ClientMode::ConnectClose, "/", "x").with_pacing(Pacing::Scheduled {
            period: Duration::ZERO,
        });
    let mut link = HttpLink::with_client(cfg, client, 25);
    let now = link.now;
    link.run_until(now + Duration::from_millis(500));
    let opened = link.lg.opened();
    assert!(
        (1000..=1001).contains(&opened),
        "2000/s for 0.5 s: {opened}"
    );
    assert!(link.client().completed() >= 990);
    let lat = link.client().request_latency();
    // Handshake and request: two round trips of 100 µs, from the intended open.
    assert!(lat.min() >= 199_000, "min {}", lat.min());
    assert!(lat.max() < 2_000_000, "max {}", lat.max());
}

#[test]
fn keepalive_opens_no_more_connections_than_it_has_tuples() {
    // 100 ports on one address: asking for 300 opens 100, and the generator is ready (it does
    // not spin on tuples in use).
    let cfg = load_config(keepalive(300, None), u64::MAX);
    let mut link = HttpLink::new(cfg, Pacing::BackToBack, 26);
    let t0 = link.now;
    link.run_until(t0 + Duration::from_millis(5));
    assert_eq!(link.lg.opened(), 100);
    assert!(link.lg.ready_at().is_some());
}
