//! RFC 9293 §3.10.7.1: segments that match no connection get a RST (rate-limited), a RST is
//! never answered with a RST, and a peer that lost its state is reset.

use std::time::Duration;

use xdptcp::state::State;
use xdptcp::stats::DropReason;
use xdptcp::tcp::SynCookieMode;
use xdptcp::wire::SeqNumber;

use crate::util::*;

fn peer_with(f: impl FnOnce(&mut xdptcp::tcp::Config)) -> Peer<Scripted> {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Never;
    f(&mut cfg);
    Peer::server(cfg, Scripted::default())
}

#[test]
fn an_ack_for_no_connection_gets_seq_seg_ack_rst() {
    let mut p = peer_with(|_| {});
    let r = p.send(seg(PSH_ACK).seq(1234).ack(SeqNumber(98765)).data(b"data"));
    recv!(
        r,
        [|s| s.flags == RST && s.seq == SeqNumber(98765) && s.options.timestamp.is_none()]
    );
    assert_eq!(p.engine.stats().resets_sent, 1);
    assert_eq!(p.engine.connections(), 0);
}

#[test]
fn a_segment_without_ack_for_no_connection_gets_rst_ack_of_seq_plus_len() {
    // A SYN while not accepting: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    let mut p = peer_with(|_| {});
    p.engine.stop_accepting();
    assert_eq!(p.engine.stats().in_state(State::Listen), 0);
    let r = p.send(seg(SYN).seq(5000).data(b"fast open"));
    recv!(
        r,
        [|s| s.flags == RST_ACK && s.seq == SeqNumber(0) && s.ack == SeqNumber(5000 + 1 + 9)]
    );
    assert_eq!(p.engine.connections(), 0);
}

#[test]
fn resets_for_no_connection_are_rate_limited() {
    let mut p = peer_with(|c| c.rst_per_second = 5);
    let mut rsts = 0;
    for i in 0..8u32 {
        rsts += p.send(seg(ACK).seq(i).ack(SeqNumber(i))).len();
    }
    assert_eq!(rsts, 5);
    assert_eq!(p.engine.stats().dropped(DropReason::RstRateLimited), 3);
    p.now = p.now + Duration::from_secs(1);
    assert_eq!(p.send(seg(ACK).seq(1).ack(SeqNumber(1))).len(), 1);
}

#[test]
fn a_rst_for_no_connection_is_never_answered() {
    let mut p = peer_with(|_| {});
    for s in [
        seg(RST).seq(1),
        seg(RST_ACK).seq(1).ack(SeqNumber(2)),
        seg(RST_ACK).seq(1).ack(SeqNumber(2)).data(b"x"),
    ] {
        recv_nothing!(p.send(s));
    }
    assert_eq!(p.engine.stats().resets_sent, 0);
    assert_eq!(p.engine.stats().dropped(DropReason::RstNoConnection), 3);
}

#[test]
fn a_rst_for_no_connection_is_not_answered_even_with_cookies_on() {
    let mut p = peer_with(|c| c.syncookies = SynCookieMode::Always);
    recv_nothing!(p.send(seg(RST_ACK).seq(1).ack(SeqNumber(2))));
    assert_eq!(p.engine.stats().resets_sent, 0);
}

#[test]
fn a_segment_for_a_port_we_do_not_serve_is_dropped_not_reset() {
    let mut p = peer_with(|_| {});
    p.engine_port = 81;
    recv_nothing!(p.send(seg(SYN).seq(1)));
    recv_nothing!(p.send(seg(ACK).seq(1).ack(SeqNumber(1))));
    assert_eq!(p.engine.stats().dropped(DropReason::NotServed), 2);
}

#[test]
fn data_from_a_peer_on_a_connection_the_server_no_longer_has_gets_a_reset() {
    // The server "restarted" (a fresh engine): the peer's next data segment is reset.
    let mut p = peer_with(|_| {});
    let sa = p.handshake_with(1000, seg(SYN).mss(1460));
    let mut fresh = peer_with(|_| {});
    fresh.now = p.now;
    let r = fresh.send(seg(PSH_ACK).seq(1001).ack(sa.seq + 1u32).data(b"more"));
    recv!(r, [|s| s.flags == RST && s.seq == sa.seq + 1u32]);
}

#[test]
fn a_peer_that_crashed_and_reconnects_on_the_old_four_tuple_is_reset_via_challenge_ack() {
    // RFC 5961 §4: the restarted peer's SYN gets a challenge ACK; the peer, which has no such
    // connection, answers with a RST at the acknowledged sequence; that resets us, and the
    // peer's next SYN opens a fresh connection.
    let mut p = peer_with(|_| {});
    let sa = p.handshake_with(1000, seg(SYN).mss(1460));
    let old = p.engine.find(&p.tuple()).unwrap();
    let r = p.send(seg(SYN).seq(777_777).mss(1460));
    // A challenge ACK.
    recv!(r, [|s| s.is(ACK) && s.seq == sa.seq + 1u32]);
    // The peer's stack answers an ACK for no connection with <SEQ=SEG.ACK><RST>.
    recv_nothing!(p.send(seg(RST).seq(r[0].ack.0)));
    assert_eq!(p.engine.state(old), None);
    let r = p.send(seg(SYN).seq(777_777).mss(1460));
    recv!(r, [|s| s.is(SYN_ACK)]);
    assert!(p.engine.find(&p.tuple()).is_some());
}
