//! The coordinators: one engine, several faces.

mod any;
mod completion;
mod core;
mod engine;
mod error;
mod factory;
mod for_each;
mod keyed;
mod result;
pub(crate) mod scheduler;
mod work;

pub use any::AnyCoordinator;
pub use completion::Completion;
pub use error::{Cancelled, ConcurrencyError, EnqueueError, TryEnqueueError, UnknownCoordinator};
pub use factory::{CoordinatorFactory, KeyedCoordinatorFactory};
pub use for_each::{for_each, for_each_keyed, for_each_keyed_stream, for_each_stream, Summary};
pub use keyed::KeyedWorkCoordinator;
pub use result::{ResultCoordinator, ResultSnapshot};
pub use work::WorkCoordinator;

/// A copy of a coordinator's counters.
///
/// After a drain, `enqueued == completed + failed + cancelled` always holds. While work flows,
/// the fields are read one after another without stopping the workers (the hot path takes no
/// global lock), so they may be a few items apart from each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Stats {
    /// Items waiting to start.
    pub pending: usize,
    /// Bodies running now.
    pub active: usize,
    /// Items accepted so far (refused items are not counted; while an `enqueue` is being
    /// refused, the count may include it for an instant).
    pub enqueued: u64,
    /// Bodies that returned `Ok`.
    pub completed: u64,
    /// Bodies that returned `Err` or panicked.
    pub failed: u64,
    /// Items dropped before starting: by `cancel`, or by a present `cancel_on_signals` signal.
    pub cancelled: u64,
    /// The current concurrency limit.
    pub max_concurrency: usize,
    /// Whether the coordinator is paused.
    pub paused: bool,
    /// Whether it accepts no more items (completed or cancelled).
    pub closed: bool,
    /// Starts held back right now by a `defer_on_signals` signal: workers waiting for the
    /// signal to go, each before one pending item (those items are also in `pending`). While
    /// a back-off holds, `active` drops and `deferred` shows why.
    pub deferred: usize,
    /// Starts that waited `max_defer_attempts` checks for a `defer_on_signals` signal to go,
    /// then ran anyway.
    pub defer_timeouts: u64,
    /// Signals the async handler queues dropped (oldest first) because they were full.
    pub signal_handler_drops: u64,
    /// Async signal handlers that failed or panicked.
    pub signal_handler_failures: u64,
}

/// Methods every coordinator has, delegating to the engine.
macro_rules! common_methods {
    () => {
        /// Items waiting to start.
        #[must_use]
        pub fn pending_count(&self) -> usize {
            self.shared.pending_count()
        }

        /// Bodies running now.
        #[must_use]
        pub fn active_count(&self) -> usize {
            self.shared.active_now()
        }

        /// Items accepted so far.
        #[must_use]
        pub fn total_enqueued(&self) -> u64 {
            self.shared.total_enqueued()
        }

        /// Bodies that returned `Ok`.
        #[must_use]
        pub fn total_completed(&self) -> u64 {
            self.shared.finished_counts().0
        }

        /// Bodies that returned `Err` or panicked.
        #[must_use]
        pub fn total_failed(&self) -> u64 {
            self.shared.finished_counts().1
        }

        /// Items dropped before starting (by `cancel` or a `cancel_on_signals` signal).
        #[must_use]
        pub fn total_cancelled(&self) -> u64 {
            self.shared.total_cancelled()
        }

        /// All counters at once. Exact after a drain (then `enqueued == completed + failed +
        /// cancelled`); while work flows they are read one after another without stopping the
        /// workers, so they may be a few items apart (see [`Stats`](crate::Stats)). Each
        /// single-counter getter above reads only its own counter.
        #[must_use]
        pub fn stats(&self) -> $crate::Stats {
            self.shared.stats()
        }

        /// The name given in the options, if any.
        #[must_use]
        pub fn name(&self) -> Option<&str> {
            self.shared.name.as_deref()
        }

        /// Stops starting new items (running bodies go on; intake continues).
        pub fn pause(&self) {
            self.shared.pause();
        }

        /// Starts items again after [`pause`](Self::pause).
        pub fn resume(&self) {
            self.shared.resume();
        }

        /// Whether the coordinator is paused.
        #[must_use]
        pub fn is_paused(&self) -> bool {
            self.shared.is_paused()
        }

        /// Stops accepting items; queued ones still run. Idempotent: returns whether this call
        /// closed it.
        pub fn complete(&self) -> bool {
            self.shared.complete()
        }

        /// Whether the coordinator accepts no more items (completed or cancelled).
        #[must_use]
        pub fn is_completed(&self) -> bool {
            self.shared.is_closed()
        }

        /// Resolves once the coordinator is completed **and** nothing is pending or running
        /// (including a running `on_sample`), **and** the async signal handlers
        /// (`on_signal_async`, `on_signal_retracted_async`) have run, failed or dropped every
        /// signal its operations queued for them; pending until then, so call
        /// [`complete`](Self::complete) first. So right after a drain, handler counters
        /// (calls, [`Stats::signal_handler_drops`](crate::Stats::signal_handler_drops),
        /// [`Stats::signal_handler_failures`](crate::Stats::signal_handler_failures)) add up.
        /// While paused it waits; after [`cancel`](Self::cancel) it resolves once running
        /// bodies (and the handlers of their signals) return. A handler that never returns
        /// keeps it waiting, as a body would. Later events (a signal's ttl running out, a
        /// handle kept past its body) may queue handlers again after it resolved.
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: dropping the future has no effect on the coordinator.
        pub async fn drain(&self) {
            self.shared.drain().await;
        }

        /// Whether [`drain`](Self::drain) would resolve at once.
        #[must_use]
        pub fn is_drained(&self) -> bool {
            self.shared.is_drained()
        }

        /// Closes the coordinator, drops every pending item (counted as cancelled) and cancels
        /// the token that running bodies see. Does not wait; see [`shutdown`](Self::shutdown).
        pub fn cancel(&self) {
            self.shared.cancel();
        }

        /// [`cancel`](Self::cancel), then waits until every running body has returned (even
        /// one that ignores its token).
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: the cancel happens when the future is first polled; dropping it afterwards
        /// only stops the waiting (running bodies still return on their own).
        pub async fn shutdown(&self) {
            self.shared.cancel();
            self.shared.drain().await;
        }

        /// Changes the concurrency limit at run time. Growing starts waiting items at once;
        /// shrinking takes effect as running bodies finish: running never exceeds the newest
        /// limit once the excess has drained.
        ///
        /// # Errors
        ///
        /// [`ConcurrencyError::NotDynamic`](crate::ConcurrencyError::NotDynamic) unless the
        /// options enabled `dynamic_concurrency`;
        /// [`ConcurrencyError::Zero`](crate::ConcurrencyError::Zero) for 0.
        pub fn set_max_concurrency(&self, n: usize) -> Result<(), $crate::ConcurrencyError> {
            self.shared.set_max_concurrency(n)
        }

        /// The current concurrency limit.
        #[must_use]
        pub fn max_concurrency(&self) -> usize {
            self.shared.max_concurrency()
        }

        /// Keeps a finished (or running) operation in the window until unpinned or evicted,
        /// exempt from size and age eviction; returns whether it was found.
        pub fn pin(&self, id: $crate::OperationId) -> bool {
            self.shared.pin(id)
        }

        /// Makes a pinned operation evictable again; returns whether it was pinned.
        pub fn unpin(&self, id: $crate::OperationId) -> bool {
            self.shared.unpin(id)
        }

        /// Removes a finished operation from the window now, pinned or not; returns whether it
        /// was there. Running operations cannot be evicted.
        pub fn evict(&self, id: $crate::OperationId) -> bool {
            self.shared.evict(id)
        }

        /// The window's snapshot of operation `id` (running or finished), if it is still
        /// tracked: ids come from `enqueue`, [`Completion::id`](crate::Completion::id),
        /// snapshots and signals, and parse from their `Display` form.
        #[must_use]
        pub fn snapshot_of(&self, id: $crate::OperationId) -> Option<$crate::OperationSnapshot> {
            self.shared.snapshot_of(id)
        }

        #[doc(hidden)]
        #[cfg(any(test, feature = "test-util"))]
        /// Replies still owed to `Completion`s: for leak tests (feature `test-util`).
        pub fn owed_replies(&self) -> usize {
            self.shared.owed_replies()
        }

        #[doc(hidden)]
        #[cfg(any(test, feature = "test-util"))]
        /// Records the window holds right now (running + finished, including expired ones not
        /// yet dropped): for memory tests (feature `test-util`).
        pub fn window_len(&self) -> usize {
            self.shared.window_held()
        }
    };
}
pub(crate) use common_methods;

/// Window views of the coordinators whose snapshots carry no result.
macro_rules! window_views {
    () => {
        /// Every operation in the window (running ones and finished ones still tracked), in
        /// start order. A copy: it never changes after it is taken, and it holds no payloads.
        #[must_use]
        pub fn snapshot(&self) -> Vec<$crate::OperationSnapshot> {
            self.shared.snapshot_where(|_| true)
        }

        /// The finished operations that failed, in start order.
        #[must_use]
        pub fn failed(&self) -> Vec<$crate::OperationSnapshot> {
            self.shared
                .snapshot_where($crate::OperationSnapshot::is_faulted)
        }

        /// The running operations, in start order.
        #[must_use]
        pub fn running(&self) -> Vec<$crate::OperationSnapshot> {
            self.shared
                .snapshot_where($crate::OperationSnapshot::is_running)
        }

        /// The finished operations in the window (successful or not), in start order.
        #[must_use]
        pub fn completed(&self) -> Vec<$crate::OperationSnapshot> {
            self.shared.snapshot_where(|s| !s.is_running())
        }
    };
}
pub(crate) use window_views;
