//! The engine behind the XDP program's SYN cookies: when to ask for them (`auto` hysteresis),
//! and taking the third ACKs of handshakes whose SYN it never saw — from LISTEN, instead of a
//! half-open connection of the same tuple, and (time_wait.rs) through a TIME-WAIT entry. The
//! XDP program's SYN-ACK is the `always`-mode engine's, byte for byte (tests/xdp_cookies.rs),
//! so a twin engine in `always` mode stands in for it here.

use std::time::Duration;

use xdptcp::stats::DropReason;
use xdptcp::tcp::{Config, Engine, SeqNumber, State, SynCookieMode};

use crate::util::*;

/// The XDP program in front of `p`'s engine: an `always`-mode twin with the same secret and
/// clock, whose answer to `syn` is the program's SYN-ACK.
pub fn xdp_syn_ack(p: &Peer<Scripted>, syn: Seg) -> Seg {
    let cfg = Config {
        syncookies: SynCookieMode::Always,
        ..p.engine.config().clone()
    };
    let mut twin = Engine::new(cfg, Scripted::default(), p.now);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    twin.receive(p.now, &p.frame(syn), &mut tx);
    let mut replies = parse_all(&tx);
    assert_eq!(replies.len(), 1, "one SYN-ACK: {replies:?}");
    replies.remove(0)
}

fn auto_peer(budget: usize) -> Peer<Scripted> {
    let mut cfg = server_config();
    cfg.max_half_open = budget;
    Peer::server(cfg, Scripted::default())
}

/// Fills the half-open table with `n` SYNs from ports 50000 on.
fn half_open(p: &mut Peer<Scripted>, n: u16) {
    for i in 0..n {
        p.port = 50_000 + i;
        assert!(p.send(linux_syn(7000)).remove(0).is(SYN_ACK));
    }
    p.port = PEER_PORT;
}

#[test]
fn auto_mode_asks_for_xdp_cookies_once_the_half_open_budget_is_full_and_until_the_flood_ends() {
    let mut p = auto_peer(4);
    let t0 = p.now;
    assert!(!p.engine.poll_cookie_mode(t0, 0), "no flood, no cookies");
    half_open(&mut p, 4);
    assert!(p.engine.poll_cookie_mode(p.now, 0), "budget full");
    // The flooder's kernel resets our half-open connections: the table drains at once, but
    // the program keeps answering a flood's worth of SYNs, so the mode holds.
    for i in 0..4u16 {
        p.port = 50_000 + i;
        p.send(seg(RST).seq(7001));
    }
    assert_eq!(p.engine.stats().in_state(State::SynReceived), 0);
    let mut answered = 0;
    for step in 1..=10 {
        p.advance(Duration::from_millis(500));
        answered += 1000;
        assert!(p.engine.poll_cookie_mode(p.now, answered), "step {step}");
    }
    // The flood stops: within one two-second window the mode goes off.
    let mut off_after = None;
    for step in 1..=10 {
        p.advance(Duration::from_millis(500));
        if !p.engine.poll_cookie_mode(p.now, answered) {
            off_after = Some(step);
            break;
        }
    }
    let steps = off_after.expect("cookie mode never went off after the flood");
    assert!(steps <= 8, "off after {steps} half-seconds");
    // And a handful of SYNs afterwards does not bring it back.
    assert!(!p.engine.poll_cookie_mode(p.now, answered + 3));
}

#[test]
fn always_mode_always_asks_never_mode_never_and_draining_stops_asking() {
    for (mode, want) in [
        (SynCookieMode::Always, true),
        (SynCookieMode::Never, false),
        (SynCookieMode::Auto, false),
    ] {
        let mut cfg = server_config();
        cfg.syncookies = mode;
        let mut p = Peer::server(cfg, Scripted::default());
        assert_eq!(p.engine.poll_cookie_mode(p.now, 0), want, "{mode:?}");
        p.engine.stop_accepting();
        assert!(
            !p.engine.poll_cookie_mode(p.now, 0),
            "{mode:?} while draining"
        );
    }
}

#[test]
fn auto_mode_takes_the_acks_of_xdp_cookies_only_while_they_are_being_sent() {
    let mut p = auto_peer(4096);
    let sa = xdp_syn_ack(&p, linux_syn(1000));
    let r = p.send(cookie_ack(1000, &sa));
    assert!(
        r.len() == 1 && r[0].is(RST),
        "not in cookie mode: reset {r:?}"
    );
    assert_eq!(p.engine.find(&p.tuple()), None);

    let mut p = auto_peer(1);
    half_open(&mut p, 1);
    assert!(p.engine.poll_cookie_mode(p.now, 0));
    let sa = xdp_syn_ack(&p, linux_syn(1000));
    let r = p.send(cookie_ack(1000, &sa));
    assert!(r.iter().all(|s| !s.is(RST)), "{r:?}");
    let id = p
        .engine
        .find(&p.tuple())
        .expect("established from the XDP cookie");
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.stats().cookies_validated, 1);
    assert_eq!(
        p.engine.stats().syns_received,
        1,
        "only the half-open filler's SYN"
    );
}

#[test]
fn a_half_open_connection_gives_way_to_the_ack_of_an_xdp_cookie_for_its_tuple() {
    let mut p = auto_peer(1);
    // Our SYN-ACK is lost; the retransmitted SYN is answered by the XDP program.
    let ours = p.send(linux_syn(1000)).remove(0);
    assert!(
        p.engine.poll_cookie_mode(p.now, 0),
        "the budget of one is full"
    );
    let sa = xdp_syn_ack(&p, linux_syn(1000));
    assert_ne!(sa.seq, ours.seq);
    let r = p.send(cookie_ack(1000, &sa).data(b"GET"));
    assert!(r.iter().all(|s| !s.is(RST)), "{r:?}");
    let id = p.engine.find(&p.tuple()).expect("connection");
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_gauges(p.engine.stats(), &[(State::Established, 1)]);
    // Its sequence space is the cookie's: our next segment starts right after it.
    let ack = r.last().expect("the data is acknowledged");
    assert_eq!(ack.seq, sa.seq + 1u32);
    assert_eq!(ack.ack, SeqNumber(1004));
    // An ACK for our own SYN-ACK is still the half-open connection's business.
    let mut q = auto_peer(1);
    let ours = q.send(linux_syn(1000)).remove(0);
    assert!(q.engine.poll_cookie_mode(q.now, 0));
    q.send(cookie_ack(1000, &ours));
    let id = q.engine.find(&q.tuple()).expect("connection");
    assert_eq!(q.engine.state(id), Some(State::Established));
    assert_eq!(q.engine.stats().cookies_validated, 0);
}

#[test]
fn without_our_timestamps_a_timestamped_syn_still_gets_a_cookie_its_ack_validates() {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Always;
    cfg.timestamps = false;
    let mut p = Peer::server(cfg, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    assert_eq!(sa.options.timestamp, None, "{sa:?}");
    p.send(seg(ACK).seq(1001).ack(sa.seq + 1u32));
    assert!(p.engine.find(&p.tuple()).is_some());
    assert_eq!(p.engine.stats().dropped(DropReason::BadCookie), 0);
}

#[test]
fn an_xdp_cookie_made_a_moment_before_a_key_rotation_is_taken_after_it() {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Always;
    cfg.cookie_rotation = Duration::from_secs(2);
    let mut p = Peer::server(cfg, Scripted::default());
    let sa = xdp_syn_ack(&p, linux_syn(1000));
    p.advance(Duration::from_millis(2500));
    p.send(cookie_ack(1000, &sa));
    assert!(p.engine.find(&p.tuple()).is_some());
}
