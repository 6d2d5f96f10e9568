//! `BatchingAtom<T>`: collect items, hand them to a handler in batches.

mod collector;
mod counters;

pub use counters::BatchStats;

use crate::outcome::Outcome;
use crate::{BoxError, EnqueueError, Operation, Options, WorkCoordinator};
use collector::{Collector, Msg};
use counters::Shared;
use futures_util::FutureExt;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Collects items and hands them to a handler in batches: when a batch reaches
/// `max_batch_size` items, or when its oldest item has waited `flush_interval` (on tokio's
/// clock), whichever comes first.
///
/// * **One batch at a time, in item order**: batches run on a [`WorkCoordinator`] of batches
///   with a concurrency of 1, so two handlers never run at once and items reach the handler
///   in the order `add` accepted them.
/// * **Failures are counted, never fatal**: a handler error or panic counts in
///   [`BatchStats::failed_batches`] (and as a failed operation on the coordinator); later
///   batches are still delivered.
/// * **Bounded**: at most `4 × max_batch_size` items are held at once (up to
///   `max_batch_size` waiting to be collected, the batch being collected, one batch queued
///   and the batch being handled); beyond that, [`add`](Self::add) waits for room.
/// * [`flush`](Self::flush) delivers what is buffered and waits for it;
///   [`close`](Self::close) refuses new items, delivers the rest and waits for the last
///   batch. Dropping the last handle closes the atom in the background (buffered items are
///   still delivered).
///
/// One background task collects the items; the handle is a cheap `Clone`. Do not cancel the
/// [`coordinator`](Self::coordinator) directly: batches it drops are lost, and a `flush`
/// waiting for them would wait for ever.
///
/// ```
/// use ephemeral::atoms::BatchingAtom;
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let writer = BatchingAtom::new(100, Duration::from_millis(500), |rows: Vec<u32>| async move {
///         println!("inserting {} rows, first {:?}", rows.len(), rows.first());
///         Ok::<_, std::io::Error>(())
///     });
///     for row in 0..250 {
///         writer.add(row).await.unwrap();
///     }
///     writer.close().await; // the last 50 rows go out now
///     let stats = writer.stats();
///     assert_eq!((stats.batches, stats.items), (3, 250));
/// }
/// ```
///
/// # Panics
///
/// [`new`](Self::new) panics outside a tokio runtime (it spawns the collecting task and the
/// coordinator's worker) and if `max_batch_size` is 0.
pub struct BatchingAtom<T: Send + 'static> {
    tx: mpsc::Sender<Msg<T>>,
    shared: Arc<Shared>,
    coordinator: WorkCoordinator<Vec<T>>,
    max_batch_size: usize,
    flush_interval: Duration,
}

impl<T: Send + 'static> Clone for BatchingAtom<T> {
    fn clone(&self) -> Self {
        BatchingAtom {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            coordinator: self.coordinator.clone(),
            max_batch_size: self.max_batch_size,
            flush_interval: self.flush_interval,
        }
    }
}

impl<T: Send + 'static> BatchingAtom<T> {
    /// An atom delivering batches of up to `max_batch_size` items to `on_batch`, a batch going
    /// out at the latest `flush_interval` after its oldest item was added.
    ///
    /// `on_batch` may return `Result<(), E>` (any `E: Into<BoxError>`) or `()`.
    ///
    /// ```
    /// use ephemeral::atoms::BatchingAtom;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let atom = BatchingAtom::new(3, Duration::from_secs(1), |batch: Vec<&str>| async move {
    ///         println!("{batch:?}");
    ///     });
    ///     atom.add("a").await.unwrap();
    ///     tokio::time::sleep(Duration::from_secs(2)).await; // "a" waited a second: delivered
    ///     assert_eq!(atom.stats().batches, 1);
    /// }
    /// ```
    #[track_caller]
    pub fn new<F, Fut>(max_batch_size: usize, flush_interval: Duration, on_batch: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        assert!(
            max_batch_size > 0,
            "BatchingAtom::new: max_batch_size must be at least 1"
        );
        let shared = Arc::new(Shared {
            closed: AtomicBool::new(false),
            batches: AtomicU64::new(0),
            items: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            buffered: AtomicUsize::new(0),
            handled: watch::Sender::new(0),
            finished: watch::Sender::new(false),
        });
        let on_batch = Arc::new(on_batch);
        let counters = shared.clone();
        let body = move |batch: Vec<T>, _op: Operation| {
            let on_batch = on_batch.clone();
            let counters = counters.clone();
            async move {
                let n = batch.len();
                let outcome = AssertUnwindSafe(async move { on_batch(batch).await.into_result() })
                    .catch_unwind()
                    .await;
                let result: Result<(), BoxError> = match outcome {
                    Ok(result) => result,
                    Err(panic) => Err(panic_message(&*panic).into()),
                };
                counters.record(n, result.is_err());
                result
            }
        };
        let coordinator = WorkCoordinator::new(
            body,
            Options::default().max_concurrency(1).queue_capacity(1),
        );
        let (tx, rx) = mpsc::channel(max_batch_size);
        let collector = Collector {
            rx,
            coordinator: coordinator.clone(),
            shared: shared.clone(),
            buf: Vec::with_capacity(max_batch_size),
            oldest: None,
            formed: 0,
            max_batch_size,
            flush_interval,
        };
        tokio::spawn(collector.run());
        BatchingAtom {
            tx,
            shared,
            coordinator,
            max_batch_size,
            flush_interval,
        }
    }

    /// Adds an item, waiting while the buffer is full (see the type's docs for the bound).
    ///
    /// # Errors
    ///
    /// [`EnqueueError::Closed`] (with the item) after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it resolves, the item was not added.
    ///
    /// ```
    /// use ephemeral::atoms::BatchingAtom;
    /// use ephemeral::EnqueueError;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = BatchingAtom::new(10, Duration::from_secs(1), |_batch: Vec<u32>| async {});
    ///     atom.add(1).await.unwrap();
    ///     atom.close().await;
    ///     assert!(matches!(atom.add(2).await, Err(EnqueueError::Closed(2))));
    /// }
    /// ```
    pub async fn add(&self, item: T) -> Result<(), EnqueueError<T>> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(EnqueueError::Closed(item));
        }
        let Ok(permit) = self.tx.reserve().await else {
            return Err(EnqueueError::Closed(item));
        };
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(EnqueueError::Closed(item));
        }
        self.shared.buffered.fetch_add(1, Ordering::SeqCst);
        permit.send(Msg::Item(Instant::now(), item));
        Ok(())
    }

    /// Delivers what is buffered now (as one or more batches) and waits until those batches,
    /// and every batch before them, have been handled.
    ///
    /// ```
    /// use ephemeral::atoms::BatchingAtom;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = BatchingAtom::new(100, Duration::from_secs(60), |_batch: Vec<u32>| async {});
    ///     atom.add(1).await.unwrap();
    ///     atom.add(2).await.unwrap();
    ///     atom.flush().await;
    ///     assert_eq!((atom.stats().batches, atom.stats().items), (1, 2));
    /// }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future stops the waiting; a flush it already requested still
    /// happens.
    pub async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Msg::Flush(reply)).await.is_err() {
            self.shared.wait_finished().await;
            return;
        }
        match answer.await {
            Ok(target) => {
                let mut handled = self.shared.handled.subscribe();
                let _ = handled.wait_for(|h| *h >= target).await;
            }
            Err(_) => self.shared.wait_finished().await,
        }
    }

    /// Refuses new items from now on (`add` returns `Closed(item)`), delivers the rest, and
    /// returns once the last batch has been handled. Idempotent.
    ///
    /// ```
    /// use ephemeral::atoms::BatchingAtom;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = BatchingAtom::new(100, Duration::from_secs(60), |_batch: Vec<u32>| async {});
    ///     atom.add(1).await.unwrap();
    ///     atom.close().await;
    ///     assert_eq!(atom.stats().items, 1);
    ///     assert!(atom.coordinator().is_drained());
    /// }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Partly: once first polled, the atom refuses new items. If the future is dropped before its
    /// close request reached the background task, that task keeps running: buffered items are still
    /// delivered at the flush interval, and a later `close` (or dropping the atom) finishes the
    /// job. Dropping it after that only stops the waiting.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Msg::Close).await;
        self.shared.wait_finished().await;
    }

    /// The counters.
    ///
    /// ```
    /// use ephemeral::atoms::BatchingAtom;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = BatchingAtom::new(2, Duration::from_secs(60), |_batch: Vec<u32>| async {
    ///         Err::<(), _>("database down")
    ///     });
    ///     atom.add(1).await.unwrap();
    ///     atom.add(2).await.unwrap();
    ///     atom.flush().await;
    ///     assert_eq!(atom.stats().failed_batches, 1);
    /// }
    /// ```
    #[must_use]
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.shared.batches.load(Ordering::SeqCst),
            items: self.shared.items.load(Ordering::SeqCst),
            failed_batches: self.shared.failed.load(Ordering::SeqCst),
            buffered: self.shared.buffered.load(Ordering::SeqCst),
        }
    }

    /// The coordinator that runs the batches (one operation per batch; a failed batch is a
    /// failed operation).
    ///
    /// ```
    /// use ephemeral::atoms::BatchingAtom;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = BatchingAtom::new(1, Duration::from_secs(60), |_batch: Vec<u32>| async {});
    ///     atom.add(1).await.unwrap();
    ///     atom.close().await;
    ///     assert_eq!(atom.coordinator().total_completed(), 1);
    /// }
    /// ```
    #[must_use]
    pub fn coordinator(&self) -> &WorkCoordinator<Vec<T>> {
        &self.coordinator
    }
}

impl<T: Send + 'static> fmt::Debug for BatchingAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchingAtom")
            .field("max_batch_size", &self.max_batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("closed", &self.shared.closed.load(Ordering::SeqCst))
            .field("stats", &self.stats())
            .finish()
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let msg = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("batch handler panicked: {msg}")
}
