//! The engine behind the XDP program's SYN cookies: when to ask for them (`auto` hysteresis),
//! and taking the third ACKs of handshakes whose SYN it never saw — from LISTEN, instead of a
//! half-open connection of the same tuple, and (time_wait.rs) through a TIME-WAIT entry. The
//! XDP program's SYN-ACK is the `always`-mode engine's, byte for byte (tests/xdp_cookies.rs),
//! so a twin engine in `always` mode stands in for it here. And a secret replaced while the
//! program answers SYNs: its key table ([`KeySchedule`]) never gets a secret before the engine.

use std::cell::RefCell;
use std::time::Duration;

use xdptcp::state::State;
use xdptcp::stats::DropReason;
use xdptcp::tcp::hash::Key;
use xdptcp::tcp::syncookie::epoch_key;
use xdptcp::tcp::{Config, Engine, Secret, SynCookieMode};
use xdptcp::wire::SeqNumber;
use xdptcp::xdp::key_schedule::{KeySchedule, KeySlots, SecretAck};

use crate::util::*;

/// The XDP program in front of `p`'s engine: an `always`-mode twin with the same secret and
/// clock, whose answer to `syn` is the program's SYN-ACK.
pub fn xdp_syn_ack(p: &Peer<Scripted>, syn: Seg) -> Seg {
    let secret = p.engine.config().cookie_secret;
    xdp_syn_ack_under(p, secret, syn)
}

/// [`xdp_syn_ack`] with the program's keys derived from `cookie_secret` (`None`: from the
/// engine's own secret).
fn xdp_syn_ack_under(p: &Peer<Scripted>, cookie_secret: Option<Secret>, syn: Seg) -> Seg {
    let cfg = Config {
        syncookies: SynCookieMode::Always,
        cookie_secret,
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

const OLD: Secret = Secret([0xa1; 32]);
const NEW: Secret = Secret([0xb2; 32]);

/// The XDP program's key table, in memory.
#[derive(Default)]
struct Slots(RefCell<[Option<(u64, Key)>; 2]>);

impl KeySlots for Slots {
    fn epoch_at(&self, epoch: u64) -> Option<u64> {
        self.0.borrow()[(epoch % 2) as usize].map(|(e, _)| e)
    }
    fn write(&self, epoch: u64, mac: &Key, _timestamp: &Key) {
        self.0.borrow_mut()[(epoch % 2) as usize] = Some((epoch, *mac));
    }
}

/// An `always`-mode engine sharing the secret [`OLD`], keys rotating every 10 s, whose app
/// greets every connection; the control thread's schedule of the program's key table.
fn rotating_peer() -> (Peer<Scripted>, KeySchedule, Slots) {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Always;
    cfg.cookie_rotation = Duration::from_secs(10);
    cfg.cookie_secret = Some(OLD);
    let app = Scripted {
        greeting: b"hello".to_vec(),
        ..Scripted::default()
    };
    let p = Peer::server(cfg, app);
    let mut schedule = KeySchedule::new(p.engine.config().cookie_keys(p.now));
    let slots = Slots::default();
    schedule.install(p.now, &slots);
    (p, schedule, slots)
}

/// A handshake from `port` answered by the program with the keys its table holds now, whose
/// third ACK reaches the engine `rtt` later: the engine takes it, and the connection's first
/// segment goes on from the SYN-ACK's TSval (RFC 7323 §5.4: one offset per connection).
/// Returns the secret the program used.
fn xdp_handshake(p: &mut Peer<Scripted>, slots: &Slots, port: u16, rtt: Duration) -> Secret {
    p.port = port;
    let epoch = p.engine.config().cookie_keys(p.now).epoch();
    let (e, key) = slots.0.borrow()[(epoch % 2) as usize].expect("a key in place");
    assert_eq!(e, epoch, "the program has the current epoch's key");
    let secret = [OLD, NEW]
        .into_iter()
        .find(|s| epoch_key(&s.0, epoch) == key)
        .expect("a known secret");
    let sa = xdp_syn_ack_under(p, Some(secret), linux_syn(1000));
    p.now = p.now + rtt;
    let r = p.send(cookie_ack(1000, &sa));
    assert!(
        r.iter().all(|s| !s.is(RST)),
        "port {port}: a cookie of the program refused: {r:?}"
    );
    let greeting = r
        .iter()
        .find(|s| s.payload == b"hello")
        .unwrap_or_else(|| panic!("port {port}: no connection: {r:?}"));
    let gap = greeting.tsval().wrapping_sub(sa.tsval());
    assert!(
        gap <= 64 + rtt.as_millis() as u32,
        "port {port}: TSval {} after the SYN-ACK's {}: another timestamp offset",
        greeting.tsval(),
        sa.tsval()
    );
    secret
}

/// Half a second into the epoch, the secret file changes: the control thread tells the worker
/// [`NEW`] (its message and the acknowledgement it owes).
fn new_secret_told(
    p: &mut Peer<Scripted>,
    schedule: &mut KeySchedule,
    slots: &Slots,
) -> (Secret, SecretAck) {
    p.now = p.now + Duration::from_millis(500);
    schedule.replace_secret(NEW);
    schedule
        .poll(p.now, slots, 1)
        .tell
        .expect("the worker is told")
}

#[test]
fn a_replaced_secret_reaches_the_xdp_program_only_after_the_engine_and_no_cookie_is_refused() {
    let (mut p, mut schedule, slots) = rotating_peer();
    let rtt = Duration::from_millis(1);
    let (secret, ack) = new_secret_told(&mut p, &mut schedule, &slots);
    // The worker has not read its control message yet: the program still uses the old secret.
    assert_eq!(xdp_handshake(&mut p, &slots, 41_000, rtt), OLD);
    p.engine.replace_cookie_secret(p.now, secret);
    ack.done();
    // The old secret's cookies made before the control thread sees the acknowledgement, and
    // after it until the program switches, are taken with the old secret's timestamp offsets.
    assert_eq!(xdp_handshake(&mut p, &slots, 41_001, rtt), OLD);
    let switch = schedule.poll(p.now, &slots, 1).switch_at.expect("switched");
    assert_eq!(xdp_handshake(&mut p, &slots, 41_002, rtt), OLD);
    let mut used = Vec::new();
    for step in 0..4u16 {
        p.advance(Duration::from_millis(9_990));
        schedule.poll(p.now, &slots, 1);
        // The last moment of an epoch: the ACK arrives in the next one.
        used.push(xdp_handshake(
            &mut p,
            &slots,
            41_010 + step,
            Duration::from_millis(20),
        ));
    }
    let switched = p.engine.config().cookie_keys(p.now).epoch() >= switch;
    assert!(switched && used.last() == Some(&NEW), "{used:?}");
    assert_eq!(p.engine.stats().dropped(DropReason::BadCookie), 0);
    assert_eq!(p.engine.stats().cookies_validated, 7);
}

#[test]
fn a_late_acknowledgement_keeps_the_program_on_the_old_secrets_next_epoch_key_which_the_engine_takes()
 {
    let (mut p, mut schedule, slots) = rotating_peer();
    let (secret, ack) = new_secret_told(&mut p, &mut schedule, &slots);
    p.engine.replace_cookie_secret(p.now, secret);
    ack.done();
    // The control thread does not look again before the next epoch has nearly passed: the
    // program makes that epoch's cookies under the old secret's key, written ahead of time,
    // and the last of them are ACKed in the epoch after.
    p.now = p.now + Duration::from_millis(19_490);
    assert_eq!(
        xdp_handshake(&mut p, &slots, 42_000, Duration::from_millis(20)),
        OLD
    );
    assert_eq!(schedule.poll(p.now, &slots, 1).switch_at, Some(102));
    assert_eq!(
        xdp_handshake(&mut p, &slots, 42_001, Duration::from_millis(1)),
        NEW
    );
    assert_eq!(p.engine.stats().dropped(DropReason::BadCookie), 0);
}
