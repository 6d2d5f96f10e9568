//! [`signal_driven_backpressure`]: a coordinator held back by `backpressure.*` signals.

use crate::operation::Operation;
use crate::options::Options;
use crate::outcome::Outcome;
use crate::signal::SignalSink;
use crate::WorkCoordinator;
use std::future::Future;

/// The pattern whose signals hold starts back.
const BACKPRESSURE: &str = "backpressure.*";

/// A [`WorkCoordinator`] whose starts wait while `sink` holds a `backpressure.*` signal, for
/// as long as it is there.
///
/// It is deferral reading the sink: the options get `sink` as their
/// [`signals`](Options::signals) (replacing any sink they had), `"backpressure.*"` is added to
/// their [`defer_on_signals`](Options::defer_on_signals), and unless the options set
/// [`max_defer_attempts`](Options::max_defer_attempts) themselves, the attempts do not run out
/// (`u32::MAX` checks). A held start re-checks every
/// [`defer_check_interval`](Options::defer_check_interval) (100 ms by default), so starts
/// resume within one interval after the signal leaves the sink (by age, by its ttl, or by
/// [`SignalSink::clear`]). Items already running are not touched.
///
/// # Panics
///
/// Outside a tokio runtime, or for invalid options (as [`WorkCoordinator::new`]).
///
/// ```
/// use ephemeral::patterns::signal_driven_backpressure;
/// use ephemeral::{Options, SignalSink};
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let sink = SignalSink::default();
///     sink.raise("backpressure.db");
///     let writer = signal_driven_backpressure(
///         |row: u32, _op| async move { println!("wrote {row}") },
///         &sink,
///         Options::default().max_concurrency(2),
///     );
///     for row in 0..4 {
///         writer.enqueue(row).await.unwrap();
///     }
///     tokio::time::sleep(Duration::from_secs(5)).await;
///     assert_eq!(writer.total_completed(), 0); // held while the signal is there
///
///     sink.clear();
///     tokio::time::sleep(Duration::from_millis(100)).await; // one check interval
///     assert_eq!(writer.total_completed(), 4);
/// }
/// ```
pub fn signal_driven_backpressure<T, F, Fut>(
    body: F,
    sink: &SignalSink,
    options: Options,
) -> WorkCoordinator<T>
where
    T: Send + 'static,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    let mut options = options.signals(sink.clone());
    if !options
        .defer_on_signals
        .iter()
        .any(|p| p.trim() == BACKPRESSURE)
    {
        options.defer_on_signals.push(BACKPRESSURE.to_string());
    }
    if !options.max_defer_attempts_set {
        options.max_defer_attempts = u32::MAX;
    }
    WorkCoordinator::new(body, options)
}
