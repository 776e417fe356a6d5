//! Applications: what runs on top of an established connection.
//!
//! An application implements [`App`] and writes through an [`Io`]: the engine's contract,
//! defined in [`crate::tcp::contract`] and re-exported here for plug-ins. This module holds the
//! built-in applications: [`http`] (an HTTP/1.1 responder for wrk), [`echo`], [`discard`], and
//! [`http_client`] (what `xdptcp load` runs).
#![forbid(unsafe_code)]

pub use crate::tcp::contract::{App, CloseReason, Io, SendFlags, Shutdown};

pub mod discard;
pub mod echo;
pub mod http;
pub mod http_client;
