//! The send side of reliable data: RFC 6298 retransmission timeouts (initial 1 s, back-off,
//! 200 ms minimum, Karn), the retry limit, SYN / SYN-ACK / FIN recovery, fast retransmit and
//! NewReno recovery (RFC 5681, RFC 6582), the initial window (RFC 6928) and the peer's
//! scaled window (RFC 7323).

use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::sim::{Dir, LinkConfig, configs};
use xdptcp::tcp::RtoFormula;
use xdptcp::wire::tcp::Flags;

use crate::netsim::{Bulk, Net, PingPong, Server, isn_of, lose_first_transmission_of};
use crate::util::Sent;

const MS: Duration = Duration::from_millis(1);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Gaps between consecutive segments, in milliseconds.
fn gaps_ms(segs: &[Sent]) -> Vec<u64> {
    segs.windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis() as u64)
        .collect()
}

/// A `drop_when` rule that loses the first segment matching `pred`, once.
fn lose_once(pred: impl Fn(&Sent) -> bool) -> impl FnMut(&Sent, &[Sent]) -> bool {
    lose_times(1, pred)
}

/// Drops the first `times` segments that match `pred`.
fn lose_times(times: usize, pred: impl Fn(&Sent) -> bool) -> impl FnMut(&Sent, &[Sent]) -> bool {
    let mut lost = 0;
    move |s, _| {
        let drop = lost < times && pred(s);
        lost += usize::from(drop);
        drop
    }
}

#[test]
fn syn_retransmissions_start_at_one_second_and_double_until_the_open_fails() {
    let (ccfg, scfg) = configs(10);
    let client = Bulk::new(100, true);
    let tally = client.tally.clone();
    let mut net = Net::new(
        ccfg,
        client,
        scfg,
        Server::new(true, None),
        LinkConfig::default(),
    );
    net.drop_when(|s, _| s.dir == Dir::ToServer && s.has(Flags::SYN));
    let id = net.connect(41000);
    net.run_for(Duration::from_secs(300));
    let syns = net.sent(Dir::ToServer, |s| s.has(Flags::SYN));
    assert_eq!(syns.len(), 7, "the SYN and syn_retries (6) retransmissions");
    assert_eq!(gaps_ms(&syns), [1000, 2000, 4000, 8000, 16_000, 32_000]);
    assert_eq!(net.p.client.state(id), None, "the open gave up");
    assert_eq!(net.p.client.stats().failed_opens, 1);
    assert_eq!(tally.borrow().connected, 0);
}

#[test]
fn a_lost_syn_is_retransmitted_after_one_second_and_the_connection_completes() {
    let (ccfg, scfg) = configs(11);
    let client = Bulk::new(5000, true);
    let tally = client.tally.clone();
    let mut net = Net::new(
        ccfg,
        client,
        scfg,
        Server::new(true, None),
        LinkConfig::default(),
    );
    net.drop_when(lose_once(|s| s.has(Flags::SYN)));
    net.connect(41001);
    assert!(net.run_until(Duration::from_secs(10), |_| tally.borrow().completed == 1));
    let syns = net.sent(Dir::ToServer, |s| s.has(Flags::SYN));
    assert_eq!(gaps_ms(&syns), [1000]);
    assert_eq!(tally.borrow().mismatched, 0);
}

#[test]
fn a_lost_syn_ack_is_recovered_and_the_connection_completes() {
    let (ccfg, scfg) = configs(12);
    let client = Bulk::new(5000, true);
    let tally = client.tally.clone();
    let mut net = Net::new(
        ccfg,
        client,
        scfg,
        Server::new(true, None),
        LinkConfig::default(),
    );
    net.drop_when(lose_once(|s| s.has(Flags::SYN | Flags::ACK)));
    net.connect(41002);
    assert!(net.run_until(Duration::from_secs(10), |_| tally.borrow().completed == 1));
    let syn_acks = net.sent(Dir::ToClient, |s| s.has(Flags::SYN | Flags::ACK));
    assert!(syn_acks.len() >= 2, "{syn_acks:?}");
    assert_eq!(
        syn_acks[1].at - syn_acks[0].at,
        Duration::from_secs(1),
        "resent when the SYN (or the SYN-ACK timer) comes around after 1 s"
    );
    assert_eq!(tally.borrow().mismatched, 0);
}

#[test]
fn a_lost_fin_is_retransmitted_and_both_sides_close_normally() {
    let (ccfg, scfg) = configs(13);
    let client = Bulk::new(5000, true);
    let server = Server::new(true, None);
    let (ctally, stally) = (client.tally.clone(), server.tally.clone());
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    net.drop_when(lose_once(|s| s.dir == Dir::ToServer && s.has(Flags::FIN)));
    net.connect(41003);
    assert!(net.run_until(Duration::from_secs(10), |_| {
        ctally.borrow().closed.len() == 1 && stally.borrow().closed.len() == 1
    }));
    let fins = net.sent(Dir::ToServer, |s| s.has(Flags::FIN));
    assert_eq!(fins.len(), 2, "{fins:?}");
    assert_eq!(fins[0].seq, fins[1].seq, "the same FIN again");
    assert!(fins[1].at - fins[0].at >= Duration::from_millis(200));
    assert_eq!(ctally.borrow().closed, [CloseReason::Normal]);
    assert_eq!(stally.borrow().closed, [CloseReason::Normal]);
}

#[test]
fn a_lost_final_ack_is_recovered_by_the_fin_retransmission() {
    let (ccfg, scfg) = configs(14);
    let client = Bulk::new(5000, true);
    let server = Server::new(true, None);
    let (ctally, stally) = (client.tally.clone(), server.tally.clone());
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    let mut lost = false;
    net.drop_when(move |s, h| {
        // The client's ACK of the server's FIN, the first time.
        let server_fin = h
            .iter()
            .find(|x| x.dir == Dir::ToClient && x.has(Flags::FIN))
            .map(|s| s.end());
        let drop = !lost
            && s.dir == Dir::ToServer
            && !s.is_data()
            && !s.has(Flags::FIN)
            && Some(s.ack) == server_fin;
        lost |= drop;
        drop
    });
    net.connect(41004);
    assert!(net.run_until(Duration::from_secs(10), |_| {
        ctally.borrow().closed.len() == 1 && stally.borrow().closed.len() == 1
    }));
    let fins = net.sent(Dir::ToClient, |s| s.has(Flags::FIN));
    assert_eq!(fins.len(), 2, "the server's FIN once more: {fins:?}");
    assert!(fins[1].at - fins[0].at >= Duration::from_millis(200));
    assert!(net.segs().iter().any(|s| s.dropped), "the ACK was lost");
    assert_eq!(ctally.borrow().closed, [CloseReason::Normal]);
    assert_eq!(stally.borrow().closed, [CloseReason::Normal]);
    assert_eq!(net.p.server.connections(), 0);
}

/// The gaps between the transmissions of a data segment lost six times, then let through,
/// with the RTO computed by `formula`.
fn gaps_of_a_segment_lost_six_times(formula: RtoFormula) -> Vec<u64> {
    let (mut ccfg, scfg) = configs(15);
    ccfg.rto_formula = formula;
    let client = Bulk::new(1000, false);
    let server = Server::new(false, Some(1000));
    let stally = server.tally.clone();
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    let mut losses = 0;
    net.drop_when(move |s, _| {
        let drop = losses < 6 && s.dir == Dir::ToServer && s.is_data();
        losses += usize::from(drop);
        drop
    });
    net.connect(41005);
    assert!(net.run_until(Duration::from_secs(60), |_| stally.borrow().completed == 1));
    let data = net.sent(Dir::ToServer, |s| s.is_data());
    assert_eq!(data.len(), 7);
    assert_eq!(net.p.client.stats().tail_loss_probes, 1);
    assert_eq!(net.p.client.stats().rto_retransmits, 5);
    assert_eq!(stally.borrow().mismatched, 0);
    gaps_ms(&data)
}

#[test]
fn a_segment_lost_again_and_again_is_retransmitted_with_a_doubling_timeout() {
    // The handshake measured ~2 ms, so the RTO starts at SRTT + the 200 ms floor on the
    // variance term (Linux's formula, the default). The first resend is the tail loss probe
    // (RFC 8985 §7.2: one segment in flight, PTO = 2 SRTT + 200 ms, capped by the RTO), the
    // RTO follows it and then backs off.
    assert_eq!(
        gaps_of_a_segment_lost_six_times(RtoFormula::Linux),
        [202, 202, 404, 808, 1616, 3232]
    );
}

#[test]
fn with_rfc_6298_s_formula_the_floor_bounds_the_rto_itself() {
    // max(SRTT + 4 RTTVAR, 200 ms): a 2 ms path gets 200 ms, then the doubling.
    assert_eq!(
        gaps_of_a_segment_lost_six_times(RtoFormula::Rfc6298),
        [200, 200, 400, 800, 1600, 3200]
    );
}

#[test]
fn retransmission_timeout_is_never_below_200ms_on_a_fast_link() {
    let (ccfg, scfg) = configs(16);
    let len = 64 * 1024;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let stally = server.tally.clone();
    let link = LinkConfig {
        delay: Duration::from_micros(100),
        ..LinkConfig::default()
    };
    let mut net = Net::new(ccfg, client, scfg, server, link);
    // Lose the last data segment and its tail loss probe (RFC 8985 §7.3 resends the last
    // segment): no later segment can produce duplicate ACKs, so only the timer recovers it.
    net.drop_when(lose_times(2, |s| {
        s.dir == Dir::ToServer && s.has(Flags::PSH) && s.is_data()
    }));
    net.connect(41006);
    assert!(net.run_until(Duration::from_secs(10), |_| stally.borrow().completed == 1));
    let lost = net.sent(Dir::ToServer, |s| s.dropped);
    assert_eq!(lost.len(), 2);
    assert_eq!(lost[0].seq, lost[1].seq, "the probe resent the lost tail");
    assert_eq!(net.p.client.stats().tail_loss_probes, 1);
    let again = net.sent(Dir::ToServer, |s| s.seq == lost[0].seq && !s.dropped);
    // RFC 6298 §5.3: the timer restarts with every ACK of new data; the last one (a delayed
    // ACK, after the probe) reached the client one link delay after it was sent.
    let last_ack = net
        .sent(Dir::ToClient, |s| s.at < again[0].at)
        .pop()
        .unwrap();
    let rto = again[0].at - (last_ack.at + link.delay);
    // The samples include delayed ACKs (up to 40 ms), so the SRTT is a few milliseconds:
    // the RTO is the SRTT plus the 200 ms floor (Linux's formula), never below 200 ms.
    assert!(
        rto >= Duration::from_millis(200) && rto < Duration::from_millis(210),
        "RTT is ~0.2 ms, the RTO is 200 ms plus the SRTT (one 1 ms timer tick of slack): {rto:?}"
    );
}

#[test]
fn retransmission_timeout_follows_the_path_rtt_not_the_connection_age() {
    // The same tail loss as above, but after the connection has been open for a while: the
    // RTT samples (from echoed timestamps) must still measure the path, ~2 ms.
    let (ccfg, scfg) = configs(17);
    let len = 512 * 1024;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let (stally, stalled) = (server.tally.clone(), server.stalled.clone());
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    stalled.set(true);
    net.connect(41007);
    net.run_for(Duration::from_secs(30));
    net.drop_when(lose_once(|s| {
        s.dir == Dir::ToServer && s.has(Flags::PSH) && s.is_data()
    }));
    stalled.set(false);
    assert!(net.run_until(Duration::from_secs(300), |_| stally.borrow().completed == 1));
    let lost = net.sent(Dir::ToServer, |s| s.dropped);
    assert_eq!(lost.len(), 1);
    let again = net.sent(Dir::ToServer, |s| s.seq == lost[0].seq && !s.dropped);
    let last_ack = net
        .sent(Dir::ToClient, |s| s.at < again[0].at)
        .pop()
        .unwrap();
    let rto = again[0].at - (last_ack.at + MS);
    assert!(
        rto < Duration::from_millis(202),
        "tail loss recovered after {:.3} s: the RTO grew with the connection's age",
        secs(rto)
    );
}

#[test]
fn karn_no_rtt_sample_is_taken_from_a_retransmitted_segment() {
    let (mut ccfg, mut scfg) = configs(18);
    // Without timestamps the sender times one segment at a time, and must never time a
    // retransmitted one (RFC 6298 §3).
    ccfg.timestamps = false;
    scfg.timestamps = false;
    let client = PingPong::new(100, 4);
    let tally = client.tally.clone();
    let mut net = Net::new(
        ccfg,
        client,
        scfg,
        Server::new(true, None),
        LinkConfig::default(),
    );
    // Message 1 (the second) is lost twice: retransmitted after 202 ms and 202 ms more, and
    // ACKed ~400 ms after its first transmission. Taking that as an RTT sample would push
    // the RTO far above 202 ms (SRTT 2 ms + the 200 ms floor). Message 2 gets through (a
    // valid ~2 ms sample); message 3 is lost once, so its retransmission shows the RTO in
    // force.
    net.drop_when(move |s, h| {
        if s.dir != Dir::ToServer || !s.is_data() {
            return false;
        }
        let isn = isn_of(h, Dir::ToServer).expect("SYN first");
        let message = (s.seq - (isn + 1u32)) / 100;
        let earlier = h
            .iter()
            .filter(|x| x.dir == Dir::ToServer && x.seq == s.seq && x.is_data())
            .count();
        (message == 1 && earlier < 2) || (message == 3 && earlier < 1)
    });
    net.connect(41008);
    assert!(net.run_until(Duration::from_secs(20), |_| tally.borrow().completed == 1));
    let isn = isn_of(&net.segs(), Dir::ToServer).unwrap();
    let m3 = net.sent(Dir::ToServer, |s| s.is_data() && s.seq == isn + 301u32);
    assert_eq!(m3.len(), 2, "{m3:?}");
    assert_eq!(
        m3[1].at - m3[0].at,
        Duration::from_millis(202),
        "the RTO came from the valid samples only"
    );
    let m1 = net.sent(Dir::ToServer, |s| s.is_data() && s.seq == isn + 101u32);
    // A tail loss probe at the RTO (RFC 8985 §7.2: min(2 SRTT + 200 ms, RTO)), then the RTO.
    assert_eq!(gaps_ms(&m1), [202, 202], "the probe, then the timeout");
}

#[test]
fn a_dead_peer_is_aborted_with_a_rst_after_the_retry_limit() {
    let (ccfg, scfg) = configs(19);
    assert_eq!(ccfg.retries, 15);
    let client = Bulk::new(100, true);
    let server = Server::new(true, None);
    let (ctally, stally) = (client.tally.clone(), server.tally.clone());
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    // The request gets through (the server is established); from then on nothing does.
    net.drop_when(|_, h| h.iter().any(|x| x.dir == Dir::ToServer && x.is_data()));
    net.connect(41009);
    net.run_for(Duration::from_secs(3600));
    for (dir, tally) in [(Dir::ToServer, &ctally), (Dir::ToClient, &stally)] {
        let data = net.sent(dir, |s| s.is_data());
        // The echo (server) or the request (client, whose first copy got through).
        let retransmits = data.len() - 1;
        assert_eq!(
            retransmits, 16,
            "{dir:?}: a tail loss probe, then tcp_retries2 retransmissions"
        );
        let rsts = net.sent(dir, |s| s.has(Flags::RST));
        assert_eq!(rsts.len(), 1, "{dir:?}: the abort sends a RST");
        let gaps = gaps_ms(&data);
        // The probe, then 202 ms (SRTT 2 ms + 200 ms) doubling up to the 120 s maximum.
        assert_eq!(
            gaps,
            [
                202, 202, 404, 808, 1616, 3232, 6464, 12_928, 25_856, 51_712, 103_424, 120_000,
                120_000, 120_000, 120_000, 120_000
            ],
            "{dir:?}"
        );
        let abort_after = rsts[0].at - data.last().unwrap().at;
        assert_eq!(abort_after, Duration::from_secs(120), "{dir:?}");
        assert_eq!(tally.borrow().closed, [CloseReason::TimedOut], "{dir:?}");
    }
    assert_eq!(net.p.client.stats().timeouts, 1);
    assert_eq!(net.p.server.stats().timeouts, 1);
    assert_eq!(net.p.client.connections(), 0);
    assert_eq!(net.p.server.connections(), 0);
}

#[test]
fn the_third_duplicate_ack_triggers_a_fast_retransmit_before_any_timeout() {
    let (ccfg, scfg) = configs(20);
    let len = 256 * 1024;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let stally = server.tally.clone();
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    net.drop_when(lose_first_transmission_of(&[5]));
    net.connect(41010);
    assert!(net.run_until(Duration::from_secs(10), |_| stally.borrow().completed == 1));
    let lost = net.sent(Dir::ToServer, |s| s.dropped);
    assert_eq!(lost.len(), 1);
    let again = net.sent(Dir::ToServer, |s| s.seq == lost[0].seq && !s.dropped);
    assert_eq!(again.len(), 1);
    assert!(
        again[0].at - lost[0].at < Duration::from_millis(10),
        "resent after {:?}, one RTT and three duplicate ACKs later",
        again[0].at - lost[0].at
    );
    // Three duplicate ACKs for the hole before it.
    let dups = net.sent(Dir::ToClient, |s| {
        s.ack == lost[0].seq && !s.is_data() && s.at < again[0].at
    });
    assert!(dups.len() >= 4, "the ACK and three duplicates: {dups:?}");
    let st = net.p.client.stats();
    assert!(st.fast_retransmits >= 1);
    assert_eq!(st.rto_retransmits, 0, "no timeout was needed");
    assert_eq!(stally.borrow().mismatched, 0);
}

#[test]
fn newreno_recovers_several_losses_in_one_window_without_a_timeout() {
    let (ccfg, scfg) = configs(21);
    let len = 512 * 1024;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let stally = server.tally.clone();
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    // The second flight is 20 segments (slow start from 10): lose three of them.
    net.drop_when(lose_first_transmission_of(&[13, 16, 19]));
    net.connect(41011);
    assert!(net.run_until(Duration::from_secs(10), |_| stally.borrow().completed == 1));
    let lost = net.sent(Dir::ToServer, |s| s.dropped);
    assert_eq!(lost.len(), 3);
    for l in &lost {
        let again = net.sent(Dir::ToServer, |s| s.seq == l.seq && !s.dropped);
        assert_eq!(again.len(), 1, "resent once: {:?}", l.seq);
        assert!(
            again[0].at - l.at < Duration::from_millis(20),
            "resent after {:?}",
            again[0].at - l.at
        );
    }
    let st = net.p.client.stats();
    assert!(st.fast_retransmits >= 3, "{st}");
    assert_eq!(
        st.rto_retransmits, 0,
        "partial ACKs repaired every hole: {st}"
    );
    assert_eq!(stally.borrow().mismatched, 0);
}

#[test]
fn the_initial_window_is_ten_segments() {
    let (ccfg, scfg) = configs(22);
    let len = 256 * 1024;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let stally = server.tally.clone();
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    net.connect(41012);
    assert!(net.run_until(Duration::from_secs(10), |_| stally.borrow().completed == 1));
    let isn = isn_of(&net.segs(), Dir::ToServer).unwrap();
    let first_ack_of_data = net.sent(Dir::ToClient, |s| s.ack.gt(isn + 1u32))[0].clone();
    // It reaches the client one link delay (1 ms) after it was sent.
    let arrives = first_ack_of_data.at + MS;
    let before = net.sent(Dir::ToServer, |s| s.is_data() && s.at < arrives);
    assert_eq!(before.len(), 10, "{before:?}");
    // Full segments: MSS 1460 less the 12-byte timestamp option (RFC 6691).
    assert!(before.iter().all(|s| s.len() == 1448), "{before:?}");
}

#[test]
fn the_sender_never_exceeds_the_peers_scaled_window() {
    let (ccfg, mut scfg) = configs(23);
    // 200 000 bytes: only reachable with window scaling (the field is 16 bits).
    scfg.recv_buffer = 200_000;
    let len = 1024 * 1024;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let (stally, stalled, offers) = (
        server.tally.clone(),
        server.stalled.clone(),
        server.offers.clone(),
    );
    stalled.set(true);
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    net.connect(41013);
    net.run_for(Duration::from_secs(5));
    let segs = net.segs().clone();
    let syn_ack = segs
        .iter()
        .find(|s| s.dir == Dir::ToClient && s.has(Flags::SYN))
        .unwrap();
    let wscale = syn_ack
        .options
        .window_scale
        .expect("window scaling offered");
    assert_eq!(wscale, 7);
    // The right edge the server has advertised so far (the SYN-ACK's window is unscaled).
    let mut edge = syn_ack.ack + u32::from(syn_ack.window);
    let mut max_sent = syn_ack.ack;
    for s in segs.iter() {
        match s.dir {
            Dir::ToClient if !s.has(Flags::SYN) => {
                let e = s.ack + (u32::from(s.window) << wscale);
                edge = edge.max(e);
            }
            Dir::ToServer if s.is_data() => {
                assert!(
                    s.end().le(edge),
                    "sent up to {:?} beyond the advertised edge {:?}",
                    s.end(),
                    edge
                );
                max_sent = max_sent.max(s.end());
            }
            _ => {}
        }
    }
    let buffered = offers.borrow().last().map(|o| o.1).unwrap();
    assert_eq!(
        max_sent - syn_ack.ack,
        buffered as u32,
        "all of it buffered"
    );
    assert!(
        buffered > 65_535,
        "the scaled window let {buffered} bytes in"
    );
    assert!(buffered <= 200_000);
    let last = segs.iter().rev().find(|s| s.dir == Dir::ToClient).unwrap();
    assert_eq!(last.window, 0, "the full buffer closed the window");
    stalled.set(false);
    assert!(net.run_until(Duration::from_secs(300), |_| stally.borrow().completed == 1));
    assert_eq!(stally.borrow().mismatched, 0);
}
