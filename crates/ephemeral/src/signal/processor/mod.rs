//! A bounded, lossy background queue of async signal handlers.

mod queue;

pub(crate) use queue::Processor;

use crate::outcome::Outcome;
use crate::signal::handler::token_handler;
use crate::signal::SignalEvent;
use std::fmt;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// Runs async handlers for signals in the background: bounded queue, bounded concurrency.
///
/// * [`enqueue`](Self::enqueue) never waits. When `max_queue_size` signals already wait, the
///   **oldest** waiting one is dropped (and counted in [`dropped_count`](Self::dropped_count))
///   to make room: under overload the freshest signals win.
/// * At most `max_concurrency` handlers run at once. They run on one background task, so a
///   handler that blocks its thread stalls its siblings: handlers should await, not block.
/// * A handler that returns an error or panics is counted in
///   [`failed_count`](Self::failed_count); the processor keeps going.
/// * [`shutdown`](Self::shutdown) stops intake and waits until everything already queued has
///   run. [`cancel`](Self::cancel) stops intake, drops what waits (counted as dropped) and
///   cancels the token handed to running handlers.
/// * Dropping the last handle is a shutdown in the background: queued signals still run, then
///   the background task ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{AsyncSignalProcessor, OperationId, SignalEvent};
///
/// let processor = AsyncSignalProcessor::new(
///     |evt: SignalEvent, _token| async move {
///         println!("handled {}", evt.signal());
///         Ok::<_, std::io::Error>(())
///     },
///     4,
///     1000,
/// );
/// processor.enqueue(SignalEvent::new("rate-limit", OperationId::next(), None, ephemeral::now()));
/// processor.shutdown().await;
/// assert_eq!(processor.processed_count(), 1);
/// assert_eq!(processor.dropped_count(), 0);
/// # }
/// ```
///
/// # Panics
///
/// [`new`](Self::new) panics outside a tokio runtime, or if either limit is zero.
#[derive(Clone)]
pub struct AsyncSignalProcessor {
    inner: Processor<SignalEvent>,
}

impl AsyncSignalProcessor {
    /// Starts a processor running `handler` for each signal, at most `max_concurrency` at once,
    /// with at most `max_queue_size` signals waiting.
    pub fn new<F, Fut>(handler: F, max_concurrency: usize, max_queue_size: usize) -> Self
    where
        F: Fn(SignalEvent, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        AsyncSignalProcessor {
            inner: Processor::new(token_handler(handler), max_concurrency, max_queue_size),
        }
    }

    /// Queues a signal; never waits. Returns `false` only after shutdown or cancel (a full
    /// queue drops its oldest signal instead and returns `true`).
    pub fn enqueue(&self, event: SignalEvent) -> bool {
        self.inner.enqueue(event)
    }

    /// Signals waiting for a handler.
    #[must_use]
    pub fn queued_count(&self) -> usize {
        self.inner.queued_count()
    }

    /// Handlers that finished successfully.
    #[must_use]
    pub fn processed_count(&self) -> u64 {
        self.inner.processed_count()
    }

    /// Signals dropped because the queue was full (or discarded by cancel).
    #[must_use]
    pub fn dropped_count(&self) -> u64 {
        self.inner.dropped_count()
    }

    /// Handlers that returned an error or panicked.
    #[must_use]
    pub fn failed_count(&self) -> u64 {
        self.inner.failed_count()
    }

    /// Stops intake and waits until every queued signal has been handled.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: intake stops when the future is first polled; dropping it afterwards only stops
    /// the waiting, and queued signals are still handled in the background.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    /// Stops intake, drops queued signals and cancels running handlers' token; waits for the
    /// running handlers to return.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: queued signals are dropped and the token is cancelled when the future is first
    /// polled; dropping it afterwards only stops the waiting.
    pub async fn cancel(&self) {
        self.inner.cancel().await;
    }
}

impl fmt::Debug for AsyncSignalProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSignalProcessor")
            .field("queued", &self.queued_count())
            .field("processed", &self.processed_count())
            .field("dropped", &self.dropped_count())
            .field("failed", &self.failed_count())
            .finish()
    }
}
