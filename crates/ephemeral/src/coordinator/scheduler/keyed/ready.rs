//! The FIFO of items that can start, taken by workers without a lock.

use super::super::RING_MAX;
use crossbeam_queue::{ArrayQueue, SegQueue};

/// The FIFO of admitted items: a preallocated ring up to [`RING_MAX`], a segmented queue
/// above.
pub(super) struct Ready<J> {
    pub(super) ring: Option<ArrayQueue<J>>,
    /// The queue itself when there is no ring. With a ring it stays empty while the invariants
    /// hold (admitted items never outnumber pending ones, which never exceed the ring's size);
    /// it is there so that a miscount could only reorder items, never lose one or panic.
    pub(super) queue: SegQueue<J>,
}

impl<J> Ready<J> {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Ready {
            ring: (capacity <= RING_MAX).then(|| ArrayQueue::new(capacity)),
            queue: SegQueue::new(),
        }
    }

    pub(super) fn push(&self, job: J) {
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

    pub(super) fn pop(&self) -> Option<J> {
        self.ring
            .as_ref()
            .and_then(ArrayQueue::pop)
            .or_else(|| self.queue.pop())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ring.as_ref().is_none_or(ArrayQueue::is_empty) && self.queue.is_empty()
    }
}
