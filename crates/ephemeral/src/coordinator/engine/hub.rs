//! Where an operation's signals go: the coordinator-wide signal plumbing.
//!
//! # Invariants
//!
//! * Shared by every operation of one coordinator; immutable after construction except
//!   through its parts' own synchronisation (gates, expiry, processors).
//! * `publish` and `retracted` run user code (`on_signal`, the sink's subscribers, handlers):
//!   they are called with no engine lock held, and a panicking sync handler is contained.

use super::expiry::Expiry;
use super::gates::Gates;
use crate::options::Options;
use crate::pattern::PatternSet;
use crate::signal::handler::SyncHandler;
use crate::signal::processor::Processor;
use crate::signal::{SignalConstraints, SignalEvent, SignalRetracted, SignalSink};
use crate::telemetry::Telemetry;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Shared by every operation of one coordinator.
pub(crate) struct Hub {
    pub(crate) token: CancellationToken,
    pub(crate) sink: Option<SignalSink>,
    pub(crate) constraints: Option<SignalConstraints>,
    on_signal: Option<SyncHandler<SignalEvent>>,
    on_retracted: Option<SyncHandler<SignalRetracted>>,
    signal_processor: Option<Processor<SignalEvent>>,
    retract_processor: Option<Processor<SignalRetracted>>,
    pub(crate) gates: Gates,
    /// Ends of signals with a ttl.
    pub(crate) expiry: Arc<Expiry>,
    /// The ttl `emit` gives a body's signals (`Options::signal_ttl`).
    pub(crate) signal_ttl: Option<Duration>,
    /// Metrics (feature `metrics`).
    pub(crate) telemetry: Telemetry,
    /// The coordinator's name, for spans (feature `tracing`).
    #[cfg(feature = "tracing")]
    pub(crate) name: std::sync::Arc<str>,
}

impl Hub {
    /// Builds the plumbing; starts async processors if handlers are configured (needs a
    /// runtime then).
    pub(crate) fn new(options: &Options, token: CancellationToken) -> Self {
        let processor = |h| {
            Processor::without_token(
                h,
                options.max_concurrent_signal_handlers,
                options.max_queued_signals,
            )
        };
        Hub {
            token,
            sink: options.signals.clone(),
            constraints: options.signal_constraints.clone(),
            on_signal: options.on_signal.clone(),
            on_retracted: options.on_signal_retracted.clone(),
            signal_processor: options.on_signal_async.clone().map(processor),
            retract_processor: options.on_signal_retracted_async.clone().map(|h| {
                Processor::without_token(
                    h,
                    options.max_concurrent_signal_handlers,
                    options.max_queued_signals,
                )
            }),
            gates: Gates::new(
                PatternSet::from_entries(&options.cancel_on_signals),
                PatternSet::from_entries(&options.defer_on_signals),
                options.signals.clone(),
            ),
            expiry: Arc::new(Expiry::new()),
            signal_ttl: options.signal_ttl,
            telemetry: Telemetry::new(options.name.as_deref()),
            #[cfg(feature = "tracing")]
            name: options
                .name
                .clone()
                .unwrap_or_else(|| std::sync::Arc::from(crate::telemetry::UNNAMED)),
        }
    }

    /// An operation emitted `event`: counts it, schedules its end if `expires` (it was recorded
    /// and has a ttl), and publishes it.
    pub(crate) fn emitted(&self, event: &SignalEvent, expires: bool) {
        self.telemetry.signal(event.signal());
        if expires {
            self.expiry.schedule(event.clone());
        }
        self.publish(event);
    }

    /// Sends an emitted event to the sink and the handlers.
    pub(crate) fn publish(&self, event: &SignalEvent) {
        if let Some(sink) = &self.sink {
            sink.raise_event(event.clone());
        }
        if let Some(f) = &self.on_signal {
            let _ = catch_unwind(AssertUnwindSafe(|| f(event)));
        }
        if let Some(p) = &self.signal_processor {
            p.enqueue(event.clone());
        }
    }

    /// Sends a retraction to the handlers.
    pub(crate) fn retracted(&self, event: SignalRetracted) {
        if let Some(f) = &self.on_retracted {
            let _ = catch_unwind(AssertUnwindSafe(|| f(&event)));
        }
        if let Some(p) = &self.retract_processor {
            p.enqueue(event);
        }
    }

    /// Whether the async handler queues are empty and no handler runs.
    pub(crate) fn handlers_idle(&self) -> bool {
        self.signal_processor
            .as_ref()
            .is_none_or(Processor::is_idle)
            && self
                .retract_processor
                .as_ref()
                .is_none_or(Processor::is_idle)
    }

    /// Resolves once the async handler queues are empty and no handler runs.
    pub(crate) async fn handlers_settled(&self) {
        // A retraction handler cannot queue signals, but a signal handler could (through an
        // operation handle it kept): loop until both are idle at one look.
        while !self.handlers_idle() {
            if let Some(p) = &self.signal_processor {
                p.idle().await;
            }
            if let Some(p) = &self.retract_processor {
                p.idle().await;
            }
        }
    }

    /// Signals dropped by the async handler queues.
    pub(crate) fn handler_drops(&self) -> u64 {
        self.signal_processor
            .as_ref()
            .map_or(0, Processor::dropped_count)
            + self
                .retract_processor
                .as_ref()
                .map_or(0, Processor::dropped_count)
    }

    /// Async signal handlers that failed.
    pub(crate) fn handler_failures(&self) -> u64 {
        self.signal_processor
            .as_ref()
            .map_or(0, Processor::failed_count)
            + self
                .retract_processor
                .as_ref()
                .map_or(0, Processor::failed_count)
    }
}
