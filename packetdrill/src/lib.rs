//! A packetdrill shim: xdptcp's sans-IO engine behind a small BSD-socket layer on a virtual
//! clock, loaded by packetdrill with `--so_filename=libxdptcp_packetdrill.so`.
//!
//! packetdrill (`packetdrill.h`, `so_testing.c`) dlopens the library, calls
//! [`packetdrill_interface_init`] with `--so_flags`, and from then on sends the script's
//! system calls and packets through the function pointers it was given:
//!
//! - [`stack`]: the socket layer (sockets, listeners, accept queues, epoll) over one
//!   [`xdptcp::tcp::Engine`]; bare IP packets in and out;
//! - [`shim`]: threads and the virtual clock (blocking calls, timers firing at their instant);
//! - [`ffi`]: the C interface, one `unsafe extern "C"` entry per function pointer, none of
//!   which lets a panic cross into C;
//! - [`flags`]: `--so_flags` (SYN-cookie mode, MSS, window scale, timers, buffers);
//! - [`app`]: the [`xdptcp::app::App`] that reports connection events to the sockets;
//! - [`ops`]: socket calls and packets as bytes, for the `shim_calls` fuzz target and for
//!   recording packetdrill runs as its seeds (`XDPTCP_SHIM_RECORD=DIR`).
#![warn(missing_docs, unreachable_pub)]

pub mod app;
pub mod ffi;
pub mod flags;
pub mod ops;
pub mod shim;
pub mod stack;

pub use ffi::packetdrill_interface_init;
