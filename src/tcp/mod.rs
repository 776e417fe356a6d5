//! The sans-IO TCP engine.
//!
//! Read first: RFC 9293 (TCP, §3.10 "Event Processing"), RFC 5961 (blind in-window attacks),
//! RFC 4987 (SYN cookies), RFC 6528 (ISNs), RFC 7323 (window scale, timestamps, PAWS),
//! RFC 6298 (RTO), RFC 5681 and RFC 6582 (congestion control, NewReno), RFC 6191 (TIME-WAIT
//! recycling), RFC 1122 §4.2.3.6 (keepalive), RFC 7413 (TCP Fast Open, [`fastopen`]); for loss
//! recovery RFC 6675 and RFC 2883
//! ([`scoreboard`]), RFC 8985 ([`rack`]), RFC 6937 ([`prr`]) and RFC 9438 ([`cc`]).
//!
//! Nothing below this module touches a socket, a clock, a thread or a ring: frames and `now`
//! come in, frames go out through [`crate::tx::Tx`].
//!
//! Where things are, top down (a module only uses the ones below it):
//!
//! | module | what |
//! | --- | --- |
//! | `engine`, `memory` | the [`Engine`]: tables, dispatch of frames and timers, the public API; the bookkeeping of its memory budget |
//! | `listen`, [`fastopen`], [`time_wait`] | segments of no connection: LISTEN, SYN cookies and Fast Open; TIME-WAIT |
//! | `input`, `timeout`, `deliver` | a connection's SEGMENT ARRIVES, its timers firing, the app's turn |
//! | `output` | everything sent: segments of a connection and stateless replies |
//! | `conn`, `negotiate`, `timer`, `event`, `route` | the control block, handshake options, timers, handler context, addressing |
//! | [`recovery`] over [`scoreboard`], [`rack`], [`prr`], [`cc`] | the sender's loss recovery |
//! | [`syncookie`], [`isn`], [`conn_table`], [`timer_wheel`], `rtt`, `reassembly`, `budget`, [`seq`], ... | self-contained pieces |
#![forbid(unsafe_code)]

pub(crate) mod budget;
pub mod cc;
pub mod config;
mod conn;
pub mod conn_table;
mod delayed_ack;
mod deliver;
mod driver;
mod engine;
mod event;
pub mod fastopen;
pub mod hash;
mod input;
pub mod isn;
mod listen;
mod memory;
mod negotiate;
mod output;
pub mod prr;
pub mod rack;
pub mod rate_limit;
mod reassembly;
pub mod recovery;
mod route;
mod rtt;
pub mod scoreboard;
pub mod secret;
pub mod seq;
pub mod sockopt;
pub mod state;
pub mod syncookie;
pub mod time_wait;
mod timeout;
mod timer;
pub mod timer_wheel;
pub mod tuple;
mod user;

pub use config::{Config, Keepalive, Listener, SynCookieMode};
pub use engine::{ConnectError, Engine};
pub use fastopen::{FastOpen, FastOpenKey};
pub use rtt::RtoFormula;
pub use secret::Secret;
pub use seq::SeqNumber;
pub use sockopt::{ConnOptions, TcpInfo};
pub use state::State;
pub use tuple::FourTuple;
pub use user::Buffers;

/// Names one connection inside one engine (a slot in its connection table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);
