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
//! Where things are, top down (a module only uses the ones below it; `scripts/check_layers.py`
//! holds the code to this table, and to no import circle, in test.sh):
//!
//! | module | what |
//! | --- | --- |
//! | `user`, `driver` | the calls of the engine's user: open, send, close, socket options; drivers outside the engine waking connections |
//! | `engine` | the [`Engine`]: tables, dispatch of frames and timers, its memory budget (`engine::memory`) |
//! | `listen`, [`time_wait`] | segments of no connection: LISTEN and the handshake; TIME-WAIT |
//! | `input`, `timeout`, `deliver`, `keepalive` | a connection's SEGMENT ARRIVES, its timers firing, the app's turn; keepalive |
//! | `output` | everything sent: segments of a connection and stateless replies |
//! | `conn`, `negotiate`, `event`, `route` | the control block (its socket options in `conn::options`), handshake options, handler context, addressing |
//! | [`config`] | what an engine is told up front |
//! | [`fastopen`], [`syncookie`], [`isn`] | Fast Open cookies, SYN cookies, initial sequence numbers: the keyed functions of a handshake |
//! | [`recovery`] | the sender's loss recovery, over: |
//! | [`scoreboard`], [`rack`], [`prr`], [`cc`] | the SACK scoreboard, RACK-TLP, PRR, congestion control |
//! | [`conn_table`], [`hash`] | the connection table and its keyed hashes |
//! | [`contract`] | the engine's contract with its applications: [`contract::App`], [`contract::Io`], [`ConnId`], [`FourTuple`], ... |
//! | `budget`, `delayed_ack`, [`rate_limit`], `reassembly`, `rtt`, [`secret`], [`sockopt`], `timer`, [`timer_wheel`] | self-contained pieces |
#![forbid(unsafe_code)]

pub(crate) mod budget;
pub mod cc;
pub mod config;
mod conn;
pub mod conn_table;
pub mod contract;
mod delayed_ack;
mod deliver;
mod driver;
mod engine;
mod event;
pub mod fastopen;
pub mod hash;
mod input;
pub mod isn;
mod keepalive;
mod listen;
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
pub mod sockopt;
pub mod syncookie;
pub mod time_wait;
mod timeout;
mod timer;
pub mod timer_wheel;
mod user;

pub use config::{Config, Keepalive, Listener, SynCookieMode};
pub use contract::{ConnId, FourTuple};
pub use engine::{ConnectError, Engine};
pub use fastopen::{FastOpen, FastOpenKey};
pub use rtt::RtoFormula;
pub use secret::Secret;
pub use sockopt::{ConnOptions, TcpInfo};
pub use user::Buffers;
