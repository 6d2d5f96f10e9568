//! The skeleton the [`AsyncSignalProcessor`](super::AsyncSignalProcessor) and the
//! [`SignalDispatcher`](super::SignalDispatcher) share: handles whose last drop closes intake
//! ([`Closer`]), and one background task ([`Runner::run`]) that starts handler runs while it
//! may, collects finished ones with a biased select (finished runs before new wake-ups), and
//! says when it has finished.
//!
//! What differs (a lossy FIFO with a concurrency cap, or per-name queues served round-robin)
//! stays with each; handler calls go through [`contained`](super::handler::contained), so a
//! panic is counted, never propagated.

use crate::sync::atomic::{AtomicBool, Ordering};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;

/// State that can stop taking new work (under its own lock) and wake its background task.
pub(crate) trait Close {
    /// Refuses new work from now on; what is queued still runs.
    fn close(&self);
}

/// Held by every user-facing handle: dropping the last one closes intake (a shutdown in the
/// background). The background task holds the state itself, not a `Closer`.
pub(crate) struct Closer<S: Close>(Arc<S>);

impl<S: Close> Closer<S> {
    pub(crate) fn new(shared: Arc<S>) -> Arc<Self> {
        Arc::new(Closer(shared))
    }
}

impl<S: Close> Drop for Closer<S> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The background task's wake-up and its end.
pub(crate) struct Runner {
    /// Told when there is new work or intake closed.
    wake: Notify,
    /// Told (all waiters) once the task has finished.
    done: Notify,
    finished: AtomicBool,
}

impl Runner {
    pub(crate) fn new() -> Self {
        Runner {
            wake: Notify::new(),
            done: Notify::new(),
            finished: AtomicBool::new(false),
        }
    }

    /// Wakes the background task (a permit is kept if it is not waiting).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves once the background task has finished. Cancel safe.
    pub(crate) async fn finished(&self) {
        crate::notify::wait_until(&self.done, || self.finished.load(Ordering::SeqCst)).await;
    }

    /// The background task's loop. `fill` starts what may start into `running` and returns
    /// whether the task is done (intake closed and nothing left); `on_done` takes each finished
    /// run's output. Finished runs are collected before a new wake-up is taken.
    pub(crate) async fn run<Fut: Future>(
        &self,
        mut fill: impl FnMut(&mut FuturesUnordered<Fut>) -> bool,
        mut on_done: impl FnMut(Fut::Output),
    ) {
        let mut running = FuturesUnordered::new();
        while !fill(&mut running) {
            tokio::select! {
                biased;
                Some(output) = running.next(), if !running.is_empty() => on_done(output),
                () = self.wake.notified() => {}
            }
        }
        self.finished.store(true, Ordering::SeqCst);
        self.done.notify_waiters();
    }
}
