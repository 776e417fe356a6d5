//! The socket calls that make, connect and end sockets: `socket`, `bind`, `listen`,
//! `accept`, `connect` (and its `AF_UNSPEC` disconnect), `close`, `shutdown`, and the
//! descriptor flags.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use xdptcp::tcp::{ConnectError, FourTuple};

use super::{
    Errno, FIRST_EPHEMERAL_PORT, Fd, File, How, PEER_MAC, SockOpts, SockState, Socket, Stack,
    SysResult,
};
use crate::ops::Op;

impl Stack {
    /// Whether `fd` is an IPv6 socket.
    pub fn is_v6(&self, fd: Fd) -> bool {
        self.socket(fd).is_ok_and(|s| s.v6)
    }

    /// `socket(domain, type, protocol)`: TCP stream sockets only.
    pub fn socket_call(&mut self, domain: i32, ty: i32, protocol: i32) -> SysResult<Fd> {
        self.note(None, |_| Op::Socket {
            v6: domain == libc::AF_INET6,
            nonblocking: ty & libc::SOCK_NONBLOCK != 0,
        });
        let v6 = match domain {
            libc::AF_INET => false,
            libc::AF_INET6 => true,
            _ => return Err(Errno(libc::EAFNOSUPPORT)),
        };
        let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
        if base != libc::SOCK_STREAM {
            return Err(Errno(libc::EPROTONOSUPPORT));
        }
        if protocol != 0 && protocol != libc::IPPROTO_TCP {
            return Err(Errno(libc::EPROTONOSUPPORT));
        }
        let fd = self.new_fd()?;
        let s = Socket {
            nonblocking: ty & libc::SOCK_NONBLOCK != 0,
            ..Socket::new(v6, None, SockState::Fresh, SockOpts::default())
        };
        self.files.insert(fd, File::Socket(Box::new(s)));
        self.note_created(fd);
        Ok(fd)
    }

    /// `bind(fd, addr)`.
    pub fn bind(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Bind {
            sock,
            port: addr.port(),
        });
        let reuse = self.socket(fd)?.opts.reuse_addr;
        // A listener holds its port; a bound socket too, unless both ask for SO_REUSEADDR.
        let in_use = addr.port() != 0
            && self.files.iter().any(|(other, f)| {
                let File::Socket(s) = f else { return false };
                let same_port = s.bound.is_some_and(|b| b.port() == addr.port());
                *other != fd
                    && same_port
                    && match s.state {
                        SockState::Listening { .. } => true,
                        SockState::Fresh => !(reuse && s.opts.reuse_addr),
                        _ => false,
                    }
            });
        let s = self.sock(fd)?;
        if s.bound.is_some() || !matches!(s.state, SockState::Fresh) {
            return Err(Errno::INVAL);
        }
        if addr.is_ipv6() != s.v6 {
            return Err(Errno::INVAL);
        }
        if in_use {
            return Err(Errno(libc::EADDRINUSE));
        }
        s.bound = Some(addr);
        s.bind_locked = true;
        Ok(())
    }

    fn ephemeral_port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p == u16::MAX {
            FIRST_EPHEMERAL_PORT
        } else {
            p + 1
        };
        p
    }

    /// `listen(fd, backlog)`.
    pub fn listen(&mut self, fd: Fd, backlog: i32) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Listen { sock });
        let port = match self.socket(fd)?.bound {
            Some(b) if b.port() != 0 => b.port(),
            _ => self.ephemeral_port(),
        };
        let s = self.sock(fd)?;
        match s.state {
            SockState::Fresh => {}
            SockState::Listening { .. } => return Ok(()),
            _ => return Err(Errno::INVAL),
        }
        let addr = s
            .bound
            .map(unmap)
            .map(|a| a.ip())
            .filter(|ip| !is_unspecified(*ip));
        let bound_v6 = s.bound.map_or(s.v6, |b| b.is_ipv6());
        if s.bound.is_none() {
            let ip = if bound_v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            s.bound = Some(SocketAddr::new(ip, port));
        }
        s.backlog = u32::try_from(backlog).unwrap_or(0);
        s.state = SockState::Listening {
            key: (addr, port),
            queue: VecDeque::new(),
        };
        let listener = self.listener(fd)?;
        self.engine.listen(listener);
        self.dirty = true;
        Ok(())
    }

    /// `accept(fd)`: the new descriptor and the peer's address.
    pub fn accept(&mut self, fd: Fd) -> SysResult<(Fd, SocketAddr)> {
        self.note(Some(fd), |sock| Op::Accept { sock });
        let s = self.sock(fd)?;
        let SockState::Listening { queue, .. } = &mut s.state else {
            return Err(Errno::INVAL);
        };
        let Some(conn) = queue.pop_front() else {
            return Err(self.would_block(fd));
        };
        let (v6, opts) = (s.v6, s.opts);
        let new = self.new_fd()?;
        let peer = as_family(
            SocketAddr::new(conn.tuple.remote_addr, conn.tuple.remote_port),
            v6,
        );
        let local = as_family(
            SocketAddr::new(conn.tuple.local_addr, conn.tuple.local_port),
            v6,
        );
        let socket = Socket::new(v6, Some(local), SockState::Connected(conn), opts);
        self.files.insert(new, File::Socket(Box::new(socket)));
        if conn.alive() {
            self.owners.insert(conn.id, new);
            self.apply_conn_options(conn.id, &opts);
        }
        // The accepted socket inherits the listener's TCP_NODELAY and TCP_CORK, as in Linux.
        if opts.nodelay || opts.cork {
            self.apply_push_options(new);
        }
        self.note_created(new);
        self.dirty = true;
        Ok((new, peer))
    }

    /// `connect(fd, addr)`, first call: sends the SYN. A non-blocking socket gets
    /// `EINPROGRESS`; a blocking one [`Errno::BLOCK`] and then [`Stack::connect_status`].
    pub fn connect(&mut self, fd: Fd, addr: SocketAddr) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Connect {
            sock,
            port: addr.port(),
        });
        let s = self.socket(fd)?;
        connectable(s, addr)?;
        let remote = unmap(addr);
        let bound = s.bound.map(unmap);
        let local_ip = match bound.map(|b| b.ip()).filter(|ip| !is_unspecified(*ip)) {
            Some(ip) => ip,
            None if remote.is_ipv4() => IpAddr::V4(self.local_v4),
            None => IpAddr::V6(self.local_v6),
        };
        if local_ip.is_ipv4() != remote.is_ipv4() {
            return Err(Errno(libc::EAFNOSUPPORT));
        }
        let port = match bound {
            Some(b) if b.port() != 0 => b.port(),
            _ => self.ephemeral_port(),
        };
        let local = SocketAddr::new(local_ip, port);
        let options = self.socket(fd)?.opts.conn_options();
        let id = self
            .engine
            .connect_with(self.now, local, remote, PEER_MAC, &options, &mut self.tx)
            .map_err(connect_errno)?;
        let tuple = FourTuple {
            local_addr: local_ip,
            remote_addr: remote.ip(),
            local_port: port,
            remote_port: remote.port(),
        };
        self.owners.insert(id, fd);
        let s = self.sock(fd)?;
        s.bound = Some(as_family(local, s.v6));
        s.error = None;
        s.state = SockState::Connecting {
            id,
            tuple,
            refused: false,
        };
        let (nonblocking, push_opts) = (s.nonblocking, s.opts.nodelay || s.opts.cork);
        if push_opts {
            self.apply_push_options(fd);
        }
        self.settle();
        match self.connect_status(fd) {
            Err(Errno::BLOCK) if nonblocking => Err(Errno(libc::EINPROGRESS)),
            r => r,
        }
    }

    /// Where a blocking `connect()` stands: done, failed (its error), or still waiting.
    pub fn connect_status(&mut self, fd: Fd) -> SysResult<()> {
        let s = self.sock(fd)?;
        match s.state {
            SockState::Connected(_) => Ok(()),
            SockState::Connecting { .. } => Err(Errno::BLOCK),
            SockState::Failed => {
                s.state = SockState::Fresh;
                Err(s.error.take().unwrap_or(Errno(libc::ECONNREFUSED)))
            }
            _ => Err(Errno::NOTCONN),
        }
    }

    /// `close(fd)`.
    pub fn close(&mut self, fd: Fd) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Close { sock });
        let file = self.files.remove(&fd).ok_or(Errno::BADF)?;
        self.release_fd(fd);
        for f in self.files.values_mut() {
            if let File::Epoll(ep) = f {
                ep.interest.remove(&fd);
            }
        }
        let File::Socket(s) = file else {
            self.epolls -= 1;
            return Ok(());
        };
        if let SockState::Connected(c) = s.state {
            if c.alive() {
                self.owners.remove(&c.id);
                // SO_LINGER 0: reset, not FIN. (A close with data unread resets too: the
                // engine's rule, RFC 1122 §4.2.2.13, as Linux.)
                let abort = s.opts.linger == Some(0);
                self.engine
                    .with_io(self.now, c.id, &mut self.tx, |_, _, io| {
                        if abort { io.abort() } else { io.close() }
                    });
            }
        }
        self.drop_state(s.state);
        self.settle();
        Ok(())
    }

    /// `connect(fd, AF_UNSPEC)`: Linux's `tcp_disconnect`. A connection is reset (one that is
    /// only connecting is deleted: RFC 9293 §3.10.4 in SYN-SENT), a listener stops; the socket
    /// keeps the address `bind()` gave it (an accepted or connected one gives its port back)
    /// and may `connect()` again.
    pub fn disconnect(&mut self, fd: Fd) -> SysResult<()> {
        let s = self.sock(fd)?;
        let state = std::mem::replace(&mut s.state, SockState::Fresh);
        if !s.bind_locked {
            s.bound = None;
        }
        s.error = None;
        s.shut_rd = false;
        s.shut_wr = false;
        if let SockState::Connected(c) = state {
            if c.alive() {
                self.owners.remove(&c.id);
                self.abort(c.id);
            }
        }
        self.drop_state(state);
        self.settle();
        Ok(())
    }

    /// What a socket leaving `state` undoes, besides ending its own connection: a listener
    /// stops and resets the connections nobody accepted (as Linux), a connecting socket's
    /// TCB is deleted (RFC 9293 §3.10.4, CLOSE in SYN-SENT: nothing is sent), and unread
    /// bytes of reset connections are forgotten.
    fn drop_state(&mut self, state: SockState) {
        match state {
            SockState::Listening { key, queue } => {
                self.engine.unlisten(key.0, key.1);
                for c in queue {
                    self.owners.remove(&c.id);
                    if c.alive() {
                        self.abort(c.id);
                    }
                    c.residue.map(|r| self.residues.remove(&r));
                }
            }
            SockState::Connecting { id, .. } => {
                self.owners.remove(&id);
                self.engine.delete(id);
            }
            SockState::Connected(c) => {
                c.residue.map(|r| self.residues.remove(&r));
            }
            SockState::Fresh | SockState::Failed => {}
        }
    }

    /// `shutdown(fd, how)`.
    pub fn shutdown(&mut self, fd: Fd, how: How) -> SysResult<()> {
        self.note(Some(fd), |sock| Op::Shutdown {
            sock,
            how: match how {
                How::Read => 0,
                How::Write => 1,
                How::Both => 2,
            },
        });
        let s = self.sock(fd)?;
        let SockState::Connected(c) = s.state else {
            return Err(Errno::NOTCONN);
        };
        if matches!(how, How::Read | How::Both) {
            s.shut_rd = true;
        }
        if matches!(how, How::Write | How::Both) {
            s.shut_wr = true;
            if c.alive() {
                self.engine
                    .with_io(self.now, c.id, &mut self.tx, |_, _, io| io.shutdown_write());
            }
        }
        self.settle();
        Ok(())
    }

    /// Non-blocking mode (`fcntl(F_SETFL, O_NONBLOCK)`, `ioctl(FIONBIO)`).
    pub fn set_nonblocking(&mut self, fd: Fd, on: bool) -> SysResult<()> {
        self.sock(fd)?.nonblocking = on;
        Ok(())
    }

    /// `fcntl(F_GETFL)`.
    pub fn get_flags(&self, fd: Fd) -> SysResult<i32> {
        match self.files.get(&fd) {
            Some(File::Socket(s)) => {
                Ok(libc::O_RDWR | if s.nonblocking { libc::O_NONBLOCK } else { 0 })
            }
            Some(File::Epoll(_)) => Ok(libc::O_RDWR),
            None => Err(Errno::BADF),
        }
    }

    /// Whether `fd` is in non-blocking mode (false for an unknown descriptor).
    pub fn is_nonblocking(&self, fd: Fd) -> bool {
        self.socket(fd).is_ok_and(|s| s.nonblocking)
    }

    /// The peer of a connected socket (`recvfrom`'s and `recvmsg`'s source address).
    pub fn peer(&self, fd: Fd) -> Option<SocketAddr> {
        let s = self.socket(fd).ok()?;
        match &s.state {
            SockState::Connected(c) => Some(as_family(
                SocketAddr::new(c.tuple.remote_addr, c.tuple.remote_port),
                s.v6,
            )),
            _ => None,
        }
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address for the engine.
fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

/// An engine address as an IPv6 socket shows it (IPv4 as IPv4-mapped).
fn as_family(a: SocketAddr, v6: bool) -> SocketAddr {
    match (a, v6) {
        (SocketAddr::V4(v4), true) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), a.port())
        }
        _ => a,
    }
}

fn is_unspecified(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_unspecified(),
    }
}

/// Whether socket `s` may `connect()` to `addr`: not while it connects (`EALREADY`, or wait
/// if blocking), is connected (`EISCONN`) or listens (`EINVAL`), nor to the other family
/// (`EAFNOSUPPORT`).
fn connectable(s: &Socket, addr: SocketAddr) -> SysResult<()> {
    match s.state {
        SockState::Fresh | SockState::Failed => {}
        SockState::Connecting { .. } => {
            return Err(if s.nonblocking {
                Errno(libc::EALREADY)
            } else {
                Errno::BLOCK
            });
        }
        SockState::Connected(_) => return Err(Errno(libc::EISCONN)),
        SockState::Listening { .. } => return Err(Errno::INVAL),
    }
    if addr.is_ipv6() != s.v6 {
        return Err(Errno(libc::EAFNOSUPPORT));
    }
    Ok(())
}

/// The errno of a `connect()` the engine refused.
fn connect_errno(e: ConnectError) -> Errno {
    match e {
        ConnectError::MixedFamilies => Errno(libc::EAFNOSUPPORT),
        ConnectError::InUse => Errno(libc::EADDRNOTAVAIL),
        ConnectError::TableFull | ConnectError::TxFull | ConnectError::NoMemory => {
            Errno(libc::ENOBUFS)
        }
    }
}
