//! In-memory, deterministic engine scenarios: no root, no network, a virtual clock.

mod util;

mod lifecycle;
mod load;
mod malformed;
mod options;
mod resets;
mod rfc5961;
mod states;
mod syncookies;
mod time_wait;
