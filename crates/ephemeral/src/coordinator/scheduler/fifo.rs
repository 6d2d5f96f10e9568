//! The plain intake: one lock-free first-in, first-out queue.

use super::{Intake, Job, Refused, Released, RING_MAX};
use crate::id::OperationId;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crossbeam_queue::{ArrayQueue, SegQueue};
use crossbeam_utils::CachePadded;

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
        len: CachePadded<AtomicUsize>,
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
                len: CachePadded::new(AtomicUsize::new(0)),
            }
        }
    }

    fn job(item: T, ticket: u64, id: OperationId) -> Job<T, ()> {
        // Producers are ordered by the queue itself; the stamp only has to grow with it. (Two
        // producers racing a refusal may share a stamp; their order is then unspecified.)
        Job {
            item,
            id,
            key: (),
            seq: ticket,
        }
    }
}

impl<T: Send + 'static> Intake<T> for Fifo<T> {
    type Key = ();
    type Label = ();
    const KEYED: bool = false;

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
        ticket: u64,
        id: OperationId,
    ) -> Result<OperationId, Refused<T, ()>> {
        match self {
            Fifo::Ring(queue) => {
                // The ring was built with exactly `capacity` slots.
                debug_assert_eq!(capacity.max(1), queue.capacity());
                queue
                    .push(Self::job(item, ticket, id))
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
                queue.push(Self::job(item, ticket, id));
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
    fn drain_into(&self, out: &mut Vec<(OperationId, T)>) {
        while let Some(job) = self.pop(None) {
            out.push((job.id, job.item));
        }
    }
}
