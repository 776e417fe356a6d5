//! BPF fixtures, Katran style: a description, an input frame and the verdict the XDP program
//! must return, run through `BPF_PROG_RUN`. Needs root (loading BPF).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xdptcp::tcp::Config;
use xdptcp::xdp::program::verdict::{XDP_DROP, XDP_PASS, XDP_REDIRECT};
use xdptcp::xdp::{Program, ProgramConfig, SynAckTemplate, XdpCounters, XskConfig, XskSocket};

const SRV4: [u8; 4] = [10, 201, 0, 1];
const OTHER4: [u8; 4] = [10, 201, 0, 9];
const SRV6: [u8; 16] = [0xfd, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const PORT: u16 = 8080;
/// The device's MAC in every fixture (`eth` sends to it).
const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The program as `serve` loads it for one queue of a device with `OUR_MAC`.
fn program(xsk_queues: u32) -> Program {
    Program::load(&ProgramConfig {
        xsk_queues,
        local_mac: OUR_MAC,
        ifindex: 0,
        tx_by_redirect: false,
        synack: SynAckTemplate::from_engine(&Config::default()),
        fixed_now: None,
        multi_buffer: false,
    })
    .expect("loading the XDP program")
}

fn eth(ethertype: u16) -> Vec<u8> {
    eth_from([2, 0, 0, 0, 0, 2], ethertype)
}

fn eth_from(src_mac: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = OUR_MAC.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn tcp(dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02; // SYN
    t
}

fn ipv4(proto: u8, dst: [u8; 4], ihl: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_from([10, 201, 0, 2], proto, dst, ihl, payload)
}

fn ipv4_from(src: [u8; 4], proto: u8, dst: [u8; 4], ihl: u8, payload: &[u8]) -> Vec<u8> {
    let hlen = ihl as usize * 4;
    let mut h = vec![0u8; hlen.max(20)];
    h[0] = 0x40 | ihl;
    h[2..4].copy_from_slice(&((hlen + payload.len()) as u16).to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    h.truncate(hlen); // IHL below 5: the header claims to be shorter than it is
    h.extend_from_slice(payload);
    h
}

fn ipv6(next: u8, dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut src = [0u8; 16];
    src[0] = 0xfd;
    src[15] = 2;
    ipv6_from(src, next, dst, payload)
}

fn ipv6_from(src: [u8; 16], next: u8, dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What a fixture expects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Ours: redirected (or passed as `no_socket` when the queue has no socket).
    Ours,
    /// Not ours: passed, counted as `passed`.
    Passed,
    /// Malformed: passed, counted as `malformed`.
    Malformed,
    /// From a source that is never a peer: dropped, counted as `martian`.
    Martian,
}

/// SYNs to served endpoints from sources that are never a TCP peer.
fn martians() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let syn = tcp(PORT);
    let v4 = |src: [u8; 4]| cat(&[&eth(0x0800), &ipv4_from(src, 6, SRV4, 5, &syn)]);
    let v6 = |src: Ipv6Addr| cat(&[&eth(0x86dd), &ipv6_from(src.octets(), 6, SRV6, &syn)]);
    let from_mac = |mac: [u8; 6]| cat(&[&eth_from(mac, 0x0800), &ipv4(6, SRV4, 5, &syn)]);
    vec![
        (
            "a broadcast source MAC",
            from_mac([0xff; 6]),
            Expect::Martian,
        ),
        (
            "a multicast source MAC",
            from_mac([1, 0, 0x5e, 0, 0, 1]),
            Expect::Martian,
        ),
        ("IPv4 source 0.0.0.0", v4([0, 0, 0, 0]), Expect::Martian),
        ("IPv4 source 0.1.2.3", v4([0, 1, 2, 3]), Expect::Martian),
        ("IPv4 loopback source", v4([127, 0, 0, 1]), Expect::Martian),
        ("IPv4 multicast source", v4([224, 0, 0, 1]), Expect::Martian),
        (
            "IPv4 multicast source 239/8",
            v4([239, 255, 255, 250]),
            Expect::Martian,
        ),
        (
            "IPv4 limited broadcast source",
            v4([255; 4]),
            Expect::Martian,
        ),
        (
            "our own IPv4 address as the source",
            v4(SRV4),
            Expect::Martian,
        ),
        (
            "IPv6 unspecified source",
            v6(Ipv6Addr::UNSPECIFIED),
            Expect::Martian,
        ),
        (
            "IPv6 loopback source",
            v6(Ipv6Addr::LOCALHOST),
            Expect::Martian,
        ),
        (
            "IPv6 multicast source",
            v6("ff02::1".parse().unwrap()),
            Expect::Martian,
        ),
        (
            "IPv4-mapped IPv6 source",
            v6("::ffff:10.201.0.2".parse().unwrap()),
            Expect::Martian,
        ),
        (
            "our own IPv6 address as the source",
            v6(Ipv6Addr::from(SRV6)),
            Expect::Martian,
        ),
        // Near misses: peers after all.
        ("IPv4 source 1.0.0.1", v4([1, 0, 0, 1]), Expect::Ours),
        (
            "IPv4 source 223.255.255.254",
            v4([223, 255, 255, 254]),
            Expect::Ours,
        ),
        (
            "IPv4-compatible IPv6 source ::10.201.0.2",
            v6("::10.201.0.2".parse().unwrap()),
            Expect::Ours,
        ),
        ("IPv6 source ::2", v6("::2".parse().unwrap()), Expect::Ours),
        (
            "a martian source to a port we do not serve is the kernel's",
            cat(&[
                &eth(0x0800),
                &ipv4_from([127, 0, 0, 1], 6, SRV4, 5, &tcp(22)),
            ]),
            Expect::Passed,
        ),
    ]
}

fn fixtures() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let syn = tcp(PORT);
    let mut vlan_v4 = eth(0x8100);
    vlan_v4.extend_from_slice(&[0x00, 0x05, 0x08, 0x00]); // VLAN 5, then IPv4
    vlan_v4.extend_from_slice(&ipv4(6, SRV4, 5, &syn));
    let mut qinq_v4 = eth(0x88a8);
    qinq_v4.extend_from_slice(&[0x00, 0x05, 0x08, 0x00]); // S-VLAN 5, then IPv4
    qinq_v4.extend_from_slice(&ipv4(6, SRV4, 5, &syn));
    let mut qinq_in_vlan = eth(0x8100);
    qinq_in_vlan.extend_from_slice(&[0x00, 0x05, 0x88, 0xa8, 0x00, 0x06, 0x08, 0x00]);
    qinq_in_vlan.extend_from_slice(&ipv4(6, SRV4, 5, &syn));
    let mut fragment = ipv4(6, SRV4, 5, &syn);
    fragment[6..8].copy_from_slice(&0x0010u16.to_be_bytes()); // offset 128 bytes
    let mut bad_doff = tcp(PORT);
    bad_doff[12] = 4 << 4;
    let mut arp = eth(0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    let mut hop_by_hop = ipv6(0, SRV6, &[6, 0, 0, 0, 0, 0, 0, 0]);
    hop_by_hop.extend_from_slice(&syn);
    vec![
        (
            "served TCP over IPv4",
            cat(&[&eth(0x0800), &ipv4(6, SRV4, 5, &syn)]),
            Expect::Ours,
        ),
        (
            "served TCP over IPv4 with IP options (IHL 6)",
            cat(&[&eth(0x0800), &ipv4(6, SRV4, 6, &syn)]),
            Expect::Ours,
        ),
        (
            "served TCP over IPv6",
            cat(&[&eth(0x86dd), &ipv6(6, SRV6, &syn)]),
            Expect::Ours,
        ),
        (
            "served TCP over IPv4 in an 802.1Q tag",
            vlan_v4,
            Expect::Ours,
        ),
        (
            "served TCP over IPv4 behind an 802.1ad service tag: the kernel's",
            qinq_v4,
            Expect::Passed,
        ),
        (
            "an 802.1ad tag inside an 802.1Q tag: the kernel's",
            qinq_in_vlan,
            Expect::Passed,
        ),
        (
            "TCP to a port we do not serve",
            cat(&[&eth(0x0800), &ipv4(6, SRV4, 5, &tcp(22))]),
            Expect::Passed,
        ),
        (
            "TCP to the served port on an address we do not serve",
            cat(&[&eth(0x0800), &ipv4(6, OTHER4, 5, &syn)]),
            Expect::Passed,
        ),
        ("ARP", arp, Expect::Passed),
        (
            "ICMP echo to the served address",
            cat(&[&eth(0x0800), &ipv4(1, SRV4, 5, &[8, 0, 0, 0, 0, 1, 0, 1])]),
            Expect::Passed,
        ),
        (
            "UDP to the served port",
            cat(&[&eth(0x0800), &ipv4(17, SRV4, 5, &syn[..8])]),
            Expect::Passed,
        ),
        (
            "IPv6 with a hop-by-hop header before TCP",
            cat(&[&eth(0x86dd), &hop_by_hop]),
            Expect::Passed,
        ),
        (
            "non-first IPv4 fragment",
            cat(&[&eth(0x0800), &fragment]),
            Expect::Passed,
        ),
        (
            "IPv4 header cut short",
            cat(&[&eth(0x0800), &ipv4(6, SRV4, 5, &syn)[..12]]),
            Expect::Malformed,
        ),
        (
            "TCP header cut short",
            cat(&[&eth(0x0800), &ipv4(6, SRV4, 5, &syn[..10])]),
            Expect::Malformed,
        ),
        (
            "TCP data offset below 5",
            cat(&[&eth(0x0800), &ipv4(6, SRV4, 5, &bad_doff)]),
            Expect::Malformed,
        ),
        (
            "IPv4 IHL below 5",
            cat(&[&eth(0x0800), &ipv4(6, SRV4, 4, &[0u8; 4]), &syn]),
            Expect::Malformed,
        ),
        (
            "802.1Q tag cut short",
            cat(&[&eth(0x8100), &[0x00]]),
            Expect::Malformed,
        ),
    ]
    .into_iter()
    .chain(martians())
    .collect()
}

fn loaded(xsk_queues: u32) -> Program {
    let mut p = program(xsk_queues);
    p.serve(Some(IpAddr::V4(Ipv4Addr::from(SRV4))), PORT)
        .unwrap();
    p.serve(Some(IpAddr::V6(Ipv6Addr::from(SRV6))), PORT)
        .unwrap();
    p
}

/// Runs every fixture; `ours` is the verdict expected for frames of served endpoints.
fn run_all(p: &Program, ours: u32) -> XdpCounters {
    let mut expected = XdpCounters::default();
    let mut failures = Vec::new();
    for (what, frame, expect) in fixtures() {
        let verdict = p.test_run(&frame).expect("BPF_PROG_RUN");
        let want = match expect {
            Expect::Ours => ours,
            Expect::Martian => XDP_DROP,
            _ => XDP_PASS,
        };
        if verdict != want {
            failures.push(format!("{what}: verdict {verdict}, want {want}"));
        }
        match (expect, ours) {
            (Expect::Ours, XDP_REDIRECT) => expected.redirected += 1,
            (Expect::Ours, _) => expected.no_socket += 1,
            (Expect::Passed, _) => expected.passed += 1,
            (Expect::Malformed, _) => expected.malformed += 1,
            (Expect::Martian, _) => expected.martian += 1,
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures failed:\n{}",
        failures.join("\n")
    );
    expected
}

#[test]
fn served_frames_pass_as_no_socket_while_the_queue_has_no_socket() {
    if !common::require_root() {
        return;
    }
    // bpf_redirect_map falls back to its flags (XDP_PASS) when XSKMAP[queue] is empty.
    let p = loaded(1);
    let expected = run_all(&p, XDP_PASS);
    assert_eq!(p.counters().unwrap(), expected);
}

#[test]
fn served_frames_pass_on_queues_beyond_the_configured_count() {
    if !common::require_root() {
        return;
    }
    let p = loaded(0);
    let expected = run_all(&p, XDP_PASS);
    assert_eq!(p.counters().unwrap(), expected);
}

#[test]
fn served_frames_are_redirected_once_a_socket_is_in_the_xskmap() {
    if !common::require_root() {
        return;
    }
    let topo = common::Topology::new(1);
    let iface = topo.srv_if.clone();
    topo.in_server_ns(move || {
        let socket = XskSocket::bind(&iface, 0, XskConfig::default()).expect("binding");
        let mut p = loaded(1);
        p.insert_socket(0, socket.fd()).unwrap();
        let expected = run_all(&p, XDP_REDIRECT);
        assert_eq!(p.counters().unwrap(), expected);
        assert!(expected.redirected >= 4);
        drop(socket);
    });
}

#[test]
fn a_wildcard_endpoint_serves_every_address_of_both_families() {
    if !common::require_root() {
        return;
    }
    let mut p = program(1);
    p.serve(None, PORT).unwrap();
    for frame in [
        cat(&[&eth(0x0800), &ipv4(6, OTHER4, 5, &tcp(PORT))]),
        cat(&[&eth(0x86dd), &ipv6(6, SRV6, &tcp(PORT))]),
        cat(&[&eth(0x0800), &ipv4(6, OTHER4, 5, &tcp(PORT + 1))]),
    ] {
        p.test_run(&frame).unwrap();
    }
    let c = p.counters().unwrap();
    assert_eq!((c.no_socket, c.passed), (2, 1), "{c}");
}

#[test]
fn an_ipv6_endpoint_is_served_by_its_exact_address() {
    if !common::require_root() {
        return;
    }
    let mut p = program(1);
    p.serve(Some(IpAddr::V6(Ipv6Addr::from(SRV6))), PORT)
        .unwrap();
    let to = |dst: [u8; 16]| cat(&[&eth(0x86dd), &ipv6(6, dst, &tcp(PORT))]);
    let mut other = SRV6;
    other[15] = 9;
    p.test_run(&to(SRV6)).unwrap();
    p.test_run(&to(other)).unwrap();
    let c = p.counters().unwrap();
    assert_eq!((c.no_socket, c.passed), (1, 1), "{c}");
}

#[test]
fn port_zero_serves_every_port_of_its_address_and_no_other_address() {
    if !common::require_root() {
        return;
    }
    let mut p = program(1);
    p.serve(Some(IpAddr::V4(Ipv4Addr::from(SRV4))), 0).unwrap();
    for frame in [
        cat(&[&eth(0x0800), &ipv4(6, SRV4, 5, &tcp(PORT))]),
        cat(&[&eth(0x0800), &ipv4(6, SRV4, 5, &tcp(1))]),
        cat(&[&eth(0x0800), &ipv4(6, OTHER4, 5, &tcp(PORT))]),
        cat(&[&eth(0x86dd), &ipv6(6, SRV6, &tcp(PORT))]),
    ] {
        p.test_run(&frame).unwrap();
    }
    let c = p.counters().unwrap();
    assert_eq!((c.no_socket, c.passed), (2, 2), "{c}");
}
