//! Recording: every call and packet as an [`Op`], the seeds of the `shim_calls` fuzz target
//! ([`Stack::start_recording`]).

use xdptcp::time::Instant;

use super::{Fd, Stack};
use crate::ops::{Op, SOCKOPTS, Segment};

/// What a recording stack has written so far ([`Stack::start_recording`]).
#[derive(Debug, Default)]
pub(super) struct Recorder {
    out: Vec<u8>,
    /// Descriptors by creation index, as [`Op`]s name sockets.
    socks: Vec<Fd>,
    last: Option<Instant>,
}

impl Stack {
    /// Records every call and packet from now on as [`Op`]s (seeds for the fuzzer).
    pub fn start_recording(&mut self) {
        self.record = Some(Recorder::default());
    }

    /// What was recorded, as the bytes [`Op::decode_all`] reads.
    pub fn take_recording(&mut self) -> Option<Vec<u8>> {
        self.record.take().map(|r| r.out)
    }

    /// Records `op` built from the creation index of `fd` (nothing if not recording or `fd`
    /// is not a socket seen being created); a clock that moved since is recorded first.
    pub(super) fn note(&mut self, fd: Option<Fd>, op: impl FnOnce(u8) -> Op) {
        let now = self.now;
        let Some(r) = self.record.as_mut() else {
            return;
        };
        let index = match fd {
            None => 0,
            Some(fd) => match r.socks.iter().rposition(|f| *f == fd) {
                Some(i) => u8::try_from(i).unwrap_or(u8::MAX),
                None => return,
            },
        };
        if let Some(last) = r.last {
            let micros = (now - last).as_micros();
            if micros > 0 {
                Op::Advance {
                    micros: micros.min(u128::from(u32::MAX)) as u32,
                }
                .encode(&mut r.out);
            }
        }
        r.last = Some(now);
        op(index).encode(&mut r.out);
    }

    /// A socket created (by `socket()` or `accept()`), for the recording's indices.
    pub(super) fn note_created(&mut self, fd: Fd) {
        if let Some(r) = self.record.as_mut() {
            r.socks.push(fd);
        }
    }

    /// Records a packet from the peer (a bare IP datagram), if recording and it is TCP that
    /// parses.
    pub(super) fn note_packet(&mut self, ip: &[u8]) {
        if self.record.is_some() {
            if let Some(seg) = Segment::from_ip(ip) {
                self.note(None, |_| Op::Packet(Box::new(seg)));
            }
        }
    }

    /// Records a `setsockopt()` of one of the options [`Op::SetOpt`] chooses from
    /// ([`SOCKOPTS`]); an integer option's value is `value`'s first four bytes.
    pub(super) fn note_setsockopt(&mut self, fd: Fd, level: i32, name: i32, value: &[u8]) {
        if let Some(opt) = SOCKOPTS.iter().position(|o| *o == (level, name)) {
            let word = |at: usize| {
                value
                    .get(at..at + 4)
                    .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            };
            // SO_LINGER's two ints travel as onoff | linger << 8.
            let v = if name == libc::SO_LINGER {
                word(0) & 1 | word(4) << 8
            } else {
                word(0)
            };
            self.note(Some(fd), |sock| Op::SetOpt {
                sock,
                opt: opt as u8,
                value: v,
            });
        }
    }
}
