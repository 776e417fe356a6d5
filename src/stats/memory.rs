//! What an engine's connections cost in memory: the figure behind "bytes per connection", and
//! the memory budget their buffers count against.

/// Memory an engine holds for its connections, at one moment. Plain data: workers send it with
/// their snapshots and the control thread adds it up with [`Memory::merge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Live connections (every state but TIME-WAIT).
    pub connections: u64,
    /// What they cost in use: the sum of `Engine::connection_bytes` (slab slot, index share,
    /// send/receive/reassembly buffers).
    pub connection_bytes: u64,
    /// What the connection table, its index, the buffers and the timer wheel have allocated
    /// (capacities, so the slack of the last doubling counts too).
    pub allocated_bytes: u64,
    /// Entries in the TIME-WAIT table.
    pub time_wait: u64,
    /// What those entries cost (`TimeWaitTable::ENTRY_BYTES` each).
    pub time_wait_bytes: u64,
    /// What the connections' buffers hold, added up connection by connection: capacities of
    /// the send, receive and reassembly buffers and the SACK scoreboards.
    pub buffer_bytes: u64,
    /// The same as the memory budget counts it, event by event (equal to `buffer_bytes`).
    pub budget_used: u64,
    /// The memory budget (`Config::memory_limit`).
    pub budget_limit: u64,
    /// Engines measured (one per worker).
    pub engines: u64,
    /// Of them, those under memory pressure (windows and send buffers held back,
    /// out-of-order queues pruned).
    pub under_pressure: u64,
    /// Of them, those at their limit (no buffer grows, new connections refused).
    pub at_limit: u64,
}

impl Memory {
    /// Adds another engine's figures into this one.
    pub fn merge(&mut self, other: &Memory) {
        self.connections += other.connections;
        self.connection_bytes += other.connection_bytes;
        self.allocated_bytes += other.allocated_bytes;
        self.time_wait += other.time_wait;
        self.time_wait_bytes += other.time_wait_bytes;
        self.buffer_bytes += other.buffer_bytes;
        self.budget_used += other.budget_used;
        self.budget_limit += other.budget_limit;
        self.engines += other.engines;
        self.under_pressure += other.under_pressure;
        self.at_limit += other.at_limit;
    }

    /// Bytes in use per live connection (0 without connections).
    pub fn bytes_per_connection(&self) -> f64 {
        ratio(self.connection_bytes, self.connections)
    }

    /// Allocated bytes per live connection (0 without connections).
    pub fn allocated_per_connection(&self) -> f64 {
        ratio(self.allocated_bytes, self.connections)
    }

    /// The figures, with both per-connection ratios, as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections,
            "connection_bytes": self.connection_bytes,
            "allocated_bytes": self.allocated_bytes,
            "bytes_per_connection": self.bytes_per_connection(),
            "allocated_per_connection": self.allocated_per_connection(),
            "time_wait": self.time_wait,
            "time_wait_bytes": self.time_wait_bytes,
            "buffer_bytes": self.buffer_bytes,
            "budget_used": self.budget_used,
            "budget_limit": self.budget_limit,
            "engines": self.engines,
            "under_pressure": self.under_pressure,
            "at_limit": self.at_limit,
        })
    }
}

fn ratio(bytes: u64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { bytes as f64 / n as f64 }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections, {:.0} B each in use, {:.0} B each allocated; {} TIME-WAIT entries, {} B; \
             buffers {} B of a {} B budget, {} of {} engine(s) under memory pressure, {} at the limit",
            self.connections,
            self.bytes_per_connection(),
            self.allocated_per_connection(),
            self.time_wait,
            self.time_wait_bytes,
            self.budget_used,
            self.budget_limit,
            self.under_pressure,
            self.engines,
            self.at_limit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_and_ratios_divide_by_live_connections() {
        let mut a = Memory {
            connections: 2,
            connection_bytes: 800,
            allocated_bytes: 1000,
            time_wait: 1,
            time_wait_bytes: 68,
            buffer_bytes: 300,
            budget_used: 300,
            budget_limit: 1000,
            engines: 1,
            under_pressure: 1,
            at_limit: 0,
        };
        a.merge(&a.clone());
        assert_eq!(a.connections, 4);
        assert_eq!(a.bytes_per_connection(), 400.0);
        assert_eq!(a.allocated_per_connection(), 500.0);
        assert_eq!(a.to_json()["time_wait_bytes"], 136);
        assert_eq!(a.to_json()["budget_limit"], 2000);
        assert!(
            a.to_string()
                .ends_with("buffers 600 B of a 2000 B budget, 2 of 2 engine(s) under memory pressure, 0 at the limit"),
            "{a}"
        );
        assert_eq!(Memory::default().bytes_per_connection(), 0.0);
    }
}
