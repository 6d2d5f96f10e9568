//! A guide to the crate: notes that belong to no single item (documentation only; this
//! module holds no code).
//!
//! # Where this API differs from the .NET original
//!
//! `ephemeral` re-creates the .NET library *Mostlylucid.Ephemeral* the Rust way. Bodies
//! receive an [`Operation`](crate::Operation) handle and can emit signals (the original could not); a busy key
//! never blocks other keys; shrinking the concurrency limit takes effect as bodies finish;
//! `drain` never hangs on a panicking callback; `cancel` accounts for every pending item; idle
//! keys cost no memory. The repository README lists more.
//!
//! # Notes on the API contract
//!
//! * **Signals and time.** A signal counts (for queries and for `cancel_on_signals` /
//!   `defer_on_signals`) as long as its operation stays in the window, unless it has a time to
//!   live: [`Operation::emit_for`](crate::Operation::emit_for) or [`Options::signal_ttl`](crate::Options::signal_ttl). Then it retracts itself when the
//!   ttl runs out, also from a finished operation (a retraction event fires and gates
//!   release), while the operation itself stays listed. Use a ttl for every back-off.
//! * **Stream sources never lose an item.** `from_stream` and the `_stream` one-shot helpers
//!   read their stream to its end: an item refused by a `cancel_on_signals` signal is counted
//!   as cancelled and reading goes on; an item of a key at its
//!   [`max_pending_per_key`](crate::Options::max_pending_per_key) limit waits for that key's room.
//! * **Keyed scheduling.** Ready keys are always served round-robin.
//!   [`Options::max_pending_per_key`](crate::Options::max_pending_per_key) is a per-key pending limit (`KeyOverloaded`), not a
//!   scheduler; it replaces the deprecated `fair_scheduling` / `fair_scheduling_threshold`.
//! * [`SignalEvent::new`](crate::SignalEvent::new) takes the key as `Option<&str>`, so `None` needs no type annotation.
//! * Body and handler error types must be `'static` (`E: Into<BoxError> + 'static`): bodies run
//!   on long-lived worker tasks, whose futures must be `'static`.
//! * [`Stats`](crate::Stats) is `#[non_exhaustive]`; besides the basic counters it carries `deferred` (starts
//!   held back by a defer gate right now), `defer_timeouts`, `signal_handler_drops` and
//!   `signal_handler_failures`. The hot path takes no global lock, so its fields are exact
//!   after a drain and may be a few items apart while work flows.
//! * [`OperationError::is_cancelled`](crate::OperationError::is_cancelled) means "failed after its token was cancelled"; the body's
//!   own error stays reachable through [`OperationError::downcast_ref`](crate::OperationError::downcast_ref).
//! * An [`Operation`](crate::Operation) handle used after its body returned still publishes to the sink and the
//!   handlers, but the finished operation's recorded signals no longer change.
//! * Other pieces worth knowing: [`AsyncSignalProcessor::cancel`](crate::AsyncSignalProcessor::cancel),
//!   [`SignalDispatcher::with_limits`](crate::SignalDispatcher::with_limits) and its counters,
//!   [`KeyedWorkCoordinator::active_keys`](crate::KeyedWorkCoordinator::active_keys) and [`KeyedWorkCoordinator::signals_for`](crate::KeyedWorkCoordinator::signals_for),
//!   [`Subscription`](crate::Subscription) guards, the re-exported [`CancellationToken`](crate::CancellationToken), [`now`](crate::now) (the library's
//!   clock as a `SystemTime`), [`Operation::emit_event`](crate::Operation::emit_event) and [`Operation::emit_caused_event`](crate::Operation::emit_caused_event)
//!   (which return the event, for chains), [`SignalSink::stream`](crate::SignalSink::stream) / [`SignalStream`](crate::SignalStream), and
//!   [`SignalDispatcher::attach`](crate::SignalDispatcher::attach) / [`SignalDispatcher::replace`](crate::SignalDispatcher::replace).
//! * [`SignalDispatcher::register`](crate::SignalDispatcher::register) adds a handler even for a pattern that already has one:
//!   both run, in registration order (use [`SignalDispatcher::replace`](crate::SignalDispatcher::replace) to swap).
//! * [`Options::validate`](crate::Options::validate) also rejects a zero `max_queued_signals`, a zero
//!   `max_pending_per_key`, and a zero `defer_check_interval` when deferral is on.
//! * The window is exact for every read, but its memory bound is per worker: finished records
//!   live in per-worker shards of at most `max_tracked_operations` each, trimmed to the newest
//!   `max_tracked_operations` by every read (see [`Options::max_tracked_operations`](crate::Options::max_tracked_operations)). So
//!   recording an operation never touches a line another worker writes.
//! * `enqueue` on a full queue first yields to the runtime once (workers usually free room in
//!   bursts), then waits to be told of room.
//! * [`Options::name_ref`](crate::Options::name_ref) replaces `Options::get_name` (no `get_`
//!   prefix, as the API guidelines ask of getters); the old name still works, deprecated.
//! * The single-counter getters (`pending_count`, `active_count`, `total_enqueued`,
//!   `total_cancelled`) read their own counter; `total_completed` / `total_failed` sum the
//!   workers' counts; none of them builds a whole [`Stats`](crate::Stats).
