//! The signal side of [`Options`]: gates, the sink, ttls, constraints and handlers.

use super::Options;
use crate::outcome::Outcome;
use crate::signal::handler::async_handler;
use crate::signal::{SignalConstraints, SignalEvent, SignalRetracted, SignalSink};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

impl Options {
    /// Glob patterns (entries may be comma lists): while a matching signal is present in the
    /// window or the configured sink, new items are refused with `Rejected` and queued items
    /// are not started (counted as cancelled).
    ///
    /// **How long a signal counts**: a signal emitted by an operation counts as long as its
    /// operation stays in the window (`max_operation_lifetime` after it finished, 5 minutes
    /// by default, or until pushed out by newer ones), unless it has a ttl
    /// ([`Operation::emit_for`](crate::Operation::emit_for), [`signal_ttl`](Self::signal_ttl)):
    /// then it counts until the ttl runs out. A signal on the sink counts until the sink's
    /// `max_age` (or its ttl) runs out, or the sink is cleared.
    pub fn cancel_on_signals<I>(mut self, patterns: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.cancel_on_signals = strings(patterns);
        self
    }

    /// Glob patterns (entries may be comma lists): while a matching signal is present, the next
    /// start waits, re-checking every [`defer_check_interval`](Self::defer_check_interval), up
    /// to [`max_defer_attempts`](Self::max_defer_attempts) times, then runs anyway (counted in
    /// [`Stats::defer_timeouts`](crate::Stats::defer_timeouts)). While a start waits, the
    /// waiting workers show in [`Stats::deferred`](crate::Stats::deferred).
    ///
    /// A signal counts as long as its operation stays in the window unless it has a ttl (see
    /// [`cancel_on_signals`](Self::cancel_on_signals)): for a back-off, emit it with
    /// [`Operation::emit_for`](crate::Operation::emit_for), or set
    /// [`signal_ttl`](Self::signal_ttl), or every later start waits out all its attempts for
    /// as long as the failed operation is listed.
    pub fn defer_on_signals<I>(mut self, patterns: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.defer_on_signals = strings(patterns);
        self
    }

    /// How many checks a deferred start makes before running anyway.
    pub fn max_defer_attempts(mut self, attempts: u32) -> Self {
        self.max_defer_attempts = attempts;
        self.max_defer_attempts_set = true;
        self
    }

    /// Time between two checks of a deferred start (must not be zero).
    pub fn defer_check_interval(mut self, interval: Duration) -> Self {
        self.defer_check_interval = interval;
        self
    }

    /// A shared sink: operation signals are raised there too, and `cancel_on_signals` /
    /// `defer_on_signals` consult it.
    pub fn signals(mut self, sink: SignalSink) -> Self {
        self.signals = Some(sink);
        self
    }

    /// A time to live for every signal bodies emit with [`Operation::emit`] and
    /// [`Operation::emit_caused`] (default `None`: a signal stays as long as its operation
    /// stays in the window). When it runs out the signal retracts itself, even from an
    /// operation that has finished: `on_signal_retracted` handlers run (the event's
    /// [`is_expiry`](crate::SignalRetracted::is_expiry) is true), `defer_on_signals` /
    /// `cancel_on_signals` gates release, window queries stop returning it, and a sink that
    /// received it stops returning it too. [`Operation::emit_for`] sets a ttl per signal.
    ///
    /// The window remains the failure log (kept by `max_tracked_operations` and
    /// `max_operation_lifetime`); the ttl only bounds how long a signal steers other work.
    ///
    /// [`Operation::emit`]: crate::Operation::emit
    /// [`Operation::emit_caused`]: crate::Operation::emit_caused
    /// [`Operation::emit_for`]: crate::Operation::emit_for
    pub fn signal_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.signal_ttl = ttl;
        self
    }

    /// Propagation limits for [`Operation::emit_caused`](crate::Operation::emit_caused); without
    /// them nothing is blocked.
    pub fn signal_constraints(mut self, constraints: SignalConstraints) -> Self {
        self.signal_constraints = Some(constraints);
        self
    }

    /// Called synchronously, on the emitting task, for every signal an operation emits. Keep it
    /// fast; a panic in it is contained.
    pub fn on_signal(mut self, f: impl Fn(&SignalEvent) + Send + Sync + 'static) -> Self {
        self.on_signal = Some(Arc::new(f));
        self
    }

    /// Queued async handler for every emitted signal, run in the background with at most
    /// [`max_concurrent_signal_handlers`](Self::max_concurrent_signal_handlers) at once; when
    /// [`max_queued_signals`](Self::max_queued_signals) wait, the oldest is dropped and counted.
    pub fn on_signal_async<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(SignalEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        self.on_signal_async = Some(async_handler(f));
        self
    }

    /// Called synchronously for every retraction.
    pub fn on_signal_retracted(
        mut self,
        f: impl Fn(&SignalRetracted) + Send + Sync + 'static,
    ) -> Self {
        self.on_signal_retracted = Some(Arc::new(f));
        self
    }

    /// Queued async handler for every retraction (same queue rules as
    /// [`on_signal_async`](Self::on_signal_async)).
    pub fn on_signal_retracted_async<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(SignalRetracted) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        self.on_signal_retracted_async = Some(async_handler(f));
        self
    }

    /// Async handlers running at once (must be at least 1).
    pub fn max_concurrent_signal_handlers(mut self, n: usize) -> Self {
        self.max_concurrent_signal_handlers = n;
        self
    }

    /// Signals waiting for an async handler before the oldest is dropped (must be at least 1).
    pub fn max_queued_signals(mut self, n: usize) -> Self {
        self.max_queued_signals = n;
        self
    }
}

fn strings<I>(patterns: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    patterns.into_iter().map(Into::into).collect()
}
