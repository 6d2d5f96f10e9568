//! The window's shards and the locks that keep a reader's view of them whole.
//!
//! # Invariants
//!
//! * Every operation a worker started is in exactly one place: its slot's running operation,
//!   its slot's shard, or the retired shard. It moves from running to its slot's shard in one
//!   critical section of the slot's lock (`SlotState::settle`, called by the engine's
//!   `settle_slot`), and from a slot's shard to the retired one under `track`, `ctl` and the
//!   slot's lock at once ([`retire`](Shards::retire)).
//! * A reader ([`read`](Shards::read)) holds `track`, `ctl` and every slot's lock, in that
//!   order, while it looks, so it sees each operation exactly once.
//! * Lock order: `track`, then `ctl`, then slots in list order (see the engine's module docs).
//!
//! Generic over the slot and the retired shard, so that the loom models
//! (`loom_shards.rs`, `loom_drain.rs`) drive this code with the engine's `SlotState` and
//! `Window` in slots of their own (the engine's `Slot` needs a `Hub`).

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;

/// A worker's slot as the shards see it: a lock over its state, and its busy flag.
pub(crate) trait Shard {
    /// What the slot's lock guards (the engine's `SlotState`).
    type State;
    /// Locks the slot's state.
    fn lock(&self) -> MutexGuard<'_, Self::State>;
    /// The worker is looking for an item, running a body, or sampling after one.
    fn busy(&self) -> bool;
}

/// What `track` guards: the shard of workers that left.
pub(crate) struct Track<W> {
    pub(crate) retired: W,
}

/// What `ctl` guards: the live slots, in the order readers lock them.
pub(crate) struct Ctl<S> {
    pub(crate) slots: Vec<Arc<S>>,
}

/// The live slots and the retired shard, each under its lock.
pub(crate) struct Shards<S, W> {
    /// Serialises readers and holds what workers that left had finished. Never taken on the
    /// hot path.
    track: Mutex<Track<W>>,
    /// The slot list (spawn, exit, readers). Rarely taken.
    ctl: Mutex<Ctl<S>>,
}

impl<S: Shard, W> Shards<S, W> {
    pub(crate) fn new(retired: W) -> Self {
        Shards {
            track: Mutex::new(Track { retired }),
            ctl: Mutex::new(Ctl { slots: Vec::new() }),
        }
    }

    #[inline]
    pub(crate) fn track(&self) -> MutexGuard<'_, Track<W>> {
        // No user code runs under this lock except drops of evicted results; the state is
        // consistent at every unlock, so a poisoned lock is still usable.
        self.track.lock()
    }

    #[inline]
    pub(crate) fn ctl(&self) -> MutexGuard<'_, Ctl<S>> {
        // Same reasoning as `track`.
        self.ctl.lock()
    }

    /// Adds the slot `make` returns (if any) to the list, calling it under `ctl` (so a spawn
    /// can check and count its worker under the same lock); returns it.
    pub(crate) fn add(&self, make: impl FnOnce() -> Option<Arc<S>>) -> Option<Arc<S>> {
        let mut ctl = self.ctl();
        let slot = make()?;
        ctl.slots.push(slot.clone());
        Some(slot)
    }

    /// Holds `track`, `ctl` and every slot's lock (in that order) and hands `f` the retired
    /// shard and the slots' states: every operation is in exactly one of them.
    pub(crate) fn read<X>(
        &self,
        f: impl FnOnce(&mut W, &mut [MutexGuard<'_, S::State>]) -> X,
    ) -> X {
        let mut track = self.track();
        let ctl = self.ctl();
        let mut slots: Vec<MutexGuard<'_, S::State>> = ctl.slots.iter().map(|s| s.lock()).collect();
        let out = f(&mut track.retired, &mut slots);
        drop(slots);
        drop(ctl);
        drop(track);
        out
    }

    /// Removes `slot` from the list and hands `merge` the retired shard and the slot's state
    /// to move its finished operations over, all under `track`, `ctl` and the slot's lock, so
    /// no reader sees them in both places or in neither. `may` is asked first, under the same
    /// locks; returns whether the slot was removed (false if `may` said no or the slot was not
    /// listed).
    pub(crate) fn retire(
        &self,
        slot: &Arc<S>,
        may: impl FnOnce() -> bool,
        merge: impl FnOnce(&mut W, &mut S::State),
    ) -> bool {
        let mut track = self.track();
        let mut ctl = self.ctl();
        if !may() {
            return false;
        }
        let Some(pos) = ctl.slots.iter().position(|s| Arc::ptr_eq(s, slot)) else {
            return false;
        };
        ctl.slots.swap_remove(pos);
        merge(&mut track.retired, &mut slot.lock());
        drop(ctl);
        drop(track);
        true
    }
}
