//! A minimal HTTP/1.1 responder for load generators (wrk, curl, ab): every request gets the
//! same pre-rendered response, whose body is configurable ([`HttpConfig::body`], e.g. a
//! [`generated_body`] of any size or a file's contents).
//!
//! Read first: RFC 9112 (HTTP/1.1 message syntax: §2.2 message parsing, §3 request line,
//! §5 field syntax, §6.3 message body length, §9.3 persistence) and RFC 9110 §15 (status codes).
//!
//! The parser is incremental over the byte stream: requests may arrive split at any byte and
//! pipelined several to a segment. A request head that lies whole inside one `on_data` call is
//! parsed in place; only a head split across calls is carried in [`HttpConn`], bounded by
//! [`HttpConfig::max_header_bytes`]. Serving a request is a copy of a pre-rendered head and of
//! the body into the send buffer; a response that does not fit is continued from `on_writable`
//! (the connection keeps only an offset: the body is shared by every connection and every
//! worker, never copied per connection), and no further request is read until it is fully
//! queued (so a client that does not read is throttled by TCP's window, not by our memory).
//!
//! Slow and idle clients are timed out as nginx times them out, with the connection's
//! deadline ([`Io::set_deadline`]): a request head must be complete within
//! [`HttpConfig::header_timeout`] of its first byte, or of the connection's start for the
//! first request (nginx's `client_header_timeout`, 60 s: `ngx_http_read_request_header` arms
//! the read timer once per head and does not re-arm it on every read, so a byte a second does
//! not keep a head alive); a keep-alive connection may be idle for
//! [`HttpConfig::keepalive_timeout`] from the end of its last response (queued in full) to its
//! next request's first byte (`keepalive_timeout`, 75 s, armed by `ngx_http_set_keepalive`).
//! Either way the connection is closed with a FIN and nothing else: nginx logs a 408 for a
//! header timeout but sends none (`ngx_http_close_request(r, NGX_HTTP_REQUEST_TIME_OUT)`
//! only records the status; `reset_timedout_connection` is off by default), and closes an
//! idle keep-alive connection quietly (`ngx_http_keepalive_handler`). Each is counted
//! ([`App::counters`]: `header_timeouts`, `idle_timeouts`).
//!
//! A response that closes the connection (`Connection: close`, an error) is followed by a
//! lingering close, as nginx's `ngx_http_set_lingering_close`: our FIN goes out after the
//! response (a half-close), and what the client still sends is read and dropped until its FIN
//! or [`LINGER`]; a plain close would answer that data with a RST (RFC 1122 §4.2.2.13), and a
//! RST can make the client's TCP drop the response before it is read.

use std::sync::Arc;
use std::time::Duration;

use super::{App, Io, Shutdown};
use crate::stats::{Latencies, LatencyKind};
use crate::time::Instant;

/// What the HTTP app serves and how much it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The body of every `200 OK` response, shared (not copied) by every connection and by
    /// every worker built from clones of this configuration.
    pub body: Arc<[u8]>,
    /// The `Content-Type` of that body.
    pub content_type: String,
    /// The largest request head (request line and header fields, with the blank line) accepted;
    /// a larger one gets `431 Request Header Fields Too Large`.
    pub max_header_bytes: usize,
    /// A request head must be complete this long after its first byte (the first request's:
    /// after the connection is established), or the connection is closed (nginx's
    /// `client_header_timeout`, 60 s). `None`: no limit.
    pub header_timeout: Option<Duration>,
    /// A keep-alive connection idle this long after its last response is closed (nginx's
    /// `keepalive_timeout`, 75 s). `None`: no limit.
    pub keepalive_timeout: Option<Duration>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body: Arc::from(&b"Hello from xdptcp\n"[..]),
            content_type: "text/plain".to_string(),
            max_header_bytes: 8192,
            header_timeout: Some(Duration::from_secs(60)),
            keepalive_timeout: Some(Duration::from_secs(75)),
        }
    }
}

/// Whether the connection persists after a `200 OK`, and how that is said on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persist {
    /// HTTP/1.1 default: no `Connection` header.
    KeepAlive = 0,
    /// HTTP/1.0 client that asked for keep-alive: it needs `Connection: keep-alive` back, or it
    /// waits for us to close (RFC 9112 §9.3).
    KeepAlive10 = 1,
    /// `Connection: close`; we close after the response.
    Close = 2,
}

/// The response being queued on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// `200 OK` with the body.
    Ok(Persist),
    /// `200 OK` to a HEAD request: the same head, no body.
    Head(Persist),
    /// `400 Bad Request`, then close.
    BadRequest,
    /// `431 Request Header Fields Too Large`, then close.
    HeadersTooLarge,
    /// `501 Not Implemented` (a request body with `Transfer-Encoding`), then close.
    NotImplemented,
}

impl Reply {
    fn closes(self) -> bool {
        !matches!(
            self,
            Reply::Ok(Persist::KeepAlive | Persist::KeepAlive10)
                | Reply::Head(Persist::KeepAlive | Persist::KeepAlive10)
        )
    }
}

const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: xdptcp\r\n\
Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n";
const HEADERS_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
Server: xdptcp\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\n\
Request Header Fields Too Large\n";
const NOT_IMPLEMENTED: &[u8] = b"HTTP/1.1 501 Not Implemented\r\nServer: xdptcp\r\n\
Content-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nNot Implemented\n";

/// A request head split across `on_data` calls, carried until its blank line arrives.
///
/// Boxed so that a connection that is not in the middle of a head pays one pointer for it.
#[derive(Debug, Default)]
pub(crate) struct Carry {
    pub(crate) bytes: Vec<u8>,
}

/// What the connection's deadline ([`Io::set_deadline`]) stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Wait {
    /// A request head is awaited: the first since the connection's start, or one whose first
    /// byte has come ([`HttpConfig::header_timeout`]).
    #[default]
    Head,
    /// Nothing is awaited since the last response was queued ([`HttpConfig::keepalive_timeout`]).
    Idle,
    /// No deadline: a response is being queued, a request body read, or the connection closes.
    Busy,
    /// A closing response is queued and our FIN follows it; what the client still sends is
    /// read and dropped until its FIN or [`LINGER`] (nginx's lingering close).
    Linger,
}

/// How long a connection closed after a response goes on reading what the client still sends
/// (nginx's `lingering_timeout`, 5 s; unlike nginx's it is not pushed back by reads, so a
/// client cannot hold it longer): a client still sending when we close would otherwise get a
/// RST for its data (RFC 1122 §4.2.2.13), which may destroy the response it has not yet read.
pub const LINGER: Duration = Duration::from_secs(5);

/// Per-connection state of [`Http`]: where we are in the request stream.
#[derive(Debug, Default)]
pub struct HttpConn {
    /// The start of a request head that did not end in the data seen so far.
    carry: Option<Box<Carry>>,
    /// Request body bytes (`Content-Length`) still to skip.
    body_left: u64,
    /// Bytes of `reply` already queued.
    offset: usize,
    /// The response being queued, if it is not yet fully in the send buffer.
    reply: Option<Reply>,
    /// No further request will be read: input is consumed and ignored.
    draining: bool,
    /// The peer's FIN came while a response was still being queued: close after it.
    peer_closed: bool,
    /// What the deadline is for.
    wait: Wait,
}

/// A body of `len` bytes in which every 16-byte line is unique, so a client can check it byte
/// for byte without a copy: line `i` is `i * 16` in 15 lowercase hex digits and a newline
/// (`000000000000000\n000000000000010\n...`), the last line cut at `len`.
pub fn generated_body(len: usize) -> Arc<[u8]> {
    let mut body = Vec::with_capacity(len + 16);
    let mut offset = 0usize;
    while body.len() < len {
        body.extend_from_slice(format!("{offset:015x}\n").as_bytes());
        offset += 16;
    }
    body.truncate(len);
    body.into()
}

/// The HTTP/1.1 responder: one per worker; its per-connection state is [`HttpConn`].
#[derive(Debug)]
pub struct Http {
    /// The heads of the `200 OK` responses, indexed by [`Persist`] (a HEAD request gets just
    /// the head).
    ok_head: [Vec<u8>; 3],
    /// The body of every `200 OK`, shared.
    body: Arc<[u8]>,
    max_header_bytes: usize,
    header_timeout: Option<Duration>,
    keepalive_timeout: Option<Duration>,
    requests: u64,
    errors: u64,
    /// Connections closed because a request head was not complete in time.
    header_timeouts: u64,
    /// Keep-alive connections closed for being idle too long.
    idle_timeouts: u64,
    /// Arrival times of answered requests not yet handed to the TX ring, as (time, count);
    /// [`App::on_flushed`] turns them into service times. Bounded: beyond
    /// [`MAX_PENDING`] entries requests are counted in `unmeasured` instead.
    pending: Vec<(Instant, u32)>,
    unmeasured: u64,
    latencies: Latencies,
}

/// Most distinct arrival times kept between two flushes (a worker flushes after every batch,
/// so one or a few entries is the norm).
const MAX_PENDING: usize = 4096;

impl Http {
    /// Renders the responses once, so that serving a request is a copy.
    pub fn new(config: HttpConfig) -> Self {
        // A CR or LF in the configured type would inject header fields.
        let content_type: String = config
            .content_type
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let render = |connection: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\n{connection}\r\n",
                config.body.len()
            )
            .into_bytes()
        };
        Http {
            ok_head: [
                render(""),
                render("Connection: keep-alive\r\n"),
                render("Connection: close\r\n"),
            ],
            body: config.body,
            max_header_bytes: config.max_header_bytes,
            header_timeout: config.header_timeout,
            keepalive_timeout: config.keepalive_timeout,
            requests: 0,
            errors: 0,
            header_timeouts: 0,
            idle_timeouts: 0,
            pending: Vec::new(),
            unmeasured: 0,
            latencies: Latencies::default(),
        }
    }

    /// Requests answered with `200 OK`, over all connections.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Requests answered with an error (400, 431, 501), over all connections.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Connections closed because a request head was not complete within the header timeout.
    pub fn header_timeouts(&self) -> u64 {
        self.header_timeouts
    }

    /// Keep-alive connections closed after the keep-alive timeout without a request.
    pub fn idle_timeouts(&self) -> u64 {
        self.idle_timeouts
    }

    /// After the app acted on a connection: the deadline for what it now waits for. A head's
    /// deadline runs from its first byte and is never pushed back by later bytes; the idle one
    /// from the moment the last response was fully queued.
    fn update_deadline(&self, st: &mut HttpConn, io: &mut Io<'_>) {
        let now = io.now();
        if st.draining && st.reply.is_none() && io.shutdown() == Shutdown::Write {
            if st.wait != Wait::Linger {
                st.wait = Wait::Linger;
                io.set_deadline(Some(now + LINGER));
            }
        } else if st.draining || st.reply.is_some() || st.body_left > 0 {
            st.wait = Wait::Busy;
            io.set_deadline(None);
        } else if st.carry.is_some() {
            if st.wait != Wait::Head {
                st.wait = Wait::Head;
                io.set_deadline(self.header_timeout.map(|d| now + d));
            }
        } else if st.wait == Wait::Busy {
            st.wait = Wait::Idle;
            io.set_deadline(self.keepalive_timeout.map(|d| now + d));
        }
    }

    /// A reply as its head and its body (empty but for a `200 OK` to a GET).
    fn reply_parts(&self, reply: Reply) -> [&[u8]; 2] {
        match reply {
            Reply::Ok(p) => [&self.ok_head[p as usize], &self.body],
            Reply::Head(p) => [&self.ok_head[p as usize], &[]],
            Reply::BadRequest => [BAD_REQUEST, &[]],
            Reply::HeadersTooLarge => [HEADERS_TOO_LARGE, &[]],
            Reply::NotImplemented => [NOT_IMPLEMENTED, &[]],
        }
    }

    /// Queues what fits of the current reply. Returns whether it is now fully queued (and, if
    /// it closes the connection, the close is requested).
    fn continue_reply(&self, st: &mut HttpConn, io: &mut Io<'_>) -> bool {
        let Some(reply) = st.reply else {
            return true;
        };
        // `offset` counts through the head and then the body.
        let parts = self.reply_parts(reply);
        let mut start = 0;
        for part in parts {
            if let Some(rest) = st.offset.checked_sub(start).and_then(|o| part.get(o..)) {
                let n = io.write(rest);
                st.offset += n;
                if n < rest.len() {
                    break;
                }
            }
            start += part.len();
        }
        if st.offset < parts[0].len() + parts[1].len() {
            if io.shutdown() == Shutdown::Open {
                return false;
            }
            // Someone shut the connection under us: nothing more can be queued.
            st.draining = true;
        }
        st.reply = None;
        st.offset = 0;
        if st.peer_closed {
            io.close();
        } else if reply.closes() {
            // Lingering close: our FIN now, their data read and dropped until theirs.
            io.shutdown_write();
        }
        st.draining |= reply.closes() || st.peer_closed;
        true
    }

    /// Notes that a request that arrived at `now` was answered, for its service time.
    fn note_request(&mut self, now: Instant) {
        if let Some((t, n)) = self.pending.last_mut() {
            if *t == now {
                *n += 1;
                return;
            }
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.push((now, 1));
        } else {
            self.unmeasured += 1;
        }
    }

    fn start_reply(&mut self, st: &mut HttpConn, parsed: Result<Request, Reply>, now: Instant) {
        let reply = match parsed {
            Ok(req) => {
                self.requests += 1;
                self.note_request(now);
                st.body_left = req.body_len;
                if req.head_only {
                    Reply::Head(req.persist)
                } else {
                    Reply::Ok(req.persist)
                }
            }
            Err(error) => {
                self.errors += 1;
                error
            }
        };
        st.reply = Some(reply);
        st.offset = 0;
        st.wait = Wait::Busy;
        // After a closing reply, nothing more is read (RFC 9112 §9.6).
        st.draining = reply.closes();
    }

    /// Reads what `data` holds: request heads, bodies to skip, responses queued in turn.
    /// Returns how much was consumed.
    fn read(&mut self, st: &mut HttpConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            if st.reply.is_some() && !self.continue_reply(st, io) {
                // The send buffer is full. Leave the next requests unread (backpressure)
                // unless nothing more will be read anyway.
                return if st.draining { data.len() } else { pos };
            }
            if st.draining {
                return data.len();
            }
            let rest = &data[pos..];
            if rest.is_empty() {
                return pos;
            }
            if st.body_left > 0 {
                let n = st.body_left.min(rest.len() as u64);
                st.body_left -= n;
                pos += n as usize;
                continue;
            }
            match scan_head(&mut st.carry, rest, self.max_header_bytes, parse_request) {
                Scan::Partial => return data.len(),
                Scan::TooLarge => {
                    pos = data.len();
                    self.start_reply(st, Err(Reply::HeadersTooLarge), io.now());
                }
                Scan::Complete(used, parsed) => {
                    pos += used;
                    self.start_reply(st, parsed, io.now());
                }
            }
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new(HttpConfig::default())
    }
}

impl App for Http {
    type State = HttpConn;

    fn on_connected(&mut self, st: &mut HttpConn, io: &mut Io<'_>) {
        // The first request's head is timed from the connection's start (nginx arms
        // `client_header_timeout` when it accepts).
        st.wait = Wait::Head;
        io.set_deadline(self.header_timeout.map(|d| io.now() + d));
    }

    fn on_data(&mut self, st: &mut HttpConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        let consumed = self.read(st, io, data);
        self.update_deadline(st, io);
        consumed
    }

    fn on_writable(&mut self, st: &mut HttpConn, io: &mut Io<'_>) {
        // Unread requests are offered again by the engine right after this.
        self.continue_reply(st, io);
        self.update_deadline(st, io);
    }

    fn on_peer_closed(&mut self, st: &mut HttpConn, io: &mut Io<'_>) {
        if st.reply.is_some() {
            st.peer_closed = true;
        } else {
            st.draining = true;
            io.close();
        }
        self.update_deadline(st, io);
    }

    /// A head not complete in time, or a keep-alive connection idle too long: closed with a
    /// FIN, no response (as nginx does, see the module documentation); a lingering close whose
    /// client did not close within [`LINGER`]: closed.
    fn on_deadline(&mut self, st: &mut HttpConn, io: &mut Io<'_>) {
        match st.wait {
            Wait::Head => self.header_timeouts += 1,
            Wait::Idle => self.idle_timeouts += 1,
            Wait::Linger => {}
            Wait::Busy => return,
        }
        st.wait = Wait::Busy;
        st.carry = None;
        st.draining = true;
        io.close();
    }

    /// Request service time: from the request's arrival (the `now` of the RX batch it came
    /// in) to its response handed to the TX ring.
    fn on_flushed(&mut self, now: Instant) {
        for (at, n) in self.pending.drain(..) {
            for _ in 0..n {
                self.latencies.record(LatencyKind::Request, now - at);
            }
        }
    }

    fn latencies(&mut self) -> Option<&mut Latencies> {
        Some(&mut self.latencies)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("requests", self.requests),
            ("errors", self.errors),
            ("unmeasured", self.unmeasured),
            ("header_timeouts", self.header_timeouts),
            ("idle_timeouts", self.idle_timeouts),
        ]
    }
}

/// What a complete request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    head_only: bool,
    persist: Persist,
    body_len: u64,
}

/// The outcome of looking for the end of a message head in newly arrived bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan<R> {
    /// No end yet: all the bytes were carried.
    Partial,
    /// The head is longer than allowed; the carry was dropped.
    TooLarge,
    /// The head ended after this many bytes of the new data; its parse result.
    Complete(usize, R),
}

/// Finds a message head (up to and including the blank line) in `carry` followed by `data`,
/// carrying an unfinished head across calls; the head is parsed in place when it lies whole
/// inside `data`. Blank lines before a head are skipped (RFC 9112 §2.2). The carry never grows
/// beyond `max` bytes.
pub(crate) fn scan_head<R>(
    carry: &mut Option<Box<Carry>>,
    data: &[u8],
    max: usize,
    parse: impl FnOnce(&[u8]) -> R,
) -> Scan<R> {
    let carried = carry.as_ref().map_or(0, |c| c.bytes.len());
    let skip = if carried == 0 {
        data.iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(data.len())
    } else {
        0
    };
    let data = &data[skip..];
    let room = max.saturating_sub(carried);
    let window = &data[..data.len().min(room)];
    let before = carry.as_ref().map_or(&[][..], |c| &c.bytes[..]);
    match head_end(before, window) {
        Some(end) => {
            let parsed = match carry.take() {
                Some(mut c) => {
                    c.bytes.extend_from_slice(&window[..end]);
                    parse(&c.bytes)
                }
                None => parse(&window[..end]),
            };
            Scan::Complete(skip + end, parsed)
        }
        None if data.len() > room => {
            *carry = None;
            Scan::TooLarge
        }
        None => {
            if !window.is_empty() {
                carry
                    .get_or_insert_with(Box::default)
                    .bytes
                    .extend_from_slice(window);
            }
            Scan::Partial
        }
    }
}

/// The offset in `data` just past the blank line ending a head ("\r\n\r\n" or bare "\n\n"),
/// where `before` holds the bytes of the head that came before `data`.
fn head_end(before: &[u8], data: &[u8]) -> Option<usize> {
    // The byte `back` positions before `data[i]`, looking into `before` if need be.
    let behind = |i: usize, back: usize| -> Option<u8> {
        match i.checked_sub(back) {
            Some(j) => Some(data[j]),
            None => before.len().checked_sub(back - i).map(|j| before[j]),
        }
    };
    let mut from = 0;
    while let Some(k) = data[from..].iter().position(|&b| b == b'\n') {
        let i = from + k;
        match behind(i, 1) {
            Some(b'\n') => return Some(i + 1),
            Some(b'\r') if behind(i, 2) == Some(b'\n') => return Some(i + 1),
            _ => {}
        }
        from = i + 1;
    }
    None
}

/// The lines of a head without their line endings, up to (not including) the blank line.
pub(crate) fn head_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
}

/// A token character (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits a field line into its name and its value without surrounding whitespace
/// (RFC 9112 §5). `None` if it is not a valid field line (this includes obsolete line
/// folding, RFC 9112 §5.2, which we reject).
pub(crate) fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return None;
    }
    Some((name, value.trim_ascii()))
}

/// The comma-separated tokens of a list-valued field, trimmed.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A `Content-Length` value: digits only, no overflow (RFC 9112 §6.3).
pub(crate) fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The minor version of an `HTTP/1.x` version string.
pub(crate) fn http1_minor(version: &[u8]) -> Option<u8> {
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => Some(d - b'0'),
        _ => None,
    }
}

/// Parses a complete request head; the error is the reply to send.
fn parse_request(head: &[u8]) -> Result<Request, Reply> {
    let mut lines = head_lines(head);
    let line = lines.next().ok_or(Reply::BadRequest)?;
    // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reply::BadRequest);
    };
    if method.is_empty()
        || !method.iter().all(|&b| is_tchar(b))
        || target.is_empty()
        || !target.iter().all(|&b| b > b' ' && b != 0x7f)
    {
        return Err(Reply::BadRequest);
    }
    let minor = http1_minor(version).ok_or(Reply::BadRequest)?;

    let (mut close, mut keep_alive, mut chunked) = (false, false, false);
    let mut body_len: Option<u64> = None;
    for line in lines {
        let (name, value) = split_field(line).ok_or(Reply::BadRequest)?;
        if name.eq_ignore_ascii_case(b"connection") {
            for token in tokens(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(value).ok_or(Reply::BadRequest)?;
            // Differing lengths make the message boundary ambiguous (RFC 9112 §6.3 item 5).
            if body_len.is_some_and(|m| m != n) {
                return Err(Reply::BadRequest);
            }
            body_len = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        }
    }
    if chunked {
        // We do not decode request bodies in transfer codings (RFC 9112 §6.1: 501).
        return Err(Reply::NotImplemented);
    }
    let persist = match (minor, close, keep_alive) {
        (_, true, _) => Persist::Close,
        (0, false, true) => Persist::KeepAlive10,
        (0, false, false) => Persist::Close,
        _ => Persist::KeepAlive,
    };
    Ok(Request {
        head_only: method == b"HEAD",
        persist,
        body_len: body_len.unwrap_or(0),
    })
}

/// A stand-in for the engine in app tests: it offers data, keeps what the app left unread and
/// offers it again, drains the send buffer and then calls `on_writable`.
#[cfg(test)]
pub(crate) mod harness {
    use std::collections::VecDeque;
    use std::net::{IpAddr, Ipv4Addr};

    use crate::app::{App, CloseReason, Io, Shutdown};
    use crate::tcp::{ConnId, FourTuple};
    use crate::time::Instant;

    /// One side of a connection, as the engine holds it.
    pub(crate) struct Endpoint<A: App> {
        pub(crate) state: A::State,
        /// Bytes offered to the app and not consumed (the receive buffer).
        pub(crate) unread: Vec<u8>,
        pub(crate) send: VecDeque<u8>,
        pub(crate) capacity: usize,
        pub(crate) shutdown: Shutdown,
        /// The app's deadline ([`Io::set_deadline`]); [`Endpoint::advance`] fires it.
        pub(crate) deadline: Option<Instant>,
        pub(crate) now: Instant,
        /// The peer's FIN arrived.
        pub(crate) fin_received: bool,
        /// `on_peer_closed` was called.
        pub(crate) told_peer_closed: bool,
        /// Bytes that arrived after the app closed (a real engine would reset).
        pub(crate) refused: usize,
        pub(crate) closed: bool,
    }

    impl<A: App> Endpoint<A> {
        /// An established connection with a send buffer of `capacity` bytes.
        pub(crate) fn connect(app: &mut A, capacity: usize) -> Self {
            let mut e = Endpoint {
                state: A::State::default(),
                unread: Vec::new(),
                send: VecDeque::new(),
                capacity,
                shutdown: Shutdown::Open,
                deadline: None,
                now: Instant::ZERO,
                fin_received: false,
                told_peer_closed: false,
                refused: 0,
                closed: false,
            };
            e.call(|s, io| app.on_connected(s, io));
            e
        }

        fn call<R>(&mut self, f: impl FnOnce(&mut A::State, &mut Io<'_>) -> R) -> R {
            let tuple = FourTuple {
                local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                local_port: 8080,
                remote_port: 40000,
            };
            let mut io = Io::new(
                ConnId(1),
                tuple,
                self.now,
                &mut self.send,
                self.capacity,
                &mut self.shutdown,
                &mut self.deadline,
            );
            f(&mut self.state, &mut io)
        }

        /// Moves the clock to `now`, calling `on_deadline` if the app's deadline has passed
        /// (as the engine does: cleared first, once per deadline).
        pub(crate) fn advance(&mut self, app: &mut A, now: Instant) {
            self.now = now;
            if self.deadline.is_some_and(|at| at <= now) {
                self.deadline = None;
                self.call(|s, io| app.on_deadline(s, io));
            }
        }

        /// Data from the peer arrives.
        pub(crate) fn receive(&mut self, app: &mut A, data: &[u8]) {
            if self.shutdown >= Shutdown::Close {
                self.refused += data.len();
                return;
            }
            self.unread.extend_from_slice(data);
            self.offer(app);
        }

        /// Offers the unread bytes, then tells of the peer's FIN once they are all consumed.
        pub(crate) fn offer(&mut self, app: &mut A) {
            if !self.unread.is_empty() && self.shutdown < Shutdown::Close {
                let data = std::mem::take(&mut self.unread);
                let n = self.call(|s, io| app.on_data(s, io, &data));
                assert!(n <= data.len(), "consumed more than offered");
                self.unread = data[n..].to_vec();
            }
            if self.fin_received && self.unread.is_empty() && !self.told_peer_closed {
                self.told_peer_closed = true;
                self.call(|s, io| app.on_peer_closed(s, io));
            }
        }

        /// The peer's FIN arrives.
        pub(crate) fn peer_fin(&mut self, app: &mut A) {
            self.fin_received = true;
            self.offer(app);
        }

        /// The peer reads (and acknowledges) up to `max` bytes of what we queued; the freed
        /// space is reported with `on_writable`, then unread bytes are offered again.
        pub(crate) fn take_sent_upto(&mut self, app: &mut A, max: usize) -> Vec<u8> {
            let n = max.min(self.send.len());
            let sent: Vec<u8> = self.send.drain(..n).collect();
            if n > 0 && self.shutdown < Shutdown::Write {
                self.call(|s, io| app.on_writable(s, io));
                self.offer(app);
            }
            sent
        }

        /// The peer reads everything we queued.
        pub(crate) fn take_sent(&mut self, app: &mut A) -> Vec<u8> {
            self.take_sent_upto(app, usize::MAX)
        }

        /// Our FIN has gone out: we shut down writing and all queued data is read.
        pub(crate) fn fin_sent(&self) -> bool {
            matches!(self.shutdown, Shutdown::Write | Shutdown::Close) && self.send.is_empty()
        }

        /// The connection ends.
        pub(crate) fn end(&mut self, app: &mut A, reason: CloseReason) {
            if !self.closed {
                self.closed = true;
                app.on_closed(&mut self.state, reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::harness::Endpoint;
    use super::*;

    const BODY: &[u8] = b"Hello from xdptcp\n";
    const OK_KEEP: &[u8] = b"HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\n\
Content-Length: 18\r\n\r\nHello from xdptcp\n";
    const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\n\
Content-Length: 18\r\nConnection: close\r\n\r\nHello from xdptcp\n";
    const OK_KEEP10: &[u8] = b"HTTP/1.1 200 OK\r\nServer: xdptcp\r\nContent-Type: text/plain\r\n\
Content-Length: 18\r\nConnection: keep-alive\r\n\r\nHello from xdptcp\n";
    const CURL: &[u8] =
        b"GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    const WRK: &[u8] = b"GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n\r\n";
    const WRK_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n\r\n";

    fn serve(requests: &[&[u8]]) -> (Http, Endpoint<Http>, Vec<u8>) {
        let mut app = Http::default();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        for r in requests {
            conn.receive(&mut app, r);
        }
        let out = conn.take_sent(&mut app);
        (app, conn, out)
    }

    #[test]
    fn one_get_gets_one_200_with_exact_bytes() {
        let (app, conn, out) = serve(&[b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"]);
        assert_eq!(out, OK_KEEP);
        assert_eq!(conn.shutdown, Shutdown::Open);
        assert_eq!((app.requests(), app.errors()), (1, 0));
    }

    #[test]
    fn curls_request_gets_a_keep_alive_200() {
        let (_, conn, out) = serve(&[CURL]);
        assert_eq!(out, OK_KEEP);
        assert_eq!(conn.shutdown, Shutdown::Open);
        assert!(conn.unread.is_empty());
    }

    #[test]
    fn wrks_request_gets_a_keep_alive_200() {
        let (_, conn, out) = serve(&[WRK, WRK]);
        assert_eq!(out, [OK_KEEP, OK_KEEP].concat());
        assert_eq!(conn.shutdown, Shutdown::Open);
    }

    #[test]
    fn wrk_with_connection_close_gets_a_close_200_and_we_close() {
        let (_, conn, out) = serve(&[WRK_CLOSE]);
        assert_eq!(out, OK_CLOSE);
        assert_eq!(conn.shutdown, Shutdown::Write);
    }

    #[test]
    fn connection_header_is_case_insensitive_and_may_list_several_tokens() {
        let (_, conn, out) = serve(&[b"GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n"]);
        assert_eq!(out, OK_CLOSE);
        assert_eq!(conn.shutdown, Shutdown::Write);
    }

    #[test]
    fn http10_closes_unless_it_asks_for_keep_alive() {
        let (_, conn, out) = serve(&[b"GET / HTTP/1.0\r\n\r\n"]);
        assert_eq!(out, OK_CLOSE);
        assert_eq!(conn.shutdown, Shutdown::Write);

        let (_, conn, out) = serve(&[b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"]);
        assert_eq!(out, OK_KEEP10);
        assert_eq!(conn.shutdown, Shutdown::Open);
    }

    #[test]
    fn input_after_a_close_response_is_consumed_and_ignored() {
        let (app, conn, out) = serve(&[&[WRK_CLOSE, WRK, b"garbage"].concat()]);
        assert_eq!(out, OK_CLOSE);
        assert!(conn.unread.is_empty());
        assert_eq!(app.requests(), 1);
    }

    #[test]
    fn a_request_split_at_every_byte_position_gets_the_same_response() {
        for split in 0..=CURL.len() {
            let (_, conn, out) = serve(&[&CURL[..split], &CURL[split..]]);
            assert_eq!(out, OK_KEEP, "split at {split}");
            assert!(conn.unread.is_empty());
            assert!(
                conn.state.carry.is_none(),
                "carry is freed once the head is done"
            );
        }
        let bytes: Vec<&[u8]> = CURL.chunks(1).collect();
        let (_, _, out) = serve(&bytes);
        assert_eq!(out, OK_KEEP, "one byte at a time");
    }

    #[test]
    fn bare_newlines_end_a_request_too() {
        let (_, _, out) = serve(&[b"GET / HTTP/1.1\nHost: x\n\n"]);
        assert_eq!(out, OK_KEEP);
        let (_, _, out) = serve(&[b"GET / HTTP/1.1\nHost: x\n", b"\n"]);
        assert_eq!(out, OK_KEEP);
    }

    #[test]
    fn pipelined_requests_get_responses_in_order() {
        let three = [WRK, b"HEAD / HTTP/1.1\r\n\r\n", WRK_CLOSE].concat();
        let (app, conn, out) = serve(&[&three]);
        let head = &OK_KEEP[..OK_KEEP.len() - BODY.len()];
        assert_eq!(out, [OK_KEEP, head, OK_CLOSE].concat());
        assert_eq!(conn.shutdown, Shutdown::Write);
        assert_eq!(app.requests(), 3);
    }

    #[test]
    fn a_request_whose_tail_shares_a_call_with_the_next_ones_start() {
        let two = [WRK, WRK].concat();
        let (_, _, out) = serve(&[&two[..30], &two[30..50], &two[50..]]);
        assert_eq!(out, [OK_KEEP, OK_KEEP].concat());
    }

    #[test]
    fn blank_lines_before_a_request_are_ignored() {
        let (_, _, out) = serve(&[b"\r\n", b"\r\nGET / HTTP/1.1\r\n\r\n"]);
        assert_eq!(out, OK_KEEP);
    }

    #[test]
    fn head_gets_the_headers_without_the_body() {
        let (_, _, out) = serve(&[b"HEAD / HTTP/1.1\r\n\r\n"]);
        assert_eq!(out, &OK_KEEP[..OK_KEEP.len() - BODY.len()]);
        assert!(out.ends_with(b"Content-Length: 18\r\n\r\n"));
    }

    #[test]
    fn a_response_larger_than_the_send_buffer_is_completed_through_on_writable() {
        let body = generated_body(10_000);
        let mut app = Http::new(HttpConfig {
            body: body.clone(),
            ..HttpConfig::default()
        });
        let mut conn = Endpoint::connect(&mut app, 1000);
        conn.receive(&mut app, &[WRK, WRK].concat());
        assert_eq!(
            conn.unread, WRK,
            "the second request waits for the first response"
        );
        let mut out = Vec::new();
        for _ in 0..100 {
            out.extend(conn.take_sent_upto(&mut app, 700));
        }
        let expected = String::from_utf8_lossy(&OK_KEEP[..OK_KEEP.len() - BODY.len()])
            .replace("18", "10000")
            .into_bytes();
        let one = [&expected[..], &body[..]].concat();
        assert_eq!(out, [&one[..], &one].concat());
        assert!(conn.unread.is_empty());
        assert_eq!(app.requests(), 2);
    }

    #[test]
    fn generated_bodies_have_the_exact_length_and_unique_lines() {
        assert!(generated_body(0).is_empty());
        assert_eq!(
            &generated_body(40)[..],
            b"000000000000000\n000000000000010\n00000000"
        );
        let body = generated_body(1 << 20);
        assert_eq!(body.len(), 1 << 20);
        let lines: std::collections::HashSet<&[u8]> = body.chunks(16).collect();
        assert_eq!(lines.len(), (1 << 20) / 16, "every 16-byte line is unique");
    }

    #[test]
    fn a_large_body_is_shared_by_every_worker_and_streamed_byte_exact_with_head_splits() {
        let config = HttpConfig {
            body: generated_body(300_001),
            content_type: "application/octet-stream".into(),
            ..HttpConfig::default()
        };
        let mut app = Http::new(config.clone());
        let other_worker = Http::new(config.clone());
        assert!(
            Arc::ptr_eq(&app.body, &other_worker.body),
            "no copy per worker"
        );
        // Send buffers smaller than the head, and reads that cut it anywhere.
        for (capacity, read) in [(10, 7), (100, 33), (4096, 1448)] {
            let mut conn = Endpoint::connect(&mut app, capacity);
            conn.receive(&mut app, WRK_CLOSE);
            let mut out = Vec::new();
            while !conn.fin_sent() {
                out.extend(conn.take_sent_upto(&mut app, read));
            }
            let head = b"HTTP/1.1 200 OK\r\nServer: xdptcp\r\n\
Content-Type: application/octet-stream\r\nContent-Length: 300001\r\nConnection: close\r\n\r\n";
            assert_eq!(&out[..head.len()], head, "capacity {capacity}");
            assert!(out[head.len()..] == config.body[..], "capacity {capacity}");
        }
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        conn.receive(&mut app, b"HEAD / HTTP/1.1\r\n\r\n");
        let out = conn.take_sent(&mut app);
        assert!(
            out.ends_with(b"Content-Length: 300001\r\n\r\n"),
            "HEAD: no body"
        );
    }

    #[test]
    fn peer_close_during_a_large_response_closes_after_it() {
        let mut app = Http::new(HttpConfig {
            body: vec![b'x'; 5000].into(),
            ..HttpConfig::default()
        });
        let mut conn = Endpoint::connect(&mut app, 1000);
        conn.receive(&mut app, WRK);
        conn.peer_fin(&mut app);
        assert_eq!(
            conn.shutdown,
            Shutdown::Open,
            "the response is not fully queued"
        );
        let mut n = 0;
        for _ in 0..10 {
            n += conn.take_sent(&mut app).len();
        }
        assert!(n > 5000);
        assert_eq!(conn.shutdown, Shutdown::Close);
    }

    #[test]
    fn content_length_body_is_skipped_even_when_split() {
        let req = [
            &b"POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world"[..],
            WRK,
        ]
        .concat();
        for split in 0..=req.len() {
            let (app, conn, out) = serve(&[&req[..split], &req[split..]]);
            assert_eq!(out, [OK_KEEP, OK_KEEP].concat(), "split at {split}");
            assert!(conn.unread.is_empty());
            assert_eq!(app.errors(), 0);
        }
    }

    #[test]
    fn garbage_gets_400_and_close() {
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        ] {
            let (app, conn, out) = serve(&[garbage, WRK]);
            assert_eq!(out, BAD_REQUEST, "{:?}", String::from_utf8_lossy(garbage));
            assert_eq!(conn.shutdown, Shutdown::Write);
            assert!(conn.unread.is_empty());
            assert_eq!((app.requests(), app.errors()), (0, 1));
        }
    }

    #[test]
    fn chunked_request_gets_501_and_close() {
        let (app, conn, out) = serve(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ]);
        assert_eq!(out, NOT_IMPLEMENTED);
        assert_eq!(conn.shutdown, Shutdown::Write);
        assert_eq!(app.errors(), 1);
    }

    #[test]
    fn an_endless_header_gets_431_and_memory_stays_bounded() {
        let mut app = Http::default();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        conn.receive(&mut app, b"GET / HTTP/1.1\r\nX-Long: ");
        for _ in 0..8 {
            conn.receive(&mut app, &[b'a'; 1000]);
            let carried = conn.state.carry.as_ref().map_or(0, |c| c.bytes.len());
            assert!(carried <= 8192);
        }
        assert_eq!(conn.take_sent(&mut app), b"");
        conn.receive(&mut app, &[b'a'; 1000]);
        assert!(conn.state.carry.is_none());
        assert_eq!(conn.take_sent(&mut app), HEADERS_TOO_LARGE);
        assert_eq!(conn.shutdown, Shutdown::Write);
        assert!(conn.unread.is_empty());
        assert_eq!(app.errors(), 1);
    }

    #[test]
    fn a_head_of_exactly_max_header_bytes_is_accepted() {
        let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
        req.resize(8192 - 4, b'a');
        req.extend_from_slice(b"\r\n\r\n");
        let (_, _, out) = serve(&[&req[..100], &req[100..]]);
        assert_eq!(out, OK_KEEP);
        req.insert(20, b'a');
        let (_, _, out) = serve(&[&req[..100], &req[100..]]);
        assert_eq!(out, HEADERS_TOO_LARGE);
        let (_, _, out) = serve(&[&req]);
        assert_eq!(out, HEADERS_TOO_LARGE);
    }

    #[test]
    fn peer_close_closes() {
        let mut app = Http::default();
        let mut conn = Endpoint::connect(&mut app, 1024);
        conn.receive(&mut app, b"GET / HT");
        conn.peer_fin(&mut app);
        assert_eq!(conn.shutdown, Shutdown::Close);
        assert!(conn.take_sent(&mut app).is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_carry_stays_bounded() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            let mut app = Http::new(HttpConfig {
                max_header_bytes: 64,
                ..HttpConfig::default()
            });
            let mut conn = Endpoint::connect(&mut app, 256);
            for _ in 0..20 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"GET / HTTP/1.0\r\n:Content-Length: 3Connection: close";
                let len = (seed % 40) as usize;
                let chunk: Vec<u8> = (0..len)
                    .map(|i| alphabet[((seed >> (i % 50)) as usize + i) % alphabet.len()])
                    .collect();
                conn.receive(&mut app, &chunk);
                let carried = conn.state.carry.as_ref().map_or(0, |c| c.bytes.len());
                assert!(carried <= 64);
                conn.take_sent_upto(&mut app, (seed % 300) as usize);
            }
        }
    }

    /// An app that closes heads not complete 3 s after their first byte and connections idle
    /// 10 s after their last response.
    fn timed() -> Http {
        Http::new(HttpConfig {
            header_timeout: Some(Duration::from_secs(3)),
            keepalive_timeout: Some(Duration::from_secs(10)),
            ..HttpConfig::default()
        })
    }

    fn at(secs_tenths: u64) -> Instant {
        Instant::from_millis(secs_tenths * 100)
    }

    #[test]
    fn a_head_dribbled_a_byte_a_second_is_closed_at_the_header_deadline_from_the_start() {
        let mut app = timed();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        assert_eq!(conn.deadline, Some(at(30)), "from the connection's start");
        for (i, byte) in CURL.iter().take(3).enumerate() {
            conn.advance(&mut app, at(10 * i as u64));
            conn.receive(&mut app, &[*byte]);
            assert_eq!(conn.deadline, Some(at(30)), "a byte does not push it back");
        }
        conn.advance(&mut app, at(29));
        assert_eq!(conn.shutdown, Shutdown::Open);
        conn.advance(&mut app, at(30));
        assert_eq!(conn.shutdown, Shutdown::Close, "closed at the deadline");
        assert!(
            conn.take_sent(&mut app).is_empty(),
            "no 408: nginx sends none"
        );
        assert!(conn.state.carry.is_none(), "the partial head is freed");
        assert_eq!((app.header_timeouts(), app.idle_timeouts()), (1, 0));
        assert_eq!(app.counters()[3], ("header_timeouts", 1));
    }

    #[test]
    fn a_connection_that_sends_nothing_is_closed_at_the_header_deadline() {
        let mut app = timed();
        let mut conn = Endpoint::connect(&mut app, 1024);
        conn.receive(&mut app, b"\r\n");
        conn.advance(&mut app, at(30));
        assert_eq!(conn.shutdown, Shutdown::Close);
        assert_eq!(app.header_timeouts(), 1);
    }

    #[test]
    fn a_head_complete_before_the_deadline_is_answered_and_the_idle_timeout_starts() {
        let mut app = timed();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        conn.advance(&mut app, at(10));
        conn.receive(&mut app, &CURL[..10]);
        conn.advance(&mut app, at(29));
        conn.receive(&mut app, &CURL[10..]);
        assert_eq!(conn.take_sent(&mut app), OK_KEEP);
        assert_eq!(conn.deadline, Some(at(129)), "10 s after the response");
        conn.advance(&mut app, at(128));
        assert_eq!(conn.shutdown, Shutdown::Open);
        conn.advance(&mut app, at(129));
        assert_eq!(conn.shutdown, Shutdown::Close, "idle too long");
        assert!(conn.take_sent(&mut app).is_empty(), "closed quietly");
        assert_eq!((app.header_timeouts(), app.idle_timeouts()), (0, 1));
        assert_eq!(app.counters()[4], ("idle_timeouts", 1));
    }

    #[test]
    fn a_later_requests_head_is_timed_from_its_first_byte() {
        let mut app = timed();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        conn.receive(&mut app, WRK);
        conn.advance(&mut app, at(90));
        conn.receive(&mut app, b"GET / HT");
        assert_eq!(conn.deadline, Some(at(120)), "3 s from the first byte");
        conn.advance(&mut app, at(119));
        conn.receive(&mut app, b"TP/1.1\r\n");
        assert_eq!(conn.shutdown, Shutdown::Open);
        conn.advance(&mut app, at(120));
        assert_eq!(conn.shutdown, Shutdown::Close);
        assert_eq!(conn.take_sent(&mut app), OK_KEEP, "only the first response");
        assert_eq!((app.header_timeouts(), app.idle_timeouts()), (1, 0));
    }

    #[test]
    fn pipelined_requests_leave_the_idle_timeout_after_the_last_response() {
        let mut app = timed();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        conn.advance(&mut app, at(5));
        conn.receive(&mut app, &[WRK, WRK, &CURL[..7]].concat());
        assert_eq!(
            conn.deadline,
            Some(at(35)),
            "the third head started at 0.5 s"
        );
        conn.receive(&mut app, &CURL[7..]);
        assert_eq!(conn.deadline, Some(at(105)));
        assert_eq!(
            conn.take_sent(&mut app),
            [OK_KEEP, OK_KEEP, OK_KEEP].concat()
        );
    }

    #[test]
    fn a_response_still_being_queued_is_not_timed_out() {
        let mut app = Http::new(HttpConfig {
            body: generated_body(100_000),
            ..HttpConfig::default()
        });
        let mut conn = Endpoint::connect(&mut app, 1000);
        conn.receive(&mut app, WRK);
        assert_eq!(
            conn.deadline, None,
            "no deadline while the response is queued"
        );
        conn.now = Instant::from_secs(500);
        while conn.state.reply.is_some() {
            conn.take_sent_upto(&mut app, 1000);
        }
        assert_eq!(
            conn.deadline,
            Some(Instant::from_secs(575)),
            "nginx's 75 s from the end of the response"
        );
    }

    #[test]
    fn timeouts_of_none_never_close() {
        let mut app = Http::new(HttpConfig {
            header_timeout: None,
            keepalive_timeout: None,
            ..HttpConfig::default()
        });
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        assert_eq!(conn.deadline, None);
        conn.receive(&mut app, WRK);
        assert_eq!(conn.deadline, None);
        conn.receive(&mut app, b"GET");
        assert_eq!(conn.deadline, None);
        conn.advance(&mut app, Instant::from_secs(1_000_000));
        assert_eq!(conn.shutdown, Shutdown::Open);
    }

    #[test]
    fn an_error_reply_half_closes_and_lingers_for_the_client_s_fin() {
        let mut app = timed();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        conn.receive(&mut app, b"GET / HTTP/2.0\r\n\r\n");
        assert_eq!(conn.take_sent(&mut app), BAD_REQUEST);
        let linger = conn.now + LINGER;
        assert_eq!(
            (conn.shutdown, conn.deadline),
            (Shutdown::Write, Some(linger))
        );
        // What the client still sends is read and dropped, with no answer and no reset; the
        // deadline stays (a dribbling client cannot push it back).
        conn.advance(&mut app, linger - Duration::from_secs(1));
        conn.receive(&mut app, b"more of what it was sending");
        assert_eq!((conn.refused, conn.unread.len()), (0, 0));
        assert!(conn.take_sent(&mut app).is_empty());
        assert_eq!(conn.deadline, Some(linger));
        // Its FIN ends the connection.
        conn.peer_fin(&mut app);
        assert_eq!((conn.shutdown, conn.deadline), (Shutdown::Close, None));
    }

    #[test]
    fn a_lingering_close_whose_client_never_closes_ends_at_linger() {
        let mut app = timed();
        let mut conn = Endpoint::connect(&mut app, 64 * 1024);
        conn.receive(&mut app, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_eq!(conn.take_sent(&mut app), OK_CLOSE);
        let linger = conn.now + LINGER;
        conn.advance(&mut app, linger - Duration::from_millis(1));
        assert_eq!(conn.shutdown, Shutdown::Write);
        conn.advance(&mut app, linger);
        assert_eq!((conn.shutdown, conn.deadline), (Shutdown::Close, None));
        // Not a header or keep-alive timeout.
        assert_eq!((app.header_timeouts(), app.idle_timeouts()), (0, 0));
    }

    #[test]
    fn connection_state_is_small() {
        println!(
            "size_of::<HttpConn>() = {}",
            std::mem::size_of::<HttpConn>()
        );
        assert!(std::mem::size_of::<HttpConn>() <= 32);
    }
}
