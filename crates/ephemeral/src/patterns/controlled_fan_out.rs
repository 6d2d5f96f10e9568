//! [`ControlledFanOut`]: fan work out with a global cap and a per-key cap.

use crate::outcome::Outcome;
use crate::{EnqueueError, KeyedWorkCoordinator, Operation, OperationId, Options};
use std::fmt::{self, Display};
use std::future::Future;
use std::hash::Hash;

/// Fans items out over a [`KeyedWorkCoordinator`]: at most `max_global` bodies at once in
/// all, and at most `per_key` at once for any one key (ready keys are served round-robin).
///
/// ```
/// use ephemeral::patterns::ControlledFanOut;
/// use ephemeral::Operation;
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let fetches = ControlledFanOut::new(
///         |url: &(&'static str, u32)| url.0, // the host is the key
///         |url: (&'static str, u32), _op: Operation| async move {
///             tokio::time::sleep(Duration::from_millis(100)).await;
///             println!("fetched {}/page/{}", url.0, url.1);
///         },
///         4, // at most 4 fetches at once in all
///         2, // at most 2 per host
///     );
///     for page in 0..3 {
///         for host in ["a.example", "b.example", "c.example"] {
///             fetches.enqueue((host, page)).await.unwrap();
///         }
///     }
///     fetches.drain().await;
///     assert_eq!(fetches.coordinator().total_completed(), 9);
/// }
/// ```
pub struct ControlledFanOut<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    coordinator: KeyedWorkCoordinator<K, T>,
}

impl<K, T> Clone for ControlledFanOut<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    fn clone(&self) -> Self {
        ControlledFanOut {
            coordinator: self.coordinator.clone(),
        }
    }
}

impl<K, T> ControlledFanOut<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    /// A fan-out where `key_fn` picks each item's key and `body` runs it, at most
    /// `max_global` at once in all and `per_key` at once per key.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if `max_global` or `per_key` is 0.
    #[track_caller]
    pub fn new<KF, F, Fut>(key_fn: KF, body: F, max_global: usize, per_key: usize) -> Self
    where
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let options = Options::default()
            .max_concurrency(max_global)
            .max_concurrency_per_key(per_key)
            .name("controlled-fan-out");
        ControlledFanOut {
            coordinator: KeyedWorkCoordinator::new(key_fn, body, options),
        }
    }

    /// Enqueues `item` (waits for queue room), as [`KeyedWorkCoordinator::enqueue`].
    ///
    /// # Errors
    ///
    /// [`EnqueueError`] as [`KeyedWorkCoordinator::enqueue`], with the item handed back.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued (it is
    /// dropped with the future).
    pub async fn enqueue(&self, item: T) -> Result<OperationId, EnqueueError<T>> {
        self.coordinator.enqueue(item).await
    }

    /// Stops accepting items and waits until every accepted one has finished.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: intake stops when the future is first polled; dropping it afterwards only stops
    /// the waiting, and accepted items still run.
    pub async fn drain(&self) {
        self.coordinator.complete();
        self.coordinator.drain().await;
    }

    /// The keyed coordinator behind it (stats, snapshots, signals).
    #[must_use]
    pub fn coordinator(&self) -> &KeyedWorkCoordinator<K, T> {
        &self.coordinator
    }
}

impl<K, T> fmt::Debug for ControlledFanOut<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlledFanOut")
            .field("coordinator", &self.coordinator)
            .finish()
    }
}
