//! TCP Fast Open, server side (RFC 7413), as Linux does it: the cookie request, a valid
//! cookie's data delivered before the third ACK and the reply sent in SYN-RECEIVED, Linux's
//! fallbacks (a bad cookie, a full queue, a listener without Fast Open), the keys' rotation,
//! hosts that share a cookie secret, and Fast Open while SYN cookies answer other SYNs.

use std::time::Duration;

use xdptcp::app::App;
use xdptcp::app::http::{Http, HttpConfig};
use xdptcp::state::State;
use xdptcp::tcp::{FastOpen, SynCookieMode};
use xdptcp::wire::SeqNumber;
use xdptcp::wire::tcp::FastOpenOption;

use crate::util::*;

/// A server whose listener serves Fast Open with a queue of `queue`.
fn fastopen_config(queue: u32) -> xdptcp::tcp::Config {
    let mut cfg = server_config();
    cfg.listeners[0].fastopen = Some(FastOpen::with_queue(queue));
    cfg
}

fn fastopen_peer<A: App>(queue: u32, app: A) -> Peer<A> {
    Peer::server(fastopen_config(queue), app)
}

/// A Linux SYN from `isn` with the Fast Open option `fo` and `data`.
fn tfo_syn(isn: u32, fo: Option<FastOpenOption>, data: &[u8]) -> Seg {
    let mut s = linux_syn(isn).data(data);
    s.options.fast_open = fo;
    s
}

/// A SYN carrying `cookie` (kind 34) and `data`.
fn cookie_syn(isn: u32, cookie: &[u8], data: &[u8]) -> Seg {
    tfo_syn(isn, FastOpenOption::with_cookie(cookie, false), data)
}

/// Asks for a cookie from port `port` and returns it (the handshake is left half-open).
fn fetch_cookie<A: App>(p: &mut Peer<A>, port: u16) -> Vec<u8> {
    p.port = port;
    let r = p.send(tfo_syn(5000, Some(FastOpenOption::request(false)), b""));
    let sa = r.first().expect("a SYN-ACK");
    assert!(sa.is(SYN_ACK), "{r:?}");
    let fo = sa.options.fast_open.expect("the SYN-ACK carries a cookie");
    assert!(!fo.experimental, "answered in the kind asked");
    fo.cookie().to_vec()
}

/// A Fast Open connection for `app` (queue 16): a cookie fetched from port 40100, then from
/// port 40101 the SYN from 2000 with it and `data`, changed by `edit`; the engine's replies.
fn open_fast(
    app: Scripted,
    data: &[u8],
    edit: impl FnOnce(&mut Seg),
) -> (Peer<Scripted>, Vec<Seg>) {
    let mut p = fastopen_peer(16, app);
    let cookie = fetch_cookie(&mut p, 40100);
    p.port = 40101;
    let mut syn = cookie_syn(2000, &cookie, data);
    edit(&mut syn);
    let r = p.send(syn);
    (p, r)
}

/// An app that echoes what it reads.
fn echo() -> Scripted {
    Scripted {
        echo: true,
        ..Scripted::default()
    }
}

/// The third segment of a handshake from `isn`, acknowledging `ack` of ours.
fn third_ack(isn: u32, sa: &Seg, ack: SeqNumber) -> Seg {
    seg(ACK)
        .seq(isn.wrapping_add(1))
        .ack(ack)
        .ts(PEER_TS + 1, sa.tsval())
}

#[test]
fn listen_cookie_request_gets_a_cookie_and_an_ordinary_handshake() {
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = fastopen_peer(16, app);
    // A request with data: Linux's client does not send data without a cookie, but if one
    // does, the data is not taken (RFC 7413 §4.2.2: only with a valid cookie).
    let r = p.send(tfo_syn(
        1000,
        Some(FastOpenOption::request(false)),
        b"early",
    ));
    let sa = &recv!(r, [|s| s.is(SYN_ACK)])[0];
    assert_eq!(sa.ack, SeqNumber(1001), "the data is not acknowledged");
    let fo = sa.options.fast_open.expect("a cookie");
    assert_eq!(fo.cookie().len(), 8);
    assert!(
        log.borrow().connected.is_empty(),
        "no app before the handshake"
    );
    let st = p.engine.stats();
    assert_eq!(st.fastopen_cookie_requests, 1);
    assert_eq!(st.fastopen_passive, 0);
    assert_eq!(st.in_state(State::SynReceived), 1);
    // The cookie is the client's: another address gets another one.
    let mut q = fastopen_peer(16, Scripted::default());
    let theirs = q.send(tfo_syn(1000, Some(FastOpenOption::request(false)), b""));
    assert_eq!(
        theirs[0].options.fast_open,
        Some(fo),
        "same client, same cookie"
    );
    // An experimental-kind request is answered in that kind, with the same cookie.
    p.port += 1;
    let r = p.send(tfo_syn(1000, Some(FastOpenOption::request(true)), b""));
    let exp = r[0].options.fast_open.expect("a cookie");
    assert!(exp.experimental);
    assert_eq!(exp.cookie(), fo.cookie());
}

#[test]
fn listen_valid_cookie_delivers_the_syn_data_before_the_third_ack() {
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = fastopen_peer(16, app);
    let cookie = fetch_cookie(&mut p, 40100);
    p.port = 40101;
    let r = p.send(cookie_syn(2000, &cookie, b"hello"));
    let sa = &recv!(r, [|s| s.is(SYN_ACK)])[0];
    // "the SYN-ACK acknowledges the data" (RFC 7413 §4.2.2), and carries no cookie.
    assert_eq!(sa.ack, SeqNumber(2006));
    assert_eq!(sa.options.fast_open, None);
    assert_eq!(
        log.borrow().received,
        b"hello",
        "delivered before the third ACK"
    );
    assert_eq!(log.borrow().connected.len(), 1);
    let id = p.engine.find(&p.tuple()).unwrap();
    assert_eq!(p.engine.state(id), Some(State::SynReceived));
    assert_eq!(p.engine.stats().fastopen_passive, 1);
    assert_eq!(p.engine.stats().rx_bytes, 5);
    // The third ACK completes the handshake.
    recv_nothing!(p.send(third_ack(2005, sa, sa.seq + 1u32)));
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.stats().passive_opens, 1, "counted once");
    // A cookie without data opens a connection too (Linux: "Data-less SYN with valid cookie
    // is allowed to send data in SYN_RECV state").
    p.port = 40102;
    let r = p.send(cookie_syn(3000, &cookie, b""));
    assert_eq!(r[0].ack, SeqNumber(3001));
    assert_eq!(p.engine.stats().fastopen_passive, 2);
    assert_eq!(log.borrow().connected.len(), 2);
}

#[test]
fn syn_received_fast_open_app_reply_goes_out_before_the_third_ack() {
    let (mut p, r) = open_fast(echo(), b"ping", |_| {});
    let r = recv!(
        r,
        [|s| s.is(SYN_ACK), |s| s.is(ACK) && s.payload == b"ping"]
    );
    let (sa, data) = (&r[0], &r[1]);
    assert_eq!(data.seq, sa.seq + 1u32, "the data follows our SYN");
    assert_eq!(data.ack, SeqNumber(2005));
    let id = p.engine.find(&p.tuple()).unwrap();
    assert_eq!(p.engine.state(id), Some(State::SynReceived));
    // The third ACK covers the SYN and the reply: nothing is left to send or resend.
    recv_nothing!(p.send(third_ack(2004, sa, data.end())));
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(p.engine.buffers(id).unwrap().send, 0);
    let later: Vec<_> = p
        .run_timers(Duration::from_secs(5))
        .into_iter()
        .filter(|(_, s)| s.dst_port == 40101)
        .collect();
    recv_nothing!(later, "no retransmission");
}

#[test]
fn syn_received_fast_open_reply_is_retransmitted_if_the_third_ack_covers_only_the_syn() {
    let (mut p, r) = open_fast(echo(), b"ping", |_| {});
    let sa = r[0].clone();
    // The reply was lost: the third ACK acknowledges the SYN only; it is no duplicate ACK.
    recv_nothing!(p.send(third_ack(2004, &sa, sa.seq + 1u32)));
    let id = p.engine.find(&p.tuple()).unwrap();
    assert_eq!(p.engine.state(id), Some(State::Established));
    assert_eq!(
        p.engine.buffers(id).unwrap().send,
        4,
        "still unacknowledged"
    );
    let again = p.run_timers(Duration::from_secs(2));
    assert!(
        again
            .iter()
            .any(|(_, s)| s.payload == b"ping" && s.seq == sa.seq + 1u32),
        "{again:?}"
    );
}

#[test]
fn syn_received_fast_open_fin_waits_for_the_third_ack() {
    // RFC 9293 §3.10.4, CLOSE in SYN-RECEIVED after a SEND: the FIN is queued "for processing
    // after entering ESTABLISHED state".
    let app = Scripted {
        close_on_data: true,
        ..echo()
    };
    let (mut p, r) = open_fast(app, b"bye", |_| {});
    let r = recv!(r, [|s| s.is(SYN_ACK), |s| s.is(ACK) && s.payload == b"bye"]);
    let sa = r[0].clone();
    let r = p.send(third_ack(2003, &sa, r[1].end()));
    let fin = &recv!(r, [|s| s.is(FIN_ACK)])[0];
    assert_eq!(fin.seq, sa.seq + 4u32);
    let id = p.engine.find(&p.tuple()).unwrap();
    assert_eq!(p.engine.state(id), Some(State::FinWait1));
}

#[test]
fn listen_bad_cookie_data_is_not_taken_and_a_valid_cookie_is_given() {
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = fastopen_peer(16, app);
    let cookie = fetch_cookie(&mut p, 40100);
    p.port = 40101;
    let r = p.send(cookie_syn(2000, &[0xaa; 8], b"forged"));
    let sa = &recv!(r, [|s| s.is(SYN_ACK)])[0];
    assert_eq!(sa.ack, SeqNumber(2001), "only the SYN is acknowledged");
    assert_eq!(sa.options.fast_open.unwrap().cookie(), &cookie[..]);
    assert!(log.borrow().connected.is_empty());
    assert_eq!(p.engine.stats().fastopen_passive_fail, 1);
    assert_eq!(p.engine.stats().fastopen_passive, 0);
    // The client sends its data again after the handshake (RFC 7413 §4.2.1), as any.
    p.send(third_ack(2000, sa, sa.seq + 1u32));
    p.send(
        seg(ACK)
            .seq(2001)
            .ack(sa.seq + 1u32)
            .ts(PEER_TS + 2, sa.tsval())
            .data(b"forged"),
    );
    assert_eq!(log.borrow().received, b"forged");
    // A cookie of another length never matches.
    p.port = 40102;
    let r = p.send(cookie_syn(3000, &cookie[..6], b"short"));
    assert_eq!(r[0].ack, SeqNumber(3001));
    assert_eq!(p.engine.stats().fastopen_passive_fail, 2);
}

#[test]
fn listen_data_without_a_cookie_option_is_not_taken_and_gets_no_cookie() {
    let mut p = fastopen_peer(16, Scripted::default());
    let r = p.send(linux_syn(1000).data(b"no cookie"));
    let sa = &recv!(r, [|s| s.is(SYN_ACK)])[0];
    assert_eq!(sa.ack, SeqNumber(1001));
    assert_eq!(sa.options.fast_open, None);
    assert_eq!(p.engine.stats().fastopen_passive, 0);
    assert_eq!(p.engine.stats().fastopen_cookie_requests, 0);
}

#[test]
fn listen_without_fast_open_ignores_cookies_and_data() {
    let mut p = Peer::server(server_config(), Scripted::default());
    let r = p.send(tfo_syn(1000, Some(FastOpenOption::request(false)), b""));
    assert_eq!(
        r[0].options.fast_open, None,
        "no cookie from a listener without TFO"
    );
    p.port += 1;
    let r = p.send(cookie_syn(2000, &[1, 2, 3, 4, 5, 6, 7, 8], b"data"));
    assert_eq!(r[0].ack, SeqNumber(2001));
    let st = p.engine.stats();
    assert_eq!(
        (
            st.fastopen_passive,
            st.fastopen_passive_fail,
            st.fastopen_cookie_requests
        ),
        (0, 0, 0)
    );
}

#[test]
fn listen_cookie_of_the_previous_key_is_taken_and_refreshed_then_expires() {
    let mut cfg = fastopen_config(16);
    cfg.cookie_rotation = Duration::from_secs(10);
    let mut p = Peer::server(cfg, Scripted::default());
    let old = fetch_cookie(&mut p, 40100);
    // The next rotation epoch: the cookie is the backup key's now.
    p.now = p.now + Duration::from_secs(10);
    let fresh = fetch_cookie(&mut p, 40101);
    assert_ne!(fresh, old, "the key rotated");
    p.port = 40102;
    let r = p.send(cookie_syn(2000, &old, b"x"));
    assert_eq!(r[0].ack, SeqNumber(2002), "taken");
    assert_eq!(
        r[0].options.fast_open.map(|f| f.cookie().to_vec()),
        Some(fresh.clone()),
        "with the current key's cookie in the SYN-ACK (Linux: TCPFastOpenPassiveAltKey)"
    );
    assert_eq!(p.engine.stats().fastopen_passive_alt_key, 1);
    // Two epochs on it is refused.
    p.now = p.now + Duration::from_secs(10);
    p.port = 40103;
    let r = p.send(cookie_syn(3000, &old, b"x"));
    assert_eq!(r[0].ack, SeqNumber(3001), "refused");
    assert_eq!(p.engine.stats().fastopen_passive_fail, 1);
}

#[test]
fn listen_full_fast_open_queue_falls_back_to_an_ordinary_handshake() {
    let mut p = fastopen_peer(1, Scripted::default());
    let cookie = fetch_cookie(&mut p, 40100);
    p.port = 40101;
    let first = p.send(cookie_syn(2000, &cookie, b"one")).remove(0);
    assert_eq!(first.ack, SeqNumber(2004));
    p.port = 40102;
    let r = p.send(cookie_syn(3000, &cookie, b"two"));
    let sa = &recv!(r, [|s| s.is(SYN_ACK)])[0];
    assert_eq!(sa.ack, SeqNumber(3001), "queue full: data not taken");
    assert_eq!(
        sa.options.fast_open, None,
        "and no cookie (Linux checks the queue first)"
    );
    assert_eq!(p.engine.stats().fastopen_listen_overflow, 1);
    // Once the first has its third ACK, the queue has room again.
    p.port = 40101;
    p.send(third_ack(2003, &first, first.seq + 1u32));
    p.port = 40103;
    let r = p.send(cookie_syn(4000, &cookie, b"three"));
    assert_eq!(r[0].ack, SeqNumber(4006));
    assert_eq!(p.engine.stats().fastopen_passive, 2);
}

/// syncookies.rs's host of a group behind one balancer (its own secret and clock, the group's
/// cookie secret, SYN cookies always), its listener serving Fast Open.
fn group_host(cookie_secret: [u8; 32], own: u8, boot_s: u64) -> Peer<Scripted> {
    let mut p = crate::syncookies::group_host(cookie_secret, own, boot_s);
    let mut cfg = p.engine.config().clone();
    cfg.listeners[0].fastopen = Some(FastOpen::with_queue(16));
    p.engine = xdptcp::tcp::Engine::new(cfg, Scripted::default(), p.now);
    p
}

#[test]
fn hosts_sharing_a_cookie_secret_take_each_others_fast_open_cookies() {
    let shared = [0x5a; 32];
    let mut a = group_host(shared, 1, 0);
    let mut b = group_host(shared, 2, 777);
    let cookie = fetch_cookie(&mut a, 40100);
    b.port = 40101;
    let r = b.send(cookie_syn(2000, &cookie, b"hi"));
    assert_eq!(r[0].ack, SeqNumber(2003), "the other host takes it");
    assert_eq!(b.engine.stats().fastopen_passive, 1);
    let mut c = group_host([0x66; 32], 3, 777);
    c.port = 40101;
    let r = c.send(cookie_syn(2000, &cookie, b"hi"));
    assert_eq!(
        r[0].ack,
        SeqNumber(2001),
        "a host outside the group does not"
    );
    assert_eq!(c.engine.stats().fastopen_passive_fail, 1);
}

#[test]
fn listen_fast_open_goes_on_while_syn_cookies_answer_other_syns() {
    let mut cfg = fastopen_config(16);
    cfg.syncookies = SynCookieMode::Always;
    let app = Scripted::default();
    let log = app.log.clone();
    let mut p = Peer::server(cfg, app);
    // A cookie request gets a SYN cookie, and a Fast Open cookie in it: no state either way.
    let cookie = fetch_cookie(&mut p, 40100);
    assert_eq!(p.engine.connections(), 0);
    assert_eq!(p.engine.stats().cookies_sent, 1);
    // A valid Fast Open cookie opens its connection, bounded by the queue, and is counted.
    p.port = 40101;
    let r = p.send(cookie_syn(2000, &cookie, b"under load"));
    assert_eq!(r[0].ack, SeqNumber(2011));
    assert_eq!(log.borrow().received, b"under load");
    assert_eq!(p.engine.stats().fastopen_over_budget, 1);
    assert_eq!(p.engine.stats().cookies_sent, 1, "no SYN cookie for it");
    // An ordinary SYN still gets a SYN cookie.
    p.port = 40102;
    p.send(linux_syn(3000));
    assert_eq!(p.engine.stats().cookies_sent, 2);
    assert_eq!(p.engine.connections(), 1);
}

#[test]
fn listen_http_request_in_the_syn_is_answered_before_the_handshake_completes() {
    let mut p = fastopen_peer(16, Http::new(HttpConfig::default()));
    let cookie = fetch_cookie(&mut p, 40100);
    p.port = 40101;
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let r = p.send(cookie_syn(2000, &cookie, request));
    let r = recv!(r, [|s| s.is(SYN_ACK), |s| s.is(ACK) && s.is_data()]);
    assert!(
        r[1].payload.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&r[1].payload)
    );
    assert!(r[1].payload.ends_with(b"Hello from xdptcp\n"));
    assert_eq!(r[1].ack, SeqNumber(2001 + request.len() as u32));
}

#[test]
fn established_third_ack_of_a_fast_open_connection_is_no_duplicate_ack() {
    // Without SACK, three duplicate ACKs make a fast retransmit (RFC 5681 §3.2). The ACK that
    // completes the handshake covers the SYN only while our data is in flight, but it is the
    // first ACK, not a duplicate: two more identical ones are not yet three.
    let app = Scripted {
        greeting: vec![7; 4 * 1448],
        ..Scripted::default()
    };
    let (mut p, r) = open_fast(app, b"x", |syn| {
        syn.options.sack_permitted = false;
        // Unscaled, so the window of every ACK is the SYN's: only the rule tells them apart.
        syn.options.window_scale = None;
    });
    assert_eq!(r.iter().filter(|s| s.is_data()).count(), 4, "{r:?}");
    let sa = r[0].clone();
    let first_ack = || third_ack(2001, &sa, sa.seq + 1u32);
    recv_nothing!(p.send(first_ack()));
    recv_nothing!(p.send(first_ack()), "the first duplicate");
    recv_nothing!(p.send(first_ack()), "the second duplicate");
    let r = p.send(first_ack());
    recv!(r, [|s| s.is_data() && s.seq == sa.seq + 1u32]);
}
