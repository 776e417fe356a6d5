//! Readiness: what `poll()` reports for a descriptor, and epoll (level- and edge-triggered,
//! one-shot) over it.

use xdptcp::app::CloseReason;
use xdptcp::state::State;

use super::{Epoll, EpollOp, Errno, Fd, File, Interest, SockState, Stack, SysResult};

impl Stack {
    /// What `poll()` reports for `fd`, as `EPOLL*` bits (the same values as `POLL*` for the
    /// bits both have); `POLLNVAL` for an unknown descriptor.
    pub fn poll_mask(&self, fd: Fd) -> u32 {
        const IN: u32 = (libc::EPOLLIN | libc::EPOLLRDNORM) as u32;
        const OUT: u32 = (libc::EPOLLOUT | libc::EPOLLWRNORM) as u32;
        const ERR: u32 = libc::EPOLLERR as u32;
        const HUP: u32 = libc::EPOLLHUP as u32;
        const RDHUP: u32 = libc::EPOLLRDHUP as u32;
        let s = match self.files.get(&fd) {
            Some(File::Socket(s)) => s,
            Some(File::Epoll(_)) => return 0,
            None => return libc::POLLNVAL as u32,
        };
        match &s.state {
            // Linux: an unconnected socket is writable and hung up.
            SockState::Fresh => OUT | HUP,
            SockState::Listening { queue, .. } => {
                if queue.is_empty() {
                    0
                } else {
                    IN
                }
            }
            SockState::Connecting { .. } => 0,
            SockState::Failed => OUT | ERR | HUP,
            SockState::Connected(c) => {
                let err = if s.error.is_some() { ERR } else { 0 };
                match c.closed {
                    Some(CloseReason::Normal) => IN | OUT | HUP | RDHUP | err,
                    Some(_) if !c.error_reported => IN | OUT | ERR | HUP | RDHUP,
                    Some(_) => IN | OUT | HUP | RDHUP | err,
                    None => {
                        let Some(b) = self.engine.buffers(c.id) else {
                            return HUP;
                        };
                        let state = self.engine.state(c.id);
                        // The peer's FIN is in, even with data still unread before it.
                        let fin = c.peer_fin || state.is_some_and(State::fin_received);
                        let mut m = err;
                        if b.received > 0 || fin || s.shut_rd {
                            m |= IN;
                        }
                        if fin || s.shut_rd {
                            m |= RDHUP;
                        }
                        // Linux's tcp_poll: a Fast Open connection (the only kind a socket
                        // has in SYN-RECEIVED) is writable as an established one.
                        let synchronized = state
                            .is_some_and(|st| st.is_synchronized() || st == State::SynReceived);
                        // Linux's sk_stream_is_writeable: free space at least half of
                        // what is queued.
                        if synchronized
                            && !s.shut_wr
                            && b.send_space > 0
                            && b.send_space >= b.send / 2
                            && lowat_writable(b.unsent, s.opts.notsent_lowat)
                        {
                            m |= OUT;
                        }
                        if fin && s.shut_wr {
                            m |= HUP;
                        }
                        m
                    }
                }
            }
        }
    }

    /// Counts the wakeups `EPOLLET` reports (only while some epoll instance exists: the
    /// count costs a readiness check of every socket on every engine call).
    pub(super) fn note_edges(&mut self) {
        if self.epolls == 0 {
            return;
        }
        let fds: Vec<Fd> = self.files.keys().copied().collect();
        for fd in fds {
            let mask = self.poll_mask(fd);
            let received = self.received(fd);
            let Some(s) = self.socket_mut(fd) else {
                continue;
            };
            if mask != s.last_mask || received > s.last_received {
                s.wakeups = s.wakeups.wrapping_add(1);
            }
            s.last_mask = mask;
            s.last_received = received;
        }
    }

    /// `epoll_create()`.
    pub fn epoll_create(&mut self) -> SysResult<Fd> {
        let fd = self.new_fd()?;
        self.files.insert(fd, File::Epoll(Epoll::default()));
        self.epolls += 1;
        if self.epolls == 1 {
            // Wakeups are counted from here on: start from what every socket shows now.
            self.note_edges();
        }
        Ok(fd)
    }

    /// `epoll_ctl(epfd, op, fd, {events, data})`.
    pub fn epoll_ctl(
        &mut self,
        epfd: Fd,
        op: EpollOp,
        fd: Fd,
        events: u32,
        data: u64,
    ) -> SysResult<()> {
        if epfd == fd {
            return Err(Errno::INVAL);
        }
        // A new interest reports what is ready now once, even edge-triggered.
        let seen = match self.files.get(&fd) {
            Some(File::Socket(s)) => s.wakeups.wrapping_sub(1),
            Some(File::Epoll(_)) => return Err(Errno(libc::EPERM)),
            None => return Err(Errno::BADF),
        };
        let Some(File::Epoll(ep)) = self.files.get_mut(&epfd) else {
            return Err(Errno::INVAL);
        };
        let fresh = Interest { events, data, seen };
        match op {
            EpollOp::Add => {
                if ep.interest.contains_key(&fd) {
                    return Err(Errno(libc::EEXIST));
                }
                ep.interest.insert(fd, fresh);
            }
            EpollOp::Modify => {
                let i = ep.interest.get_mut(&fd).ok_or(Errno(libc::ENOENT))?;
                *i = fresh;
            }
            EpollOp::Delete => {
                ep.interest.remove(&fd).ok_or(Errno(libc::ENOENT))?;
            }
        }
        Ok(())
    }

    /// The ready events of `epfd`, at most `max` (level-triggered, or edge-triggered with
    /// `EPOLLET`, one-shot with `EPOLLONESHOT`).
    pub fn epoll_ready(&mut self, epfd: Fd, max: usize) -> SysResult<Vec<(u32, u64)>> {
        let Some(File::Epoll(ep)) = self.files.get(&epfd) else {
            return Err(if self.files.contains_key(&epfd) {
                Errno::INVAL
            } else {
                Errno::BADF
            });
        };
        let always = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        let mut ready = Vec::new();
        let mut updates = Vec::new();
        for (&fd, i) in &ep.interest {
            if ready.len() >= max {
                break;
            }
            let Some(File::Socket(s)) = self.files.get(&fd) else {
                continue;
            };
            let wanted = i.events & !(libc::EPOLLET as u32 | libc::EPOLLONESHOT as u32);
            let got = self.poll_mask(fd) & (wanted | always);
            let edge = i.events & libc::EPOLLET as u32 == 0 || s.wakeups != i.seen;
            if got != 0 && edge {
                ready.push((got, i.data));
                updates.push((fd, s.wakeups));
            }
        }
        let Some(File::Epoll(ep)) = self.files.get_mut(&epfd) else {
            return Err(Errno::BADF);
        };
        for (fd, wakeups) in updates {
            if let Some(i) = ep.interest.get_mut(&fd) {
                i.seen = wakeups;
                if i.events & libc::EPOLLONESHOT as u32 != 0 {
                    i.events = 0;
                }
            }
        }
        Ok(ready)
    }
}

/// Whether `unsent` bytes let `poll()` report `POLLOUT` under TCP_NOTSENT_LOWAT `lowat` (0:
/// none): Linux's `__sk_stream_is_writeable(sk, 1)`, twice the unsent bytes below the mark.
fn lowat_writable(unsent: usize, lowat: u32) -> bool {
    lowat == 0 || (unsent as u64) * 2 < u64::from(lowat)
}
