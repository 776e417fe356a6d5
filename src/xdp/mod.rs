//! The AF_XDP shell around the engine: load and attach the XDP program, one AF_XDP socket
//! (with its own UMEM) per receive queue, one pinned worker per socket, a control thread.
//!
//! # UMEM frame ownership
//!
//! Every frame of a socket's UMEM is, at any moment, in exactly one of these places, and only
//! the owner may touch its bytes:
//!
//! | place | owner | leaves by |
//! | --- | --- | --- |
//! | free list | user space | `refill` (→ fill ring) or `Tx::send` (→ pending) |
//! | fill ring, then RX ring | kernel | `receive_batch` pops it from the RX ring |
//! | received, in `receive_batch` | the engine, read-only | back to the free list after the batch |
//! | received, one of a chain's | the gather buffer, read-only | back to the free list once copied |
//! | pending TX batch | user space, written once by the engine | `flush` (→ TX ring) |
//! | TX ring, then completion ring | kernel | `reap_completions` (→ free list) |
//!
//! So a frame given to the fill or TX ring is never read or written until it comes back on the
//! RX or completion ring; a multi-buffer packet's frames are copied into one frame
//! ([`gather`]) and freed before the engine sees it; the engine reads a received frame only
//! during its `receive` call,
//! while replies are written only into frames taken off the free list; and `free + fill +
//! rx_held + tx_pending + tx_in_flight == total` always holds ([`frames::FramePool`] keeps the
//! places and is property-tested for it; [`frames::FrameAccount`] is in every worker
//! snapshot). Every `unsafe` around the rings and the UMEM ([`ring`], [`socket`]) rests on
//! these rules, which [`ring::Rings`] and [`ring::Umem`] state as their safety contract; the
//! in-memory rings of `ring::testing` run the worker loop without a kernel.

pub mod capture;
pub mod frames;
pub mod gather;
pub mod key_schedule;
pub mod privileges;
pub mod program;
pub mod refuser;
pub mod ring;
pub mod server;
pub mod shared_maps;
pub mod socket;
pub mod sys;
pub mod worker;

pub use capture::{Capture, CaptureConfig, CaptureError, CaptureLimit, CaptureTotals, PcapFile};
pub use program::{
    AttachError, Attachment, LoadError, MapError, Program, ProgramConfig, SynAckTemplate,
    XdpCounters, XdpMode,
};
pub use server::{Server, ServerConfig, StartError, WorkerDied};
pub use shared_maps::{CookieKeyTable, QueueFlag};
pub use socket::{BindMode, FrameAccount, LinkMss, SocketError, XskConfig, XskSocket};
pub use worker::{Control, Handler, Snapshot};
