//! Many connections over a bad link: every byte arrives, exactly once, in order, and the
//! simulation is deterministic.

use std::time::{Duration, Instant as WallClock};

use xdptcp::app::CloseReason;
use xdptcp::sim::{LinkConfig, Pair, configs};

use crate::netsim::{Bulk, Server};

const LOSSY: LinkConfig = LinkConfig {
    loss: 0.1,
    duplicate: 0.02,
    reorder: 0.05,
    reorder_delay: Duration::from_millis(3),
    delay: Duration::from_millis(1),
    seed: 1,
    mtu: 1500,
};

/// `conns` connections each echo `len` bytes over `link`; returns the pair when every one has
/// finished (or panics after `limit` of virtual time).
fn echo_many(conns: u16, len: usize, link: LinkConfig, limit: Duration) -> Pair<Bulk, Server> {
    let (ccfg, scfg) = configs(link.seed);
    let client = Bulk::new(len, true);
    let server = Server::new(true, None);
    let (ctally, stally) = (client.tally.clone(), server.tally.clone());
    let mut p = Pair::new(ccfg, client, scfg, server, link);
    for i in 0..conns {
        p.connect(20_000 + i).expect("connect");
    }
    let deadline = p.now + limit;
    let done = p.run_until(deadline, |_| {
        ctally.borrow().closed.len() == usize::from(conns)
            && stally.borrow().closed.len() == usize::from(conns)
    });
    let (c, s) = (ctally.borrow(), stally.borrow());
    assert!(
        done,
        "after {limit:?}: client {c:?}\nserver {s:?}\nclient {}\nserver {}",
        p.client.stats(),
        p.server.stats()
    );
    assert_eq!(c.connected, u64::from(conns));
    assert_eq!(c.completed, u64::from(conns), "every echo came back whole");
    assert_eq!(c.mismatched, 0, "byte-exact");
    assert_eq!(c.received, u64::from(conns) * len as u64, "no byte twice");
    assert_eq!(s.received, u64::from(conns) * len as u64);
    assert_eq!(c.closed_with(CloseReason::Normal), usize::from(conns));
    assert_eq!(s.closed_with(CloseReason::Normal), usize::from(conns));
    drop((c, s));
    p
}

#[test]
fn a_thousand_connections_echo_64k_each_byte_exact_at_10_percent_loss() {
    let started = WallClock::now();
    let p = echo_many(1000, 64 * 1024, LOSSY, Duration::from_secs(3600));
    let (c, s) = (p.client.stats(), p.server.stats());
    assert_eq!(c.timeouts + s.timeouts, 0, "none aborted");
    assert!(c.fast_retransmits > 0 && s.fast_retransmits > 0);
    assert!(c.rto_retransmits > 0 && s.rto_retransmits > 0);
    assert!(p.lost[0] > 0 && p.lost[1] > 0);
    eprintln!(
        "1000 x 64 KiB echo at 10% loss: {:.1} s virtual, {:.2} s wall\n  client {c}\n  server {s}",
        (p.now - xdptcp::time::Instant::from_secs(1000)).as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_a_different_one() {
    let run = |seed| {
        echo_many(
            20,
            16 * 1024,
            LinkConfig { seed, ..LOSSY },
            Duration::from_secs(600),
        )
        .trace_hash
    };
    let a = run(7);
    assert_eq!(a, run(7), "deterministic");
    assert_ne!(a, run(8), "the seed matters");
}

/// The per-state gauges count exactly the live connections and the TIME-WAIT entries.
fn assert_gauges_add_up<A: xdptcp::app::App>(e: &xdptcp::tcp::Engine<A>, when: &str) {
    use xdptcp::state::State;
    let counted: u64 = State::ALL
        .iter()
        .filter(|s| **s != State::Listen)
        .map(|s| e.stats().in_state(*s))
        .sum();
    assert_eq!(
        counted,
        (e.connections() + e.time_wait_len()) as u64,
        "{when}: {}",
        e.stats()
    );
    assert_eq!(
        e.stats().in_state(State::TimeWait),
        e.time_wait_len() as u64,
        "{when}"
    );
}

#[test]
fn the_state_gauges_add_up_at_every_step_through_loss_and_time_wait_evictions() {
    let (mut ccfg, mut scfg) = configs(3);
    // A TIME-WAIT table smaller than the connections, so entries are evicted too.
    ccfg.max_time_wait = 8;
    scfg.max_time_wait = 8;
    let (client, server) = (Bulk::new(4096, true), Server::new(true, None));
    let ctally = client.tally.clone();
    let mut p = Pair::new(ccfg, client, scfg, server, LOSSY);
    for i in 0..40 {
        p.connect(30_000 + i).expect("connect");
    }
    let limit = p.now + Duration::from_secs(600);
    let mut steps = 0;
    while ctally.borrow().closed.len() < 40 && p.step(limit) {
        steps += 1;
        assert_gauges_add_up(&p.client, &format!("client, step {steps}"));
        assert_gauges_add_up(&p.server, &format!("server, step {steps}"));
    }
    assert_eq!(ctally.borrow().completed, 40);
    assert!(p.client.stats().time_wait_evicted + p.server.stats().time_wait_evicted > 0);
}
