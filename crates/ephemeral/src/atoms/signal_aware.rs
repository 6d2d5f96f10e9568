//! `SignalAwareAtom<T>`: work that steps aside while ambient signals say so.

use crate::outcome::Outcome;
use crate::{
    EnqueueError, Operation, OperationId, OperationSnapshot, Options, SignalEvent, SignalSink,
    Stats, WorkCoordinator,
};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A work queue that refuses or holds work while ambient signals say so.
///
/// The signals live in a [`SignalSink`]: the one set by [`Options::signals`], or, without one,
/// the atom's own [`SignalSink::default()`] (1000 events, one minute each). Anything may
/// [`raise`](Self::raise) on it (or on a clone of [`sink`](Self::sink)); bodies' signals land
/// there too.
///
/// * while a `cancel_on` pattern matches a live signal, [`enqueue`](Self::enqueue) returns
///   [`EnqueueError::Rejected`] (and queued items are dropped as cancelled);
/// * while a `defer_on` pattern matches one, starts wait (re-checked every
///   [`Options::defer_check_interval`], at most [`Options::max_defer_attempts`] times).
///
/// The patterns extend the options' own `cancel_on_signals` / `defer_on_signals`. Ambient
/// signals leave with the sink's `max_age` and capacity (the .NET original's set grew for
/// ever). The handle is a cheap `Clone`.
///
/// ```
/// use ephemeral::atoms::SignalAwareAtom;
/// use ephemeral::{EnqueueError, Options, SignalSink};
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let atom = SignalAwareAtom::new(
///         |order: u32, _op| async move { println!("shipping order {order}") },
///         ["maintenance"],
///         ["slow-down"],
///         Options::default().signals(SignalSink::new(100, Duration::from_secs(5))),
///     );
///     atom.raise("maintenance");
///     assert!(matches!(atom.enqueue(1).await, Err(EnqueueError::Rejected(1))));
///     tokio::time::sleep(Duration::from_secs(6)).await; // the signal ages out
///     atom.enqueue(1).await.unwrap();
///     atom.drain().await;
///     assert_eq!(atom.stats().completed, 1);
/// }
/// ```
///
/// # Panics
///
/// The constructor panics outside a tokio runtime and on invalid options.
pub struct SignalAwareAtom<T: Send + 'static> {
    coordinator: WorkCoordinator<T>,
    sink: SignalSink,
}

impl<T: Send + 'static> Clone for SignalAwareAtom<T> {
    fn clone(&self) -> Self {
        SignalAwareAtom {
            coordinator: self.coordinator.clone(),
            sink: self.sink.clone(),
        }
    }
}

impl<T: Send + 'static> SignalAwareAtom<T> {
    /// An atom running `body`, refusing work while a `cancel_on` pattern matches a live
    /// signal of its sink and holding starts while a `defer_on` pattern does.
    ///
    /// ```
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let no_patterns: [&str; 0] = [];
    ///     let atom = SignalAwareAtom::new(|_n: u32, _op| async {}, ["halt"], no_patterns, Options::default());
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    /// }
    /// ```
    #[track_caller]
    pub fn new<F, Fut>(
        body: F,
        cancel_on: impl IntoIterator<Item = impl Into<String>>,
        defer_on: impl IntoIterator<Item = impl Into<String>>,
        options: Options,
    ) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let (sink, options) = match options.signal_sink() {
            Some(sink) => (sink.clone(), options),
            None => {
                let sink = SignalSink::default();
                (sink.clone(), options.signals(sink))
            }
        };
        let options = options.extend_signal_gates(
            cancel_on.into_iter().map(Into::into).collect(),
            defer_on.into_iter().map(Into::into).collect(),
        );
        SignalAwareAtom {
            coordinator: WorkCoordinator::new(body, options),
            sink,
        }
    }

    /// Raises `signal` on the atom's sink (it stays live for the sink's `max_age`).
    ///
    /// ```
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = SignalAwareAtom::new(|_n: u32, _op| async {}, ["halt"], ["busy"], Options::default());
    ///     let event = atom.raise("busy");
    ///     assert_eq!(event.signal(), "busy");
    ///     assert!(atom.sink().detect("busy"));
    /// }
    /// ```
    pub fn raise(&self, signal: impl Into<Arc<str>>) -> SignalEvent {
        self.sink.raise(signal)
    }

    /// The sink the atom reads (the options' or its own).
    ///
    /// ```
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::{Options, SignalSink};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let shared = SignalSink::default();
    ///     let atom = SignalAwareAtom::new(
    ///         |_n: u32, _op| async {}, ["halt"], ["busy"], Options::default().signals(shared.clone()),
    ///     );
    ///     assert!(atom.sink().same_sink(&shared));
    /// }
    /// ```
    #[must_use]
    pub fn sink(&self) -> &SignalSink {
        &self.sink
    }

    /// Adds an item, waiting for queue room; returns its operation's id.
    ///
    /// # Errors
    ///
    /// [`EnqueueError::Rejected`] while a `cancel_on` pattern matches a live signal,
    /// [`EnqueueError::Closed`] after [`drain`](Self::drain); the item comes back inside.
    ///
    /// ```
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::{EnqueueError, Options};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = SignalAwareAtom::new(|_n: u32, _op| async {}, ["halt"], ["busy"], Options::default());
    ///     atom.raise("halt");
    ///     assert!(matches!(atom.enqueue(1).await, Err(EnqueueError::Rejected(1))));
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

    /// Stops intake, then waits until every accepted item has run (or was dropped by a
    /// `cancel_on` signal).
    ///
    /// ```
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = SignalAwareAtom::new(|_n: u32, _op| async {}, ["halt"], ["busy"], Options::default());
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.stats().completed, 1);
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
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = SignalAwareAtom::new(|_n: u32, _op| async {}, ["halt"], ["busy"], Options::default());
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.snapshot().len(), 1);
    /// }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Vec<OperationSnapshot> {
        self.coordinator.snapshot()
    }

    /// The coordinator's counters (`deferred` shows starts held by a `defer_on` signal).
    ///
    /// ```
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = SignalAwareAtom::new(|_n: u32, _op| async {}, ["halt"], ["busy"], Options::default());
    ///     assert_eq!(atom.stats().deferred, 0);
    /// }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.coordinator.stats()
    }

    /// The wrapped coordinator.
    ///
    /// ```
    /// use ephemeral::atoms::SignalAwareAtom;
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = SignalAwareAtom::new(|_n: u32, _op| async {}, ["halt"], ["busy"], Options::default());
    ///     assert!(!atom.coordinator().is_completed());
    /// }
    /// ```
    #[must_use]
    pub fn coordinator(&self) -> &WorkCoordinator<T> {
        &self.coordinator
    }
}

impl<T: Send + 'static> fmt::Debug for SignalAwareAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalAwareAtom")
            .field("coordinator", &self.coordinator)
            .field("sink", &self.sink)
            .finish()
    }
}
