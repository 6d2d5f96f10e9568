//! The keyed intake: per-key FIFO queues served round-robin, at most `per_key` items of a key
//! at a time.

mod fast_slots;
#[cfg(all(test, loom))]
mod loom_models;
#[cfg(all(test, not(loom)))]
mod prop_tests;
mod ready;
mod shard;

use super::{Intake, Job, Refused, Released};
use crate::id::OperationId;
use crate::label::Label;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Mutex, MutexGuard};
use crossbeam_utils::CachePadded;
use fast_slots::{FastSlots, SLOW_MASK};
use ready::Ready;
use shard::{Hashing, KeyState, LockedShard, Queued, Shard, SHARDS};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

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
/// `ready`) and to admit the key's next item. With the defaults, too, an idle key's item is
/// admitted and released without any lock or map entry, through a slot of [`FastSlots`]; the
/// shards then hold only keys whose items had to wait.
///
/// # Invariants
///
/// * `pending` counts items in key queues and in `ready`; it never exceeds the capacity (room
///   is reserved before an insert and given back only after an item left `ready`).
/// * A key has an entry in its shard iff it has an item queued, or admitted or running
///   through the map (not through a fast slot); idle keys cost nothing.
/// * A key has at most one item in `ready`: a slot item (see [`FastSlots`]), or one whose id
///   its `in_ready` holds from admission until the item is taken (until it is released, when
///   taking does not lock); `admitted` counts that item and the key's running ones, never
///   more than `per_key`.
/// * Items in `ready` ≤ `pending` ≤ capacity, so a ring of `capacity` slots never overflows
///   (a spill queue would absorb a miscount anyway).
pub(crate) struct Keyed<T, K> {
    shards: Box<[LockedShard<T, K>]>,
    /// Picks a key's shard (seeded, like the shards' own maps).
    pick: Hashing,
    ready: Ready<Job<T, K>>,
    pending: CachePadded<AtomicUsize>,
    /// Start-order stamps, taken as items are admitted (by producers, mostly: on their core).
    seq: CachePadded<AtomicU64>,
    per_key: usize,
    /// With fair scheduling, the most items one key may have pending.
    threshold: Option<usize>,
    /// With one item per key and no fairness limit: idle keys admitted without a lock, and
    /// items taken without one. Otherwise (`None`) taking an item locks its key's shard (see
    /// the type's docs).
    fast: Option<FastSlots>,
    /// A deliberate break, for the loom models to show they catch it.
    #[cfg(all(test, loom))]
    broken: Option<loom_models::Broken>,
}

impl<T, K: Hash + Eq + Clone + std::fmt::Display> Keyed<T, K> {
    /// `threshold`: with fair scheduling, the most items one key may have pending.
    pub(crate) fn new(per_key: usize, threshold: Option<usize>, capacity: usize) -> Self {
        Keyed {
            shards: (0..SHARDS)
                .map(|_| {
                    CachePadded::new(Mutex::new(Shard {
                        keys: HashMap::default(),
                        waiting: HashMap::default(),
                    }))
                })
                .collect(),
            pick: Hashing::default(),
            ready: Ready::new(capacity),
            pending: CachePadded::new(AtomicUsize::new(0)),
            seq: CachePadded::new(AtomicU64::new(0)),
            per_key,
            threshold,
            fast: (per_key == 1 && threshold.is_none()).then(|| FastSlots::new(capacity)),
            #[cfg(all(test, loom))]
            broken: None,
        }
    }

    /// Whether taking an item locks its key's shard (see the type's docs).
    fn locked_take(&self) -> bool {
        self.fast.is_none()
    }

    fn hash(&self, key: &K) -> u64 {
        std::hash::BuildHasher::hash_one(&self.pick, key)
    }

    /// Locks the shard of a key with `hash` (the shard of its fast slot too).
    fn shard_at(&self, hash: u64) -> MutexGuard<'_, Shard<T, K>> {
        // A key's `Hash`, `Eq`, `Clone` and `Drop` run under these locks. Should one panic,
        // the map is still sound (std's map stays consistent on unwind), so later calls go on.
        self.shards[(hash % SHARDS as u64) as usize].lock()
    }

    /// Locks `key`'s shard.
    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<T, K>> {
        self.shard_at(self.hash(key))
    }

    fn shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard<T, K>>> {
        self.shards.iter().map(|s| s.lock())
    }

    /// Items of `key` not started: queued, or admitted and not taken. `started` says whether
    /// an item taken without a lock has started yet (the caller answers it under the locks
    /// that make it exact).
    pub(crate) fn pending_for(&self, key: &K, started: impl Fn(OperationId) -> bool) -> usize {
        let hash = self.hash(key);
        let shard = self.shard_at(hash);
        let mut pending = shard.keys.get(key).map_or(0, |state| {
            let waiting = state
                .in_ready
                .is_some_and(|id| self.locked_take() || !started(id));
            state.queued() + usize::from(waiting)
        });
        if let Some(fast) = &self.fast {
            // The slot's item (under the shard lock, which its release takes when others
            // wait, and with the workers' slots locked by the caller).
            let slot = fast.slot(hash);
            let word = slot.word.load(Ordering::SeqCst);
            if word & !SLOW_MASK == FastSlots::word(hash) {
                let id = OperationId::from(slot.id.load(Ordering::SeqCst));
                if !started(id) {
                    pending += 1;
                }
            }
        }
        pending
    }

    /// Whether [`pending_for`](Self::pending_for) needs its `started` answer.
    pub(crate) fn takes_without_lock(&self) -> bool {
        !self.locked_take()
    }

    /// Keys with something pending or running.
    pub(crate) fn tracked_keys(&self) -> usize {
        let mut keys = 0;
        for (i, shard) in self.shards().enumerate() {
            keys += shard.keys.len();
            if let Some(fast) = &self.fast {
                // This shard's slots, under its lock, so that no key moves between its map
                // and its slot while we count. Keys waiting for a slot item count its key
                // (tag twins aside).
                keys += fast
                    .slots
                    .iter()
                    .skip(i)
                    .step_by(SHARDS)
                    .filter(|s| s.word.load(Ordering::SeqCst) & !SLOW_MASK != 0)
                    .count();
                keys -= shard.waiting.len();
            }
        }
        keys
    }

    /// Puts `queued` at the back of `ready` (under its key's shard lock).
    fn enter_ready(&self, key: K, queued: Queued<T>) {
        let Queued { item, id } = queued;
        self.ready.push(Job {
            item,
            id,
            key,
            // A key's admissions are ordered (by its shard lock, or by its slot item's
            // release before the next one), so its items' stamps grow in its order.
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
                    waits_on_slot: false,
                    hash: 0,
                });
                self.enter_ready(key, queued);
            }
        }
    }

    /// An admitted item of `key` left: it was released after running, or `cancelled` out of
    /// `ready`. Admits the key's next item, or forgets the key if it is idle.
    fn unadmit(&self, key: K, cancelled: bool) {
        let hash = self.hash(&key);
        if let Some(fast) = &self.fast {
            let slot = fast.slot(hash);
            let mut word = slot.word.load(Ordering::SeqCst);
            // The item came through the slot iff the slot holds the key's tag (no key with
            // a map entry gets a slot item, and a tag twin waits while it is there).
            while word & !SLOW_MASK == FastSlots::word(hash) {
                if word & SLOW_MASK != 0 {
                    self.release_slot_locked(fast, hash, &key);
                    return;
                }
                match slot
                    .word
                    .compare_exchange(word, 0, Ordering::SeqCst, Ordering::SeqCst)
                {
                    Ok(_) => return,
                    Err(now) => word = now,
                }
            }
        }
        let mut shard = self.shard_at(hash);
        let Entry::Occupied(mut e) = shard.keys.entry(key) else {
            debug_assert!(false, "an admitted item's key is tracked");
            return;
        };
        let state = e.get_mut();
        state.admitted -= 1;
        if cancelled || !self.locked_take() {
            // Its item was the one in `ready` (cancelled), or taking it did not clear the
            // mark (one item per key: it was the key's only admitted item).
            state.in_ready = None;
        }
        if let Some(next) = state.admit(self.per_key) {
            self.enter_ready(e.key().clone(), next);
        } else if state.idle() {
            // Counted out first: the removal drops the key (user code).
            if let Some(fast) = &self.fast {
                #[cfg(all(test, loom))]
                let skip = self.broken == Some(loom_models::Broken::NoCountOut);
                #[cfg(not(all(test, loom)))]
                let skip = false;
                if !skip {
                    fast.count_out(hash);
                }
            }
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
        id: OperationId,
    ) -> Result<OperationId, Refused<T, K>> {
        if let Some(fast) = &self.fast {
            let hash = self.hash(&key);
            if !self.reserve(capacity) {
                return Err(Refused::Full(item, key));
            }
            let slot = fast.slot(hash);
            // A free slot: no key hashing here is pending or running.
            if !fast.disabled.load(Ordering::Relaxed)
                && slot
                    .word
                    .compare_exchange(0, FastSlots::word(hash), Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                // Relaxed: a reader that sees the tag but an older id takes the item for not
                // started, which it is not (the older item was recorded before its release).
                slot.id.store(id.get(), Ordering::Relaxed);
                self.enter_ready(key, Queued { item, id });
            } else {
                let mut shard = self.shard_at(hash);
                self.insert_behind_slot(fast, &mut shard, hash, key, Queued { item, id });
            }
            return Ok(id);
        }
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
        self.insert(&mut shard, key, Queued { item, id });
        Ok(id)
    }

    fn pop(&self, release: Option<Released<K>>) -> Option<Job<T, K>> {
        if let Some(released) = release {
            self.release(released);
        }
        let job = self.ready.pop()?;
        if self.locked_take() {
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

    fn drain_into(&self, out: &mut Vec<(OperationId, T)>) {
        // Queued items first, then admitted ones, each released as a worker would. An item
        // queued meanwhile was pushed by a producer whose push landed after the cancel; that
        // producer drains again (see the engine's `try_push`). Room is given back last, so
        // items in `ready` never outnumber it.
        let mut removed = 0;
        for mut shard in self.shards() {
            shard.keys.retain(|_, state| {
                while let Some(queued) = state.pop() {
                    out.push((queued.id, queued.item));
                    removed += 1;
                }
                state.waits_on_slot = false;
                let keep = state.admitted > 0;
                if !keep {
                    if let Some(fast) = &self.fast {
                        fast.count_out(state.hash);
                    }
                }
                keep
            });
            // Every waiting key had only queued items: all were drained and forgotten.
            shard.waiting.clear();
        }
        while let Some(job) = self.ready.pop() {
            removed += 1;
            self.unadmit(job.key, true);
            out.push((job.id, job.item));
        }
        self.pending.fetch_sub(removed, Ordering::SeqCst);
    }
}
