//! The AF_XDP shell around the engine.
pub mod program;
