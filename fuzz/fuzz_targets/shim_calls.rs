//! The packetdrill shim's socket layer driven by socket calls and packets together: it never
//! panics, every packet it sends parses (checksums included), and it never holds more than
//! its limits.
//!
//! Input: one byte choosing the SYN-cookie mode, then [`Op`]s as `xdptcp_packetdrill::ops`
//! encodes them (every byte string decodes to some sequence); recordings of our packetdrill
//! scripts are its seeds (`scripts/fuzz.sh` makes them).
//!
//! One stack per process, recycled between inputs ([`Stack::recycle`]), as in
//! `engine_receive`.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use xdptcp::tcp::SynCookieMode;
use xdptcp::wire::TcpFrame;
use xdptcp::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use xdptcp_packetdrill::flags::Options;
use xdptcp_packetdrill::ops::Op;
use xdptcp_packetdrill::shim::START;
use xdptcp_packetdrill::stack::{FdSource, Stack};

const MAX_CONNECTIONS: usize = 32;
const MAX_SOCKETS: usize = 64;

thread_local! {
    static STACK: RefCell<Option<Stack>> = const { RefCell::new(None) };
}

/// Every packet the stack sent parses as Ethernet + IP + TCP with valid checksums.
fn check_sent(stack: &mut Stack) {
    while let Some((ip, _)) = stack.netdev_receive() {
        let ethertype = match ip.first().map(|b| b >> 4) {
            Some(4) => ETHERTYPE_IPV4,
            Some(6) => ETHERTYPE_IPV6,
            _ => panic!("the stack sent a packet that is neither IPv4 nor IPv6: {ip:02x?}"),
        };
        let mut frame = vec![0u8; ethernet::HEADER_LEN];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(&ip);
        if let Err(e) = TcpFrame::parse(&frame) {
            panic!("the stack sent a malformed packet ({e:?}): {ip:02x?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut opts = Options::default();
    opts.engine.syncookies = match mode % 3 {
        0 => SynCookieMode::Auto,
        1 => SynCookieMode::Always,
        _ => SynCookieMode::Never,
    };
    opts.engine.max_connections = MAX_CONNECTIONS;
    opts.engine.max_time_wait = MAX_CONNECTIONS;
    opts.engine.max_half_open = 8;
    let mut stack = match STACK.take() {
        Some(old) => old.recycle(&opts, START),
        None => Stack::new(&opts, FdSource::Counter, START),
    };
    let mut socks = Vec::new();
    for op in Op::decode_all(rest) {
        if matches!(op, Op::Socket { .. }) && socks.len() >= MAX_SOCKETS {
            continue;
        }
        op.apply(&mut stack, &mut socks);
        check_sent(&mut stack);
        assert!(stack.engine().connections() <= MAX_CONNECTIONS);
    }
    // Let the timers run: retransmissions, keepalives, TIME-WAIT (as engine_receive, at most
    // 64 deadlines, so a long backoff does not dominate the run).
    for _ in 0..64 {
        let Some(deadline) = stack.next_deadline() else {
            break;
        };
        stack.advance_to(deadline.max(stack.now()));
        check_sent(&mut stack);
        assert!(stack.engine().connections() <= MAX_CONNECTIONS);
    }
    STACK.set(Some(stack));
});
