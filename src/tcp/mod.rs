//! The sans-IO TCP engine.
//!
//! Read first: RFC 9293 (TCP, §3.10 "Event Processing"), RFC 5961 (blind in-window attacks),
//! RFC 4987 (SYN cookies), RFC 6528 (ISNs), RFC 7323 (window scale, timestamps, PAWS),
//! RFC 6298 (RTO), RFC 5681 and RFC 6582 (congestion control, NewReno), RFC 6191 (TIME-WAIT
//! recycling), RFC 1122 §4.2.3.6 (keepalive).
//!
//! Nothing below this module touches a socket, a clock, a thread or a ring: frames and `now`
//! come in, frames go out through [`crate::tx::Tx`].

pub mod config;
mod congestion;
mod conn;
pub mod conn_table;
mod driver;
mod engine;
pub mod hash;
mod input;
pub mod isn;
mod memory;
mod output;
pub mod rate_limit;
mod reassembly;
mod rtt;
pub mod seq;
pub mod state;
pub mod syncookie;
pub mod time_wait;
pub mod timer_wheel;
mod timers;
pub mod tuple;

pub use config::{Config, Keepalive, Listener, SynCookieMode};
pub use engine::{ConnectError, Engine};
pub use seq::SeqNumber;
pub use state::State;
pub use tuple::FourTuple;

/// Names one connection inside one engine (a slot in its connection table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);
