//! What a connection's event handlers share: the context of one event ([`Cx`]: configuration,
//! counters, the app, the transmit side, `now`) and what the event decided ([`Outcome`]).
//!
//! Connection handlers (`input`, `timers`, `deliver`, `output`) take `(&mut Conn, &mut Cx)`;
//! the handlers of segments that match no connection (`listen`, `time_wait`) take a
//! [`Stateless`] context. Only the engine builds them and acts on an `Outcome`.

use super::budget::Budget;
use super::contract::{App, CloseReason};
use super::hash::Keys;
use super::{Config, ConnId};
use crate::stats::{Latencies, Stats};
use crate::time::Instant;
use crate::tx::Tx;

/// What happens to a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It lives on.
    Keep,
    /// It is gone (the app is told why).
    Close(CloseReason),
    /// It moves to the TIME-WAIT table.
    TimeWait,
}

/// The receive batch the engine is in, if any ([`super::Engine::begin_batch`]): in-order data
/// that would be acknowledged at once is acknowledged when the batch ends instead, once per
/// connection, as if a NIC's GRO had merged the batch's segments into one.
#[derive(Debug, Default)]
pub(crate) struct AckBatch {
    /// A batch is open.
    pub(crate) open: bool,
    /// The connections owed an ACK when it ends (each once while its ACK is owed).
    pub(crate) owed: Vec<ConnId>,
}

/// Everything an event handler may touch besides the connection itself.
pub(crate) struct Cx<'a, A: App, T: Tx> {
    pub(crate) cfg: &'a Config,
    pub(crate) stats: &'a mut Stats,
    pub(crate) app: &'a mut A,
    pub(crate) tx: &'a mut T,
    pub(crate) now: Instant,
    pub(crate) id: ConnId,
    pub(crate) latencies: &'a mut Latencies,
    pub(crate) batch: &'a mut AckBatch,
    /// The engine's memory budget, without this connection's own bytes (count them with its
    /// `heap_bytes()`).
    pub(crate) mem: &'a Budget,
}

/// Everything handling a segment that matches no connection (LISTEN, TIME-WAIT) may touch:
/// no connection and no app, just the configuration, the counters, the keys and the
/// transmit side.
pub(crate) struct Stateless<'a, T: Tx> {
    pub(crate) cfg: &'a Config,
    pub(crate) stats: &'a mut Stats,
    pub(crate) keys: &'a Keys,
    pub(crate) tx: &'a mut T,
    pub(crate) now: Instant,
    /// The memory budget is spent: new connections are refused.
    pub(crate) memory_full: bool,
}
