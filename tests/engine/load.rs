//! The load generator's policy against a real server engine, in memory.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use xdptcp::load::{LoadConfig, LoadGen, LoadMode};
use xdptcp::sim::{CLIENT_ADDR, CLIENT_MAC, SERVER_ADDR, SERVER_MAC, SERVER_PORT, configs};
use xdptcp::tcp::{Engine, SynCookieMode};
use xdptcp::time::Instant;
use xdptcp::wire::TcpFrame;
use xdptcp::wire::tcp::Flags;

use crate::util::Scripted;

fn load_config(mode: LoadMode, max_conns: u64) -> LoadConfig {
    LoadConfig {
        mode,
        target: SocketAddr::new(SERVER_ADDR, SERVER_PORT),
        local_addr: CLIENT_ADDR,
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
    let server_app = Scripted {
        greeting: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        close_after_greeting: true,
        ..Scripted::default()
    };
    let slog = server_app.log.clone();
    let mut server = Engine::new(scfg, server_app, t0);
    let mut lg = LoadGen::new(
        Engine::new(ccfg, client_app, t0),
        load_config(LoadMode::ConnectClose { concurrency: 8 }, 500),
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
