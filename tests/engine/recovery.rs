//! Loss recovery as Linux does it by default, one behaviour per test, in the simulator: SACK
//! scoreboard (RFC 6675), RACK-TLP (RFC 8985), PRR (RFC 6937), CUBIC (RFC 9438) and the undo
//! of a spurious timeout (RFC 5682 in spirit).

use std::time::Duration;

use std::cell::RefCell;
use std::rc::Rc;

use xdptcp::sim::{Dir, LinkConfig, configs};

use crate::netsim::{Bulk, Net, Server, Tally, lose_first_transmission_of, sent_before};
use crate::util::Sent;

const MS: Duration = Duration::from_millis(1);

/// A one-way upload of `len` bytes from the client, checked byte for byte at the server.
fn upload(seed: u64, len: usize, link: LinkConfig) -> (Net<Bulk, Server>, Rc<RefCell<Tally>>) {
    let (ccfg, scfg) = configs(seed);
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let stally = server.tally.clone();
    (Net::new(ccfg, client, scfg, server, link), stally)
}

#[test]
fn three_segments_lost_in_one_window_are_repaired_in_one_recovery_episode_with_sack() {
    let (mut net, stally) = upload(31, 512 * 1024, LinkConfig::default());
    // The second flight is 20 segments (slow start from 10): lose three of them.
    net.drop_when(lose_first_transmission_of(&[12, 15, 18]));
    net.connect(42001);
    assert!(net.run_until(Duration::from_secs(10), |_| stally.borrow().completed == 1));
    let lost = net.sent(Dir::ToServer, |s| s.dropped);
    assert_eq!(lost.len(), 3);
    let mut resent = Vec::new();
    for l in &lost {
        let again = net.sent(Dir::ToServer, |s| s.seq == l.seq && !s.dropped);
        assert_eq!(again.len(), 1, "resent once: {:?}", l.seq);
        resent.push(again[0].at);
    }
    // One episode: all three holes go out within one round trip (2 ms here) of the first,
    // driven by the SACK blocks, not one per round trip as NewReno's partial ACKs do.
    let first = resent.iter().min().unwrap();
    let last = resent.iter().max().unwrap();
    assert!(
        *last - *first <= 2 * MS,
        "holes resent over {:?}",
        *last - *first
    );
    let st = net.p.client.stats();
    assert_eq!(st.fast_retransmits, 3, "{st}");
    assert_eq!(st.rto_retransmits, 0, "{st}");
    assert_eq!(st.recovery_episodes, 1, "{st}");
    assert_eq!(stally.borrow().mismatched, 0);
}

#[test]
fn a_lost_last_segment_is_repaired_by_a_tail_loss_probe_before_the_rto() {
    let (mut net, stally) = upload(32, 10 * 1448, LinkConfig::default());
    // The handshake measures the RTT (2 ms); lose the tenth (last) data segment.
    net.drop_when(lose_first_transmission_of(&[10]));
    net.connect(42002);
    assert!(net.run_until(Duration::from_secs(10), |_| stally.borrow().completed == 1));
    let lost = net.sent(Dir::ToServer, |s| s.dropped);
    assert_eq!(lost.len(), 1);
    let again = net.sent(Dir::ToServer, |s| s.seq == lost[0].seq && !s.dropped);
    let after = again[0].at - lost[0].at;
    // RFC 8985 §7.2: PTO = 2 SRTT (+ 2 ms) with several segments in flight; SRTT is 2 ms
    // here. The RTO would be at least 200 ms.
    assert!(
        after < Duration::from_millis(20),
        "repaired after {after:?}"
    );
    let st = net.p.client.stats();
    assert_eq!(st.tail_loss_probes, 1, "{st}");
    assert_eq!(st.rto_retransmits, 0, "{st}");
    assert_eq!(stally.borrow().mismatched, 0);
}

#[test]
fn a_reordered_segment_causes_no_retransmission_once_rack_has_seen_reordering() {
    // 20 ms RTT; 2 % of the segments arrive 3 ms late, overtaken by the ones behind them.
    let link = LinkConfig {
        delay: 10 * MS,
        reorder: 0.02,
        reorder_delay: 3 * MS,
        seed: 33,
        ..LinkConfig::default()
    };
    let (mut net, stally) = upload(33, 4 * 1024 * 1024, link);
    net.connect(42003);
    assert!(net.run_until(Duration::from_secs(60), |_| stally.borrow().completed == 1));
    let st = net.p.client.stats();
    // Nothing was lost: every retransmission is spurious. The first reorderings may cost a
    // few (before reordering was seen, RFC 8985 §6.2 waits no reordering window once three
    // segments are SACKed); the D-SACKs show reordering and grow the window (RFC 8985 §6.2
    // step 4), and from then on RACK's window (min_RTT / 4 = 5 ms and up) covers the 3 ms.
    assert_eq!(net.p.lost, [0, 0]);
    let data = net.sent(Dir::ToServer, |s| s.is_data());
    let resent: Vec<usize> = (0..data.len())
        .filter(|&i| data[..i].iter().any(|x| x.seq == data[i].seq))
        .collect();
    assert!(resent.len() <= 3, "{resent:?} of {} {st}", data.len());
    assert!(
        resent.iter().all(|&i| i < data.len() / 20),
        "none after the first 5 % of {} segments: {resent:?}",
        data.len()
    );
    assert!(st.undos >= 1, "the D-SACKs undid the reductions: {st}");
    assert_eq!(stally.borrow().mismatched, 0);
}

#[test]
fn a_spurious_timeout_is_detected_by_timestamps_and_the_window_restored() {
    let (mut net, stally) = upload(34, 64 * 1024 * 1024, LinkConfig::default());
    let id = net.connect(42004);
    // Let the window open, then delay everything sent during the next 250 ms by 300 ms (a
    // delay spike, no loss): the tail loss probe is held too, the RTO (200 ms minimum) fires
    // and retransmits; then the ACKs of the originals arrive, echoing timestamps older than
    // the retransmission's (RFC 5682 §3 / RFC 3522: the timeout was spurious).
    net.run_for(Duration::from_millis(40));
    let cwnd_before = net.p.client.congestion_window(id).unwrap();
    net.p.set_link(LinkConfig {
        delay: 300 * MS,
        ..LinkConfig::default()
    });
    net.run_for(Duration::from_millis(250));
    net.p.set_link(LinkConfig::default());
    net.run_for(Duration::from_millis(400));
    let st = net.p.client.stats();
    assert!(st.rto_retransmits >= 1, "the timer fired: {st}");
    assert_eq!(st.undos, 1, "{st}");
    let cwnd_after = net.p.client.congestion_window(id).unwrap();
    assert!(
        cwnd_after >= cwnd_before,
        "restored: {cwnd_after} after, {cwnd_before} before"
    );
    assert!(net.run_until(Duration::from_secs(60), |_| stally.borrow().completed == 1));
    assert_eq!(stally.borrow().mismatched, 0);
}

#[test]
fn cubic_grows_the_window_along_rfc9438s_curve_after_a_loss() {
    // RTT 200 ms, buffers large enough that only the congestion window limits the sender.
    let (mut ccfg, mut scfg) = configs(35);
    ccfg.send_buffer = 8 << 20;
    scfg.recv_buffer = 8 << 20;
    let len = 64 << 20;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let link = LinkConfig {
        delay: 100 * MS,
        ..LinkConfig::default()
    };
    let mut net = Net::new(ccfg, client, scfg, server, link);
    let id = net.connect(42005);
    // Slow start to about 100 segments, then lose one segment: the congestion event.
    let mut sent = 0;
    net.drop_when(move |s, h| {
        if s.dir != Dir::ToServer || !s.is_data() || sent_before(h, Dir::ToServer, s.seq) {
            return false;
        }
        sent += 1;
        sent == 200
    });
    while net.sent(Dir::ToServer, |s| s.dropped).is_empty() {
        net.run_for(10 * MS);
    }
    // Recovery takes about an RTT and ends with cwnd = ssthresh = β_cubic W_max.
    net.run_for(Duration::from_millis(400));
    let mss = 1448.0;
    // Sample cwnd every 200 ms for 6 s and compare with W_cubic(t) = C (t - K)^3 + W_max.
    let ssthresh = f64::from(net.p.client.congestion_window(id).unwrap()) / mss;
    let w_max = ssthresh / 0.7;
    let k = (w_max * 0.3 / 0.4).cbrt();
    let epoch = net.p.now;
    for _ in 0..30 {
        net.run_for(Duration::from_millis(200));
        let t = (net.p.now - epoch).as_secs_f64();
        let w = f64::from(net.p.client.congestion_window(id).unwrap()) / mss;
        let expect = 0.4 * (t - k).powi(3) + w_max;
        assert!(
            (w - expect).abs() / expect < 0.05,
            "t={t:.1}s cwnd={w:.1} W_cubic={expect:.1} (K={k:.2}s W_max={w_max:.1})"
        );
    }
}

#[test]
fn prr_sends_in_proportion_to_what_is_delivered_during_recovery() {
    // RFC 6937 §3: while the pipe exceeds ssthresh, "sndcnt = CEIL(prr_delivered * ssthresh
    // / RecoverFS) - prr_out": over the episode the sender sends at most β_cubic (0.7) of what
    // is delivered (ssthresh / RecoverFS, less when slow start had grown cwnd past the
    // flight), spread over the ACKs, neither a burst nor a stall.
    // Buffers large enough that the congestion window, not the peer's, limits the sender.
    let (mut ccfg, mut scfg) = configs(36);
    ccfg.send_buffer = 8 << 20;
    scfg.recv_buffer = 8 << 20;
    let len = 4 << 20;
    let server = Server::new(false, Some(len));
    let stally = server.tally.clone();
    let link = LinkConfig {
        delay: 5 * MS,
        ..LinkConfig::default()
    };
    let mut net = Net::new(ccfg, Bulk::new(len, false), scfg, server, link);
    net.drop_when(lose_first_transmission_of(&[150]));
    net.connect(42006);
    assert!(net.run_until(Duration::from_secs(30), |_| stally.borrow().completed == 1));
    let segs = net.segs().clone();
    let lost = segs.iter().find(|s| s.dropped).unwrap().clone();
    let again = segs
        .iter()
        .find(|s| s.seq == lost.seq && !s.dropped && s.dir == Dir::ToServer)
        .unwrap()
        .clone();
    // RecoveryPoint: everything sent before the retransmission.
    let point = segs
        .iter()
        .filter(|s| s.dir == Dir::ToServer && s.at <= again.at && s.is_data())
        .map(|s| s.end())
        .fold(lost.end(), |a, b| a.max(b));
    let una = segs
        .iter()
        .filter(|s| s.dir == Dir::ToClient && s.at < again.at)
        .map(|s| s.ack)
        .fold(lost.seq, |a, b| a.max(b));
    // The ACK that covers the recovery point ends the episode (it arrives 5 ms later).
    let end = segs
        .iter()
        .find(|s| s.dir == Dir::ToClient && s.ack.ge(point))
        .unwrap()
        .at
        + 5 * MS;
    let sent: Vec<&Sent> = segs
        .iter()
        .filter(|s| s.dir == Dir::ToServer && s.is_data() && s.at >= again.at && s.at < end)
        .collect();
    let mss = 1448.0;
    let delivered = f64::from(point - una) / mss - 1.0;
    let sent_segments = sent.len() as f64;
    assert!(
        sent_segments <= (0.7 * delivered).ceil() + 1.0,
        "{sent_segments} sent for {delivered} delivered"
    );
    // And it keeps sending through the episode (no stall waiting for the window to drain).
    assert!(
        sent_segments >= 0.4 * delivered,
        "{sent_segments} sent for {delivered} delivered"
    );
    let st = net.p.client.stats();
    assert_eq!(st.recovery_episodes, 1, "{st}");
    assert_eq!(st.rto_retransmits, 0, "{st}");
}
