//! An engine's memory for reports: its connections, their buffers, its index and timers.

use super::Engine;
use super::time_wait::TimeWaitTable;
use crate::app::App;
use crate::stats::Memory;

impl<A: App> Engine<A> {
    /// What the engine holds now for its connections. Walks the connection table: call it
    /// about once a second, not per packet.
    pub fn memory(&self) -> Memory {
        let mut in_use = 0;
        let mut heap = 0;
        for (id, c) in self.conns.iter() {
            in_use += self.connection_bytes(id).unwrap_or(0);
            heap += c.heap_bytes();
        }
        let time_wait = self.time_wait.len();
        Memory {
            connections: self.conns.len() as u64,
            connection_bytes: in_use as u64,
            allocated_bytes: (self.conns.allocated_bytes() + heap + self.wheel.allocated_bytes())
                as u64,
            time_wait: time_wait as u64,
            time_wait_bytes: (time_wait * TimeWaitTable::ENTRY_BYTES) as u64,
        }
    }
}
