//! Awaiting one item: [`Completion`] and the replies the engine owes to it.

use crate::id::OperationId;
use crate::operation::OperationError;
use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::sync::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

type Outcome<R> = Result<R, OperationError>;

/// A future of one item's outcome, from `enqueue_with_handle`: like a `JoinHandle` for work
/// handed to a coordinator.
///
/// It resolves once the item's operation has finished and shows as finished in the window:
/// to the body's result (`()` for work and keyed coordinators, a clone of the result for a
/// [`ResultCoordinator`](crate::ResultCoordinator)), or to its [`OperationError`]. An item
/// dropped before it started (by `cancel`, `shutdown`, or a `cancel_on_signals` signal that
/// appeared while it was queued) resolves to an error whose
/// [`is_cancelled`](OperationError::is_cancelled) and
/// [`is_not_started`](OperationError::is_not_started) are true.
///
/// Dropping a `Completion` does not cancel the item (it runs anyway); it only stops the
/// waiting. Items enqueued without a handle cost the coordinator nothing for this feature.
///
/// ```
/// use ephemeral::{Options, WorkCoordinator};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let c = WorkCoordinator::new(
///         |n: u32, _op| async move { if n == 13 { Err("unlucky") } else { Ok(()) } },
///         Options::default(),
///     );
///     let fine = c.enqueue_with_handle(7).await.unwrap();
///     let bad = c.enqueue_with_handle(13).await.unwrap();
///     let bad_id = bad.id();
///     assert!(fine.await.is_ok());
///     let err = bad.await.unwrap_err();
///     assert_eq!(err.to_string(), "unlucky");
///     // The window knows it by id.
///     assert!(c.snapshot_of(bad_id).unwrap().is_faulted());
/// }
/// ```
#[must_use = "a Completion does nothing unless awaited (dropping it does not cancel the item)"]
pub struct Completion<R> {
    id: OperationId,
    rx: oneshot::Receiver<Outcome<R>>,
}

impl<R> Completion<R> {
    /// The id the item's operation carries (in snapshots, signals and
    /// [`snapshot_of`](crate::WorkCoordinator::snapshot_of)).
    #[must_use]
    pub fn id(&self) -> OperationId {
        self.id
    }
}

impl<R> Future for Completion<R> {
    type Output = Result<R, OperationError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|got| match got {
            Ok(outcome) => outcome,
            // The reply was dropped unsent: the item was dropped before it started.
            Err(_) => Err(OperationError::not_started()),
        })
    }
}

impl<R> fmt::Debug for Completion<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion").field("id", &self.id).finish()
    }
}

/// One reply owed: where to send the outcome, and how to copy a result that stays in the
/// window.
struct Reply<R> {
    tx: oneshot::Sender<Outcome<R>>,
    copy: fn(&R) -> R,
}

/// The replies a coordinator owes, by operation id.
///
/// Costs nothing to items enqueued without a handle: the engine looks here only while
/// [`owed`](Self::owed) is non-zero. A reply leaves when its operation is recorded (sent),
/// when its item is dropped unstarted (dropped unsent: the `Completion` reads that as "not
/// started"), or when its `enqueue_with_handle` fails or is dropped.
pub(crate) struct Replies<R> {
    owed: AtomicUsize,
    map: Mutex<HashMap<OperationId, Reply<R>, foldhash::fast::RandomState>>,
}

impl<R> Replies<R> {
    pub(crate) fn new() -> Self {
        Replies {
            owed: AtomicUsize::new(0),
            map: Mutex::new(HashMap::default()),
        }
    }

    fn lock(
        &self,
    ) -> crate::sync::MutexGuard<'_, HashMap<OperationId, Reply<R>, foldhash::fast::RandomState>>
    {
        // No user code runs under this lock.
        self.map.lock()
    }

    /// Whether any reply is owed (one atomic load: the hot path's only cost).
    #[inline]
    pub(crate) fn owed(&self) -> bool {
        self.owed.load(SeqCst) != 0
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a reply for `id` (before its item becomes visible to workers).
    pub(crate) fn register(&self, id: OperationId, copy: fn(&R) -> R) -> Completion<R> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.lock();
        map.insert(id, Reply { tx, copy });
        self.owed.store(map.len(), SeqCst);
        Completion { id, rx }
    }

    /// Forgets the reply for `id` (its item was refused, dropped unstarted, or its enqueue
    /// dropped): the `Completion`, if any, resolves as not started.
    pub(crate) fn forget(&self, id: OperationId) {
        if !self.owed() {
            return;
        }
        let mut map = self.lock();
        let gone = map.remove(&id);
        self.owed.store(map.len(), SeqCst);
        drop(map);
        drop(gone);
    }

    /// Takes the reply owed for a finished operation, with the outcome to send: a copy of
    /// the result (which stays in the window) or the error.
    pub(crate) fn take(
        &self,
        id: OperationId,
        error: Option<&OperationError>,
        result: Option<&R>,
    ) -> Option<Sending<R>> {
        let mut map = self.lock();
        let reply = map.remove(&id)?;
        self.owed.store(map.len(), SeqCst);
        drop(map);
        let outcome = match (error, result) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(r)) => Ok((reply.copy)(r)),
            // A success always keeps its result until it is recorded.
            (None, None) => Err(OperationError::not_started()),
        };
        Some(Sending {
            tx: reply.tx,
            outcome,
        })
    }
}

/// A reply ready to go, sent once the engine's locks are released.
pub(crate) struct Sending<R> {
    tx: oneshot::Sender<Outcome<R>>,
    outcome: Outcome<R>,
}

impl<R> Sending<R> {
    pub(crate) fn send(self) {
        // The receiver may be gone (the Completion was dropped): nothing to do then.
        let _ = self.tx.send(self.outcome);
    }
}
