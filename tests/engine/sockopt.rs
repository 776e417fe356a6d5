//! Per-connection socket options through the engine's API (Linux's `TCP_USER_TIMEOUT`, ...):
//! each one changes what goes on the wire as Linux's option does.

use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::wire::tcp::Flags;

use crate::util::*;

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
    let mut peer = server_peer(app);
    let sa = peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).expect("established");
    assert_eq!(peer.engine.user_timeout(id), None, "off by default");
    assert!(
        peer.engine
            .set_user_timeout(id, Some(Duration::from_secs(3)))
    );
    assert_eq!(peer.engine.user_timeout(id), Some(Duration::from_secs(3)));
    let sent_at = peer.now;
    let echo = peer.send(
        seg(Flags::ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS, sa.tsval())
            .data(b"ping"),
    );
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
    let mut peer = server_peer(Scripted {
        echo: true,
        ..Scripted::default()
    });
    let sa = peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).expect("established");
    assert!(
        peer.engine
            .set_user_timeout(id, Some(Duration::from_secs(3)))
    );
    assert!(peer.engine.set_user_timeout(id, None));
    peer.send(
        seg(Flags::ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS, sa.tsval())
            .data(b"ping"),
    );
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
    let mut peer = server_peer(app);
    let sa = peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).expect("established");
    assert!(
        peer.engine
            .set_user_timeout(id, Some(Duration::from_secs(5)))
    );
    // The data comes with a shut window: the echo waits behind it.
    let out = peer.send(
        seg(Flags::ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS, sa.tsval())
            .win(0)
            .data(b"ping"),
    );
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
