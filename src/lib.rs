//! xdptcp: a kernel-bypass TCP server for Linux.
//!
//! An XDP program steers the TCP segments of served ports into AF_XDP sockets, one per NIC
//! receive queue; on each queue one pinned worker drives a share-nothing, sans-IO TCP engine.
//!
//! - [`wire`]: typed views and `Repr`s for Ethernet, IPv4, IPv6 and TCP.
//! - [`tcp`]: the sans-IO engine (no sockets, clocks, threads or rings in there).
//! - [`app`]: the [`app::App`] trait and the built-in applications.
//! - [`stats`]: counters, drop reasons and latency histograms.
#![warn(missing_docs, unreachable_pub)]

pub mod app;
pub mod control;
pub mod load;
pub mod sim;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod tx;
pub mod wire;
pub mod xdp;
