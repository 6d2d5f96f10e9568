//! `WorkCoordinator<T>`: a long-lived, bounded, observable work queue.

use super::core::{face, Core};
use super::error::{EnqueueError, TryEnqueueError};
use super::scheduler::Fifo;
use super::{common_methods, window_views};
use crate::outcome::Outcome;
use crate::{Operation, OperationId, Options};
use futures_util::Stream;
use std::future::Future;

/// A long-lived work queue: bounded concurrency, every operation tracked, signals on the side.
///
/// Items go in with [`enqueue`](Self::enqueue) (waits for queue room) or
/// [`try_enqueue`](Self::try_enqueue) (never waits); a pool of long-lived worker tasks runs the
/// body for each, at most [`Options::max_concurrency`] at once, in enqueue order. Each body gets
/// its item and an [`Operation`] handle to emit signals. The coordinator keeps counters, a
/// bounded window of operation metadata (never payloads: see [`snapshot`](Self::snapshot)), and
/// serves every [`SignalSource`](crate::SignalSource) query over the window.
///
/// The handle is a cheap `Clone`. **Dropping the last handle completes the coordinator**: queued
/// work still runs, then the workers exit and the body closure is released; no background
/// task outlives that. Use [`cancel`](Self::cancel) or [`shutdown`](Self::shutdown) to stop
/// early.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
///
/// let translator = WorkCoordinator::new(
///     |text: String, op: Operation| async move {
///         if text.is_empty() {
///             op.emit("empty-input");
///             return Err("nothing to translate");
///         }
///         Ok(())
///     },
///     Options::default().max_concurrency(8).name("translator"),
/// );
///
/// translator.enqueue("hello".to_string()).await.unwrap();
/// translator.enqueue(String::new()).await.unwrap();
/// translator.complete();
/// translator.drain().await;
///
/// let stats = translator.stats();
/// assert_eq!((stats.completed, stats.failed), (1, 1));
/// assert!(translator.has_signal("empty-input"));
/// assert_eq!(translator.failed().len(), 1);
/// # }
/// ```
///
/// # Panics
///
/// The constructors panic outside a tokio runtime and on invalid [`Options`] (see
/// [`Options::validate`]).
pub struct WorkCoordinator<T: Send + 'static> {
    pub(super) shared: Core<T, Fifo<T>, ()>,
}

impl<T: Send + 'static> WorkCoordinator<T> {
    /// A coordinator running `body` for every item.
    #[track_caller]
    pub fn new<F, Fut>(body: F, options: Options) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        WorkCoordinator {
            shared: Core::start(|o| Fifo::new(o.effective_queue_capacity()), options, body),
        }
    }

    /// A coordinator fed by `stream`: every item is enqueued (waiting for room), and the
    /// coordinator completes itself when the stream ends. Items may also be enqueued by hand
    /// meanwhile.
    ///
    /// **Nothing read is lost.** The stream is read to its end. An item refused while a
    /// `cancel_on_signals` signal is present has no caller to go back to: it is counted as
    /// enqueued and cancelled, and reading goes on. So once drained, the items read equal
    /// `completed + failed + cancelled` (and [`Stats::enqueued`](crate::Stats::enqueued)).
    /// If the coordinator is completed or cancelled first, reading stops: an item read at
    /// that moment is counted as cancelled, and the rest of the stream is not read. If the stream
    /// (or the key function) panics, reading ends there as if the stream had ended: the items
    /// read before still run, and the coordinator completes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{Options, WorkCoordinator};
    ///
    /// let c = WorkCoordinator::from_stream(
    ///     futures::stream::iter(0..10u32),
    ///     |_n: u32, _op| async { Ok::<_, std::io::Error>(()) },
    ///     Options::default(),
    /// );
    /// c.drain().await;
    /// assert_eq!(c.total_completed(), 10);
    /// # }
    /// ```
    #[track_caller]
    pub fn from_stream<St, F, Fut>(stream: St, body: F, options: Options) -> Self
    where
        St: Stream<Item = T> + Send + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let c = WorkCoordinator::new(body, options);
        c.shared.feed(stream, |_| ());
        c
    }

    /// Adds an item, waiting while `queue_capacity` items are pending; returns the id its
    /// operation will carry.
    ///
    /// # Errors
    ///
    /// The item comes back inside [`EnqueueError`]: `Closed` after `complete`/`cancel`,
    /// `Rejected` while a `cancel_on_signals` signal is present.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued.
    pub async fn enqueue(&self, item: T) -> Result<OperationId, EnqueueError<T>> {
        self.shared.enqueue(item, ()).await
    }

    /// [`enqueue`](Self::enqueue), returning a [`Completion`](crate::Completion): a future
    /// of this item's outcome (and its id).
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
    ) -> Result<crate::Completion<()>, EnqueueError<T>> {
        self.shared.enqueue_with_handle(item, (), |()| ()).await
    }

    /// Adds an item if there is room now; never waits.
    ///
    /// # Errors
    ///
    /// The item comes back inside [`TryEnqueueError`]: `Full`, `Closed` or `Rejected`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{Options, TryEnqueueError, WorkCoordinator};
    ///
    /// let c = WorkCoordinator::new(
    ///     |_: u32, _op| async { Ok::<_, std::io::Error>(()) },
    ///     Options::default().queue_capacity(1),
    /// );
    /// c.pause();
    /// c.try_enqueue(1).unwrap();
    /// match c.try_enqueue(2) {
    ///     Err(TryEnqueueError::Full(item)) => assert_eq!(item, 2),
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn try_enqueue(&self, item: T) -> Result<OperationId, TryEnqueueError<T>> {
        self.shared.try_enqueue(item, ())
    }

    common_methods!();

    window_views!();
}

face!(WorkCoordinator<T> { shared } snapshot: snapshot, where T: Send + 'static);
