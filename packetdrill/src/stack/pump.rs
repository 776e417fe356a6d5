//! The clock and the link: the virtual clock moves and the engine's timers fire on the way;
//! packets from the peer go in (the Ethernet header added) and what the engine sends comes
//! out; after every engine call the app's events are applied to the sockets.

use xdptcp::app::CloseReason;
use xdptcp::tcp::{ConnId, FourTuple};
use xdptcp::time::Instant;
use xdptcp::wire::TcpFrame;
use xdptcp::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use xdptcp::wire::tcp::Flags;

use super::{Conn, Errno, File, LOCAL_MAC, PEER_MAC, SockState, Stack, SysResult};
use crate::app::Event;

impl Stack {
    /// When the engine next has timer work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.engine.next_deadline()
    }

    /// Moves the clock to `t` (never back) and runs the timers due then. Callers that want
    /// each timer to fire at its own time step through [`Stack::next_deadline`].
    pub fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
        }
        if self.engine.next_deadline().is_some_and(|d| d <= self.now) {
            self.engine.poll_timers(self.now, &mut self.tx);
            self.settle();
        }
    }

    /// Runs the clock to `target`, every timer firing at its own instant on the way.
    pub fn run_until(&mut self, target: Instant) {
        while let Some(t) = self.next_deadline().filter(|t| *t <= target) {
            let before = self.now;
            self.advance_to(t);
            if self.now == before && self.next_deadline().is_some_and(|d| d <= before) {
                break;
            }
        }
        self.advance_to(target);
    }

    /// A packet from the peer: a bare IPv4 or IPv6 datagram, checksums filled.
    pub fn netdev_send(&mut self, ip: &[u8]) -> SysResult<()> {
        self.note_packet(ip);
        let ethertype = match ip.first().map(|b| b >> 4) {
            Some(4) => ETHERTYPE_IPV4,
            Some(6) => ETHERTYPE_IPV6,
            _ => return Err(Errno::INVAL),
        };
        let mut frame = vec![0u8; ethernet::HEADER_LEN + ip.len()];
        ethernet::Repr {
            dst: LOCAL_MAC,
            src: PEER_MAC,
            vlan: None,
            ethertype,
        }
        .emit(&mut frame[..ethernet::HEADER_LEN]);
        frame[ethernet::HEADER_LEN..].copy_from_slice(ip);
        self.note_reset(&frame);
        self.engine.receive(self.now, &frame, &mut self.tx);
        self.settle();
        self.resetting = None;
        Ok(())
    }

    /// A RST for a connecting socket means the open was refused (the engine drops the
    /// connection without telling the app, so the socket learns why here). A RST for a
    /// connection holding unread bytes: they are copied out first, to stay readable if it
    /// closes the connection (the engine drops them with it; Linux keeps them for `read()`).
    fn note_reset(&mut self, frame: &[u8]) {
        let Ok(f) = TcpFrame::parse(frame) else {
            return;
        };
        if !f.tcp.flags.contains(Flags::RST) {
            return;
        }
        let tuple = FourTuple {
            local_addr: f.ip.dst(),
            remote_addr: f.ip.src(),
            local_port: f.tcp.dst_port,
            remote_port: f.tcp.src_port,
        };
        if let Some(id) = self.engine.find(&tuple) {
            if self.engine.buffers(id).is_some_and(|b| b.received > 0) {
                let unread = self.read_engine(id, usize::MAX, true);
                self.resetting = Some((id, unread));
            }
        }
        for file in self.files.values_mut() {
            if let File::Socket(s) = file {
                if let SockState::Connecting { tuple, refused, .. } = &mut s.state {
                    if tuple.remote_addr == f.ip.src()
                        && tuple.local_addr == f.ip.dst()
                        && tuple.remote_port == f.tcp.src_port
                        && tuple.local_port == f.tcp.dst_port
                    {
                        *refused = true;
                    }
                }
            }
        }
    }

    /// The next packet the engine sent, as a bare IP datagram, with the time it was sent.
    pub fn netdev_receive(&mut self) -> Option<(Vec<u8>, Instant)> {
        self.outbound.pop_front()
    }

    /// After any engine call: apply the app's events to the sockets, notice failed opens,
    /// queue what was sent.
    pub(super) fn settle(&mut self) {
        self.dirty = true;
        loop {
            let events = std::mem::take(&mut self.engine.app_mut().events);
            if events.is_empty() {
                break;
            }
            for e in events {
                self.apply(e);
            }
        }
        self.check_connecting();
        for frame in self.tx.drain(..) {
            let ip = frame
                .get(ethernet::HEADER_LEN..)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            self.outbound.push_back((ip, self.now));
        }
        self.note_edges();
    }

    fn apply(&mut self, e: Event) {
        match e {
            Event::Connected(id, tuple) => {
                if let Some(&fd) = self.owners.get(&id) {
                    if let Some(s) = self.socket_mut(fd) {
                        if let SockState::Connecting { .. } = s.state {
                            s.state = SockState::Connected(Conn::new(id, tuple));
                        }
                    }
                    return;
                }
                // A passive open: queue it at its listener, or refuse it if there is none.
                let listener = self.files.iter_mut().find_map(|(fd, f)| match f {
                    File::Socket(s) => match &mut s.state {
                        SockState::Listening { key, queue }
                            if key.1 == tuple.local_port
                                && key.0.is_none_or(|a| a == tuple.local_addr) =>
                        {
                            queue.push_back(Conn::new(id, tuple));
                            Some(*fd)
                        }
                        _ => None,
                    },
                    _ => None,
                });
                match listener {
                    Some(fd) => {
                        self.owners.insert(id, fd);
                    }
                    None => self.abort(id),
                }
            }
            Event::PeerClosed(id) => self.with_conn(id, |c| c.peer_fin = true),
            Event::Closed(id, reason) => {
                let residue = match self.resetting.take() {
                    Some((rid, unread)) if rid == id && reason == CloseReason::Reset => {
                        let key = self.next_residue;
                        self.next_residue = self.next_residue.wrapping_add(1);
                        self.residues.insert(key, unread.into());
                        Some(key)
                    }
                    other => {
                        self.resetting = other;
                        None
                    }
                };
                self.with_conn(id, |c| {
                    c.closed = Some(reason);
                    c.residue = residue;
                });
                self.owners.remove(&id);
            }
        }
    }

    /// Runs `f` on the socket-side record of connection `id`, wherever it is.
    fn with_conn(&mut self, id: ConnId, f: impl FnOnce(&mut Conn)) {
        let Some(&fd) = self.owners.get(&id) else {
            return;
        };
        let Some(s) = self.socket_mut(fd) else {
            return;
        };
        match &mut s.state {
            SockState::Connected(c) if c.id == id => f(c),
            SockState::Listening { queue, .. } => {
                if let Some(c) = queue.iter_mut().find(|c| c.id == id) {
                    f(c);
                }
            }
            _ => {}
        }
    }

    /// A connecting socket whose connection left the engine failed to open.
    fn check_connecting(&mut self) {
        let engine = &self.engine;
        let owners = &mut self.owners;
        for s in self.files.values_mut() {
            let File::Socket(s) = s else { continue };
            if let SockState::Connecting { id, tuple, refused } = s.state {
                if engine.find(&tuple) != Some(id) {
                    owners.remove(&id);
                    s.error = Some(Errno(if refused {
                        libc::ECONNREFUSED
                    } else {
                        libc::ETIMEDOUT
                    }));
                    s.state = SockState::Failed;
                }
            }
        }
    }

    pub(super) fn abort(&mut self, id: ConnId) {
        self.engine
            .with_io(self.now, id, &mut self.tx, |_, _, io| io.abort());
    }
}
