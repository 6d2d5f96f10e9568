//! Subscribers: callbacks told of every raise, and the [`Subscription`] that unregisters one.
//!
//! # Invariants
//!
//! * The subscriber list is an immutable `Arc<[..]>`, replaced (never changed in place) under
//!   the sink's lock, so a raise clones the `Arc` under the lock and calls the subscribers
//!   after releasing it.
//! * `has_subscribers` mirrors "the list is not empty"; it is only a hint for skipping a copy
//!   (a subscription racing with a raise may miss that raise, as if made just after).

use super::{Inner, SignalSink};
use crate::signal::SignalEvent;
use crate::sync::atomic::Ordering;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};

pub(super) type Subscriber = Arc<dyn Fn(&SignalEvent) + Send + Sync>;
pub(super) type Subscribers = Arc<[(u64, Subscriber)]>;

/// Calls every subscriber with `event`; a panicking subscriber must not poison the sink or stop
/// the others.
pub(super) fn notify(subscribers: &Subscribers, event: &SignalEvent) {
    for (_, subscriber) in subscribers.iter() {
        let _ = catch_unwind(AssertUnwindSafe(|| subscriber(event)));
    }
}

impl SignalSink {
    /// Calls `subscriber` with every event raised from now on, on the raising thread, after the
    /// event is stored. A panicking subscriber is contained. Dropping the returned
    /// [`Subscription`] unsubscribes.
    pub fn subscribe(
        &self,
        subscriber: impl Fn(&SignalEvent) + Send + Sync + 'static,
    ) -> Subscription {
        let mut state = self.inner.state.lock();
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        let mut subs: Vec<(u64, Subscriber)> = state.subscribers.iter().cloned().collect();
        subs.push((id, Arc::new(subscriber)));
        state.subscribers = Arc::from(subs);
        self.inner.has_subscribers.store(true, Ordering::Relaxed);
        Subscription {
            sink: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// How many subscribers are registered.
    #[cfg(test)]
    pub(crate) fn subscriber_count(&self) -> usize {
        self.inner.state.lock().subscribers.len()
    }
}

/// A live [`SignalSink::subscribe`] registration; dropping it unsubscribes.
#[must_use = "dropping a Subscription unsubscribes at once"]
pub struct Subscription {
    sink: Weak<Inner>,
    id: u64,
}

impl Subscription {
    /// Unsubscribes now (the same as dropping it).
    pub fn unsubscribe(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.sink.upgrade() {
            let mut state = inner.state.lock();
            let subs: Vec<(u64, Subscriber)> = state
                .subscribers
                .iter()
                .filter(|(id, _)| *id != self.id)
                .cloned()
                .collect();
            inner
                .has_subscribers
                .store(!subs.is_empty(), Ordering::Relaxed);
            let old = std::mem::replace(&mut state.subscribers, Arc::from(subs));
            drop(state);
            // The removed subscriber (user code, possibly with a `Drop`) is released outside
            // the lock.
            drop(old);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}
