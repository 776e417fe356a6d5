//! The AF_XDP data path without the engine: a handler that answers every segment with the RST
//! of a closed port (RFC 9293 §3.10.7.1) proves frames go XDP → socket → handler → UMEM TX
//! frame → kernel client, with checksums the kernel accepts. Needs root.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use xdptcp::tcp::Config;
use xdptcp::xdp::refuser::Refuser;
use xdptcp::xdp::{BindMode, Server, ServerConfig, SynAckTemplate, XdpMode, XskConfig};

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
        synack: SynAckTemplate::from_engine(&Config::default()),
        cookie_keys: None,
        capture: None,
        multi_buffer: false,
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
    let totals = server.stop().totals;
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
    assert_eq!(totals.frames.total, u64::from(XskConfig::default().frames));

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
