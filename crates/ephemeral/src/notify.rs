//! Waiting on a condition announced through a [`Notify`].

use tokio::sync::Notify;

/// Resolves once `ready()` holds, re-checking each time `notify` wakes its waiters.
///
/// The waiter registers before it checks, so a `notify_waiters` between the check and the wait
/// is never missed. Cancel safe.
pub(crate) async fn wait_until(notify: &Notify, mut ready: impl FnMut() -> bool) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if ready() {
            return;
        }
        notified.await;
    }
}
