//! `RetryAtom<T>` and `RetryPolicy`: run a body up to N times per item, with a backoff.

use crate::outcome::Outcome;
use crate::{
    BoxError, EnqueueError, Operation, OperationId, OperationSnapshot, Options, Stats,
    WorkCoordinator,
};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

type Backoff = Arc<dyn Fn(u32) -> Duration + Send + Sync>;

/// How often, and how patiently, a [`RetryAtom`] tries an item.
///
/// `max_attempts` counts every run of the body, the first included. The backoff is the wait
/// after the n-th failed attempt (default `50 ms × n`). A cheap `Clone`.
///
/// ```
/// use ephemeral::atoms::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new(4).backoff(|n| Duration::from_millis(100) * 2u32.pow(n - 1));
/// assert_eq!(policy.max_attempts(), 4);
/// assert_eq!(policy.wait_after(3), Duration::from_millis(400));
/// assert_eq!(RetryPolicy::new(3).wait_after(2), Duration::from_millis(100));
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff: Backoff,
}

impl RetryPolicy {
    /// At most `max_attempts` runs per item, with the default backoff (`50 ms × n`).
    ///
    /// ```
    /// use ephemeral::atoms::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new(3).max_attempts(), 3);
    /// ```
    ///
    /// # Panics
    ///
    /// If `max_attempts` is 0 (an item must run at least once).
    #[must_use]
    #[track_caller]
    pub fn new(max_attempts: u32) -> Self {
        assert!(
            max_attempts > 0,
            "RetryPolicy::new: max_attempts must be at least 1 (it counts the first attempt)"
        );
        RetryPolicy {
            max_attempts,
            backoff: Arc::new(|n| Duration::from_millis(50).saturating_mul(n)),
        }
    }

    /// Sets the wait after the n-th failed attempt (n = 1, 2, …).
    ///
    /// ```
    /// use ephemeral::atoms::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new(5).backoff(|_| Duration::from_secs(1));
    /// assert_eq!(policy.wait_after(4), Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn backoff(mut self, backoff: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        self.backoff = Arc::new(backoff);
        self
    }

    /// The most runs of the body per item.
    ///
    /// ```
    /// use ephemeral::atoms::RetryPolicy;
    ///
    /// assert_eq!(RetryPolicy::new(2).max_attempts(), 2);
    /// ```
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after the `n`-th failed attempt.
    ///
    /// ```
    /// use ephemeral::atoms::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// assert_eq!(RetryPolicy::new(3).wait_after(1), Duration::from_millis(50));
    /// ```
    #[must_use]
    pub fn wait_after(&self, n: u32) -> Duration {
        (self.backoff)(n)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// A work queue that retries: the body runs up to [`RetryPolicy::max_attempts`] times per
/// item, waiting the policy's backoff between attempts.
///
/// * Before retry k (k = 2, 3, …) the operation emits `retry:<k>`.
/// * The item counts once: completed when an attempt succeeds, failed (with the **last**
///   attempt's error as the operation's error) when every attempt failed.
/// * A cancelled token ([`Operation::token`], cancelled by
///   [`cancel`](WorkCoordinator::cancel) or a parent token) stops retrying at once, also in
///   the middle of a backoff wait: the item fails with the last error.
/// * A panicking body is not retried: the operation fails as a panic, as on any coordinator.
///
/// Every attempt gets a clone of the item (`T: Clone`) and the same [`Operation`]. The handle
/// is a cheap `Clone`.
///
/// ```
/// use ephemeral::atoms::{RetryAtom, RetryPolicy};
/// use ephemeral::{Operation, Options, SignalSource};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let calls = Arc::new(AtomicU32::new(0));
///     let seen = calls.clone();
///     let uploader = RetryAtom::new(
///         move |file: String, _op: Operation| {
///             let attempt = seen.fetch_add(1, Ordering::SeqCst) + 1;
///             async move {
///                 println!("uploading {file}, attempt {attempt}");
///                 if attempt < 3 { Err("connection reset") } else { Ok(()) }
///             }
///         },
///         RetryPolicy::new(5),
///         Options::default(),
///     );
///     uploader.enqueue("report.pdf".to_string()).await.unwrap();
///     uploader.drain().await;
///     assert_eq!(calls.load(Ordering::SeqCst), 3);
///     assert_eq!(uploader.stats().completed, 1);
///     assert!(uploader.coordinator().has_signal("retry:3"));
/// }
/// ```
///
/// # Panics
///
/// The constructor panics outside a tokio runtime and on invalid options.
pub struct RetryAtom<T: Clone + Send + 'static> {
    coordinator: WorkCoordinator<T>,
    policy: RetryPolicy,
}

impl<T: Clone + Send + 'static> Clone for RetryAtom<T> {
    fn clone(&self) -> Self {
        RetryAtom {
            coordinator: self.coordinator.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<T: Clone + Send + 'static> RetryAtom<T> {
    /// An atom running `body` per item under `policy`.
    ///
    /// ```
    /// use ephemeral::atoms::{RetryAtom, RetryPolicy};
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let atom = RetryAtom::new(
    ///         |_n: u32, _op| async { Err::<(), _>("always fails") },
    ///         RetryPolicy::new(2),
    ///         Options::default(),
    ///     );
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.stats().failed, 1);
    /// }
    /// ```
    #[track_caller]
    pub fn new<F, Fut>(body: F, policy: RetryPolicy, options: Options) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let body = Arc::new(body);
        let run_policy = policy.clone();
        let wrapped = move |item: T, op: Operation| {
            let body = body.clone();
            let policy = run_policy.clone();
            async move {
                let mut attempt: u32 = 1;
                loop {
                    let error: BoxError = match body(item.clone(), op.clone()).await.into_result() {
                        Ok(()) => return Ok(()),
                        Err(e) => e,
                    };
                    if attempt >= policy.max_attempts || op.is_cancelled() {
                        return Err(error);
                    }
                    let wait = policy.wait_after(attempt);
                    tokio::select! {
                        biased;
                        () = op.token().cancelled() => return Err(error),
                        () = tokio::time::sleep(wait) => {}
                    }
                    attempt += 1;
                    op.emit(format!("retry:{attempt}"));
                }
            }
        };
        RetryAtom {
            coordinator: WorkCoordinator::new(wrapped, options),
            policy,
        }
    }

    /// The policy the atom applies.
    ///
    /// ```
    /// use ephemeral::atoms::{RetryAtom, RetryPolicy};
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = RetryAtom::new(|_n: u32, _op| async {}, RetryPolicy::new(3), Options::default());
    ///     assert_eq!(atom.policy().max_attempts(), 3);
    /// }
    /// ```
    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Adds an item, waiting for queue room; returns its operation's id.
    ///
    /// # Errors
    ///
    /// As [`WorkCoordinator::enqueue`]: the item comes back inside [`EnqueueError`].
    ///
    /// ```
    /// use ephemeral::atoms::{RetryAtom, RetryPolicy};
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = RetryAtom::new(|_n: u32, _op| async {}, RetryPolicy::new(3), Options::default());
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.stats().completed, 1);
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

    /// Stops intake, then waits until every accepted item succeeded or used up its attempts.
    ///
    /// ```
    /// use ephemeral::atoms::{RetryAtom, RetryPolicy};
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = RetryAtom::new(|_n: u32, _op| async {}, RetryPolicy::new(3), Options::default());
    ///     atom.drain().await;
    ///     assert!(atom.coordinator().is_completed());
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

    /// Every operation in the coordinator's window (one per item, not per attempt).
    ///
    /// ```
    /// use ephemeral::atoms::{RetryAtom, RetryPolicy};
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = RetryAtom::new(|_n: u32, _op| async {}, RetryPolicy::new(3), Options::default());
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.snapshot().len(), 1);
    /// }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Vec<OperationSnapshot> {
        self.coordinator.snapshot()
    }

    /// The coordinator's counters (an item counts once, however many attempts it took).
    ///
    /// ```
    /// use ephemeral::atoms::{RetryAtom, RetryPolicy};
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = RetryAtom::new(|_n: u32, _op| async {}, RetryPolicy::new(3), Options::default());
    ///     assert_eq!(atom.stats().failed, 0);
    /// }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.coordinator.stats()
    }

    /// The wrapped coordinator (its window holds the `retry:<k>` signals).
    ///
    /// ```
    /// use ephemeral::atoms::{RetryAtom, RetryPolicy};
    /// use ephemeral::Options;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = RetryAtom::new(|_n: u32, _op| async {}, RetryPolicy::new(3), Options::default());
    ///     assert_eq!(atom.coordinator().total_enqueued(), 0);
    /// }
    /// ```
    #[must_use]
    pub fn coordinator(&self) -> &WorkCoordinator<T> {
        &self.coordinator
    }
}

impl<T: Clone + Send + 'static> fmt::Debug for RetryAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryAtom")
            .field("coordinator", &self.coordinator)
            .field("policy", &self.policy)
            .finish()
    }
}
