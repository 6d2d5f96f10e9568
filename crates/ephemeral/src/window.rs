//! The operation window: running operations plus a bounded, self-cleaning set of finished ones.
//!
//! A coordinator's window is sharded: each worker records the operations it finishes in a
//! [`Window`] of its own (under its slot's lock, which nobody else takes on the hot path), and
//! operations of workers that left are merged into one more. Readers merge the shards and
//! [`trim`] them to the window's logical content: every pinned operation plus the newest
//! `max - pinned` live unpinned ones (newest by completion). So writers never share a cache
//! line, and readers pay for the merge.
//!
//! # Invariants
//!
//! * Running operations live in their worker's slot (see `operation::Slot`), never here, and
//!   never expire.
//! * `finished` holds a shard's unpinned finished operations in finish order; `pinned` holds
//!   pinned ones. After every insert, `finished.len() + pinned.len() <= max` unless pinned
//!   operations alone exceed it (pinned ones are exempt from eviction). So the shards hold at
//!   most `max` records each between reads, and after a [`trim`] exactly the logical window.
//! * A finished, unpinned operation older than `lifetime` (counted from completion) is never
//!   returned: reads filter by age, and writes drop expired ones from the front.
//! * Every signal leaving the window is reported to the gates, so their live counts are exact.

use crate::id::OperationId;
use crate::label::KeyLabel;
use crate::operation::{OperationError, OperationSnapshot};
use crate::signal::SignalEvent;
use crate::time;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[cfg(all(test, not(loom)))]
mod prop_tests;

/// A finished operation as the window keeps it.
pub(crate) struct Finished<R, L> {
    pub(crate) id: OperationId,
    pub(crate) key: Option<L>,
    pub(crate) seq: u64,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) error: Option<OperationError>,
    pub(crate) signals: Vec<SignalEvent>,
    pub(crate) result: Option<R>,
    pub(crate) label: Option<Arc<str>>,
}

impl<R, L: KeyLabel> Finished<R, L> {
    pub(crate) fn snapshot(&self, pinned: bool) -> OperationSnapshot {
        OperationSnapshot {
            id: self.id,
            started: time::to_system(self.start),
            completed: Some(time::to_system(self.end)),
            key: self.key.as_ref().and_then(KeyLabel::to_arc),
            error: self.error.clone(),
            signals: self
                .signals
                .iter()
                .map(|e| e.signal_arc().clone())
                .collect(),
            pinned,
            label: self.label.clone(),
        }
    }
}

/// Whether a finished operation is still within `lifetime` of its completion.
fn live<R, L>(lifetime: Option<Duration>, rec: &Finished<R, L>, now: Instant) -> bool {
    lifetime.is_none_or(|l| {
        rec.end
            .checked_add(l)
            .is_none_or(|deadline| deadline >= now)
    })
}

/// Called with each signal that leaves the window.
pub(crate) trait OnRemoved {
    fn removed(&self, signals: &[SignalEvent]);
}

pub(crate) struct Window<R, L> {
    finished: VecDeque<Finished<R, L>>,
    pinned: Vec<Finished<R, L>>,
    max: usize,
    lifetime: Option<Duration>,
    /// Operations recorded here that succeeded.
    pub(crate) completed: u64,
    /// Operations recorded here that failed.
    pub(crate) failed: u64,
    /// Results of operations that left, waiting to be dropped outside the lock (a result's
    /// `Drop` is user code, which may call back into the coordinator).
    dead: Vec<R>,
}

/// Completion order: end time, then start order, then id (a total order: FIFO start stamps
/// may repeat when producers race a refusal).
type Order = (Instant, u64, u64);

fn order<R, L>(rec: &Finished<R, L>) -> Order {
    (rec.end, rec.seq, rec.id.get())
}

/// Which unpinned records a [`trim`] keeps.
#[derive(Clone, Copy)]
enum Cutoff {
    All,
    From(Order),
    None,
}

/// Trims `shards` to the logical window of capacity `max`: drops expired operations, and
/// unpinned ones older than the newest `max - pinned` live unpinned operations over all shards.
pub(crate) fn trim<'a, R: 'a, L: 'a>(
    shards: impl Iterator<Item = &'a mut Window<R, L>>,
    max: usize,
    now: Instant,
    gates: &impl OnRemoved,
) {
    let mut shards: Vec<&mut Window<R, L>> = shards.collect();
    let pinned: usize = shards.iter().map(|w| w.pinned.len()).sum();
    let budget = max.saturating_sub(pinned);
    let mut keys: Vec<Order> = Vec::new();
    for w in &shards {
        keys.extend(w.finished.iter().filter(|r| w.live(r, now)).map(order));
    }
    let cutoff = if keys.len() <= budget {
        Cutoff::All
    } else if budget == 0 {
        Cutoff::None
    } else {
        let at = keys.len() - budget;
        let (_, nth, _) = keys.select_nth_unstable(at);
        Cutoff::From(*nth)
    };
    for w in &mut shards {
        w.keep(now, cutoff, gates);
    }
}

impl<R, L> Window<R, L> {
    pub(crate) fn new(max: usize, lifetime: Option<Duration>) -> Self {
        Window {
            // Grown on demand: a worker's shard of a large window rarely fills.
            finished: VecDeque::with_capacity(max.min(64)),
            pinned: Vec::new(),
            max,
            lifetime,
            completed: 0,
            failed: 0,
            dead: Vec::new(),
        }
    }

    /// A record leaves the window: its signals are reported, its result set aside for
    /// [`take_dead`](Self::take_dead).
    fn bury(dead: &mut Vec<R>, mut rec: Finished<R, L>, gates: &impl OnRemoved) {
        gates.removed(&rec.signals);
        if std::mem::needs_drop::<R>() {
            if let Some(result) = rec.result.take() {
                dead.push(result);
            }
        }
    }

    /// Hands the results of records that left over to `into`, so the caller drops them after
    /// releasing the lock. An empty `into` is swapped in (the worker's two buffers take turns,
    /// so neither is reallocated once warm); otherwise they are appended.
    pub(crate) fn take_dead(&mut self, into: &mut Vec<R>) {
        if self.dead.is_empty() {
            return;
        }
        if into.is_empty() {
            std::mem::swap(&mut self.dead, into);
        } else {
            into.append(&mut self.dead);
        }
    }

    /// Drops every record beyond the capacity, oldest first.
    fn evict_beyond_capacity(&mut self, gates: &impl OnRemoved) {
        while self.finished.len() + self.pinned.len() > self.max {
            match self.finished.pop_front() {
                Some(old) => Self::bury(&mut self.dead, old, gates),
                None => break,
            }
        }
    }

    /// Counts and adds a finished operation.
    pub(crate) fn record(
        &mut self,
        rec: Finished<R, L>,
        pinned: bool,
        now: Instant,
        gates: &impl OnRemoved,
    ) {
        if rec.error.is_some() {
            self.failed += 1;
        } else {
            self.completed += 1;
        }
        self.push(rec, pinned, now, gates);
    }

    /// Keeps live unpinned operations at or after `cutoff`.
    fn keep(&mut self, now: Instant, cutoff: Cutoff, gates: &impl OnRemoved) {
        let lifetime = self.lifetime;
        let dead = &mut self.dead;
        self.finished.retain_mut(|rec| {
            let keep = live(lifetime, rec, now)
                && match cutoff {
                    Cutoff::All => true,
                    Cutoff::From(from) => order(rec) >= from,
                    Cutoff::None => false,
                };
            if !keep {
                gates.removed(&rec.signals);
                if std::mem::needs_drop::<R>() {
                    dead.extend(rec.result.take());
                }
            }
            keep
        });
    }

    /// Moves `other`'s operations and counts into this window (a worker left), then evicts the
    /// oldest beyond the capacity.
    pub(crate) fn absorb(&mut self, other: &mut Window<R, L>, gates: &impl OnRemoved) {
        self.completed += std::mem::take(&mut other.completed);
        self.failed += std::mem::take(&mut other.failed);
        self.pinned.append(&mut other.pinned);
        self.finished.append(&mut other.finished);
        self.finished.make_contiguous().sort_by_key(order);
        self.dead.append(&mut other.dead);
        self.evict_beyond_capacity(gates);
    }

    fn live(&self, rec: &Finished<R, L>, now: Instant) -> bool {
        live(self.lifetime, rec, now)
    }

    /// Adds a finished operation, then evicts by size and age.
    pub(crate) fn push(
        &mut self,
        rec: Finished<R, L>,
        pinned: bool,
        now: Instant,
        gates: &impl OnRemoved,
    ) {
        if pinned {
            self.pinned.push(rec);
        } else {
            self.finished.push_back(rec);
        }
        self.evict_beyond_capacity(gates);
        self.purge(now, gates);
    }

    /// Drops expired operations from the front (finish order is time order up to the skew of
    /// concurrent finishers; reads filter exactly).
    pub(crate) fn purge(&mut self, now: Instant, gates: &impl OnRemoved) {
        if self.lifetime.is_none() {
            return;
        }
        while let Some(front) = self.finished.front() {
            if self.live(front, now) {
                break;
            }
            if let Some(old) = self.finished.pop_front() {
                Self::bury(&mut self.dead, old, gates);
            }
        }
    }

    /// Every live finished operation (pinned flag alongside), in no particular order.
    pub(crate) fn iter_live(&self, now: Instant) -> impl Iterator<Item = (&Finished<R, L>, bool)> {
        self.finished
            .iter()
            .filter(move |r| self.live(r, now))
            .map(|r| (r, false))
            .chain(self.pinned.iter().map(|r| (r, true)))
    }

    #[cfg(any(test, feature = "test-util"))]
    /// Number of finished operations held (including expired ones not yet dropped).
    pub(crate) fn held(&self) -> usize {
        self.finished.len() + self.pinned.len()
    }

    /// Pins a finished operation; false if it is not (or no longer) in the window.
    pub(crate) fn pin(&mut self, id: OperationId, now: Instant) -> bool {
        if self.pinned.iter().any(|r| r.id == id) {
            return true;
        }
        let Some(pos) = self.finished.iter().position(|r| r.id == id) else {
            return false;
        };
        if !self.live(&self.finished[pos], now) {
            return false;
        }
        if let Some(rec) = self.finished.remove(pos) {
            self.pinned.push(rec);
        }
        true
    }

    /// Unpins a finished operation (it becomes subject to size and age eviction again).
    pub(crate) fn unpin(&mut self, id: OperationId, now: Instant, gates: &impl OnRemoved) -> bool {
        let Some(pos) = self.pinned.iter().position(|r| r.id == id) else {
            return false;
        };
        let rec = self.pinned.swap_remove(pos);
        // Back among the unpinned, in finish order.
        let at = self.finished.partition_point(|r| r.end <= rec.end);
        self.finished.insert(at, rec);
        self.evict_beyond_capacity(gates);
        self.purge(now, gates);
        true
    }

    /// Removes `event` from the finished operation `id`'s signals; returns whether it was
    /// there (reported to `gates` if so).
    pub(crate) fn remove_signal(
        &mut self,
        id: OperationId,
        event: &SignalEvent,
        gates: &impl OnRemoved,
    ) -> bool {
        let rec = self
            .finished
            .iter_mut()
            .chain(self.pinned.iter_mut())
            .find(|r| r.id == id);
        let Some(rec) = rec else {
            return false;
        };
        let Some(pos) = rec.signals.iter().position(|e| e == event) else {
            return false;
        };
        let gone = rec.signals.remove(pos);
        gates.removed(std::slice::from_ref(&gone));
        true
    }

    /// Removes a finished operation, pinned or not.
    pub(crate) fn evict(&mut self, id: OperationId, gates: &impl OnRemoved) -> bool {
        if let Some(pos) = self.pinned.iter().position(|r| r.id == id) {
            let rec = self.pinned.swap_remove(pos);
            Self::bury(&mut self.dead, rec, gates);
            return true;
        }
        if let Some(pos) = self.finished.iter().position(|r| r.id == id) {
            if let Some(rec) = self.finished.remove(pos) {
                Self::bury(&mut self.dead, rec, gates);
            }
            return true;
        }
        false
    }
}
