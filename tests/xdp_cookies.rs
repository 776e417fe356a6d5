//! The XDP program's SYN cookies against the engine's, through `BPF_PROG_RUN`: for each SYN,
//! the frame the program sends back (XDP_TX) must be, byte for byte, the cookie SYN-ACK an
//! engine in `always` mode sends for the same SYN at the same instant with the same secret, and
//! `check_cookie` must accept it with the options the SYN offered. Named fixtures first
//! (Katran style), then a property test over random SYNs. Needs root.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use xdptcp::app::discard::Discard;
use xdptcp::tcp::hash::timestamp_key;
use xdptcp::tcp::syncookie::{SynOptions, check_cookie};
use xdptcp::tcp::{Config, Engine, FourTuple, Listener, Secret, SynCookieMode};
use xdptcp::time::Instant;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::TcpFrame;
use xdptcp::wire::checksum;
use xdptcp::xdp::program::verdict::{XDP_DROP, XDP_PASS, XDP_TX};
use xdptcp::xdp::{Program, ProgramConfig, SynAckTemplate, XdpCounters};

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PORT: u16 = 8080;
const SECRET: Secret = Secret([0x5a; 32]);

/// An engine configuration as a test varies it, with our MAC, port and cookie secret.
fn engine_config(base: Config) -> Config {
    Config {
        local_mac: OUR_MAC,
        listeners: vec![Listener {
            addr: None,
            port: PORT,
            keepalive: None,
            fastopen: None,
            options: Default::default(),
        }],
        syncookies: SynCookieMode::Always,
        cookie_secret: Some(SECRET),
        ..base
    }
}

fn srv4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1))
}
fn cli4() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 201, 0, 2))
}
fn srv6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 1))
}
fn cli6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 2))
}

/// 1000 s and some µs after boot: inside slot 15 and rotation epoch 15 (64 s each).
fn t0() -> Instant {
    Instant::from_micros(1_000_123_456)
}

/// What the SYN-ACK's options depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SynOpts {
    mss: Option<u16>,
    ws: Option<u8>,
    sack: bool,
    ts: Option<u32>,
}

/// A SYN as a test builds it.
#[derive(Debug, Clone)]
struct Syn {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    vlan: Option<u16>,
    flags: u8,
    /// The raw options area (padded to a multiple of 4 by `frame`).
    options: Vec<u8>,
    payload: Vec<u8>,
    /// IPv4 header words beyond the 20 bytes (IP options).
    ip_options: usize,
}

/// Linux's SYN layout: MSS, SACK-permitted, TS, NOP, WS (leaving out what is absent).
fn linux_options(o: SynOpts) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(m) = o.mss {
        v.extend_from_slice(&[2, 4]);
        v.extend_from_slice(&m.to_be_bytes());
    }
    match (o.sack, o.ts) {
        (sack, Some(tsval)) => {
            v.extend_from_slice(if sack { &[4, 2] } else { &[1, 1] });
            v.extend_from_slice(&[8, 10]);
            v.extend_from_slice(&tsval.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
        }
        (true, None) => v.extend_from_slice(&[1, 1, 4, 2]),
        (false, None) => {}
    }
    if let Some(ws) = o.ws {
        v.extend_from_slice(&[1, 3, 3, ws]);
    }
    v
}

fn syn(src: IpAddr, dst: IpAddr, o: SynOpts) -> Syn {
    Syn {
        src,
        dst,
        sport: 40_000,
        dport: PORT,
        seq: 0x1234_5678,
        vlan: None,
        flags: 0x02,
        options: linux_options(o),
        payload: Vec::new(),
        ip_options: 0,
    }
}

/// The Ethernet frame of `s`, checksums right.
fn frame(s: &Syn) -> Vec<u8> {
    let mut opts = s.options.clone();
    while opts.len() % 4 != 0 {
        opts.push(0); // EOL padding
    }
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&s.sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&s.dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&s.seq.to_be_bytes());
    tcp[12] = ((20 + opts.len()) as u8 / 4) << 4;
    tcp[13] = s.flags;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(&opts);
    tcp.extend_from_slice(&s.payload);
    let pseudo = checksum::pseudo_header(s.src, s.dst, 6, tcp.len() as u32);
    let c = checksum::finish(pseudo + checksum::sum(&tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());

    let mut f = Vec::new();
    f.extend_from_slice(&OUR_MAC);
    f.extend_from_slice(&PEER_MAC);
    if let Some(tci) = s.vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    match (s.src, s.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let hlen = 20 + 4 * s.ip_options;
            let mut ip = vec![0u8; hlen];
            ip[0] = 0x40 | (hlen / 4) as u8;
            ip[2..4].copy_from_slice(&((hlen + tcp.len()) as u16).to_be_bytes());
            ip[6] = 0x40;
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&src.octets());
            ip[16..20].copy_from_slice(&dst.octets());
            for b in &mut ip[20..] {
                *b = 1; // NOP options
            }
            let c = checksum::finish(checksum::sum(&ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
            ip[6] = 6;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&src.octets());
            ip[24..40].copy_from_slice(&dst.octets());
            f.extend_from_slice(&ip);
        }
        _ => unreachable!("mixed families"),
    }
    f.extend_from_slice(&tcp);
    f
}

fn tuple(s: &Syn) -> FourTuple {
    FourTuple {
        local_addr: s.dst,
        remote_addr: s.src,
        local_port: s.dport,
        remote_port: s.sport,
    }
}

/// The engine's cookie SYN-ACK for `s` at `now` (an engine in `always` mode receiving the same
/// SYN), and what `check_cookie` must give back for it.
fn expected(s: &Syn, o: SynOpts, cfg: &Config, now: Instant) -> (Vec<u8>, SynOptions) {
    let cfg = engine_config(cfg.clone());
    let mut engine = Engine::new(cfg.clone(), Discard::default(), now);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    engine.receive(now, &frame(s), &mut tx);
    assert_eq!(tx.len(), 1, "the engine answers {s:?} with one SYN-ACK");
    let ws_ok = o.ws.is_some() && cfg.window_scale > 0;
    let ts = cfg.timestamps && o.ts.is_some();
    let table: [u16; 4] = if s.src.is_ipv4() {
        [536, 1300, 1440, 1460]
    } else {
        [1220, 1420, 1440, 8940]
    };
    let peer = o.mss.unwrap_or(536);
    let negotiated = SynOptions {
        mss: *table
            .iter()
            .rev()
            .find(|&&m| m <= peer)
            .unwrap_or(&table[0]),
        window_scale: o.ws.filter(|_| ts && ws_ok).map(|w| w.min(14)),
        sack_permitted: ts && cfg.sack && o.sack,
    };
    (tx.remove(0), negotiated)
}

/// The program for one queue in cookie mode, its clock fixed at `now`, the keys of `now`'s
/// epoch in place.
fn cookie_program(cfg: &Config, now: Instant) -> Program {
    let p = Program::load(&ProgramConfig {
        xsk_queues: 1,
        local_mac: OUR_MAC,
        ifindex: 0,
        tx_by_redirect: false,
        synack: SynAckTemplate::from_engine(cfg),
        fixed_now: Some(now),
        multi_buffer: false,
    })
    .expect("loading the XDP program");
    serve_both(p, now)
}

fn serve_both(mut p: Program, now: Instant) -> Program {
    p.serve(Some(srv4()), PORT).unwrap();
    p.serve(Some(srv6()), PORT).unwrap();
    p.queue_flag(0).unwrap().set_cookie_mode(true);
    write_key(&p, now, 0);
    p
}

/// Puts the key of the epoch `ahead` epochs after `now`'s into the program's table, as the
/// server does.
fn write_key(p: &Program, now: Instant, ahead: i64) {
    let keys = engine_config(Config::default()).cookie_keys(now);
    let epoch = keys.epoch().wrapping_add_signed(ahead);
    p.cookie_keys()
        .write(epoch, &keys.key_of(epoch), &timestamp_key(&SECRET.0));
}

/// Runs `s` through the program: the SYN-ACK must be the engine's and its cookie valid.
fn assert_answered_like_the_engine(p: &Program, cfg: &Config, s: &Syn, o: SynOpts, now: Instant) {
    let (verdict, out) = p.test_run_frame(&frame(s)).expect("BPF_PROG_RUN");
    assert_eq!(verdict, XDP_TX, "{s:?}");
    let (want, negotiated) = expected(s, o, cfg, now);
    assert_eq!(out, want, "SYN-ACK differs from the engine's for {s:?}");
    let f = TcpFrame::parse(&out).expect("our own parser (checksums included) takes it");
    let tsecr = f.tcp.options.timestamp.map(|(val, _)| val);
    let keys = engine_config(cfg.clone()).cookie_keys(now);
    let got =
        check_cookie(&keys, now, &tuple(s), SeqNumber(s.seq), f.tcp.seq, tsecr).map(|v| v.options);
    assert_eq!(got, Ok(negotiated), "{s:?}");
}

fn require_root() -> bool {
    common::require_root()
}

const FULL: SynOpts = SynOpts {
    mss: Some(1460),
    ws: Some(7),
    sack: true,
    ts: Some(0xdead_beef),
};

#[test]
fn syns_with_every_option_combination_get_the_engines_syn_ack() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    for (src, dst) in [(cli4(), srv4()), (cli6(), srv6())] {
        for mask in 0..16u8 {
            let o = SynOpts {
                mss: (mask & 1 != 0).then_some(1400),
                ws: (mask & 2 != 0).then_some(9),
                sack: mask & 4 != 0,
                ts: (mask & 8 != 0).then_some(77_777),
            };
            assert_answered_like_the_engine(&p, &cfg, &syn(src, dst, o), o, t0());
        }
    }
    let c = p.counters().unwrap();
    assert_eq!((c.cookie_synacks, c.redirected), (32, 0), "{c}");
}

#[test]
fn a_vlan_tag_is_kept_and_mss_values_map_to_the_table() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    for mss in [
        0, 100, 535, 536, 1299, 1300, 1420, 1440, 1452, 1460, 8940, 9000, 65535,
    ] {
        for (src, dst) in [(cli4(), srv4()), (cli6(), srv6())] {
            let o = SynOpts {
                mss: Some(mss),
                ..FULL
            };
            let mut s = syn(src, dst, o);
            s.vlan = Some(0x2005);
            assert_answered_like_the_engine(&p, &cfg, &s, o, t0());
        }
    }
}

#[test]
fn options_in_any_order_with_unknown_kinds_and_padding_are_read_as_the_engine_reads_them() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    let o = SynOpts {
        mss: Some(1440),
        ws: Some(14),
        sack: true,
        ts: Some(5),
    };
    let mut s = syn(cli4(), srv4(), o);
    // WS 20 (clamped to 14), unknown kind 30, NOPs, TS, MSS twice (the last wins), SACK-perm.
    s.options = vec![
        3, 3, 20, 30, 4, 0xaa, 0xbb, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 0, 2, 4, 0x05, 0xdc, 1, 2, 4,
        0x05, 0xa0, 4, 2,
    ];
    assert_answered_like_the_engine(&p, &cfg, &s, o, t0());
    // EOL ends the options: what follows it is not read.
    let o = SynOpts {
        mss: Some(1300),
        ..SynOpts::default()
    };
    s.options = vec![2, 4, 0x05, 0x14, 0, 3, 3, 7];
    assert_answered_like_the_engine(&p, &cfg, &s, o, t0());
}

#[test]
fn engine_settings_reach_the_syn_ack() {
    if !require_root() {
        return;
    }
    for cfg in [
        Config {
            timestamps: false,
            ..Config::default()
        },
        Config {
            sack: false,
            window_scale: 0,
            mss: 1200,
            ttl: 33,
            recv_buffer: 20_000,
            ..Config::default()
        },
        Config {
            window_scale: 14,
            ..Config::default()
        },
    ] {
        let p = cookie_program(&cfg, t0());
        for (src, dst) in [(cli4(), srv4()), (cli6(), srv6())] {
            assert_answered_like_the_engine(&p, &cfg, &syn(src, dst, FULL), FULL, t0());
        }
    }
}

/// Runs `frame` and checks the verdict and which counter moved.
fn expect(p: &Program, what: &str, frame: &[u8], verdict: u32, counter: fn(&XdpCounters) -> u64) {
    let before = p.counters().unwrap();
    let (got, _) = p.test_run_frame(frame).unwrap();
    let after = p.counters().unwrap();
    assert_eq!(got, verdict, "{what}");
    assert_eq!(counter(&after) - counter(&before), 1, "{what}: {after}");
    if verdict != XDP_TX {
        assert_eq!(
            after.cookie_synacks, before.cookie_synacks,
            "{what}: answered"
        );
    }
}

#[test]
fn bad_syns_are_dropped_and_counted_and_unusual_ones_go_to_the_engine() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    let good = syn(cli4(), srv4(), FULL);
    let mut f = frame(&good);
    let last = f.len() - 1;
    f[last] ^= 0x40;
    expect(&p, "bad TCP checksum", &f, XDP_DROP, |c| c.syn_bad_checksum);
    let mut f = frame(&good);
    f[14 + 10] ^= 1;
    expect(&p, "bad IPv4 header checksum", &f, XDP_DROP, |c| {
        c.syn_bad_checksum
    });
    let mut f = frame(&syn(cli6(), srv6(), FULL));
    let last = f.len() - 1;
    f[last] ^= 0x40;
    expect(&p, "bad TCP checksum (IPv6)", &f, XDP_DROP, |c| {
        c.syn_bad_checksum
    });

    let mut s = good.clone();
    s.options = vec![2, 5, 5, 0xb4, 0];
    expect(&p, "MSS option of length 5", &frame(&s), XDP_DROP, |c| {
        c.syn_malformed
    });
    s.options = vec![1, 1, 8, 10, 0, 0];
    expect(
        &p,
        "TS option running past the header",
        &frame(&s),
        XDP_DROP,
        |c| c.syn_malformed,
    );
    s.options = vec![1, 1, 1, 30];
    expect(
        &p,
        "option kind without a length",
        &frame(&s),
        XDP_DROP,
        |c| c.syn_malformed,
    );
    for (what, flags) in [("SYN+FIN", 0x03), ("SYN+RST", 0x06)] {
        let mut s = good.clone();
        s.flags = flags;
        expect(&p, what, &frame(&s), XDP_DROP, |c| c.syn_malformed);
    }
    for src in [
        IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V4(Ipv4Addr::new(0, 1, 2, 3)),
    ] {
        let s = Syn {
            src,
            ..good.clone()
        };
        // Martians, before any cookie is considered.
        expect(&p, &format!("source {src}"), &frame(&s), XDP_DROP, |c| {
            c.martian
        });
    }
    let s = Syn {
        src: IpAddr::V6("ff02::1".parse().unwrap()),
        ..syn(cli6(), srv6(), FULL)
    };
    expect(&p, "multicast IPv6 source", &frame(&s), XDP_DROP, |c| {
        c.martian
    });

    // Not ours to answer here: on to the engine (no socket in this test: passed, no_socket).
    let mut s = good.clone();
    s.payload = b"hello".to_vec();
    expect(&p, "SYN with data", &frame(&s), XDP_PASS, |c| {
        c.syn_to_worker
    });
    let mut s = good.clone();
    s.ip_options = 1;
    expect(&p, "SYN with IP options", &frame(&s), XDP_PASS, |c| {
        c.syn_to_worker
    });
    // TCP Fast Open (RFC 7413): a cookie SYN-ACK would lose the cookie and the data.
    for (what, fo) in [
        ("a Fast Open cookie request", &[34, 2, 1, 1][..]),
        (
            "a Fast Open cookie",
            &[34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1][..],
        ),
        (
            "an experimental Fast Open request",
            &[254, 4, 0xf9, 0x89][..],
        ),
    ] {
        let mut s = good.clone();
        s.options.extend_from_slice(fo);
        expect(&p, what, &frame(&s), XDP_PASS, |c| c.syn_to_worker);
    }
}

#[test]
fn without_cookie_mode_or_a_current_key_the_syn_goes_to_the_engine() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    let f = frame(&syn(cli4(), srv4(), FULL));
    p.queue_flag(0).unwrap().set_cookie_mode(false);
    expect(&p, "cookie mode off", &f, XDP_PASS, |c| c.no_socket);
    p.queue_flag(0).unwrap().set_cookie_mode(true);
    // The entries hold the previous epoch's and a later epoch's keys: neither is used.
    write_key(&p, t0(), -1);
    write_key(&p, t0(), 2);
    expect(&p, "no key for this epoch", &f, XDP_PASS, |c| {
        c.syn_to_worker
    });
    write_key(&p, t0(), 0);
    expect(&p, "key back", &f, XDP_TX, |c| c.cookie_synacks);
    assert_eq!(p.queue_flag(0).unwrap().cookies(), 1);
}

#[test]
fn a_queue_whose_syn_acks_the_driver_drops_hands_its_syns_to_the_engine_until_told_otherwise() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    let f = frame(&syn(cli4(), srv4(), FULL));
    let flag = p.queue_flag(0).unwrap();
    flag.set_syns_to_worker(true);
    expect(&p, "XDP_TX failing", &f, XDP_PASS, |c| c.syn_tx_fallback);
    assert_eq!(flag.cookies(), 0, "no SYN-ACK sent from XDP");
    flag.set_syns_to_worker(false);
    expect(&p, "XDP_TX back", &f, XDP_TX, |c| c.cookie_synacks);
    // Outside cookie mode the flag changes nothing: the engine gets the SYN anyway.
    flag.set_syns_to_worker(true);
    flag.set_cookie_mode(false);
    expect(&p, "cookie mode off", &f, XDP_PASS, |c| c.no_socket);
    assert_eq!(p.counters().unwrap().syn_tx_fallback, 1);
}

#[test]
fn only_syns_to_our_mac_are_answered_and_other_segments_go_to_the_engine() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    let mut f = frame(&syn(cli4(), srv4(), FULL));
    f[5] = 9;
    expect(&p, "SYN to another MAC", &f, XDP_PASS, |c| c.other_mac);
    let mut ack = syn(cli4(), srv4(), SynOpts::default());
    ack.flags = 0x10;
    expect(&p, "ACK", &frame(&ack), XDP_PASS, |c| c.no_socket);
    ack.flags = 0x12;
    expect(&p, "SYN-ACK", &frame(&ack), XDP_PASS, |c| c.no_socket);
}

fn arb_opts() -> impl Strategy<Value = SynOpts> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(0u8..=20),
        any::<bool>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(mss, ws, sack, ts)| SynOpts { mss, ws, sack, ts })
}

/// Clocks the property test runs at: an ordinary time, just before a slot boundary, just
/// before the millisecond clock wraps 32 bits, and far in the future.
const CLOCKS: [u64; 4] = [
    1_000_123_456,
    64_000_000 * 1_000 - 1,
    (1u64 << 32) * 1000 - 500,
    (1u64 << 45) + 12_345,
];

thread_local! {
    /// One loaded program per clock (loading and verifying takes a while).
    static PROGRAMS: Vec<Program> = CLOCKS
        .iter()
        .map(|&us| cookie_program(&Config::default(), Instant::from_micros(us)))
        .collect();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_syns_get_the_engines_cookie_and_tsval(
        v6: bool,
        vlan in proptest::option::of(any::<u16>()),
        host: u32,
        sport in 1u16..,
        seq: u32,
        o in arb_opts(),
        clock in 0..CLOCKS.len(),
    ) {
        if !require_root() {
            return Ok(());
        }
        let now = Instant::from_micros(CLOCKS[clock]);
        let cfg = Config::default();
        let src = if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0x201, 0, 0, (host >> 16) as u16, host as u16, 0, 2))
        } else {
            // 10.0.0.0/8: never a martian.
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (host & 0x00ff_ffff)))
        };
        let mut s = syn(src, if v6 { srv6() } else { srv4() }, o);
        s.sport = sport;
        s.seq = seq;
        s.vlan = vlan;
        PROGRAMS.with(|p| assert_answered_like_the_engine(&p[clock], &cfg, &s, o, now));
    }
}

#[test]
fn a_bare_rst_answering_a_cookie_syn_ack_is_dropped_as_backscatter_and_others_go_on() {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = cookie_program(&cfg, t0());
    let s = syn(cli4(), srv4(), FULL);
    assert_eq!(p.test_run(&frame(&s)).unwrap(), XDP_TX);
    // The flooder's kernel: <SEQ=SEG.ACK><CTL=RST> for the SYN-ACK it did not expect.
    let rst = |flags: u8, seq: u32| {
        frame(&Syn {
            flags,
            seq,
            options: Vec::new(),
            ..s.clone()
        })
    };
    let backscatter = rst(0x04, s.seq + 1);
    expect(&p, "backscatter RST", &backscatter, XDP_DROP, |c| {
        c.rst_backscatter
    });
    // A host with a socket for the tuple aborts with RST|ACK; another SEQ is not ours to judge.
    expect(&p, "RST|ACK", &rst(0x14, s.seq + 1), XDP_PASS, |c| {
        c.no_socket
    });
    expect(
        &p,
        "RST at another SEQ",
        &rst(0x04, s.seq + 7),
        XDP_PASS,
        |c| c.no_socket,
    );
    // Outside cookie mode every RST goes to the engine.
    p.queue_flag(0).unwrap().set_cookie_mode(false);
    expect(&p, "RST, cookie mode off", &backscatter, XDP_PASS, |c| {
        c.no_socket
    });
}

#[test]
fn a_frags_aware_program_answers_single_buffer_syns_alike_and_hands_a_syn_with_fragments_to_the_engine()
 {
    if !require_root() {
        return;
    }
    let cfg = Config::default();
    let p = Program::load(&ProgramConfig {
        xsk_queues: 1,
        local_mac: OUR_MAC,
        ifindex: 0,
        tx_by_redirect: false,
        synack: SynAckTemplate::from_engine(&cfg),
        fixed_now: Some(t0()),
        multi_buffer: true,
    })
    .expect("loading the frags-aware XDP program");
    assert!(p.multi_buffer());
    let p = serve_both(p, t0());
    for (src, dst) in [(cli4(), srv4()), (cli6(), srv6())] {
        assert_answered_like_the_engine(&p, &cfg, &syn(src, dst, FULL), FULL, t0());
        // The same SYN padded past one page: BPF_PROG_RUN puts what the first buffer cannot
        // hold into fragments. The cookie path rewrites and trims the first buffer only, so
        // this one goes to the engine (no socket in the test: XDP_PASS, `no_socket`).
        let mut padded = frame(&syn(src, dst, FULL));
        padded.resize(6000, 0);
        expect(&p, "SYN with fragments", &padded, XDP_PASS, |c| {
            c.syn_to_worker
        });
    }
}
