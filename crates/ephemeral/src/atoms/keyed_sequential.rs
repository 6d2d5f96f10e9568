//! `KeyedSequentialAtom<K, T>`: one item at a time per key, keys in parallel.

use crate::outcome::Outcome;
use crate::{
    EnqueueError, KeyedWorkCoordinator, Operation, OperationId, OperationSnapshot, Options, Stats,
};
use std::fmt;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;

/// Sequential per key, parallel across keys: items of one key run one after another in
/// enqueue order, items of different keys run at once (up to `max_concurrency`).
///
/// A [`KeyedWorkCoordinator`] with a per-key cap of 1. With
/// [`with_options`](Self::with_options) the per-key cap
/// ([`Options::max_concurrency_per_key`]) and the per-key pending limit
/// ([`Options::max_pending_per_key`], reported by `enqueue` as
/// [`EnqueueError::KeyOverloaded`]) come from the options. The handle is a cheap `Clone`.
///
/// ```
/// use ephemeral::atoms::KeyedSequentialAtom;
/// use ephemeral::Operation;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let commands = KeyedSequentialAtom::new(
///         |cmd: &(&'static str, u32)| cmd.0,
///         |cmd: (&'static str, u32), _op: Operation| async move {
///             println!("{} runs command {}", cmd.0, cmd.1);
///         },
///         8,
///     );
///     for seq in 0..3 {
///         commands.enqueue(("alice", seq)).await.unwrap();
///         commands.enqueue(("bob", seq)).await.unwrap();
///     }
///     commands.drain().await;
///     assert_eq!(commands.stats().completed, 6);
/// }
/// ```
///
/// # Panics
///
/// The constructors panic outside a tokio runtime and on invalid options.
pub struct KeyedSequentialAtom<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    coordinator: KeyedWorkCoordinator<K, T>,
}

impl<K, T> Clone for KeyedSequentialAtom<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    fn clone(&self) -> Self {
        KeyedSequentialAtom {
            coordinator: self.coordinator.clone(),
        }
    }
}

impl<K, T> KeyedSequentialAtom<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    /// An atom keyed by `key_fn`, running one item per key at a time and at most
    /// `max_concurrency` in all.
    ///
    /// ```
    /// use ephemeral::atoms::KeyedSequentialAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = KeyedSequentialAtom::new(|n: &u32| n % 2, |_n: u32, _op| async {}, 4);
    ///     assert_eq!(atom.coordinator().max_concurrency(), 4);
    /// }
    /// ```
    #[track_caller]
    pub fn new<KF, F, Fut>(key_fn: KF, body: F, max_concurrency: usize) -> Self
    where
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        Self::with_options(
            key_fn,
            body,
            Options::default()
                .max_concurrency(max_concurrency)
                .max_concurrency_per_key(1),
        )
    }

    /// An atom with full [`Options`]: the per-key cap and the per-key pending limit are the
    /// options' own.
    ///
    /// ```
    /// use ephemeral::atoms::KeyedSequentialAtom;
    /// use ephemeral::{EnqueueError, Options};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = KeyedSequentialAtom::with_options(
    ///         |n: &u32| n % 2,
    ///         |_n: u32, _op| async {},
    ///         Options::default().max_pending_per_key(1),
    ///     );
    ///     atom.coordinator().pause();
    ///     atom.enqueue(2).await.unwrap();
    ///     assert!(matches!(atom.enqueue(4).await, Err(EnqueueError::KeyOverloaded(4))));
    ///     atom.coordinator().resume();
    ///     atom.drain().await;
    /// }
    /// ```
    #[track_caller]
    pub fn with_options<KF, F, Fut>(key_fn: KF, body: F, options: Options) -> Self
    where
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        KeyedSequentialAtom {
            coordinator: KeyedWorkCoordinator::new(key_fn, body, options),
        }
    }

    /// Adds an item, waiting for queue room; returns its operation's id.
    ///
    /// # Errors
    ///
    /// As [`KeyedWorkCoordinator::enqueue`]: `Closed`, `Rejected`, or `KeyOverloaded` when
    /// the key already has `max_pending_per_key` items pending.
    ///
    /// ```
    /// use ephemeral::atoms::KeyedSequentialAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = KeyedSequentialAtom::new(|s: &String| s.len(), |_s: String, _op| async {}, 2);
    ///     let id = atom.enqueue("hello".to_string()).await.unwrap();
    ///     atom.drain().await;
    ///     assert!(atom.coordinator().snapshot_of(id).is_some());
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

    /// Stops intake, then waits until every accepted item has run.
    ///
    /// ```
    /// use ephemeral::atoms::KeyedSequentialAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = KeyedSequentialAtom::new(|n: &u32| *n, |_n: u32, _op| async {}, 2);
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

    /// Every operation in the coordinator's window, in start order (with its key).
    ///
    /// ```
    /// use ephemeral::atoms::KeyedSequentialAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = KeyedSequentialAtom::new(|n: &u32| *n, |_n: u32, _op| async {}, 2);
    ///     atom.enqueue(1).await.unwrap();
    ///     atom.drain().await;
    ///     assert_eq!(atom.snapshot()[0].key(), Some("1"));
    /// }
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Vec<OperationSnapshot> {
        self.coordinator.snapshot()
    }

    /// The coordinator's counters.
    ///
    /// ```
    /// use ephemeral::atoms::KeyedSequentialAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = KeyedSequentialAtom::new(|n: &u32| *n, |_n: u32, _op| async {}, 2);
    ///     assert_eq!(atom.stats().enqueued, 0);
    /// }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.coordinator.stats()
    }

    /// The wrapped coordinator.
    ///
    /// ```
    /// use ephemeral::atoms::KeyedSequentialAtom;
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let atom = KeyedSequentialAtom::new(|n: &u32| *n, |_n: u32, _op| async {}, 2);
    ///     assert_eq!(atom.coordinator().active_keys(), 0);
    /// }
    /// ```
    #[must_use]
    pub fn coordinator(&self) -> &KeyedWorkCoordinator<K, T> {
        &self.coordinator
    }
}

impl<K, T> fmt::Debug for KeyedSequentialAtom<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedSequentialAtom")
            .field("coordinator", &self.coordinator)
            .finish()
    }
}
