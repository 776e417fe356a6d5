//! An engine's memory: the bookkeeping that keeps its [`Budget`] exact event by event, the
//! reclaim that prunes out-of-order queues first under memory pressure, and the walk that
//! reports what the connections hold.
//!
//! The count is kept where a connection's buffers can change, and nowhere else: around each
//! event ([`MemoryAccount::begin`], [`MemoryAccount::end`]: `Engine::with_conn`, which every
//! segment, timer, batch end, wake and user call goes through), when a connection enters the
//! table ([`Engine::admit`]) and when it leaves it ([`MemoryAccount::forget`]). Measuring
//! `heap_bytes()` there (four capacities and the reassembly ranges) costs the same whatever the
//! event did, and no grow or free site can be missed, the SACK scoreboard's included, which
//! another module allocates. The walk in [`Engine::memory`] adds the same figures up from
//! scratch; tests hold the two equal through thousands of random events.

use std::collections::VecDeque;

use super::Engine;
use crate::stats::{Memory, Stats};
use crate::tcp::ConnId;
use crate::tcp::budget::Budget;
use crate::tcp::conn::Conn;
use crate::tcp::contract::App;
use crate::tcp::time_wait::TimeWaitTable;

/// A connection listed as holding out-of-order data, with the mark its reassembly queue got
/// when it was listed (a later listing of the same connection gets a new mark).
#[derive(Debug, Clone, Copy)]
struct Holder {
    id: ConnId,
    generation: u32,
    mark: u32,
}

/// The engine's memory bookkeeping: the budget, and the connections holding out-of-order data,
/// in the order their queues last went from empty to not empty (the oldest first).
#[derive(Debug)]
pub(crate) struct MemoryAccount {
    pub(crate) budget: Budget,
    holders: VecDeque<Holder>,
    /// The last mark given (never 0, which means "not listed").
    mark: u32,
}

/// The holder list is compacted (entries of connections gone or no longer holding dropped)
/// when it grows past twice the connections plus this.
const HOLDER_SLACK: usize = 64;

impl MemoryAccount {
    /// Nothing counted, `limit` bytes to count against.
    pub(crate) fn new(limit: usize) -> MemoryAccount {
        MemoryAccount {
            budget: Budget::new(limit),
            holders: VecDeque::new(),
            mark: 0,
        }
    }

    /// A connection's event begins: its bytes leave the count, which the event's decisions
    /// see plus the connection's live `heap_bytes()`.
    pub(crate) fn begin<S>(&mut self, c: &Conn<S>) {
        self.budget.sub(c.heap_bytes());
    }

    /// A connection's event ended: its bytes come back into the count, and it is listed if it
    /// has just begun to hold out-of-order data.
    pub(crate) fn end<S>(
        &mut self,
        c: &mut Conn<S>,
        id: ConnId,
        generation: u32,
        stats: &mut Stats,
    ) {
        self.budget.add(c.heap_bytes());
        let ooo = &mut c.rcv.ooo;
        if ooo.is_empty() {
            ooo.listed = 0;
        } else if ooo.listed == 0 {
            self.mark = self.mark.wrapping_add(1).max(1);
            ooo.listed = self.mark;
            self.holders.push_back(Holder {
                id,
                generation,
                mark: self.mark,
            });
        }
        self.settle(stats);
    }

    /// A connection left the table (closed, or into the TIME-WAIT table): its bytes go.
    pub(crate) fn forget<S>(&mut self, c: &Conn<S>, stats: &mut Stats) {
        self.budget.sub(c.heap_bytes());
        self.settle(stats);
    }

    fn settle(&mut self, stats: &mut Stats) {
        if self.budget.settle() {
            stats.memory_pressures += 1;
        }
    }
}

impl<A: App> Engine<A> {
    /// A connection just entered the table: its bytes (none yet, normally) are counted.
    pub(crate) fn admit(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get(id) {
            self.memory.budget.add(c.heap_bytes());
        }
    }

    /// Whether the listed `h` still stands for a connection holding out-of-order data.
    fn holds(&self, h: &Holder) -> bool {
        self.conns.generation(h.id) == h.generation
            && self
                .conns
                .get(h.id)
                .is_some_and(|c| c.rcv.ooo.listed == h.mark)
    }

    /// Under memory pressure, out-of-order queues are pruned first: those of the connections
    /// that have held out-of-order data the longest (whose holes are not being filled), each
    /// from its highest sequence number down, until the count is back at the pressure mark.
    /// Linux prunes only the socket that needs the memory (`tcp_prune_ofo_queue` from
    /// `tcp_try_rmem_schedule`); taking the oldest holders first keeps connections that hoard
    /// out-of-order data from starving the others. Runs after every event; costs nothing
    /// below the pressure mark.
    pub(crate) fn reclaim(&mut self) {
        if self.memory.holders.len() > 2 * self.conns.len() + HOLDER_SLACK {
            let mut holders = std::mem::take(&mut self.memory.holders);
            holders.retain(|h| self.holds(h));
            self.memory.holders = holders;
        }
        while self.memory.budget.reclaim_goal() > 0 {
            let Some(h) = self.memory.holders.pop_front() else {
                break;
            };
            if !self.holds(&h) {
                continue;
            }
            let goal = self.memory.budget.reclaim_goal();
            let Some(c) = self.conns.get_mut(h.id) else {
                continue;
            };
            let before = c.heap_bytes();
            let floor = c.rcv.nxt;
            let (_, dropped) = c.rcv.ooo.prune_above(floor, goal);
            self.memory
                .budget
                .sub(before.saturating_sub(c.heap_bytes()));
            self.stats.ofo_prunes += 1;
            self.stats.ofo_pruned_bytes += dropped as u64;
            if c.rcv.ooo.is_empty() {
                c.rcv.ooo.listed = 0;
            } else {
                self.memory.holders.push_front(h);
            }
        }
        self.memory.settle(&mut self.stats);
    }

    /// Whether the engine holds more than half its budget (where memory pressure ends: it is
    /// in the upper half, or under pressure). Cheap: the shell asks at every snapshot.
    pub fn memory_above_half(&self) -> bool {
        let budget = &self.memory.budget;
        budget.used() > budget.limit() / 2
    }

    /// What the engine holds now for its connections, and its memory budget. Walks the
    /// connection table: call it about once a second, not per packet.
    pub fn memory(&self) -> Memory {
        let mut in_use = 0;
        let mut heap = 0;
        for (id, c) in self.conns.iter() {
            in_use += self.connection_bytes(id).unwrap_or(0);
            heap += c.heap_bytes();
        }
        let time_wait = self.time_wait.len();
        let budget = &self.memory.budget;
        Memory {
            connections: self.conns.len() as u64,
            connection_bytes: in_use as u64,
            allocated_bytes: (self.conns.allocated_bytes() + heap + self.wheel.allocated_bytes())
                as u64,
            time_wait: time_wait as u64,
            time_wait_bytes: (time_wait * TimeWaitTable::ENTRY_BYTES) as u64,
            buffer_bytes: heap as u64,
            budget_used: budget.used() as u64,
            budget_limit: budget.limit() as u64,
            engines: 1,
            under_pressure: u64::from(budget.under_pressure()),
            at_limit: u64::from(budget.full(0)),
        }
    }
}
