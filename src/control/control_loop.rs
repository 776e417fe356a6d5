//! The control loop's duties on a running server, kept to their period whatever else the
//! control thread does: the SYN-cookie keys stay one rotation epoch ahead in the XDP
//! program's table, the interface's addresses and the cookie-secret file are looked at every
//! [`WATCH_EVERY`], and the XDP program's TX drops every [`XDP_TX_CHECK`]
//! ([`crate::control::xdp_tx`]).
//!
//! [`ControlLoop`] is driven by the caller's clock (`poll(now, ..)`) and works on anything that
//! is a [`DataPath`]: the [`Server`] in production, a fake in the tests. It returns what
//! happened as [`Event`]s, which the caller logs ([`Event::log`]); each is reported once (a
//! secret file that stays bad, an XDP_TX that keeps failing).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::control::cookie_secret::{SecretFile, SecretFileError};
use crate::control::xdp_tx::{XdpTxChange, XdpTxWatch};
use crate::tcp::Secret;
use crate::time::Instant;
use crate::xdp::program::{MapError, XdpCounters};
use crate::xdp::server::{Server, StartError};

/// How often the interface's addresses and the cookie-secret file are looked at.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How often the XDP program's TX drops are looked at (a fallback starts within this).
pub const XDP_TX_CHECK: Duration = Duration::from_millis(100);

/// What the control loop drives.
pub trait DataPath {
    /// Keeps the XDP program's cookie keys one epoch ahead of `now`; the epoch that began, if
    /// one did.
    fn refresh_cookie_keys(&mut self, now: Instant) -> Option<u64>;
    /// Follows the interface's addresses: those added and those removed.
    fn refresh_addresses(&mut self) -> Result<(Vec<IpAddr>, Vec<IpAddr>), StartError>;
    /// Replaces the SYN-cookie secret: the workers take it first, the XDP program once every
    /// worker has (the next [`DataPath::refresh_cookie_keys`] starts it).
    fn replace_cookie_secret(&mut self, secret: Secret);
    /// The XDP program's counters.
    fn xdp_counters(&self) -> Result<XdpCounters, MapError>;
    /// Whether the XDP program hands SYNs to the workers even in cookie mode (its SYN-ACKs
    /// are dropped).
    fn set_syns_to_workers(&mut self, on: bool);
}

impl DataPath for Server {
    fn refresh_cookie_keys(&mut self, now: Instant) -> Option<u64> {
        Server::refresh_cookie_keys(self, now)
    }

    fn refresh_addresses(&mut self) -> Result<(Vec<IpAddr>, Vec<IpAddr>), StartError> {
        Server::refresh_addresses(self)
    }

    fn replace_cookie_secret(&mut self, secret: Secret) {
        Server::replace_cookie_secret(self, secret);
    }

    fn xdp_counters(&self) -> Result<XdpCounters, MapError> {
        Server::xdp_counters(self)
    }

    fn set_syns_to_workers(&mut self, on: bool) {
        Server::set_syns_to_workers(self, on);
    }
}

/// Something the control loop did or found, for the log.
#[derive(Debug)]
pub enum Event {
    /// A new cookie key epoch began (its key, and the next one's, are in the XDP program).
    CookieEpoch(u64),
    /// An address was added to the interface: served from now on.
    AddressAdded(IpAddr),
    /// An address left the interface: no longer served.
    AddressRemoved(IpAddr),
    /// The interface's addresses could not be read (reported once until they can again).
    AddressesUnreadable(StartError),
    /// The secret file holds a new secret, in use from now on.
    SecretReplaced(PathBuf),
    /// The secret file cannot be used; the current secret stays (once per problem).
    SecretKept(SecretFileError),
    /// The XDP program's SYN-ACKs and who answers SYNs.
    XdpTx(XdpTxChange),
}

impl Event {
    /// Logs the event at its level.
    pub fn log(&self) {
        match self {
            Event::CookieEpoch(epoch) => tracing::debug!(
                epoch,
                "SYN-cookie secret rotated: the new epoch's key is in use"
            ),
            Event::AddressAdded(a) => {
                tracing::info!(address = %a, "address added to the interface: now served")
            }
            Event::AddressRemoved(a) => {
                tracing::warn!(address = %a, "address gone from the interface: no longer served")
            }
            Event::AddressesUnreadable(e) => {
                tracing::error!("re-reading the interface's addresses: {e}")
            }
            Event::SecretReplaced(path) => {
                tracing::info!(path = %path.display(), "SYN-cookie secret replaced")
            }
            Event::SecretKept(e) => {
                tracing::error!("{e}; keeping the current SYN-cookie secret")
            }
            Event::XdpTx(change) => log_xdp_tx(change),
        }
    }
}

fn log_xdp_tx(change: &XdpTxChange) {
    match *change {
        XdpTxChange::FellBack {
            dropped,
            sent,
            first: true,
            retry_in,
        } => tracing::warn!(
            dropped,
            sent,
            "the driver dropped the cookie SYN-ACKs sent from XDP: SYNs now go to the workers, which answer them over AF_XDP (with their own SYN cookies once the half-open budget is full), and XDP_TX is tried again in {} s; to fix it, on veth give the peer device NAPI (`ethtool -K PEER gro on`, or an XDP program on the peer); on a NIC, its XDP TX ring is full",
            retry_in.as_secs()
        ),
        XdpTxChange::FellBack {
            dropped, retry_in, ..
        } => tracing::debug!(
            dropped,
            "XDP_TX still drops: SYNs go to the workers again, next try in {} s",
            retry_in.as_secs()
        ),
        XdpTxChange::Probing => {
            tracing::debug!("trying XDP_TX again: the XDP program answers SYNs")
        }
        XdpTxChange::Restored { sent } => tracing::info!(
            sent,
            "XDP_TX delivers the cookie SYN-ACKs again: the XDP program answers SYNs under a flood again"
        ),
    }
}

/// The control loop's schedule and what it remembers between two polls.
#[derive(Debug)]
pub struct ControlLoop {
    secret_file: Option<SecretFile>,
    next_watch: Instant,
    next_xdp_tx_check: Instant,
    xdp_tx: XdpTxWatch,
    /// Whether the last address refresh failed (so a lasting failure is reported once).
    addresses_failing: bool,
}

impl ControlLoop {
    /// A loop starting at `now`, watching `secret_file` if there is one.
    pub fn new(now: Instant, secret_file: Option<SecretFile>) -> ControlLoop {
        ControlLoop {
            secret_file,
            next_watch: now + WATCH_EVERY,
            next_xdp_tx_check: now,
            xdp_tx: XdpTxWatch::default(),
            addresses_failing: false,
        }
    }

    /// Does what is due at `now`: the cookie keys every time (a cheap comparison until an
    /// epoch ends), the XDP program's TX drops and the interface's addresses and secret file
    /// when their period is up. Call it at least every [`XDP_TX_CHECK`].
    pub fn poll(&mut self, now: Instant, server: &mut impl DataPath) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(epoch) = server.refresh_cookie_keys(now) {
            events.push(Event::CookieEpoch(epoch));
        }
        if now >= self.next_xdp_tx_check {
            self.next_xdp_tx_check = now + XDP_TX_CHECK;
            if let Some(change) = self.check_xdp_tx(now, server) {
                events.push(Event::XdpTx(change));
            }
        }
        if now >= self.next_watch {
            self.next_watch = now + WATCH_EVERY;
            self.watch_addresses(server, &mut events);
            self.watch_secret(server, &mut events);
        }
        events
    }

    /// Whether the XDP program hands SYNs to the workers because its SYN-ACKs are dropped.
    pub fn xdp_tx_fallback(&self) -> bool {
        self.xdp_tx.fallback()
    }

    fn check_xdp_tx(&mut self, now: Instant, server: &mut impl DataPath) -> Option<XdpTxChange> {
        // A map read that fails now and then only delays the look.
        let c = server.xdp_counters().ok()?;
        let change = self.xdp_tx.poll(now, c.cookie_synacks, c.tx_dropped)?;
        server.set_syns_to_workers(self.xdp_tx.fallback());
        Some(change)
    }

    fn watch_addresses(&mut self, server: &mut impl DataPath, events: &mut Vec<Event>) {
        match server.refresh_addresses() {
            Ok((added, removed)) => {
                self.addresses_failing = false;
                events.extend(added.into_iter().map(Event::AddressAdded));
                events.extend(removed.into_iter().map(Event::AddressRemoved));
            }
            Err(e) => {
                if !std::mem::replace(&mut self.addresses_failing, true) {
                    events.push(Event::AddressesUnreadable(e));
                }
            }
        }
    }

    fn watch_secret(&mut self, server: &mut impl DataPath, events: &mut Vec<Event>) {
        let Some(f) = &mut self.secret_file else {
            return;
        };
        match f.reread() {
            Ok(Some(secret)) => {
                server.replace_cookie_secret(secret);
                events.push(Event::SecretReplaced(f.path().to_path_buf()));
            }
            Ok(None) => {}
            Err(e) => events.push(Event::SecretKept(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::syncookie::{CookieClock, CookieKeys};
    use std::net::Ipv4Addr;

    /// A data path in memory: real cookie keys on a 1 s rotation, the address changes and XDP
    /// counters the test sets.
    struct Fake {
        keys: CookieKeys,
        /// The epochs whose keys are "in the XDP table".
        table: [u64; 2],
        /// What the next address refresh finds (added, removed).
        address_changes: (Vec<IpAddr>, Vec<IpAddr>),
        addresses_fail: bool,
        secrets: Vec<Secret>,
        counters: XdpCounters,
        syns_to_workers: bool,
    }

    impl Fake {
        fn new(now: Instant) -> Fake {
            let clock = CookieClock {
                rotation_us: 1_000_000,
                offset_us: 0,
            };
            let keys = CookieKeys::new(Secret([9; 32]), clock, now);
            let e = keys.epoch();
            Fake {
                keys,
                table: [e, e + 1],
                address_changes: (Vec::new(), Vec::new()),
                addresses_fail: false,
                secrets: Vec::new(),
                counters: XdpCounters::default(),
                syns_to_workers: false,
            }
        }
    }

    impl DataPath for Fake {
        fn refresh_cookie_keys(&mut self, now: Instant) -> Option<u64> {
            let before = self.keys.epoch();
            self.keys.advance(now);
            let e = self.keys.epoch();
            self.table = [e, e + 1];
            (e != before).then_some(e)
        }

        fn refresh_addresses(&mut self) -> Result<(Vec<IpAddr>, Vec<IpAddr>), StartError> {
            if self.addresses_fail {
                return Err(StartError::Addresses {
                    iface: "veth0".into(),
                    source: std::io::Error::other("netlink is gone"),
                });
            }
            Ok(std::mem::take(&mut self.address_changes))
        }

        fn replace_cookie_secret(&mut self, secret: Secret) {
            self.secrets.push(secret);
        }

        fn xdp_counters(&self) -> Result<XdpCounters, MapError> {
            Ok(self.counters)
        }

        fn set_syns_to_workers(&mut self, on: bool) {
            self.syns_to_workers = on;
        }
    }

    /// Polls every `step` from `from` for `span`; returns every event with its time.
    fn run(
        ctl: &mut ControlLoop,
        fake: &mut Fake,
        from: Instant,
        span: Duration,
        step: Duration,
    ) -> Vec<(Instant, Event)> {
        let mut out = Vec::new();
        let mut now = from;
        while now < from + span {
            out.extend(ctl.poll(now, fake).into_iter().map(|e| (now, e)));
            // The XDP program's table always holds the epoch that is current.
            let epoch = fake.keys.epoch();
            assert!(
                fake.table.contains(&epoch),
                "epoch {epoch} missing at {now:?}"
            );
            now = now + step;
        }
        out
    }

    /// The XDP_TX changes among `events`.
    fn xdp_tx(events: &[(Instant, Event)]) -> Vec<XdpTxChange> {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::XdpTx(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    fn temp_secret(name: &str, contents: &[u8]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("xdptcp-ctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn a_new_epoch_is_in_the_xdp_table_from_its_first_poll_and_reported_once() {
        let start = Instant::from_secs(1000);
        let mut fake = Fake::new(start);
        let mut ctl = ControlLoop::new(start, None);
        let events = run(
            &mut ctl,
            &mut fake,
            start,
            Duration::from_millis(10_500),
            Duration::from_millis(50),
        );
        let epochs: Vec<_> = events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::CookieEpoch(n) => Some((t.total_secs(), *n)),
                _ => None,
            })
            .collect();
        // One epoch a second, each reported in the poll at its first instant.
        assert_eq!(epochs.len(), 10, "{epochs:?}");
        for (i, (t, n)) in epochs.iter().enumerate() {
            assert_eq!(*t, 1001 + i as u64);
            assert_eq!(*n, 1001 + i as u64);
        }
    }

    #[test]
    fn addresses_are_followed_every_second_and_a_failure_is_reported_once() {
        let start = Instant::from_secs(50);
        let mut fake = Fake::new(start);
        let mut ctl = ControlLoop::new(start, None);
        let step = Duration::from_millis(100);
        let added = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        fake.address_changes.0.push(added);
        let events = run(
            &mut ctl,
            &mut fake,
            start,
            Duration::from_millis(1100),
            step,
        );
        let found: Vec<_> = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::AddressAdded(a) if *a == added))
            .collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, start + WATCH_EVERY, "at the first watch");
        let removed = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        fake.address_changes.1.push(removed);
        fake.addresses_fail = true;
        let at = start + Duration::from_millis(1100);
        let events = run(&mut ctl, &mut fake, at, Duration::from_secs(5), step);
        let failures = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::AddressesUnreadable(_)))
            .count();
        assert_eq!(failures, 1, "a lasting failure is reported once");
        fake.addresses_fail = false;
        let at = at + Duration::from_secs(5);
        let events = run(&mut ctl, &mut fake, at, Duration::from_secs(2), step);
        assert!(
            events
                .iter()
                .any(|(_, e)| matches!(e, Event::AddressRemoved(a) if *a == removed))
        );
    }

    #[test]
    fn a_changed_secret_file_replaces_the_secret_and_a_bad_one_keeps_it_saying_why_once() {
        let path = temp_secret("watch", &[1; 32]);
        let start = Instant::from_secs(200);
        let mut fake = Fake::new(start);
        let mut ctl = ControlLoop::new(start, Some(SecretFile::open(&path).unwrap()));
        let step = Duration::from_millis(100);
        let events = run(&mut ctl, &mut fake, start, Duration::from_secs(3), step);
        assert!(
            events.is_empty()
                || events
                    .iter()
                    .all(|(_, e)| matches!(e, Event::CookieEpoch(_)))
        );
        std::fs::write(&path, [2; 32]).unwrap();
        let at = start + Duration::from_secs(3);
        let events = run(&mut ctl, &mut fake, at, Duration::from_secs(2), step);
        let replaced = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::SecretReplaced(_)))
            .count();
        assert_eq!(replaced, 1);
        assert_eq!(fake.secrets.len(), 1);
        // Group-writable, then a FIFO: refused, reported once each, the secret kept.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        let at = at + Duration::from_secs(2);
        let events = run(&mut ctl, &mut fake, at, Duration::from_secs(5), step);
        let kept: Vec<_> = events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::SecretKept(e) => Some(e.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].contains("writable by group or others"), "{kept:?}");
        assert_eq!(fake.secrets.len(), 1, "the secret is kept");
        std::fs::remove_file(&path).unwrap();
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let at = at + Duration::from_secs(5);
        let events = run(&mut ctl, &mut fake, at, Duration::from_secs(5), step);
        let kept = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::SecretKept(SecretFileError::NotRegular { .. })))
            .count();
        assert_eq!(kept, 1);
        assert_eq!(fake.secrets.len(), 1);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn dropped_xdp_syn_acks_send_syns_to_the_workers_within_a_check_and_back_after_a_good_try() {
        let start = Instant::from_secs(300);
        let mut fake = Fake::new(start);
        let mut ctl = ControlLoop::new(start, None);
        let step = Duration::from_millis(50);
        run(&mut ctl, &mut fake, start, Duration::from_secs(1), step);
        assert!(!fake.syns_to_workers);
        // A flood whose SYN-ACKs the driver drops, every one.
        fake.counters.cookie_synacks += 1000;
        fake.counters.tx_dropped += 1000;
        let at = start + Duration::from_secs(1);
        let events = run(&mut ctl, &mut fake, at, XDP_TX_CHECK, step);
        assert!(
            matches!(
                xdp_tx(&events).as_slice(),
                [XdpTxChange::FellBack { first: true, .. }]
            ),
            "{events:?}"
        );
        assert!(fake.syns_to_workers && ctl.xdp_tx_fallback());
        // The peer gets NAPI: the try after the backoff sends without a drop.
        let at = at + XDP_TX_CHECK;
        let events = run(
            &mut ctl,
            &mut fake,
            at,
            crate::control::xdp_tx::INITIAL_BACKOFF,
            step,
        );
        assert_eq!(xdp_tx(&events), [XdpTxChange::Probing], "{events:?}");
        assert!(!fake.syns_to_workers, "XDP answers during the try");
        fake.counters.cookie_synacks += 500;
        let at = at + crate::control::xdp_tx::INITIAL_BACKOFF;
        let events = run(&mut ctl, &mut fake, at, Duration::from_secs(2), step);
        assert_eq!(
            xdp_tx(&events),
            [XdpTxChange::Restored { sent: 500 }],
            "{events:?}"
        );
        assert!(!fake.syns_to_workers && !ctl.xdp_tx_fallback());
    }
}
