//! xdptcp: a kernel-bypass TCP server for Linux.
//!
//! An XDP program steers the TCP segments of served ports into AF_XDP sockets, one per NIC
//! receive queue; on each queue one pinned worker drives a share-nothing, sans-IO TCP engine.
//!
//! The modules, top down (a module only uses the ones below it; `scripts/check_layers.py`
//! holds the code to this table, and to no import circle, in test.sh):
//!
//! | module | what |
//! | --- | --- |
//! | [`control`] | what a running server tells the outside: Prometheus metrics, the stats socket, the control loop |
//! | [`xdp`] | the AF_XDP shell: the XDP program, sockets, workers, [`xdp::Server`], pcap |
//! | [`app`], [`load`], `sim` | the built-in applications; the load generator; two engines joined by a simulated link with seeded faults (cargo feature `sim`, for tests, benches and fuzzing only) |
//! | [`tcp`] | the sans-IO engine (no sockets, clocks, threads or rings in there), and its contract with applications ([`tcp::contract`]) |
//! | [`stats`] | counters, drop reasons and latency histograms |
//! | [`wire`], [`state`], [`tx`], [`time`], [`rng`], [`output`] | typed views and `Repr`s for Ethernet, IPv4, IPv6 and TCP, and sequence numbers; the connection states; where frames are written; the engine's clock; seeded randomness; the files xdptcp writes (0600, never through a symbolic link) |
//!
//! # The engine: frames and `now` in, frames out
//!
//! [`tcp::Engine`] never touches a socket or a clock. It is handed each received Ethernet
//! frame with the time ([`tcp::Engine::receive`]), runs its due timers when told
//! ([`tcp::Engine::poll_timers`], [`tcp::Engine::next_deadline`]), and writes its replies into a
//! [`tx::Tx`]: UMEM frames in production, a `Vec` of frames here. An [`app::App`] runs on top
//! of each connection: it is told of data and writes through an [`app::Io`].
//!
//! Two engines wired back to back, a client and a server of our own application, in memory:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//!
//! use xdptcp::app::{App, Io};
//! use xdptcp::tcp::{Config, Engine, Listener, Secret};
//! use xdptcp::time::Instant;
//!
//! /// Our application: answers with what it got, in upper case.
//! struct Upper;
//!
//! impl App for Upper {
//!     type State = (); // per-connection state, kept in the engine's connection entry
//!     fn on_data(&mut self, _: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
//!         // Consume only what fits in the send buffer: the rest is offered again later.
//!         io.write(&data.to_ascii_uppercase())
//!     }
//! }
//!
//! /// A client: says hello once connected, keeps what comes back.
//! #[derive(Default)]
//! struct Hello {
//!     got: Vec<u8>,
//! }
//!
//! impl App for Hello {
//!     type State = ();
//!     fn on_connected(&mut self, _: &mut (), io: &mut Io<'_>) {
//!         io.write(b"hello\n");
//!     }
//!     fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
//!         self.got.extend_from_slice(data);
//!         data.len()
//!     }
//! }
//!
//! let (server_mac, client_mac) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
//! let server_addr: SocketAddr = "10.0.0.1:7000".parse()?;
//! let client_addr: SocketAddr = "10.0.0.2:40000".parse()?;
//! let server_config = Config {
//!     local_mac: server_mac,
//!     listeners: vec![Listener {
//!         addr: Some(server_addr.ip()),
//!         port: 7000,
//!         keepalive: None,
//!         fastopen: None,
//!         options: Default::default(),
//!     }],
//!     secret: Secret([7; 32]), // SYN cookies and ISNs: random in production
//!     ..Config::default()
//! };
//! let client_config = Config { local_mac: client_mac, secret: Secret([9; 32]), ..Config::default() };
//!
//! let mut now = Instant::ZERO;
//! let mut server = Engine::new(server_config, Upper, now);
//! let mut client = Engine::new(client_config, Hello::default(), now);
//! let (mut to_server, mut to_client): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
//! client.connect(now, client_addr, server_addr, server_mac, &mut to_server)?;
//! for _ in 0..100 {
//!     for frame in std::mem::take(&mut to_server) {
//!         server.receive(now, &frame, &mut to_client);
//!     }
//!     for frame in std::mem::take(&mut to_client) {
//!         client.receive(now, &frame, &mut to_server);
//!     }
//!     now = now + Duration::from_millis(10);
//!     server.poll_timers(now, &mut to_client); // delayed ACKs, retransmissions, ...
//!     client.poll_timers(now, &mut to_server);
//! }
//! assert_eq!(client.app().got, b"HELLO\n");
//! assert_eq!(server.stats().passive_opens, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Serving one's own application
//!
//! [`xdp::Server`] puts the engine on a NIC: it loads and attaches the XDP program, binds one
//! AF_XDP socket per receive queue and runs one pinned worker per queue, each with its own
//! engine (and its own instance of the app) built by the closure given to it.
//! `examples/kv.rs` is a complete line-based key-value store served this way.
//!
//! ```no_run
//! # use xdptcp::app::{App, Io};
//! # struct Upper;
//! # impl App for Upper {
//! #     type State = ();
//! #     fn on_data(&mut self, _: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
//! #         io.write(&data.to_ascii_uppercase())
//! #     }
//! # }
//! use std::time::Duration;
//!
//! use xdptcp::tcp::{Config, Engine, Listener, Secret};
//! use xdptcp::xdp::sys::{self, Interface};
//! use xdptcp::xdp::{Server, ServerConfig};
//!
//! let iface = Interface::lookup("eth1")?;
//! let config = Config {
//!     local_mac: iface.mac,
//!     listeners: vec![Listener {
//!         addr: None,
//!         port: 7000,
//!         keepalive: None,
//!         fastopen: None,
//!         options: Default::default(),
//!     }],
//!     secret: Secret(sys::random_bytes()?),
//!     ..Config::default()
//! };
//! let now = sys::monotonic_now();
//! // The engine's listeners, its SYN-ACK for the XDP program's cookies and their keys; one
//! // worker per receive queue, worker i on core i, XDP native if the driver has it, no pcap
//! // (every field is public: change what you like).
//! let server_config = ServerConfig::for_engine(&iface.name, &config, now);
//! let mut server =
//!     Server::start(server_config, move |_queue| Engine::new(config.clone(), Upper, now))?;
//! for _ in 0..600 {
//!     server.collect(Duration::from_millis(100)); // the workers' snapshots
//! }
//! let report = server.stop(); // stops the workers, detaches the program
//! println!("{}", report.totals.stats);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod control;
pub mod load;
pub mod output;
pub mod rng;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod tx;
pub mod wire;
pub mod xdp;
