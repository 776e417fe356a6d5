//! RFC 9293 §3.3.2: every state, observed one transition at a time, for passive and active
//! open, simultaneous open and close, half-close and the FIN-WAIT-2 timeout; the per-state
//! gauges right after each transition.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::state::State;
use xdptcp::tcp::{Config, Engine, Secret};
use xdptcp::time::Instant;
use xdptcp::wire::SeqNumber;

use crate::util::*;

#[test]
fn server_goes_closed_listen_syn_received_established_close_wait_last_ack_closed() {
    // The app answers the peer's FIN with 300 bytes and closes; the peer's window is 100
    // bytes, so CLOSE-WAIT lasts while those bytes go out and the FIN waits behind them.
    let app = Scripted {
        peer_close_reply: vec![b'r'; 300],
        close_on_peer_close: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let mut p = server_peer(app);
    // CLOSED → LISTEN: the listener gauge.
    assert_eq!(p.engine.stats().in_state(State::Listen), 1);
    assert_gauges(p.engine.stats(), &[]);

    // LISTEN → SYN-RECEIVED (no options: no window scaling, so `win` is bytes).
    let r = p.send(seg(SYN).seq(1000).mss(1460).win(100));
    assert_eq!(r.len(), 1);
    assert!(r[0].is(SYN_ACK), "{r:?}");
    let iss = r[0].seq;
    let id = p.engine.find(&p.tuple()).expect("half-open entry");
    assert_eq!(p.engine.state(id), Some(State::SynReceived));
    assert_gauges(p.engine.stats(), &[(State::SynReceived, 1)]);

    // SYN-RECEIVED → ESTABLISHED.
    let r = p.send(seg(ACK).seq(1001).ack(iss + 1u32).win(100));
    recv_nothing!(r);
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_gauges(p.engine.stats(), &[(State::Established, 1)]);
    assert_eq!(log.borrow().connected.len(), 1);

    // ESTABLISHED → CLOSE-WAIT: the peer's FIN; the reply starts going out.
    let r = p.send(seg(FIN_ACK).seq(1001).ack(iss + 1u32).win(100));
    assert_eq!(p.engine.state(id), Some(State::CloseWait));
    assert_gauges(p.engine.stats(), &[(State::CloseWait, 1)]);
    let data: usize = r.iter().map(|s| s.payload.len()).sum();
    assert_eq!(data, 100, "one window of data: {r:?}");
    assert!(
        r.iter().all(|s| s.ack == SeqNumber(1002)),
        "FIN acked: {r:?}"
    );
    assert!(r.iter().all(|s| !s.flags.contains(FIN)), "{r:?}");

    // CLOSE-WAIT keeps sending as the window opens.
    let r = p.send(seg(ACK).seq(1002).ack(iss + 101u32).win(100));
    assert_eq!(r.iter().map(|s| s.payload.len()).sum::<usize>(), 100);
    assert_eq!(p.engine.state(id), Some(State::CloseWait));

    // CLOSE-WAIT → LAST-ACK when the FIN finally goes out behind the last bytes.
    let r = p.send(seg(ACK).seq(1002).ack(iss + 201u32).win(100));
    assert_eq!(r.iter().map(|s| s.payload.len()).sum::<usize>(), 100);
    assert!(r.last().unwrap().flags.contains(FIN), "{r:?}");
    assert_eq!(p.engine.state(id), Some(State::LastAck));
    assert_gauges(p.engine.stats(), &[(State::LastAck, 1)]);

    // LAST-ACK → CLOSED on the ACK of our FIN; no TIME-WAIT on this side.
    let r = p.send(seg(ACK).seq(1002).ack(iss + 302u32).win(100));
    recv_nothing!(r);
    assert_eq!(p.engine.state(id), None);
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(p.engine.time_wait_len(), 0);
    assert_gauges(p.engine.stats(), &[]);
    assert_eq!(log.borrow().closed, vec![(id, CloseReason::Normal)]);
}

#[test]
fn client_goes_closed_syn_sent_established_fin_wait_1_fin_wait_2_time_wait_closed() {
    let app = Scripted {
        close_on_data: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let mut p = Peer::client(client_config(), app, 50000);
    assert_gauges(p.engine.stats(), &[]);

    // CLOSED → SYN-SENT.
    let (id, syn) = p.connect();
    assert!(syn.is(SYN), "{syn:?}");
    assert_eq!(p.engine.state(id), Some(State::SynSent));
    assert_gauges(p.engine.stats(), &[(State::SynSent, 1)]);

    // SYN-SENT → ESTABLISHED on the SYN-ACK; our ACK completes the handshake.
    let r = p.send(
        seg(SYN_ACK)
            .seq(7000)
            .ack(syn.seq + 1u32)
            .mss(1460)
            .sack_perm()
            .ts(PEER_TS, syn.tsval())
            .ws(7),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].is(ACK));
    assert_eq!(r[0].ack, SeqNumber(7001));
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_gauges(p.engine.stats(), &[(State::Established, 1)]);

    // ESTABLISHED → FIN-WAIT-1: data arrives, the app closes, our FIN goes out.
    let r = p.send(
        seg(PSH_ACK)
            .seq(7001)
            .ack(syn.seq + 1u32)
            .ts(PEER_TS + 1, 0)
            .data(b"hi"),
    );
    let fin = r.iter().find(|s| s.flags.contains(FIN)).expect("our FIN");
    assert_eq!(fin.seq, syn.seq + 1u32);
    assert_eq!(fin.ack, SeqNumber(7003));
    assert_eq!(p.engine.state(id), Some(State::FinWait1));
    assert_gauges(p.engine.stats(), &[(State::FinWait1, 1)]);

    // FIN-WAIT-1 → FIN-WAIT-2 on the ACK of our FIN.
    let r = p.send(seg(ACK).seq(7003).ack(syn.seq + 2u32).ts(PEER_TS + 2, 0));
    recv_nothing!(r);
    assert_eq!(p.engine.state(id), Some(State::FinWait2));
    assert_gauges(p.engine.stats(), &[(State::FinWait2, 1)]);

    // FIN-WAIT-2 → TIME-WAIT on the peer's FIN, which we ACK.
    let r = p.send(
        seg(FIN_ACK)
            .seq(7003)
            .ack(syn.seq + 2u32)
            .ts(PEER_TS + 3, 0),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].is(ACK));
    assert_eq!(r[0].ack, SeqNumber(7004));
    assert_eq!(p.engine.state(id), None, "left the connection table");
    assert_eq!(p.engine.time_wait_len(), 1);
    assert_gauges(p.engine.stats(), &[(State::TimeWait, 1)]);
    assert_eq!(log.borrow().closed, vec![(id, CloseReason::Normal)]);

    // TIME-WAIT → CLOSED after 2MSL (60 s).
    p.run_timers(Duration::from_secs(59));
    assert_eq!(p.engine.time_wait_len(), 1);
    p.run_timers(Duration::from_secs(2));
    assert_eq!(p.engine.time_wait_len(), 0);
    assert_gauges(p.engine.stats(), &[]);
}

/// Two engines at 10.0.0.1:5000 and 10.0.0.2:6000 that both connect to each other.
fn simultaneous_open() -> (Engine<Scripted>, Engine<Scripted>, Instant) {
    let now = Instant::from_secs(1000);
    let a_cfg = Config {
        local_mac: ENGINE_MAC,
        secret: Secret([1; 32]),
        ..Config::default()
    };
    let b_cfg = Config {
        local_mac: PEER_MAC,
        secret: Secret([2; 32]),
        ..Config::default()
    };
    let mut a = Engine::new(a_cfg, Scripted::default(), now);
    let mut b = Engine::new(b_cfg, Scripted::default(), now);
    let a_addr = SocketAddr::new(IpAddr::V4(ENGINE_ADDR), 5000);
    let b_addr = SocketAddr::new(IpAddr::V4(PEER_ADDR), 6000);
    let (mut a_out, mut b_out) = (Vec::new(), Vec::new());
    let ida = a
        .connect(now, a_addr, b_addr, PEER_MAC, &mut a_out)
        .unwrap();
    let idb = b
        .connect(now, b_addr, a_addr, ENGINE_MAC, &mut b_out)
        .unwrap();
    assert_eq!(a.state(ida), Some(State::SynSent));
    assert_eq!(b.state(idb), Some(State::SynSent));

    // The SYNs cross: each side goes SYN-SENT → SYN-RECEIVED and sends a SYN-ACK.
    let (mut a_out2, mut b_out2) = (Vec::new(), Vec::new());
    b.receive(now, &a_out[0], &mut b_out2);
    a.receive(now, &b_out[0], &mut a_out2);
    assert_eq!(a.state(ida), Some(State::SynReceived));
    assert_eq!(b.state(idb), Some(State::SynReceived));
    assert_gauges(a.stats(), &[(State::SynReceived, 1)]);
    let (sa_a, sa_b) = (parse_all(&a_out2), parse_all(&b_out2));
    assert_eq!(sa_a.len(), 1);
    assert!(sa_a[0].is(SYN_ACK), "{sa_a:?}");
    assert!(sa_b[0].is(SYN_ACK), "{sa_b:?}");
    // Each SYN-ACK carries the same ISN as the SYN and acknowledges the other's SYN.
    let (syn_a, syn_b) = (parse_all(&a_out), parse_all(&b_out));
    assert_eq!(sa_a[0].seq, syn_a[0].seq);
    assert_eq!(sa_a[0].ack, syn_b[0].seq + 1u32);

    // The SYN-ACKs cross: both ESTABLISHED.
    let (mut a_out3, mut b_out3) = (Vec::new(), Vec::new());
    b.receive(now, &a_out2[0], &mut b_out3);
    a.receive(now, &b_out2[0], &mut a_out3);
    assert_eq!(a.state(ida), Some(State::Established));
    assert_eq!(b.state(idb), Some(State::Established));
    assert_gauges(a.stats(), &[(State::Established, 1)]);
    assert_gauges(b.stats(), &[(State::Established, 1)]);
    for f in a_out3.iter().chain(&b_out3) {
        let s = &parse_all(std::slice::from_ref(f))[0];
        assert!(!s.flags.contains(RST), "{s:?}");
    }
    // Whatever they still say to each other must not disturb the connection.
    let mut a_out4 = Vec::new();
    let mut b_out4 = Vec::new();
    for f in &a_out3 {
        b.receive(now, f, &mut b_out4);
    }
    for f in &b_out3 {
        a.receive(now, f, &mut a_out4);
    }
    assert_eq!(a.state(ida), Some(State::Established));
    assert_eq!(b.state(idb), Some(State::Established));
    (a, b, now)
}

#[test]
fn simultaneous_open_goes_syn_sent_syn_received_established_on_both_sides() {
    let (a, b, _) = simultaneous_open();
    assert_eq!(a.stats().active_opens, 1);
    assert_eq!(b.stats().active_opens, 1);
    assert_eq!(a.stats().resets_sent + b.stats().resets_sent, 0);
}

#[test]
fn simultaneous_close_goes_fin_wait_1_closing_time_wait() {
    let app = Scripted {
        close_on_data: true,
        ..Scripted::default()
    };
    let mut p = server_peer(app);
    let sa = p.handshake_with(1000, seg(SYN).mss(1460));
    let id = p.engine.find(&p.tuple()).unwrap();
    let r = p.send(seg(PSH_ACK).seq(1001).ack(sa.seq + 1u32).data(b"bye"));
    let fin = r
        .iter()
        .find(|s| s.flags.contains(FIN))
        .expect("server FIN");
    assert_eq!(p.engine.state(id), Some(State::FinWait1));
    // The peer's FIN crosses ours: it does not acknowledge our FIN.
    let r = p.send(seg(FIN_ACK).seq(1004).ack(fin.seq));
    assert_eq!(p.engine.state(id), Some(State::Closing));
    assert_gauges(p.engine.stats(), &[(State::Closing, 1)]);
    assert!(
        r.iter().any(|s| s.ack == SeqNumber(1005)),
        "FIN acked: {r:?}"
    );
    // CLOSING → TIME-WAIT on the ACK of our FIN.
    let r = p.send(seg(ACK).seq(1005).ack(fin.seq + 1u32));
    recv_nothing!(r);
    assert_eq!(p.engine.state(id), None);
    assert_eq!(p.engine.time_wait_len(), 1);
    assert_gauges(p.engine.stats(), &[(State::TimeWait, 1)]);
}

#[test]
fn close_wait_keeps_sending_after_the_peer_half_closes() {
    let app = Scripted {
        peer_close_reply: b"late reply".to_vec(),
        ..Scripted::default()
    };
    let mut p = server_peer(app);
    let sa = p.handshake_with(1000, seg(SYN).mss(1460));
    let id = p.engine.find(&p.tuple()).unwrap();
    let r = p.send(seg(FIN_ACK).seq(1001).ack(sa.seq + 1u32));
    assert_eq!(p.engine.state(id), Some(State::CloseWait));
    let data: Vec<u8> = r.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(data, b"late reply");
    assert!(
        r.iter().all(|s| !s.flags.contains(FIN)),
        "app did not close: {r:?}"
    );
    // The peer ACKs; we stay in CLOSE-WAIT, nothing more to say.
    let r = p.send(seg(ACK).seq(1002).ack(sa.seq + 11u32));
    recv_nothing!(r);
    assert_eq!(p.engine.state(id), Some(State::CloseWait));
}

#[test]
fn fin_wait_2_keeps_receiving_after_a_half_close() {
    let app = Scripted {
        greeting: b"req".to_vec(),
        half_close_after_greeting: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let mut p = Peer::client(client_config(), app, 50001);
    let (id, syn) = p.connect();
    let r = p.send(
        seg(SYN_ACK)
            .seq(7000)
            .ack(syn.seq + 1u32)
            .mss(1460)
            .win(65535),
    );
    // Request and FIN go out right after the handshake.
    let fin = r.iter().find(|s| s.flags.contains(FIN)).expect("FIN");
    assert_eq!(fin.end(), syn.seq + 5u32, "SYN, 3 bytes, FIN: {r:?}");
    let fin_end = fin.end();
    assert_eq!(p.engine.state(id), Some(State::FinWait1));
    let r = p.send(seg(ACK).seq(7001).ack(fin_end));
    recv_nothing!(r);
    assert_eq!(p.engine.state(id), Some(State::FinWait2));
    // The response keeps coming, for longer than the FIN-WAIT-2 timeout: a half-closed
    // connection does not time out.
    let mut seq = 7001u32;
    for chunk in [&b"resp"[..], b"onse", b" body"] {
        p.advance(Duration::from_secs(30));
        p.send(seg(PSH_ACK).seq(seq).ack(fin_end).data(chunk));
        seq += chunk.len() as u32;
        assert_eq!(p.engine.state(id), Some(State::FinWait2));
    }
    assert_eq!(log.borrow().received, b"response body");
    let r = p.send(seg(FIN_ACK).seq(seq).ack(fin_end));
    assert!(r.iter().any(|s| s.ack == SeqNumber(seq + 1)), "{r:?}");
    assert_eq!(p.engine.time_wait_len(), 1);
}

#[test]
fn fin_wait_2_times_out_after_60_seconds_when_fully_closed() {
    let app = Scripted {
        close_on_data: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let mut p = server_peer(app);
    let sa = p.handshake_with(1000, seg(SYN).mss(1460));
    let id = p.engine.find(&p.tuple()).unwrap();
    let r = p.send(seg(PSH_ACK).seq(1001).ack(sa.seq + 1u32).data(b"x"));
    let fin = r.iter().find(|s| s.flags.contains(FIN)).expect("FIN");
    p.send(seg(ACK).seq(1002).ack(fin.seq + 1u32));
    assert_eq!(p.engine.state(id), Some(State::FinWait2));
    let sent = p.run_timers(Duration::from_secs(59));
    recv_nothing!(sent);
    assert_eq!(p.engine.state(id), Some(State::FinWait2));
    p.run_timers(Duration::from_secs(2));
    assert_eq!(p.engine.state(id), None);
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(p.engine.stats().fin_wait2_timeouts, 1);
    assert_gauges(p.engine.stats(), &[]);
    assert_eq!(log.borrow().closed.len(), 1);
}

#[test]
fn all_eleven_states_are_reached() {
    let mut seen = std::collections::HashSet::new();
    // LISTEN: a listener gauge.
    let p = server_peer(Scripted::default());
    if p.engine.stats().in_state(State::Listen) == 1 {
        seen.insert(State::Listen);
    }
    // The rest, via the state gauges of the scenarios above (re-run compactly here).
    let record = |stats: &xdptcp::stats::Stats, seen: &mut std::collections::HashSet<State>| {
        for s in State::ALL {
            if stats.in_state(*s) > 0 {
                seen.insert(*s);
            }
        }
    };
    // Client: SYN-SENT, ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT.
    let app = Scripted {
        close_on_data: true,
        ..Scripted::default()
    };
    let mut c = Peer::client(client_config(), app, 50002);
    let (_, syn) = c.connect();
    record(c.engine.stats(), &mut seen);
    c.send(seg(SYN_ACK).seq(1).ack(syn.seq + 1u32).mss(1460));
    record(c.engine.stats(), &mut seen);
    c.send(seg(PSH_ACK).seq(2).ack(syn.seq + 1u32).data(b"x"));
    record(c.engine.stats(), &mut seen);
    c.send(seg(ACK).seq(3).ack(syn.seq + 2u32));
    record(c.engine.stats(), &mut seen);
    c.send(seg(FIN_ACK).seq(3).ack(syn.seq + 2u32));
    record(c.engine.stats(), &mut seen);
    // Server: SYN-RECEIVED, CLOSE-WAIT, LAST-ACK, CLOSING.
    let app = Scripted {
        peer_close_reply: vec![b'r'; 200],
        close_on_peer_close: true,
        ..Scripted::default()
    };
    let mut s = server_peer(app);
    let r = s.send(seg(SYN).seq(10).mss(1460).win(100));
    record(s.engine.stats(), &mut seen);
    let iss = r[0].seq;
    s.send(seg(FIN_ACK).seq(11).ack(iss + 1u32).win(100));
    record(s.engine.stats(), &mut seen);
    s.send(seg(ACK).seq(12).ack(iss + 101u32).win(100));
    record(s.engine.stats(), &mut seen);
    // CLOSED is no TCB at all (RFC 9293 §3.3.2): once the LAST-ACK connection's FIN (after
    // its 200 bytes) is acknowledged, it is in neither table.
    let id = s.engine.find(&s.tuple()).expect("live");
    let in_last_ack = s.engine.state(id) == Some(State::LastAck);
    s.send(seg(ACK).seq(12).ack(iss + 202u32).win(100));
    if in_last_ack && s.engine.state(id).is_none() && s.engine.time_wait_len() == 0 {
        seen.insert(State::Closed);
    }
    let app = Scripted {
        close_on_data: true,
        ..Scripted::default()
    };
    let mut s = server_peer(app);
    let sa = s.handshake_with(1000, seg(SYN).mss(1460));
    let r = s.send(seg(PSH_ACK).seq(1001).ack(sa.seq + 1u32).data(b"x"));
    let fin = r.iter().find(|x| x.flags.contains(FIN)).unwrap().seq;
    s.send(seg(FIN_ACK).seq(1002).ack(fin));
    record(s.engine.stats(), &mut seen);
    let missing: Vec<_> = State::ALL.iter().filter(|s| !seen.contains(s)).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
}

#[test]
fn stats_display_line_names_live_states_and_drops() {
    let mut p = server_peer(Scripted::default());
    p.handshake(1000);
    p.send(seg(ACK).seq(5).ack(SeqNumber(5)).data(b"junk").win(0));
    p.send_frame(&[0u8; 10]);
    let line = p.engine.stats().to_string();
    assert!(line.starts_with("conns listen=1 established=1 |"), "{line}");
    assert!(line.contains("est=1+0"), "{line}");
    assert!(line.contains("truncated=1"), "{line}");
}

#[test]
fn test_syn_received_simultaneous_open_syn_ack_window_is_not_scaled() {
    // RFC 7323 §2.2: "The window field in a SYN (i.e., a <SYN> or <SYN,ACK>) segment itself
    // is never scaled." The SYN-ACK that completes a simultaneous open offers 1000 bytes.
    let app = Scripted {
        greeting: vec![b'g'; 5000],
        ..Scripted::default()
    };
    let mut c = Peer::client(client_config(), app, 50003);
    let (id, syn) = c.connect();
    let r = c.send(seg(SYN).seq(500).mss(1460).ws(7));
    recv!(r, [|s| s.is(SYN_ACK) && s.ack == SeqNumber(501)]);
    assert_eq!(c.engine.state(id), Some(State::SynReceived));
    let r = c.send(
        seg(SYN_ACK)
            .seq(500)
            .ack(syn.seq + 1u32)
            .win(1000)
            .mss(1460)
            .ws(7),
    );
    assert_eq!(c.engine.state(id), Some(State::Established));
    let sent: usize = r.iter().map(|s| s.payload.len()).sum();
    assert_eq!(sent, 1000, "no more than the unscaled window: {r:?}");
}
