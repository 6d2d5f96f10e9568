//! Complete, cancel, drain, pause, resize, and the drain check.
//!
//! # Invariants
//!
//! * `closed` only goes from false to true; `complete` reports the call that flipped it.
//! * `cancel` drops every pending item exactly once (the first call), counting each as
//!   cancelled, so `enqueued == completed + failed + cancelled` holds after a drain.
//! * Whoever moves a drain condition towards true (closing, a worker going idle, a source
//!   finishing an item) runs `check_drained` afterwards.
use super::*;

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    pub(crate) fn complete(&self) -> bool {
        if self.closed.swap(true, SeqCst) {
            return false;
        }
        self.closed_token.cancel();
        self.wake_all();
        self.space.notify_waiters();
        self.check_drained();
        true
    }

    pub(crate) fn cancel(&self) {
        let first = !self.cancelled.swap(true, SeqCst);
        self.closed.store(true, SeqCst);
        if first {
            self.drop_pending();
        }
        self.closed_token.cancel();
        self.hub.token.cancel();
        self.wake_all();
        self.space.notify_waiters();
        self.check_drained();
    }

    /// Drops every pending item, counting it as cancelled.
    pub(super) fn drop_pending(&self) {
        let mut items = Vec::new();
        self.intake.drain_into(&mut items);
        self.cancelled_items.fetch_add(items.len() as u64, SeqCst);
        self.hub.telemetry.dropped(items.len() as u64);
        if self.replies.owed() {
            for (id, _) in &items {
                self.replies.forget(*id);
            }
        }
        drop(items);
    }

    /// Waits until the coordinator is drained, then until the async signal handlers have
    /// run what its operations queued.
    pub(crate) async fn drain(&self) {
        crate::notify::wait_until(&self.drained, || self.is_drained_now()).await;
        self.hub.handlers_settled().await;
    }

    pub(crate) fn is_drained(&self) -> bool {
        self.is_drained_now() && self.hub.handlers_idle()
    }

    /// Closed, nothing pending, no worker busy, and every accepted item finished or
    /// cancelled.
    ///
    /// Why no item in flight is missed: a producer counts an item in `enqueued` *before* it
    /// reads `closed`. We read `closed` first and `enqueued` after it, so a producer counting
    /// later sees `closed` and refuses its item; every item counted in what we read is
    /// accepted (or about to be taken back), and it is finished only if a worker recorded it
    /// (under the slot lock we read the counts under) or cancelled it.
    pub(super) fn is_drained_now(&self) -> bool {
        if !self.closed.load(SeqCst) || self.intake.len() != 0 || self.sourcing.load(SeqCst) != 0 {
            return false;
        }
        let enqueued = self.producer.enqueued.load(SeqCst);
        let track = self.track();
        let ctl = self.ctl();
        let mut finished = track.retired.completed + track.retired.failed;
        for slot in &ctl.slots {
            let st = slot.lock();
            // `busy` is read under the slot's lock, after the counts it guards: a worker
            // stores `busy = true` before it takes this lock to record an item, so if these
            // counts include an item, this read sees the worker busy (running `on_sample`,
            // say) until it has finished with it. Read before the lock, a worker could start,
            // run and record an item between the two reads, and the drain would be reported
            // while its `on_sample` still ran.
            if slot.busy.load(SeqCst) {
                return false;
            }
            finished += st.window.completed + st.window.failed;
        }
        drop(ctl);
        drop(track);
        let cancelled = self.cancelled_items.load(SeqCst);
        // `enqueued` read again: an item counted as accepted-then-cancelled (a stream source's
        // refused item) is counted in `enqueued` first, so if `cancelled` includes it, this
        // second read does too. Unchanged, both reads include it, and its `cancelled` count
        // cannot stand in for another producer's item still in flight.
        finished + cancelled == enqueued && self.producer.enqueued.load(SeqCst) == enqueued
    }

    /// Notifies drain waiters and parked workers if the coordinator is drained.
    pub(super) fn check_drained(&self) {
        if self.is_drained_now() {
            self.wake_all();
            self.drained.notify_waiters();
        }
    }

    pub(crate) fn pause(&self) {
        self.paused.store(true, SeqCst);
    }

    pub(crate) fn resume(&self) {
        self.paused.store(false, SeqCst);
        self.wake_one();
    }

    pub(crate) fn set_max_concurrency(&self, n: usize) -> Result<(), crate::ConcurrencyError> {
        if !self.dynamic {
            return Err(crate::ConcurrencyError::NotDynamic);
        }
        if n == 0 {
            return Err(crate::ConcurrencyError::Zero);
        }
        let old = self.limit.swap(n, SeqCst);
        self.hub.telemetry.limit(n);
        if n > old {
            // Growing: start the chain of wakes.
            self.wake_one();
        } else if self.workers.load(SeqCst) > n {
            // Shrinking: parked workers above the limit leave when they look again; running
            // ones leave as they finish.
            self.wake_all();
        }
        Ok(())
    }
}
