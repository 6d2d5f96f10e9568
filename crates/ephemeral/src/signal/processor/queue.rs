//! The engine behind [`AsyncSignalProcessor`](super::AsyncSignalProcessor): a lossy FIFO (the
//! oldest waiting event gives way) drained by at most `max_concurrency` handler runs at once.

use crate::signal::handler::{contained, AsyncHandler, TokenHandler};
use crate::signal::runner::{Close, Closer, Runner};
use crate::sync::{Mutex, MutexGuard};
use futures_util::stream::FuturesUnordered;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The engine behind [`AsyncSignalProcessor`](super::AsyncSignalProcessor), generic so
/// coordinators can also queue retraction events.
pub(crate) struct Processor<E> {
    shared: Arc<Shared<E>>,
    /// Only user-facing handles count towards "dropping the last handle closes".
    _closer: Arc<Closer<Shared<E>>>,
}

impl<E> Clone for Processor<E> {
    fn clone(&self) -> Self {
        Processor {
            shared: self.shared.clone(),
            _closer: self._closer.clone(),
        }
    }
}

struct Shared<E> {
    state: Mutex<State<E>>,
    runner: Runner,
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
            }),
            runner: Runner::new(),
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
            _closer: Closer::new(shared.clone()),
            shared,
        }
    }

    /// A processor for handlers that take no token (the options' `on_*_async`).
    pub(crate) fn without_token(
        handler: AsyncHandler<E>,
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
        self.shared.runner.wake();
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
        self.shared.runner.finished().await;
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
        self.shared.runner.wake();
        self.shared.runner.finished().await;
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
}

impl<E> Close for Shared<E> {
    fn close(&self) {
        self.lock().closed = true;
        self.runner.wake();
    }
}

async fn run<E: Send + 'static>(shared: Arc<Shared<E>>) {
    let mut starting = Vec::new();
    let fill = |running: &mut FuturesUnordered<_>| loop {
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
            return true;
        }
        if starting.is_empty() {
            return false;
        }
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
    };
    let on_done = |succeeded: bool| {
        if succeeded {
            shared.processed.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        shared.one_done();
    };
    shared.runner.run(fill, on_done).await;
}
