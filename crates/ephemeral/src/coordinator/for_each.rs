//! One-shot bounded parallel processing with tracking.

use super::engine::{Shared, SourceOutcome};
use super::error::Cancelled;
use super::keyed::KeyedWorkCoordinator;
use super::scheduler::Intake;
use super::work::WorkCoordinator;
use crate::outcome::Outcome;
use crate::{Operation, OperationSnapshot, Options};
use futures_util::{Stream, StreamExt};
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use tokio_util::sync::CancellationToken;

/// What a one-shot run came to.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Summary {
    /// Bodies that returned `Ok`.
    pub completed: u64,
    /// Bodies that returned `Err` or panicked.
    pub failed: u64,
    /// Items never started: refused while a `cancel_on_signals` signal was present, or queued
    /// when one appeared. `completed + failed + cancelled` is the number of items read.
    pub cancelled: u64,
    /// The final window (metadata only).
    pub snapshot: Vec<OperationSnapshot>,
}

/// Runs `body` for every item, at most `options.max_concurrency` at once, and waits for all.
///
/// Body failures do not fail the call: they are counted in the [`Summary`] and visible in its
/// window snapshot (and through `on_sample`). Cancelling the options'
/// [`cancellation_token`](Options::cancellation_token) ends the run with `Err(Cancelled)`, after
/// every started body has returned (bodies see the token through [`Operation::token`]); items
/// not started by then are dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{for_each, Options};
///
/// let summary = for_each(
///     1..=10u32,
///     |n, _op| async move { if n == 7 { Err("unlucky") } else { Ok(()) } },
///     Options::default().max_concurrency(4),
/// )
/// .await
/// .unwrap();
/// assert_eq!((summary.completed, summary.failed), (9, 1));
/// # }
/// ```
///
/// # Errors
///
/// [`Cancelled`] if the options' token was cancelled (also before the call).
///
/// # Panics
///
/// Outside a tokio runtime, or on invalid options.
///
/// # Cancel safety
///
/// Not cancel safe: if the future is dropped, no further items are read and the summary is lost,
/// but items already accepted still run in the background (dropping the coordinator completes it).
/// Cancel the options' token instead to stop the work and get `Err(Cancelled)`.
pub async fn for_each<T, I, F, Fut>(
    items: I,
    body: F,
    options: Options,
) -> Result<Summary, Cancelled>
where
    T: Send + 'static,
    I: IntoIterator<Item = T>,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    for_each_stream(futures_util::stream::iter(items), body, options).await
}

/// [`for_each`] over a [`Stream`].
///
/// # Errors
///
/// [`Cancelled`] if the options' token was cancelled.
///
/// # Cancel safety
///
/// Not cancel safe: if the future is dropped, no further items are read and the summary is lost,
/// but items already accepted still run in the background (dropping the coordinator completes it).
/// Cancel the options' token instead to stop the work and get `Err(Cancelled)`.
pub async fn for_each_stream<T, St, F, Fut>(
    items: St,
    body: F,
    options: Options,
) -> Result<Summary, Cancelled>
where
    T: Send + 'static,
    St: Stream<Item = T>,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    let token = options.cancellation_token.clone();
    if token.as_ref().is_some_and(|t| t.is_cancelled()) {
        return Err(Cancelled);
    }
    let c = WorkCoordinator::new(body, options);
    drive(&c.shared, |_| (), items, token.as_ref()).await
}

/// [`for_each`] with per-key order: items of one key run in order, at most
/// `max_concurrency_per_key` at a time (see [`KeyedWorkCoordinator`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{for_each_keyed, Options};
///
/// let commands = vec![("alice", 1), ("bob", 1), ("alice", 2)];
/// let summary = for_each_keyed(
///     commands,
///     |(user, _)| *user,
///     |_cmd, _op| async { Ok::<_, std::io::Error>(()) },
///     Options::default().max_concurrency(8),
/// )
/// .await
/// .unwrap();
/// assert_eq!(summary.completed, 3);
/// # }
/// ```
///
/// # Errors
///
/// [`Cancelled`] if the options' token was cancelled.
///
/// # Cancel safety
///
/// Not cancel safe: if the future is dropped, no further items are read and the summary is lost,
/// but items already accepted still run in the background (dropping the coordinator completes it).
/// Cancel the options' token instead to stop the work and get `Err(Cancelled)`.
pub async fn for_each_keyed<T, K, I, KF, F, Fut>(
    items: I,
    key_fn: KF,
    body: F,
    options: Options,
) -> Result<Summary, Cancelled>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    I: IntoIterator<Item = T>,
    KF: Fn(&T) -> K + Send + Sync + 'static,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    for_each_keyed_stream(futures_util::stream::iter(items), key_fn, body, options).await
}

/// [`for_each_keyed`] over a [`Stream`].
///
/// # Errors
///
/// [`Cancelled`] if the options' token was cancelled.
///
/// # Cancel safety
///
/// Not cancel safe: if the future is dropped, no further items are read and the summary is lost,
/// but items already accepted still run in the background (dropping the coordinator completes it).
/// Cancel the options' token instead to stop the work and get `Err(Cancelled)`.
pub async fn for_each_keyed_stream<T, K, St, KF, F, Fut>(
    items: St,
    key_fn: KF,
    body: F,
    options: Options,
) -> Result<Summary, Cancelled>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + Display + Send + Sync + 'static,
    St: Stream<Item = T>,
    KF: Fn(&T) -> K + Send + Sync + 'static,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    let token = options.cancellation_token.clone();
    if token.as_ref().is_some_and(|t| t.is_cancelled()) {
        return Err(Cancelled);
    }
    let c = KeyedWorkCoordinator::new(key_fn, body, options);
    let key_fn = c.key_fn.clone();
    drive(&c.shared, move |item| key_fn(item), items, token.as_ref()).await
}

/// The next item, or `None` once the stream ends or `token` is cancelled (a stalled stream must
/// not keep a cancelled run waiting).
async fn next_item<St: Stream + Unpin>(
    items: &mut St,
    token: Option<&CancellationToken>,
) -> Option<St::Item> {
    match token {
        Some(token) => tokio::select! {
            biased;
            () = token.cancelled() => None,
            item = items.next() => item,
        },
        None => items.next().await,
    }
}

/// Feeds `items` to a coordinator's engine, completes it, drains it and sums up.
async fn drive<T, I, St>(
    shared: &Shared<T, I, ()>,
    key_of: impl Fn(&T) -> I::Key,
    items: St,
    token: Option<&CancellationToken>,
) -> Result<Summary, Cancelled>
where
    T: Send + 'static,
    I: Intake<T>,
    St: Stream<Item = T>,
{
    let mut items = std::pin::pin!(items);
    while let Some(item) = next_item(&mut items, token).await {
        // Every item read is run or counted as cancelled: the reader waits for queue room
        // and for its key's room, and an item refused by a cancel-on signal is counted.
        if shared.enqueue_from_source(item, &key_of).await == SourceOutcome::Closed {
            break;
        }
    }
    shared.complete();
    shared.drain().await;
    if token.is_some_and(CancellationToken::is_cancelled) {
        return Err(Cancelled);
    }
    let stats = shared.stats();
    Ok(Summary {
        completed: stats.completed,
        failed: stats.failed,
        cancelled: stats.cancelled,
        snapshot: shared.snapshot_where(|_| true),
    })
}
