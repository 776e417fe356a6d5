//! User calls from outside an event (`Engine::listen`, `unlisten`, `with_io`, `buffers`): what a
//! socket layer does at arbitrary times reaches the wire exactly as a callback would.

use std::net::IpAddr;

use xdptcp::app::{App, Io};
use xdptcp::state::State;
use xdptcp::tcp::{Buffers, Config, Listener};
use xdptcp::time::Instant;
use xdptcp::wire::tcp::Flags;

use crate::util::*;

/// An app that never acts on its own and consumes only what `budget` allows.
#[derive(Default)]
struct Passive {
    budget: usize,
    taken: Vec<u8>,
}

impl App for Passive {
    type State = ();

    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        let n = data.len().min(self.budget);
        self.budget -= n;
        self.taken.extend_from_slice(&data[..n]);
        n
    }

    fn on_peer_closed(&mut self, _: &mut (), _: &mut Io<'_>) {}
}

fn no_listener() -> Config {
    Config {
        listeners: Vec::new(),
        ..server_config()
    }
}

fn listener() -> Listener {
    Listener {
        addr: Some(IpAddr::V4(ENGINE_ADDR)),
        port: PORT,
        keepalive: None,
        fastopen: None,
        options: Default::default(),
    }
}

#[test]
fn a_listener_added_at_run_time_accepts_and_a_removed_one_no_longer_does() {
    let mut peer = Peer::server(no_listener(), Passive::default());
    assert!(peer.send(seg(SYN).seq(100)).is_empty(), "no listener yet");
    assert!(peer.engine.listen(listener()));
    assert!(!peer.engine.listen(listener()), "the same listener twice");
    assert_eq!(peer.engine.stats().in_state(State::Listen), 1);
    peer.handshake(1000);
    assert_eq!(peer.engine.connections(), 1);

    assert!(peer.engine.unlisten(Some(IpAddr::V4(ENGINE_ADDR)), PORT));
    assert!(!peer.engine.unlisten(Some(IpAddr::V4(ENGINE_ADDR)), PORT));
    assert_eq!(peer.engine.stats().in_state(State::Listen), 0);
    peer.port += 1;
    assert!(peer.send(seg(SYN).seq(100)).is_empty(), "no longer served");
    assert_eq!(peer.engine.connections(), 1, "the accepted one lives on");
}

#[test]
fn with_io_writes_and_closes_outside_a_callback_and_buffers_tracks_unread_data() {
    let mut peer = Peer::server(server_config(), Passive::default());
    let sa = peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).expect("established");
    let ts = |s: &Seg| s.tsval();
    let tsval = ts(&sa);

    // Data the app does not take stays in the engine and shrinks the advertised window.
    let data = seg(ACK)
        .seq(1001)
        .ack(sa.seq + 1u32)
        .ts(PEER_TS, tsval)
        .data(&[7; 100]);
    peer.send(data);
    let b = peer.engine.buffers(id).unwrap();
    assert_eq!(b.received, 100);
    assert_eq!((b.send, b.unsent), (0, 0));

    // A write at an arbitrary time goes out at once.
    let mut tx: Vec<Vec<u8>> = Vec::new();
    let n = peer
        .engine
        .with_io(peer.now, id, &mut tx, |_, _, io| io.write(b"hello"))
        .unwrap();
    assert_eq!(n, 5);
    let out = parse_all(&tx);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].payload, b"hello");
    assert_eq!(out[0].ack.0, 1101, "it carries the ACK of the data");
    let b: Buffers = peer.engine.buffers(id).unwrap();
    assert_eq!((b.send, b.unsent), (5, 0));

    // Reading is a budget granted before the engine offers the data again.
    tx.clear();
    peer.engine
        .with_io(peer.now, id, &mut tx, |app, _, _| app.budget = 60)
        .unwrap();
    assert_eq!(peer.engine.app().taken.len(), 60);
    assert_eq!(peer.engine.buffers(id).unwrap().received, 40);

    // Close from outside, everything read: a FIN follows the data.
    tx.clear();
    peer.engine
        .with_io(peer.now, id, &mut tx, |app, _, _| app.budget = 100)
        .unwrap();
    assert_eq!(peer.engine.buffers(id).unwrap().received, 0);
    tx.clear();
    peer.engine
        .with_io(peer.now, id, &mut tx, |_, _, io| io.close())
        .unwrap();
    let out = parse_all(&tx);
    assert!(
        out.iter().any(|s| s.flags.contains(Flags::FIN)),
        "a FIN: {out:?}"
    );
    assert_eq!(peer.engine.state(id), Some(State::FinWait1));
    assert_eq!(peer.engine.buffers(id).unwrap().send_space, 0);
}

#[test]
fn with_io_abort_sends_a_reset_and_removes_the_connection() {
    let mut peer = Peer::server(server_config(), Passive::default());
    peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).unwrap();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    peer.engine
        .with_io(peer.now, id, &mut tx, |_, _, io| io.abort())
        .unwrap();
    let out = parse_all(&tx);
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.contains(Flags::RST), "{out:?}");
    // The window we advertise (256 KiB at scale 7), as Linux's tcp_send_active_reset.
    assert_eq!(out[0].window, 2048, "{out:?}");
    assert_eq!(peer.engine.state(id), None);
    assert!(
        peer.engine
            .with_io(peer.now, id, &mut tx, |_, _, _| ())
            .is_none()
    );
    assert!(peer.engine.buffers(id).is_none());
}

#[test]
fn delete_in_syn_sent_sends_nothing_and_forgets_the_connection() {
    let mut peer = Peer::client(client_config(), Passive::default(), 41000);
    let (id, syn) = peer.connect();
    assert!(syn.is(SYN));
    assert!(peer.engine.delete(id));
    assert_eq!(peer.engine.state(id), None);
    assert!(!peer.engine.delete(id));
    assert!(
        peer.run_timers(std::time::Duration::from_secs(10))
            .is_empty(),
        "no RST, no SYN retransmission"
    );
}

#[test]
fn set_keepalive_probes_an_idle_established_connection_and_off_stops_it() {
    use std::time::Duration;
    use xdptcp::tcp::Keepalive;
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        count: 3,
    };
    let mut peer = Peer::server(server_config(), Passive::default());
    let sa = peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).unwrap();
    assert!(
        peer.run_timers(Duration::from_secs(60)).is_empty(),
        "off by default"
    );

    let on_at = peer.now;
    assert!(peer.engine.set_keepalive(peer.now, id, Some(ka)));
    let sent = peer.run_timers(Duration::from_secs(17));
    let probes: Vec<Instant> = sent.iter().map(|(at, _)| *at).collect();
    assert_eq!(
        probes,
        vec![
            on_at + Duration::from_secs(10),
            on_at + Duration::from_secs(12),
            on_at + Duration::from_secs(14),
            on_at + Duration::from_secs(16),
        ],
        "idle, then every interval, then the abort: {sent:?}"
    );
    for (_, p) in &sent[..3] {
        assert_eq!(p.seq, sa.seq, "SND.NXT - 1");
        assert!(p.payload.is_empty());
    }
    assert!(sent[3].1.flags.contains(Flags::RST), "{sent:?}");
    assert_eq!(peer.engine.state(id), None);

    // Another connection, keepalive on then off: silence.
    peer.port += 1;
    peer.handshake(5000);
    let id = peer.engine.find(&peer.tuple()).unwrap();
    assert!(peer.engine.set_keepalive(peer.now, id, Some(ka)));
    assert!(peer.engine.set_keepalive(peer.now, id, None));
    assert!(peer.run_timers(Duration::from_secs(60)).is_empty());
}

#[test]
fn a_recycled_engine_forgets_its_connections_and_behaves_as_new() {
    let mut peer = Peer::server(server_config(), Passive::default());
    let first = peer.handshake(1000);
    assert_eq!(peer.engine.connections(), 1);
    let now = peer.now;
    let engine = std::mem::replace(
        &mut peer.engine,
        xdptcp::tcp::Engine::new(no_listener(), Passive::default(), now),
    );
    peer.engine = engine.recycle(server_config(), now);
    assert_eq!(peer.engine.connections(), 0);
    assert_eq!(peer.engine.timer_entries(), 0);
    assert_eq!(peer.engine.stats().rx_frames, 0);
    assert_eq!(peer.engine.stats().in_state(State::Listen), 1);
    // The same SYN at the same time gets the same SYN-ACK as from a new engine.
    peer.now = Instant::from_secs(1000);
    let again = peer.handshake(1000);
    assert_eq!(again.seq, first.seq);
}

#[test]
fn a_segment_for_a_port_nobody_listens_on_is_reset_only_if_the_engine_owns_every_port() {
    let mut peer = Peer::server(no_listener(), Passive::default());
    assert!(
        peer.send(seg(SYN).seq(100)).is_empty(),
        "not served: dropped"
    );
    let owner = Config {
        reset_unserved: true,
        ..no_listener()
    };
    let mut peer = Peer::server(owner, Passive::default());
    let replies = peer.send(seg(SYN).seq(100));
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].flags.contains(Flags::RST) && replies[0].flags.contains(Flags::ACK));
    assert_eq!(replies[0].ack.0, 101);
    let replies = peer.send(seg(ACK).seq(5).ack(xdptcp::wire::SeqNumber(777)));
    assert_eq!(replies.len(), 1);
    assert_eq!((replies[0].flags, replies[0].seq.0), (Flags::RST, 777));
    assert!(
        peer.send(seg(RST).seq(5)).is_empty(),
        "never a RST for a RST"
    );
}
