//! `ResultCoordinator<T, R>`: a work queue that keeps each operation's result in the window.

use super::common_methods;
use super::core::{face, Core};
use super::error::{EnqueueError, TryEnqueueError};
use super::scheduler::Fifo;
use crate::outcome::Outcome;
use crate::{Operation, OperationId, OperationSnapshot, Options};
use futures_util::Stream;
use std::future::Future;

/// An operation's metadata plus its result (for operations that succeeded).
#[derive(Clone, Debug)]
pub struct ResultSnapshot<R> {
    operation: OperationSnapshot,
    result: Option<R>,
}

impl<R> ResultSnapshot<R> {
    /// The metadata.
    #[must_use]
    pub fn operation(&self) -> &OperationSnapshot {
        &self.operation
    }

    /// The result; `None` while running or after a failure.
    #[must_use]
    pub fn result(&self) -> Option<&R> {
        self.result.as_ref()
    }

    /// Splits into metadata and result.
    #[must_use]
    pub fn into_parts(self) -> (OperationSnapshot, Option<R>) {
        (self.operation, self.result)
    }
}

/// A work queue whose body returns a value, kept alongside the operation's metadata.
///
/// Results live as long as their operation stays in the window (bounded by
/// `max_tracked_operations` and `max_operation_lifetime`; see
/// [`Options::max_tracked_operations`] for how the per-worker shards bound memory), so memory
/// stays bounded however many items pass. A result's `Drop` runs outside the coordinator's
/// locks (it may call back into the coordinator); reads that return results (`results`,
/// `snapshot`, ...) clone them while the window is locked, so keep `R::clone` cheap and free of
/// calls into the coordinator. [`on_sample`](Options::on_sample) receives base snapshots only,
/// never results. Everything else is as on [`WorkCoordinator`](crate::WorkCoordinator).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{Options, ResultCoordinator};
///
/// let fingerprints = ResultCoordinator::new(
///     |events: Vec<u8>, _op| async move { Ok::<_, std::io::Error>(events.iter().map(|&b| u64::from(b)).sum::<u64>()) },
///     Options::default().max_concurrency(4),
/// );
/// fingerprints.enqueue(vec![1, 2, 3]).await.unwrap();
/// fingerprints.enqueue(vec![10]).await.unwrap();
/// fingerprints.complete();
/// fingerprints.drain().await;
/// let mut results = fingerprints.results();
/// results.sort();
/// assert_eq!(results, [6, 10]);
/// # }
/// ```
///
/// # Panics
///
/// The constructor panics outside a tokio runtime and on invalid [`Options`].
pub struct ResultCoordinator<T: Send + 'static, R: Send + 'static> {
    shared: Core<T, Fifo<T>, R>,
}

impl<T: Send + 'static, R: Send + 'static> ResultCoordinator<T, R> {
    /// A coordinator keeping what `body` returns.
    #[track_caller]
    pub fn new<F, Fut>(body: F, options: Options) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<R>> + Send + 'static,
    {
        ResultCoordinator {
            shared: Core::start(|o| Fifo::new(o.effective_queue_capacity()), options, body),
        }
    }

    /// A coordinator fed by `stream`; completes itself when the stream ends. Every item read
    /// is run, or counted as cancelled when a `cancel_on_signals` signal refuses it, as on
    /// [`WorkCoordinator::from_stream`](crate::WorkCoordinator::from_stream).
    ///
    /// ```
    /// use ephemeral::{Options, ResultCoordinator};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let squares = ResultCoordinator::from_stream(
    ///         futures::stream::iter(1..=4u64),
    ///         |n: u64, _op| async move { Ok::<_, std::io::Error>(n * n) },
    ///         Options::default().max_concurrency(2),
    ///     );
    ///     squares.drain().await;
    ///     let mut results = squares.results();
    ///     results.sort();
    ///     assert_eq!(results, [1, 4, 9, 16]);
    /// }
    /// ```
    #[track_caller]
    pub fn from_stream<St, F, Fut>(stream: St, body: F, options: Options) -> Self
    where
        St: Stream<Item = T> + Send + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<R>> + Send + 'static,
    {
        let c = ResultCoordinator::new(body, options);
        c.shared.feed(stream, |_| ());
        c
    }

    /// Adds an item, waiting for queue room (see
    /// [`WorkCoordinator::enqueue`](crate::WorkCoordinator::enqueue)).
    ///
    /// # Errors
    ///
    /// The item comes back inside [`EnqueueError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued (it is
    /// dropped with the future).
    pub async fn enqueue(&self, item: T) -> Result<OperationId, EnqueueError<T>> {
        self.shared.enqueue(item, ()).await
    }

    /// Adds an item if there is room now; never waits.
    ///
    /// # Errors
    ///
    /// The item comes back inside [`TryEnqueueError`].
    pub fn try_enqueue(&self, item: T) -> Result<OperationId, TryEnqueueError<T>> {
        self.shared.try_enqueue(item, ())
    }

    common_methods!();

    /// The running operations, in start order.
    #[must_use]
    pub fn running(&self) -> Vec<OperationSnapshot> {
        self.shared.snapshot_where(OperationSnapshot::is_running)
    }

    /// The window's operations without results (privacy-safe), in start order.
    #[must_use]
    pub fn base_snapshot(&self) -> Vec<OperationSnapshot> {
        self.shared.snapshot_where(|_| true)
    }
}

impl<T: Send + 'static, R: Clone + Send + 'static> ResultCoordinator<T, R> {
    /// The results of the successful operations in the window, in start order.
    #[must_use]
    pub fn results(&self) -> Vec<R> {
        self.shared.finished_where(|rec, _| rec.result.clone())
    }

    /// The window's operations with their results, in start order (running ones included,
    /// without result).
    #[must_use]
    pub fn snapshot(&self) -> Vec<ResultSnapshot<R>> {
        self.shared.window_map(
            |operation| {
                Some(ResultSnapshot {
                    operation,
                    result: None,
                })
            },
            |rec, pinned| {
                Some(ResultSnapshot {
                    operation: rec.snapshot(pinned),
                    result: rec.result.clone(),
                })
            },
        )
    }

    /// The operations in the window that succeeded, with their results.
    #[must_use]
    pub fn successful(&self) -> Vec<ResultSnapshot<R>> {
        self.shared.finished_where(|rec, pinned| {
            rec.result.as_ref().map(|r| ResultSnapshot {
                operation: rec.snapshot(pinned),
                result: Some(r.clone()),
            })
        })
    }

    /// The operations in the window that failed (no result).
    #[must_use]
    pub fn failed(&self) -> Vec<ResultSnapshot<R>> {
        self.shared.finished_where(|rec, pinned| {
            rec.error.is_some().then(|| ResultSnapshot {
                operation: rec.snapshot(pinned),
                result: None,
            })
        })
    }
}

impl<T: Send + 'static, R: Clone + Send + 'static> ResultCoordinator<T, R> {
    /// [`enqueue`](Self::enqueue), returning a [`Completion`](crate::Completion): a future
    /// of this item's outcome (and its id). It resolves to a clone of the result, which also stays in the window.
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue): the item comes back inside [`EnqueueError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued.
    pub async fn enqueue_with_handle(
        &self,
        item: T,
    ) -> Result<crate::Completion<R>, EnqueueError<T>> {
        self.shared.enqueue_with_handle(item, (), R::clone).await
    }
}

face!(ResultCoordinator<T, R> { shared } snapshot: base_snapshot, where T: Send + 'static, R: Send + 'static);
