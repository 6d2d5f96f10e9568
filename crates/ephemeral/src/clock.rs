//! The library's "now", as a wall-clock label.

use std::time::SystemTime;

/// The library's "now": the [`SystemTime`] that an event raised at this moment is stamped with.
///
/// It follows tokio's clock (it is derived from [`tokio::time::Instant::now`] through an anchor
/// taken once per process), so a paused test clock (`#[tokio::test(start_paused = true)]`,
/// `tokio::time::advance`) moves it, while [`SystemTime::now`] does not. Every
/// [`SignalEvent::timestamp`](crate::SignalEvent::timestamp) the library makes is on this
/// clock, and sinks age events by comparing their timestamps with it. Use it for the events you
/// build with [`SignalEvent::new`](crate::SignalEvent::new) and for the bounds you pass to
/// [`signals_since`](crate::SignalSource::signals_since) and
/// [`signals_between`](crate::SignalSource::signals_between).
///
/// Outside a paused test clock it stays within a clock drift of [`SystemTime::now`]: both
/// advance at the same rate from the same anchor, but a wall-clock adjustment after the anchor
/// was taken (NTP, a manual change) moves only `SystemTime::now`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use ephemeral::{SignalSink, SignalSource};
/// use std::time::Duration;
///
/// // On a paused clock, as in a `#[tokio::test(start_paused = true)]` test:
/// let sink = SignalSink::new(100, Duration::from_secs(60));
/// let before = ephemeral::now();
/// sink.raise("early");
/// tokio::time::advance(Duration::from_secs(30)).await;
/// assert_eq!(ephemeral::now().duration_since(before).unwrap(), Duration::from_secs(30));
///
/// let since = ephemeral::now();
/// sink.raise("late");
/// let late = sink.signals_since(since);
/// assert_eq!(late.len(), 1);
/// assert!(late[0].is("late"));
/// assert_eq!(sink.signals_between(before, ephemeral::now()).len(), 2);
/// # }
/// ```
///
/// Outside a tokio runtime it reads the real clock.
#[must_use]
pub fn now() -> SystemTime {
    crate::time::system_now()
}
