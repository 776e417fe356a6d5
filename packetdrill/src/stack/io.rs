//! Reading and writing: `recv` and `send`, and what is queued either way (`FIONREAD`,
//! `SIOCOUTQ`, `TCP_INQ`'s hint).

use std::collections::VecDeque;

use xdptcp::app::CloseReason;
use xdptcp::state::State;
use xdptcp::tcp::ConnId;

use super::{Errno, Fd, File, SockState, Stack, SysResult};
use crate::app::Read;
use crate::ops::Op;

impl Stack {
    /// `recv(fd, max, MSG_PEEK?)`: the bytes read (empty at end of stream).
    pub fn recv(&mut self, fd: Fd, max: usize, peek: bool) -> SysResult<Vec<u8>> {
        self.note(Some(fd), |sock| Op::Recv {
            sock,
            len: max.min(usize::from(u16::MAX)) as u16,
            peek,
        });
        let nonblocking = self.socket(fd)?.nonblocking;
        // What a reset connection left unread comes first.
        let residue = match &self.socket(fd)?.state {
            SockState::Connected(c) => c.residue.and_then(|r| self.residues.get(&r)),
            _ => None,
        };
        if let Some(left) = residue.filter(|r| !r.is_empty()) {
            let out: Vec<u8> = left.iter().take(max).copied().collect();
            if !peek {
                self.unread_taken(fd, out.len());
            }
            return Ok(out);
        }
        let s = self.sock(fd)?;
        let conn = match &mut s.state {
            SockState::Connected(c) => c,
            SockState::Connecting { .. } => {
                return Err(if nonblocking {
                    Errno::AGAIN
                } else {
                    Errno::BLOCK
                });
            }
            SockState::Failed => return Err(s.error.take().unwrap_or(Errno::NOTCONN)),
            _ => return Err(Errno::NOTCONN),
        };
        let shut_rd = s.shut_rd;
        if let Some(reason) = conn.closed {
            return match reason {
                CloseReason::Normal => Ok(Vec::new()),
                _ if conn.error_reported => Ok(Vec::new()),
                r => {
                    conn.error_reported = true;
                    Err(close_errno(r))
                }
            };
        }
        let (id, peer_fin) = (conn.id, conn.peer_fin);
        let buffered = self.engine.buffers(id).map_or(0, |b| b.received);
        if max == 0 {
            return Ok(Vec::new());
        }
        if buffered == 0 {
            // After shutdown(SHUT_RD) an empty receive queue reads as the end of the stream;
            // data already queued (or arriving later) is still returned, as Linux does.
            return if peer_fin || shut_rd {
                Ok(Vec::new())
            } else {
                Err(self.would_block(fd))
            };
        }
        let out = self.read_engine(id, max, peek);
        self.settle();
        Ok(out)
    }

    /// `n` bytes of what a reset connection left unread were read from socket `fd`.
    fn unread_taken(&mut self, fd: Fd, n: usize) {
        let key = match self.socket(fd).map(|s| &s.state) {
            Ok(SockState::Connected(c)) => c.residue,
            _ => None,
        };
        if let Some(left) = key.and_then(|k| self.residues.get_mut(&k)) {
            left.drain(..n.min(left.len()));
        }
    }

    /// Up to `max` bytes connection `id` holds for the app (left there with `peek`).
    pub(super) fn read_engine(&mut self, id: ConnId, max: usize, peek: bool) -> Vec<u8> {
        self.engine
            .with_io(self.now, id, &mut self.tx, |app, _, _| {
                app.read = Some(Read {
                    max,
                    peek,
                    out: Vec::new(),
                });
            });
        self.engine
            .app_mut()
            .read
            .take()
            .map(|r| r.out)
            .unwrap_or_default()
    }

    /// `send(fd, data)` (with `MSG_MORE` if `more`): how many bytes were queued (at least one,
    /// or an error).
    pub fn send(&mut self, fd: Fd, data: &[u8], more: bool) -> SysResult<usize> {
        self.note(Some(fd), |sock| Op::Send {
            sock,
            len: data.len().min(usize::from(u16::MAX)) as u16,
            more,
        });
        let s = self.socket(fd)?;
        let conn = match &s.state {
            SockState::Connected(c) => *c,
            SockState::Connecting { .. } => return Err(self.would_block(fd)),
            SockState::Failed => {
                let s = self.sock(fd)?;
                return Err(s.error.take().unwrap_or(Errno(libc::EPIPE)));
            }
            _ => return Err(Errno(libc::EPIPE)),
        };
        if let Some(reason) = conn.closed {
            if reason != CloseReason::Normal && !conn.error_reported {
                if let SockState::Connected(c) = &mut self.sock(fd)?.state {
                    c.error_reported = true;
                }
                return Err(close_errno(reason));
            }
            return Err(Errno(libc::EPIPE));
        }
        if s.shut_wr {
            return Err(Errno(libc::EPIPE));
        }
        if data.is_empty() {
            return Ok(0);
        }
        // SO_SNDBUF and TCP_NOTSENT_LOWAT are the engine's (`apply_conn_options`).
        let Some(b) = self.engine.buffers(conn.id) else {
            return Err(Errno(libc::EPIPE));
        };
        let cap = b.send_space;
        if cap == 0 {
            return Err(self.would_block(fd));
        }
        let chunk = &data[..data.len().min(cap)];
        let n = self
            .engine
            .with_io(self.now, conn.id, &mut self.tx, |_, _, io| {
                if more {
                    io.write_more(chunk)
                } else {
                    io.write(chunk)
                }
            })
            .unwrap_or(0);
        self.settle();
        if n == 0 {
            return Err(self.would_block(fd));
        }
        Ok(n)
    }

    pub(super) fn received(&self, fd: Fd) -> usize {
        match self.files.get(&fd) {
            Some(File::Socket(s)) => match &s.state {
                SockState::Connected(c) if c.alive() => {
                    self.engine.buffers(c.id).map_or(0, |b| b.received)
                }
                SockState::Connected(c) => c
                    .residue
                    .and_then(|r| self.residues.get(&r))
                    .map_or(0, VecDeque::len),
                SockState::Listening { queue, .. } => queue.len(),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// `ioctl(FIONREAD)` / `SIOCINQ`: unread bytes.
    pub fn inq(&self, fd: Fd) -> SysResult<usize> {
        match &self.socket(fd)?.state {
            SockState::Listening { .. } => Err(Errno::INVAL),
            _ => Ok(self.received(fd)),
        }
    }

    /// `ioctl(SIOCOUTQ)`: bytes in the send buffer, unacknowledged or unsent.
    pub fn outq(&self, fd: Fd) -> SysResult<usize> {
        match &self.socket(fd)?.state {
            SockState::Listening { .. } => Err(Errno::INVAL),
            SockState::Connected(c) => Ok(self.engine.buffers(c.id).map_or(0, |b| b.send)),
            _ => Ok(0),
        }
    }

    /// `TCP_CM_INQ` for a `recvmsg` on `fd` if `TCP_INQ` is on: the bytes left to read, or 1
    /// once the peer's FIN is in and nothing is (Linux's `tcp_inq_hint`: "fake" byte that
    /// tells a reader to read on and see the end).
    pub fn inq_hint(&self, fd: Fd) -> Option<i32> {
        let s = self.socket(fd).ok()?;
        if !s.opts.inq {
            return None;
        }
        let left = self.received(fd);
        let done = match &s.state {
            SockState::Connected(c) => {
                c.peer_fin || !c.alive() || self.engine.state(c.id).is_some_and(State::fin_received)
            }
            _ => false,
        };
        Some(if left == 0 && done {
            1
        } else {
            i32::try_from(left).unwrap_or(i32::MAX)
        })
    }
}

/// The errno a socket call returns once after the connection ended this way.
fn close_errno(reason: CloseReason) -> Errno {
    Errno(match reason {
        CloseReason::Normal => 0,
        CloseReason::Reset | CloseReason::Aborted => libc::ECONNRESET,
        CloseReason::Refused => libc::ECONNREFUSED,
        CloseReason::TimedOut | CloseReason::KeepaliveTimeout => libc::ETIMEDOUT,
    })
}
