//! Which pending item starts next: plain FIFO (lock-free), or per-key queues served
//! round-robin (under their own short lock).

use crate::id::OperationId;
use crate::label::Label;
use crossbeam_queue::{ArrayQueue, SegQueue};
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
    pub(crate) label: Option<Label>,
    /// Start-order stamp: the window lists operations by it.
    pub(crate) seq: u64,
}

/// A key whose item stopped running, with the label its worker made (kept for the key's next
/// items while the key stays busy).
pub(crate) struct Released<K> {
    pub(crate) key: K,
    pub(crate) label: Option<Label>,
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

    /// Items pending.
    fn len(&self) -> usize;
    /// Whether an item could start now (its key is below its cap).
    fn has_ready(&self) -> bool;
    /// Adds an item unless `capacity` items are pending (or, with `fair`, its key is over the
    /// threshold); answers its id.
    fn try_push(
        &self,
        item: T,
        key: Self::Key,
        capacity: usize,
        fair: bool,
    ) -> Result<OperationId, Refused<T, Self::Key>>;
    /// Releases `release` (see [`release`](Self::release)), then takes the next item that can
    /// start, in one step; the item's key counts as running until it is released.
    fn pop(&self, release: Option<Released<Self::Key>>) -> Option<Job<T, Self::Key>>;
    /// An item of a key stopped running (or was dropped after `pop`).
    fn release(&self, released: Released<Self::Key>);
    /// The label snapshots show for `key` (made outside any lock).
    fn label_of(&self, key: &Self::Key) -> Option<Label>;
    /// Removes every pending item (cancel).
    fn drain_into(&self, out: &mut Vec<T>);
}

/// Largest queue capacity served by a preallocated ring; larger ones use a segmented queue
/// that allocates as it fills (a ring of 10 million slots would be allocated up front).
const RING_MAX: usize = 1 << 16;

/// Plain first-in, first-out, lock-free, so producers and workers never wait for each other's
/// critical sections: a preallocated bounded MPMC ring for ordinary capacities, a segmented
/// queue plus a pending counter for very large ones.
///
/// Layout matters here: the start-order stamp is written by producers only and the segmented
/// counter by both sides, so each sits on lines of its own, away from the read-only variant tag
/// and queue fields every pop reads.
pub(crate) struct Fifo<T> {
    queue: FifoQueue<T>,
    /// Start-order stamps, taken by producers.
    seq: Padded<AtomicU64>,
}

/// A pending item of a FIFO intake: no key and no label, so ring slots stay small (two to a
/// cache line for word-sized items).
struct Entry<T> {
    item: T,
    id: OperationId,
    seq: u64,
}

impl<T> Entry<T> {
    fn into_job(self) -> Job<T, ()> {
        Job {
            item: self.item,
            id: self.id,
            key: (),
            label: None,
            seq: self.seq,
        }
    }
}

enum FifoQueue<T> {
    Ring(ArrayQueue<Entry<T>>),
    Segmented {
        queue: SegQueue<Entry<T>>,
        /// Reserved before a push, released after a pop: never above the capacity.
        len: Padded<AtomicUsize>,
    },
}

impl<T> Fifo<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let queue = if capacity <= RING_MAX {
            FifoQueue::Ring(ArrayQueue::new(capacity))
        } else {
            FifoQueue::Segmented {
                queue: SegQueue::new(),
                len: Padded(AtomicUsize::new(0)),
            }
        };
        Fifo {
            queue,
            seq: Padded(AtomicU64::new(0)),
        }
    }

    fn entry(item: T, seq: &AtomicU64) -> Entry<T> {
        // Producers are ordered by the queue itself; the stamp only has to grow with it, and a
        // single producer (the common case) owns this cache line.
        Entry {
            item,
            id: OperationId::next(),
            seq: seq.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl<T: Send + 'static> Intake<T> for Fifo<T> {
    type Key = ();

    fn len(&self) -> usize {
        match &self.queue {
            FifoQueue::Ring(queue) => queue.len(),
            FifoQueue::Segmented { len, .. } => len.load(Ordering::SeqCst),
        }
    }
    fn has_ready(&self) -> bool {
        match &self.queue {
            FifoQueue::Ring(queue) => !queue.is_empty(),
            FifoQueue::Segmented { queue, .. } => !queue.is_empty(),
        }
    }
    fn try_push(
        &self,
        item: T,
        (): (),
        capacity: usize,
        _fair: bool,
    ) -> Result<OperationId, Refused<T, ()>> {
        match &self.queue {
            FifoQueue::Ring(queue) => {
                // The ring was built with exactly `capacity` slots.
                debug_assert_eq!(capacity.max(1), queue.capacity());
                let job = Self::entry(item, &self.seq);
                let id = job.id;
                queue
                    .push(job)
                    .map(|()| id)
                    .map_err(|job| Refused::Full(job.item, ()))
            }
            FifoQueue::Segmented { queue, len } => {
                if len
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        (n < capacity).then_some(n + 1)
                    })
                    .is_err()
                {
                    return Err(Refused::Full(item, ()));
                }
                let job = Self::entry(item, &self.seq);
                let id = job.id;
                queue.push(job);
                Ok(id)
            }
        }
    }
    fn pop(&self, _release: Option<Released<()>>) -> Option<Job<T, ()>> {
        match &self.queue {
            FifoQueue::Ring(queue) => queue.pop().map(Entry::into_job),
            FifoQueue::Segmented { queue, len } => {
                let entry = queue.pop()?;
                len.fetch_sub(1, Ordering::SeqCst);
                Some(entry.into_job())
            }
        }
    }
    fn release(&self, _released: Released<()>) {}
    fn label_of(&self, (): &()) -> Option<Label> {
        None
    }
    fn drain_into(&self, out: &mut Vec<T>) {
        while let Some(job) = self.pop(None) {
            out.push(job.item);
        }
    }
}

/// Per-key FIFO queues plus a round-robin ring of keys that can start.
///
/// Producers do not take the lock (unless fair scheduling asks them to check a key's pending
/// count): they reserve room in `pending` and put the item in `staged`, a lock-free ring in
/// arrival order. Whoever takes the lock next (a worker popping, usually) first sorts every
/// staged item into its key's queue, in arrival order, so per-key order is enqueue order and a
/// worker moves a whole burst in one critical section.
///
/// # Invariants
///
/// * `pending` counts staged and sorted items, and never exceeds the capacity.
/// * A key has an entry in `keys` iff it has a sorted item pending or an item running; idle
///   keys cost nothing.
/// * A key is in `ready` (once) iff it has an item pending and fewer than `per_key` running.
/// * `ready_len` is `ready.len()` as of the last unlock.
pub(crate) struct Keyed<T, K> {
    state: Mutex<KeyedState<T, K>>,
    staged: ArrayQueue<Job<T, K>>,
    pending: Padded<AtomicUsize>,
    ready_len: AtomicUsize,
    per_key: usize,
    threshold: usize,
}

/// Staged items a producer may leave for the next lock holder; beyond it, the producer sorts
/// them in itself.
const STAGE_MAX: usize = 1024;

struct KeyedState<T, K> {
    /// foldhash: several times faster than SipHash on small keys and still seeded per map, so
    /// keys chosen by clients (addresses, user ids) cannot be aimed at one bucket cheaply.
    keys: HashMap<K, KeyState<T, K>, foldhash::fast::RandomState>,
    ready: VecDeque<K>,
    seq: u64,
}

struct KeyState<T, K> {
    /// The oldest pending item, inline: a key with one item pending allocates no queue.
    head: Option<Job<T, K>>,
    /// The rest, in order.
    rest: VecDeque<Job<T, K>>,
    running: usize,
    in_ready: bool,
    /// Made by the first worker that ran an item of this key; shared by later ones.
    label: Option<Label>,
}

impl<T, K> KeyState<T, K> {
    fn pending(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    fn push(&mut self, job: Job<T, K>) {
        if self.head.is_none() {
            self.head = Some(job);
        } else {
            self.rest.push_back(job);
        }
    }

    fn pop(&mut self) -> Option<Job<T, K>> {
        let job = self.head.take()?;
        self.head = self.rest.pop_front();
        Some(job)
    }
}

/// The locked state, with the shared counters it keeps in step.
struct Locked<'a, T, K> {
    st: MutexGuard<'a, KeyedState<T, K>>,
    owner: &'a Keyed<T, K>,
}

impl<T, K> Drop for Locked<'_, T, K> {
    fn drop(&mut self) {
        self.owner
            .ready_len
            .store(self.st.ready.len(), Ordering::SeqCst);
    }
}

impl<T, K: Hash + Eq + Clone + std::fmt::Display> Keyed<T, K> {
    /// `threshold` is only consulted when a push asks for fairness.
    pub(crate) fn new(per_key: usize, threshold: usize, capacity: usize) -> Self {
        Keyed {
            state: Mutex::new(KeyedState {
                keys: HashMap::default(),
                ready: VecDeque::new(),
                seq: 0,
            }),
            staged: ArrayQueue::new(capacity.clamp(1, STAGE_MAX)),
            pending: Padded(AtomicUsize::new(0)),
            ready_len: AtomicUsize::new(0),
            per_key,
            threshold,
        }
    }

    /// Locks the state and sorts every staged item in.
    fn lock(&self) -> Locked<'_, T, K> {
        // Only our own code runs under this lock.
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.sorted(st)
    }

    fn sorted<'a>(&'a self, mut st: MutexGuard<'a, KeyedState<T, K>>) -> Locked<'a, T, K> {
        while let Some(job) = self.staged.pop() {
            Self::insert(&mut st, job, self.per_key);
        }
        Locked { st, owner: self }
    }

    /// Puts a job at the back of its key's queue.
    fn insert(st: &mut KeyedState<T, K>, mut job: Job<T, K>, per_key: usize) {
        if let Some(state) = st.keys.get_mut(&job.key) {
            job.label.clone_from(&state.label);
            let key = job.key.clone();
            state.push(job);
            Self::mark_ready(&mut st.ready, &key, state, per_key);
            return;
        }
        let key = job.key.clone();
        let mut state = KeyState {
            head: Some(job),
            rest: VecDeque::new(),
            running: 0,
            in_ready: false,
            label: None,
        };
        Self::mark_ready(&mut st.ready, &key, &mut state, per_key);
        st.keys.insert(key, state);
    }

    pub(crate) fn pending_for(&self, key: &K) -> usize {
        self.lock().st.keys.get(key).map_or(0, KeyState::pending)
    }

    /// Keys with something pending or running.
    pub(crate) fn tracked_keys(&self) -> usize {
        self.lock().st.keys.len()
    }

    fn release_locked(st: &mut KeyedState<T, K>, released: Released<K>, per_key: usize) {
        let Released { key, label } = released;
        if let Some(state) = st.keys.get_mut(&key) {
            state.running -= 1;
            if state.running == 0 && state.head.is_none() {
                st.keys.remove(&key);
            } else {
                if state.label.is_none() {
                    state.label = label;
                }
                Self::mark_ready(&mut st.ready, &key, state, per_key);
            }
        }
    }

    fn mark_ready(ready: &mut VecDeque<K>, key: &K, state: &mut KeyState<T, K>, per_key: usize) {
        if !state.in_ready && state.head.is_some() && state.running < per_key {
            state.in_ready = true;
            ready.push_back(key.clone());
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

    fn len(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    fn has_ready(&self) -> bool {
        if !self.staged.is_empty() {
            // Exact when the lock is free; if it is taken, its holder sorts the staged items
            // in, and a spurious "yes" costs one wake-up.
            return match self.state.try_lock() {
                Ok(st) => !self.sorted(st).st.ready.is_empty(),
                Err(_) => true,
            };
        }
        self.ready_len.load(Ordering::SeqCst) > 0
    }

    fn try_push(
        &self,
        item: T,
        key: K,
        capacity: usize,
        fair: bool,
    ) -> Result<OperationId, Refused<T, K>> {
        let per_key = self.per_key;
        let job = |item, key| Job {
            item,
            id: OperationId::next(),
            key,
            label: None,
            seq: 0,
        };
        if !fair {
            if !self.reserve(capacity) {
                return Err(Refused::Full(item, key));
            }
            let job = job(item, key);
            let id = job.id;
            if let Err(job) = self.staged.push(job) {
                // The stage is full: sort it in ourselves.
                Self::insert(&mut self.lock().st, job, per_key);
            }
            return Ok(id);
        }
        // Fairness and capacity are checked atomically with the insert.
        let mut locked = self.lock();
        let st = &mut locked.st;
        if st.keys.get(&key).map_or(0, KeyState::pending) >= self.threshold {
            return Err(Refused::KeyOverloaded(item));
        }
        if !self.reserve(capacity) {
            return Err(Refused::Full(item, key));
        }
        let job = job(item, key);
        let id = job.id;
        Self::insert(st, job, per_key);
        Ok(id)
    }

    fn pop(&self, release: Option<Released<K>>) -> Option<Job<T, K>> {
        let per_key = self.per_key;
        let mut locked = self.lock();
        let st = &mut *locked.st;
        if let Some(released) = release {
            Self::release_locked(st, released, per_key);
        }
        let key = st.ready.pop_front()?;
        let state = st.keys.get_mut(&key)?;
        state.in_ready = false;
        let mut job = state.pop()?;
        state.running += 1;
        self.pending.fetch_sub(1, Ordering::SeqCst);
        st.seq += 1;
        job.seq = st.seq;
        if job.label.is_none() {
            job.label.clone_from(&state.label);
        }
        // Still startable: back of the ring, so every ready key gets a turn first.
        Self::mark_ready(&mut st.ready, &key, state, per_key);
        Some(job)
    }

    fn release(&self, released: Released<K>) {
        let mut locked = self.lock();
        Self::release_locked(&mut locked.st, released, self.per_key);
    }

    fn label_of(&self, key: &K) -> Option<Label> {
        Some(Label::of(key))
    }

    fn drain_into(&self, out: &mut Vec<T>) {
        let mut locked = self.lock();
        let st = &mut *locked.st;
        st.ready.clear();
        let mut removed = 0;
        st.keys.retain(|_, state| {
            while let Some(job) = state.pop() {
                out.push(job.item);
                removed += 1;
            }
            state.in_ready = false;
            state.running > 0
        });
        self.pending.fetch_sub(removed, Ordering::SeqCst);
    }
}
