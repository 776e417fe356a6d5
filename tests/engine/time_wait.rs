//! TIME-WAIT (RFC 9293 §3.6.1, §3.10.7.4; RFC 6191; RFC 1337): the compact table, 2MSL, FIN
//! retransmissions, recycling by newer SYNs, eviction, old duplicate SYNs.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use xdptcp::sim::{Dir, LinkConfig, Pair, configs};
use xdptcp::state::State;
use xdptcp::stats::DropReason;
use xdptcp::tcp::Config;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::tcp::Flags;

use crate::util::*;

/// A server that closes first as soon as data arrives, driven into TIME-WAIT by a peer from
/// `isn` (`ts`: whether the peer uses timestamps). Returns the peer and (our FIN's seq + 1,
/// the peer's FIN's seq + 1).
fn server_in_time_wait(
    cfg: Config,
    port: u16,
    isn: u32,
    ts: bool,
    p: Option<Peer<Scripted>>,
) -> (Peer<Scripted>, SeqNumber, u32) {
    let mut p = p.unwrap_or_else(|| {
        Peer::server(
            cfg,
            Scripted {
                close_on_data: true,
                ..Scripted::default()
            },
        )
    });
    p.port = port;
    let syn = if ts {
        seg(SYN).mss(1460).ts(PEER_TS, 0)
    } else {
        seg(SYN).mss(1460)
    };
    let sa = p.handshake_with(isn, syn);
    let t = |s: Seg| if ts { s.ts(PEER_TS + 1, 0) } else { s };
    let r = p.send(t(seg(PSH_ACK).seq(isn + 1).ack(sa.seq + 1u32).data(b"x")));
    let fin = r
        .iter()
        .find(|s| s.flags.contains(FIN))
        .expect("our FIN")
        .end();
    p.send(t(seg(ACK).seq(isn + 2).ack(fin)));
    let r = p.send(t(seg(FIN_ACK).seq(isn + 2).ack(fin)));
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].ack, SeqNumber(isn + 3));
    (p, fin, isn + 3)
}

/// The TIME-WAIT entry is still there `alive` from now, and gone `margin` after that.
fn expires_after(p: &mut Peer<Scripted>, alive: Duration, margin: Duration) {
    p.run_timers(alive);
    assert_eq!(p.engine.time_wait_len(), 1, "still in TIME-WAIT");
    p.run_timers(margin);
    assert_eq!(p.engine.time_wait_len(), 0, "expired");
}

#[test]
fn time_wait_is_a_compact_table_entry_for_60_seconds() {
    let (mut p, _, _) = server_in_time_wait(server_config(), PEER_PORT, 1000, true, None);
    assert_eq!(p.engine.connections(), 0, "left the connection table");
    assert_eq!(p.engine.time_wait_len(), 1);
    assert_gauges(p.engine.stats(), &[(State::TimeWait, 1)]);
    // Target 64 B: reported by the benchmark (`TimeWaitTable::ENTRY_BYTES`), not asserted.
    expires_after(&mut p, Duration::from_secs(59), Duration::from_secs(2));
    assert_gauges(p.engine.stats(), &[]);
}

#[test]
fn time_wait_duration_is_configurable() {
    let mut cfg = server_config();
    cfg.time_wait = Duration::from_secs(10);
    let (mut p, _, _) = server_in_time_wait(cfg, PEER_PORT, 1000, false, None);
    expires_after(
        &mut p,
        Duration::from_millis(9_900),
        Duration::from_millis(200),
    );
}

#[test]
fn a_retransmitted_fin_is_acked_again_and_restarts_2msl() {
    let (mut p, fin, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, true, None);
    p.run_timers(Duration::from_secs(40));
    let r = p.send(seg(FIN_ACK).seq(rcv - 1).ack(fin).ts(PEER_TS + 2, 0));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].is(ACK));
    assert_eq!((r[0].seq, r[0].ack), (fin, SeqNumber(rcv)));
    assert_eq!(r[0].tsecr(), PEER_TS + 2, "TS.Recent of the last segment");
    // 2MSL counts from the retransmitted FIN: alive at +40+59, gone at +40+61.
    expires_after(&mut p, Duration::from_secs(59), Duration::from_secs(2));
}

#[test]
fn a_rst_in_time_wait_is_ignored() {
    // RFC 1337: no TIME-WAIT assassination.
    let (mut p, _, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, false, None);
    recv_nothing!(p.send(seg(RST).seq(rcv)));
    assert_eq!(p.engine.time_wait_len(), 1);
}

#[test]
fn lost_last_ack_the_fin_is_retransmitted_and_time_wait_acks_it_again() {
    // Client closes first; its final ACK of the server's FIN is lost once.
    let (ccfg, scfg) = configs(7);
    let client = Scripted {
        greeting: b"bye".to_vec(),
        close_after_greeting: true,
        ..Scripted::default()
    };
    let server = Scripted {
        close_on_peer_close: true,
        ..Scripted::default()
    };
    let slog = server.log.clone();
    let mut p = Pair::new(ccfg, client, scfg, server, LinkConfig::default());
    let server_fin_seen = Rc::new(Cell::new(false));
    let dropped = Rc::new(Cell::new(0));
    let trace = Rc::new(RefCell::new(Vec::new()));
    {
        let (seen, dropped, trace) = (server_fin_seen.clone(), dropped.clone(), trace.clone());
        p.set_filter(move |dir, f| {
            trace.borrow_mut().push((dir, f.tcp.flags));
            if dir == Dir::ToClient && f.tcp.flags.contains(Flags::FIN) {
                seen.set(true);
            }
            let last_ack = dir == Dir::ToServer && seen.get() && f.tcp.flags == Flags::ACK;
            if last_ack && dropped.get() == 0 {
                dropped.set(1);
                return false;
            }
            true
        });
    }
    p.connect(40000).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(dropped.get(), 1, "{:?}", trace.borrow());
    assert_eq!(p.client.time_wait_len(), 1);
    assert_eq!(
        p.server.stats().in_state(State::LastAck),
        1,
        "the server waits for the lost ACK"
    );
    // The server's tail loss probe (RFC 8985 §7.3: the last segment, its FIN, again)
    // retransmits the FIN; the client's TIME-WAIT re-ACKs it.
    p.run_for(Duration::from_secs(5));
    assert_eq!(p.server.connections(), 0);
    assert_eq!(p.server.stats().tail_loss_probes, 1);
    assert_eq!(p.server.stats().rto_retransmits, 0);
    assert_eq!(
        p.server.stats().resets_sent + p.client.stats().resets_sent,
        0
    );
    assert_eq!(slog.borrow().closed.len(), 1);
    assert_eq!(p.client.time_wait_len(), 1);
    // ... and 2MSL restarted at the retransmission (about 1 s after the first FIN).
    p.run_for(Duration::from_secs(55));
    assert_eq!(p.client.time_wait_len(), 1, "restarted 2MSL still running");
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.client.time_wait_len(), 0);
}

#[test]
fn a_new_syn_with_a_higher_sequence_number_recycles_time_wait() {
    let (mut p, _, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, false, None);
    let r = p.send(seg(SYN).seq(rcv + 100_000).mss(1460));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].is(SYN_ACK));
    assert_eq!(p.engine.time_wait_len(), 0);
    assert_eq!(p.engine.stats().time_wait_recycled, 1);
    assert_eq!(p.engine.connections(), 1);
    assert_gauges(p.engine.stats(), &[(State::SynReceived, 1)]);
}

#[test]
fn a_new_syn_with_a_newer_timestamp_recycles_time_wait_even_with_a_lower_sequence() {
    let (mut p, _, _) = server_in_time_wait(server_config(), PEER_PORT, 1000, true, None);
    let r = p.send(seg(SYN).seq(5).mss(1460).ts(PEER_TS + 1000, 0));
    assert!(r[0].is(SYN_ACK), "{r:?}");
    assert_eq!(p.engine.stats().time_wait_recycled, 1);
}

#[test]
fn an_older_syn_is_refused_in_time_wait() {
    let (mut p, fin, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, false, None);
    let r = p.send(seg(SYN).seq(rcv - 10).mss(1460));
    assert_eq!(p.engine.stats().dropped(DropReason::TimeWaitOldSyn), 1);
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(p.engine.time_wait_len(), 1);
    // Answered by the TIME-WAIT ACK, as RFC 9293 says for an unacceptable segment.
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!((r[0].flags, r[0].seq, r[0].ack), (ACK, fin, SeqNumber(rcv)));
    // With timestamps, an older TSval is refused even above RCV.NXT.
    let (mut p, _, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, true, None);
    p.send(seg(SYN).seq(rcv + 100_000).mss(1460).ts(PEER_TS - 5, 0));
    assert_eq!(p.engine.stats().dropped(DropReason::TimeWaitOldSyn), 1);
    assert_eq!(p.engine.connections(), 0);
}

#[test]
fn time_wait_answers_at_most_once_per_500_ms_per_tuple() {
    // Linux `tcp_timewait_state_process` → `tcp_oow_rate_limited` (`tcp_invalid_ratelimit`).
    let (p, fin, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, false, None);
    let (mut p, fin2, rcv2) =
        server_in_time_wait(server_config(), PEER_PORT + 1, 5000, false, Some(p));
    // Everything a TIME-WAIT entry answers, for 400 ms: an old SYN, a retransmitted FIN, data,
    // an ACK out of window.
    let flood = [
        seg(SYN).seq(rcv - 10).mss(1460),
        seg(FIN_ACK).seq(rcv - 1).ack(fin),
        seg(PSH_ACK).seq(rcv).ack(fin).data(b"x"),
        seg(ACK).seq(rcv + 1000).ack(fin),
    ];
    p.port = PEER_PORT;
    let mut answers = Vec::new();
    for i in 0..400 {
        answers.extend(p.send(flood[i % 4].clone()));
        p.now = p.now + Duration::from_millis(1);
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!((answers[0].flags, answers[0].ack), (ACK, SeqNumber(rcv)));
    let limited = p.engine.stats().dropped(DropReason::TimeWaitRateLimited);
    assert_eq!(limited, 399);
    // A bare ACK at RCV.NXT is acceptable, and owed nothing.
    recv_nothing!(p.send(seg(ACK).seq(rcv).ack(fin)));
    // Another tuple answers on its own account.
    p.port = PEER_PORT + 1;
    let r = p.send(seg(FIN_ACK).seq(rcv2 - 1).ack(fin2));
    assert_eq!(r.len(), 1, "{r:?}");
    // 500 ms after its last answer, the first one answers again.
    p.port = PEER_PORT;
    p.now = p.now + Duration::from_millis(100);
    for s in &flood {
        assert_eq!(
            p.send(s.clone()).len(),
            usize::from(s == &flood[0]),
            "{s:?}"
        );
    }
    assert_eq!(p.engine.time_wait_len(), 2);
}

#[test]
fn a_retransmitted_fin_restarts_2msl_even_when_its_ack_is_held_back() {
    let (mut p, fin, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, false, None);
    assert_eq!(p.send(seg(FIN_ACK).seq(rcv - 1).ack(fin)).len(), 1);
    p.now = p.now + Duration::from_millis(300);
    recv_nothing!(p.send(seg(FIN_ACK).seq(rcv - 1).ack(fin)));
    // 2MSL counts from the second FIN.
    expires_after(
        &mut p,
        Duration::from_millis(60_000 - 100),
        Duration::from_millis(200),
    );
}

#[test]
fn a_newer_syn_recycles_a_time_wait_entry_whose_answers_are_held_back() {
    // RFC 6191: the rate limit is on answers; a new incarnation is let in at once.
    let (mut p, _, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, false, None);
    assert_eq!(p.send(seg(SYN).seq(rcv - 10).mss(1460)).len(), 1);
    recv_nothing!(p.send(seg(SYN).seq(rcv - 10).mss(1460)));
    let r = p.send(seg(SYN).seq(rcv + 100_000).mss(1460));
    assert!(r.len() == 1 && r[0].is(SYN_ACK), "{r:?}");
    assert_eq!(p.engine.time_wait_len(), 0);
    assert_eq!(p.engine.stats().time_wait_recycled, 1);
}

#[test]
fn a_full_time_wait_table_evicts_the_oldest_entry_and_counts_it() {
    let mut cfg = server_config();
    cfg.max_time_wait = 2;
    let (p, _, _) = server_in_time_wait(cfg.clone(), 40001, 1000, false, None);
    let (p, _, _) = server_in_time_wait(cfg.clone(), 40002, 1000, false, Some(p));
    let (mut p, fin3, rcv3) = server_in_time_wait(cfg, 40003, 1000, false, Some(p));
    assert_eq!(p.engine.time_wait_len(), 2);
    assert_eq!(p.engine.stats().time_wait_evicted, 1);
    assert_gauges(p.engine.stats(), &[(State::TimeWait, 2)]);
    // The oldest (40001) is gone: its retransmitted FIN now matches nothing and is reset.
    p.port = 40001;
    let r = p.send(seg(FIN_ACK).seq(1002).ack(fin3));
    assert!(r.len() == 1 && r[0].is(RST), "{r:?}");
    // The newest is still there.
    p.port = 40003;
    let r = p.send(seg(FIN_ACK).seq(rcv3 - 1).ack(fin3));
    assert!(r.len() == 1 && r[0].is(ACK), "{r:?}");
}

#[test]
fn an_old_duplicate_syn_after_close_does_not_create_a_connection() {
    // The server closes first (it holds TIME-WAIT); a copy of the client's SYN, delayed in
    // the network, arrives during TIME-WAIT.
    let (ccfg, scfg) = configs(9);
    let client = Scripted {
        greeting: b"hi".to_vec(),
        close_on_peer_close: true,
        ..Scripted::default()
    };
    let server = Scripted {
        close_on_data: true,
        ..Scripted::default()
    };
    let mut p = Pair::new(ccfg, client, scfg, server, LinkConfig::default());
    let syn: Rc<RefCell<Option<Vec<u8>>>> = Rc::new(RefCell::new(None));
    {
        let syn = syn.clone();
        p.set_filter(move |dir, f| {
            if dir == Dir::ToServer && f.tcp.flags == Flags::SYN {
                let mut copy = vec![0; f.buffer_len()];
                f.emit(&mut copy);
                *syn.borrow_mut() = Some(copy);
            }
            true
        });
    }
    p.connect(40000).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.server.time_wait_len(), 1);
    assert_eq!(p.client.connections(), 0);
    assert_eq!(p.server.connections(), 0);
    let old_syn = syn.borrow().clone().expect("captured SYN");
    p.run_for(Duration::from_secs(20));
    p.send(Dir::ToServer, vec![old_syn]);
    p.run_for(Duration::from_secs(1));
    assert_eq!(
        p.server.connections(),
        0,
        "no connection from an old duplicate"
    );
    assert_eq!(p.server.stats().dropped(DropReason::TimeWaitOldSyn), 1);
    assert_eq!(p.server.stats().syns_received, 1);
    assert_eq!(p.client.connections(), 0);
}

#[test]
fn the_ack_of_an_xdp_cookie_recycles_a_time_wait_entry_whose_syn_the_engine_never_saw() {
    let mut cfg = server_config();
    cfg.max_half_open = 0;
    let (mut p, _, _) = server_in_time_wait(cfg, PEER_PORT, 1000, true, None);
    assert!(
        p.engine.poll_cookie_mode(p.now, 0),
        "a budget of 0 is always full"
    );
    // The new incarnation (newer timestamp), its SYN answered by the XDP program.
    let syn = seg(SYN).seq(90_000).mss(1460).ts(PEER_TS + 10, 0);
    let sa = crate::xdp_cookies::xdp_syn_ack(&p, syn);
    let ack = seg(ACK)
        .seq(90_001)
        .ack(sa.seq + 1u32)
        .ts(PEER_TS + 11, sa.tsval());
    let r = p.send(ack);
    assert!(r.iter().all(|s| !s.is(RST)), "{r:?}");
    let id = p.engine.find(&p.tuple()).expect("the new incarnation");
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.time_wait_len(), 0);
    assert_eq!(p.engine.stats().time_wait_recycled, 1);
    // An old duplicate ACK of the old incarnation is no cookie: TIME-WAIT would have taken it.
    let (mut q, fin, rcv) = server_in_time_wait(server_config(), PEER_PORT, 1000, true, None);
    let r = q.send(seg(ACK).seq(rcv).ack(fin).ts(PEER_TS + 20, 0));
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(q.engine.time_wait_len(), 1);
}
