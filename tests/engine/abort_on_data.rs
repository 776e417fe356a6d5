//! RFC 1122 §4.2.2.13: "If such a host issues a CLOSE call while received data is still
//! pending in TCP, or if new data is received after CLOSE is called, its TCP SHOULD send a RST
//! to show that data was lost." As Linux: data beyond RCV.NXT after close() (FIN-WAIT-1,
//! FIN-WAIT-2: `tcp_rcv_state_process`, `TCPAbortOnData`) and a close() with data unread
//! (`tcp_close`, `TCPAbortOnClose`) reset the connection; a half-close reads on.

use xdptcp::app::CloseReason;
use xdptcp::state::State;
use xdptcp::tcp::ConnId;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::tcp::Flags;

use crate::util::*;

/// The peer's segment at `offset` bytes into its stream (ISN 1000) acknowledging `ack`.
fn from_peer(offset: u32, ack: SeqNumber, tsecr: u32, data: &[u8]) -> Seg {
    seg(Flags::ACK)
        .seq(1001 + offset)
        .ack(ack)
        .ts(PEER_TS, tsecr)
        .data(data)
}

/// A server whose app reads "ping" and closes: the peer, the connection and the FIN it sent.
fn closed_after_ping() -> (Peer<Scripted>, ConnId, Seg) {
    let (mut peer, sa, id) = established(Scripted {
        close_on_data: true,
        ..Scripted::default()
    });
    let out = peer.send(from_peer(0, sa.seq + 1u32, sa.tsval(), b"ping"));
    let fin = out
        .iter()
        .find(|s| s.has(Flags::FIN))
        .expect("the close sends a FIN")
        .clone();
    assert_eq!(peer.engine.state(id), Some(State::FinWait1));
    (peer, id, fin)
}

#[test]
fn data_after_close_in_fin_wait_2_is_answered_with_a_reset_and_aborts() {
    let (mut peer, id, fin) = closed_after_ping();
    let log = peer.engine.app().log.clone();
    peer.send(from_peer(4, fin.seq + 1u32, fin.tsval(), b""));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    let out = peer.send(from_peer(4, fin.seq + 1u32, fin.tsval(), b"more"));
    assert_eq!(out.len(), 1, "{out:?}");
    // <SEQ=SEG.ACK><CTL=RST>, as Linux's tcp_v4_send_reset answers the segment.
    assert_eq!(out[0].flags, Flags::RST, "{out:?}");
    assert_eq!(out[0].seq, fin.seq + 1u32);
    assert_eq!(peer.engine.state(id), None);
    assert_eq!(log.borrow().closed, [(id, CloseReason::Aborted)]);
    assert_eq!(peer.engine.stats().aborts_on_data, 1);
}

#[test]
fn data_after_close_in_fin_wait_1_is_answered_with_a_reset_and_aborts() {
    let (mut peer, id, fin) = closed_after_ping();
    // The FIN not acknowledged yet.
    let out = peer.send(from_peer(4, fin.seq, fin.tsval(), b"more"));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, Flags::RST, "{out:?}");
    assert_eq!(out[0].seq, fin.seq);
    assert_eq!(peer.engine.state(id), None);
    assert_eq!(peer.engine.stats().aborts_on_data, 1);
}

/// Only new data resets: a repeat of what was received is acknowledged again, and the peer's
/// bare FIN closes as usual.
#[test]
fn after_close_a_repeat_of_received_data_and_a_bare_fin_do_not_reset() {
    let (mut peer, id, fin) = closed_after_ping();
    let log = peer.engine.app().log.clone();
    let out = peer.send(from_peer(0, fin.seq + 1u32, fin.tsval(), b"ping"));
    assert!(out.iter().all(|s| !s.has(Flags::RST)), "{out:?}");
    assert!(
        out.iter().any(|s| s.ack.0 == 1005),
        "the repeat is acknowledged: {out:?}"
    );
    let out = peer.send(
        seg(Flags::FIN | Flags::ACK)
            .seq(1005)
            .ack(fin.seq + 1u32)
            .ts(PEER_TS, fin.tsval()),
    );
    assert!(out.iter().all(|s| !s.has(Flags::RST)), "{out:?}");
    assert_eq!(peer.engine.time_wait_len(), 1, "closed into TIME-WAIT");
    assert_eq!(log.borrow().closed, [(id, CloseReason::Normal)]);
    assert_eq!(peer.engine.stats().aborts_on_data, 0);
}

/// A half-close (`shutdown(SHUT_WR)`) is not a close: data after our FIN is received.
#[test]
fn after_a_half_close_data_is_still_received() {
    let app = Scripted {
        greeting: b"hi".to_vec(),
        half_close_after_greeting: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let (mut peer, sa, id) = established(app);
    let fin_seq = sa.seq + 3u32;
    peer.send(from_peer(0, fin_seq + 1u32, sa.tsval(), b""));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    let out = peer.send(from_peer(0, fin_seq + 1u32, sa.tsval(), b"more"));
    assert!(out.iter().all(|s| !s.has(Flags::RST)), "{out:?}");
    assert_eq!(log.borrow().received, b"more");
    assert_eq!(peer.engine.stats().aborts_on_data, 0);
}

/// A close with data the app never read resets the connection (`<SEQ=SND.NXT><ACK=RCV.NXT>
/// <CTL=RST,ACK>`, Linux's tcp_send_active_reset), not a FIN.
#[test]
fn a_close_with_unread_data_sends_a_reset_not_a_fin() {
    let app = Scripted {
        stalled: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let (mut peer, sa, id) = established(app);
    peer.send(from_peer(0, sa.seq + 1u32, sa.tsval(), b"unread"));
    assert_eq!(peer.engine.buffers(id).map(|b| b.received), Some(6));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    peer.engine
        .with_io(peer.now, id, &mut tx, |_, _, io| io.close())
        .expect("connection");
    let out = parse_all(&tx);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, Flags::RST | Flags::ACK, "{out:?}");
    assert_eq!((out[0].seq, out[0].ack.0), (sa.seq + 1u32, 1007));
    assert_eq!(peer.engine.state(id), None);
    assert_eq!(log.borrow().closed, [(id, CloseReason::Aborted)]);
    assert_eq!(peer.engine.stats().aborts_on_close, 1);
}

/// The FIN-WAIT-2 timeout is for a fully closed connection only: a keepalive deadline armed
/// while ESTABLISHED that falls due after a half-close reached FIN-WAIT-2 does not end the
/// connection (Linux's `tcp_keepalive_timer` times out FIN-WAIT-2 only for an orphaned
/// socket). Keepalive and the FIN-WAIT-2 timeout are two timers.
#[test]
fn a_keepalive_deadline_does_not_time_out_a_half_closed_connection_in_fin_wait_2() {
    let mut cfg = server_config();
    cfg.listeners[0].keepalive = Some(xdptcp::tcp::Keepalive {
        idle: std::time::Duration::from_secs(10),
        interval: std::time::Duration::from_secs(5),
        count: 3,
    });
    let app = Scripted {
        greeting: b"hi".to_vec(),
        half_close_after_greeting: true,
        ..Scripted::default()
    };
    let log = app.log.clone();
    let mut peer = Peer::server(cfg, app);
    let sa = peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).expect("established");
    let fin_seq = sa.seq + 3u32;
    peer.send(from_peer(0, fin_seq + 1u32, sa.tsval(), b""));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    // Past the keepalive idle time and past the FIN-WAIT-2 timeout: still there, still reading.
    peer.run_timers(std::time::Duration::from_secs(90));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    assert_eq!(peer.engine.stats().fin_wait2_timeouts, 0);
    let out = peer.send(from_peer(0, fin_seq + 1u32, sa.tsval(), b"late"));
    assert!(out.iter().all(|s| !s.has(Flags::RST)), "{out:?}");
    assert_eq!(log.borrow().received, b"late");
}

/// A half-closed connection in FIN-WAIT-2 that its app then closes times out there, as one
/// closed before its FIN was acknowledged does (Linux's `tcp_close` in FIN-WAIT-2 arms
/// `tcp_fin_timeout`): a peer that never sends its FIN cannot hold it forever.
#[test]
fn a_half_closed_connection_closed_later_in_fin_wait_2_times_out_there() {
    let app = Scripted {
        greeting: b"hi".to_vec(),
        half_close_after_greeting: true,
        close_on_data: true,
        ..Scripted::default()
    };
    let (mut peer, sa, id) = established(app);
    let fin_seq = sa.seq + 3u32;
    peer.send(from_peer(0, fin_seq + 1u32, sa.tsval(), b""));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    // Half-closed: no timeout yet.
    peer.run_timers(std::time::Duration::from_secs(120));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    // The app reads this and closes.
    peer.send(from_peer(0, fin_seq + 1u32, sa.tsval(), b"bye"));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    peer.run_timers(std::time::Duration::from_secs(59));
    assert_eq!(peer.engine.state(id), Some(State::FinWait2));
    peer.run_timers(std::time::Duration::from_secs(2));
    assert_eq!(peer.engine.state(id), None);
    assert_eq!(peer.engine.stats().fin_wait2_timeouts, 1);
}
