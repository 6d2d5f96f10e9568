//! Coordinator configuration.

use crate::operation::OperationSnapshot;
use crate::signal::{SignalConstraints, SignalEvent, SignalRetracted, SignalSink};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod signals;
mod validate;

pub(crate) use crate::signal::handler::{AsyncHandler, SyncHandler};
pub use validate::OptionsError;

pub(crate) type SampleHandler = Arc<dyn Fn(&[OperationSnapshot]) + Send + Sync>;

/// Configuration shared by every coordinator (and by [`for_each`](crate::for_each)).
///
/// Start from [`Options::default()`] and chain the consuming setters; `Options` is `Clone`, so
/// one value can configure several coordinators (handlers and sinks are shared, not copied).
/// Coordinator constructors call [`validate`](Self::validate) and panic with its message on a
/// programmer error such as a zero limit.
///
/// | setter | default |
/// |---|---|
/// | [`max_concurrency`](Self::max_concurrency) | available parallelism |
/// | [`max_concurrency_per_key`](Self::max_concurrency_per_key) | 1 |
/// | [`dynamic_concurrency`](Self::dynamic_concurrency) | false |
/// | [`max_tracked_operations`](Self::max_tracked_operations) | 200 |
/// | [`max_operation_lifetime`](Self::max_operation_lifetime) | 5 minutes |
/// | [`queue_capacity`](Self::queue_capacity) | = `max_tracked_operations` |
/// | [`max_pending_per_key`](Self::max_pending_per_key) | no limit |
/// | [`cancel_on_signals`](Self::cancel_on_signals), [`defer_on_signals`](Self::defer_on_signals) | none |
/// | [`max_defer_attempts`](Self::max_defer_attempts), [`defer_check_interval`](Self::defer_check_interval) | 10, 100 ms |
/// | [`max_concurrent_signal_handlers`](Self::max_concurrent_signal_handlers), [`max_queued_signals`](Self::max_queued_signals) | 4, 1000 |
///
/// ```
/// use ephemeral::{Options, SignalSink};
/// use std::time::Duration;
///
/// let sink = SignalSink::default();
/// let options = Options::default()
///     .max_concurrency(8)
///     .max_tracked_operations(500)
///     .max_operation_lifetime(Some(Duration::from_secs(60)))
///     .defer_on_signals(["rate-limit", "rate-limit:*"])
///     .cancel_on_signals(["system-overload, circuit-open"])
///     .signals(sink)
///     .name("translator");
/// assert!(options.validate().is_ok());
///
/// let bad = Options::default().max_concurrency(0);
/// assert_eq!(bad.validate().unwrap_err().field(), "max_concurrency");
/// ```
#[derive(Clone)]
#[must_use]
pub struct Options {
    pub(crate) max_concurrency: usize,
    pub(crate) max_concurrency_per_key: usize,
    pub(crate) dynamic_concurrency: bool,
    pub(crate) max_tracked_operations: usize,
    pub(crate) max_operation_lifetime: Option<Duration>,
    pub(crate) queue_capacity: Option<usize>,
    pub(crate) fair_scheduling: bool,
    pub(crate) fair_scheduling_threshold: usize,
    pub(crate) max_pending_per_key: Option<usize>,
    pub(crate) cancel_on_signals: Vec<String>,
    pub(crate) defer_on_signals: Vec<String>,
    pub(crate) max_defer_attempts: u32,
    /// Whether `max_defer_attempts` was set (patterns pick their own default otherwise).
    pub(crate) max_defer_attempts_set: bool,
    pub(crate) defer_check_interval: Duration,
    pub(crate) signals: Option<SignalSink>,
    pub(crate) signal_constraints: Option<SignalConstraints>,
    pub(crate) on_signal: Option<SyncHandler<SignalEvent>>,
    pub(crate) on_signal_async: Option<AsyncHandler<SignalEvent>>,
    pub(crate) on_signal_retracted: Option<SyncHandler<SignalRetracted>>,
    pub(crate) on_signal_retracted_async: Option<AsyncHandler<SignalRetracted>>,
    pub(crate) max_concurrent_signal_handlers: usize,
    pub(crate) max_queued_signals: usize,
    pub(crate) on_sample: Option<SampleHandler>,
    pub(crate) cancellation_token: Option<CancellationToken>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) signal_ttl: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_concurrency: std::thread::available_parallelism().map_or(4, |n| n.get()),
            max_concurrency_per_key: 1,
            dynamic_concurrency: false,
            max_tracked_operations: 200,
            max_operation_lifetime: Some(Duration::from_secs(5 * 60)),
            queue_capacity: None,
            fair_scheduling: false,
            fair_scheduling_threshold: 10,
            max_pending_per_key: None,
            cancel_on_signals: Vec::new(),
            defer_on_signals: Vec::new(),
            max_defer_attempts: 10,
            max_defer_attempts_set: false,
            defer_check_interval: Duration::from_millis(100),
            signals: None,
            signal_constraints: None,
            on_signal: None,
            on_signal_async: None,
            on_signal_retracted: None,
            on_signal_retracted_async: None,
            max_concurrent_signal_handlers: 4,
            max_queued_signals: 1000,
            on_sample: None,
            cancellation_token: None,
            name: None,
            signal_ttl: None,
        }
    }
}

impl Options {
    /// Global cap on running bodies (must be at least 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }

    /// Keyed coordinators: cap on running bodies per key (must be at least 1).
    pub fn max_concurrency_per_key(mut self, n: usize) -> Self {
        self.max_concurrency_per_key = n;
        self
    }

    /// Allows [`set_max_concurrency`](crate::WorkCoordinator::set_max_concurrency) at run time.
    pub fn dynamic_concurrency(mut self, enabled: bool) -> Self {
        self.dynamic_concurrency = enabled;
        self
    }

    /// How many *finished* operations the window keeps (must be at least 1). Running
    /// operations are always tracked on top of these.
    ///
    /// Every read (snapshots, results, signal queries, `pin`, `evict`) sees exactly the newest
    /// `n` finished operations (plus pinned ones). To keep the hot path free of shared writes,
    /// each worker records what it finishes in a shard of its own holding at most `n`, and
    /// reads merge the shards and drop what fell out of the window. So between reads a
    /// coordinator holds at most `(max_concurrency + 1) × n` finished records (results
    /// included): size `n` with that in mind when results are large.
    pub fn max_tracked_operations(mut self, n: usize) -> Self {
        self.max_tracked_operations = n;
        self
    }

    /// How long a finished operation stays visible, counted from its completion; `None` keeps
    /// it until the size bound pushes it out.
    pub fn max_operation_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_operation_lifetime = lifetime;
        self
    }

    /// How many items may wait to start (must be at least 1): `enqueue` waits and
    /// `try_enqueue` returns `Full` beyond it. Defaults to `max_tracked_operations`.
    ///
    /// Up to 65,536, the queue is allocated up front, so its memory grows with the capacity
    /// (and with the item's size), whether items wait or not. Larger capacities use a queue
    /// that grows as it fills and shrinks as it empties.
    //
    // The ring has one slot per item, each the size of the item plus three or four words (the
    // key, for keyed coordinators). Keyed coordinators with one item per key and no fairness
    // limit also keep an admission table of 16 slots of 16 bytes per item of capacity (64 to
    // 65,536 slots: 1 KiB to 1 MiB).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = Some(n);
        self
    }

    /// Keyed coordinators: the most items one key may have pending (waiting to start; must
    /// be at least 1). An item of a key that already has `n` pending is refused with
    /// `KeyOverloaded(item)` by both `enqueue` and `try_enqueue` (checked atomically with the
    /// insert), so one hot key cannot fill the whole queue. Stream sources
    /// (`from_stream`, `for_each_keyed_stream`) wait for the key's room instead, so they
    /// lose nothing. Default: no limit.
    ///
    /// This is a limit, not a scheduler: ready keys are **always** served round-robin, with
    /// or without it, so a key with many queued items never starves the others.
    ///
    /// ```
    /// use ephemeral::{EnqueueError, KeyedWorkCoordinator, Options};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let c = KeyedWorkCoordinator::new(
    ///         |job: &(&str, u32)| job.0,
    ///         |_job, _op| async {},
    ///         Options::default().max_pending_per_key(2),
    ///     );
    ///     c.pause();
    ///     c.enqueue(("tenant-a", 1)).await.unwrap();
    ///     c.enqueue(("tenant-a", 2)).await.unwrap();
    ///     let third = c.enqueue(("tenant-a", 3)).await;
    ///     assert!(matches!(third, Err(EnqueueError::KeyOverloaded(("tenant-a", 3)))));
    ///     c.enqueue(("tenant-b", 1)).await.unwrap(); // other keys are not held back
    /// }
    /// ```
    pub fn max_pending_per_key(mut self, n: usize) -> Self {
        self.max_pending_per_key = Some(n);
        self
    }

    /// Deprecated spelling of [`max_pending_per_key`](Self::max_pending_per_key): `true`
    /// turns on the per-key pending limit [`fair_scheduling_threshold`](Self::fair_scheduling_threshold)
    /// (default 10). Ready keys are served round-robin whether or not it is on.
    #[deprecated(
        since = "0.1.0",
        note = "a per-key pending limit, not a scheduler: use `max_pending_per_key(n)`"
    )]
    pub fn fair_scheduling(mut self, enabled: bool) -> Self {
        self.fair_scheduling = enabled;
        self
    }

    /// Deprecated: the limit that [`fair_scheduling(true)`](Self::fair_scheduling) turns
    /// on (must be at least 1). Use [`max_pending_per_key`](Self::max_pending_per_key).
    #[deprecated(since = "0.1.0", note = "use `max_pending_per_key(n)`")]
    pub fn fair_scheduling_threshold(mut self, n: usize) -> Self {
        self.fair_scheduling_threshold = n;
        self
    }

    /// The per-key pending limit in force, if any (set by
    /// [`max_pending_per_key`](Self::max_pending_per_key), or by the deprecated
    /// `fair_scheduling` pair).
    #[must_use]
    pub fn pending_limit_per_key(&self) -> Option<usize> {
        self.max_pending_per_key.or(self
            .fair_scheduling
            .then_some(self.fair_scheduling_threshold))
    }

    /// Called once after each operation finishes, with the window (metadata only). A panic in
    /// it is contained and never hangs `drain`.
    pub fn on_sample(mut self, f: impl Fn(&[OperationSnapshot]) + Send + Sync + 'static) -> Self {
        self.on_sample = Some(Arc::new(f));
        self
    }

    /// A parent token: cancelling it cancels the coordinator (as
    /// [`cancel`](crate::WorkCoordinator::cancel) does).
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.cancellation_token = Some(token);
        self
    }

    /// A name for the coordinator, to tell several apart (default: none).
    ///
    /// Today it is what the coordinator's `name()` returns (for example
    /// [`WorkCoordinator::name`](crate::WorkCoordinator::name)) and it appears in the
    /// coordinator's `Debug` output and in this `Options`' own (see also
    /// [`name_ref`](Self::name_ref)). It changes no behaviour. Factories
    /// ([`CoordinatorFactory`](crate::CoordinatorFactory)) look coordinators up by the name
    /// given to `register`, which is separate: pass the same name here too if a coordinator
    /// built by a factory should report it. A status API and metrics, when they come, will
    /// identify coordinators by this name.
    ///
    /// ```
    /// use ephemeral::{Options, WorkCoordinator};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let options = Options::default().name("thumbnails");
    ///     let c = WorkCoordinator::new(|_: u32, _op| async {}, options);
    ///     assert_eq!(c.name(), Some("thumbnails"));
    ///     assert!(format!("{c:?}").contains("thumbnails"));
    /// }
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// The sink set by [`signals`](Self::signals), if any: what a coordinator built with
    /// these options raises its operations' signals on.
    #[must_use]
    pub fn signal_sink(&self) -> Option<&SignalSink> {
        self.signals.as_ref()
    }

    /// Appends gate patterns to `cancel_on_signals` / `defer_on_signals` (for the atoms).
    pub(crate) fn extend_signal_gates(
        mut self,
        cancel_on: Vec<String>,
        defer_on: Vec<String>,
    ) -> Self {
        self.cancel_on_signals.extend(cancel_on);
        self.defer_on_signals.extend(defer_on);
        self
    }

    /// The configured name, if any (set by [`name`](Self::name)).
    #[must_use]
    pub fn name_ref(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The configured name, if any.
    #[deprecated(since = "0.1.0", note = "renamed to `name_ref` (no `get_` prefix)")]
    #[must_use]
    pub fn get_name(&self) -> Option<&str> {
        self.name_ref()
    }

    /// The effective queue capacity.
    pub(crate) fn effective_queue_capacity(&self) -> usize {
        self.queue_capacity.unwrap_or(self.max_tracked_operations)
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("name", &self.name)
            .field("max_concurrency", &self.max_concurrency)
            .field("max_concurrency_per_key", &self.max_concurrency_per_key)
            .field("dynamic_concurrency", &self.dynamic_concurrency)
            .field("max_tracked_operations", &self.max_tracked_operations)
            .field("max_operation_lifetime", &self.max_operation_lifetime)
            .field("queue_capacity", &self.effective_queue_capacity())
            .field("max_pending_per_key", &self.pending_limit_per_key())
            .field("cancel_on_signals", &self.cancel_on_signals)
            .field("defer_on_signals", &self.defer_on_signals)
            .field("max_defer_attempts", &self.max_defer_attempts)
            .field("defer_check_interval", &self.defer_check_interval)
            .field("signals", &self.signals.is_some())
            .field("signal_constraints", &self.signal_constraints)
            .field("on_signal", &self.on_signal.is_some())
            .field("on_signal_async", &self.on_signal_async.is_some())
            .field("on_signal_retracted", &self.on_signal_retracted.is_some())
            .field(
                "on_signal_retracted_async",
                &self.on_signal_retracted_async.is_some(),
            )
            .field(
                "max_concurrent_signal_handlers",
                &self.max_concurrent_signal_handlers,
            )
            .field("max_queued_signals", &self.max_queued_signals)
            .field("on_sample", &self.on_sample.is_some())
            .field("cancellation_token", &self.cancellation_token.is_some())
            .field("signal_ttl", &self.signal_ttl)
            .finish()
    }
}
