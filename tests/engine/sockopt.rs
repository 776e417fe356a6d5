//! Per-connection socket options through the engine's API (Linux's `TCP_USER_TIMEOUT`,
//! `TCP_MAXSEG`, `SO_RCVBUF`, `SO_SNDBUF`, `TCP_NOTSENT_LOWAT`, `TCP_INFO`): each one changes
//! what goes on the wire, or what the app is offered, as Linux's option does.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use xdptcp::app::{App, CloseReason, Io};
use xdptcp::state::State;
use xdptcp::tcp::ConnOptions;
use xdptcp::time::Instant;
use xdptcp::wire::tcp::Flags;

use crate::util::*;

/// What a [`Writer`] saw: every write (bytes taken, and the unsent bytes just before it),
/// in order, and when it was told of room.
#[derive(Default)]
struct Writes {
    taken: Vec<usize>,
    writable: Vec<Instant>,
}

/// Writes `total` bytes as fast as the engine takes them: once connected, then on every
/// `on_writable`.
struct Writer {
    total: usize,
    log: Rc<RefCell<Writes>>,
}

impl Writer {
    fn new(total: usize) -> (Writer, Rc<RefCell<Writes>>) {
        let log = Rc::new(RefCell::new(Writes::default()));
        (
            Writer {
                total,
                log: log.clone(),
            },
            log,
        )
    }

    fn write(&mut self, io: &mut Io<'_>) {
        let mut log = self.log.borrow_mut();
        let done: usize = log.taken.iter().sum();
        let n = io.write(&vec![7u8; self.total - done]);
        log.taken.push(n);
    }
}

impl App for Writer {
    type State = ();

    fn on_connected(&mut self, _: &mut (), io: &mut Io<'_>) {
        self.write(io);
    }

    fn on_writable(&mut self, _: &mut (), io: &mut Io<'_>) {
        self.log.borrow_mut().writable.push(io.now());
        self.write(io);
    }

    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

/// A server engine whose listener has `options`.
fn server_with<A: App>(options: ConnOptions, app: A) -> Peer<A> {
    let mut cfg = server_config();
    cfg.listeners[0].options = options;
    Peer::server(cfg, app)
}

/// The peer's ACK of everything up to `ack` with window `win` (unscaled field).
fn ack_to(sa: &Seg, ack: u32, win: u16) -> Seg {
    seg(Flags::ACK)
        .seq(1001)
        .ack(sa.seq + 1u32 + ack)
        .ts(PEER_TS, sa.tsval())
        .win(win)
}

/// The peer's data `payload` at `offset` bytes into its stream (its ISN is 1000), acknowledging
/// the SYN-ACK `sa`.
fn data_at(sa: &Seg, offset: u32, payload: &[u8]) -> Seg {
    seg(Flags::ACK)
        .seq(1001 + offset)
        .ack(sa.seq + 1u32)
        .ts(PEER_TS, sa.tsval())
        .data(payload)
}

/// RFC 5482: with a user timeout of 3 s, data that stays unacknowledged is given up 3 s after it
/// was sent (a RST, `TimedOut`), long before the 15 retransmissions of the retry limit; the
/// last retransmission timer is clamped to end at that instant.
#[test]
fn a_user_timeout_aborts_unacknowledged_data_at_that_age() {
    let app = Scripted {
        echo: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let (mut peer, sa, id) = established(app);
    assert_eq!(peer.engine.user_timeout(id), None, "off by default");
    assert!(
        peer.engine
            .set_user_timeout(id, Some(Duration::from_secs(3)))
    );
    assert_eq!(peer.engine.user_timeout(id), Some(Duration::from_secs(3)));
    let sent_at = peer.now;
    let echo = peer.send(data_at(&sa, 0, b"ping"));
    assert!(echo.iter().any(|s| s.payload == b"ping"), "{echo:?}");
    // The peer never answers again.
    let out = peer.run_timers(Duration::from_secs(60));
    let (rst_at, rst) = out.last().expect("segments").clone();
    assert!(rst.has(Flags::RST), "{out:?}");
    assert_eq!(rst_at - sent_at, Duration::from_secs(3), "{out:?}");
    let retransmits = out.iter().filter(|(_, s)| s.payload == b"ping").count();
    assert!(
        (2..15).contains(&retransmits),
        "some retransmissions, fewer than the retry limit: {out:?}"
    );
    assert_eq!(log.borrow().closed, [(id, CloseReason::TimedOut)]);
    assert_eq!(peer.engine.state(id), None);
}

/// Turned off again (`None`), the retry limit alone applies: nothing is aborted within a minute.
#[test]
fn a_user_timeout_turned_off_leaves_the_retry_limit() {
    let (mut peer, sa, id) = established(Scripted {
        echo: true,
        ..Scripted::default()
    });
    assert!(
        peer.engine
            .set_user_timeout(id, Some(Duration::from_secs(3)))
    );
    assert!(peer.engine.set_user_timeout(id, None));
    peer.send(data_at(&sa, 0, b"ping"));
    let out = peer.run_timers(Duration::from_secs(60));
    assert!(out.iter().all(|(_, s)| !s.has(Flags::RST)), "{out:?}");
    assert!(peer.engine.state(id).is_some());
}

/// Linux's zero-window rule (`tcp_probe_timer` with `icsk_probes_tstamp`): with a user
/// timeout, a window that stays shut aborts the connection that long after the first probe,
/// even though every probe is answered (without one, answered probes keep it open forever).
#[test]
fn a_user_timeout_aborts_a_window_that_stays_shut_though_probes_are_answered() {
    let app = Scripted {
        echo: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let (mut peer, sa, id) = established(app);
    assert!(
        peer.engine
            .set_user_timeout(id, Some(Duration::from_secs(5)))
    );
    // The data comes with a shut window: the echo waits behind it.
    let out = peer.send(data_at(&sa, 0, b"ping").win(0));
    assert!(out.iter().all(|s| s.payload.is_empty()), "{out:?}");
    let mut first_probe = None;
    let mut rst_at = None;
    let start = peer.now;
    while peer.now - start < Duration::from_secs(120) && rst_at.is_none() {
        let Some(at) = peer.engine.next_deadline() else {
            break;
        };
        peer.now = peer.now.max(at);
        for s in peer.poll() {
            if s.has(Flags::RST) {
                rst_at = Some(peer.now);
            } else {
                first_probe.get_or_insert(peer.now);
                // Every probe answered, the window still shut.
                peer.send(
                    seg(Flags::ACK)
                        .seq(1005)
                        .ack(sa.seq + 1u32)
                        .ts(PEER_TS, s.tsval())
                        .win(0),
                );
            }
        }
    }
    let (first_probe, rst_at) = (first_probe.expect("probes"), rst_at.expect("aborted"));
    assert_eq!(rst_at - first_probe, Duration::from_secs(5));
    assert_eq!(log.borrow().closed, [(id, CloseReason::TimedOut)]);
}

/// TCP_MAXSEG on a listener (Linux's `user_mss`): the SYN-ACK announces 1100, not 1460, and the
/// data goes out in segments of 1100 less the timestamp option, though the peer takes 1460.
#[test]
fn a_listeners_max_segment_is_announced_and_sent_with() {
    let opts = ConnOptions {
        max_segment: Some(1100),
        ..ConnOptions::default()
    };
    let (app, _) = Writer::new(5000);
    let mut peer = server_with(opts, app);
    let replies = peer.send(
        seg(Flags::SYN)
            .seq(1000)
            .mss(1460)
            .sack_perm()
            .ts(PEER_TS, 0)
            .ws(7),
    );
    let sa = replies[0].clone();
    assert_eq!(sa.options.mss, Some(1100), "{sa:?}");
    let out = peer.send(ack_to(&sa, 0, 502));
    let sizes: Vec<usize> = out.iter().map(|s| s.payload.len()).collect();
    assert_eq!(sizes, [1088, 1088, 1088, 1088, 648], "{out:?}");
    let id = peer.engine.find(&peer.tuple()).expect("established");
    assert_eq!(peer.engine.info(id).map(|i| i.snd_mss), Some(1088));
    assert_eq!(peer.engine.options(id), Some(opts));
}

/// TCP_MAXSEG before connect(): the SYN announces it, and it caps what the connection sends
/// with when the SYN-ACK offers more.
#[test]
fn connect_with_a_max_segment_announces_it_and_sends_with_it() {
    let (app, _) = Writer::new(3000);
    let mut peer = Peer::client(client_config(), app, 45000);
    let opts = ConnOptions {
        max_segment: Some(1000),
        ..ConnOptions::default()
    };
    let mut tx: Vec<Vec<u8>> = Vec::new();
    let local = SocketAddr::new(IpAddr::V4(ENGINE_ADDR), 45000);
    let remote = SocketAddr::new(IpAddr::V4(PEER_ADDR), PORT);
    let id = peer
        .engine
        .connect_with(peer.now, local, remote, PEER_MAC, &opts, &mut tx)
        .expect("connect");
    let syn = parse_all(&tx).remove(0);
    assert_eq!(syn.options.mss, Some(1000), "{syn:?}");
    // A SYN-ACK without timestamps offering 1460.
    let out = peer.send(
        seg(Flags::SYN | Flags::ACK)
            .seq(5000)
            .ack(syn.seq + 1u32)
            .mss(1460)
            .win(65535),
    );
    let sizes: Vec<usize> = out
        .iter()
        .filter(|s| s.is_data())
        .map(|s| s.payload.len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 1000], "{out:?}");
    assert_eq!(peer.engine.info(id).map(|i| i.snd_mss), Some(1000));
}

/// SO_RCVBUF on a listener: the SYN-ACK offers window scale 0 (the smallest that covers 20 000
/// bytes, Linux's `tcp_select_initial_window`) and a window of whole segments within it; a
/// stalled reader's window then shuts at 20 000 bytes, not at the configured 256 KiB.
#[test]
fn a_listeners_receive_buffer_sizes_the_window_and_its_scale() {
    let opts = ConnOptions {
        recv_buffer: Some(20_000),
        ..ConnOptions::default()
    };
    let mut peer = server_with(
        opts,
        Scripted {
            stalled: true,
            ..Scripted::default()
        },
    );
    let sa = peer.handshake(1000);
    assert_eq!(sa.options.window_scale, Some(0), "{sa:?}");
    // 13 segments of 1448 (the MSS less timestamps) fit 20 000 bytes.
    assert_eq!(sa.window, 13 * 1448, "{sa:?}");
    let mut sent = 0u32;
    let mut last = None;
    while sent < 18_824 {
        let out = peer.send(data_at(&sa, sent, &[1u8; 1448]));
        sent += 1448;
        last = out.last().cloned().or(last);
    }
    peer.advance(Duration::from_millis(200));
    let id = peer.engine.find(&peer.tuple()).expect("established");
    let info = peer.engine.info(id).expect("info");
    assert_eq!(info.bytes_received, 18_824);
    assert_eq!(
        info.rcv_wnd,
        20_000 - 18_824,
        "what is left of the buffer: {last:?}"
    );
}

/// Set on a live connection, SO_RCVBUF moves the window within the scale the handshake chose:
/// a stalled reader's window shuts at the new, smaller buffer.
#[test]
fn set_recv_buffer_on_a_connection_bounds_its_window() {
    let (mut peer, sa, id) = established(Scripted {
        stalled: true,
        ..Scripted::default()
    });
    assert!(peer.engine.set_recv_buffer(id, Some(8 * 1024)));
    let mut acks = Vec::new();
    for i in 0..10u32 {
        acks.extend(peer.send(data_at(&sa, i * 1448, &[1u8; 1448])));
    }
    let last = acks.last().expect("ACKs").clone();
    // Window scale 7: 8 KiB of buffer hold 5 segments and a bit; the edge stays at what the
    // SYN-ACK's 65 535 bytes promised, and the rest of the data goes beyond what is kept.
    let right_edge = last.ack.0.wrapping_add(u32::from(last.window) << 7);
    // The field rounds down to the scale's 128 bytes; the edge itself never moves back.
    let promised = 1001 + 65535;
    assert!(
        right_edge <= promised && right_edge > promised - 128,
        "the promised edge is kept: {right_edge} {acks:?}"
    );
    assert_eq!(
        peer.engine.buffers(id).map(|b| b.received),
        Some(10 * 1448),
        "data within the window already offered is taken"
    );
    let more = peer.send(data_at(&sa, 10 * 1448, &[1u8; 1448]));
    let w = more.last().expect("ACK");
    assert!(
        w.window < (65535 >> 7) as u16,
        "the window shrinks toward the new buffer: {more:?}"
    );
}

/// SO_SNDBUF on a listener: the app can queue only 4000 bytes, and hears of room
/// (`on_writable`) once the peer's ACK frees it.
#[test]
fn a_listeners_send_buffer_bounds_what_the_app_queues() {
    let opts = ConnOptions {
        send_buffer: Some(4000),
        ..ConnOptions::default()
    };
    let (app, log) = Writer::new(10_000);
    let mut peer = server_with(opts, app);
    let sa = peer.handshake(1000);
    assert_eq!(
        log.borrow().taken,
        [4000],
        "the first write fills the buffer"
    );
    let id = peer.engine.find(&peer.tuple()).expect("established");
    assert_eq!(peer.engine.buffers(id).map(|b| b.send), Some(4000));
    peer.send(ack_to(&sa, 4000, 502));
    assert_eq!(log.borrow().taken, [4000, 4000], "room after the ACK");
    assert_eq!(log.borrow().writable.len(), 1);
    assert!(peer.engine.set_send_buffer(id, Some(1500)));
    peer.send(ack_to(&sa, 8000, 502));
    assert_eq!(
        log.borrow().taken,
        [4000, 4000, 1500],
        "the smaller buffer from then on"
    );
}

/// TCP_NOTSENT_LOWAT 4000: writes stop while 4000 bytes or more wait unsent, and the app hears
/// of room only once twice the unsent bytes are below the mark (Linux's
/// `tcp_stream_memory_free`, `__sk_stream_is_writeable(sk, 1)`), though the send buffer has
/// room long before; it hears in the event whose transmission took the unsent bytes there.
#[test]
fn a_notsent_low_water_mark_holds_the_app_back_until_the_unsent_bytes_drain() {
    let opts = ConnOptions {
        notsent_lowat: Some(4000),
        ..ConnOptions::default()
    };
    let (app, log) = Writer::new(1 << 20);
    let mut peer = server_with(opts, app);
    // A peer window of 1000 bytes (scale 7: 8 x 128) holds most of it back.
    let syn = seg(Flags::SYN)
        .seq(1000)
        .mss(1460)
        .sack_perm()
        .ts(PEER_TS, 0)
        .ws(7);
    let replies = peer.send(syn);
    let sa = replies[0].clone();
    let out = peer.send(ack_to(&sa, 0, 8));
    let first = log.borrow().taken[0];
    assert!(first > 0, "the first write starts below the mark");
    assert_eq!(
        out.iter().map(|s| s.payload.len()).sum::<usize>(),
        1024,
        "{out:?}"
    );
    let id = peer.engine.find(&peer.tuple()).expect("established");
    let mut acked = 1024u32;
    let mut writable_at_unsent = Vec::new();
    for _ in 0..400 {
        let before = log.borrow().writable.len();
        let unsent_before = peer.engine.info(id).expect("info").notsent;
        peer.send(ack_to(&sa, acked, 8));
        acked += 1024;
        if log.borrow().writable.len() > before {
            writable_at_unsent.push(unsent_before);
            break;
        }
        let b = peer.engine.buffers(id).expect("buffers");
        if b.unsent >= 4000 {
            assert_eq!(
                b.send_space, 0,
                "no room at the mark or above: {}",
                b.unsent
            );
        } else {
            assert!(b.send_space > 0, "room below the mark: {}", b.unsent);
        }
    }
    let unsent = writable_at_unsent.first().copied().expect("told of room");
    // Each ACK lets 1024 more bytes out: the app is told in the event whose transmission took
    // the unsent bytes below half the mark, not one ACK later.
    assert!(
        (unsent as usize).saturating_sub(1024) * 2 < 4000 && unsent * 2 >= 4000,
        "told once twice the unsent bytes fell below the mark: {unsent} before the ACK"
    );
}

/// TCP_INFO: what the engine keeps, in the units it keeps it.
#[test]
fn info_reports_state_rtt_windows_and_byte_counts() {
    let (mut peer, sa, id) = established(Scripted {
        echo: true,
        ..Scripted::default()
    });
    let info = peer.engine.info(id).expect("info");
    assert_eq!(info.state, State::Established);
    assert_eq!(info.bytes_acked, 0);
    assert_eq!(info.snd_mss, 1448);
    assert_eq!(info.cwnd, 10 * 1448);
    assert_eq!(info.retransmits, 0);
    assert_eq!(info.delivery_rate, None, "no rate sampler");
    peer.send(data_at(&sa, 0, b"ping"));
    peer.now = peer.now + Duration::from_millis(30);
    peer.send(
        seg(Flags::ACK)
            .seq(1005)
            .ack(sa.seq + 5u32)
            .ts(PEER_TS, sa.tsval())
            .win(502),
    );
    let info = peer.engine.info(id).expect("info");
    assert_eq!((info.bytes_received, info.bytes_acked), (4, 4));
    assert_eq!(info.unacked, 0);
    assert!(info.rtt.is_some() && info.rttvar.is_some(), "{info:?}");
    assert_eq!(info.snd_wnd, 502 << 7);
}
