//! In-memory, deterministic engine scenarios: no root, no network, a virtual clock.

#[macro_use]
mod util;
mod netsim;

mod abort_on_data;
mod app_deadline;
mod driver;
mod fastopen;
mod hostile_sack;
mod keepalive;
mod lifecycle;
mod load;
mod lossy;
mod malformed;
mod memory_pressure;
mod options;
mod push;
mod receive;
mod recovery;
mod resets;
mod retransmission;
mod rfc5961;
mod sockopt;
mod states;
mod syncookies;
mod time_wait;
mod user_calls;
mod xdp_cookies;
mod zero_window;
