//! The connection table: connections keyed by their 4-tuple (RFC 9293 §3.3.1, "the pair of
//! sockets identifies each connection uniquely"), in a slab addressed by [`ConnId`].
//!
//! The index is a keyed hash ([`hash_tuple`]) so a peer cannot choose tuples that collide;
//! it stores only slab indices (4 bytes a bucket), the tuple lives in the value itself.
//! Slots are reused through a free list; each slot carries a generation bumped on removal so
//! stale timers and references (which remember the generation) can tell the slot was reused.

use hashbrown::HashTable;

use super::hash::{Key, hash_tuple};
use super::{ConnId, FourTuple};

/// A value stored in a [`ConnTable`]: it knows its own 4-tuple.
pub trait Keyed {
    /// The 4-tuple this value is filed under; must not change while it is in the table.
    fn tuple(&self) -> &FourTuple;
}

/// The table already holds its maximum number of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection table is full")]
pub struct TableFull;

#[derive(Debug, Clone)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Connections keyed by 4-tuple: a slab, a free list and a keyed index of slab positions.
#[derive(Debug, Clone)]
pub struct ConnTable<T: Keyed> {
    key: Key,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    len: usize,
    capacity: usize,
}

impl<T: Keyed> ConnTable<T> {
    /// An empty table that will hold at most `capacity` connections; memory grows with use.
    pub fn new(key: Key, capacity: usize) -> Self {
        ConnTable {
            key,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            len: 0,
            // Slab positions are u32 (ConnId).
            capacity: capacity.min(u32::MAX as usize),
        }
    }

    /// Files `value` under its tuple. The caller guarantees the tuple is not present.
    pub fn insert(&mut self, value: T) -> Result<ConnId, TableFull> {
        debug_assert!(
            self.find(value.tuple()).is_none(),
            "tuple already in the table"
        );
        if self.len >= self.capacity {
            return Err(TableFull);
        }
        let hash = hash_tuple(&self.key, value.tuple());
        let pos = match self.free.pop() {
            Some(pos) => {
                self.slots[pos as usize].value = Some(value);
                pos
            }
            None => {
                let pos = self.slots.len() as u32;
                self.slots.push(Slot {
                    generation: 0,
                    value: Some(value),
                });
                pos
            }
        };
        let (key, slots) = (&self.key, &self.slots);
        self.index
            .insert_unique(hash, pos, |&p| rehash(key, slots, p));
        self.len += 1;
        Ok(ConnId(pos))
    }

    /// The connection filed under `tuple`, if any.
    pub fn find(&self, tuple: &FourTuple) -> Option<ConnId> {
        self.find_hashed(tuple, hash_tuple(&self.key, tuple))
    }

    /// [`ConnTable::find`] with `hash = hash_tuple(key, tuple)` already computed (under the
    /// key this table was made with), so one hash can serve several tables.
    pub fn find_hashed(&self, tuple: &FourTuple, hash: u64) -> Option<ConnId> {
        self.index
            .find(hash, |&p| {
                self.slots[p as usize]
                    .value
                    .as_ref()
                    .is_some_and(|v| v.tuple() == tuple)
            })
            .map(|&p| ConnId(p))
    }

    /// The connection in slot `id`, if the slot is occupied.
    pub fn get(&self, id: ConnId) -> Option<&T> {
        self.slots.get(id.0 as usize)?.value.as_ref()
    }

    /// The connection in slot `id`, mutably; its tuple must not be changed.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        self.slots.get_mut(id.0 as usize)?.value.as_mut()
    }

    /// The generation of slot `id`: bumped each time the slot is emptied (0 if never used).
    pub fn generation(&self, id: ConnId) -> u32 {
        self.slots.get(id.0 as usize).map_or(0, |s| s.generation)
    }

    /// Takes the connection out of slot `id` and frees the slot for reuse.
    pub fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.0 as usize)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        let hash = hash_tuple(&self.key, value.tuple());
        if let Ok(entry) = self.index.find_entry(hash, |&p| p == id.0) {
            entry.remove();
        }
        self.free.push(id.0);
        self.len -= 1;
        Some(value)
    }

    /// How many connections are in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no connection.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this table has allocated: the slab and free list at their capacity and the
    /// index's buckets (a 4-byte slab position and a control byte each). Not the values' own
    /// heap.
    pub fn allocated_bytes(&self) -> usize {
        // hashbrown keeps buckets at 8/7 of the capacity it reports (a power of two).
        let buckets = if self.index.capacity() == 0 {
            0
        } else {
            (self.index.capacity() * 8 / 7).next_power_of_two()
        };
        self.slots.capacity() * size_of::<Slot<T>>()
            + self.free.capacity() * size_of::<u32>()
            + buckets * (size_of::<u32>() + 1)
    }

    /// Every connection with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((ConnId(i as u32), s.value.as_ref()?)))
    }
}

/// The index's hash of slab position `p`, for hashbrown's rehashing on growth.
fn rehash<T: Keyed>(key: &Key, slots: &[Slot<T>], p: u32) -> u64 {
    slots
        .get(p as usize)
        .and_then(|s| s.value.as_ref())
        .map_or(0, |v| hash_tuple(key, v.tuple()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::hash::test_util::*;

    #[derive(Debug, PartialEq)]
    struct Conn {
        tuple: FourTuple,
        n: u32,
    }

    impl Keyed for Conn {
        fn tuple(&self) -> &FourTuple {
            &self.tuple
        }
    }

    fn conn(n: u32) -> Conn {
        Conn {
            tuple: tuple_v4(n),
            n,
        }
    }

    #[test]
    fn inserted_connections_are_found_and_removed() {
        let mut t = ConnTable::new(Key([3; 16]), 10);
        assert!(t.is_empty());
        let a = t.insert(conn(1)).unwrap();
        let b = t.insert(conn(2)).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.find(&tuple_v4(1)), Some(a));
        assert_eq!(t.find(&tuple_v4(2)), Some(b));
        assert_eq!(t.find(&tuple_v4(3)), None);
        t.get_mut(a).unwrap().n = 11;
        assert_eq!(t.get(a).unwrap().n, 11);
        assert_eq!(t.remove(a).unwrap().n, 11);
        assert_eq!(t.remove(a), None);
        assert_eq!(t.find(&tuple_v4(1)), None);
        assert_eq!(t.get(a), None);
        assert_eq!(t.len(), 1);
        let ids: Vec<ConnId> = t.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![b]);
    }

    #[test]
    fn allocated_bytes_cover_every_slot_and_index_bucket_and_never_shrink_on_removal() {
        let mut t = ConnTable::new(Key([3; 16]), 100_000);
        assert_eq!(
            t.allocated_bytes(),
            0,
            "nothing allocated before the first insert"
        );
        for n in 0..1000 {
            t.insert(conn(n)).unwrap();
        }
        let slot = size_of::<Slot<Conn>>();
        let full = t.allocated_bytes();
        // At least a slot and a 5-byte bucket each; at most two doublings of slack.
        assert!(full >= 1000 * (slot + 5), "{full}");
        assert!(full <= 4 * 1000 * (slot + 5), "{full}");
        for n in 0..500 {
            let id = t.find(&tuple_v4(n)).unwrap();
            t.remove(id);
        }
        assert!(t.allocated_bytes() >= full, "freed slots stay allocated");
    }

    #[test]
    fn slot_reuse_bumps_the_generation() {
        let mut t = ConnTable::new(Key([3; 16]), 10);
        let a = t.insert(conn(1)).unwrap();
        assert_eq!(t.generation(a), 0);
        t.remove(a);
        assert_eq!(t.generation(a), 1);
        let b = t.insert(conn(2)).unwrap();
        assert_eq!(b, a, "the freed slot is reused");
        assert_eq!(t.generation(b), 1);
        assert_eq!(t.find(&tuple_v4(2)), Some(b));
    }

    #[test]
    fn insert_fails_with_table_full_at_capacity() {
        let mut t = ConnTable::new(Key([3; 16]), 2);
        t.insert(conn(1)).unwrap();
        let b = t.insert(conn(2)).unwrap();
        assert_eq!(t.insert(conn(3)), Err(TableFull));
        t.remove(b);
        assert!(t.insert(conn(3)).is_ok());
        let mut zero = ConnTable::new(Key([3; 16]), 0);
        assert_eq!(zero.insert(conn(1)), Err(TableFull));
    }

    #[test]
    fn unknown_ids_are_answered_without_panicking() {
        let mut t: ConnTable<Conn> = ConnTable::new(Key([3; 16]), 2);
        let id = ConnId(u32::MAX);
        assert!(t.get(id).is_none() && t.get_mut(id).is_none() && t.remove(id).is_none());
        assert_eq!(t.generation(id), 0);
    }

    #[test]
    fn a_hundred_thousand_connections_are_all_found() {
        let mut t = ConnTable::new(Key([5; 16]), 200_000);
        let ids: Vec<ConnId> = (0..100_000).map(|n| t.insert(conn(n)).unwrap()).collect();
        assert_eq!(t.len(), 100_000);
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(t.find(&tuple_v4(n as u32)), Some(*id));
            assert_eq!(t.get(*id).unwrap().n, n as u32);
        }
        for id in ids.iter().step_by(2) {
            t.remove(*id);
        }
        assert_eq!(t.len(), 50_000);
        assert_eq!(t.iter().count(), 50_000);
        for n in 0..100_000u32 {
            assert_eq!(t.find(&tuple_v4(n)).is_some(), n % 2 == 1);
        }
    }
}
