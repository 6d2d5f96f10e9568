//! Which pending item starts next: plain FIFO (lock-free), or per-key queues served
//! round-robin (under their own short lock).

use crate::id::OperationId;
use crate::label::{KeyLabel, Label};
use crossbeam_queue::{ArrayQueue, SegQueue};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Keeps a value on cache lines of its own, so writers of neighbouring fields do not steal
/// them (128 bytes: adjacent-line prefetching pairs lines on x86).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One pending item.
pub(crate) struct Job<T, K> {
    pub(crate) item: T,
    pub(crate) id: OperationId,
    pub(crate) key: K,
    /// Start-order stamp: the window lists operations by it.
    pub(crate) seq: u64,
}

/// A key whose item stopped running.
pub(crate) struct Released<K> {
    pub(crate) key: K,
}

/// Why an intake refused an item.
pub(crate) enum Refused<T, K> {
    Full(T, K),
    KeyOverloaded(T),
}

/// The pending queue of a coordinator. Thread-safe by itself: the engine calls it without
/// holding any lock of its own.
pub(crate) trait Intake<T>: Send + Sync + 'static {
    type Key: Send + 'static;
    /// What records keep of a key.
    type Label: KeyLabel;

    /// Items pending.
    fn len(&self) -> usize;
    /// Whether an item could start now (its key is below its cap).
    fn has_ready(&self) -> bool;
    /// Adds an item unless `capacity` items are pending (or, with `fair`, its key is over the
    /// threshold); answers its id.
    ///
    /// `ticket` is the producer's place in the count of accepted items: plain FIFOs use it as
    /// the start-order stamp (their start order is their enqueue order), which saves them a
    /// counter of their own.
    fn try_push(
        &self,
        item: T,
        key: Self::Key,
        capacity: usize,
        fair: bool,
        ticket: u64,
    ) -> Result<OperationId, Refused<T, Self::Key>>;
    /// Releases `release` (see [`release`](Self::release)), then takes the next item that can
    /// start, in one step; the item's key counts as running until it is released.
    fn pop(&self, release: Option<Released<Self::Key>>) -> Option<Job<T, Self::Key>>;
    /// An item of a key stopped running (or was dropped after `pop`).
    fn release(&self, released: Released<Self::Key>);
    /// The label snapshots show for `key` (made outside any lock).
    fn label_of(&self, key: &Self::Key) -> Self::Label;
    /// Removes every pending item (cancel).
    fn drain_into(&self, out: &mut Vec<T>);
}

/// Largest queue capacity served by a preallocated ring; larger ones use a segmented queue
/// that allocates as it fills (a ring of 10 million slots would be allocated up front).
const RING_MAX: usize = 1 << 16;

/// Plain first-in, first-out, lock-free, so producers and workers never wait for each other's
/// critical sections: a preallocated bounded MPMC ring for ordinary capacities, a segmented
/// queue plus a pending counter for very large ones. Slots hold a `Job` with no key and no
/// label (two to a cache line for word-sized items).
///
/// Layout matters here: the segmented counter is written by both sides, so it sits on lines
/// of its own, away from the read-only variant tag and queue fields every pop reads.
pub(crate) enum Fifo<T> {
    Ring(ArrayQueue<Job<T, ()>>),
    Segmented {
        queue: SegQueue<Job<T, ()>>,
        /// Reserved before a push, released after a pop: never above the capacity.
        len: Padded<AtomicUsize>,
    },
}

impl<T> Fifo<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        if capacity <= RING_MAX {
            Fifo::Ring(ArrayQueue::new(capacity))
        } else {
            Fifo::Segmented {
                queue: SegQueue::new(),
                len: Padded(AtomicUsize::new(0)),
            }
        }
    }

    fn job(item: T, ticket: u64) -> Job<T, ()> {
        // Producers are ordered by the queue itself; the stamp only has to grow with it. (Two
        // producers racing a refusal may share a stamp; their order is then unspecified.)
        Job {
            item,
            id: OperationId::next(),
            key: (),
            seq: ticket,
        }
    }
}

impl<T: Send + 'static> Intake<T> for Fifo<T> {
    type Key = ();
    type Label = ();

    fn len(&self) -> usize {
        match self {
            Fifo::Ring(queue) => queue.len(),
            Fifo::Segmented { len, .. } => len.load(Ordering::SeqCst),
        }
    }
    fn has_ready(&self) -> bool {
        match self {
            Fifo::Ring(queue) => !queue.is_empty(),
            Fifo::Segmented { queue, .. } => !queue.is_empty(),
        }
    }
    fn try_push(
        &self,
        item: T,
        (): (),
        capacity: usize,
        _fair: bool,
        ticket: u64,
    ) -> Result<OperationId, Refused<T, ()>> {
        match self {
            Fifo::Ring(queue) => {
                // The ring was built with exactly `capacity` slots.
                debug_assert_eq!(capacity.max(1), queue.capacity());
                let job = Self::job(item, ticket);
                let id = job.id;
                queue
                    .push(job)
                    .map(|()| id)
                    .map_err(|job| Refused::Full(job.item, ()))
            }
            Fifo::Segmented { queue, len } => {
                if len
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < capacity).then_some(n + 1)
                    })
                    .is_err()
                {
                    return Err(Refused::Full(item, ()));
                }
                let job = Self::job(item, ticket);
                let id = job.id;
                queue.push(job);
                Ok(id)
            }
        }
    }
    fn pop(&self, _release: Option<Released<()>>) -> Option<Job<T, ()>> {
        match self {
            Fifo::Ring(queue) => queue.pop(),
            Fifo::Segmented { queue, len } => {
                let job = queue.pop()?;
                len.fetch_sub(1, Ordering::SeqCst);
                Some(job)
            }
        }
    }
    fn release(&self, _released: Released<()>) {}
    fn label_of(&self, (): &()) {}
    fn drain_into(&self, out: &mut Vec<T>) {
        while let Some(job) = self.pop(None) {
            out.push(job.item);
        }
    }
}

/// Per-key FIFO queues in lock-striped shards, plus one lock-free round-robin queue of keys
/// that can start.
///
/// A key's state lives in the shard its hash picks, behind that shard's lock; nothing takes
/// more than one shard lock at a time, and no lock is shared by all keys, so producers and
/// workers on different threads rarely meet. The order in which ready keys are served is one
/// global FIFO (`ready`): a key enters it when it becomes startable and, after one of its items
/// is taken, re-enters at the back if it is still startable, so service is round-robin over
/// every ready key, exactly as with one lock.
///
/// # Invariants
///
/// * `pending` counts items waiting in key queues; it never exceeds the capacity (room is
///   reserved before an insert).
/// * A key has an entry in its shard iff it has an item pending or running; idle keys cost
///   nothing.
/// * A key is in `ready` (once) iff its `in_ready` flag is set, which holds iff it had an item
///   pending and fewer than `per_key` running when it was pushed; only the worker that pops it
///   from `ready` takes its items, so both stay true until then. (A cancel may empty a key
///   while it sits in `ready`; its popper then skips it.)
/// * Keys in `ready` ≤ keys with an item pending ≤ capacity, so a ring of `capacity` slots
///   never overflows (a cancel drains shards before `ready` and gives room back last, so its
///   stale entries never coexist with new reservations; a spill queue would absorb a
///   miscount anyway).
pub(crate) struct Keyed<T, K> {
    shards: Box<[LockedShard<T, K>]>,
    /// Picks a key's shard (seeded, like the shards' own maps).
    pick: foldhash::fast::RandomState,
    ready: Ready<K>,
    pending: Padded<AtomicUsize>,
    /// Start-order stamps.
    seq: Padded<AtomicU64>,
    per_key: usize,
    threshold: usize,
}

/// Shards of the key map.
const SHARDS: usize = 32;

/// A shard behind its lock, on cache lines of its own.
type LockedShard<T, K> = Padded<Mutex<Shard<T, K>>>;

struct Shard<T, K> {
    /// foldhash: several times faster than SipHash on small keys and still seeded per map, so
    /// keys chosen by clients (addresses, user ids) cannot be aimed at one bucket cheaply.
    keys: HashMap<K, KeyState<T>, foldhash::fast::RandomState>,
}

/// The FIFO of ready keys: a preallocated ring up to [`RING_MAX`], a segmented queue above.
struct Ready<K> {
    ring: Option<ArrayQueue<K>>,
    /// The queue itself when there is no ring. With a ring it stays empty while the invariants
    /// hold (ready keys never outnumber pending items, which never exceed the ring's size); it
    /// is there so that a miscount could only reorder keys, never lose one or panic.
    queue: SegQueue<K>,
}

impl<K> Ready<K> {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Ready {
            ring: (capacity <= RING_MAX).then(|| ArrayQueue::new(capacity)),
            queue: SegQueue::new(),
        }
    }

    fn push(&self, key: K) {
        match &self.ring {
            Some(ring) => {
                if let Err(key) = ring.push(key) {
                    debug_assert!(false, "more ready keys than pending items");
                    self.queue.push(key);
                }
            }
            None => self.queue.push(key),
        }
    }

    fn pop(&self) -> Option<K> {
        self.ring
            .as_ref()
            .and_then(ArrayQueue::pop)
            .or_else(|| self.queue.pop())
    }

    fn is_empty(&self) -> bool {
        self.ring.as_ref().is_none_or(ArrayQueue::is_empty) && self.queue.is_empty()
    }
}

/// A pending item in its key's queue (the key is the map's).
struct Queued<T> {
    item: T,
    id: OperationId,
}

/// One key's queue and counts: small (two cache lines with its map slot for word-sized items
/// and keys), since every item touches it three times.
struct KeyState<T> {
    /// The oldest pending item, inline: a key with one item pending allocates no queue.
    head: Option<Queued<T>>,
    /// The rest, in order.
    rest: VecDeque<Queued<T>>,
    running: usize,
    in_ready: bool,
}

impl<T> KeyState<T> {
    fn pending(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    fn push(&mut self, queued: Queued<T>) {
        if self.head.is_none() {
            self.head = Some(queued);
        } else {
            self.rest.push_back(queued);
        }
    }

    fn pop(&mut self) -> Option<Queued<T>> {
        let queued = self.head.take()?;
        self.head = self.rest.pop_front();
        Some(queued)
    }

    /// Whether the key should enter `ready` now (and marks it so).
    fn becomes_ready(&mut self, per_key: usize) -> bool {
        if !self.in_ready && self.head.is_some() && self.running < per_key {
            self.in_ready = true;
            true
        } else {
            false
        }
    }
}

impl<T, K: Hash + Eq + Clone + std::fmt::Display> Keyed<T, K> {
    /// `threshold` is only consulted when a push asks for fairness.
    pub(crate) fn new(per_key: usize, threshold: usize, capacity: usize) -> Self {
        Keyed {
            shards: (0..SHARDS)
                .map(|_| {
                    Padded(Mutex::new(Shard {
                        keys: HashMap::default(),
                    }))
                })
                .collect(),
            pick: foldhash::fast::RandomState::default(),
            ready: Ready::new(capacity),
            pending: Padded(AtomicUsize::new(0)),
            seq: Padded(AtomicU64::new(0)),
            per_key,
            threshold,
        }
    }

    /// Locks `key`'s shard.
    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<T, K>> {
        let i = (std::hash::BuildHasher::hash_one(&self.pick, key) >> 32) as usize % SHARDS;
        // Only our own code runs under these locks.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard<T, K>>> {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn pending_for(&self, key: &K) -> usize {
        self.shard(key).keys.get(key).map_or(0, KeyState::pending)
    }

    /// Keys with something pending or running.
    pub(crate) fn tracked_keys(&self) -> usize {
        self.shards().map(|s| s.keys.len()).sum()
    }

    /// Puts an item at the back of its key's queue (the caller reserved room).
    fn insert(&self, shard: &mut Shard<T, K>, key: K, queued: Queued<T>) {
        // One lookup: the entry API hashes and probes once for both cases.
        let ready = match shard.keys.entry(key) {
            Entry::Occupied(mut e) => {
                let state = e.get_mut();
                state.push(queued);
                state.becomes_ready(self.per_key).then(|| e.key().clone())
            }
            Entry::Vacant(e) => {
                let mut state = KeyState {
                    head: Some(queued),
                    rest: VecDeque::new(),
                    running: 0,
                    in_ready: false,
                };
                let ready = state.becomes_ready(self.per_key).then(|| e.key().clone());
                e.insert(state);
                ready
            }
        };
        if let Some(key) = ready {
            // Still under the shard lock: the key's flag and its place in `ready` change
            // together.
            self.ready.push(key);
        }
    }

    /// Reserves room for one item; false if `capacity` items are pending.
    fn reserve(&self, capacity: usize) -> bool {
        self.pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < capacity).then_some(n + 1)
            })
            .is_ok()
    }
}

impl<T, K> Intake<T> for Keyed<T, K>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + std::fmt::Display + Send + 'static,
{
    type Key = K;
    type Label = Label;

    fn len(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    fn try_push(
        &self,
        item: T,
        key: K,
        capacity: usize,
        fair: bool,
        _ticket: u64,
    ) -> Result<OperationId, Refused<T, K>> {
        let mut shard = self.shard(&key);
        // With fairness, the per-key check is atomic with the insert (same shard lock).
        if fair && shard.keys.get(&key).map_or(0, KeyState::pending) >= self.threshold {
            return Err(Refused::KeyOverloaded(item));
        }
        if !self.reserve(capacity) {
            return Err(Refused::Full(item, key));
        }
        let id = OperationId::next();
        self.insert(&mut shard, key, Queued { item, id });
        Ok(id)
    }

    fn pop(&self, release: Option<Released<K>>) -> Option<Job<T, K>> {
        if let Some(released) = release {
            self.release(released);
        }
        loop {
            let key = self.ready.pop()?;
            let mut shard = self.shard(&key);
            let Some(state) = shard.keys.get_mut(&key) else {
                // Emptied by a cancel while it waited in `ready`.
                continue;
            };
            if !state.in_ready {
                // A stale entry (its key was emptied by a cancel while it waited).
                continue;
            }
            state.in_ready = false;
            let Some(Queued { item, id }) = state.pop() else {
                continue;
            };
            state.running += 1;
            self.pending.fetch_sub(1, Ordering::SeqCst);
            let job = Job {
                item,
                id,
                key: key.clone(),
                seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            };
            // Still startable: back of the queue, so every ready key gets a turn first.
            if state.becomes_ready(self.per_key) {
                self.ready.push(key);
            }
            return Some(job);
        }
    }

    fn release(&self, released: Released<K>) {
        let Released { key } = released;
        let mut shard = self.shard(&key);
        let Entry::Occupied(mut e) = shard.keys.entry(key) else {
            return;
        };
        let state = e.get_mut();
        state.running -= 1;
        if state.running == 0 && state.head.is_none() {
            e.remove();
        } else if state.becomes_ready(self.per_key) {
            self.ready.push(e.key().clone());
        }
    }

    fn label_of(&self, key: &K) -> Label {
        Label::of(key)
    }

    fn drain_into(&self, out: &mut Vec<T>) {
        // Shards first, then the keys they left in `ready` (all stale by then). A key that
        // becomes ready meanwhile was pushed by a producer whose push landed after the cancel;
        // that producer drains again (see the engine's `try_push`). Room is given back last,
        // so no producer can reserve it while stale keys still sit in `ready`.
        let mut removed = 0;
        for mut shard in self.shards() {
            shard.keys.retain(|_, state| {
                while let Some(job) = state.pop() {
                    out.push(job.item);
                    removed += 1;
                }
                state.in_ready = false;
                state.running > 0
            });
        }
        while self.ready.pop().is_some() {}
        self.pending.fetch_sub(removed, Ordering::SeqCst);
    }
}
