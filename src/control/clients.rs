//! The clients of one control-plane endpoint (the metrics listener, the stats socket), served
//! from the control loop without ever blocking it.
//!
//! The control thread also keeps the SYN-cookie keys ahead of the clock, follows the
//! interface's addresses and acts on signals, so no client may hold it: every socket is
//! non-blocking, each poll reads and writes only what the kernel has ready, and a client has
//! [`CLIENT_DEADLINE`] from its accept to its last byte written (request read, answer written),
//! whatever pace it sends or reads at; then it is closed. At most [`MAX_CLIENTS`] are served
//! at once; more wait in the listen backlog. (Non-blocking sockets polled from the loop rather
//! than an acceptor thread: the answers are rendered from state only the control thread holds,
//! and a poll costs the loop a few syscalls per client, bounded by `MAX_CLIENTS`.)

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use crate::time::Instant;

/// How long a client may take, from its accept to the last byte of the answer written.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// Clients served at once by one endpoint.
pub const MAX_CLIENTS: usize = 8;

/// The largest request read; a longer one is answered as far as it was read.
pub const MAX_REQUEST: usize = 8192;

/// A listener whose connections can be served without blocking.
pub(crate) trait Accept {
    /// A connection.
    type Stream: Read + Write;
    /// The next waiting connection, made non-blocking (`WouldBlock` when there is none).
    fn accept_nonblocking(&self) -> io::Result<Self::Stream>;
}

impl Accept for TcpListener {
    type Stream = TcpStream;
    fn accept_nonblocking(&self) -> io::Result<TcpStream> {
        let (stream, _) = self.accept()?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;
    fn accept_nonblocking(&self) -> io::Result<UnixStream> {
        let (stream, _) = self.accept()?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    }
}

/// What the clients of one endpoint came to: the endpoint's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Clients whose answer was written in full.
    pub answered: u64,
    /// Clients closed at [`CLIENT_DEADLINE`], before their answer was written in full.
    pub timed_out: u64,
    /// Clients whose connection failed (reset, or an error reading or writing).
    pub failed: u64,
}

impl ClientCounters {
    /// Every counter as (outcome, clients).
    pub fn fields(&self) -> [(&'static str, u64); 3] {
        [
            ("answered", self.answered),
            ("timed_out", self.timed_out),
            ("failed", self.failed),
        ]
    }
}

/// One connection being served.
#[derive(Debug)]
struct Client<S> {
    stream: S,
    deadline: Instant,
    request: Vec<u8>,
    /// The answer, once the request is complete, and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
}

/// Where a client stands after a poll.
enum Progress {
    /// Waiting for the peer (to send, or to read).
    Pending,
    /// Answered in full: close it.
    Answered,
    /// The connection failed: close it.
    Failed,
}

impl<S: Read + Write> Client<S> {
    /// Reads what is there and, once the request is `complete`, writes what fits of its answer.
    fn poll(
        &mut self,
        complete: fn(&[u8]) -> bool,
        respond: &mut impl FnMut(&[u8]) -> Vec<u8>,
    ) -> Progress {
        if self.answer.is_none() {
            match self.read_request(complete) {
                Ok(true) => self.answer = Some((respond(&self.request), 0)),
                Ok(false) => return Progress::Pending,
                Err(_) => return Progress::Failed,
            }
        }
        let Some((answer, written)) = &mut self.answer else {
            return Progress::Pending;
        };
        while *written < answer.len() {
            match self.stream.write(&answer[*written..]) {
                Ok(0) => return Progress::Failed,
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Progress::Failed,
            }
        }
        match self.stream.flush() {
            Ok(()) => Progress::Answered,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Progress::Pending,
            Err(_) => Progress::Failed,
        }
    }

    /// Reads what the peer sent so far; true once the request is complete (by `complete`, by
    /// the peer's end of sending, or by reaching [`MAX_REQUEST`]).
    fn read_request(&mut self, complete: fn(&[u8]) -> bool) -> io::Result<bool> {
        let mut buf = [0u8; 1024];
        loop {
            if complete(&self.request) || self.request.len() >= MAX_REQUEST {
                return Ok(true);
            }
            let room = (MAX_REQUEST - self.request.len()).min(buf.len());
            match self.stream.read(&mut buf[..room]) {
                Ok(0) => return Ok(true),
                Ok(n) => self.request.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The clients of one endpoint. `complete` says when a request is all there (the stats socket
/// reads none: it answers at once).
#[derive(Debug)]
pub(crate) struct Clients<S> {
    clients: Vec<Client<S>>,
    complete: fn(&[u8]) -> bool,
    counters: ClientCounters,
    /// Names the endpoint in logs.
    what: &'static str,
}

impl<S: Read + Write> Clients<S> {
    /// No clients yet.
    pub(crate) fn new(what: &'static str, complete: fn(&[u8]) -> bool) -> Clients<S> {
        Clients {
            clients: Vec::with_capacity(MAX_CLIENTS),
            complete,
            counters: ClientCounters::default(),
            what,
        }
    }

    /// Takes in waiting connections (up to [`MAX_CLIENTS`] held), moves every client on as far
    /// as its socket allows without waiting, answering complete requests with `respond`, and
    /// closes those that are done, failed or past their deadline. Returns how many clients are
    /// still held (the loop polls again soon while there are any).
    pub(crate) fn poll<L: Accept<Stream = S>>(
        &mut self,
        now: Instant,
        listener: &L,
        mut respond: impl FnMut(&[u8]) -> Vec<u8>,
    ) -> usize {
        let what = self.what;
        let counters = &mut self.counters;
        // Late clients first, so that their places go to the next ones at once.
        self.clients.retain(|c| {
            let late = now >= c.deadline;
            if late {
                counters.timed_out += 1;
                tracing::debug!(
                    "a client of the {what} was closed after {CLIENT_DEADLINE:?} without its answer"
                );
            }
            !late
        });
        while self.clients.len() < MAX_CLIENTS {
            match listener.accept_nonblocking() {
                Ok(stream) => self.clients.push(Client {
                    stream,
                    deadline: now + CLIENT_DEADLINE,
                    request: Vec::new(),
                    answer: None,
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // A connection reset before its accept, or out of fds: try again later.
                    tracing::debug!(error = %e, "accepting on the {what} failed");
                    break;
                }
            }
        }
        let complete = self.complete;
        let counters = &mut self.counters;
        self.clients
            .retain_mut(|c| match c.poll(complete, &mut respond) {
                Progress::Pending => true,
                Progress::Answered => {
                    counters.answered += 1;
                    false
                }
                Progress::Failed => {
                    counters.failed += 1;
                    false
                }
            });
        self.clients.len()
    }

    /// What became of the clients so far.
    pub(crate) fn counters(&self) -> ClientCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// A connection on a script: each poll's reads get the next chunk (then `WouldBlock`), and
    /// each write takes at most `room` bytes, into `written`.
    #[derive(Debug, Default)]
    struct Scripted {
        chunks: VecDeque<Vec<u8>>,
        /// Chunks handed out in this poll.
        room: usize,
        written: Rc<RefCell<Vec<u8>>>,
        eof: bool,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.chunks.pop_front() {
                // An empty chunk: nothing this poll.
                Some(c) if c.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
                Some(c) => {
                    buf[..c.len()].copy_from_slice(&c);
                    Ok(c.len())
                }
                None if self.eof => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.borrow_mut().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Connections waiting to be accepted.
    #[derive(Default)]
    struct Backlog(RefCell<VecDeque<Scripted>>);

    impl Accept for Backlog {
        type Stream = Scripted;
        fn accept_nonblocking(&self) -> io::Result<Scripted> {
            self.0
                .borrow_mut()
                .pop_front()
                .ok_or_else(|| io::ErrorKind::WouldBlock.into())
        }
    }

    fn http_head(r: &[u8]) -> bool {
        r.windows(4).any(|w| w == b"\r\n\r\n")
    }

    /// A client that sends `request` in one chunk per poll, with room for `room` bytes of
    /// answer per write; returns what it was sent.
    fn client(backlog: &Backlog, chunks: Vec<Vec<u8>>, room: usize) -> Rc<RefCell<Vec<u8>>> {
        let written = Rc::default();
        backlog.0.borrow_mut().push_back(Scripted {
            chunks: chunks.into(),
            room,
            written: Rc::clone(&written),
            eof: false,
        });
        written
    }

    fn echo(r: &[u8]) -> Vec<u8> {
        [b"got ".as_slice(), r].concat()
    }

    #[test]
    fn a_client_dripping_its_request_is_closed_at_the_deadline_and_holds_nobody_up() {
        let backlog = Backlog::default();
        let mut clients = Clients::new("test endpoint", http_head);
        // One byte per poll, polled every 50 ms: 400 polls of a request that never ends.
        let drip_chunks = (0..400).flat_map(|_| [b"G".to_vec(), Vec::new()]).collect();
        let drip = client(&backlog, drip_chunks, usize::MAX);
        let mut now = Instant::from_secs(100);
        assert_eq!(clients.poll(now, &backlog, echo), 1);
        now = now + Duration::from_millis(50);
        let prompt = client(
            &backlog,
            vec![b"GET / HTTP/1.1\r\n\r\n".to_vec()],
            usize::MAX,
        );
        clients.poll(now, &backlog, echo);
        assert_eq!(prompt.borrow().as_slice(), b"got GET / HTTP/1.1\r\n\r\n");
        while now < Instant::from_secs(102) {
            now = now + Duration::from_millis(50);
            clients.poll(now, &backlog, echo);
        }
        assert_eq!(clients.poll(now, &backlog, echo), 0, "closed at 2 s");
        assert!(drip.borrow().is_empty(), "never answered");
        assert_eq!(
            clients.counters(),
            ClientCounters {
                answered: 1,
                timed_out: 1,
                failed: 0
            }
        );
    }

    #[test]
    fn an_answer_is_written_as_the_client_reads_it_and_a_client_that_stops_reading_times_out() {
        let backlog = Backlog::default();
        let mut clients = Clients::new("test endpoint", |_| true);
        let big = vec![7u8; 10_000];
        let respond = |_: &[u8]| big.clone();
        let slow = client(&backlog, Vec::new(), 4096);
        let mut now = Instant::from_secs(1);
        clients.poll(now, &backlog, respond);
        assert_eq!(slow.borrow().len(), 4096, "what fits now");
        // The reader drains its socket: more room at each poll, until it stops reading.
        for _ in 0..2 {
            clients.clients[0].stream.room = 4096;
            now = now + Duration::from_millis(50);
            clients.poll(now, &backlog, respond);
        }
        assert_eq!(slow.borrow().as_slice(), big.as_slice());
        assert_eq!(clients.counters().answered, 1);
        let stuck = client(&backlog, Vec::new(), 100);
        clients.poll(now, &backlog, respond);
        clients.poll(now + CLIENT_DEADLINE, &backlog, respond);
        assert_eq!(stuck.borrow().len(), 100);
        assert_eq!(clients.counters().timed_out, 1);
    }

    #[test]
    fn at_most_max_clients_are_held_and_the_rest_wait_in_the_backlog() {
        let backlog = Backlog::default();
        let mut clients = Clients::new("test endpoint", http_head);
        let silent: Vec<_> = (0..MAX_CLIENTS + 2)
            .map(|_| client(&backlog, Vec::new(), usize::MAX))
            .collect();
        let now = Instant::from_secs(5);
        assert_eq!(clients.poll(now, &backlog, echo), MAX_CLIENTS);
        assert_eq!(backlog.0.borrow().len(), 2, "not accepted yet");
        // The first ones time out; the ones that waited get their own full deadline.
        let later = now + CLIENT_DEADLINE;
        assert_eq!(clients.poll(later, &backlog, echo), 2);
        assert_eq!(clients.counters().timed_out, MAX_CLIENTS as u64);
        assert!(silent.iter().all(|w| w.borrow().is_empty()));
        assert_eq!(clients.poll(later + CLIENT_DEADLINE, &backlog, echo), 0);
    }

    #[test]
    fn a_request_ended_by_the_peer_or_over_the_bound_is_answered_as_read() {
        let backlog = Backlog::default();
        let mut clients = Clients::new("test endpoint", http_head);
        let written = Rc::default();
        backlog.0.borrow_mut().push_back(Scripted {
            chunks: vec![b"GET /".to_vec()].into(),
            room: usize::MAX,
            written: Rc::clone(&written),
            eof: true,
        });
        let huge = client(&backlog, vec![vec![b'x'; 1024]; 20], usize::MAX);
        let now = Instant::from_secs(1);
        clients.poll(now, &backlog, echo);
        assert_eq!(written.borrow().as_slice(), b"got GET /");
        assert_eq!(huge.borrow().len(), 4 + MAX_REQUEST, "read up to the bound");
    }

    #[test]
    fn over_loopback_a_dripping_scraper_does_not_delay_another_and_no_poll_blocks() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Clients::new("test endpoint", http_head);
        let dripper = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for b in b"GET /metrics HTTP/1.1\r\n" {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            rest
        });
        std::thread::sleep(Duration::from_millis(100));
        let prompt = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).unwrap();
            answer
        });
        let start = std::time::Instant::now();
        let mut slowest = Duration::ZERO;
        let mut prompt_answered_after = None;
        while start.elapsed() < Duration::from_secs(4) {
            let poll = std::time::Instant::now();
            clients.poll(crate::xdp::sys::monotonic_now(), &listener, echo);
            slowest = slowest.max(poll.elapsed());
            if prompt_answered_after.is_none() && clients.counters().answered == 1 {
                prompt_answered_after = Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(prompt.join().unwrap(), b"got GET / HTTP/1.1\r\n\r\n");
        assert!(
            prompt_answered_after.is_some_and(|t| t < Duration::from_secs(1)),
            "{prompt_answered_after:?}"
        );
        assert!(
            dripper.join().unwrap().is_empty(),
            "the dripper got nothing"
        );
        assert_eq!(clients.counters().timed_out, 1);
        assert!(
            slowest < Duration::from_millis(100),
            "a poll took {slowest:?}"
        );
    }
}
