//! The HTTP/1.1 client app used by the load generator and by engine client/server tests.
//!
//! Read first: RFC 9112 §4 (status line), §6.3 (message body length), §9.3 and §9.6
//! (persistence and closing).
//!
//! Each connection sends one request at a time (no pipelining) and parses the response
//! incrementally: status line and header fields (carried across calls, bounded), then a
//! `Content-Length` body, or, without one, everything until the server closes. The last request
//! of a connection carries `Connection: close`, so the server closes first and the TIME-WAIT
//! state stays on its side (see "Client-side TIME-WAIT" in the design notes).
//!
//! Requests go out back to back (closed loop: the next when the previous is answered), or on
//! a schedule the driver keeps ([`Pacing::Scheduled`], open loop): each wake of a connection
//! ([`App::on_wake`]) makes one request due, and its latency counts from that due time, not
//! from when it could be sent. A closed loop hides queueing behind the requests it did not
//! send while waiting ("coordinated omission", Gil Tene); wrk2 corrects it the same way.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::{Latencies, LatencyKind};

use super::http::{
    Carry, Scan, head_lines, http1_minor, parse_content_length, scan_head, split_field, tokens,
};
use super::{App, CloseReason, Io, Shutdown};
use crate::time::Instant;

/// The largest response head we accept; a longer one is a malformed response.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// What each connection of an [`HttpClient`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// One GET with `Connection: close`, read the whole response, then close after the server
    /// does (the server closes first).
    ConnectClose,
    /// `requests` GETs back to back on one connection (the last with `Connection: close`),
    /// then close.
    KeepAlive {
        /// Requests per connection.
        requests: u64,
    },
}

/// When a connection's requests go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// The first once connected, each next one as soon as the previous is answered (closed
    /// loop); latency counts from the request's first byte being queued.
    #[default]
    BackToBack,
    /// One request falls due at each wake of the connection by the driver (open loop), and
    /// its latency counts from the wake's due time. Wakes that come while a request is
    /// outstanding queue up; the due times of queued requests are taken `period` apart.
    Scheduled {
        /// The driver's interval between two wakes of one connection.
        period: Duration,
    },
}

impl ClientMode {
    fn requests(self) -> u64 {
        match self {
            ClientMode::ConnectClose => 1,
            ClientMode::KeepAlive { requests } => requests,
        }
    }
}

/// Where a connection is in its current exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// No response expected.
    #[default]
    Idle,
    /// Reading the response's status line and header fields.
    Head,
    /// Reading a `Content-Length` body (`body_left` bytes to go).
    Body,
    /// Reading a body delimited by the server's close.
    UntilClose,
}

/// Per-connection state of [`HttpClient`].
#[derive(Debug, Default)]
pub struct ClientConn {
    /// A response head split across calls.
    carry: Option<Box<Carry>>,
    /// Where the current request's latency counts from: when it started being written
    /// (back to back) or when it fell due (scheduled).
    started: Instant,
    /// Scheduled: when the oldest request not sent yet fell due.
    due_at: Instant,
    /// Scheduled: requests due and not sent yet.
    owed: u32,
    /// Body bytes of the current response still to read.
    body_left: u64,
    /// Requests started on this connection.
    sent: u64,
    /// Bytes of the current request already queued.
    write_offset: usize,
    phase: Phase,
    /// The current request is not fully queued yet.
    writing: bool,
    /// The current response has a 2xx status.
    ok: bool,
    /// The server said it closes after the current response.
    server_closes: bool,
    /// The handshake completed.
    connected: bool,
}

/// An answer later than this (from when its request fell due) counts as late by default.
pub const DEFAULT_LATE_AFTER: Duration = Duration::from_secs(1);

/// An HTTP/1.1 GET client: counts completed, failed and late requests and records their
/// latency.
#[derive(Debug)]
pub struct HttpClient {
    mode: ClientMode,
    pacing: Pacing,
    late_after: Duration,
    /// The request without, and with, `Connection: close`.
    request_keep_alive: Vec<u8>,
    request_close: Vec<u8>,
    due: u64,
    sent: u64,
    completed: u64,
    failed: u64,
    late: u64,
    latencies: Latencies,
}

impl HttpClient {
    /// A client that GETs `path` with `Host: host` in the given mode. Control characters in
    /// `path` and `host` are dropped (they would break the request).
    pub fn new(mode: ClientMode, path: &str, host: &str) -> Self {
        let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
        let (path, host) = (clean(path), clean(host));
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path.replace(' ', "%20")
        };
        let render = |extra: &str| format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
        HttpClient {
            mode,
            pacing: Pacing::BackToBack,
            late_after: DEFAULT_LATE_AFTER,
            request_keep_alive: render("").into_bytes(),
            request_close: render("Connection: close\r\n").into_bytes(),
            due: 0,
            sent: 0,
            completed: 0,
            failed: 0,
            late: 0,
            latencies: Latencies::default(),
        }
    }

    /// The same client with requests paced as `pacing` says.
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// The same client counting answers later than `late_after` as late.
    pub fn with_late_after(mut self, late_after: Duration) -> Self {
        self.late_after = late_after;
        self
    }

    /// Requests that fell due by a wake ([`Pacing::Scheduled`]): the offered load.
    pub fn due(&self) -> u64 {
        self.due
    }

    /// Requests started (written, or being written).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Completed requests whose answer came later than the `late_after` bound.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Requests that got a complete 2xx response.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Requests that got a non-2xx or malformed response, or none before the connection ended.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Latency of completed requests, in nanoseconds from the request's first byte being
    /// queued (back to back) or from its due time (scheduled) to the response's last byte
    /// being received (drained by the engine's `take_latencies` through [`App::latencies`]).
    pub fn request_latency(&self) -> &Histogram<u64> {
        self.latencies.get(LatencyKind::Request)
    }

    fn request(&self, st: &ClientConn) -> &[u8] {
        if st.sent >= self.mode.requests() {
            &self.request_close
        } else {
            &self.request_keep_alive
        }
    }

    /// Starts the next request (when one is due, if scheduled), or, when all are done,
    /// closes (unless the server will). Nothing once the connection is being shut down.
    fn send_next(&mut self, st: &mut ClientConn, io: &mut Io<'_>) {
        if io.shutdown() != Shutdown::Open {
            return;
        }
        if st.sent >= self.mode.requests() || st.server_closes {
            // The server closes first when it said so; `on_peer_closed` closes us then.
            if !st.server_closes {
                io.close();
            }
            return;
        }
        st.started = match self.pacing {
            Pacing::BackToBack => io.now(),
            Pacing::Scheduled { period } => {
                if st.owed == 0 {
                    return;
                }
                st.owed -= 1;
                let due = st.due_at;
                st.due_at = due + period;
                due
            }
        };
        st.sent += 1;
        self.sent += 1;
        st.write_offset = 0;
        st.writing = true;
        st.phase = Phase::Head;
        self.continue_write(st, io);
    }

    fn continue_write(&self, st: &mut ClientConn, io: &mut Io<'_>) {
        if !st.writing {
            return;
        }
        let request = self.request(st);
        let rest = request.get(st.write_offset..).unwrap_or_default();
        st.write_offset += io.write(rest);
        st.writing = st.write_offset < request.len();
    }

    fn complete(&mut self, st: &mut ClientConn, io: &mut Io<'_>) {
        st.phase = Phase::Idle;
        if st.ok {
            self.completed += 1;
            let latency = io.now() - st.started;
            self.late += u64::from(latency > self.late_after);
            self.latencies.record(LatencyKind::Request, latency);
        } else {
            self.failed += 1;
        }
        self.send_next(st, io);
    }

    /// A malformed or unexpected response: count it and reset the connection.
    fn fail(&mut self, st: &mut ClientConn, io: &mut Io<'_>) {
        self.failed += 1;
        st.phase = Phase::Idle;
        st.carry = None;
        st.writing = false;
        io.abort();
    }
}

/// What a response head says about the body and the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Response {
    status: u16,
    content_length: Option<u64>,
    close: bool,
}

/// Parses a complete response head; `None` if malformed.
fn parse_response(head: &[u8]) -> Option<Response> {
    let mut lines = head_lines(head);
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
    let line = lines.next()?;
    let mut parts = line.splitn(3, |&b| b == b' ');
    let minor = http1_minor(parts.next()?)?;
    let status = match parts.next()? {
        [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return None,
    };
    let (mut close, mut keep_alive) = (false, false);
    let mut content_length = None;
    for line in lines {
        let (name, value) = split_field(line)?;
        if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(value)?;
            if content_length.is_some_and(|m| m != n) {
                return None;
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // We do not decode transfer codings.
            return None;
        }
    }
    Some(Response {
        status,
        content_length,
        close: close || (minor == 0 && !keep_alive),
    })
}

impl App for HttpClient {
    type State = ClientConn;

    fn on_connected(&mut self, st: &mut ClientConn, io: &mut Io<'_>) {
        st.connected = true;
        self.send_next(st, io);
    }

    fn on_wake(&mut self, st: &mut ClientConn, io: &mut Io<'_>, due: Instant) {
        if self.pacing == Pacing::BackToBack {
            return;
        }
        self.due += 1;
        // How late the driver woke us: its own lateness, apart from the server's.
        self.latencies
            .record(LatencyKind::SendLag, io.now().saturating_since(due));
        st.owed += 1;
        if st.owed == 1 {
            st.due_at = due;
        }
        if st.connected && st.phase == Phase::Idle && !st.writing {
            self.send_next(st, io);
        }
    }

    fn on_data(&mut self, st: &mut ClientConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match st.phase {
                Phase::Idle => {
                    // Bytes nobody asked for.
                    self.fail(st, io);
                    return data.len();
                }
                Phase::UntilClose => return data.len(),
                Phase::Body => {
                    let n = st.body_left.min(rest.len() as u64);
                    st.body_left -= n;
                    pos += n as usize;
                    if st.body_left == 0 {
                        self.complete(st, io);
                    }
                }
                Phase::Head => {
                    match scan_head(&mut st.carry, rest, MAX_RESPONSE_HEAD, parse_response) {
                        Scan::Partial => return data.len(),
                        Scan::TooLarge | Scan::Complete(_, None) => {
                            self.fail(st, io);
                            return data.len();
                        }
                        Scan::Complete(used, Some(response)) => {
                            pos += used;
                            // Interim responses (100 Continue) precede the final one (RFC 9110 §15.2).
                            if (100..200).contains(&response.status) && response.status != 101 {
                                continue;
                            }
                            st.ok = (200..300).contains(&response.status);
                            st.server_closes |= response.close;
                            let bodiless = matches!(response.status, 101 | 204 | 304);
                            match response.content_length {
                                _ if bodiless => self.complete(st, io),
                                Some(0) => self.complete(st, io),
                                Some(n) => {
                                    st.body_left = n;
                                    st.phase = Phase::Body;
                                }
                                None => {
                                    st.server_closes = true;
                                    st.phase = Phase::UntilClose;
                                }
                            }
                        }
                    }
                }
            }
        }
        pos
    }

    fn on_writable(&mut self, st: &mut ClientConn, io: &mut Io<'_>) {
        self.continue_write(st, io);
    }

    fn on_peer_closed(&mut self, st: &mut ClientConn, io: &mut Io<'_>) {
        match st.phase {
            // The close delimits the body (RFC 9112 §6.3 item 8).
            Phase::UntilClose => {
                st.phase = Phase::Idle;
                st.server_closes = true;
                self.complete(st, io);
            }
            Phase::Head | Phase::Body => {
                self.failed += 1;
                st.phase = Phase::Idle;
            }
            Phase::Idle => {}
        }
        io.close();
    }

    fn on_closed(&mut self, st: &mut ClientConn, _reason: CloseReason) {
        // A reset or timeout in the middle of an exchange: that request failed.
        if st.phase != Phase::Idle {
            self.failed += 1;
            st.phase = Phase::Idle;
        }
    }

    fn latencies(&mut self) -> Option<&mut Latencies> {
        Some(&mut self.latencies)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("completed", self.completed),
            ("failed", self.failed),
            ("late", self.late),
            ("due", self.due),
            ("sent", self.sent),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Shutdown;
    use crate::app::http::harness::Endpoint;
    use crate::app::http::{Http, HttpConfig};
    use std::time::Duration;

    /// Client and server joined back to back; each hop takes `hop` of virtual time.
    struct Pair {
        client_app: HttpClient,
        server_app: Http,
        client: Endpoint<HttpClient>,
        server: Endpoint<Http>,
    }

    impl Pair {
        fn new(client_app: HttpClient, mut server_app: Http, capacity: usize) -> Pair {
            let server = Endpoint::connect(&mut server_app, capacity);
            let mut client_app = client_app;
            let client = Endpoint::connect(&mut client_app, capacity);
            Pair {
                client_app,
                server_app,
                client,
                server,
            }
        }

        /// Moves bytes and FINs both ways until nothing changes.
        fn run(&mut self, hop: Duration, max_bytes_per_hop: usize) {
            for _ in 0..10_000 {
                let mut moved = false;
                let c2s = self
                    .client
                    .take_sent_upto(&mut self.client_app, max_bytes_per_hop);
                self.server.now = self.server.now + hop;
                self.client.now = self.server.now;
                if !c2s.is_empty() {
                    moved = true;
                    self.server.receive(&mut self.server_app, &c2s);
                }
                if self.client.fin_sent() && !self.server.fin_received {
                    moved = true;
                    self.server.peer_fin(&mut self.server_app);
                }
                let s2c = self
                    .server
                    .take_sent_upto(&mut self.server_app, max_bytes_per_hop);
                self.server.now = self.server.now + hop;
                self.client.now = self.server.now;
                if !s2c.is_empty() {
                    moved = true;
                    self.client.receive(&mut self.client_app, &s2c);
                }
                if self.server.fin_sent() && !self.client.fin_received {
                    moved = true;
                    self.client.peer_fin(&mut self.client_app);
                }
                if !moved {
                    break;
                }
            }
            if self.client.fin_sent() && self.server.fin_sent() {
                self.client.end(&mut self.client_app, CloseReason::Normal);
                self.server.end(&mut self.server_app, CloseReason::Normal);
            }
        }
    }

    #[test]
    fn connect_close_completes_one_request_and_the_server_closes_first() {
        let client = HttpClient::new(ClientMode::ConnectClose, "/", "10.0.0.1:8080");
        let mut pair = Pair::new(client, Http::default(), 64 * 1024);
        assert_eq!(
            pair.client.send.iter().copied().collect::<Vec<_>>(),
            b"GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n\r\n"
        );
        pair.run(Duration::from_micros(50), usize::MAX);
        assert_eq!(pair.client_app.completed(), 1);
        assert_eq!(pair.client_app.failed(), 0);
        assert_eq!(pair.server_app.requests(), 1);
        assert_eq!(pair.server.shutdown, Shutdown::Close);
        assert_eq!(pair.client.shutdown, Shutdown::Close);
        assert!(pair.client.closed && pair.server.closed);
        assert!(pair.client.refused == 0 && pair.server.refused == 0);
    }

    #[test]
    fn keep_alive_completes_all_requests_on_one_connection_and_measures_latency() {
        let client = HttpClient::new(ClientMode::KeepAlive { requests: 5 }, "/", "x");
        let mut pair = Pair::new(client, Http::default(), 64 * 1024);
        pair.run(Duration::from_micros(50), usize::MAX);
        assert_eq!(pair.client_app.completed(), 5);
        assert_eq!(pair.client_app.failed(), 0);
        assert_eq!(pair.server_app.requests(), 5);
        assert!(pair.client.closed && pair.server.closed);
        let latency = pair.client_app.request_latency();
        assert_eq!(latency.len(), 5);
        // Request out (one hop) and response back (one hop): 100 µs, in nanoseconds.
        assert!(
            (99_900..=100_100).contains(&latency.min()),
            "{}",
            latency.min()
        );
        assert!(
            (99_900..=100_100).contains(&latency.max()),
            "{}",
            latency.max()
        );
        let taken = pair
            .client_app
            .latencies()
            .expect("the client records latencies");
        assert_eq!(taken.get(LatencyKind::Request).len(), 5);
    }

    #[test]
    fn a_large_response_through_a_small_buffer_completes() {
        let client = HttpClient::new(ClientMode::KeepAlive { requests: 3 }, "/big", "x");
        let server = Http::new(HttpConfig {
            body: vec![7; 50_000].into(),
            ..HttpConfig::default()
        });
        let mut pair = Pair::new(client, server, 1500);
        pair.run(Duration::from_micros(10), 700);
        assert_eq!(pair.client_app.completed(), 3);
        assert_eq!(pair.client_app.failed(), 0);
        assert!(pair.client.closed && pair.server.closed);
    }

    #[test]
    fn a_500_counts_as_failed() {
        let mut app = HttpClient::new(ClientMode::KeepAlive { requests: 2 }, "/", "x");
        let mut conn = Endpoint::connect(&mut app, 4096);
        assert!(!conn.take_sent(&mut app).is_empty());
        conn.receive(
            &mut app,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nbad",
        );
        assert_eq!((app.completed(), app.failed()), (0, 1));
        assert_eq!(
            conn.take_sent(&mut app),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "the connection goes on after a framed error response"
        );
    }

    #[test]
    fn a_400_from_the_http_app_counts_as_failed() {
        let client = HttpClient::new(ClientMode::ConnectClose, "/a b", "x");
        let mut pair = Pair::new(client, Http::default(), 4096);
        // Corrupt the request on its way: the server answers 400 and closes.
        pair.client.send.clear();
        pair.server.receive(&mut pair.server_app, b"BAD\r\n\r\n");
        pair.run(Duration::from_micros(10), usize::MAX);
        assert_eq!(
            (pair.client_app.completed(), pair.client_app.failed()),
            (0, 1)
        );
    }

    #[test]
    fn a_response_without_content_length_is_read_until_close() {
        let mut app = HttpClient::new(ClientMode::ConnectClose, "/", "x");
        let mut conn = Endpoint::connect(&mut app, 4096);
        conn.take_sent(&mut app);
        conn.receive(&mut app, b"HTTP/1.0 200 OK\r\n\r\nsome ");
        conn.receive(&mut app, b"body");
        assert_eq!(app.completed(), 0);
        conn.peer_fin(&mut app);
        assert_eq!((app.completed(), app.failed()), (1, 0));
        assert_eq!(conn.shutdown, Shutdown::Close);
    }

    #[test]
    fn a_response_split_at_every_byte_completes() {
        let response =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for split in 0..=response.len() {
            let mut app = HttpClient::new(ClientMode::KeepAlive { requests: 2 }, "/", "x");
            let mut conn = Endpoint::connect(&mut app, 4096);
            conn.take_sent(&mut app);
            conn.receive(&mut app, &response[..split]);
            conn.receive(&mut app, &response[split..]);
            assert_eq!((app.completed(), app.failed()), (1, 0), "split at {split}");
        }
    }

    #[test]
    fn a_malformed_response_fails_and_resets() {
        for bad in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let mut app = HttpClient::new(ClientMode::ConnectClose, "/", "x");
            let mut conn = Endpoint::connect(&mut app, 4096);
            conn.receive(&mut app, bad);
            assert_eq!((app.completed(), app.failed()), (0, 1));
            assert_eq!(conn.shutdown, Shutdown::Abort);
        }
    }

    #[test]
    fn an_endless_response_head_fails_with_bounded_memory() {
        let mut app = HttpClient::new(ClientMode::ConnectClose, "/", "x");
        let mut conn = Endpoint::connect(&mut app, 4096);
        conn.receive(&mut app, b"HTTP/1.1 200 OK\r\nX: ");
        for _ in 0..20 {
            conn.receive(&mut app, &[b'a'; 1000]);
            let carried = conn.state.carry.as_ref().map_or(0, |c| c.bytes.len());
            assert!(carried <= MAX_RESPONSE_HEAD);
        }
        assert_eq!(app.failed(), 1);
        assert_eq!(conn.shutdown, Shutdown::Abort);
    }

    #[test]
    fn a_reset_mid_response_counts_as_failed() {
        let mut app = HttpClient::new(ClientMode::ConnectClose, "/", "x");
        let mut conn = Endpoint::connect(&mut app, 4096);
        conn.receive(
            &mut app,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        );
        conn.end(&mut app, CloseReason::Reset);
        assert_eq!((app.completed(), app.failed()), (0, 1));
    }

    /// The driver wakes `conn` with `due` at the endpoint's `now`.
    fn wake(app: &mut HttpClient, conn: &mut Endpoint<HttpClient>, due: Instant) {
        let tuple = crate::tcp::FourTuple {
            local_addr: [10, 0, 0, 2].into(),
            remote_addr: [10, 0, 0, 1].into(),
            local_port: 40000,
            remote_port: 8080,
        };
        let mut io = Io::new(
            crate::tcp::ConnId(1),
            tuple,
            conn.now,
            &mut conn.send,
            conn.capacity,
            &mut conn.shutdown,
            &mut conn.deadline,
        );
        app.on_wake(&mut conn.state, &mut io, due);
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    fn scheduled(period_ms: u64) -> HttpClient {
        HttpClient::new(ClientMode::KeepAlive { requests: 100 }, "/", "x").with_pacing(
            Pacing::Scheduled {
                period: Duration::from_millis(period_ms),
            },
        )
    }

    #[test]
    fn a_scheduled_request_goes_out_at_its_wake_and_is_timed_from_its_due_time() {
        let mut app = scheduled(10);
        let mut conn = Endpoint::connect(&mut app, 4096);
        assert!(
            conn.take_sent(&mut app).is_empty(),
            "nothing before the first wake"
        );
        let t = Instant::from_secs(5);
        conn.now = t + Duration::from_millis(2);
        wake(&mut app, &mut conn, t);
        assert_eq!(
            conn.take_sent(&mut app),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        conn.now = t + Duration::from_millis(5);
        conn.receive(&mut app, OK);
        assert_eq!(
            (app.completed(), app.due(), app.sent(), app.late()),
            (1, 1, 1, 0)
        );
        let lag = app.latencies.get(LatencyKind::SendLag);
        assert_eq!(lag.len(), 1, "one wake");
        assert!(
            (1_990_000..=2_010_000).contains(&lag.max()),
            "the wake came 2 ms after its due time: {}",
            lag.max()
        );
        let lat = app.request_latency();
        assert!(
            (4_990_000..=5_010_000).contains(&lat.max()),
            "{}",
            lat.max()
        );
        assert!(
            conn.take_sent(&mut app).is_empty(),
            "nothing more until the next wake"
        );
    }

    #[test]
    fn wakes_during_an_outstanding_request_queue_up_and_keep_their_due_times() {
        let mut app = scheduled(10);
        let mut conn = Endpoint::connect(&mut app, 4096);
        let t = Instant::from_secs(5);
        conn.now = t;
        wake(&mut app, &mut conn, t);
        for k in 1..3 {
            let due = t + Duration::from_millis(10 * k);
            conn.now = due;
            wake(&mut app, &mut conn, due);
        }
        assert_eq!(
            conn.take_sent(&mut app).len(),
            27,
            "one request out, two waiting"
        );
        // The first answer comes 25 ms late: the second request goes at once, timed from its
        // due time (t + 10 ms), and so does the third.
        conn.now = t + Duration::from_millis(25);
        conn.receive(&mut app, OK);
        assert_eq!(conn.take_sent(&mut app).len(), 27);
        conn.now = t + Duration::from_millis(26);
        conn.receive(&mut app, OK);
        conn.take_sent(&mut app);
        conn.now = t + Duration::from_millis(27);
        conn.receive(&mut app, OK);
        assert_eq!((app.due(), app.sent(), app.completed()), (3, 3, 3));
        let lat = app.request_latency();
        assert!(
            (24_900_000..=25_100_000).contains(&lat.max()),
            "{}",
            lat.max()
        );
        assert!(
            (6_990_000..=7_010_000).contains(&lat.min()),
            "{}",
            lat.min()
        );
        assert!(conn.take_sent(&mut app).is_empty());
    }

    #[test]
    fn an_answer_beyond_the_late_bound_counts_as_late() {
        let mut app = scheduled(1000).with_late_after(Duration::from_millis(100));
        let mut conn = Endpoint::connect(&mut app, 4096);
        let t = Instant::from_secs(5);
        conn.now = t;
        wake(&mut app, &mut conn, t);
        conn.take_sent(&mut app);
        conn.now = t + Duration::from_millis(150);
        conn.receive(&mut app, OK);
        assert_eq!((app.completed(), app.late()), (1, 1));
    }

    #[test]
    fn back_to_back_ignores_wakes_and_a_shut_down_connection_starts_no_request() {
        let mut app = HttpClient::new(ClientMode::KeepAlive { requests: 100 }, "/", "x");
        let mut conn = Endpoint::connect(&mut app, 4096);
        assert_eq!(
            conn.take_sent(&mut app).len(),
            27,
            "the first request at once"
        );
        wake(&mut app, &mut conn, Instant::ZERO);
        assert!(conn.take_sent(&mut app).is_empty());
        assert_eq!(app.due(), 0);
        // The driver half-closes while the request is outstanding: the answer completes it,
        // and no new request follows.
        conn.shutdown = Shutdown::Write;
        conn.receive(&mut app, OK);
        assert_eq!(app.completed(), 1);
        assert!(conn.send.is_empty());
        assert_eq!(conn.shutdown, Shutdown::Write, "not escalated to close");
    }

    #[test]
    fn connection_state_is_small() {
        println!(
            "size_of::<ClientConn>() = {}",
            std::mem::size_of::<ClientConn>()
        );
        assert!(std::mem::size_of::<ClientConn>() <= 64);
    }
}
