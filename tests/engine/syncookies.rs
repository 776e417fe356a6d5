//! SYN cookies (RFC 4987 §3.6): modes, statelessness, validation of the third segment, the
//! options carried in the timestamp, secret rotation; and the stateful half-open path's
//! SYN-ACK retransmission.

use std::time::Duration;

use xdptcp::state::State;
use xdptcp::stats::DropReason;
use xdptcp::tcp::{Secret, SynCookieMode};
use xdptcp::wire::SeqNumber;

use crate::util::*;

fn cookie_peer(mode: SynCookieMode, app: Scripted) -> Peer<Scripted> {
    let mut cfg = server_config();
    cfg.syncookies = mode;
    Peer::server(cfg, app)
}

#[test]
fn always_mode_answers_a_syn_with_a_cookie_and_allocates_nothing() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    let r = p.send(linux_syn(1000));
    assert_eq!(r.len(), 1);
    assert!(r[0].is(SYN_ACK), "{r:?}");
    assert_eq!(r[0].ack, SeqNumber(1001));
    assert_eq!(p.engine.connections(), 0, "a cookie keeps no state");
    assert_eq!(p.engine.find(&p.tuple()), None);
    assert_eq!(p.engine.stats().cookies_sent, 1);
    assert_eq!(p.engine.stats().in_state(State::SynReceived), 0);
    assert_eq!(p.engine.next_deadline(), None, "no timer either");
}

#[test]
fn a_valid_cookie_ack_establishes_the_connection() {
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = cookie_peer(SynCookieMode::Always, app);
    let sa = p.send(linux_syn(1000)).remove(0);
    let r = p.send(cookie_ack(1000, &sa).data(b"GET"));
    assert!(r.iter().all(|s| !s.flags.contains(RST)), "{r:?}");
    let id = p.engine.find(&p.tuple()).expect("established");
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.stats().cookies_validated, 1);
    assert_eq!(p.engine.stats().passive_opens, 1);
    assert_gauges(p.engine.stats(), &[(State::Established, 1)]);
    assert_eq!(log.borrow().connected.len(), 1);
    assert_eq!(
        log.borrow().received,
        b"GET",
        "data on the cookie ACK is kept"
    );
}

#[test]
fn auto_mode_switches_to_cookies_once_max_half_open_entries_exist() {
    let mut cfg = server_config();
    cfg.max_half_open = 2;
    let mut p = Peer::server(cfg, Scripted::default());
    for port in [40001, 40002] {
        p.port = port;
        assert_eq!(p.send(linux_syn(1000)).len(), 1);
    }
    assert_eq!(p.engine.connections(), 2);
    assert_eq!(p.engine.stats().cookies_sent, 0);
    p.port = 40003;
    let r = p.send(linux_syn(1000));
    assert!(r[0].is(SYN_ACK));
    assert_eq!(
        p.engine.connections(),
        2,
        "the third SYN got a cookie, no state"
    );
    assert_eq!(p.engine.stats().cookies_sent, 1);
    // And the cookie completes.
    p.send(cookie_ack(1000, &r[0]));
    assert!(p.engine.find(&p.tuple()).is_some());
    assert_eq!(p.engine.stats().cookies_validated, 1);
}

#[test]
fn never_mode_drops_syns_beyond_the_half_open_budget() {
    let mut cfg = server_config();
    cfg.max_half_open = 2;
    cfg.syncookies = SynCookieMode::Never;
    let mut p = Peer::server(cfg, Scripted::default());
    for port in [40001, 40002] {
        p.port = port;
        assert_eq!(p.send(linux_syn(1000)).len(), 1);
    }
    p.port = 40003;
    let r = p.send(linux_syn(1000));
    recv_nothing!(r);
    assert_eq!(p.engine.stats().dropped(DropReason::HalfOpenFull), 1);
    assert_eq!(p.engine.connections(), 2);
    assert_eq!(p.engine.stats().cookies_sent, 0);
}

#[test]
fn never_mode_answers_a_stray_ack_with_a_reset_not_a_connection() {
    let mut p = cookie_peer(SynCookieMode::Never, Scripted::default());
    let r = p.send(seg(ACK).seq(1001).ack(SeqNumber(5555)));
    assert_eq!(r.len(), 1);
    assert!(r[0].is(RST) && r[0].seq == SeqNumber(5555), "{r:?}");
    assert_eq!(p.engine.connections(), 0);
}

/// Sends `ack` as the third segment and checks it is refused with `reason` and a RST.
fn assert_refused(p: &mut Peer<Scripted>, ack: Seg, reason: DropReason) {
    let expected_rst_seq = ack.ack;
    let before = p.engine.stats().dropped(reason);
    let r = p.send(ack);
    assert_eq!(
        p.engine.stats().dropped(reason),
        before + 1,
        "{}",
        p.engine.stats()
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].is(RST), "{r:?}");
    assert_eq!(r[0].seq, expected_rst_seq, "<SEQ=SEG.ACK><CTL=RST>");
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(p.engine.stats().cookies_validated, 0);
}

#[test]
fn a_forged_cookie_ack_is_refused_counted_and_reset() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    // No SYN at all: a blind ACK with a guessed cookie in the current slot's bits.
    let ack = seg(ACK).seq(1001).ack(SeqNumber(0x1234_5678));
    let slot = (p.now.total_micros() / 64_000_000) as u32;
    let guessed = ((slot & 0x3f) << 26) | 0x00ab_cdef;
    assert_refused(
        &mut p,
        ack.clone().ack(SeqNumber(guessed + 1)),
        DropReason::BadCookie,
    );
}

#[test]
fn a_stale_cookie_two_slots_later_is_refused_as_expired() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    p.now = p.now + Duration::from_secs(128);
    assert_refused(&mut p, cookie_ack(1000, &sa), DropReason::ExpiredCookie);
}

#[test]
fn a_cookie_from_the_previous_slot_is_still_accepted() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    p.now = p.now + Duration::from_secs(64);
    p.send(cookie_ack(1000, &sa));
    assert!(p.engine.find(&p.tuple()).is_some());
}

#[test]
fn a_cookie_ack_with_a_changed_ack_is_refused() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    let ack = cookie_ack(1000, &sa);
    let tampered = ack.clone().ack(ack.ack + 1u32);
    assert_refused(&mut p, tampered, DropReason::BadCookie);
    // The peer's ISN is covered too.
    let tampered = ack.clone().seq(1000 + 2);
    assert_refused(&mut p, tampered, DropReason::BadCookie);
}

#[test]
fn a_cookie_ack_with_changed_mss_bits_is_refused() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    let ack = cookie_ack(1000, &sa);
    for flip in [1u32 << 24, 1 << 25, 3 << 24] {
        let cookie = (ack.ack - 1u32).0 ^ flip;
        let tampered = ack.clone().ack(SeqNumber(cookie) + 1u32);
        assert_refused(&mut p, tampered, DropReason::BadCookie);
    }
}

#[test]
fn a_cookie_ack_with_changed_tsecr_option_bits_is_refused() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    let ack = cookie_ack(1000, &sa);
    let (val, ecr) = ack.options.timestamp.unwrap();
    for flip in [1u32, 1 << 3, 1 << 4, 1 << 5] {
        let tampered = ack.clone().ts(val, ecr ^ flip);
        assert_refused(&mut p, tampered, DropReason::BadCookie);
    }
    // Dropping the timestamp altogether loses the bits the MAC covered.
    let mut stripped = ack.clone();
    stripped.options.timestamp = None;
    assert_refused(&mut p, stripped, DropReason::BadCookie);
    // The genuine one still works afterwards.
    p.send(ack);
    assert!(p.engine.find(&p.tuple()).is_some());
}

#[test]
fn window_scale_and_sack_survive_the_cookie_path_in_the_timestamp() {
    let app = Scripted {
        greeting: vec![b'g'; 1000],
        ..Scripted::default()
    };
    let mut p = cookie_peer(SynCookieMode::Always, app);
    let sa = p.send(linux_syn(1000)).remove(0);
    assert_eq!(sa.options.window_scale, Some(7), "{sa:?}");
    assert!(sa.options.sack_permitted, "{sa:?}");
    assert!(sa.options.timestamp.is_some());
    // The peer's window field of 10 means 10 << 7 = 1280 bytes: the whole greeting fits.
    let r = p.send(cookie_ack(1000, &sa).win(10));
    let sent: usize = r.iter().map(|s| s.payload.len()).sum();
    assert_eq!(sent, 1000, "the peer's window is scaled: {r:?}");
    // Our own window is scaled by 7 too: 256 KiB >> 7.
    assert_eq!(r[0].window, ((256 * 1024) >> 7) as u16, "{r:?}");
    // SACK is on: out-of-order data is answered with a SACK block.
    let base = 1001u32;
    let r = p.send(
        seg(PSH_ACK)
            .seq(base + 100)
            .ack(sa.seq + 1001u32)
            .ts(PEER_TS + 2, 0)
            .data(b"later"),
    );
    let ack = r.last().expect("a duplicate ACK");
    assert_eq!(ack.options.sack_count, 1, "{ack:?}");
    assert_eq!(
        ack.options.sack_blocks[0],
        (SeqNumber(base + 100), SeqNumber(base + 105))
    );
}

#[test]
fn without_timestamps_the_cookie_syn_ack_offers_no_window_scale_or_sack() {
    let mut p = cookie_peer(SynCookieMode::Always, Scripted::default());
    let sa = p
        .send(seg(SYN).seq(1000).mss(1460).sack_perm().ws(7))
        .remove(0);
    assert_eq!(sa.options.window_scale, None, "{sa:?}");
    assert!(!sa.options.sack_permitted);
    assert_eq!(sa.options.timestamp, None);
    assert_eq!(sa.options.mss, Some(1460));
    p.send(cookie_ack(1000, &sa));
    assert!(p.engine.find(&p.tuple()).is_some());
}

#[test]
fn a_cookie_outlives_one_key_rotation_but_not_two() {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Always;
    cfg.cookie_rotation = Duration::from_secs(10);
    let mut p = Peer::server(cfg, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    p.advance(Duration::from_secs(10));
    p.send(cookie_ack(1000, &sa));
    assert!(
        p.engine.find(&p.tuple()).is_some(),
        "one rotation later: still valid"
    );

    p.port = 40001;
    let sa = p.send(linux_syn(2000)).remove(0);
    p.advance(Duration::from_secs(20));
    assert_refused_after_rotation(&mut p, cookie_ack(2000, &sa));
}

#[test]
fn a_replaced_secrets_cookies_stay_valid_for_two_more_rotation_epochs_only() {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Always;
    cfg.cookie_rotation = Duration::from_secs(10);
    let mut p = Peer::server(cfg, Scripted::default());
    let sa = p.send(linux_syn(1000)).remove(0);
    let now = p.now;
    p.engine.replace_cookie_secret(now, Secret([0x55; 32]));
    p.send(cookie_ack(1000, &sa));
    assert!(
        p.engine.find(&p.tuple()).is_some(),
        "the old secret still counts"
    );

    p.port = 40001;
    let sa = p.send(linux_syn(2000)).remove(0);
    let now = p.now;
    p.engine.replace_cookie_secret(now, Secret([0x43; 32]));
    p.advance(Duration::from_secs(30));
    assert_refused_after_rotation(&mut p, cookie_ack(2000, &sa));
}

fn assert_refused_after_rotation(p: &mut Peer<Scripted>, ack: Seg) {
    let conns = p.engine.connections();
    let r = p.send(ack);
    assert!(r.len() == 1 && r[0].is(RST), "{r:?}");
    assert_eq!(p.engine.stats().dropped(DropReason::BadCookie), 1);
    assert_eq!(p.engine.connections(), conns);
    assert_eq!(p.engine.find(&p.tuple()), None);
}

#[test]
fn half_open_syn_ack_is_retransmitted_with_backoff_then_dropped_after_synack_retries() {
    let mut p = server_peer(Scripted::default());
    let t0 = p.now;
    let first = p.send(linux_syn(1000)).remove(0);
    assert_eq!(p.engine.connections(), 1);
    let sent = p.run_timers(Duration::from_secs(120));
    let times: Vec<u64> = sent.iter().map(|(at, _)| (*at - t0).as_secs()).collect();
    // RTO 1 s doubling: +1, +3, +7, +15, +31; dropped at +63 (Linux tcp_synack_retries 5).
    assert_eq!(times, vec![1, 3, 7, 15, 31], "{sent:?}");
    for (_, s) in &sent {
        assert!(s.is(SYN_ACK));
        assert_eq!(s.seq, first.seq, "same ISN");
        assert_eq!(s.ack, SeqNumber(1001));
    }
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(p.engine.stats().syn_recv_timeouts, 1);
    assert_gauges(p.engine.stats(), &[]);
}

#[test]
fn half_open_entry_is_dropped_63_seconds_after_the_syn() {
    let mut p = server_peer(Scripted::default());
    p.send(linux_syn(1000));
    p.run_timers(Duration::from_secs(62));
    assert_eq!(p.engine.connections(), 1);
    p.run_timers(Duration::from_secs(2));
    assert_eq!(p.engine.connections(), 0);
}

#[test]
fn a_retransmitted_syn_gets_the_same_syn_ack_again() {
    let mut p = server_peer(Scripted::default());
    let a = p.send(linux_syn(1000)).remove(0);
    let b = p.send(linux_syn(1000));
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].is(SYN_ACK));
    assert_eq!(b[0].seq, a.seq);
    assert_eq!(p.engine.connections(), 1);
}

#[test]
fn auto_mode_checks_acks_as_cookies_only_while_cookies_are_being_sent() {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Auto;
    cfg.max_half_open = 0; // every SYN gets a cookie
    let mut p = Peer::server(cfg, Scripted::default());
    // No cookie sent yet: a stray ACK is a plain segment for no connection.
    let r = p.send(seg(ACK).seq(1001).ack(SeqNumber(5555)));
    assert!(r[0].is(RST), "{r:?}");
    assert_eq!(p.engine.stats().dropped(DropReason::BadCookie), 0);
    // Once a cookie went out, a forged ACK is a bad cookie.
    let sa = p.send(linux_syn(1000)).remove(0);
    assert_eq!(p.engine.stats().cookies_sent, 1);
    assert_refused(
        &mut p,
        seg(ACK).seq(1001).ack(sa.seq + 7u32),
        DropReason::BadCookie,
    );
    // Two slots (128 s) after the last cookie, ACKs are no longer taken for cookies.
    p.advance(Duration::from_secs(129));
    let r = p.send(seg(ACK).seq(1001).ack(sa.seq + 1u32));
    assert!(r[0].is(RST), "{r:?}");
    assert_eq!(p.engine.stats().dropped(DropReason::BadCookie), 1);
    assert_eq!(p.engine.stats().dropped(DropReason::ExpiredCookie), 0);
}

#[test]
fn data_after_a_cookie_handshake_is_answered_at_once() {
    let mut p = cookie_peer(
        SynCookieMode::Always,
        Scripted {
            echo: true,
            ..Scripted::default()
        },
    );
    // A cookie's TSval is up to 63 ms behind the clock (its low 6 bits carry the options):
    // the ACK's TSecr must not pass for an RTT sample of that size.
    p.now = p.now + Duration::from_millis(63);
    let sa = p.send(linux_syn(1000)).remove(0);
    p.now = p.now + Duration::from_millis(1);
    assert!(p.send(cookie_ack(1000, &sa)).is_empty());
    let r = p.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS + 2, sa.tsval())
            .data(b"ping"),
    );
    assert!(
        r.iter().any(|s| s.payload == b"ping"),
        "the echo goes out with the ACK, not after the delayed-ACK timer: {r:?}"
    );
}

#[test]
fn a_cookie_connection_continues_the_syn_acks_timestamps_on_the_same_offset() {
    let mut p = cookie_peer(
        SynCookieMode::Always,
        Scripted {
            echo: true,
            ..Scripted::default()
        },
    );
    let sa = p.send(linux_syn(1000)).remove(0);
    p.now = p.now + Duration::from_millis(5);
    assert!(p.send(cookie_ack(1000, &sa)).is_empty());
    let r = p.send(
        seg(PSH_ACK)
            .seq(1001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS + 2, sa.tsval())
            .data(b"ping"),
    );
    let echo = r.iter().find(|s| s.payload == b"ping").expect("the echo");
    // The SYN-ACK's TSval is the clock plus the tuple's offset, less up to 63 ms for the
    // option bits; the connection's clock runs on from it with the same offset.
    let ahead = echo.tsval().wrapping_sub(sa.tsval());
    assert!((5..=5 + 63).contains(&ahead), "{ahead} ms on");
}

/// A host of a group behind one balancer: its own random secret and monotonic clock (booted
/// `boot_s` seconds before the test's wall clock began), the group's cookie secret.
pub(crate) fn group_host(cookie_secret: [u8; 32], own: u8, boot_s: u64) -> Peer<Scripted> {
    let mut cfg = server_config();
    cfg.syncookies = SynCookieMode::Always;
    cfg.secret = Secret([own; 32]);
    cfg.cookie_secret = Some(Secret(cookie_secret));
    let mut p = Peer::server(cfg.clone(), Scripted::default());
    // The same wall-clock moment on both: `now` differs by the boot times, the offsets
    // (wall - monotonic) differ the other way.
    p.now = p.now + Duration::from_secs(boot_s);
    cfg.cookie_clock_offset_us = 5_000_000_000_000 - (boot_s as i64) * 1_000_000;
    p.engine = xdptcp::tcp::Engine::new(cfg, Scripted::default(), p.now);
    p
}

#[test]
fn hosts_sharing_a_cookie_secret_validate_each_others_cookies() {
    let shared = [0x5a; 32];
    let mut a = group_host(shared, 1, 0);
    let mut b = group_host(shared, 2, 777);
    let sa = a.send(linux_syn(1000)).remove(0);
    assert!(sa.is(SYN_ACK), "{sa:?}");
    // The balancer sends the third segment to the other host.
    let r = b.send(cookie_ack(1000, &sa));
    assert!(r.iter().all(|s| !s.flags.contains(RST)), "{r:?}");
    let id = b
        .engine
        .find(&b.tuple())
        .expect("established on the other host");
    assert_eq!(b.engine.state(id), Some(State::Established));
    assert_eq!(b.engine.stats().cookies_validated, 1);
    // A host outside the group (its own cookie secret) refuses it.
    let mut c = group_host([0x66; 32], 3, 777);
    assert_refused(&mut c, cookie_ack(1000, &sa), DropReason::BadCookie);
}
