//! The keyed intake: per-key FIFO queues served round-robin, at most `per_key` items of a key
//! at a time.

use super::{Intake, Job, Padded, Refused, Released, RING_MAX};
use crate::id::OperationId;
use crate::label::Label;
use crossbeam_queue::{ArrayQueue, SegQueue};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Per-key FIFO queues in lock-striped shards, plus one lock-free round-robin queue of the
/// items that can start.
///
/// A key's state lives in the shard its hash picks, behind that shard's lock; nothing takes
/// more than one shard lock at a time, and no lock is shared by all keys, so producers and
/// workers on different threads rarely meet. A key's next item is *admitted* (moved from its
/// key's queue to the back of `ready`, one global FIFO that workers take from without a lock)
/// when the key has fewer than `per_key` items admitted and none waiting in `ready`. Once one
/// of its items is taken, the key's next item is admitted behind every item already waiting,
/// so service is round-robin over every key that can start.
///
/// With one item per key and no fairness limit (the defaults), taking an item touches no
/// shard at all: its key's state changes only when the item is released. Otherwise the taker
/// locks the key's shard to mark the item taken (the fairness limit counts items waiting in
/// `ready`) and to admit the key's next item.
///
/// # Invariants
///
/// * `pending` counts items in key queues and in `ready`; it never exceeds the capacity (room
///   is reserved before an insert and given back only after an item left `ready`).
/// * A key has an entry in its shard iff it has an item queued, admitted or running; idle keys
///   cost nothing.
/// * A key has at most one item in `ready`, whose id its `in_ready` holds from admission until
///   the item is taken (until it is released, when taking does not lock); `admitted` counts
///   that item and the key's running ones, never more than `per_key`.
/// * Items in `ready` ≤ `pending` ≤ capacity, so a ring of `capacity` slots never overflows
///   (a spill queue would absorb a miscount anyway).
pub(crate) struct Keyed<T, K> {
    shards: Box<[LockedShard<T, K>]>,
    /// Picks a key's shard (seeded, like the shards' own maps).
    pick: foldhash::fast::RandomState,
    ready: Ready<Job<T, K>>,
    pending: Padded<AtomicUsize>,
    /// Start-order stamps, taken as items are admitted (by producers, mostly: on their core).
    seq: Padded<AtomicU64>,
    per_key: usize,
    /// With fair scheduling, the most items one key may have pending.
    threshold: Option<usize>,
    /// Whether taking an item locks its key's shard (see the type's docs).
    locked_take: bool,
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

/// The FIFO of admitted items: a preallocated ring up to [`RING_MAX`], a segmented queue
/// above.
struct Ready<J> {
    ring: Option<ArrayQueue<J>>,
    /// The queue itself when there is no ring. With a ring it stays empty while the invariants
    /// hold (admitted items never outnumber pending ones, which never exceed the ring's size);
    /// it is there so that a miscount could only reorder items, never lose one or panic.
    queue: SegQueue<J>,
}

impl<J> Ready<J> {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Ready {
            ring: (capacity <= RING_MAX).then(|| ArrayQueue::new(capacity)),
            queue: SegQueue::new(),
        }
    }

    fn push(&self, job: J) {
        match &self.ring {
            Some(ring) => {
                if let Err(job) = ring.push(job) {
                    debug_assert!(false, "more admitted items than pending ones");
                    self.queue.push(job);
                }
            }
            None => self.queue.push(job),
        }
    }

    fn pop(&self) -> Option<J> {
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
/// and keys), since every item touches it at least twice.
struct KeyState<T> {
    /// The oldest queued item, inline: a key with one item queued allocates no queue.
    head: Option<Queued<T>>,
    /// The rest, in order.
    rest: VecDeque<Queued<T>>,
    /// Items admitted to `ready` and not released: waiting there, or running.
    admitted: usize,
    /// The key's item waiting in `ready` (see [`Keyed`]'s invariants).
    in_ready: Option<OperationId>,
}

impl<T> KeyState<T> {
    fn queued(&self) -> usize {
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

    /// Takes the next item to admit, if the key may have one more admitted now.
    fn admit(&mut self, per_key: usize) -> Option<Queued<T>> {
        if self.in_ready.is_some() || self.admitted >= per_key {
            return None;
        }
        let queued = self.pop()?;
        self.admitted += 1;
        self.in_ready = Some(queued.id);
        Some(queued)
    }

    fn idle(&self) -> bool {
        self.admitted == 0 && self.head.is_none()
    }
}

impl<T, K: Hash + Eq + Clone + std::fmt::Display> Keyed<T, K> {
    /// `threshold`: with fair scheduling, the most items one key may have pending.
    pub(crate) fn new(per_key: usize, threshold: Option<usize>, capacity: usize) -> Self {
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
            locked_take: per_key > 1 || threshold.is_some(),
        }
    }

    /// Locks `key`'s shard.
    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<T, K>> {
        let i = (std::hash::BuildHasher::hash_one(&self.pick, key) >> 32) as usize % SHARDS;
        // A key's `Hash`, `Eq`, `Clone` and `Drop` run under these locks. Should one panic,
        // the map is still sound (std's map stays consistent on unwind), so later calls go on.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard<T, K>>> {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Items of `key` not started: queued, or admitted and not taken. `started` says whether
    /// an item taken without a lock has started yet (the caller answers it under the locks
    /// that make it exact).
    pub(crate) fn pending_for(&self, key: &K, started: impl Fn(OperationId) -> bool) -> usize {
        self.shard(key).keys.get(key).map_or(0, |state| {
            let waiting = state
                .in_ready
                .is_some_and(|id| self.locked_take || !started(id));
            state.queued() + usize::from(waiting)
        })
    }

    /// Whether [`pending_for`](Self::pending_for) needs its `started` answer.
    pub(crate) fn takes_without_lock(&self) -> bool {
        !self.locked_take
    }

    /// Keys with something pending or running.
    pub(crate) fn tracked_keys(&self) -> usize {
        self.shards().map(|s| s.keys.len()).sum()
    }

    /// Puts `queued` at the back of `ready` (under its key's shard lock).
    fn enter_ready(&self, key: K, queued: Queued<T>) {
        let Queued { item, id } = queued;
        self.ready.push(Job {
            item,
            id,
            key,
            // Under the key's shard lock: its items' stamps grow in its order.
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        });
    }

    /// Puts an item at the back of its key's queue, or straight into `ready` if the key may
    /// start it (the caller reserved room).
    fn insert(&self, shard: &mut Shard<T, K>, key: K, queued: Queued<T>) {
        // One lookup: the entry API hashes and probes once for both cases.
        match shard.keys.entry(key) {
            Entry::Occupied(mut e) => {
                let state = e.get_mut();
                state.push(queued);
                if let Some(next) = state.admit(self.per_key) {
                    self.enter_ready(e.key().clone(), next);
                }
            }
            Entry::Vacant(e) => {
                // An idle key: its item is admitted at once.
                let key = e.key().clone();
                e.insert(KeyState {
                    head: None,
                    rest: VecDeque::new(),
                    admitted: 1,
                    in_ready: Some(queued.id),
                });
                self.enter_ready(key, queued);
            }
        }
    }

    /// An admitted item of `key` left: it was released after running, or `cancelled` out of
    /// `ready`. Admits the key's next item, or forgets the key if it is idle.
    fn unadmit(&self, key: K, cancelled: bool) {
        let mut shard = self.shard(&key);
        let Entry::Occupied(mut e) = shard.keys.entry(key) else {
            debug_assert!(false, "an admitted item's key is tracked");
            return;
        };
        let state = e.get_mut();
        state.admitted -= 1;
        if cancelled || !self.locked_take {
            // Its item was the one in `ready` (cancelled), or taking it did not clear the
            // mark (one item per key: it was the key's only admitted item).
            state.in_ready = None;
        }
        if let Some(next) = state.admit(self.per_key) {
            self.enter_ready(e.key().clone(), next);
        } else if state.idle() {
            e.remove();
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
    const KEYED: bool = true;

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
        _ticket: u64,
    ) -> Result<OperationId, Refused<T, K>> {
        let mut shard = self.shard(&key);
        // With fairness, the per-key check is atomic with the insert (same shard lock; taking
        // an item then locks it too, so `in_ready` is exact).
        if let Some(threshold) = self.threshold {
            let pending = shard.keys.get(&key).map_or(0, |state| {
                state.queued() + usize::from(state.in_ready.is_some())
            });
            if pending >= threshold {
                return Err(Refused::KeyOverloaded(item));
            }
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
        let job = self.ready.pop()?;
        if self.locked_take {
            let mut shard = self.shard(&job.key);
            if let Some(state) = shard.keys.get_mut(&job.key) {
                debug_assert_eq!(state.in_ready, Some(job.id));
                state.in_ready = None;
                // Its next item queues behind every item waiting now: round-robin.
                if let Some(next) = state.admit(self.per_key) {
                    self.enter_ready(job.key.clone(), next);
                }
            } else {
                debug_assert!(false, "an admitted item's key is tracked");
            }
        }
        self.pending.fetch_sub(1, Ordering::SeqCst);
        Some(job)
    }

    fn release(&self, released: Released<K>) {
        self.unadmit(released.key, false);
    }

    fn label_of(&self, key: &K) -> Label {
        // Runs under the worker's slot lock: a panicking `Display` must not leave the item
        // taken and its key held forever.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Label::of(key)))
            .unwrap_or_else(|_| Label::of(&"<key's Display panicked>"))
    }

    fn drain_into(&self, out: &mut Vec<T>) {
        // Queued items first, then admitted ones, each released as a worker would. An item
        // queued meanwhile was pushed by a producer whose push landed after the cancel; that
        // producer drains again (see the engine's `try_push`). Room is given back last, so
        // items in `ready` never outnumber it.
        let mut removed = 0;
        for mut shard in self.shards() {
            shard.keys.retain(|_, state| {
                while let Some(queued) = state.pop() {
                    out.push(queued.item);
                    removed += 1;
                }
                state.admitted > 0
            });
        }
        while let Some(job) = self.ready.pop() {
            removed += 1;
            self.unadmit(job.key, true);
            out.push(job.item);
        }
        self.pending.fetch_sub(removed, Ordering::SeqCst);
    }
}
