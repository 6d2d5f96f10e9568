//! Fast slots: admission of idle keys without a lock or a map entry (one item per key, no
//! fairness limit).

use super::shard::{KeyState, Queued, Shard};
use super::Keyed;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::hash::Hash;

/// Admission of idle keys without a lock (one item per key, no fairness limit).
///
/// A key hashes to one slot of a table (and its shard is the slot's, `index % SHARDS`). An
/// item of a key whose slot is free is admitted by one compare-and-swap that writes the key's
/// tag into the slot, and released by one that clears it: the key gets no map entry at all,
/// so producer and worker each touch one cache line instead of a shard's lock and map.
///
/// Every other case goes through the shard's map as before. A key with a map entry counts
/// itself in its slot (`slow`), and a slot admits nothing by itself while any key does, so a
/// key is never in both places unless its map entry waits for its own slot item
/// (`waits_on_slot`). The release of a slot item that finds such keys takes the shard lock
/// and admits their next items, so nobody waits for a release already done.
///
/// Two keys whose hashes share a slot and a tag (one chance in 2^44 per pair of keys active
/// in one slot at once, unless their `Hash` is coarse) are taken for one key while the first
/// one's slot item runs: the second waits for it. When that release finds it, slots are
/// disabled for good (see `disabled`).
pub(super) struct FastSlots {
    pub(super) slots: Box<[FastSlot]>,
    pub(super) mask: u64,
    /// Set once two different keys were found sharing a slot and tag: keys whose `Hash` is
    /// coarse (equal for unequal keys) would keep colliding, so admission no longer goes
    /// through slots (items already admitted through them are released as before).
    pub(super) disabled: AtomicBool,
}

#[derive(Default)]
pub(super) struct FastSlot {
    /// `tag << SLOW_BITS | slow`: `tag` (never 0) while an item admitted through this slot
    /// waits in `ready` or runs; `slow` counts keys hashing here that have a map entry.
    pub(super) word: AtomicU64,
    /// The id of the item admitted through the slot (for `pending_count_for_key`).
    pub(super) id: AtomicU64,
}

pub(super) const SLOW_BITS: u32 = 20;
pub(super) const SLOW_MASK: u64 = (1 << SLOW_BITS) - 1;

impl FastSlots {
    /// How many slots a queue of `capacity` gets.
    pub(super) fn slot_count(capacity: usize) -> usize {
        // Sparse enough that an idle key's slot is free almost always: 16 slots per item
        // that may be pending, within 64 to 65,536 slots (16 bytes each).
        capacity
            .saturating_mul(16)
            .clamp(64, 1 << 16)
            .next_power_of_two()
    }

    pub(super) fn new(capacity: usize) -> Self {
        let n = Self::slot_count(capacity);
        FastSlots {
            slots: (0..n).map(|_| FastSlot::default()).collect(),
            mask: n as u64 - 1,
            disabled: AtomicBool::new(false),
        }
    }

    pub(super) fn index(&self, hash: u64) -> u64 {
        hash & self.mask
    }

    pub(super) fn slot(&self, hash: u64) -> &FastSlot {
        &self.slots[self.index(hash) as usize]
    }

    /// The slot word of an item of a key with `hash` (its tag, no `slow` count).
    pub(super) fn word(hash: u64) -> u64 {
        // Bits above any slot index (at most 16), never 0.
        (hash >> SLOW_BITS).max(1) << SLOW_BITS
    }

    /// Counts one more key with a map entry in the slot of `hash`.
    pub(super) fn count_in(&self, hash: u64) {
        let counted =
            self.slot(hash)
                .word
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                    (word & SLOW_MASK < SLOW_MASK).then_some(word + 1)
                });
        assert!(counted.is_ok(), "over a million keys share one hash slot");
    }

    pub(super) fn count_out(&self, hash: u64) {
        self.slot(hash).word.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T, K: Hash + Eq + Clone + std::fmt::Display> Keyed<T, K> {
    /// Releases the item of `key` admitted through the slot of `hash` while keys with map
    /// entries hash there too: under the shard's lock, the slot is cleared, then the keys
    /// whose items waited for it get their next item admitted.
    pub(super) fn release_slot_locked(&self, fast: &FastSlots, hash: u64, key: &K) {
        let mut guard = self.shard_at(hash);
        let shard = &mut *guard;
        fast.slot(hash).word.fetch_and(SLOW_MASK, Ordering::SeqCst);
        let index = fast.index(hash);
        let waiting = shard.waiting.get(&index).copied().unwrap_or(0);
        if waiting == 0 {
            return;
        }
        // Keys are cloned before an item is admitted (a panicking `Clone` then loses nothing).
        let mut admitted = 0;
        if let Some(state) = shard.keys.get_mut(key) {
            if state.waits_on_slot {
                let own = key.clone();
                state.waits_on_slot = false;
                admitted += 1;
                if let Some(next) = state.admit(1) {
                    self.enter_ready(own, next);
                }
            }
        }
        if waiting > admitted {
            // Other keys waited: their hashes matched this key's. A coarse `Hash` would make
            // that happen again and again, so slots are done with.
            fast.disabled.store(true, Ordering::SeqCst);
            for (other, state) in &mut shard.keys {
                if state.waits_on_slot && fast.index(state.hash) == index {
                    let other = other.clone();
                    state.waits_on_slot = false;
                    admitted += 1;
                    if let Some(next) = state.admit(1) {
                        self.enter_ready(other, next);
                    }
                }
            }
        }
        debug_assert_eq!(admitted, waiting);
        shard.waiting.remove(&index);
    }

    /// Adds an item of a key whose slot is taken, under the slot's shard lock (fast slots
    /// only): the key gets (or has) a map entry, counted in the slot.
    pub(super) fn insert_behind_slot(
        &self,
        fast: &FastSlots,
        shard: &mut Shard<T, K>,
        hash: u64,
        key: K,
        queued: Queued<T>,
    ) {
        let own = key.clone();
        let state = match shard.keys.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                // Counted in before the entry exists (no user code runs in between): an entry
                // is never there uncounted.
                fast.count_in(hash);
                e.insert(KeyState {
                    head: None,
                    rest: VecDeque::new(),
                    admitted: 0,
                    in_ready: None,
                    waits_on_slot: false,
                    hash,
                })
            }
        };
        state.push(queued);
        // Read after counting ourselves in: a release that clears the slot from here on sees
        // us and admits our item; one that cleared it before leaves it free to us.
        let word = fast.slot(hash).word.load(Ordering::SeqCst);
        #[cfg(all(test, loom))]
        let word = if self.broken == Some(super::loom_models::Broken::NoLookAfterCountIn) {
            FastSlots::word(hash)
        } else {
            word
        };
        if word & !SLOW_MASK == FastSlots::word(hash) {
            if !state.waits_on_slot {
                state.waits_on_slot = true;
                *shard.waiting.entry(fast.index(hash)).or_default() += 1;
            }
        } else if let Some(next) = state.admit(1) {
            self.enter_ready(own, next);
        }
    }
}
