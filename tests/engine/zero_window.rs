//! Flow control at a stalled reader: the window closes, persist probes (RFC 9293 §3.8.6.1)
//! keep the connection open, and data flows again with a window update when the app reads.

use std::time::Duration;

use xdptcp::app::CloseReason;
use xdptcp::sim::{Dir, LinkConfig, configs};
use xdptcp::state::State;

use crate::netsim::{Bulk, Net, Server};

#[test]
fn a_stalled_reader_closes_the_window_and_answered_probes_keep_the_connection_open() {
    let (ccfg, mut scfg) = configs(30);
    scfg.recv_buffer = 64 * 1024;
    let len = 256 * 1024;
    let client = Bulk::new(len, false);
    let server = Server::new(false, Some(len));
    let (ctally, stally, stalled, offers) = (
        client.tally.clone(),
        server.tally.clone(),
        server.stalled.clone(),
        server.offers.clone(),
    );
    stalled.set(true);
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    let id = net.connect(42000);
    net.run_for(Duration::from_secs(600));

    // The window closed once the receive buffer was full.
    let zero = net.sent(Dir::ToClient, |s| s.window == 0 && s.ack != s.seq);
    assert!(!zero.is_empty(), "a zero window was advertised");
    let closed_at = zero[0].at;
    let buffered = offers.borrow().last().unwrap().1;
    assert!(
        buffered > 60 * 1024 && buffered <= 64 * 1024,
        "the buffer filled: {buffered}"
    );
    // Ten minutes of probes, every one answered, and the connection is still there.
    let st = net.p.client.stats();
    assert!(st.window_probes >= 5, "{st}");
    assert_eq!(st.timeouts, 0);
    let probes = net.sent(Dir::ToServer, |s| s.at > closed_at && !s.is_data());
    let answers = net.sent(Dir::ToClient, |s| s.at > closed_at);
    assert!(
        answers.len() * 2 >= probes.len(),
        "probes answered: {} probes, {} answers",
        probes.len(),
        answers.len()
    );
    assert_eq!(net.p.client.state(id), Some(State::Established));
    assert_eq!(net.p.server.stats().in_state(State::Established), 1);
    assert!(ctally.borrow().closed.is_empty());
    assert_eq!(stally.borrow().received, 0);

    // The app reads again: the next event for the connection (a probe) re-offers the data,
    // a window update goes out, and the rest of the stream follows.
    stalled.set(false);
    let resumed = net.p.now;
    assert!(net.run_until(Duration::from_secs(300), |_| stally.borrow().completed == 1));
    let update = net.sent(Dir::ToClient, |s| s.at >= resumed && s.window > 0);
    assert!(!update.is_empty(), "a window update");
    assert!(
        update[0].at - resumed <= Duration::from_secs(121),
        "within one (backed-off, at most 120 s) probe interval: {:?}",
        update[0].at - resumed
    );
    assert_eq!(stally.borrow().mismatched, 0);
    net.run_for(Duration::from_secs(5));
    assert_eq!(ctally.borrow().closed, [CloseReason::Normal]);
}

#[test]
fn data_waits_behind_a_zero_window_without_any_timeout_for_an_hour() {
    // Probes back off to the 120 s maximum but the retry limit never hits while the peer
    // answers them.
    let (ccfg, mut scfg) = configs(31);
    scfg.recv_buffer = 16 * 1024;
    let client = Bulk::new(64 * 1024, false);
    let server = Server::new(false, Some(64 * 1024));
    let stalled = server.stalled.clone();
    stalled.set(true);
    let mut net = Net::new(ccfg, client, scfg, server, LinkConfig::default());
    let id = net.connect(42001);
    net.run_for(Duration::from_secs(3600));
    let probes = net.sent(Dir::ToServer, |s| {
        !s.is_data() && s.at > net.p.now - Duration::from_secs(600)
    });
    assert!(
        (4..=6).contains(&probes.len()),
        "probes every 120 s at the end: {}",
        probes.len()
    );
    assert_eq!(net.p.client.state(id), Some(State::Established));
    assert_eq!(net.p.client.stats().timeouts, 0);
}
