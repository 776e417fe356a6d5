//! The server engine on arbitrary frames: it never panics, never holds more connections than
//! its limits allow, and never emits a frame that does not parse.
//!
//! Input: one byte choosing the SYN-cookie mode (`mode % 3`) and TCP Fast Open on the listener
//! (`mode / 3 % 3`: off, on, or on without cookies, so that the fuzzer opens Fast Open
//! connections without having to find a cookie), then records of
//! `[kind, dt, len_hi, len_lo, bytes[len]]`:
//! - `kind & 1 == 0`: `bytes` is a whole Ethernet frame, fed as is;
//! - `kind & 1 == 1`: `bytes` is a TCP segment (header, options, payload), wrapped in Ethernet
//!   and IPv4 from client `kind >> 1 & 3` to the server, with both checksums filled so the
//!   fuzzer reaches the state machine instead of the checksum check.
//!
//! The clock advances by `dt³` µs (up to ~16.6 s) before each frame, and timers run between
//! frames.
//!
//! One engine per process, recycled between inputs ([`Engine::recycle`]): a new engine's
//! latency histograms cost ~2 ms to allocate, a hundred times what a typical input costs.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use xdptcp::app::http::{Http, HttpConfig};
use xdptcp::sim;
use xdptcp::tcp::{Engine, FastOpen, SynCookieMode};
use xdptcp::time::Instant;
use xdptcp::wire::TcpFrame;

const MAX_CONNECTIONS: usize = 64;
const MAX_TIME_WAIT: usize = 64;
const MAX_HALF_OPEN: usize = 16;

/// Every frame the engine sent parses; the queue is emptied.
fn check_sent(sent: &mut Vec<Vec<u8>>) {
    for frame in sent.drain(..) {
        if let Err(e) = TcpFrame::parse(&frame) {
            panic!("engine emitted a malformed frame ({e:?}): {frame:02x?}");
        }
    }
}

thread_local! {
    /// The engine between inputs (taken out for each one, recycled, put back).
    static ENGINE: RefCell<Option<Engine<Http>>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut cfg = sim::configs(1).1;
    cfg.syncookies = match mode % 3 {
        0 => SynCookieMode::Auto,
        1 => SynCookieMode::Always,
        _ => SynCookieMode::Never,
    };
    cfg.listeners[0].fastopen = match mode / 3 % 3 {
        0 => None,
        n => Some(FastOpen {
            cookie_not_required: n == 2,
            ..FastOpen::with_queue(MAX_HALF_OPEN as u32)
        }),
    };
    cfg.max_connections = MAX_CONNECTIONS;
    cfg.max_time_wait = MAX_TIME_WAIT;
    cfg.max_half_open = MAX_HALF_OPEN;

    let mut now = Instant::from_secs(1000);
    let mut engine = match ENGINE.take() {
        Some(old) => old.recycle(cfg, now),
        None => Engine::new(cfg, Http::new(HttpConfig::default()), now),
    };
    let mut sent: Vec<Vec<u8>> = Vec::new();

    while let [kind, dt, len_hi, len_lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo])).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;

        now = now + Duration::from_micros(u64::from(*dt).pow(3));
        engine.poll_timers(now, &mut sent);
        check_sent(&mut sent);

        if kind & 1 == 0 {
            engine.receive(now, bytes, &mut sent);
        } else {
            let client = Ipv4Addr::new(10, 0, 0, 2 + (kind >> 1 & 3));
            engine.receive(now, &common::wrap(client, bytes), &mut sent);
        }
        check_sent(&mut sent);

        assert!(
            engine.connections() <= MAX_CONNECTIONS,
            "{} connections",
            engine.connections()
        );
        assert!(
            engine.time_wait_len() <= MAX_TIME_WAIT,
            "{} in TIME-WAIT",
            engine.time_wait_len()
        );
    }

    // Let every timer run out: retransmissions, keepalives, TIME-WAIT.
    for _ in 0..64 {
        let Some(deadline) = engine.next_deadline() else {
            break;
        };
        now = now.max(deadline);
        engine.poll_timers(now, &mut sent);
        check_sent(&mut sent);
        assert!(engine.connections() <= MAX_CONNECTIONS);
    }
    // Hand pending request timings to the histograms so the app holds nothing over.
    engine.flushed(now);
    ENGINE.set(Some(engine));
});
