//! RFC 5961: blind reset (§3), blind SYN (§4) and blind data injection (§5) mitigations, and
//! challenge-ACK throttling (§7).

use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::state::State;
use xdptcp::stats::DropReason;
use xdptcp::tcp::ConnId;
use xdptcp::wire::SeqNumber;

use crate::util::*;

/// An established connection without timestamps: (peer, id, our next seq).
fn established() -> (Peer<Scripted>, ConnId, SeqNumber) {
    let mut p = server_peer(Scripted::default());
    let sa = p.handshake_with(1000, seg(SYN).mss(1460));
    let id = p.engine.find(&p.tuple()).unwrap();
    (p, id, sa.seq + 1u32)
}

#[test]
fn test_established_rst_with_exact_sequence_resets() {
    let (mut p, id, _) = established();
    let log = p.engine.app().log.clone();
    recv_nothing!(p.send(seg(RST).seq(1001)), "a RST is never answered");
    assert_eq!(p.engine.state(id), None);
    assert_eq!(p.engine.stats().resets_received, 1);
    assert_eq!(log.borrow().closed, vec![(id, CloseReason::Reset)]);
    assert_gauges(p.engine.stats(), &[]);
}

#[test]
fn test_established_rst_in_window_but_not_exact_gets_a_challenge_ack() {
    let (mut p, id, snd_nxt) = established();
    let r = p.send(seg(RST).seq(1001 + 100));
    // A challenge ACK naming RCV.NXT.
    recv!(
        r,
        [|s| s.is(ACK) && s.seq == snd_nxt && s.ack == SeqNumber(1001)]
    );
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.stats().challenge_acks, 1);
    assert_eq!(p.engine.stats().dropped(DropReason::RstNotExact), 1);
    // The legitimate peer answers the challenge with an exact RST.
    p.send(seg(RST).seq(r[0].ack.0));
    assert_eq!(p.engine.state(id), None);
}

#[test]
fn test_established_rst_out_of_window_is_dropped_silently() {
    let (mut p, id, _) = established();
    for seq in [1000u32, 1001 + 300_000, 1001u32.wrapping_sub(70_000)] {
        recv_nothing!(p.send(seg(RST).seq(seq)), "seq {seq}");
    }
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.stats().dropped(DropReason::OutOfWindow), 3);
    assert_eq!(p.engine.stats().challenge_acks, 0);
}

#[test]
fn test_established_syn_gets_a_challenge_ack_whatever_its_sequence() {
    let (mut p, id, snd_nxt) = established();
    for seq in [1001u32, 5, 1_000_000] {
        let r = p.send(seg(SYN).seq(seq).mss(1460));
        recv!(
            r,
            [|s| s.is(ACK) && (s.seq, s.ack) == (snd_nxt, SeqNumber(1001))]
        );
    }
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.stats().dropped(DropReason::SynChallenged), 3);
}

#[test]
fn challenge_acks_are_rate_limited_per_connection() {
    let (mut p, id, _) = established();
    let mut acks = 0;
    for i in 0..15 {
        acks += p.send(seg(RST).seq(1001 + 10 + i)).len();
    }
    assert_eq!(acks, 10, "challenge_acks_per_second = 10");
    assert_eq!(p.engine.stats().challenge_acks, 10);
    assert_eq!(
        p.engine
            .stats()
            .dropped(DropReason::ChallengeAckRateLimited),
        5
    );
    // A second later the budget is back.
    p.now = p.now + Duration::from_secs(1);
    assert_eq!(p.send(seg(SYN).seq(9)).len(), 1);
    assert_eq!(p.engine.state(id), Some(State::Established));
    // And the limit is per connection: another connection still gets its challenge ACKs.
    p.port = PEER_PORT + 1;
    let sa = p.handshake_with(2000, seg(SYN).mss(1460));
    let _ = sa;
    assert_eq!(p.send(seg(RST).seq(2001 + 10)).len(), 1);
}

#[test]
fn test_established_ack_above_snd_nxt_is_dropped_and_acked() {
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = server_peer(app);
    let sa = p.handshake_with(1000, seg(SYN).mss(1460));
    let id = p.engine.find(&p.tuple()).unwrap();
    let r = p.send(seg(PSH_ACK).seq(1001).ack(sa.seq + 1000u32).data(b"inject"));
    assert_eq!(p.engine.stats().dropped(DropReason::AckTooHigh), 1);
    recv!(r, [|s| s.is(ACK) && s.ack == SeqNumber(1001)]);
    assert!(
        log.borrow().received.is_empty(),
        "RFC 5961 §5: data not accepted"
    );
    assert_eq!(p.engine.state(id), Some(State::Established));
}

#[test]
fn test_established_ack_too_old_is_dropped_and_acked() {
    let (mut p, id, snd_nxt) = established();
    // Far below SND.UNA - MAX.SND.WND.
    let r = p.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(snd_nxt - 1_000_000u32)
            .data(b"inject"),
    );
    assert_eq!(p.engine.stats().dropped(DropReason::AckTooOld), 1);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(p.engine.state(id), Some(State::Established));
}

#[test]
fn test_syn_received_ack_too_high_gets_a_reset_and_keeps_the_half_open_entry() {
    let mut p = server_peer(Scripted::default());
    let sa = p.send(seg(SYN).seq(1000).mss(1460)).remove(0);
    let id = p.engine.find(&p.tuple()).unwrap();
    let r = p.send(seg(ACK).seq(1001).ack(sa.seq + 5u32));
    // <SEQ=SEG.ACK><CTL=RST>
    recv!(r, [|s| s.is(RST) && s.seq == sa.seq + 5u32]);
    assert_eq!(p.engine.state(id), Some(State::SynReceived));
    // The right ACK still completes it.
    p.send(seg(ACK).seq(1001).ack(sa.seq + 1u32));
    assert_eq!(p.engine.state(id), Some(State::Established));
}

#[test]
fn test_syn_received_ack_too_low_gets_a_reset() {
    let mut p = server_peer(Scripted::default());
    let sa = p.send(seg(SYN).seq(1000).mss(1460)).remove(0);
    let id = p.engine.find(&p.tuple()).unwrap();
    recv!(p.send(seg(ACK).seq(1001).ack(sa.seq)), [|s| s.is(RST)]);
    assert_eq!(p.engine.state(id), Some(State::SynReceived));
}

#[test]
fn test_syn_sent_rst_without_ack_is_ignored_and_with_acceptable_ack_refuses() {
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = Peer::client(client_config(), app, 50000);
    let (id, syn) = p.connect();
    recv_nothing!(p.send(seg(RST).seq(5)));
    assert_eq!(p.engine.state(id), Some(State::SynSent));
    // A RST whose ACK does not cover our SYN is dropped too.
    recv_nothing!(p.send(seg(RST_ACK).seq(5).ack(syn.seq + 7u32)));
    assert_eq!(p.engine.state(id), Some(State::SynSent));
    recv_nothing!(p.send(seg(RST_ACK).seq(0).ack(syn.seq + 1u32)));
    assert_eq!(p.engine.state(id), None);
    assert_eq!(p.engine.stats().failed_opens, 1);
    let _ = log;
}
