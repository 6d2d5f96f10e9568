//! Optional exports: `metrics` counters and a histogram (feature `metrics`), a `tracing` span
//! per operation (feature `tracing`). With both features off every call here is empty and
//! compiles away.
//!
//! Metric handles are resolved once, when the coordinator is built, from the recorder
//! installed then (so install yours before building coordinators); the hot path then pays
//! one handle call per event, and next to nothing when no recorder is installed. The
//! per-signal counter is looked up at each emission (signal names are not known in advance). Labels are the
//! coordinator's name (or `unnamed`), the outcome and the signal name: never ids or keys,
//! whose number is unbounded.

#[cfg(feature = "metrics")]
use std::sync::Arc;
use std::time::Duration;

/// The coordinator's metric handles.
#[cfg(feature = "metrics")]
struct Metrics {
    name: Arc<str>,
    enqueued: metrics::Counter,
    completed: metrics::Counter,
    failed: metrics::Counter,
    cancelled: metrics::Counter,
    duration: metrics::Histogram,
    pending: metrics::Gauge,
    active: metrics::Gauge,
    limit: metrics::Gauge,
}

/// What a coordinator exports.
pub(crate) struct Telemetry {
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

/// The label a nameless coordinator's metrics and spans carry.
#[cfg(any(feature = "metrics", feature = "tracing"))]
pub(crate) const UNNAMED: &str = "unnamed";

impl Telemetry {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: Option<&str>) -> Self {
        #[cfg(feature = "metrics")]
        {
            let name: Arc<str> = Arc::from(name.unwrap_or(UNNAMED));
            let c =
                |metric: &'static str| metrics::counter!(metric, "coordinator" => name.to_string());
            let outcome = |outcome: &'static str| {
                metrics::counter!(
                    "ephemeral_finished_total",
                    "coordinator" => name.to_string(),
                    "outcome" => outcome
                )
            };
            let g =
                |metric: &'static str| metrics::gauge!(metric, "coordinator" => name.to_string());
            Telemetry {
                metrics: Metrics {
                    pending: g("ephemeral_pending"),
                    active: g("ephemeral_active"),
                    limit: g("ephemeral_max_concurrency"),
                    enqueued: c("ephemeral_enqueued_total"),
                    completed: outcome("completed"),
                    failed: outcome("failed"),
                    cancelled: c("ephemeral_cancelled_total"),
                    duration: metrics::histogram!(
                        "ephemeral_operation_duration_seconds",
                        "coordinator" => name.to_string()
                    ),
                    name,
                },
            }
        }
        #[cfg(not(feature = "metrics"))]
        Telemetry {}
    }

    /// An item was accepted into the queue.
    #[inline]
    pub(crate) fn accepted(&self) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.enqueued.increment(1);
            self.metrics.pending.increment(1.0);
        }
    }

    /// A source's item was refused: counted as accepted and cancelled (it never queued).
    #[inline]
    pub(crate) fn accepted_cancelled(&self) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.enqueued.increment(1);
            self.metrics.cancelled.increment(1);
        }
    }

    /// A worker took a queued item, to start it (`started: true`) or to drop it unstarted.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn taken(&self, started: bool) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.pending.decrement(1.0);
            if started {
                self.metrics.active.increment(1.0);
            } else {
                self.metrics.cancelled.increment(1);
            }
        }
    }

    /// Queued items were dropped by a cancel.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn dropped(&self, n: u64) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.pending.decrement(n as f64);
            self.metrics.cancelled.increment(n);
        }
    }

    /// An operation finished after `ran`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn finished(&self, ok: bool, ran: Duration) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.active.decrement(1.0);
            if ok {
                self.metrics.completed.increment(1);
            } else {
                self.metrics.failed.increment(1);
            }
            self.metrics.duration.record(ran.as_secs_f64());
        }
    }

    /// The concurrency limit is now `n`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn limit(&self, n: usize) {
        #[cfg(feature = "metrics")]
        self.metrics.limit.set(n as f64);
    }

    /// An operation emitted `signal` (one counter per signal name: names are few, by design).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn signal(&self, signal: &str) {
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "ephemeral_signals_total",
            "coordinator" => self.metrics.name.to_string(),
            "signal" => signal.to_string()
        )
        .increment(1);
    }
}

/// Describes the metrics (units and help texts) on the installed recorder. Call it once after
/// installing yours, if you want HELP lines.
///
/// ```
/// ephemeral::describe_metrics();
/// ```
#[cfg(feature = "metrics")]
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "ephemeral_enqueued_total",
        "Items accepted by the coordinator"
    );
    describe_counter!(
        "ephemeral_finished_total",
        "Operations finished, by outcome (completed or failed)"
    );
    describe_counter!(
        "ephemeral_cancelled_total",
        "Items dropped before starting (cancel, cancel-on signals)"
    );
    describe_counter!(
        "ephemeral_signals_total",
        "Signals emitted by operations, by name"
    );
    describe_histogram!(
        "ephemeral_operation_duration_seconds",
        Unit::Seconds,
        "How long operation bodies ran"
    );
    describe_gauge!("ephemeral_pending", "Items waiting to start");
    describe_gauge!("ephemeral_active", "Bodies running now");
    describe_gauge!("ephemeral_max_concurrency", "The concurrency limit");
}
