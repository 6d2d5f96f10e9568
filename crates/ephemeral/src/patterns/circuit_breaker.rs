//! [`CircuitBreaker`]: open while recent failures reach a threshold.

use super::anomaly::recent_ages;
use crate::pattern::Pattern;
use crate::signal::SignalSink;
use std::fmt;
use std::time::Duration;

/// A circuit breaker over a sink's failure signals: open while at least `threshold` events
/// matching the failure pattern were raised within the last `window`.
///
/// There is no half-open state and nothing runs in the background: every call reads the sink,
/// so the breaker closes by itself as failures age out (on tokio's clock; an event counts
/// while its age is less than `window`). [`time_until_close`](Self::time_until_close) says
/// when that will be if no new failure arrives, and [`check`](Self::check) turns it into an
/// error carrying that wait. Cloning gives another breaker over the same sink.
///
/// ```
/// use ephemeral::patterns::CircuitBreaker;
/// use ephemeral::SignalSink;
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let sink = SignalSink::default();
///     let breaker = CircuitBreaker::new(&sink, "api.failed", 2, Duration::from_secs(30));
///     sink.raise("api.failed");
///     assert!(breaker.check().is_ok());
///
///     tokio::time::advance(Duration::from_secs(10)).await;
///     sink.raise("api.failed");
///     let open = breaker.check().unwrap_err();
///     // The first failure leaves the window in 20 s, and one failure is below the threshold.
///     assert_eq!(open.retry_after(), Duration::from_secs(20));
///     println!("{open}");
///
///     tokio::time::advance(open.retry_after()).await;
///     assert!(!breaker.is_open());
/// }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    sink: SignalSink,
    pattern: Pattern,
    threshold: usize,
    window: Duration,
}

impl CircuitBreaker {
    /// A breaker over `sink`'s events matching `failure_pattern`: open while at least
    /// `threshold` were raised within the last `window`.
    ///
    /// # Panics
    ///
    /// If `threshold` is 0 (the breaker could never close).
    ///
    /// ```
    /// use ephemeral::patterns::CircuitBreaker;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let breaker = CircuitBreaker::new(&sink, "payment.failed", 2, Duration::from_secs(10));
    ///     println!("{breaker:?}");
    ///     assert!(!breaker.is_open());
    /// }
    /// ```
    #[must_use]
    pub fn new(
        sink: &SignalSink,
        failure_pattern: impl Into<Pattern>,
        threshold: usize,
        window: Duration,
    ) -> CircuitBreaker {
        assert!(
            threshold > 0,
            "CircuitBreaker::new: threshold must be at least 1"
        );
        CircuitBreaker {
            sink: sink.clone(),
            pattern: failure_pattern.into(),
            threshold,
            window,
        }
    }

    /// How many failure events were raised within the last `window`.
    ///
    /// ```
    /// use ephemeral::patterns::CircuitBreaker;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let breaker = CircuitBreaker::new(&sink, "payment.failed", 2, Duration::from_secs(10));
    ///     sink.raise("payment.failed");
    ///     tokio::time::advance(Duration::from_secs(10)).await;
    ///     sink.raise("payment.failed");
    ///     assert_eq!(breaker.failure_count(), 1); // the first one left the window
    /// }
    /// ```
    #[must_use]
    pub fn failure_count(&self) -> usize {
        recent_ages(&self.sink, &self.pattern, self.window).len()
    }

    /// Whether [`failure_count`](Self::failure_count) has reached the threshold.
    ///
    /// ```
    /// use ephemeral::patterns::CircuitBreaker;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let breaker = CircuitBreaker::new(&sink, "payment.failed", 2, Duration::from_secs(10));
    ///     sink.raise("payment.failed");
    ///     sink.raise("payment.failed");
    ///     assert!(breaker.is_open());
    ///     tokio::time::advance(Duration::from_secs(10)).await;
    ///     assert!(!breaker.is_open());
    /// }
    /// ```
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.failure_count() >= self.threshold
    }

    /// `None` when closed; else how long until enough failures have aged out of the window for
    /// it to close, if no new failure arrives.
    ///
    /// ```
    /// use ephemeral::patterns::CircuitBreaker;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let breaker = CircuitBreaker::new(&sink, "payment.failed", 2, Duration::from_secs(10));
    ///     assert_eq!(breaker.time_until_close(), None);
    ///     sink.raise("payment.failed");
    ///     tokio::time::advance(Duration::from_secs(3)).await;
    ///     sink.raise("payment.failed");
    ///     sink.raise("payment.failed");
    ///     // Three failures, two of them raised now: it closes when those two leave.
    ///     assert_eq!(breaker.time_until_close(), Some(Duration::from_secs(10)));
    /// }
    /// ```
    #[must_use]
    pub fn time_until_close(&self) -> Option<Duration> {
        let mut ages = recent_ages(&self.sink, &self.pattern, self.window);
        if ages.len() < self.threshold {
            return None;
        }
        // Youngest first: it closes when the threshold-th youngest leaves the window.
        ages.sort_unstable();
        Some(self.window.saturating_sub(ages[self.threshold - 1]))
    }

    /// `Ok(())` when closed.
    ///
    /// # Errors
    ///
    /// [`CircuitOpen`] while open, with [`time_until_close`](Self::time_until_close) as its
    /// [`retry_after`](CircuitOpen::retry_after).
    ///
    /// ```
    /// use ephemeral::patterns::CircuitBreaker;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let breaker = CircuitBreaker::new(&sink, "payment.failed", 2, Duration::from_secs(10));
    ///     sink.raise("payment.failed");
    ///     sink.raise("payment.failed");
    ///     match breaker.check() {
    ///         Ok(()) => unreachable!(),
    ///         Err(open) => assert_eq!(open.retry_after(), Duration::from_secs(10)),
    ///     }
    /// }
    /// ```
    pub fn check(&self) -> Result<(), CircuitOpen> {
        match self.time_until_close() {
            None => Ok(()),
            Some(retry_after) => Err(CircuitOpen { retry_after }),
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("pattern", &self.pattern)
            .field("threshold", &self.threshold)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The error of [`CircuitBreaker::check`] while the circuit is open.
///
/// ```
/// use ephemeral::patterns::{CircuitBreaker, CircuitOpen};
/// use ephemeral::SignalSink;
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let sink = SignalSink::default();
///     let breaker = CircuitBreaker::new(&sink, "db.*", 1, Duration::from_secs(5));
///     sink.raise("db.timeout");
///     let err: CircuitOpen = breaker.check().unwrap_err();
///     assert_eq!(err.retry_after(), Duration::from_secs(5));
///     let boxed: ephemeral::BoxError = err.into(); // a std error
///     assert!(boxed.to_string().contains("circuit open"));
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    retry_after: Duration,
}

impl CircuitOpen {
    /// How long until the circuit closes if no new failure arrives.
    ///
    /// ```
    /// use ephemeral::patterns::CircuitBreaker;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let breaker = CircuitBreaker::new(&sink, "payment.failed", 2, Duration::from_secs(10));
    ///     sink.raise("payment.failed");
    ///     tokio::time::advance(Duration::from_secs(4)).await;
    ///     sink.raise("payment.failed");
    ///     let open = breaker.check().unwrap_err();
    ///     assert_eq!(open.retry_after(), Duration::from_secs(6));
    /// }
    /// ```
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit open: retry after {:?}", self.retry_after)
    }
}

impl std::error::Error for CircuitOpen {}
