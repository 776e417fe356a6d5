//! The AF_XDP data path without the engine: a handler that answers every segment with the RST
//! of a closed port (RFC 9293 §3.10.7.1) proves frames go XDP → socket → handler → UMEM TX
//! frame → kernel client, with checksums the kernel accepts. Needs root.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use xdptcp::stats::Stats;
use xdptcp::time::Instant;
use xdptcp::tx::Tx;
use xdptcp::xdp::{BindMode, Handler, Server, ServerConfig, XdpMode, XskConfig};

/// Answers each TCP/IPv4 segment that is not itself a RST with a RST.
#[derive(Default)]
struct Refuser {
    stats: Stats,
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_be_bytes([pair[0], 0])
            };
            sum += word as u32;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Handler for Refuser {
    fn receive<T: Tx>(&mut self, _now: Instant, f: &[u8], tx: &mut T) {
        self.stats.rx_frames += 1;
        if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            return;
        }
        let ihl = (f[14] & 0x0f) as usize * 4;
        let t = &f[14 + ihl..];
        let total = u16::from_be_bytes([f[16], f[17]]) as usize;
        let doff = (t[12] >> 4) as usize * 4;
        let flags = t[13];
        if flags & 0x04 != 0 {
            return; // never answer a RST
        }
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        let seg_len = (total - ihl - doff) as u32 + u32::from(flags & 0x03 != 0);
        let (rseq, rack, rflags) = if flags & 0x10 != 0 {
            (ack, 0, 0x04)
        } else {
            (0, seq.wrapping_add(seg_len), 0x14)
        };
        let (src_ip, dst_ip) = (&f[26..30], &f[30..34]);
        let (sport, dport) = (&t[0..2], &t[2..4]);
        let sent = tx.send(54, |o| {
            o[0..6].copy_from_slice(&f[6..12]);
            o[6..12].copy_from_slice(&f[0..6]);
            o[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut o[14..34];
            ip.copy_from_slice(&[
                0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            ip[12..16].copy_from_slice(dst_ip);
            ip[16..20].copy_from_slice(src_ip);
            let c = checksum(&[ip]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let tcp = &mut o[34..54];
            tcp.fill(0);
            tcp[0..2].copy_from_slice(dport);
            tcp[2..4].copy_from_slice(sport);
            tcp[4..8].copy_from_slice(&rseq.to_be_bytes());
            tcp[8..12].copy_from_slice(&rack.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = rflags;
            let pseudo = [&dst_ip[..], src_ip, &[0, 6, 0, 20]].concat();
            let c = checksum(&[&pseudo, tcp]);
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
        });
        if sent {
            self.stats.tx_frames += 1;
            self.stats.resets_sent += 1;
        }
    }

    fn poll_timers<T: Tx>(&mut self, _now: Instant, _tx: &mut T) {}

    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

const CONNECTS: usize = 20;

fn config(topo: &common::Topology) -> ServerConfig {
    ServerConfig {
        iface: topo.srv_if.clone(),
        listeners: vec![(
            Some(IpAddr::V4(topo.srv_ip.parse::<Ipv4Addr>().unwrap())),
            8080,
        )],
        queues: Some(1),
        cores: None,
        xdp_mode: XdpMode::Auto,
        xsk: XskConfig {
            bind: BindMode::Auto,
            ..XskConfig::default()
        },
    }
}

#[test]
fn a_served_port_answers_through_af_xdp_and_frames_are_all_accounted_for() {
    if !common::require_root() {
        return;
    }
    let topo = common::Topology::new(1);
    let config = config(&topo);
    let mut server = topo
        .in_server_ns(move || Server::start(config, |_| Refuser::default()))
        .expect("starting the data path");
    assert!(
        !server.zero_copy(),
        "veth has no zero-copy: auto falls back to copy"
    );

    let script = format!(
        "import socket\nrefused = 0\nfor i in range({CONNECTS}):\n    try:\n        socket.create_connection(('{}', 8080), timeout=2).close()\n    except ConnectionRefusedError:\n        refused += 1\nprint(refused)\n",
        topo.srv_ip
    );
    let out = topo.cli(&["python3", "-c", &script]);
    let refused: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(
        refused, CONNECTS,
        "every connect must be refused by our RST"
    );

    server.collect(Duration::from_millis(300));
    server.collect(Duration::from_millis(300));
    let xdp = server.xdp_counters().unwrap();
    let (totals, _) = server.stop();
    assert!(
        totals.stats.rx_frames >= CONNECTS as u64,
        "{:?}",
        totals.stats
    );
    assert!(
        totals.socket.tx_frames >= CONNECTS as u64,
        "{:?}",
        totals.socket
    );
    assert!(xdp.redirected >= CONNECTS as u64, "{xdp}");
    assert!(
        totals.frames_balanced,
        "frame accounting: {:?}",
        totals.frames
    );
    assert_eq!(totals.frames.total, 4096);

    let link = topo.srv(&["ip", "link", "show", "dev", &topo.srv_if]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        !link.contains("prog/xdp"),
        "program still attached after stop: {link}"
    );
}

#[test]
fn the_kernel_still_answers_ping_and_ports_we_do_not_serve() {
    if !common::require_root() {
        return;
    }
    let mut topo = common::Topology::new(1);
    topo.spawn(
        true,
        &["python3", "-m", "http.server", "--bind", "0.0.0.0", "9090"],
    );
    let config = config(&topo);
    let server = topo
        .in_server_ns(move || Server::start(config, |_| Refuser::default()))
        .expect("starting the data path");
    topo.cli(&["ping", "-c", "2", "-i", "0.2", "-W", "2", &topo.srv_ip]);
    let url = format!("http://{}:9090/", topo.srv_ip);
    let kernel_port = common::Topology::wait_for(Duration::from_secs(5), || {
        topo.cli_output(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "2",
            "-w",
            "%{http_code}",
            &url,
        ])
        .stdout
            == b"200"
    });
    assert!(
        kernel_port,
        "the kernel's http.server on 9090 must answer (XDP_PASS)"
    );
    let xdp = server.xdp_counters().unwrap();
    assert!(xdp.passed > 0, "{xdp}");
    assert_eq!(xdp.redirected, 0, "{xdp}");
    drop(server);
}
