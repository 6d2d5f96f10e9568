//! [`SignalAnomalyDetector`]: too many matching events within a window.

use crate::pattern::Pattern;
use crate::signal::SignalSink;
use std::fmt;
use std::time::Duration;

/// The ages of the sink's events matching `pattern` that are younger than `window`, on the
/// library's clock (an event stamped in the future has age zero).
pub(super) fn recent_ages(sink: &SignalSink, pattern: &Pattern, window: Duration) -> Vec<Duration> {
    let now = crate::now();
    let mut ages = Vec::new();
    sink.sense(|e| {
        if pattern.matches(e.signal()) {
            let age = now.duration_since(e.timestamp()).unwrap_or(Duration::ZERO);
            if age < window {
                ages.push(age);
            }
        }
        false
    });
    ages
}

/// Counts a sink's events matching a pattern raised within the last `window`, and flags an
/// anomaly when there are at least `threshold` of them.
///
/// An event counts while its age (on tokio's clock, by its timestamp) is less than `window`
/// (and while the sink still holds it). Nothing runs in the background: every call reads the
/// sink. A `threshold` of 0 is always anomalous. Cloning gives another detector over the same
/// sink.
///
/// ```
/// use ephemeral::patterns::SignalAnomalyDetector;
/// use ephemeral::SignalSink;
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let sink = SignalSink::default();
///     let detector = SignalAnomalyDetector::new(&sink, "error.*", 3, Duration::from_secs(10));
///     for _ in 0..3 {
///         sink.raise("error.timeout");
///     }
///     assert_eq!(detector.count(), 3);
///     assert!(detector.is_anomalous());
///
///     tokio::time::advance(Duration::from_secs(10)).await;
///     assert_eq!(detector.count(), 0); // aged out of the window
///     assert!(!detector.is_anomalous());
/// }
/// ```
#[derive(Clone)]
pub struct SignalAnomalyDetector {
    sink: SignalSink,
    pattern: Pattern,
    threshold: usize,
    window: Duration,
}

impl SignalAnomalyDetector {
    /// A detector over `sink`'s events matching `pattern`: anomalous when at least `threshold`
    /// were raised within the last `window`.
    ///
    /// ```
    /// use ephemeral::patterns::SignalAnomalyDetector;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let detector = SignalAnomalyDetector::new(&sink, "http.error.5*", 10, Duration::from_secs(1));
    ///     println!("{detector:?}");
    ///     assert_eq!(detector.count(), 0);
    /// }
    /// ```
    #[must_use]
    pub fn new(
        sink: &SignalSink,
        pattern: impl Into<Pattern>,
        threshold: usize,
        window: Duration,
    ) -> SignalAnomalyDetector {
        SignalAnomalyDetector {
            sink: sink.clone(),
            pattern: pattern.into(),
            threshold,
            window,
        }
    }

    /// How many of the sink's events match the pattern and were raised within the last
    /// `window`.
    ///
    /// ```
    /// use ephemeral::patterns::SignalAnomalyDetector;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let detector = SignalAnomalyDetector::new(&sink, "login.failed", 5, Duration::from_secs(60));
    ///     sink.raise("login.failed");
    ///     tokio::time::advance(Duration::from_secs(30)).await;
    ///     sink.raise("login.failed");
    ///     sink.raise("login.ok");
    ///     assert_eq!(detector.count(), 2);
    ///     tokio::time::advance(Duration::from_secs(30)).await;
    ///     assert_eq!(detector.count(), 1); // the first is 60 s old
    /// }
    /// ```
    #[must_use]
    pub fn count(&self) -> usize {
        recent_ages(&self.sink, &self.pattern, self.window).len()
    }

    /// Whether [`count`](Self::count) has reached the threshold.
    ///
    /// ```
    /// use ephemeral::patterns::SignalAnomalyDetector;
    /// use ephemeral::SignalSink;
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let detector = SignalAnomalyDetector::new(&sink, "oom.*", 2, Duration::from_secs(5));
    ///     sink.raise("oom.worker");
    ///     assert!(!detector.is_anomalous());
    ///     sink.raise("oom.worker");
    ///     assert!(detector.is_anomalous());
    /// }
    /// ```
    #[must_use]
    pub fn is_anomalous(&self) -> bool {
        self.count() >= self.threshold
    }
}

impl fmt::Debug for SignalAnomalyDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalAnomalyDetector")
            .field("pattern", &self.pattern)
            .field("threshold", &self.threshold)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}
