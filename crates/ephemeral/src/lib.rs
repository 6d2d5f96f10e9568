//! Bounded, observable, self-cleaning async execution with signal-based coordination.
//!
//! *Fire and don't quite forget.* `ephemeral` sits between `tokio::spawn` (no visibility, no
//! bound) and `.await` (the caller blocks): work goes into a coordinator that caps concurrency,
//! tracks every operation (pending, running, done, failed) in a bounded window that cleans
//! itself, keeps only metadata (never payloads), and lets operations emit **signals** — short
//! strings like `rate-limit` or `http.error.503` — that other code senses by name or glob
//! pattern to throttle, defer, cancel or alert.
//!
//! # Which piece do I need?
//!
//! | scenario | use |
//! |---|---|
//! | process a collection once | [`for_each`] / [`for_each_keyed`] (and [`for_each_stream`] / [`for_each_keyed_stream`]) |
//! | a long-lived queue accepting items over time | [`WorkCoordinator`] |
//! | feed a coordinator from a `Stream` (nothing read is lost) | [`WorkCoordinator::from_stream`], [`KeyedWorkCoordinator::from_stream`], [`ResultCoordinator::from_stream`] |
//! | per-entity ordering (user commands, tenant jobs) | [`KeyedWorkCoordinator`] |
//! | keep one hot key from filling the queue | [`Options::max_pending_per_key`] |
//! | capture results alongside metadata | [`ResultCoordinator`] |
//! | await one item's outcome (like a `JoinHandle`) | [`WorkCoordinator::enqueue_with_handle`] → [`Completion`] |
//! | tell which item an operation was, without keeping items | [`Operation::set_label`] → [`OperationSnapshot::label`] |
//! | hold coordinators of different types side by side (dashboards, control loops) | [`AnyCoordinator`] |
//! | several coordinators with named configurations | [`CoordinatorFactory`] / [`KeyedCoordinatorFactory`] |
//! | back off while a server says "too many requests" | [`Options::defer_on_signals`] + [`Operation::emit_for`] (or [`Options::signal_ttl`]) |
//! | refuse new work while a signal is present | [`Options::cancel_on_signals`] |
//! | signals shared across coordinators | [`SignalSink`] |
//! | consume a sink's signals as an async stream, bounded and lossy | [`SignalSink::stream`] (a [`SignalStream`]) |
//! | async handlers for signals, bounded and lossy | [`AsyncSignalProcessor`] |
//! | route signals to async handlers by pattern | [`SignalDispatcher`] ([`attach`](SignalDispatcher::attach) feeds it from a sink) |
//! | limit chains of signals causing signals | [`SignalConstraints`] |
//!
//! # Example
//!
//! A crawler-style back-off: a body that hits a rate limit emits `rate-limit` for 100 ms, and
//! no fetch starts while it is present.
//!
//! ```
//! use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
//! use std::time::Duration;
//!
//! #[tokio::main]
//! async fn main() {
//!     let crawler = WorkCoordinator::new(
//!         |page: u32, op: Operation| async move {
//!             tokio::time::sleep(Duration::from_millis(2)).await; // the fetch
//!             if page == 7 {
//!                 // Without a ttl the signal would count as long as this failed operation
//!                 // stays in the window (5 minutes by default): every later start would wait.
//!                 op.emit_for("rate-limit", Duration::from_millis(100));
//!                 return Err(format!("page {page}: 429 Too Many Requests"));
//!             }
//!             if page % 10 == 0 {
//!                 op.emit("cache-miss");
//!             }
//!             Ok(())
//!         },
//!         Options::default()
//!             .max_concurrency(4)
//!             .defer_on_signals(["rate-limit"]),
//!     );
//!     for page in 0..50 {
//!         crawler.enqueue(page).await.unwrap();
//!     }
//!     println!("{:?}", crawler.stats()); // pending, active, deferred, ...
//!     crawler.complete();
//!     crawler.drain().await;
//!     assert_eq!(crawler.total_completed(), 49);
//!     assert_eq!(crawler.failed().len(), 1);
//!     assert_eq!(crawler.count_signals("cache-miss"), 5);
//! }
//! ```
//!
//! A body that cannot fail may return `()` instead of `Result<(), E>` (see [`Outcome`]).
//!
//! # Runtime
//!
//! Everything runs on tokio. Constructors that start background work (coordinators, the
//! processor, the dispatcher) must be called within a tokio runtime and panic otherwise.
//! Time (ages, lifetimes, deferral, signal ttls) follows tokio's clock, so `start_paused`
//! tests are exact. Event timestamps are labelled on that clock too: [`now`] is the library's
//! "now" as a [`SystemTime`](std::time::SystemTime), and the one to use for events you build
//! and for the bounds of [`SignalSource::signals_since`] / [`SignalSource::signals_between`].
//!
//! # Features
//!
//! * `serde`: `Serialize` for snapshots, events and stats.
//! * `metrics`: counters (`ephemeral_enqueued_total`, `ephemeral_finished_total` by outcome,
//!   `ephemeral_cancelled_total`, `ephemeral_signals_total` by signal name), gauges
//!   (`ephemeral_pending`, `ephemeral_active`, `ephemeral_max_concurrency`) and a histogram
//!   (`ephemeral_operation_duration_seconds`) through the [`metrics`](https://docs.rs/metrics)
//!   facade, labelled by coordinator name (never ids or keys). The library never installs a
//!   recorder: install yours before building coordinators.
//! * `tracing`: each operation runs in an `ephemeral.op` span (coordinator, id, key, and the
//!   outcome recorded at the end); each emitted signal is an event in it.
//!
//! # More
//!
//! [`_guide`] holds the notes that do not belong to one item: how this API differs from the
//! .NET original, and notes on the API contract (signals and time, stream sources, keyed
//! scheduling, what `Stats` is exact about, and more).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod _guide;
pub mod atoms;
mod clock;
mod coordinator;
mod id;
mod label;
mod notify;
mod operation;
mod options;
mod outcome;
pub mod pattern;
pub mod patterns;
mod signal;
mod sync;
mod telemetry;
mod time;
mod window;

#[cfg(feature = "serde")]
mod serde_time;

pub use clock::now;
pub use coordinator::{
    for_each, for_each_keyed, for_each_keyed_stream, for_each_stream, AnyCoordinator, Cancelled,
    Completion, ConcurrencyError, CoordinatorFactory, EnqueueError, KeyedCoordinatorFactory,
    KeyedWorkCoordinator, ResultCoordinator, ResultSnapshot, Stats, Summary, TryEnqueueError,
    UnknownCoordinator, WorkCoordinator,
};
pub use id::{OperationId, ParseOperationIdError};
pub use operation::{Operation, OperationError, OperationSnapshot};
pub use options::{Options, OptionsError};
pub use outcome::Outcome;
pub use pattern::Pattern;
pub use signal::{
    AsyncSignalProcessor, BlockReason, SignalConstraints, SignalDispatcher, SignalEvent,
    SignalRetracted, SignalSink, SignalSource, SignalStream, Subscription,
};
#[cfg(feature = "metrics")]
pub use telemetry::describe_metrics;

/// The cancellation token coordinators use (re-exported from `tokio-util`).
pub use tokio_util::sync::CancellationToken;

/// The error type bodies and handlers may return: anything that converts into it works.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme_doctests {}
