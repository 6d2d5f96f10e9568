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
    /// cancelled (`drain::is_drained`, which says why no item in flight is missed).
    #[inline]
    pub(super) fn is_drained_now(&self) -> bool {
        drain::is_drained(self, &self.shards)
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

impl<T, I, R> drain::Drainable for Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    #[inline]
    fn closed(&self) -> bool {
        self.closed.load(SeqCst)
    }
    #[inline]
    fn pending(&self) -> usize {
        self.intake.len()
    }
    #[inline]
    fn sourcing(&self) -> usize {
        self.sourcing.load(SeqCst)
    }
    #[inline]
    fn enqueued(&self) -> u64 {
        self.producer.enqueued.load(SeqCst)
    }
    #[inline]
    fn cancelled(&self) -> u64 {
        self.cancelled_items.load(SeqCst)
    }
}
