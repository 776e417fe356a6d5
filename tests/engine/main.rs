//! In-memory, deterministic engine scenarios: no root, no network, a virtual clock.

mod netsim;
mod util;

mod keepalive;
mod lifecycle;
mod lossy;
mod receive;
mod retransmission;
mod zero_window;
