//! Keepalive (RFC 1122 §4.2.3.6): off by default; when a listener turns it on, an idle
//! connection is probed with SEG.SEQ = SND.NXT - 1 and no data; a live peer answers and the
//! connection stays; a dead one is aborted after `count` unanswered probes.

use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::sim::{Dir, LinkConfig, configs};
use xdptcp::state::State;
use xdptcp::tcp::{Config, Keepalive};

use crate::netsim::{Bulk, Net, Server};
use crate::util::RawPeer;

fn with_keepalive(seed: u64) -> (Config, Config) {
    let (ccfg, mut scfg) = configs(seed);
    scfg.listeners[0].keepalive = Some(Keepalive::default());
    (ccfg, scfg)
}

/// A connection that exchanged 100 bytes and then fell silent.
fn idle_connection(ccfg: Config, scfg: Config, port: u16) -> (Net<Bulk, Server>, Server) {
    let mut client = Bulk::new(100, true);
    client.stay_open = true;
    let server = Server::new(true, None);
    let handle = server.clone();
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    net.connect(port);
    net.run_for(Duration::from_secs(1));
    assert_eq!(handle.tally.borrow().received, 100);
    (net, handle)
}

#[test]
fn keepalive_is_off_by_default_and_an_idle_connection_stays_silent() {
    let (ccfg, scfg) = configs(50);
    assert_eq!(scfg.listeners[0].keepalive, None);
    let (mut net, _) = idle_connection(ccfg, scfg, 43000);
    let quiet_from = net.p.now;
    net.run_for(Duration::from_secs(5 * 3600));
    assert!(net.sent(Dir::ToClient, |s| s.at > quiet_from).is_empty());
    assert_eq!(net.p.server.stats().keepalive_probes, 0);
    assert_eq!(net.p.server.stats().in_state(State::Established), 1);
}

#[test]
fn an_idle_connection_is_probed_and_survives_while_the_peer_answers() {
    let (ccfg, scfg) = with_keepalive(51);
    let (mut net, server) = idle_connection(ccfg, scfg, 43001);
    let quiet_from = net.p.now;
    net.run_for(Duration::from_secs(5 * 3600));
    let probes = net.sent(Dir::ToClient, |s| s.at > quiet_from);
    // One probe per 2 h idle period (each answer restarts the idle timer).
    assert_eq!(probes.len(), 2, "{probes:?}");
    // Idle is measured from the last segment the server received (one link delay after the
    // client sent it).
    let last_heard = net
        .sent(Dir::ToServer, |s| s.at < probes[0].at)
        .pop()
        .unwrap();
    let idle = probes[0].at - (last_heard.at + Duration::from_millis(1));
    assert!(
        idle >= Duration::from_secs(7200) && idle < Duration::from_millis(7_200_002),
        "{idle:?}"
    );
    let between = probes[1].at - probes[0].at;
    assert!(
        between >= Duration::from_secs(7200) && between < Duration::from_millis(7_200_004),
        "an answered probe restarts the idle time: {between:?}"
    );
    let server_isn = net.sent(Dir::ToClient, |s| s.has(xdptcp::wire::tcp::Flags::SYN))[0].seq;
    for p in &probes {
        assert_eq!(p.len(), 0, "no data");
        // The server sent 100 bytes after its SYN: SND.NXT = ISN + 101.
        assert_eq!(p.seq, server_isn + 100u32, "SND.NXT - 1");
        let answer = net.sent(Dir::ToServer, |s| {
            s.at > p.at && s.at <= p.at + Duration::from_millis(2)
        });
        assert_eq!(answer.len(), 1, "the client ACKs the probe");
        assert_eq!(answer[0].ack, server_isn + 101u32);
    }
    assert_eq!(net.p.server.stats().keepalive_probes, 2);
    assert_eq!(net.p.server.stats().keepalive_timeouts, 0);
    assert_eq!(net.p.server.stats().in_state(State::Established), 1);
    assert!(server.tally.borrow().closed.is_empty());
}

#[test]
fn a_dead_peer_is_aborted_after_nine_unanswered_keepalive_probes() {
    let (ccfg, scfg) = with_keepalive(52);
    let (mut net, server) = idle_connection(ccfg, scfg, 43002);
    let quiet_from = net.p.now;
    net.drop_when(|_, _| true);
    net.run_for(Duration::from_secs(4 * 3600));
    let sent = net.sent(Dir::ToClient, |s| s.at > quiet_from);
    let (probes, rest): (Vec<_>, Vec<_>) = sent
        .into_iter()
        .partition(|s| !s.has(xdptcp::wire::tcp::Flags::RST));
    assert_eq!(probes.len(), 9, "count = 9 probes");
    assert!(probes.iter().all(|p| p.len() == 0));
    for w in probes.windows(2) {
        assert_eq!(w[1].at - w[0].at, Duration::from_secs(75), "the interval");
    }
    assert_eq!(rest.len(), 1, "then a RST");
    assert_eq!(rest[0].at - probes[8].at, Duration::from_secs(75));
    assert_eq!(
        server.tally.borrow().closed,
        [CloseReason::KeepaliveTimeout]
    );
    let st = net.p.server.stats();
    assert_eq!((st.keepalive_probes, st.keepalive_timeouts), (9, 1));
    assert_eq!(net.p.server.connections(), 0);
}

#[test]
fn keepalive_settings_are_honoured() {
    let (ccfg, mut scfg) = configs(53);
    scfg.listeners[0].keepalive = Some(Keepalive {
        idle: Duration::from_secs(30),
        interval: Duration::from_secs(5),
        count: 3,
    });
    let (mut net, server) = idle_connection(ccfg, scfg, 43003);
    let quiet_from = net.p.now;
    net.drop_when(|_, _| true);
    net.run_for(Duration::from_secs(120));
    let probes = net.sent(Dir::ToClient, |s| {
        s.at > quiet_from && !s.has(xdptcp::wire::tcp::Flags::RST)
    });
    assert_eq!(probes.len(), 3);
    assert!(probes[0].at - quiet_from <= Duration::from_secs(30));
    assert_eq!(probes[1].at - probes[0].at, Duration::from_secs(5));
    assert_eq!(
        server.tally.borrow().closed,
        [CloseReason::KeepaliveTimeout]
    );
}

#[test]
fn a_busy_connection_with_keepalive_keeps_a_bounded_number_of_timer_entries() {
    // A request every 300 ms: each one arms a delayed ACK and moves the keepalive deadline
    // later. Lazily cancelled wheel entries must not pile up (one per request for two hours).
    let (_, scfg) = with_keepalive(55);
    let mut peer = RawPeer::new(scfg, Server::new(false, None));
    peer.handshake(Some(7), true);
    let mut most = 0;
    for _ in 0..400 {
        peer.send(b"request");
        peer.advance(Duration::from_millis(300));
        most = most.max(peer.engine.timer_entries());
    }
    assert_eq!(peer.engine.connections(), 1);
    assert!(most <= 3, "{most} timer-wheel entries for one connection");
}
