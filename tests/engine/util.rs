//! Test apps and helpers shared by the engine scenarios.

use std::cell::RefCell;
use std::rc::Rc;

use xdptcp::app::{App, CloseReason, Io};
use xdptcp::tcp::ConnId;

/// What happened to the connections of one side, in order.
#[derive(Debug, Default)]
pub struct Log {
    pub connected: Vec<ConnId>,
    pub closed: Vec<(ConnId, CloseReason)>,
    pub peer_closed: Vec<ConnId>,
    pub received: Vec<u8>,
}

/// A scriptable app: sends `greeting` on connect, echoes if `echo`, closes on peer close if
/// `close_on_peer_close`, records everything in a shared log.
#[derive(Clone, Default)]
pub struct Scripted {
    pub log: Rc<RefCell<Log>>,
    pub greeting: Vec<u8>,
    pub echo: bool,
    pub close_after_greeting: bool,
    /// Half-close (`shutdown(SHUT_WR)`) right after the greeting.
    pub half_close_after_greeting: bool,
    pub close_on_peer_close: bool,
    /// Consume nothing (a stalled reader).
    pub stalled: bool,
}

#[derive(Default)]
pub struct ScriptedConn {
    id: Option<ConnId>,
}

impl App for Scripted {
    type State = ScriptedConn;

    fn on_connected(&mut self, state: &mut ScriptedConn, io: &mut Io<'_>) {
        state.id = Some(io.id());
        self.log.borrow_mut().connected.push(io.id());
        if !self.greeting.is_empty() {
            assert_eq!(io.write(&self.greeting), self.greeting.len());
        }
        if self.close_after_greeting {
            io.close();
        }
        if self.half_close_after_greeting {
            io.shutdown_write();
        }
    }

    fn on_data(&mut self, _: &mut ScriptedConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        if self.stalled {
            return 0;
        }
        let n = if self.echo {
            io.write(data)
        } else {
            data.len()
        };
        self.log.borrow_mut().received.extend_from_slice(&data[..n]);
        n
    }

    fn on_peer_closed(&mut self, _: &mut ScriptedConn, io: &mut Io<'_>) {
        self.log.borrow_mut().peer_closed.push(io.id());
        if self.close_on_peer_close {
            io.close();
        }
    }

    fn on_closed(&mut self, state: &mut ScriptedConn, reason: CloseReason) {
        if let Some(id) = state.id {
            self.log.borrow_mut().closed.push((id, reason));
        }
    }
}
