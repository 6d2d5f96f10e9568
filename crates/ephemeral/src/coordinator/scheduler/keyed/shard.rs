//! The key map's shards: each key's queue and counts, behind its shard's lock.

use crate::id::OperationId;
use crate::sync::Mutex;
use crossbeam_utils::CachePadded;
use std::collections::{HashMap, VecDeque};

/// The maps' and the shard picker's hasher: seeded per map, so keys chosen by clients cannot
/// be aimed at one bucket cheaply. Fixed under loom, where every run of a model must hash
/// alike.
#[cfg(not(loom))]
pub(super) type Hashing = foldhash::fast::RandomState;
#[cfg(loom)]
pub(super) type Hashing = foldhash::fast::FixedState;

/// Shards of the key map.
pub(super) const SHARDS: usize = 32;

/// A shard behind its lock, on cache lines of its own.
pub(super) type LockedShard<T, K> = CachePadded<Mutex<Shard<T, K>>>;

pub(super) struct Shard<T, K> {
    /// foldhash: several times faster than SipHash on small keys and still seeded per map, so
    /// keys chosen by clients (addresses, user ids) cannot be aimed at one bucket cheaply.
    pub(super) keys: HashMap<K, KeyState<T>, Hashing>,
    /// With fast slots: how many keys of this shard wait for each slot's item, by slot index.
    pub(super) waiting: HashMap<u64, usize, Hashing>,
}

/// A pending item in its key's queue (the key is the map's).
pub(super) struct Queued<T> {
    pub(super) item: T,
    pub(super) id: OperationId,
}

/// One key's queue and counts: small (two cache lines with its map slot for word-sized items
/// and keys), since every item touches it at least twice.
pub(super) struct KeyState<T> {
    /// The oldest queued item, inline: a key with one item queued allocates no queue.
    pub(super) head: Option<Queued<T>>,
    /// The rest, in order.
    pub(super) rest: VecDeque<Queued<T>>,
    /// Items admitted to `ready` and not released: waiting there, or running.
    pub(super) admitted: usize,
    /// The key's item waiting in `ready` (see [`Keyed`](super::Keyed)'s invariants).
    pub(super) in_ready: Option<OperationId>,
    /// With fast slots: queued items wait for the item admitted through the key's slot.
    pub(super) waits_on_slot: bool,
    /// The key's hash (with fast slots, to find waiters of a slot).
    pub(super) hash: u64,
}

impl<T> KeyState<T> {
    pub(super) fn queued(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    pub(super) fn push(&mut self, queued: Queued<T>) {
        if self.head.is_none() {
            self.head = Some(queued);
        } else {
            self.rest.push_back(queued);
        }
    }

    pub(super) fn pop(&mut self) -> Option<Queued<T>> {
        let queued = self.head.take()?;
        self.head = self.rest.pop_front();
        Some(queued)
    }

    /// Takes the next item to admit, if the key may have one more admitted now.
    pub(super) fn admit(&mut self, per_key: usize) -> Option<Queued<T>> {
        if self.in_ready.is_some() || self.admitted >= per_key {
            return None;
        }
        let queued = self.pop()?;
        self.admitted += 1;
        self.in_ready = Some(queued.id);
        Some(queued)
    }

    pub(super) fn idle(&self) -> bool {
        self.admitted == 0 && self.head.is_none()
    }
}
