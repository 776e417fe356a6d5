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
            .ack(xdptcp::tcp::SeqNumber(1))
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

#[test]
fn broadcast_and_multicast_addresses_are_dropped() {
    let mut p = peer();
    let s = seg(SYN).seq(1000).mss(1460);
    let mut s = s;
    s.src_port = PEER_PORT;
    s.dst_port = PORT;
    for (src, dst) in [
        (Ipv4Addr::BROADCAST, ENGINE_ADDR),
        (Ipv4Addr::new(224, 0, 0, 1), ENGINE_ADDR),
        (Ipv4Addr::UNSPECIFIED, ENGINE_ADDR),
        (PEER_ADDR, Ipv4Addr::new(239, 1, 2, 3)),
    ] {
        let f = frame((src, PEER_MAC), (dst, ENGINE_MAC), &s);
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
