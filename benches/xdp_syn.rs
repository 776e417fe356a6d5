//! SYN → cookie SYN-ACK in the XDP program, timed by the kernel: each `BPF_PROG_RUN` runs the
//! program once over a fresh copy of the SYN (a run with `repeat` would hand the later runs the
//! SYN-ACK the first one wrote) and reports the time of that run; we take the median and the
//! mean of many (the median is what one run costs: the mean also carries the interrupts and
//! the hypervisor's pauses that land in some runs, which on a shared 2-core VM add tens of
//! nanoseconds to it). The same for an ARP frame, which the program passes after one header
//! check, is the baseline: the kernel's timer and the call into the program. Needs root
//! (loading BPF).
//!
//! `cargo bench --bench xdp_syn` measures; without `--bench` (as `cargo test --all-targets`
//! runs it) it checks each case once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xdptcp::tcp::Config;
use xdptcp::tcp::hash::Key;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::tcp::{Flags, Options, Repr as TcpRepr};
use xdptcp::wire::{IpRepr, TcpFrame, ethernet, ipv4, ipv6};
use xdptcp::xdp::program::verdict::XDP_TX;
use xdptcp::xdp::{Program, ProgramConfig, SynAckTemplate};

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn syn(src: IpAddr, dst: IpAddr, options: Options) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: 40_000,
        dst_port: 8080,
        seq: SeqNumber(0x1234_5678),
        ack: SeqNumber(0),
        flags: Flags::SYN,
        window: 64_240,
        options,
        payload: &[],
    };
    let ip = match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => IpRepr::V4(ipv4::Repr {
            src,
            dst,
            protocol: 6,
            payload_len: tcp.buffer_len(),
            ttl: 64,
        }),
        (IpAddr::V6(src), IpAddr::V6(dst)) => IpRepr::V6(ipv6::Repr {
            src,
            dst,
            next_header: 6,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        }),
        _ => unreachable!(),
    };
    let f = TcpFrame {
        eth: ethernet::Repr {
            dst: OUR_MAC,
            src: [2, 0, 0, 0, 0, 2],
            vlan: None,
            ethertype: if dst.is_ipv4() { 0x0800 } else { 0x86dd },
        },
        ip,
        tcp,
    };
    let mut buf = vec![0u8; f.buffer_len()];
    f.emit(&mut buf);
    buf
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "xdp_syn needs root; CI runs as root"
        );
        eprintln!("xdp_syn: skipped: needs root (loading BPF)");
        return;
    }
    let measure = std::env::args().any(|a| a == "--bench");
    let mut p = Program::load(&ProgramConfig {
        xsk_queues: 1,
        local_mac: OUR_MAC,
        ifindex: 0,
        tx_by_redirect: false,
        synack: SynAckTemplate::from_engine(&Config::default()),
        fixed_now: None,
        multi_buffer: false,
    })
    .expect("loading the XDP program");
    let (v4, v6) = (
        IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 1)),
    );
    p.serve(Some(v4), 8080).unwrap();
    p.serve(Some(v6), 8080).unwrap();
    p.queue_flag(0).unwrap().set_cookie_mode(true);
    // The real clock runs here: keys for this epoch and the next.
    let epoch = xdptcp::xdp::sys::monotonic_now().total_micros() / 64_000_000;
    for e in [epoch, epoch + 1] {
        p.cookie_keys().write(e, &Key([7; 16]), &Key([9; 16]));
    }
    let linux = Options {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some((123_456, 0)),
        ..Options::default()
    };
    let bare = Options::default();
    let cases = [
        (
            "IPv4 SYN, Linux options",
            syn(IpAddr::V4(Ipv4Addr::new(10, 201, 0, 2)), v4, linux),
        ),
        (
            "IPv4 SYN, no options (hping3)",
            syn(IpAddr::V4(Ipv4Addr::new(10, 201, 0, 2)), v4, bare),
        ),
        (
            "IPv6 SYN, Linux options",
            syn(
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 2)),
                v6,
                linux,
            ),
        ),
    ];
    let runs = if measure { 300_000 } else { 10 };
    // (median, mean) of `runs` runs, ns.
    let time_ns = |frame: &[u8]| {
        let mut ns: Vec<u64> = (0..runs)
            .map(|_| p.bench_run(frame, 1).expect("BPF_PROG_RUN").as_nanos() as u64)
            .collect();
        let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
        let mid = ns.len() / 2;
        (*ns.select_nth_unstable(mid).1 as f64, mean)
    };
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06]);
    arp.resize(42, 0);
    let base = time_ns(&arp);
    println!(
        "baseline (ARP, passed at once): median {:.0} ns, mean {:.1} ns per run ({runs} runs)",
        base.0, base.1
    );
    let above = |what: &str, (median, mean): (f64, f64)| {
        println!(
            "{what}: median {:.0} ns, mean {:.1} ns above the baseline",
            median - base.0,
            mean - base.1
        );
    };
    p.queue_flag(0).unwrap().set_cookie_mode(false);
    // The same SYN with the queue's cookie mode off: parsed, looked up and sent to the
    // worker, so what the answer itself costs is the difference.
    above(
        "IPv4 SYN, cookie mode off (to the worker)",
        time_ns(&cases[0].1),
    );
    p.queue_flag(0).unwrap().set_cookie_mode(true);
    for (name, frame) in &cases {
        assert_eq!(p.test_run(frame).unwrap(), XDP_TX, "{name}");
        above(&format!("{name}, SYN -> SYN-ACK"), time_ns(frame));
    }
}
