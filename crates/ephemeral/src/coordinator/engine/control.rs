//! Complete, cancel, drain, pause, resize, and stream feeding.
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
