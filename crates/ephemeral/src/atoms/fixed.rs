//! `FixedWorkAtom<T>`: a work queue with a fixed concurrency cap.

use crate::outcome::Outcome;
use crate::{
    EnqueueError, Operation, OperationId, OperationSnapshot, Options, Stats, WorkCoordinator,
};
use std::fmt;
use std::future::Future;

/// A work queue with a fixed concurrency cap: at most `max_concurrency` bodies run at once.
///
/// The simplest atom: a [`WorkCoordinator`] with one knob. Use
/// [`with_options`](Self::with_options) for the rest of [`Options`] (its `max_concurrency` is
/// the cap). The handle is a cheap `Clone`.
///
/// ```
/// use ephemeral::atoms::FixedWorkAtom;
/// use ephemeral::Operation;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let resizer = FixedWorkAtom::new(
///         |image: u32, _op: Operation| async move { println!("resizing image {image}") },
///         2,
///     );
///     for image in 0..5 {
///         resizer.enqueue(image).await.unwrap();
///     }
///     resizer.drain().await;
///     assert_eq!(resizer.stats().completed, 5);
/// }
/// ```
///
/// # Panics
///
/// The constructors panic outside a tokio runtime and on invalid options (a zero
/// `max_concurrency`).
pub struct FixedWorkAtom<T: Send + 'static> {
    coordinator: WorkCoordinator<T>,
}

impl<T: Send + 'static> Clone for FixedWorkAtom<T> {
    fn clone(&self) -> Self {
        FixedWorkAtom {
            coordinator: self.coordinator.clone(),
        }
    }
}

impl<T: Send + 'static> FixedWorkAtom<T> {
    /// An atom running `body` for every item, at most `max_concurrency` at once (the other
    /// options at their defaults).
    ///
    /// ```
    /// use ephemeral::atoms::FixedWorkAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = FixedWorkAtom::new(|_n: u32, _op| async {}, 4);
    ///     assert_eq!(atom.coordinator().max_concurrency(), 4);
    /// }
    /// ```
    #[track_caller]
    pub fn new<F, Fut>(body: F, max_concurrency: usize) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        Self::with_options(body, Options::default().max_concurrency(max_concurrency))
    }

    /// An atom with full [`Options`]; the cap is `options`' `max_concurrency`.
    ///
    /// ```
    /// use ephemeral::atoms::FixedWorkAtom;
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = FixedWorkAtom::with_options(
    ///         |_n: u32, _op| async {},
    ///         Options::default().max_concurrency(3).name("thumbnails"),
    ///     );
    ///     assert_eq!(atom.coordinator().name(), Some("thumbnails"));
    /// }
    /// ```
    #[track_caller]
    pub fn with_options<F, Fut>(body: F, options: Options) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        FixedWorkAtom {
            coordinator: WorkCoordinator::new(body, options),
        }
    }

    /// Adds an item, waiting for queue room; returns its operation's id.
    ///
    /// # Errors
    ///
    /// As [`WorkCoordinator::enqueue`]: the item comes back inside [`EnqueueError`].
    ///
    /// ```
    /// use ephemeral::atoms::FixedWorkAtom;
    /// use ephemeral::EnqueueError;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = FixedWorkAtom::new(|_n: u32, _op| async {}, 1);
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    ///     assert!(matches!(atom.enqueue(2).await, Err(EnqueueError::Closed(2))));
    /// }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued (it is
    /// dropped with the future).
    pub async fn enqueue(&self, item: T) -> Result<OperationId, EnqueueError<T>> {
        self.coordinator.enqueue(item).await
    }

    /// Stops intake ([`complete`](WorkCoordinator::complete)), then waits until every
    /// accepted item has run ([`drain`](WorkCoordinator::drain)).
    ///
    /// ```
    /// use ephemeral::atoms::FixedWorkAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = FixedWorkAtom::new(|_n: u32, _op| async {}, 2);
    ///     atom.enqueue(7).await.unwrap();
    ///     atom.drain().await;
    ///     assert!(atom.coordinator().is_drained());
    /// }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: intake stops when the future is first polled; dropping it afterwards only stops
    /// the waiting, and accepted items still run.
    pub async fn drain(&self) {
        self.coordinator.complete();
        self.coordinator.drain().await;
    }

    /// Every operation in the coordinator's window, in start order.
    ///
    /// ```
    /// use ephemeral::atoms::FixedWorkAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = FixedWorkAtom::new(|_n: u32, _op| async {}, 2);
    ///     atom.enqueue(7).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.snapshot().len(), 1);
    /// }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Vec<OperationSnapshot> {
        self.coordinator.snapshot()
    }

    /// The coordinator's counters.
    ///
    /// ```
    /// use ephemeral::atoms::FixedWorkAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = FixedWorkAtom::new(|_n: u32, _op| async {}, 2);
    ///     atom.enqueue(7).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.stats().enqueued, 1);
    /// }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.coordinator.stats()
    }

    /// The wrapped coordinator (signals, pause, cancel, the window).
    ///
    /// ```
    /// use ephemeral::atoms::FixedWorkAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = FixedWorkAtom::new(|_n: u32, _op| async {}, 2);
    ///     atom.coordinator().pause();
    ///     assert!(atom.coordinator().is_paused());
    /// }
    /// ```
    #[must_use]
    pub fn coordinator(&self) -> &WorkCoordinator<T> {
        &self.coordinator
    }
}

impl<T: Send + 'static> fmt::Debug for FixedWorkAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedWorkAtom")
            .field("coordinator", &self.coordinator)
            .finish()
    }
}
