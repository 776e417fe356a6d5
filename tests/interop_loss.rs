//! Interop under loss: the kernel's TCP as the client of `xdptcp serve --app echo` over veth,
//! with random drop both ways in the client namespace (`iptables -m statistic --mode random`,
//! INPUT and OUTPUT) at 1 %, 5 % and 10 %. Every echo must come back byte-exact, within a
//! generous bound (a stuck connection fails the test, a slow machine does not). Needs root.

mod common;

use std::time::Duration;

use common::Topology;

const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");
const PORT: &str = "8080";
/// The kernel-side client of scripts/loss.sh: runs the transfers, checks every byte, prints JSON.
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/loss_peer.py");

/// Random drop of `percent` % of our port's segments, both ways, in the client namespace.
fn set_loss(topo: &Topology, percent: u32) {
    for chain in ["INPUT", "OUTPUT"] {
        topo.cli(&["iptables", "-F", chain]);
    }
    if percent == 0 {
        return;
    }
    let p = format!("{:.2}", f64::from(percent) / 100.0);
    for (chain, port_match) in [("INPUT", "--sport"), ("OUTPUT", "--dport")] {
        topo.cli(&[
            "iptables",
            "-A",
            chain,
            "-p",
            "tcp",
            port_match,
            PORT,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &p,
            "-j",
            "DROP",
        ]);
    }
}

#[test]
fn kernel_clients_echo_byte_exact_at_1_5_and_10_percent_random_loss_both_ways() {
    if !common::require_root() {
        return;
    }
    let mut topo = Topology::new(1);
    let iface = topo.srv_if.clone();
    let srv_ip = topo.srv_ip.clone();
    let i = topo.spawn(
        true,
        &[
            BIN,
            "serve",
            "--iface",
            &iface,
            "--addr",
            &srv_ip,
            "--port",
            PORT,
            "--app",
            "echo",
            "--duration",
            "600",
        ],
    );
    let up = Topology::wait_for(Duration::from_secs(10), || {
        topo.cli_output(&[
            "python3",
            "-c",
            &format!("import socket; socket.create_connection(('{srv_ip}', {PORT}), timeout=1)"),
        ])
        .status
        .success()
    });
    if !up {
        let (_, err, _) = topo.wait_child(i, Duration::from_secs(5));
        panic!("server did not come up: {err}");
    }
    for percent in [1, 5, 10] {
        set_loss(&topo, percent);
        // 40 transfers of 64 KiB, 10 at a time: about 2400 segments each way per level.
        let out = topo.cli_output(&[
            "timeout",
            "200",
            "python3",
            PEER,
            "client",
            "echo",
            &srv_ip,
            PORT,
            "--transfers",
            "40",
            "--size",
            "65536",
            "--concurrency",
            "10",
            "--timeout",
            "180",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let r: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "{percent} %: no result ({e}): {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(r["errors"], 0, "{percent} % loss: {r}");
        assert_eq!(r["completed"], 40, "{percent} % loss: {r}");
        eprintln!(
            "{percent} % loss: 40 x 64 KiB echoed byte-exact in {:.2} s (p50 {:.3} s, p99 {:.3} s)",
            r["total_s"].as_f64().unwrap_or(0.0),
            r["p50_s"].as_f64().unwrap_or(0.0),
            r["p99_s"].as_f64().unwrap_or(0.0)
        );
    }
    set_loss(&topo, 0);
    topo.signal_child(i, libc::SIGTERM);
    let (_, err, code) = topo.wait_child(i, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("balanced=true"), "{err}");
}
