//! In-memory, deterministic engine scenarios: no root, no network, a virtual clock.

mod util;

mod lifecycle;
mod states;
mod syncookies;
