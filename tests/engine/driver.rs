//! A driver acting on a connection from outside its events: `Engine::wake` (an app's
//! scheduled work) and `Engine::shutdown`; and what the connections cost (`Engine::memory`).

use std::time::Duration;

use xdptcp::app::{App, Io, Shutdown};
use xdptcp::state::State;
use xdptcp::tcp::ConnId;
use xdptcp::time::Instant;

use crate::util::*;

/// Writes "due=<µs>" at each wake; records the data it receives.
#[derive(Default)]
struct Ticker {
    received: Vec<u8>,
}

impl App for Ticker {
    type State = ();

    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        self.received.extend_from_slice(data);
        data.len()
    }

    fn on_peer_closed(&mut self, _: &mut (), _: &mut Io<'_>) {}

    fn on_wake(&mut self, _: &mut (), io: &mut Io<'_>, due: Instant) {
        io.write(format!("due={}", due.total_micros()).as_bytes());
    }
}

/// The peer's SYN-ACK (ISN 699) to the engine's `syn`.
fn syn_ack(syn: &Seg) -> Seg {
    seg(SYN_ACK)
        .seq(700)
        .ack(syn.seq + 1u32)
        .mss(1460)
        .ts(PEER_TS, syn.tsval())
}

/// A client engine connected to a fake peer: (peer, connection, the peer's next sequence).
fn established() -> (Peer<Ticker>, ConnId, u32) {
    let mut p = Peer::client(client_config(), Ticker::default(), 5000);
    let (id, syn) = p.connect();
    let replies = p.send(syn_ack(&syn));
    assert!(replies.iter().all(|r| r.flags == ACK), "{replies:?}");
    (p, id, 701)
}

fn wake(p: &mut Peer<Ticker>, id: ConnId, due: Instant) -> (bool, Vec<Seg>) {
    let mut tx: Vec<Vec<u8>> = Vec::new();
    let woke = p.engine.wake(p.now, id, due, &mut tx);
    (woke, parse_all(&tx))
}

#[test]
fn a_wake_of_an_established_connection_sends_what_the_app_wrote_at_once() {
    let (mut p, id, _) = established();
    let due = p.now - Duration::from_millis(3);
    let (woke, sent) = wake(&mut p, id, due);
    assert!(woke);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].payload,
        format!("due={}", due.total_micros()).as_bytes()
    );
}

#[test]
fn data_written_at_a_wake_in_syn_sent_goes_out_after_the_handshake() {
    // RFC 9293 §3.10.2, SEND in SYN-SENT: "queue the data for transmission after entering
    // ESTABLISHED".
    let mut p = Peer::client(client_config(), Ticker::default(), 5001);
    let (id, syn) = p.connect();
    let now = p.now;
    let (woke, sent) = wake(&mut p, id, now);
    assert!(woke);
    assert!(sent.is_empty(), "nothing before the handshake: {sent:?}");
    assert_eq!(p.engine.state(id), Some(State::SynSent));
    let replies = p.send(syn_ack(&syn));
    let data: Vec<&Seg> = replies.iter().filter(|s| !s.payload.is_empty()).collect();
    assert_eq!(data.len(), 1, "{replies:?}");
    assert!(data[0].payload.starts_with(b"due="));
}

#[test]
fn a_wake_or_a_shutdown_of_no_connection_is_refused() {
    let (mut p, id, _) = established();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    assert!(!p.engine.wake(p.now, ConnId(id.0 + 7), p.now, &mut tx));
    assert!(
        !p.engine
            .shutdown(p.now, ConnId(id.0 + 7), Shutdown::Abort, &mut tx)
    );
    assert!(tx.is_empty());
}

#[test]
fn a_half_close_from_the_driver_sends_a_fin_and_keeps_receiving() {
    let (mut p, id, peer_seq) = established();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    assert!(p.engine.shutdown(p.now, id, Shutdown::Write, &mut tx));
    let sent = parse_all(&tx);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].flags.contains(FIN));
    assert_eq!(p.engine.state(id), Some(State::FinWait1));
    let fin = &sent[0];
    let replies = p.send(
        seg(PSH_ACK)
            .seq(peer_seq)
            .ack(fin.seq + 1u32)
            .ts(PEER_TS, fin.tsval())
            .data(b"the answer"),
    );
    assert!(
        replies.iter().all(|r| !r.flags.contains(RST)),
        "{replies:?}"
    );
    assert_eq!(p.engine.app().received, b"the answer");
    assert_eq!(p.engine.state(id), Some(State::FinWait2));
}

#[test]
fn an_abort_from_the_driver_resets_and_removes_the_connection() {
    let (mut p, id, _) = established();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    assert!(p.engine.shutdown(p.now, id, Shutdown::Abort, &mut tx));
    let sent = parse_all(&tx);
    assert!(sent.len() == 1 && sent[0].flags.contains(RST), "{sent:?}");
    assert_eq!(p.engine.state(id), None);
    assert_eq!(p.engine.connections(), 0);
}

#[test]
fn memory_counts_each_connection_and_its_buffers() {
    let mut server = server_peer(Scripted {
        stalled: true,
        ..Scripted::default()
    });
    assert_eq!(server.engine.memory().connections, 0);
    server.port = 30000;
    let first = server.handshake(1000);
    for port in 1..100u16 {
        server.port = 30000 + port;
        server.handshake(1000);
    }
    let idle = server.engine.memory();
    assert_eq!(idle.connections, 100);
    let per_conn = idle.bytes_per_connection();
    assert!(
        (200.0..1024.0).contains(&per_conn),
        "{per_conn} B per idle connection"
    );
    assert!(
        idle.allocated_bytes >= idle.connection_bytes / 2,
        "{idle:?}"
    );
    // A stalled reader keeps what arrives: the receive buffer counts.
    server.port = 30000;
    server.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(first.seq + 1u32)
            .ts(PEER_TS, first.tsval())
            .data(&[7; 1000]),
    );
    let busy = server.engine.memory();
    assert!(
        busy.connection_bytes >= idle.connection_bytes + 1000,
        "{busy:?} vs {idle:?}"
    );
}

#[test]
fn an_idle_connection_holds_no_buffer_once_its_data_is_consumed_and_acknowledged() {
    let mut server = server_peer(Scripted {
        echo: true,
        ..Scripted::default()
    });
    let sa = server.handshake(1000);
    let id = server.engine.find(&server.tuple()).expect("established");
    let idle = server.engine.connection_bytes(id).unwrap();
    let echoed = server.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS, sa.tsval())
            .data(&[7; 300]),
    );
    let data = echoed
        .iter()
        .find(|s| !s.payload.is_empty())
        .expect("echoed");
    assert!(
        server.engine.connection_bytes(id).unwrap() >= idle + 300,
        "in flight"
    );
    server.send(
        seg(ACK)
            .seq(1301)
            .ack(data.seq + data.payload.len())
            .ts(PEER_TS, data.tsval()),
    );
    assert_eq!(
        server.engine.connection_bytes(id),
        Some(idle),
        "the drained buffers went back to the allocator"
    );
}
