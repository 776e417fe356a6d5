//! RFC 6528 ISNs and RFC 7323 / RFC 9293 options: MSS, window scale, SACK-permitted,
//! timestamps, PAWS.

use std::time::Duration;

use xdptcp::state::State;
use xdptcp::stats::DropReason;
use xdptcp::wire::SeqNumber;

use crate::util::*;

/// Removes the half-open entry of the current port with an exact RST.
fn reset_half_open(p: &mut Peer<Scripted>, isn: u32) {
    p.send(seg(RST).seq(isn.wrapping_add(1)));
    assert_eq!(p.engine.connections(), 0);
}

#[test]
fn isns_of_two_connections_from_different_ports_are_unrelated() {
    let mut p = server_peer(Scripted::default());
    let a = p.send(seg(SYN).seq(1000)).remove(0).seq;
    p.port = PEER_PORT + 1;
    let b = p.send(seg(SYN).seq(1000)).remove(0).seq;
    // Same instant, neighbouring ports: a counter would give close values; a keyed hash of
    // the 4-tuple gives values anywhere in the 32-bit space.
    let delta = b.0.wrapping_sub(a.0);
    assert!(
        (1 << 20..=u32::MAX - (1 << 20)).contains(&delta),
        "ISNs {} and {} are suspiciously close",
        a.0,
        b.0
    );
}

#[test]
fn isn_of_the_same_four_tuple_later_is_larger_by_the_clock() {
    let mut p = server_peer(Scripted::default());
    let a = p.send(seg(SYN).seq(1000)).remove(0).seq;
    reset_half_open(&mut p, 1000);
    p.now = p.now + Duration::from_secs(10);
    let b = p.send(seg(SYN).seq(5000)).remove(0).seq;
    assert!(b.gt(a), "{} then {}", a.0, b.0);
    // RFC 6528: M is a 4 µs timer.
    assert_eq!(b.0.wrapping_sub(a.0), 10_000_000 / 4);
}

#[test]
fn server_negotiates_mss_window_scale_sack_and_timestamps() {
    let app = Scripted {
        greeting: vec![b'x'; 2500],
        ..Scripted::default()
    };
    let mut p = server_peer(app);
    let sa = p.handshake_with(1000, seg(SYN).mss(1000).sack_perm().ts(PEER_TS, 0).ws(3));
    assert_eq!(sa.options.mss, Some(1460), "we announce ours: {sa:?}");
    assert_eq!(sa.options.window_scale, Some(7));
    assert!(sa.options.sack_permitted);
    assert_eq!(sa.tsecr(), PEER_TS, "the SYN's TSval is echoed");
    assert_eq!(sa.window, 65535, "a SYN's window is never scaled");
    // The greeting went out after the handshake ACK, cut at the peer's MSS.
    let id = p.engine.find(&p.tuple()).unwrap();
    assert_eq!(p.engine.state(id), Some(State::Established));
}

#[test]
fn data_is_cut_at_the_peers_mss_less_the_timestamp_option_and_carries_timestamps() {
    let app = Scripted {
        greeting: vec![b'x'; 2500],
        ..Scripted::default()
    };
    let mut p = server_peer(app);
    let r = p.send(
        seg(SYN)
            .seq(1000)
            .mss(1000)
            .sack_perm()
            .ts(PEER_TS, 0)
            .ws(3),
    );
    let sa = r[0].clone();
    let r = p.send(
        seg(ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS, sa.tsval()),
    );
    let sizes: Vec<usize> = r.iter().map(|s| s.payload.len()).collect();
    // RFC 6691: the 12 bytes of the timestamp option come out of the MSS, so every segment
    // fits the peer's MTU (MSS 1000 → 988 bytes of data).
    assert_eq!(sizes, vec![988, 988, 524], "{r:?}");
    for s in &r {
        assert!(s.payload.len() + s.options.buffer_len() <= 1000);
    }
    for s in &r {
        assert_eq!(s.tsecr(), PEER_TS);
        assert_eq!(
            s.window,
            ((256 * 1024) >> 7) as u16,
            "our window, scaled by 7"
        );
        assert_eq!(s.options.mss, None, "MSS only on SYNs");
    }
}

#[test]
fn a_syn_without_options_gets_a_syn_ack_without_them_and_mss_536() {
    let app = Scripted {
        greeting: vec![b'x'; 1000],
        ..Scripted::default()
    };
    let mut p = server_peer(app);
    let r = p.send(seg(SYN).seq(1000));
    let sa = &r[0];
    assert_eq!(sa.options.mss, Some(1460));
    assert_eq!(sa.options.window_scale, None, "{sa:?}");
    assert!(!sa.options.sack_permitted);
    assert_eq!(sa.options.timestamp, None);
    let r = p.send(seg(ACK).seq(1001).ack(sa.seq + 1u32));
    let sizes: Vec<usize> = r.iter().map(|s| s.payload.len()).collect();
    assert_eq!(sizes, vec![536, 464], "RFC 9293 default MSS: {r:?}");
    assert!(r.iter().all(|s| s.options.timestamp.is_none()));
    assert_eq!(r[0].window, 65535, "unscaled window, capped at 65535");
}

#[test]
fn client_offers_every_option_and_follows_what_the_syn_ack_accepts() {
    let mut p = Peer::client(client_config(), Scripted::default(), 50000);
    let (_, syn) = p.connect();
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.window_scale, Some(7));
    assert!(syn.options.sack_permitted);
    assert_eq!(syn.tsecr(), 0);
    // The peer accepts no window scale: neither side scales.
    let r = p.send(
        seg(SYN_ACK)
            .seq(7000)
            .ack(syn.seq + 1u32)
            .mss(1200)
            .ts(5, syn.tsval()),
    );
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0].window, 65535,
        "window not scaled when the peer sent no WS"
    );
    assert_eq!(r[0].tsecr(), 5);
}

#[test]
fn client_scales_its_window_when_the_peer_accepts_window_scaling() {
    let mut p = Peer::client(client_config(), Scripted::default(), 50000);
    let (_, syn) = p.connect();
    let r = p.send(
        seg(SYN_ACK)
            .seq(7000)
            .ack(syn.seq + 1u32)
            .mss(1460)
            .ws(2)
            .sack_perm()
            .ts(5, syn.tsval()),
    );
    assert_eq!(r[0].window, ((256 * 1024) >> 7) as u16);
}

#[test]
fn paws_drops_a_segment_with_an_old_timestamp_and_acks_it() {
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = server_peer(app);
    let sa = p.handshake(1000);
    let r = p.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS - 10, 0)
            .data(b"old"),
    );
    assert_eq!(p.engine.stats().dropped(DropReason::Paws), 1);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].is(ACK));
    assert_eq!(r[0].ack, SeqNumber(1001), "nothing accepted");
    assert!(log.borrow().received.is_empty());
    // A current timestamp is accepted.
    p.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS, 0)
            .data(b"new"),
    );
    assert_eq!(log.borrow().received, b"new");
}

#[test]
fn ts_recent_follows_the_peers_timestamps_and_is_echoed() {
    // RFC 7323 §4.3: "If SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent then SEG.TSval
    // is copied to TS.Recent"; every segment echoes TS.Recent in TSecr.
    let app = Scripted {
        echo: true,
        ..Scripted::default()
    };
    let mut p = server_peer(app);
    let sa = p.handshake(1000);
    let r = p.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS + 500, 0)
            .data(b"ping"),
    );
    let echo = r.iter().find(|s| !s.payload.is_empty()).expect("echo");
    assert_eq!(echo.tsecr(), PEER_TS + 500, "{r:?}");
    // And PAWS measures against the new TS.Recent: a timestamp between the two is old now.
    p.send(
        seg(PSH_ACK)
            .seq(1005)
            .ack(sa.seq + 5u32)
            .ts(PEER_TS + 100, 0)
            .data(b"x"),
    );
    assert_eq!(p.engine.stats().dropped(DropReason::Paws), 1);
}

#[test]
fn client_receive_window_is_anchored_at_the_peers_isn_whatever_its_value() {
    // The client's advertised right edge must start at RCV.NXT, not at sequence number 0:
    // with a peer ISN just below 2^31 the window used to collapse to zero, and with one
    // above 2^31 it used to span up to 2^31 bytes.
    for irs in [
        0u32,
        1 << 20,
        (1u32 << 31) - 1000,
        1 << 31,
        0xf000_0000,
        u32::MAX - 10,
    ] {
        let app = Scripted::default();
        let log = app.log.clone();
        let mut p = Peer::client(client_config(), app, 50000);
        let (_, syn) = p.connect();
        let r = p.send(
            seg(SYN_ACK)
                .seq(irs)
                .ack(syn.seq + 1u32)
                .mss(1460)
                .ws(7)
                .sack_perm()
                .ts(5, syn.tsval()),
        );
        assert_eq!(r[0].window, ((256 * 1024) >> 7) as u16, "irs {irs}: {r:?}");
        let r = p.send(
            seg(PSH_ACK)
                .seq(irs.wrapping_add(1))
                .ack(syn.seq + 1u32)
                .ts(6, 0)
                .data(b"response"),
        );
        assert_eq!(log.borrow().received, b"response", "irs {irs}: {r:?}");
        assert_eq!(p.engine.stats().dropped(DropReason::NoRoom), 0, "irs {irs}");
        // Beyond the buffer is outside the window.
        p.send(
            seg(PSH_ACK)
                .seq(irs.wrapping_add(9 + 300_000))
                .ack(syn.seq + 1u32)
                .ts(7, 0)
                .data(b"far"),
        );
        assert_eq!(
            p.engine.stats().dropped(DropReason::OutOfWindow),
            1,
            "irs {irs}"
        );
    }
}

/// A 200 kB transfer each way between two engines over a 9000-byte-MTU link whose frames are
/// UMEM frames (the link drops an IP packet that a frame of `frame_len` bytes would not
/// hold, as the TX path refuses and the RX ring drops it), both announcing `mss`.
fn jumbo_transfer(mss: u16, frame_len: usize) -> (usize, [u64; 2]) {
    use xdptcp::sim::{LinkConfig, Pair, configs};
    let (mut ccfg, mut scfg) = configs(91);
    ccfg.mss = mss;
    scfg.mss = mss;
    let client = Scripted {
        greeting: vec![7u8; 200_000],
        ..Scripted::default()
    };
    let server = Scripted {
        echo: true,
        ..Scripted::default()
    };
    let clog = client.log.clone();
    let link = LinkConfig {
        mtu: frame_len - xdptcp::wire::ethernet::HEADER_LEN,
        ..LinkConfig::default()
    };
    let mut p = Pair::new(ccfg, client, scfg, server, link);
    p.connect(40100).unwrap();
    p.run_for(Duration::from_secs(10));
    let echoed = clog.borrow().received.len();
    (echoed, p.oversized)
}

#[test]
fn with_jumbo_frames_the_mss_clamped_to_the_umem_frame_keeps_every_segment_in_a_frame() {
    use xdptcp::xdp::{LinkMss, XskConfig};
    let frame_len = XskConfig::default().frame_len().unwrap();
    let clamped = LinkMss::new(9000, frame_len, 20).mss;
    assert_eq!(jumbo_transfer(clamped, frame_len), (200_000, [0, 0]));
    // The MTU's own MSS (9000 - 40): full segments do not fit a frame and the transfer stalls.
    let (echoed, oversized) = jumbo_transfer(8960, frame_len);
    assert!(
        echoed < 200_000 && oversized[0] > 0,
        "{echoed} {oversized:?}"
    );
}
