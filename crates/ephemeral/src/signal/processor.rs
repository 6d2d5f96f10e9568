//! A bounded, lossy background queue of async signal handlers.

use crate::outcome::Outcome;
use crate::signal::handler::{boxed, contained};
use crate::signal::SignalEvent;
use crate::sync::{Mutex, MutexGuard};
use crate::BoxError;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) type TokenHandler<E> =
    Arc<dyn Fn(E, CancellationToken) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

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
        let handler: TokenHandler<SignalEvent> = Arc::new(move |e, t| boxed(handler(e, t)));
        AsyncSignalProcessor {
            inner: Processor::new(handler, max_concurrency, max_queue_size),
        }
    }

    /// Queues a signal; never waits. Answers `false` only after shutdown or cancel (a full
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

/// The engine behind [`AsyncSignalProcessor`], generic so coordinators can also queue
/// retraction events.
pub(crate) struct Processor<E> {
    shared: Arc<Shared<E>>,
    /// Only user-facing handles count towards "dropping the last handle closes".
    _closer: Arc<Closer<E>>,
}

impl<E> Clone for Processor<E> {
    fn clone(&self) -> Self {
        Processor {
            shared: self.shared.clone(),
            _closer: self._closer.clone(),
        }
    }
}

struct Closer<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Drop for Closer<E> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

struct Shared<E> {
    state: Mutex<State<E>>,
    wake: Notify,
    done: Notify,
    /// Told whenever the queue is empty and no handler runs.
    idle: Notify,
    token: CancellationToken,
    handler: TokenHandler<E>,
    max_concurrency: usize,
    max_queue: usize,
    processed: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

struct State<E> {
    queue: VecDeque<E>,
    /// Handlers taken from the queue and not yet finished.
    busy: usize,
    closed: bool,
    finished: bool,
}

impl<E: Send + 'static> Processor<E> {
    pub(crate) fn new(handler: TokenHandler<E>, max_concurrency: usize, max_queue: usize) -> Self {
        assert!(
            max_concurrency > 0,
            "AsyncSignalProcessor: max_concurrency must be at least 1"
        );
        assert!(
            max_queue > 0,
            "AsyncSignalProcessor: max_queue_size must be at least 1"
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                busy: 0,
                closed: false,
                finished: false,
            }),
            wake: Notify::new(),
            done: Notify::new(),
            idle: Notify::new(),
            token: CancellationToken::new(),
            handler,
            max_concurrency,
            max_queue,
            processed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        tokio::spawn(run(shared.clone()));
        Processor {
            _closer: Arc::new(Closer {
                shared: shared.clone(),
            }),
            shared,
        }
    }

    /// A processor for handlers that take no token (the options' `on_*_async`).
    pub(crate) fn without_token(
        handler: crate::signal::handler::AsyncHandler<E>,
        max_concurrency: usize,
        max_queue: usize,
    ) -> Self {
        Processor::new(
            Arc::new(move |e, _t| handler(e)),
            max_concurrency,
            max_queue,
        )
    }

    pub(crate) fn enqueue(&self, event: E) -> bool {
        let mut state = self.shared.lock();
        if state.closed {
            return false;
        }
        let dropped = if state.queue.len() >= self.shared.max_queue {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            state.queue.pop_front()
        } else {
            None
        };
        state.queue.push_back(event);
        drop(state);
        self.shared.wake.notify_one();
        // The dropped event (user data) is released outside the lock.
        drop(dropped);
        true
    }

    pub(crate) fn queued_count(&self) -> usize {
        self.shared.lock().queue.len()
    }

    pub(crate) fn processed_count(&self) -> u64 {
        self.shared.processed.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped_count(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn failed_count(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Whether nothing is queued and no handler runs.
    pub(crate) fn is_idle(&self) -> bool {
        let state = self.shared.lock();
        state.queue.is_empty() && state.busy == 0
    }

    /// Resolves once nothing is queued and no handler runs (new signals may arrive later).
    pub(crate) async fn idle(&self) {
        crate::notify::wait_until(&self.shared.idle, || self.is_idle()).await;
    }

    pub(crate) async fn shutdown(&self) {
        self.shared.close();
        self.shared.wait_finished().await;
    }

    pub(crate) async fn cancel(&self) {
        let drained: Vec<E> = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.queue.drain(..).collect()
        };
        self.shared
            .dropped
            .fetch_add(drained.len() as u64, Ordering::Relaxed);
        drop(drained);
        self.shared.idle.notify_waiters();
        self.shared.token.cancel();
        self.shared.wake.notify_one();
        self.shared.wait_finished().await;
    }
}

impl<E> Shared<E> {
    fn lock(&self) -> MutexGuard<'_, State<E>> {
        self.state.lock()
    }

    /// A handler finished (its outcome already counted): tells `idle` waiters if nothing
    /// is left.
    fn one_done(&self) {
        let mut state = self.lock();
        state.busy -= 1;
        let idle = state.busy == 0 && state.queue.is_empty();
        drop(state);
        if idle {
            self.idle.notify_waiters();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    async fn wait_finished(&self) {
        crate::notify::wait_until(&self.done, || self.lock().finished).await;
    }
}

async fn run<E: Send + 'static>(shared: Arc<Shared<E>>) {
    let mut running = FuturesUnordered::new();
    let mut starting = Vec::new();
    loop {
        // Take as many queued signals as the cap allows.
        let exit = {
            let mut state = shared.lock();
            let free = shared.max_concurrency - running.len();
            let take = free.min(state.queue.len());
            starting.extend(state.queue.drain(..take));
            state.busy += take;
            state.closed && state.queue.is_empty() && running.is_empty() && starting.is_empty()
        };
        if exit {
            break;
        }
        if !starting.is_empty() {
            // Call the handlers outside the lock: they are user code, which may enqueue or
            // panic before returning its future.
            for event in starting.drain(..) {
                let handler = &shared.handler;
                match contained(|| handler(event, shared.token.clone())) {
                    Some(run) => running.push(run),
                    None => {
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                        shared.one_done();
                    }
                }
            }
            // Slots freed by handlers that panicked at once are refilled on the next pass.
            continue;
        }
        tokio::select! {
            biased;
            Some(outcome) = running.next(), if !running.is_empty() => {
                if outcome {
                    shared.processed.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
                shared.one_done();
            }
            () = shared.wake.notified() => {}
        }
    }
    shared.lock().finished = true;
    shared.done.notify_waiters();
}
