//! The receive side of reliable data, driven by hand-made segments: ACKs at once or delayed
//! as Linux decides (quick-ACK mode for the first segments and after an idle RTO, then more
//! than one segment's worth of bytes, else the delayed-ACK timer: RFC 1122 §4.2.3.2, RFC 5681
//! §4.2), out-of-order data kept and acknowledged at once, overlaps trimmed so no byte is
//! delivered twice, the window advertised from free buffer space with window scaling (RFC 7323
//! §2) and updated after a read as Linux does, timestamps echoed (RFC 7323 §4.3), and the peer's keepalive probes answered (RFC 1122
//! §4.2.3.6).

use std::time::Duration;

use xdptcp::sim::configs;
use xdptcp::tcp::Config;
use xdptcp::wire::tcp::Flags;

use crate::netsim::{Pattern, Server};
use crate::util::{RAW_PORT, RawPeer, Sent};

const MSS: usize = 1460;

/// A raw client connected to a server that reads (and checks) `len` bytes of the raw port's
/// pattern; returns the peer and the stream to send.
fn connected(cfg: Config, len: usize, wscale: Option<u8>) -> (RawPeer<Server>, Vec<u8>) {
    let mut peer = RawPeer::new(cfg, Server::new(false, Some(len)));
    peer.handshake(wscale, false);
    (peer, Pattern::new(u64::from(RAW_PORT)).bytes(len))
}

fn server_cfg() -> Config {
    configs(40).1
}

fn only_ack(segs: &[Sent]) -> &Sent {
    assert_eq!(segs.len(), 1, "exactly one segment: {segs:?}");
    assert!(segs[0].has(Flags::ACK) && segs[0].len() == 0, "{segs:?}");
    &segs[0]
}

/// Linux's `TCP_MAX_QUICKACKS`: immediate ACKs at the start of a connection.
const QUICK_ACKS: usize = 16;

/// Sends `first` as [`QUICK_ACKS`] segments, each ACKed at once (quick-ACK mode), so
/// delayed-ACK behaviour is checked on what follows; no time passes, so the mode is not
/// entered again by a silence.
fn spend_quick_acks(peer: &mut RawPeer<Server>, first: &[u8]) {
    for (i, piece) in first.chunks(first.len().div_ceil(QUICK_ACKS)).enumerate() {
        let ack = peer.send(piece);
        assert_eq!(only_ack(&ack).ack, peer.snd_nxt, "quick ACK {i}");
    }
}

#[test]
fn the_first_sixteen_data_segments_are_acked_at_once() {
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * 10 + 10, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * 10]);
    recv_nothing!(peer.send(&data[QUICK_ACKS * 10..]), "the 17th waits");
    let ack = peer.advance(Duration::from_secs(1));
    assert_eq!(only_ack(&ack).ack, peer.snd_nxt);
}

#[test]
fn data_after_a_silence_longer_than_the_rto_is_acked_at_once_again() {
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * 10 + 20, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * 10]);
    recv_nothing!(peer.send(&data[QUICK_ACKS * 10..QUICK_ACKS * 10 + 10]));
    assert_eq!(
        only_ack(&peer.advance(Duration::from_secs(1))).ack,
        peer.snd_nxt
    );
    // A second of silence is more than the RTO: the peer restarts its window, so do we.
    let ack = peer.send(&data[QUICK_ACKS * 10 + 10..]);
    assert_eq!(only_ack(&ack).ack, peer.snd_nxt, "at once");
}

#[test]
fn a_segment_worth_two_full_ones_is_acked_at_once() {
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * 10 + 3 * MSS, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * 10]);
    // One full segment teaches the receiver the peer's segment size, and waits.
    recv_nothing!(peer.send(&data[QUICK_ACKS * 10..QUICK_ACKS * 10 + MSS]));
    assert_eq!(
        only_ack(&peer.advance(Duration::from_millis(100))).ack,
        peer.snd_nxt
    );
    // A coalesced one (as from GRO or a peer's TSO) is more than one MSS unacknowledged.
    let ack = peer.send(&data[QUICK_ACKS * 10 + MSS..]);
    assert_eq!(only_ack(&ack).ack, peer.snd_nxt);
}

#[test]
fn small_segments_are_acked_once_more_than_536_bytes_wait() {
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * 10 + 600, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * 10]);
    let rest = &data[QUICK_ACKS * 10..];
    for piece in rest[..500].chunks(100) {
        recv_nothing!(peer.send(piece), "at most 536 bytes unacknowledged");
    }
    let ack = peer.send(&rest[500..]);
    assert_eq!(only_ack(&ack).ack, peer.snd_nxt, "600 bytes: at once");
}

#[test]
fn an_old_duplicate_segment_puts_the_receiver_back_in_quick_ack_mode() {
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * 10 + 20, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * 10]);
    recv_nothing!(peer.send(&data[QUICK_ACKS * 10..QUICK_ACKS * 10 + 10]));
    assert_eq!(
        only_ack(&peer.advance(Duration::from_millis(100))).ack,
        peer.snd_nxt
    );
    // The peer resends the first segment (it lost our ACKs): a duplicate ACK at once, and the
    // next new data is ACKed at once too.
    let first = peer.snd_nxt - (QUICK_ACKS * 10 + 10) as u32;
    let dup = peer.send_at(first, Flags::NONE, &data[..10]);
    assert_eq!(only_ack(&dup).ack, peer.snd_nxt);
    let ack = peer.send(&data[QUICK_ACKS * 10 + 10..]);
    assert_eq!(only_ack(&ack).ack, peer.snd_nxt, "quick-ACK mode again");
}

#[test]
fn a_lone_small_segment_is_acked_after_the_delayed_ack_timeout() {
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * 10 + 100, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * 10]);
    let sent_at = peer.now;
    recv_nothing!(peer.send(&data[QUICK_ACKS * 10..]), "not at once");
    let later = peer.advance(Duration::from_secs(1));
    let ack = only_ack(&later);
    assert_eq!(ack.ack, peer.snd_nxt);
    let delay = ack.at - sent_at;
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_millis(200),
        "{delay:?}"
    );
    let t = peer.engine.app().tally.borrow();
    assert_eq!((t.completed, t.mismatched), (1, 0));
}

#[test]
fn every_second_full_sized_segment_is_acked_at_once() {
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * MSS + 6 * MSS, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * MSS]);
    for pair in data[QUICK_ACKS * MSS..].chunks(2 * MSS) {
        recv_nothing!(peer.send(&pair[..MSS]), "the first of two waits");
        let ack = peer.send(&pair[MSS..]);
        assert_eq!(
            only_ack(&ack).ack,
            peer.snd_nxt,
            "the second is ACKed at once"
        );
    }
    assert!(
        peer.advance(Duration::from_secs(1)).is_empty(),
        "nothing left owed"
    );
    let t = peer.engine.app().tally.borrow();
    assert_eq!((t.completed, t.mismatched), (1, 0));
}

#[test]
fn out_of_order_data_is_acked_at_once_and_kept_until_the_hole_fills() {
    let (mut peer, data) = connected(server_cfg(), 3 * MSS, Some(7));
    let base = peer.snd_nxt;
    // The third segment first: a duplicate ACK for the hole, with a SACK block for it.
    let ack = peer.send_at(base + 2 * MSS, Flags::NONE, &data[2 * MSS..]);
    let ack = only_ack(&ack);
    assert_eq!(ack.ack, base, "RCV.NXT has not moved");
    assert_eq!(ack.options.sack_count, 1);
    assert_eq!(ack.options.sack_blocks[0], (base + 2 * MSS, base + 3 * MSS));
    // The second: still a hole, another immediate duplicate ACK.
    let ack = peer.send_at(base + MSS, Flags::NONE, &data[MSS..2 * MSS]);
    assert_eq!(only_ack(&ack).ack, base);
    assert_eq!(
        peer.engine.app().tally.borrow().received,
        0,
        "nothing delivered yet"
    );
    // The first fills the hole: everything is acknowledged at once and delivered in order.
    let ack = peer.send_at(base, Flags::NONE, &data[..MSS]);
    let ack = only_ack(&ack);
    assert_eq!(ack.ack, base + 3 * MSS);
    assert_eq!(ack.options.sack_count, 0);
    let t = peer.engine.app().tally.borrow();
    assert_eq!(
        (t.completed, t.mismatched, t.received),
        (1, 0, 3 * MSS as u64)
    );
    assert_eq!(peer.engine.stats().ooo_segments, 2);
}

#[test]
fn duplicated_and_reordered_segments_are_delivered_exactly_once() {
    let n = 8;
    let (mut peer, data) = connected(server_cfg(), n * MSS, Some(7));
    let base = peer.snd_nxt;
    for i in [5, 2, 7, 5, 1, 2, 6, 3, 7, 0, 4, 1, 0, 6] {
        peer.send_at(base + i * MSS, Flags::NONE, &data[i * MSS..(i + 1) * MSS]);
    }
    // Everything again, after it was all delivered.
    for i in 0..n {
        let ack = peer.send_at(base + i * MSS, Flags::NONE, &data[i * MSS..(i + 1) * MSS]);
        assert_eq!(
            only_ack(&ack).ack,
            base + n * MSS,
            "an old duplicate is re-ACKed"
        );
    }
    let t = peer.engine.app().tally.borrow();
    assert_eq!((t.completed, t.mismatched), (1, 0));
    assert_eq!(t.received, (n * MSS) as u64, "no byte twice");
    assert_eq!(peer.engine.stats().rx_bytes, (n * MSS) as u64);
}

#[test]
fn partially_overlapping_retransmissions_are_trimmed() {
    let len = 4200;
    let (mut peer, data) = connected(server_cfg(), len, Some(7));
    let base = peer.snd_nxt;
    let mut send = |from: usize, to: usize| {
        peer.send_at(base + from, Flags::NONE, &data[from..to]);
    };
    send(0, 1000);
    send(500, 1500); // overlaps delivered data
    send(3000, 4000); // out of order
    send(2500, 3500); // overlaps the queued range from the left
    send(3800, 4200); // and from the right
    send(2900, 3100); // inside it
    send(1400, 2600); // overlaps RCV.NXT and the queued range
    let t = peer.engine.app().tally.borrow();
    assert_eq!(t.mismatched, 0);
    assert_eq!(t.received, len as u64, "every byte once");
    assert_eq!(t.completed, 1);
    assert_eq!(peer.engine.stats().rx_bytes, len as u64);
}

#[test]
fn the_window_advertised_is_the_free_receive_buffer_scaled_by_our_shift() {
    let mut cfg = server_cfg();
    cfg.recv_buffer = 64 * 1024;
    let mut peer = RawPeer::new(cfg, Server::new(false, None));
    peer.engine.app().stalled.set(true);
    let syn_ack = peer.handshake(Some(7), false);
    assert_eq!(syn_ack.options.window_scale, Some(7));
    assert_eq!(syn_ack.window, 65_535, "a SYN's window is never scaled");
    let mut used = 0;
    let mut last = None;
    while used + MSS <= 64 * 1024 {
        peer.send(&[7u8; MSS]);
        let ack = peer.send(&[7u8; MSS]);
        used += 2 * MSS;
        let ack = only_ack(&ack).clone();
        let free = (64 * 1024usize).saturating_sub(used);
        let advertised = (ack.window as usize) << 7;
        assert!(
            advertised <= free && free - advertised < 128,
            "free {free}, advertised {advertised}"
        );
        last = Some(ack);
    }
    let last = last.unwrap();
    assert_eq!(last.window, 10, "1 296 bytes free");
    // Exactly what is left: the buffer is full and the window closes.
    let mut answers = peer.send(&[7u8; 1296]);
    answers.extend(peer.advance(Duration::from_secs(1)));
    assert_eq!(only_ack(&answers).window, 0);
    // More is refused, and the ACK still says zero.
    let ack = peer.send_at(peer.snd_nxt, Flags::NONE, &[7u8; 100]);
    assert_eq!(only_ack(&ack).ack, peer.snd_nxt);
    assert_eq!(ack[0].window, 0);
}

#[test]
fn a_large_buffer_is_advertised_through_the_scale_factor() {
    let mut cfg = server_cfg();
    cfg.recv_buffer = 1024 * 1024;
    let (mut peer, data) = connected(cfg, 2 * MSS, Some(2));
    let ack = peer.send(&data);
    let ack = only_ack(&ack);
    assert_eq!(
        (ack.window as usize) << 7,
        1024 * 1024,
        "all of it free again (the app read it), far above 65 535"
    );
}

#[test]
fn without_window_scaling_the_window_is_capped_at_65535() {
    let mut cfg = server_cfg();
    cfg.recv_buffer = 1024 * 1024;
    let (mut peer, data) = connected(cfg, 2 * MSS, None);
    let ack = peer.send(&data);
    assert_eq!(only_ack(&ack).window, 65_535);
}

/// A server with a 64 KiB receive buffer whose app does not read, `segments` full segments
/// received and every ACK for them out; returns the peer and the window last advertised.
fn stalled_with(segments: usize, wscale: Option<u8>) -> (RawPeer<Server>, u16) {
    let mut cfg = server_cfg();
    cfg.recv_buffer = 64 * 1024;
    let mut peer = RawPeer::new(cfg, Server::new(false, None));
    peer.engine.app().stalled.set(true);
    peer.handshake(wscale, false);
    let mut acks = Vec::new();
    for _ in 0..segments {
        acks.extend(peer.send(&[7u8; MSS]));
    }
    acks.extend(peer.advance(Duration::from_secs(1)));
    let last = acks.last().expect("ACKs");
    assert_eq!(last.ack, peer.snd_nxt);
    (peer, last.window)
}

#[test]
fn a_read_that_frees_two_segments_of_a_mostly_open_window_sends_no_window_update() {
    // Linux's tcp_cleanup_rbuf: a read sends a window update only once the window still
    // open to the peer has fallen to half the largest it can be, and the new one doubles it.
    let (mut peer, window) = stalled_with(2, Some(7));
    assert_eq!(usize::from(window) << 7, (64 * 1024 - 2 * MSS) / 128 * 128);
    peer.engine.app().stalled.set(false);
    recv_nothing!(peer.send(&[]), "the app read 2 MSS; 62 KiB were still open");
    assert_eq!(peer.engine.app().tally.borrow().received, 2 * MSS as u64);
    // The next ACK carries the whole window.
    let ack = peer.send(&[7u8; MSS]);
    assert_eq!(only_ack(&ack).window, 512);
}

#[test]
fn without_window_scaling_a_read_sends_no_window_update() {
    // The window is capped at 65 535 bytes, far below a 256 KiB buffer: the space a read
    // frees is always more than two segments beyond it, yet the window never fell at all.
    let mut peer = RawPeer::new(server_cfg(), Server::new(false, None));
    peer.engine.app().stalled.set(true);
    peer.handshake(None, false);
    let acks = peer.send(&[7u8; MSS]);
    assert_eq!(only_ack(&acks).window, 65_535, "more than that is free");
    peer.engine.app().stalled.set(false);
    recv_nothing!(peer.send(&[]), "the app read; the window is what it was");
    assert_eq!(peer.engine.app().tally.borrow().received, MSS as u64);
}

#[test]
fn a_read_that_reopens_a_window_fallen_below_half_the_buffer_sends_a_window_update() {
    let (mut peer, window) = stalled_with(24, Some(7));
    assert!(usize::from(window) << 7 <= 32 * 1024, "{window}");
    peer.engine.app().stalled.set(false);
    let update = peer.send(&[]);
    let update = only_ack(&update);
    assert_eq!(update.window, 512, "all 64 KiB open again");
    assert_eq!(update.ack, peer.snd_nxt);
}

#[test]
fn the_ack_echoes_the_timestamp_of_the_segment_it_acknowledges() {
    let mut peer = RawPeer::new(server_cfg(), Server::new(false, None));
    peer.handshake(Some(7), true);
    assert!(peer.ts);
    for _ in 0..3 {
        peer.advance(Duration::from_secs(10));
        let tsval = peer.now.total_millis() as u32;
        let ack = peer.send(&[1u8; 2 * MSS]);
        let ack = only_ack(&ack);
        assert_eq!(
            ack.options.timestamp.map(|(_, ecr)| ecr),
            Some(tsval),
            "TSecr is the TSval of the data just acknowledged (RFC 7323 §4.3)"
        );
    }
}

#[test]
fn the_peers_keepalive_probes_are_answered_with_an_ack() {
    let (mut peer, data) = connected(server_cfg(), 100, Some(7));
    peer.send(&data);
    peer.advance(Duration::from_secs(1));
    for round in 0..3 {
        peer.advance(Duration::from_secs(75));
        // Linux's probe: SEG.SEQ = SND.NXT - 1, no data.
        let probe = peer.snd_nxt - 1u32;
        let ack = peer.send_at(probe, Flags::NONE, &[]);
        assert_eq!(only_ack(&ack).ack, peer.snd_nxt, "round {round}");
        // The BSD probe carries one garbage byte, already received.
        peer.advance(Duration::from_secs(75));
        let ack = peer.send_at(probe, Flags::NONE, &[0xee]);
        assert_eq!(only_ack(&ack).ack, peer.snd_nxt, "round {round}");
    }
    let t = peer.engine.app().tally.borrow();
    assert_eq!(
        (t.received, t.mismatched),
        (100, 0),
        "the garbage byte is not delivered"
    );
}

#[test]
fn sack_blocks_report_the_newest_range_first_and_a_duplicate_in_a_dsack_block() {
    let (mut peer, data) = connected(server_cfg(), 6 * MSS, Some(7));
    let base = peer.snd_nxt;
    peer.send_at(base + 4 * MSS, Flags::NONE, &data[4 * MSS..5 * MSS]);
    // RFC 2018 §4: "The first SACK block [...] MUST specify the contiguous block of data
    // containing the segment which triggered this ACK".
    let ack = peer.send_at(base + 2 * MSS, Flags::NONE, &data[2 * MSS..3 * MSS]);
    let ack = only_ack(&ack);
    assert_eq!(ack.options.sack_count, 2);
    assert_eq!(ack.options.sack_blocks[0], (base + 2 * MSS, base + 3 * MSS));
    assert_eq!(ack.options.sack_blocks[1], (base + 4 * MSS, base + 5 * MSS));
    // The same out-of-order segment again: RFC 2883 §4.1.2, a D-SACK block for it first.
    let ack = peer.send_at(base + 2 * MSS, Flags::NONE, &data[2 * MSS..3 * MSS]);
    let ack = only_ack(&ack);
    assert_eq!(ack.options.sack_blocks[0], (base + 2 * MSS, base + 3 * MSS));
    assert_eq!(ack.options.sack_blocks[1], (base + 2 * MSS, base + 3 * MSS));
    // Data below RCV.NXT again: RFC 2883 §4.1.1, a D-SACK block below the cumulative ACK.
    peer.send_at(base, Flags::NONE, &data[..MSS]);
    let ack = peer.send_at(base, Flags::NONE, &data[..MSS]);
    let ack = only_ack(&ack);
    assert_eq!(ack.ack, base + MSS);
    assert_eq!(ack.options.sack_blocks[0], (base, base + MSS));
    assert!(
        ack.options.sack_count >= 2,
        "the out-of-order ranges follow"
    );
    // Reported once.
    let ack = peer.send_at(base + 5 * MSS, Flags::NONE, &data[5 * MSS..]);
    assert_ne!(only_ack(&ack).options.sack_blocks[0], (base, base + MSS));
}

#[test]
fn in_order_data_that_repeats_queued_data_reports_it_in_a_dsack_block() {
    // RFC 2883 §4, as Linux's tcp_ofo_queue: a segment from RCV.NXT that covers data held out
    // of order makes that data a duplicate; the first range it repeats is D-SACKed.
    let (mut peer, data) = connected(server_cfg(), 8 * MSS, Some(7));
    let base = peer.snd_nxt;
    for (from, to) in [(1, 3), (4, 5), (7, 8)] {
        peer.send_at(base + from * MSS, Flags::NONE, &data[from * MSS..to * MSS]);
    }
    let ack = peer.send_at(base, Flags::NONE, &data[..6 * MSS]);
    let ack = only_ack(&ack);
    assert_eq!(ack.ack, base + 6 * MSS);
    assert_eq!(ack.options.sack_count, 2, "{:?}", ack.options.sack_blocks);
    assert_eq!(ack.options.sack_blocks[0], (base + MSS, base + 3 * MSS));
    assert_eq!(ack.options.sack_blocks[1], (base + 7 * MSS, base + 8 * MSS));
    // The rest, repeating the last range: D-SACKed, nothing out of order left.
    let ack = peer.send_at(base + 6 * MSS, Flags::NONE, &data[6 * MSS..]);
    let ack = only_ack(&ack);
    assert_eq!(ack.ack, base + 8 * MSS);
    assert_eq!(ack.options.sack_count, 1);
    assert_eq!(ack.options.sack_blocks[0], (base + 7 * MSS, base + 8 * MSS));
    let t = peer.engine.app().tally.borrow();
    assert_eq!(
        (t.received, t.mismatched),
        (8 * MSS as u64, 0),
        "each byte once"
    );
}

#[test]
fn a_fin_ahead_of_a_hole_is_kept_and_counts_once_the_hole_is_filled() {
    // RFC 9293 §3.10.7.4: segments are processed in sequence order, the FIN included.
    let (mut peer, data) = connected(server_cfg(), 2 * MSS, Some(7));
    let base = peer.snd_nxt;
    let ack = peer.send_at(base + MSS, Flags::FIN, &data[MSS..]);
    assert_eq!(only_ack(&ack).ack, base, "a hole before it");
    assert!(peer.engine.app().tally.borrow().closed.is_empty());
    // The hole is filled; the FIN, not resent, counts: RCV.NXT passes it.
    let answer = peer.send_at(base, Flags::NONE, &data[..MSS]);
    let last = answer.last().expect("an ACK (with the server's own FIN)");
    assert_eq!(last.ack, base + (2 * MSS + 1), "data and FIN acknowledged");
    let t = peer.engine.app().tally.borrow();
    assert_eq!((t.completed, t.mismatched), (1, 0));
}

/// Ends the engine's receive batch now; returns what it sent.
fn end_batch(peer: &mut RawPeer<Server>) -> Vec<crate::util::Seg> {
    let mut tx: Vec<Vec<u8>> = Vec::new();
    let now = peer.now;
    peer.engine.end_batch(now, &mut tx);
    crate::util::parse_all(&tx)
}

#[test]
fn in_a_receive_batch_in_order_data_is_acked_once_at_its_end() {
    let (mut peer, data) = connected(server_cfg(), 20 * MSS, Some(7));
    // Quick-ACK mode: outside a batch each of these would be ACKed at once.
    peer.engine.begin_batch();
    for (i, piece) in data[..10 * MSS].chunks(MSS).enumerate() {
        recv_nothing!(peer.send(piece), "segment {i} in the batch");
    }
    let acks = end_batch(&mut peer);
    assert_eq!(acks.len(), 1, "one ACK for the batch: {acks:?}");
    assert!(acks[0].has(Flags::ACK) && acks[0].len() == 0);
    assert_eq!(acks[0].ack, peer.snd_nxt, "past all of it");
    // Outside a batch the rules are as before: the next segment is ACKed at once.
    assert_eq!(
        only_ack(&peer.send(&data[10 * MSS..11 * MSS])).ack,
        peer.snd_nxt
    );
    // A batch that is never ended leaves its ACK to the delayed-ACK timer.
    peer.engine.begin_batch();
    recv_nothing!(peer.send(&data[11 * MSS..12 * MSS]));
    recv_nothing!(peer.send(&data[12 * MSS..13 * MSS]));
    let late = peer.advance(Duration::from_secs(1));
    assert_eq!(only_ack(&late).ack, peer.snd_nxt);
}

#[test]
fn in_a_receive_batch_out_of_order_data_is_acked_at_once() {
    let (mut peer, data) = connected(server_cfg(), 4 * MSS, Some(7));
    peer.engine.begin_batch();
    recv_nothing!(peer.send(&data[..MSS]));
    let in_order = peer.snd_nxt;
    // The second segment is lost; the third arrives above the hole.
    let third = in_order + MSS;
    let dup = peer.send_at(third, Flags::NONE, &data[2 * MSS..3 * MSS]);
    assert_eq!(only_ack(&dup).ack, in_order, "a duplicate ACK at once");
    recv_nothing!(end_batch(&mut peer), "the duplicate ACK covered the batch");
    // The hole filled, in a batch: ACKed at once too.
    peer.engine.begin_batch();
    let filled = peer.send_at(in_order, Flags::NONE, &data[MSS..2 * MSS]);
    assert_eq!(only_ack(&filled).ack, in_order + 2 * MSS);
    recv_nothing!(end_batch(&mut peer));
}

#[test]
fn a_64_kib_segment_is_taken_whole_acked_at_once_and_counts_as_one_mss_for_the_ack_rule() {
    // A gathered multi-buffer packet, a GRO-merged one, or a peer's TSO past our MSS: one
    // segment of 64 000 bytes, far more than the MSS (and than one UMEM frame).
    let big = 64_000;
    let (mut peer, data) = connected(server_cfg(), QUICK_ACKS * 10 + big + 2 * MSS, Some(7));
    spend_quick_acks(&mut peer, &data[..QUICK_ACKS * 10]);
    let start = QUICK_ACKS * 10;
    let ack = peer.send(&data[start..start + big]);
    assert_eq!(only_ack(&ack).ack, peer.snd_nxt, "all of it, at once");
    // Linux's tcp_measure_rcv_mss caps rcv_mss at the MSS we announced, so every second
    // full-sized segment after it is still ACKed at once (with rcv_mss grown to 64 000, both
    // would wait for the timer).
    let rest = &data[start + big..];
    recv_nothing!(
        peer.send(&rest[..MSS]),
        "the first full-sized segment waits"
    );
    let ack = peer.send(&rest[MSS..]);
    assert_eq!(
        only_ack(&ack).ack,
        peer.snd_nxt,
        "the second is ACKed at once"
    );
    let t = peer.engine.app().tally.borrow();
    assert_eq!(
        (t.completed, t.mismatched),
        (1, 0),
        "every byte delivered once"
    );
}

#[test]
fn data_partly_below_rcv_nxt_into_a_closed_window_is_dsacked_up_to_rcv_nxt() {
    // Linux's tcp_data_queue: a segment that starts below RCV.NXT and ends past it, into a
    // window of zero, is refused, and the part below RCV.NXT is reported as a duplicate
    // (RFC 2883 §4.1.1) in the ACK that refuses it (tcp_send_dupack).
    let mut cfg = server_cfg();
    cfg.recv_buffer = 4 * MSS as u32;
    let (mut peer, data) = connected(cfg, 6 * MSS, Some(7));
    peer.engine.app().stalled.set(true);
    let base = peer.snd_nxt;
    for i in 0..4 {
        peer.send_at(base + i * MSS, Flags::NONE, &data[i * MSS..(i + 1) * MSS]);
    }
    let ack = peer.send_at(base + 3 * MSS, Flags::NONE, &data[3 * MSS..5 * MSS]);
    let ack = only_ack(&ack);
    assert_eq!(ack.ack, base + 4 * MSS);
    assert_eq!(ack.window, 0, "the window is closed");
    assert_eq!(ack.options.sack_count, 1, "{:?}", ack.options.sack_blocks);
    assert_eq!(ack.options.sack_blocks[0], (base + 3 * MSS, base + 4 * MSS));
}
