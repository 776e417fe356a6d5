//! Loss recovery under a hostile peer: one connection to the server engine is opened and
//! has data in flight (an HTTP response of 1 MiB), then the fuzzer chooses what the peer
//! sends: ACKs with SACK and D-SACK blocks anywhere (1-byte ones, past SND.MAX, below the
//! ACK), out-of-order data, FINs, on an advancing clock with the timers run (RTO, tail loss
//! probe, RACK's reordering timer). The engine never panics, every frame it sends parses, and
//! its scoreboard stays bounded whatever the ACKs (the issue-16 SACK shredding).
//!
//! Input: one byte of handshake options (bit 0: timestamps; bits 1–2: the MSS announced, 64,
//! 536, 1460 or none), then records of `[kind, dt, ack_hi, ack_lo, win, blocks..., data?]`:
//! - `ack` is SND.UNA (as the peer last saw it) + `ack` − 64, clipped to SND.MAX + 64: mostly
//!   acceptable, sometimes old or beyond what was sent;
//! - `kind & 3` (plus one if `kind & 4`) SACK blocks of `[off_hi, off_lo, len_hi, len_lo]`:
//!   from the ACK + 4 × `off` (minus 4096 when `kind & 8`: a D-SACK below the ACK) for `len`
//!   bytes;
//! - with `kind & 16`, data from the peer: `[seq_hi, seq_lo, len]`, `8 × len` bytes at the
//!   peer's next sequence number + `seq` (out of order unless `seq` is 0);
//! - `kind & 32`: FIN; the window field is `win << 8`.
//!
//! The clock advances by `dt³` µs before each record, and timers run between records.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use xdptcp::app::http::{Http, HttpConfig, generated_body};
use xdptcp::sim::{self, SERVER_ADDR, SERVER_PORT};
use xdptcp::tcp::scoreboard::MAX_RECORDS;
use xdptcp::tcp::{Engine, FourTuple};
use xdptcp::wire::SeqNumber;
use xdptcp::time::Instant;
use xdptcp::wire::TcpFrame;
use xdptcp::wire::tcp::{Flags, Options, Repr as TcpRepr};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT_PORT: u16 = 40_000;
const CLIENT_ISN: u32 = 0x1000_0000;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// The peer's view of the connection.
struct Peer {
    /// Our next sequence number.
    snd_nxt: SeqNumber,
    /// The server's next sequence number we expect (what we ACK by default).
    una: SeqNumber,
    /// The highest sequence number the server sent.
    snd_max: SeqNumber,
    /// The last TSval the server sent, when timestamps are on.
    ts: Option<u32>,
}

/// The frame of `seg` from the peer.
fn frame(seg: &TcpRepr<'_>) -> Vec<u8> {
    let mut bytes = vec![0u8; seg.buffer_len()];
    seg.emit(&mut bytes, IpAddr::V4(CLIENT), SERVER_ADDR);
    common::wrap(CLIENT, &bytes)
}

/// Every frame the engine sent parses; what the server sent moves the peer's view.
fn check_sent(sent: &mut Vec<Vec<u8>>, peer: &mut Peer) {
    for f in sent.drain(..) {
        let parsed = TcpFrame::parse(&f)
            .unwrap_or_else(|e| panic!("engine emitted a malformed frame ({e:?}): {f:02x?}"));
        let t = &parsed.tcp;
        let len = t.payload.len()
            + usize::from(t.flags.contains(Flags::SYN))
            + usize::from(t.flags.contains(Flags::FIN));
        peer.snd_max = peer.snd_max.max(t.seq + len);
        if let Some((tsval, _)) = t.options.timestamp {
            peer.ts = Some(tsval);
        }
    }
}

fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

thread_local! {
    /// The engine between inputs (recycled for each one, as in `engine_receive`).
    static ENGINE: RefCell<Option<Engine<Http>>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&opts, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = sim::configs(1).1;
    let mut now = Instant::from_secs(1000);
    let mut engine = match ENGINE.take() {
        Some(old) => old.recycle(cfg, now),
        None => Engine::new(
            cfg,
            Http::new(HttpConfig {
                body: generated_body(1 << 20),
                ..HttpConfig::default()
            }),
            now,
        ),
    };
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let ts = opts & 1 == 1;
    let mss = [Some(64), Some(536), Some(1460), None][usize::from(opts >> 1 & 3)];
    let mut peer = Peer {
        snd_nxt: SeqNumber(CLIENT_ISN),
        una: SeqNumber(0),
        snd_max: SeqNumber(0),
        ts: None,
    };
    let tsopt = |peer: &Peer, now: Instant| {
        peer.ts
            .filter(|_| ts)
            .map(|ecr| (now.total_millis() as u32, ecr))
    };
    let seg = |flags: Flags, seq: SeqNumber, ack: SeqNumber, options: Options| TcpRepr {
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
        seq,
        ack,
        flags,
        window: 65_535,
        options,
        payload: &[],
    };

    // The handshake and the request: the server then has its initial window in flight.
    let syn = Options {
        mss,
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: ts.then(|| (now.total_millis() as u32, 0)),
        ..Options::default()
    };
    engine.receive(
        now,
        &frame(&seg(Flags::SYN, peer.snd_nxt, SeqNumber(0), syn)),
        &mut sent,
    );
    let Some(syn_ack) = sent
        .first()
        .and_then(|f| TcpFrame::parse(f).ok())
        .map(|f| f.tcp.seq)
    else {
        panic!("no SYN-ACK");
    };
    peer.una = syn_ack + 1u32;
    check_sent(&mut sent, &mut peer);
    peer.snd_nxt += 1u32;
    let options = Options {
        timestamp: tsopt(&peer, now),
        ..Options::default()
    };
    let mut get = seg(Flags::ACK | Flags::PSH, peer.snd_nxt, peer.una, options);
    get.payload = REQUEST;
    engine.receive(now, &frame(&get), &mut sent);
    peer.snd_nxt += REQUEST.len();
    check_sent(&mut sent, &mut peer);
    let tuple = FourTuple {
        local_addr: SERVER_ADDR,
        remote_addr: IpAddr::V4(CLIENT),
        local_port: SERVER_PORT,
        remote_port: CLIENT_PORT,
    };
    let id = engine.find(&tuple).expect("established");

    let payload = [0x5a_u8; 8 * 255];
    while let Some([kind, dt, ack_hi, ack_lo, win]) = take::<5>(&mut rest) {
        now = now + Duration::from_micros(u64::from(dt).pow(3));
        engine.poll_timers(now, &mut sent);
        check_sent(&mut sent, &mut peer);

        let span = peer.snd_max - peer.una;
        let off = u32::from(u16::from_be_bytes([ack_hi, ack_lo])) % (span + 129);
        let ack = peer.una + off - 64u32;
        let mut options = Options {
            timestamp: tsopt(&peer, now),
            ..Options::default()
        };
        let blocks = usize::from(kind & 3) + usize::from(kind & 4 != 0);
        for i in 0..blocks {
            let Some([o_hi, o_lo, l_hi, l_lo]) = take::<4>(&mut rest) else {
                break;
            };
            let mut start = ack + 4 * u32::from(u16::from_be_bytes([o_hi, o_lo]));
            if i == 0 && kind & 8 != 0 {
                start = start - 4096u32;
            }
            let end = start + u32::from(u16::from_be_bytes([l_hi, l_lo]));
            options.sack_blocks[i] = (start, end);
            options.sack_count = i as u8 + 1;
        }
        let mut flags = Flags::ACK;
        let mut seq = peer.snd_nxt;
        let mut len = 0;
        if kind & 16 != 0 {
            let Some([s_hi, s_lo, l]) = take::<3>(&mut rest) else {
                break;
            };
            seq += u32::from(u16::from_be_bytes([s_hi, s_lo]));
            len = 8 * usize::from(l);
        }
        if kind & 32 != 0 {
            flags |= Flags::FIN;
        }
        let mut s = seg(flags, seq, ack, options);
        s.window = u16::from(win) << 8;
        s.payload = &payload[..len];
        engine.receive(now, &frame(&s), &mut sent);
        check_sent(&mut sent, &mut peer);
        if ack.gt(peer.una) && ack.le(peer.snd_max) {
            peer.una = ack;
        }
        if seq == peer.snd_nxt {
            peer.snd_nxt += len;
        }

        if let Some((records, _)) = engine.scoreboard_census(id) {
            // Appending what was sent is never refused (at most the send buffer in segments
            // of the smallest MSS, 256 KiB / 52 B); splitting for a SACK block stops at the cap.
            assert!(records <= 2 * MAX_RECORDS, "{records} records");
        }
    }

    // Let every timer run out.
    for _ in 0..64 {
        let Some(deadline) = engine.next_deadline() else {
            break;
        };
        now = now.max(deadline);
        engine.poll_timers(now, &mut sent);
        check_sent(&mut sent, &mut peer);
    }
    engine.flushed(now);
    ENGINE.set(Some(engine));
});
