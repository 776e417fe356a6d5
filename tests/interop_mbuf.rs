//! AF_XDP multi-buffer against the kernel's TCP over veth, as root: jumbo frames (the MTU far
//! above a UMEM frame's 3840 bytes) arrive as descriptor chains that the worker gathers, and go
//! out as TX chains; an upload echoed back is compared byte for byte over IPv4 and IPv6. Then
//! the fallbacks: `--multi-buffer auto` when the kernel refuses the SG bind (simulated: this
//! kernel takes it), and `on`, which then fails.
//!
//! On veth (Linux 6.18) any XDP program, frags-aware or not, takes TSO and GSO away from the
//! peer (`veth_xdp_set`, `veth_fix_features`), so a kernel sender's segments are cut to the MTU
//! before they reach the program: frames larger than a UMEM frame come from the MTU, not from
//! GSO. The client's veth keeps TX checksum offload off (`Topology`): its frames carry complete
//! checksums, which the engine checks.

mod common;

use std::time::Duration;

use common::Topology;

/// One echo round trip of `size` bytes to `addr`:8080 through `scripts/loss_peer.py`, which
/// compares every echoed byte; returns its JSON report.
fn echo(topo: &Topology, addr: &str, size: usize) -> serde_json::Value {
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/loss_peer.py");
    let size = size.to_string();
    let out = topo.cli_output(&[
        "python3",
        peer,
        "client",
        "echo",
        addr,
        "8080",
        "--transfers",
        "1",
        "--concurrency",
        "1",
        "--size",
        &size,
        "--timeout",
        "60",
    ]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "loss_peer.py: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Asserts that one echo of `size` bytes came back whole and equal.
fn assert_echoed(topo: &Topology, addr: &str, size: usize) {
    let r = echo(topo, addr, size);
    assert_eq!(
        (r["completed"].as_u64(), r["errors"].as_u64()),
        (Some(1), Some(0)),
        "{addr}: {r}"
    );
}

fn socket_counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats["total"]["socket"][name].as_u64().unwrap_or(0)
}

/// Stops the server and returns what it wrote to stderr.
fn stop(topo: &mut Topology, server: usize) -> String {
    topo.signal_child(server, libc::SIGTERM);
    let (_, err, _) = topo.wait_child(server, Duration::from_secs(10));
    err
}

#[test]
fn jumbo_frames_arrive_and_leave_as_chains_and_an_echoed_upload_is_byte_exact_over_ipv4_and_ipv6() {
    if !common::require_root() {
        return;
    }
    // 9000: three frames a segment; 65535, veth's largest: up to eighteen, 64 KiB segments.
    for (mtu, mss) in [(9000u32, 8960u64), (65535, 65495)] {
        let mut topo = Topology::with_mtu(1, mtu);
        let server = topo.start_serve(&["--app", "echo", "--multi-buffer", "on"]);
        topo.wait_stats_socket();
        let v6 = topo.srv_ip6.clone();
        for addr in [topo.srv_ip.clone(), v6] {
            assert_echoed(&topo, &addr, 16 << 20);
        }
        let stats = topo.stats();
        assert_eq!(stats["multi_buffer"], true, "{stats}");
        let (rx, tx) = (
            socket_counter(&stats, "rx_chains"),
            socket_counter(&stats, "tx_chains"),
        );
        // 2 × 16 MiB each way in segments of about the MSS: most of them chains.
        // (Segments clamped to one frame, MSS 3762, would make no chain at all.)
        let segments = (2 * (16 << 20) / mss) as f64;
        assert!(
            rx as f64 > segments * 0.5 && tx as f64 > segments * 0.5,
            "{stats}"
        );
        for drop in ["rx_chain_too_long", "rx_chain_cut", "tx_no_frame"] {
            assert_eq!(socket_counter(&stats, drop), 0, "{drop}: {stats}");
        }
        assert_eq!(
            stats["total"]["drops"]["bad_checksum"]
                .as_u64()
                .unwrap_or(0),
            0,
            "{stats}"
        );
        assert_eq!(stats["per_queue"][0]["frames_balanced"], true, "{stats}");
        let err = stop(&mut topo, server);
        assert!(err.contains("multi-buffer"), "{err}");
        assert!(
            err.contains("mode=Native"),
            "frags-aware: native XDP at MTU {mtu}: {err}"
        );
        assert!(!err.contains("larger than a UMEM frame carries"), "{err}");
    }
}

#[test]
fn auto_falls_back_to_single_buffer_with_one_log_line_when_the_kernel_refuses_the_sg_bind() {
    if !common::require_root() {
        return;
    }
    // This kernel takes XDP_USE_SG; the test hook refuses it with EINVAL, as Linux before 6.6
    // does (xdp-tools #501).
    let refuse = ["XDPTCP_TEST_REFUSE_MULTI_BUFFER=1"];
    let mut topo = Topology::with_mtu(1, 9000);
    let on = topo.spawn_serve_env(
        &refuse,
        &["--port", "8080", "--duration", "10", "--multi-buffer", "on"],
    );
    let (_, err, code) = topo.wait_child(on, Duration::from_secs(20));
    assert_ne!(code, Some(0), "`on` must fail: {err}");
    assert!(
        err.contains("Invalid argument") && err.contains("binding the AF_XDP socket"),
        "{err}"
    );
    assert!(!topo.xdp_attached(), "nothing left attached");

    let server = topo.spawn_serve_env(
        &refuse,
        &[
            "--port",
            "8080",
            "--duration",
            "30",
            "--app",
            "echo",
            "--multi-buffer",
            "auto",
        ],
    );
    assert!(
        Topology::wait_for(Duration::from_secs(10), || topo.xdp_attached()),
        "auto did not start"
    );
    topo.wait_stats_socket();
    let srv_ip = topo.srv_ip.clone();
    assert_echoed(&topo, &srv_ip, 8 << 20);
    let stats = topo.stats();
    assert_eq!(stats["multi_buffer"], false, "{stats}");
    assert_eq!(socket_counter(&stats, "rx_chains"), 0, "{stats}");
    let err = stop(&mut topo, server);
    assert_eq!(
        err.matches("multi-buffer refused").count(),
        1,
        "one log line: {err}"
    );
    // Single-buffer at MTU 9000: generic XDP and segments of one frame, as before.
    assert!(err.contains("mode=Generic"), "{err}");
    assert!(err.contains("MSS 3762"), "{err}");
}
