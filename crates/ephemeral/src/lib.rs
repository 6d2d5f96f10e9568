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
//! | process a collection once | [`for_each`] / [`for_each_keyed`] |
//! | a long-lived queue accepting items over time | [`WorkCoordinator`] |
//! | per-entity ordering (user commands, tenant jobs) | [`KeyedWorkCoordinator`] |
//! | capture results alongside metadata | [`ResultCoordinator`] |
//! | several coordinators with named configurations | [`CoordinatorFactory`] |
//! | signals shared across coordinators | [`SignalSink`] |
//! | consume a sink's signals as an async stream | [`SignalSink::stream`] |
//! | route signals to async handlers by pattern | [`SignalDispatcher`] |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
//!
//! let coordinator = WorkCoordinator::new(
//!     |n: u64, op: Operation| async move {
//!         if n % 10 == 0 {
//!             op.emit("cache-miss");
//!         }
//!         Ok::<_, std::io::Error>(())
//!     },
//!     Options::default().max_concurrency(4),
//! );
//! for n in 0..100 {
//!     coordinator.enqueue(n).await.unwrap();
//! }
//! coordinator.complete();
//! coordinator.drain().await;
//! assert_eq!(coordinator.total_completed(), 100);
//! assert_eq!(coordinator.count_signals("cache-miss"), 10);
//! # }
//! ```
//!
//! # Runtime
//!
//! Everything runs on tokio. Constructors that start background work (coordinators, the
//! processor, the dispatcher) must be called within a tokio runtime and panic otherwise.
//! Time (ages, lifetimes, deferral) follows tokio's clock, so `start_paused` tests are exact.
//! Event timestamps are labelled on that clock too: [`now`] is the library's "now" as a
//! [`SystemTime`](std::time::SystemTime), and the one to use for events you build and for the
//! bounds of [`SignalSource::signals_since`] / [`SignalSource::signals_between`].
//!
//! # Features
//!
//! * `serde`: `Serialize` for snapshots, events and stats.
//!
//! # Differences from the .NET original
//!
//! Bodies receive an [`Operation`] handle and can emit signals (the original could not);
//! a busy key never blocks other keys; shrinking the concurrency limit takes effect as bodies
//! finish; `drain` never hangs on a panicking callback; `cancel` accounts for every pending item;
//! idle keys cost no memory. See the repository README for the full list.
//!
//! # Notes on the API contract
//!
//! The public surface follows the project's API contract, with these deliberate differences:
//!
//! * [`SignalEvent::new`] takes the key as `Option<&str>`, so `None` needs no type annotation.
//! * Body and handler error types must be `'static` (`E: Into<BoxError> + 'static`): bodies run
//!   on long-lived worker tasks, whose futures must be `'static`.
//! * [`Stats`] is `#[non_exhaustive]` and carries three more counters (`defer_timeouts`,
//!   `signal_handler_drops`, `signal_handler_failures`). The hot path takes no global lock, so
//!   its fields are exact after a drain and may be a few items apart while work flows.
//! * [`OperationError::is_cancelled`] means "failed after its token was cancelled"; the body's
//!   own error stays reachable through [`OperationError::downcast_ref`].
//! * An [`Operation`] handle used after its body returned still publishes to the sink and the
//!   handlers, but the finished operation's recorded signals no longer change.
//! * Additions: [`AsyncSignalProcessor::cancel`], [`SignalDispatcher::with_limits`] and its
//!   counters, [`KeyedWorkCoordinator::active_keys`] and [`KeyedWorkCoordinator::signals_for`],
//!   [`Subscription`] guards, and the re-exported [`CancellationToken`]; [`now`] (the
//!   library's clock as a `SystemTime`); [`Operation::emit_event`] and
//!   [`Operation::emit_caused_event`] (the `bool` spellings stay); [`SignalSink::stream`] /
//!   [`SignalStream`]; [`SignalDispatcher::attach`] and [`SignalDispatcher::replace`].
//! * [`SignalDispatcher::register`] adds a handler even for a pattern that already has one:
//!   both run, in registration order (use [`SignalDispatcher::replace`] to swap).
//! * [`Options::validate`] also rejects a zero `max_queued_signals`, a zero
//!   `max_pending_per_key` (or `fair_scheduling_threshold`), and a zero `defer_check_interval` when deferral is on.
//! * The window is exact for every read, but its memory bound is per worker: finished records
//!   live in per-worker shards of at most `max_tracked_operations` each, trimmed to the newest
//!   `max_tracked_operations` by every read (see [`Options::max_tracked_operations`]). So
//!   recording an operation never touches a line another worker writes.
//! * `enqueue` on a full queue first yields to the runtime once (workers usually free room in
//!   bursts), then waits to be told of room.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod clock;
mod coordinator;
mod id;
mod label;
mod notify;
mod operation;
mod options;
mod outcome;
pub mod pattern;
mod signal;
mod time;
mod window;

#[cfg(feature = "serde")]
mod serde_time;

pub use clock::now;
pub use coordinator::{
    for_each, for_each_keyed, for_each_keyed_stream, for_each_stream, Cancelled, Completion,
    ConcurrencyError, CoordinatorFactory, EnqueueError, KeyedCoordinatorFactory,
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

/// The cancellation token coordinators use (re-exported from `tokio-util`).
pub use tokio_util::sync::CancellationToken;

/// The error type bodies and handlers may return: anything that converts into it works.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme_doctests {}
