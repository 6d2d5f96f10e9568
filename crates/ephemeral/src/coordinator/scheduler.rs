//! Which pending item starts next: plain FIFO, or per-key queues served round-robin.

use crate::id::OperationId;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

/// One pending item.
pub(crate) struct Job<T, K> {
    pub(crate) item: T,
    pub(crate) id: OperationId,
    pub(crate) key: K,
    pub(crate) label: Option<Arc<str>>,
}

/// The pending queue of a coordinator. All calls happen under the coordinator's lock.
pub(crate) trait Scheduler<T>: Send + 'static {
    type Key: Send + 'static;

    /// Items pending.
    fn len(&self) -> usize;
    /// Whether an item can start now (its key is below its cap).
    fn has_ready(&self) -> bool;
    /// Whether fair scheduling refuses another item for `key`.
    fn overloaded(&self, key: &Self::Key) -> bool;
    /// The label shown for `key` in snapshots.
    fn label(&mut self, key: &Self::Key) -> Option<Arc<str>>;
    fn push(&mut self, job: Job<T, Self::Key>);
    /// Takes the next item that can start; its key counts as running until `release`.
    fn pop(&mut self) -> Option<Job<T, Self::Key>>;
    /// An item of `key` stopped running.
    fn release(&mut self, key: &Self::Key);
    /// Removes every pending item (cancel).
    fn drain_into(&mut self, out: &mut Vec<T>);
}

/// Plain first-in, first-out.
pub(crate) struct Fifo<T> {
    queue: VecDeque<Job<T, ()>>,
}

impl<T> Fifo<T> {
    pub(crate) fn new() -> Self {
        Fifo {
            queue: VecDeque::new(),
        }
    }
}

impl<T: Send + 'static> Scheduler<T> for Fifo<T> {
    type Key = ();

    fn len(&self) -> usize {
        self.queue.len()
    }
    fn has_ready(&self) -> bool {
        !self.queue.is_empty()
    }
    fn overloaded(&self, (): &()) -> bool {
        false
    }
    fn label(&mut self, (): &()) -> Option<Arc<str>> {
        None
    }
    fn push(&mut self, job: Job<T, ()>) {
        self.queue.push_back(job);
    }
    fn pop(&mut self) -> Option<Job<T, ()>> {
        self.queue.pop_front()
    }
    fn release(&mut self, (): &()) {}
    fn drain_into(&mut self, out: &mut Vec<T>) {
        out.extend(self.queue.drain(..).map(|j| j.item));
    }
}

/// Per-key FIFO queues plus a round-robin ring of keys that can start.
///
/// # Invariants
///
/// * A key has an entry in `keys` iff it has an item pending or running; idle keys cost
///   nothing.
/// * A key is in `ready` (once) iff it has an item pending and fewer than `per_key` running.
pub(crate) struct Keyed<T, K> {
    keys: HashMap<K, KeyState<T, K>>,
    ready: VecDeque<K>,
    pending: usize,
    per_key: usize,
    threshold: Option<usize>,
}

struct KeyState<T, K> {
    queue: VecDeque<Job<T, K>>,
    running: usize,
    in_ready: bool,
    label: Arc<str>,
}

impl<T, K: Hash + Eq + Clone + std::fmt::Display> Keyed<T, K> {
    pub(crate) fn new(per_key: usize, threshold: Option<usize>) -> Self {
        Keyed {
            keys: HashMap::new(),
            ready: VecDeque::new(),
            pending: 0,
            per_key,
            threshold,
        }
    }

    pub(crate) fn pending_for(&self, key: &K) -> usize {
        self.keys.get(key).map_or(0, |s| s.queue.len())
    }

    /// Keys with something pending or running.
    pub(crate) fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    fn mark_ready(ready: &mut VecDeque<K>, key: &K, state: &mut KeyState<T, K>, per_key: usize) {
        if !state.in_ready && !state.queue.is_empty() && state.running < per_key {
            state.in_ready = true;
            ready.push_back(key.clone());
        }
    }
}

impl<T, K> Scheduler<T> for Keyed<T, K>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + std::fmt::Display + Send + 'static,
{
    type Key = K;

    fn len(&self) -> usize {
        self.pending
    }

    fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    fn overloaded(&self, key: &K) -> bool {
        self.threshold.is_some_and(|t| self.pending_for(key) >= t)
    }

    fn label(&mut self, key: &K) -> Option<Arc<str>> {
        Some(match self.keys.get(key) {
            Some(state) => state.label.clone(),
            None => Arc::from(key.to_string()),
        })
    }

    fn push(&mut self, job: Job<T, K>) {
        self.pending += 1;
        let per_key = self.per_key;
        if let Some(state) = self.keys.get_mut(&job.key) {
            let key = job.key.clone();
            state.queue.push_back(job);
            Self::mark_ready(&mut self.ready, &key, state, per_key);
            return;
        }
        let key = job.key.clone();
        let label = job
            .label
            .clone()
            .unwrap_or_else(|| Arc::from(key.to_string()));
        let mut queue = VecDeque::with_capacity(1);
        queue.push_back(job);
        let mut state = KeyState {
            queue,
            running: 0,
            in_ready: false,
            label,
        };
        Self::mark_ready(&mut self.ready, &key, &mut state, per_key);
        self.keys.insert(key, state);
    }

    fn pop(&mut self) -> Option<Job<T, K>> {
        let key = self.ready.pop_front()?;
        let per_key = self.per_key;
        let state = self.keys.get_mut(&key)?;
        state.in_ready = false;
        let job = state.queue.pop_front()?;
        state.running += 1;
        self.pending -= 1;
        // Still startable: back of the ring, so every ready key gets a turn first.
        Self::mark_ready(&mut self.ready, &key, state, per_key);
        Some(job)
    }

    fn release(&mut self, key: &K) {
        let per_key = self.per_key;
        if let Some(state) = self.keys.get_mut(key) {
            state.running -= 1;
            if state.running == 0 && state.queue.is_empty() {
                self.keys.remove(key);
            } else {
                Self::mark_ready(&mut self.ready, key, state, per_key);
            }
        }
    }

    fn drain_into(&mut self, out: &mut Vec<T>) {
        self.ready.clear();
        self.pending = 0;
        self.keys.retain(|_, state| {
            out.extend(state.queue.drain(..).map(|j| j.item));
            state.in_ready = false;
            state.running > 0
        });
    }
}
