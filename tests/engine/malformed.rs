//! Bad input never panics, never creates state, and is dropped under its reason.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use xdptcp::stats::DropReason;
use xdptcp::tcp::SynCookieMode;
use xdptcp::wire::tcp::Flags;
use xdptcp::wire::{ipv4, tcp};

use crate::util::*;

const ETH: usize = 14;
const TCP: usize = ETH + 20;

fn peer() -> Peer<Scripted> {
    server_peer(Scripted::default())
}

/// A valid SYN with Linux's options.
fn valid_syn(p: &Peer<Scripted>) -> Vec<u8> {
    p.frame(
        seg(SYN)
            .seq(1000)
            .mss(1460)
            .sack_perm()
            .ts(PEER_TS, 0)
            .ws(7),
    )
}

/// Recomputes the IPv4 header checksum and the TCP checksum after an edit.
fn refix(f: &mut [u8]) {
    let ihl = usize::from(f[ETH] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]));
    let mut ip = ipv4::Packet::new_unchecked(&mut f[ETH..]);
    ip.fill_checksum();
    let (src, dst) = (
        IpAddr::V4(Ipv4Addr::new(
            f[ETH + 12],
            f[ETH + 13],
            f[ETH + 14],
            f[ETH + 15],
        )),
        IpAddr::V4(Ipv4Addr::new(
            f[ETH + 16],
            f[ETH + 17],
            f[ETH + 18],
            f[ETH + 19],
        )),
    );
    let end = (ETH + total).min(f.len());
    if ETH + ihl + 20 <= end {
        tcp::Packet::new_unchecked(&mut f[ETH + ihl..end]).fill_checksum(src, dst);
    }
}

/// Feeds `frame` and checks it is dropped for `reason`, answered by nothing, and leaves no
/// state behind.
fn assert_dropped(p: &mut Peer<Scripted>, frame: &[u8], reason: DropReason) {
    let before = p.engine.stats().dropped(reason);
    let r = p.send_frame(frame);
    recv_nothing!(r, "{reason:?}");
    assert_eq!(
        p.engine.stats().dropped(reason),
        before + 1,
        "{reason:?}: {}",
        p.engine.stats()
    );
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(p.engine.time_wait_len(), 0);
}

#[test]
fn a_frame_truncated_at_every_length_is_dropped() {
    let mut p = peer();
    let syn = valid_syn(&p);
    for len in 0..syn.len() {
        let drops = p.engine.stats().total_drops();
        let r = p.send_frame(&syn[..len]);
        recv_nothing!(r, "len {len}");
        assert_eq!(p.engine.stats().total_drops(), drops + 1, "len {len}");
        assert_eq!(p.engine.connections(), 0, "len {len}");
    }
    assert_eq!(
        p.engine.stats().total_drops(),
        syn.len() as u64,
        "{}",
        p.engine.stats()
    );
    // And the whole frame still works.
    assert_eq!(p.send_frame(&syn).len(), 1);
}

#[test]
fn bad_ipv4_and_tcp_checksums_are_dropped() {
    let mut p = peer();
    let syn = valid_syn(&p);
    let mut f = syn.clone();
    f[ETH + 10] ^= 0x01;
    assert_dropped(&mut p, &f, DropReason::BadChecksum);
    let mut f = syn.clone();
    f[TCP + 16] ^= 0x80;
    assert_dropped(&mut p, &f, DropReason::BadChecksum);
    // A payload bit flip is caught by the TCP checksum too.
    let mut f = p.frame(
        seg(PSH_ACK)
            .seq(1)
            .ack(xdptcp::wire::SeqNumber(1))
            .data(b"abc"),
    );
    let last = f.len() - 1;
    f[last] ^= 0x04;
    assert_dropped(&mut p, &f, DropReason::BadChecksum);
}

#[test]
fn an_impossible_tcp_data_offset_is_dropped() {
    let mut p = peer();
    for offset in [0u8, 4, 15] {
        let mut f = valid_syn(&p);
        f[TCP + 12] = (offset << 4) | (f[TCP + 12] & 0x0f);
        refix(&mut f);
        assert_dropped(&mut p, &f, DropReason::BadHeaderLength);
    }
}

#[test]
fn an_illegal_option_length_is_dropped() {
    let mut p = peer();
    // The SYN's options start with MSS: kind 2, length 4.
    for bad_len in [0u8, 1, 3, 5, 60] {
        let mut f = valid_syn(&p);
        assert_eq!(f[TCP + 20], 2, "MSS first");
        f[TCP + 21] = bad_len;
        refix(&mut f);
        assert_dropped(&mut p, &f, DropReason::BadOptionLength);
    }
}

#[test]
fn illegal_flag_combinations_are_dropped() {
    let mut p = peer();
    let cases = [
        (Flags(Flags::SYN.0 | Flags::FIN.0), DropReason::SynFin),
        (Flags(Flags::SYN.0 | Flags::RST.0), DropReason::SynRst),
        (
            Flags(Flags::SYN.0 | Flags::FIN.0 | Flags::ACK.0),
            DropReason::SynFin,
        ),
        (Flags(0), DropReason::BadFlags),
        (Flags::FIN, DropReason::BadFlags),
        (
            Flags(Flags::FIN.0 | Flags::PSH.0 | Flags::URG.0),
            DropReason::BadFlags,
        ),
        (Flags::PSH, DropReason::BadFlags),
    ];
    for (flags, reason) in cases {
        let f = p.frame(seg(flags).seq(1000).mss(1460));
        assert_dropped(&mut p, &f, reason);
    }
}

#[test]
fn ipv4_fragments_are_dropped() {
    let mut p = peer();
    // More-fragments set; then a non-zero fragment offset.
    for (hi, lo) in [(0x20u8, 0u8), (0x00, 0x10), (0x40, 0x01)] {
        let mut f = valid_syn(&p);
        f[ETH + 6] = hi;
        f[ETH + 7] = lo;
        refix(&mut f);
        assert_dropped(&mut p, &f, DropReason::Fragment);
    }
}

#[test]
fn ipv4_options_are_dropped() {
    let mut p = peer();
    let syn = valid_syn(&p);
    let mut f = Vec::new();
    f.extend_from_slice(&syn[..ETH + 20]);
    f.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
    f.extend_from_slice(&syn[ETH + 20..]);
    f[ETH] = 0x46;
    let total = u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]) + 4;
    f[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
    refix(&mut f);
    assert_dropped(&mut p, &f, DropReason::IpOptions);
}

/// A SYN from `src` (at `mac`) to `dst` on the served port.
fn syn_from(src: IpAddr, mac: [u8; 6], dst: IpAddr) -> Vec<u8> {
    let mut s = seg(SYN).seq(1000).mss(1460);
    s.src_port = PEER_PORT;
    s.dst_port = PORT;
    frame_between((src, mac), (dst, ENGINE_MAC), &s)
}

#[test]
fn syns_from_martian_sources_are_dropped_and_never_answered() {
    let mut p = peer();
    let v4 = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
    let engine = IpAddr::V4(ENGINE_ADDR);
    for src in [
        v4([255, 255, 255, 255]),
        v4([224, 0, 0, 1]),
        v4([239, 255, 255, 250]),
        v4([0, 0, 0, 0]),
        v4([0, 1, 2, 3]),
        v4([127, 0, 0, 1]),
        v4([127, 255, 0, 9]),
        engine,
    ] {
        assert_dropped(
            &mut p,
            &syn_from(src, PEER_MAC, engine),
            DropReason::Martian,
        );
    }
    let engine6: IpAddr = "fd00::1".parse().unwrap();
    for src in [
        "::",
        "::1",
        "ff02::1",
        "ff0e::1:3",
        "::ffff:10.0.0.2",
        "::ffff:127.0.0.1",
        "fd00::1",
    ] {
        let src: IpAddr = src.parse().unwrap();
        assert_dropped(
            &mut p,
            &syn_from(src, PEER_MAC, engine6),
            DropReason::Martian,
        );
    }
    assert_eq!(p.engine.stats().dropped(DropReason::Martian), 15);
}

#[test]
fn a_syn_from_a_group_source_mac_is_dropped_as_martian() {
    let mut p = peer();
    let (peer, engine) = (IpAddr::V4(PEER_ADDR), IpAddr::V4(ENGINE_ADDR));
    for mac in [
        [0xff; 6],
        [0x01, 0x00, 0x5e, 0, 0, 1],
        [0x33, 0x33, 0, 0, 0, 1],
        [0x03, 0, 0, 0, 0, 0],
    ] {
        assert_dropped(&mut p, &syn_from(peer, mac, engine), DropReason::Martian);
    }
    // The same SYN from the peer's own (individual) MAC is answered.
    let answer = p.send_frame(&syn_from(peer, PEER_MAC, engine));
    recv!(answer, [|s| s.is(SYN_ACK)]);
}

#[test]
fn a_source_a_listener_serves_is_martian_also_to_another_served_address() {
    let mut cfg = server_config();
    let second = Ipv4Addr::new(10, 0, 0, 3);
    cfg.listeners.push(xdptcp::tcp::Listener {
        addr: Some(IpAddr::V4(second)),
        port: PORT,
        keepalive: None,
        fastopen: None,
        options: Default::default(),
    });
    let mut p = Peer::server(cfg, Scripted::default());
    let f = syn_from(IpAddr::V4(second), PEER_MAC, IpAddr::V4(ENGINE_ADDR));
    assert_dropped(&mut p, &f, DropReason::Martian);
}

#[test]
fn with_a_listener_on_any_address_only_the_destination_itself_is_a_martian_source() {
    let mut cfg = server_config();
    cfg.listeners[0].addr = None;
    let mut p = Peer::server(cfg, Scripted::default());
    let engine = IpAddr::V4(ENGINE_ADDR);
    assert_dropped(
        &mut p,
        &syn_from(engine, PEER_MAC, engine),
        DropReason::Martian,
    );
    // Another address of this host is unknown to the engine (the XDP program knows it).
    let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
    recv!(
        p.send_frame(&syn_from(other, PEER_MAC, engine)),
        [|s| s.is(SYN_ACK)]
    );
}

#[test]
fn broadcast_multicast_unspecified_and_loopback_destinations_are_dropped() {
    let mut cfg = server_config();
    cfg.listeners[0].addr = None; // so that only the address check can refuse them
    let mut p = Peer::server(cfg, Scripted::default());
    let peer = IpAddr::V4(PEER_ADDR);
    for dst in ["255.255.255.255", "239.1.2.3", "0.0.0.0", "127.0.0.1"] {
        let f = syn_from(peer, PEER_MAC, dst.parse().unwrap());
        assert_dropped(&mut p, &f, DropReason::BadAddress);
    }
    let peer6: IpAddr = "fd00::2".parse().unwrap();
    for dst in ["ff02::1", "::", "::1"] {
        let f = syn_from(peer6, PEER_MAC, dst.parse().unwrap());
        assert_dropped(&mut p, &f, DropReason::BadAddress);
    }
}

#[test]
fn non_tcp_arp_and_bad_ip_headers_are_dropped() {
    let mut p = peer();
    let syn = valid_syn(&p);
    // UDP.
    let mut f = syn.clone();
    f[ETH + 9] = 17;
    refix(&mut f);
    assert_dropped(&mut p, &f, DropReason::NotTcp);
    // ARP.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&PEER_ADDR.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ENGINE_ADDR.octets());
    assert_dropped(&mut p, &arp, DropReason::UnsupportedEtherType);
    // IP version 6 in an IPv4 EtherType.
    let mut f = syn.clone();
    f[ETH] = 0x65;
    refix(&mut f);
    assert_dropped(&mut p, &f, DropReason::BadVersion);
    // IHL below 5.
    let mut f = syn.clone();
    f[ETH] = 0x44;
    assert_dropped(&mut p, &f, DropReason::BadHeaderLength);
    // Total length beyond the frame.
    let mut f = syn.clone();
    let total = u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]) + 100;
    f[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
    let mut ip = ipv4::Packet::new_unchecked(&mut f[ETH..]);
    ip.fill_checksum();
    let before = p.engine.stats().total_drops();
    recv_nothing!(p.send_frame(&f));
    assert_eq!(p.engine.stats().total_drops(), before + 1);
    assert_eq!(p.engine.connections(), 0);
}

#[test]
fn an_8021ad_tagged_syn_is_dropped_under_its_own_reason_and_an_8021q_one_is_answered() {
    let mut p = peer();
    let syn = valid_syn(&p);
    let tagged = |tpid: u16| {
        let mut f = syn[..12].to_vec();
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0x00, 0x05]);
        f.extend_from_slice(&syn[12..]);
        f
    };
    assert_dropped(&mut p, &tagged(0x88a8), DropReason::QinQ);
    let answer = p.send_frame(&tagged(0x8100));
    recv!(answer, [|s| s.is(SYN_ACK)]);
}

#[test]
fn ethernet_padding_after_the_ip_packet_is_ignored() {
    let mut p = peer();
    let mut f = p.frame(seg(SYN).seq(1000));
    f.extend_from_slice(&[0; 6]);
    assert_eq!(p.send_frame(&f).len(), 1, "a padded SYN is a SYN");
}

fn cookie_peer() -> Peer<Scripted> {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Always;
    Peer::server(cfg, Scripted::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_and_never_create_state(
        bytes in proptest::collection::vec(any::<u8>(), 0..200)
    ) {
        let mut p = peer();
        let r = p.send_frame(&bytes);
        prop_assert!(r.len() <= 1);
        prop_assert_eq!(p.engine.connections(), 0);
        prop_assert_eq!(p.engine.stats().rx_frames, 1);
    }

    #[test]
    fn mutated_syns_never_panic_and_never_grow_the_connection_table(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<Option<usize>>(),
    ) {
        // Cookies always: even a mutation that is still a valid SYN creates no state.
        let mut p = cookie_peer();
        let mut f = valid_syn(&p);
        for (at, byte) in edits {
            let i = at % f.len();
            f[i] = byte;
        }
        if let Some(cut) = cut {
            f.truncate(cut % (f.len() + 1));
        }
        let _ = p.send_frame(&f);
        prop_assert_eq!(p.engine.connections(), 0);
        let _ = p.poll();
        prop_assert_eq!(p.engine.connections(), 0);
    }

    #[test]
    fn mutated_segments_on_an_established_connection_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        fix in any::<bool>(),
    ) {
        let mut p = peer();
        let sa = p.handshake(1000);
        let mut f = p.frame(
            seg(PSH_ACK).seq(1001).ack(sa.seq + 1u32).ts(PEER_TS + 1, 0).data(b"hello"),
        );
        for (at, byte) in edits {
            let i = ETH + at % (f.len() - ETH);
            f[i] = byte;
        }
        if fix && f.len() >= TCP + 20 && f[ETH] == 0x45 {
            refix(&mut f);
        }
        let _ = p.send_frame(&f);
        // A repaired mutation may be a genuine SYN from another 4-tuple: one frame opens at
        // most one connection, and never disturbs the table otherwise.
        prop_assert!(p.engine.connections() <= 2);
        let _ = p.advance(std::time::Duration::from_secs(1));
    }
}
