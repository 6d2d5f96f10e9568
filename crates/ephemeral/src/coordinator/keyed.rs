//! `KeyedWorkCoordinator<K, T>`: per-key order, fair across keys.

use super::core::{face, Core};
use super::error::{EnqueueError, TryEnqueueError};
use super::scheduler::Keyed;
use super::{common_methods, window_views};
use crate::outcome::Outcome;
use crate::{Operation, OperationId, OperationSnapshot, Options, SignalEvent, SignalSource};
use futures_util::Stream;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

type KeyFn<T, K> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// A work queue that keeps per-key order: sequential within an entity, parallel across them.
///
/// Every item has a key (from `key_fn`). Items of one key start in enqueue order, at most
/// [`Options::max_concurrency_per_key`] at a time; items of different keys run in parallel up
/// to [`Options::max_concurrency`]. The scheduler keeps a FIFO queue per key and one queue of
/// the items that may start now, which workers take from without a lock:
///
/// * **no head-of-line blocking**: an item whose key is idle starts as soon as a global slot
///   frees, however many items of busy keys wait ahead of it;
/// * **round-robin**: ready keys take turns, so a key with 10,000 queued items cannot starve a
///   key with one;
/// * **a per-key pending limit** (opt-in, [`Options::max_pending_per_key`]): `enqueue` and
///   `try_enqueue` return `KeyOverloaded(item)` for a key that already has that many items
///   pending (checked atomically with the insert); stream sources wait for the key's room;
/// * **idle keys cost nothing**: a key's state is removed the moment it has nothing pending or
///   running.
///
/// Everything else (counters, window, signals, pause, drain, cancel, dynamic concurrency) is as
/// on [`WorkCoordinator`](crate::WorkCoordinator); snapshots and signals carry the key's
/// `Display` form. Readers see each item in one state at a time: a key never shows more
/// operations running than its cap, and an item counts as pending until it shows as running.
///
/// Keys are told apart by `Eq`, not by their hash: keys with equal hashes (say, a `Hash` that
/// leaves out part of the key) keep their own order and still run in parallel, except that the
/// first time it happens one may wait for the other's running item.
///
/// The key's `Hash`, `Eq`, `Clone`, `Display` and `Drop` run under the coordinator's internal
/// locks: like `HashMap` keys, they must not call back into the coordinator or its
/// [`Operation`] handles, nor panic (a panicking `Display` is shown as a placeholder label).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{KeyedWorkCoordinator, Operation, Options};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Debug)]
/// struct Command { user: &'static str, seq: u32 }
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let seen = log.clone();
/// let commands = KeyedWorkCoordinator::new(
///     |cmd: &Command| cmd.user,
///     move |cmd: Command, _op: Operation| {
///         let seen = seen.clone();
///         async move {
///             seen.lock().unwrap().push((cmd.user, cmd.seq));
///             Ok::<_, std::io::Error>(())
///         }
///     },
///     Options::default().max_concurrency(8).max_concurrency_per_key(1),
/// );
/// for seq in 0..3 {
///     commands.enqueue(Command { user: "alice", seq }).await.unwrap();
///     commands.enqueue(Command { user: "bob", seq }).await.unwrap();
/// }
/// commands.complete();
/// commands.drain().await;
/// let log = log.lock().unwrap();
/// let alice: Vec<u32> = log.iter().filter(|(u, _)| *u == "alice").map(|(_, s)| *s).collect();
/// assert_eq!(alice, [0, 1, 2]);
/// # }
/// ```
///
/// # Panics
///
/// The constructors panic outside a tokio runtime and on invalid [`Options`].
// With one item per key and no fairness limit, an idle key's item is admitted without a lock,
// through a slot picked by its key's seeded hash (see `scheduler/keyed/fast_slots.rs`). Two
// different keys that share a slot and its tag while both have work (about one chance in 2^44
// for two given keys, or every time with a `Hash` that leaves out part of the key): the second
// waits for the first one's item, and from then on the coordinator tracks every key in its
// map, so equal hashes hold nobody back again.
pub struct KeyedWorkCoordinator<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    pub(super) shared: Core<T, Keyed<T, K>, ()>,
    pub(super) key_fn: KeyFn<T, K>,
}

impl<K, T> KeyedWorkCoordinator<K, T>
where
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    T: Send + 'static,
{
    /// A keyed coordinator: `key_fn` picks each item's key, `body` runs it.
    #[track_caller]
    pub fn new<KF, F, Fut>(key_fn: KF, body: F, options: Options) -> Self
    where
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let shared = Core::start(
            |o| {
                Keyed::new(
                    o.max_concurrency_per_key,
                    o.pending_limit_per_key(),
                    o.effective_queue_capacity(),
                )
            },
            options,
            body,
        );
        KeyedWorkCoordinator {
            shared,
            key_fn: Arc::new(key_fn),
        }
    }

    /// A keyed coordinator fed by `stream`; completes itself when the stream ends.
    ///
    /// Nothing read is lost, as with
    /// [`WorkCoordinator::from_stream`](crate::WorkCoordinator::from_stream); in addition,
    /// when a key already has [`Options::max_pending_per_key`] items pending, the reader
    /// waits until that key has room (a stream has no caller to hand the item back to), so
    /// a hot key slows the reading down instead of losing items.
    #[track_caller]
    pub fn from_stream<St, KF, F, Fut>(stream: St, key_fn: KF, body: F, options: Options) -> Self
    where
        St: Stream<Item = T> + Send + 'static,
        KF: Fn(&T) -> K + Send + Sync + 'static,
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let c = KeyedWorkCoordinator::new(key_fn, body, options);
        let key_fn = c.key_fn.clone();
        c.shared.feed(stream, move |item| key_fn(item));
        c
    }

    /// Adds an item, waiting while `queue_capacity` items are pending (in all keys).
    ///
    /// # Errors
    ///
    /// The item comes back inside [`EnqueueError`]: `Closed`, `Rejected`, or `KeyOverloaded`
    /// with fair scheduling on.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued.
    pub async fn enqueue(&self, item: T) -> Result<OperationId, EnqueueError<T>> {
        let key = (self.key_fn)(&item);
        self.shared.enqueue(item, key).await
    }

    /// [`enqueue`](Self::enqueue), returning a [`Completion`](crate::Completion): a future
    /// of this item's outcome (and its id).
    ///
    /// # Errors
    ///
    /// As [`enqueue`](Self::enqueue): the item comes back inside [`EnqueueError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued.
    pub async fn enqueue_with_handle(
        &self,
        item: T,
    ) -> Result<crate::Completion<()>, EnqueueError<T>> {
        let key = (self.key_fn)(&item);
        self.shared.enqueue_with_handle(item, key, |()| ()).await
    }

    /// Adds an item if there is room now; never waits.
    ///
    /// # Errors
    ///
    /// The item comes back inside [`TryEnqueueError`]: `Full`, `Closed`, `Rejected` or
    /// `KeyOverloaded`.
    pub fn try_enqueue(&self, item: T) -> Result<OperationId, TryEnqueueError<T>> {
        let key = (self.key_fn)(&item);
        self.shared.try_enqueue(item, key)
    }

    common_methods!();

    /// Items of `key` waiting to start (not yet shown as running).
    ///
    /// Exact. With the default one item per key and no fairness limit it costs about what a
    /// [`running`](Self::running) call does (it briefly holds every worker's lock, since
    /// workers take items without touching their key's state); otherwise one short lock.
    #[must_use]
    pub fn pending_count_for_key(&self, key: &K) -> usize {
        let intake = &self.shared.intake;
        if intake.takes_without_lock() {
            // Workers take and start an item under their slot's lock, without marking its
            // key: the slots say whether the key's admitted item has started.
            self.shared
                .with_started(|started| intake.pending_for(key, started))
        } else {
            intake.pending_for(key, |_| false)
        }
    }

    /// Keys with anything pending or running (idle keys are forgotten at once).
    #[must_use]
    pub fn active_keys(&self) -> usize {
        self.shared.intake.tracked_keys()
    }

    window_views!();

    /// The window's operations of `key`, in start order.
    #[must_use]
    pub fn snapshot_for_key(&self, key: &K) -> Vec<OperationSnapshot> {
        let label = key.to_string();
        self.shared
            .snapshot_where(|s| s.key() == Some(label.as_str()))
    }

    /// The window's signals raised by operations of `key` (the typed twin of
    /// [`SignalSource::signals_for_key`]).
    #[must_use]
    pub fn signals_for(&self, key: &K) -> Vec<SignalEvent> {
        self.signals_for_key(&key.to_string())
    }
}

face!(
    KeyedWorkCoordinator<K, T> { shared, key_fn }
    snapshot: snapshot,
    where K: Hash + Eq + Clone + Display + Send + Sync + 'static, T: Send + 'static
);
