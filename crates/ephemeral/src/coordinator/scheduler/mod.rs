//! Which pending item starts next: plain FIFO (lock-free), or per-key queues served
//! round-robin (under their own short lock).

use crate::id::OperationId;
use crate::label::KeyLabel;

mod fifo;
mod keyed;

pub(crate) use fifo::Fifo;
pub(crate) use keyed::Keyed;

/// One pending item.
pub(crate) struct Job<T, K> {
    pub(crate) item: T,
    pub(crate) id: OperationId,
    pub(crate) key: K,
    /// Start-order stamp, given as the item becomes startable: the window lists operations by
    /// it (then by id). Stamps grow in start order, except that items racing into the queue
    /// may swap places (and, in a plain FIFO, share one).
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

/// The pending queue of a coordinator. Thread-safe by itself. Producers call it without
/// holding any lock of the engine's; workers take and release items of keyed intakes under
/// their slot's lock (see [`KEYED`](Self::KEYED)), so an intake never calls back into the
/// engine.
pub(crate) trait Intake<T>: Send + Sync + 'static {
    type Key: Send + 'static;
    /// What records keep of a key.
    type Label: KeyLabel;
    /// Whether items hold their key from take to release. Workers of such intakes take an
    /// item in the same critical section that settles the previous one, so readers never see
    /// a key held twice or a taken item in no state; plain FIFOs take first, which keeps that
    /// section short.
    const KEYED: bool;

    /// Items pending.
    fn len(&self) -> usize;
    /// Whether an item could start now (its key is below its cap).
    fn has_ready(&self) -> bool;
    /// Adds an item as operation `id` unless `capacity` items are pending (or its key is at
    /// its pending limit); returns `id`.
    ///
    /// `ticket` is the producer's place in the count of accepted items: plain FIFOs use it as
    /// the start-order stamp (their start order is their enqueue order), which saves them a
    /// counter of their own.
    fn try_push(
        &self,
        item: T,
        key: Self::Key,
        capacity: usize,
        ticket: u64,
        id: OperationId,
    ) -> Result<OperationId, Refused<T, Self::Key>>;
    /// Releases `release` (see [`release`](Self::release)), then takes the next item that can
    /// start, in one step; the item's key counts as running until it is released.
    fn pop(&self, release: Option<Released<Self::Key>>) -> Option<Job<T, Self::Key>>;
    /// An item of a key stopped running (or was dropped after `pop`).
    fn release(&self, released: Released<Self::Key>);
    /// The label snapshots show for `key` (made under the worker's slot lock for keyed
    /// intakes).
    fn label_of(&self, key: &Self::Key) -> Self::Label;
    /// Removes every pending item (cancel), with its id.
    fn drain_into(&self, out: &mut Vec<(OperationId, T)>);
}

/// Largest queue capacity served by a preallocated ring; larger ones use a segmented queue
/// that allocates as it fills (a ring of 10 million slots would be allocated up front).
pub(crate) const RING_MAX: usize = 1 << 16;
