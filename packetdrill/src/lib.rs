//! A packetdrill shim: xdptcp's sans-IO engine behind a small BSD-socket layer on a virtual
//! clock, loaded by packetdrill with `--so_filename=libxdptcp_packetdrill.so`.
//!
//! packetdrill (`packetdrill.h`, `so_testing.c`) dlopens the library, calls
//! [`packetdrill_interface_init`] with `--so_flags`, and from then on sends the script's
//! system calls and packets through the function pointers it was given. The modules, in
//! layers (a module only uses the ones below it or beside it in its row):
//!
//! | Module | What it holds |
//! |---|---|
//! | [`ffi`] | the C interface, one `unsafe extern "C"` entry per function pointer, none of which lets a panic cross into C |
//! | [`shim`], [`replay`] | threads and the virtual clock (blocking calls, timers firing at their instant); [`ops::Op`]s applied to a [`stack::Stack`] (the `shim_calls` fuzz target, replays of recordings) |
//! | [`stack`] | the socket layer (sockets, listeners, accept queues, epoll) over one [`xdptcp::tcp::Engine`]; bare IP packets in and out; recording its calls as [`ops::Op`]s |
//! | [`ops`], [`app`] | socket calls and packets as bytes, for the `shim_calls` fuzz target and for recording packetdrill runs as its seeds (`XDPTCP_SHIM_RECORD=DIR`); the [`xdptcp::app::App`] that reports connection events to the sockets |
//! | [`flags`] | `--so_flags` (SYN-cookie mode, MSS, window scale, timers, buffers) |
#![warn(missing_docs, unreachable_pub)]

pub mod app;
pub mod ffi;
pub mod flags;
pub mod ops;
pub mod replay;
pub mod shim;
pub mod stack;

pub use ffi::packetdrill_interface_init;
