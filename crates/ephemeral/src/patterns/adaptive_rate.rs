//! [`parse_retry_after`] and [`AdaptiveRate`]: back off while a `rate-limit:<n>ms` signal is fresh.

use crate::outcome::Outcome;
use crate::{
    EnqueueError, Operation, OperationId, Options, SignalSink, SignalSource, WorkCoordinator,
};
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

/// The prefix of the signals [`AdaptiveRate`] obeys.
const PREFIX: &str = "rate-limit:";

/// Reads the delay out of a `rate-limit:<n>ms` signal name.
///
/// The part after the first `:`, trimmed, must be a non-negative integer (ASCII digits only,
/// no sign) immediately followed by `ms` in any case; the part before the `:` is not checked.
/// Anything else, including a number too large for a `u64`, returns `None`.
///
/// ```
/// use ephemeral::patterns::parse_retry_after;
/// use std::time::Duration;
///
/// assert_eq!(parse_retry_after("rate-limit:250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_retry_after("rate-limit: 40MS "), Some(Duration::from_millis(40)));
/// assert_eq!(parse_retry_after("rate-limit:-5ms"), None);
/// assert_eq!(parse_retry_after("rate-limit:5s"), None);
/// assert_eq!(parse_retry_after("rate-limit"), None);
/// ```
#[must_use]
pub fn parse_retry_after(signal: &str) -> Option<Duration> {
    let (_, rest) = signal.split_once(':')?;
    let rest = rest.trim();
    let split = rest.len().checked_sub(2)?;
    let (number, unit) = (rest.get(..split)?, rest.get(split..)?);
    if !unit.eq_ignore_ascii_case("ms")
        || number.is_empty()
        || !number.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    number.parse::<u64>().ok().map(Duration::from_millis)
}

/// A [`WorkCoordinator`] whose [`enqueue`](Self::enqueue) backs off while a fresh
/// `rate-limit:<n>ms` signal is present.
///
/// A body that hits a rate limit emits `rate-limit:<n>ms` (see [`parse_retry_after`]); any
/// code may also raise one on the sink given in the options. `enqueue` first waits while such
/// a signal raised less than `n` ms ago is present in the coordinator's window or in its sink
/// (the newest such signal decides, so a later `rate-limit:0ms` lifts an earlier long one),
/// then enqueues. Ages follow tokio's clock ([`now`](crate::now())).
///
/// ```
/// use ephemeral::patterns::AdaptiveRate;
/// use ephemeral::{Operation, Options};
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let api = AdaptiveRate::new(
///         |request: u32, op: Operation| async move {
///             if request == 1 {
///                 op.emit("rate-limit:300ms"); // the server said "slow down"
///             }
///         },
///         Options::default().max_concurrency(1),
///     );
///     api.enqueue(1).await.unwrap();
///     tokio::time::sleep(Duration::from_millis(10)).await; // request 1 runs
///
///     let started = Instant::now();
///     api.enqueue(2).await.unwrap(); // waits out the rest of the 300 ms
///     let waited = started.elapsed();
///     println!("request 2 waited {waited:?}");
///     assert!(waited >= Duration::from_millis(290));
///
///     api.coordinator().complete();
///     api.coordinator().drain().await;
///     assert_eq!(api.coordinator().total_completed(), 2);
/// }
/// ```
pub struct AdaptiveRate<T: Send + 'static> {
    coordinator: WorkCoordinator<T>,
    sink: Option<SignalSink>,
}

impl<T: Send + 'static> Clone for AdaptiveRate<T> {
    fn clone(&self) -> Self {
        AdaptiveRate {
            coordinator: self.coordinator.clone(),
            sink: self.sink.clone(),
        }
    }
}

impl<T: Send + 'static> AdaptiveRate<T> {
    /// A coordinator running `body` with `options`, behind a rate-limit-aware `enqueue`.
    ///
    /// # Panics
    ///
    /// As [`WorkCoordinator::new`]: outside a tokio runtime or on invalid options.
    #[track_caller]
    pub fn new<F, Fut>(body: F, options: Options) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let sink = options.signal_sink().cloned();
        AdaptiveRate {
            coordinator: WorkCoordinator::new(body, options),
            sink,
        }
    }

    /// Waits while a fresh `rate-limit:<n>ms` signal is present (see the type's docs), then
    /// enqueues `item` as [`WorkCoordinator::enqueue`] does.
    ///
    /// # Errors
    ///
    /// [`EnqueueError`] as [`WorkCoordinator::enqueue`], with the item handed back.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves (while it waits out a rate limit or
    /// for queue room), the item was not enqueued.
    pub async fn enqueue(&self, item: T) -> Result<OperationId, EnqueueError<T>> {
        while let Some(wait) = self.current_delay() {
            tokio::time::sleep(wait).await;
        }
        self.coordinator.enqueue(item).await
    }

    /// How long `enqueue` would wait now: what is left of the newest `rate-limit:<n>ms`
    /// signal's `n` ms, or `None` when it is older than that (or there is none).
    #[must_use]
    pub fn current_delay(&self) -> Option<Duration> {
        // (timestamp, delay) of the newest rate-limit signal seen.
        let mut newest: Option<(std::time::SystemTime, Duration)> = None;
        let mut visit = |e: &crate::SignalEvent| {
            if e.signal().starts_with(PREFIX) {
                if let Some(delay) = parse_retry_after(e.signal()) {
                    if newest.is_none_or(|(t, _)| e.timestamp() >= t) {
                        newest = Some((e.timestamp(), delay));
                    }
                }
            }
            ControlFlow::Continue(())
        };
        self.coordinator.visit_signals(&mut visit);
        if let Some(sink) = &self.sink {
            sink.visit_signals(&mut visit);
        }
        let (raised, delay) = newest?;
        let age = crate::now()
            .duration_since(raised)
            .unwrap_or(Duration::ZERO);
        delay.checked_sub(age).filter(|left| !left.is_zero())
    }

    /// The coordinator behind it (for stats, signals, `complete`, `drain`, ...).
    #[must_use]
    pub fn coordinator(&self) -> &WorkCoordinator<T> {
        &self.coordinator
    }
}

impl<T: Send + 'static> fmt::Debug for AdaptiveRate<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveRate")
            .field("coordinator", &self.coordinator)
            .field("current_delay", &self.current_delay())
            .finish()
    }
}
