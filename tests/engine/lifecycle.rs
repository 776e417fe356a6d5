//! Whole connection life cycles between two engines.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::sim::{Dir, LinkConfig, Pair, configs};
use xdptcp::state::State;
use xdptcp::wire::tcp::Flags;

use crate::util::Scripted;

#[test]
fn handshake_then_data_flows_both_ways() {
    let (ccfg, scfg) = configs(1);
    let client = Scripted {
        greeting: b"hello".to_vec(),
        close_on_peer_close: true,
        ..Scripted::default()
    };
    let server = Scripted {
        echo: true,
        ..Scripted::default()
    };
    let (clog, slog) = (client.log.clone(), server.log.clone());
    let mut p = Pair::new(ccfg, client, scfg, server, LinkConfig::default());
    let id = p.connect(40000).unwrap();
    assert_eq!(p.client.state(id), Some(State::SynSent));
    let limit = p.now + Duration::from_secs(5);
    assert!(p.run_until(limit, |_| clog.borrow().received.len() == 5));
    assert_eq!(clog.borrow().received, b"hello");
    assert_eq!(slog.borrow().received, b"hello");
    assert_eq!(p.client.state(id), Some(State::Established));
    assert_eq!(p.server.stats().in_state(State::Established), 1);
}

/// A client that sends "bye" and closes, to a server that closes when the client does.
fn closing_pair(seed: u64) -> Pair<Scripted, Scripted> {
    let (ccfg, scfg) = configs(seed);
    let client = Scripted {
        greeting: b"bye".to_vec(),
        close_after_greeting: true,
        ..Scripted::default()
    };
    let server = Scripted {
        close_on_peer_close: true,
        ..Scripted::default()
    };
    Pair::new(ccfg, client, scfg, server, LinkConfig::default())
}

#[test]
fn client_close_runs_the_four_way_teardown() {
    let mut p = closing_pair(2);
    let (clog, slog) = (p.client.app().log.clone(), p.server.app().log.clone());
    let id = p.connect(40001).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(slog.borrow().received, b"bye");
    assert_eq!(slog.borrow().closed.len(), 1, "{:?}", slog.borrow());
    assert_eq!(slog.borrow().closed[0].1, CloseReason::Normal);
    assert_eq!(clog.borrow().closed[0].1, CloseReason::Normal);
    assert_eq!(p.client.state(id), None);
    assert_eq!(p.client.time_wait_len(), 1);
    assert_eq!(p.server.connections(), 0);
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.client.time_wait_len(), 0, "2MSL expired");
}

#[test]
fn a_fin_the_app_answers_with_its_own_is_acknowledged_in_the_same_segment() {
    // Linux delays the ACK of a FIN in ESTABLISHED by the delayed-ACK timeout (its pingpong
    // mode) hoping the application's FIN can carry it. The engine ACKs a FIN at once, and an
    // app that closes when it sees the FIN (as the HTTP app and echo do) closes within the
    // same event: the ACK and our FIN leave together, with no bare ACK before them, so
    // acknowledging at once costs no segment.
    let mut p = closing_pair(3);
    let to_client = Rc::new(RefCell::new(Vec::new()));
    let seen = to_client.clone();
    p.set_filter(move |dir, f| {
        if dir == Dir::ToClient {
            seen.borrow_mut().push(f.tcp.flags);
        }
        true
    });
    p.connect(40002).unwrap();
    p.run_for(Duration::from_secs(1));
    let flags = to_client.borrow();
    let fin = flags
        .iter()
        .position(|f| f.contains(Flags::FIN))
        .expect("the server sent its FIN");
    assert!(flags[fin].contains(Flags::ACK), "{flags:?}");
    // The client's greeting and FIN came in one segment: before our FIN only the SYN-ACK.
    assert_eq!(
        flags[..fin],
        [Flags::SYN | Flags::ACK],
        "a bare ACK of the client's FIN before ours: {flags:?}"
    );
}

#[test]
fn handshake_latency_is_recorded_on_both_sides() {
    use xdptcp::stats::LatencyKind;
    let (ccfg, scfg) = configs(3);
    let mut p = Pair::new(
        ccfg,
        Scripted::default(),
        scfg,
        Scripted::default(),
        LinkConfig {
            delay: Duration::from_millis(5),
            ..LinkConfig::default()
        },
    );
    p.connect(40002).unwrap();
    p.run_for(Duration::from_secs(1));
    // Client: SYN sent → SYN-ACK back = one round trip of 10 ms.
    let c = p.client.latencies().get(LatencyKind::Handshake);
    assert_eq!(c.len(), 1);
    assert!((9_900_000..=10_100_000).contains(&c.max()), "{}", c.max());
    // Server: SYN arrival → ACK arrival, also one round trip.
    let s = p.server.latencies().get(LatencyKind::Handshake);
    assert_eq!(s.len(), 1);
    assert!((9_900_000..=10_100_000).contains(&s.max()), "{}", s.max());
}

#[test]
fn echo_with_half_close_returns_every_byte_then_closes() {
    let (ccfg, scfg) = configs(4);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let client = Scripted {
        greeting: payload.clone(),
        half_close_after_greeting: true,
        ..Scripted::default()
    };
    let server = Scripted {
        echo: true,
        close_on_peer_close: true,
        ..Scripted::default()
    };
    let (clog, slog) = (client.log.clone(), server.log.clone());
    let mut p = Pair::new(ccfg, client, scfg, server, LinkConfig::default());
    let id = p.connect(40003).unwrap();
    p.run_for(Duration::from_secs(5));
    assert_eq!(slog.borrow().received.len(), payload.len());
    assert_eq!(clog.borrow().received.len(), payload.len());
    assert!(clog.borrow().received == payload, "echoed bytes differ");
    assert_eq!(clog.borrow().peer_closed, vec![id]);
    assert_eq!(slog.borrow().closed.len(), 1);
}

#[test]
fn full_segments_with_timestamps_fit_the_mtu() {
    let (ccfg, scfg) = configs(5);
    let client = Scripted {
        greeting: vec![7u8; 50_000],
        ..Scripted::default()
    };
    let server = Scripted::default();
    let slog = server.log.clone();
    let mut p = Pair::new(ccfg, client, scfg, server, LinkConfig::default());
    p.connect(40004).unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(slog.borrow().received.len(), 50_000);
    assert_eq!(p.oversized, [0, 0], "no frame beyond the 1500-byte MTU");
    assert_eq!(p.client.stats().rto_retransmits, 0);
}

#[test]
fn a_stray_ack_is_reset_unless_reset_unknown_is_off_then_dropped_and_counted() {
    use crate::util::RawPeer;
    use xdptcp::stats::DropReason;
    use xdptcp::wire::SeqNumber;
    use xdptcp::wire::tcp::{Flags, Options};

    for reset_unknown in [true, false] {
        let (_, mut scfg) = configs(6);
        scfg.reset_unknown = reset_unknown;
        let mut peer = RawPeer::new(scfg, Scripted::default());
        peer.rcv_nxt = SeqNumber(5000); // the ACK field of the stray segment
        let stray = peer.frame(SeqNumber(1000), Flags::ACK, Options::default(), b"data");
        let out = peer.deliver(&stray);
        let unknown = peer.engine.stats().dropped(DropReason::UnknownConnection);
        if reset_unknown {
            assert_eq!(out.len(), 1, "a RST: {out:?}");
            assert!(out[0].has(Flags::RST), "{out:?}");
            assert_eq!(out[0].seq, SeqNumber(5000), "<SEQ=SEG.ACK><CTL=RST>");
            assert_eq!(unknown, 0);
        } else {
            recv_nothing!(out, "no RST for a flow another engine may own");
            assert_eq!(unknown, 1);
        }
    }
}
