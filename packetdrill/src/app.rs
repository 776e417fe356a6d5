//! The [`App`] under the socket layer: it never acts on its own. It reports connection events
//! to the stack, and it takes received data only when a `read()` grants it a budget, so bytes
//! the script has not read stay in the engine and shrink the advertised window, as unread
//! bytes in a kernel socket do.

use xdptcp::app::{App, CloseReason, Io};
use xdptcp::tcp::{ConnId, FourTuple};

/// What happened to a connection, in order, for the stack to apply to its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Established: an active open completed, or a listener accepted one.
    Connected(ConnId, FourTuple),
    /// The peer's FIN arrived and every byte before it was consumed.
    PeerClosed(ConnId),
    /// The connection is gone (or in TIME-WAIT).
    Closed(ConnId, CloseReason),
}

/// A `read()` in progress: up to `max` bytes go to `out`; with `peek` they stay in the engine.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub(crate) max: usize,
    pub(crate) peek: bool,
    pub(crate) out: Vec<u8>,
}

/// The socket layer's app: events out, data only on request.
#[derive(Debug, Default)]
pub struct SocketApp {
    pub(crate) events: Vec<Event>,
    pub(crate) read: Option<Read>,
}

/// Per connection: its id, so `on_closed` can say which one ended.
#[derive(Debug, Default)]
pub struct ConnState {
    id: Option<ConnId>,
}

impl App for SocketApp {
    type State = ConnState;

    fn on_connected(&mut self, state: &mut ConnState, io: &mut Io<'_>) {
        state.id = Some(io.id());
        self.events.push(Event::Connected(io.id(), io.tuple()));
    }

    fn on_data(&mut self, _: &mut ConnState, _: &mut Io<'_>, data: &[u8]) -> usize {
        let Some(read) = self.read.as_mut() else {
            return 0;
        };
        let n = data.len().min(read.max.saturating_sub(read.out.len()));
        read.out.extend_from_slice(&data[..n]);
        if read.peek { 0 } else { n }
    }

    fn on_peer_closed(&mut self, _: &mut ConnState, io: &mut Io<'_>) {
        // The script decides when to close; only report it.
        self.events.push(Event::PeerClosed(io.id()));
    }

    fn on_closed(&mut self, state: &mut ConnState, reason: CloseReason) {
        if let Some(id) = state.id {
            self.events.push(Event::Closed(id, reason));
        }
    }
}
