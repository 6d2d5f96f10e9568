//! Signals: short names that operations emit and other code senses.
//!
//! * [`SignalEvent`] / [`SignalRetracted`]: what was raised or retracted, by whom, when.
//! * [`SignalSource`]: one query vocabulary for coordinators and sinks.
//! * [`SignalSink`]: a shared, bounded, self-cleaning window of events.
//! * [`SignalStream`]: a bounded, lossy async stream of the events raised on a sink.
//! * [`SignalConstraints`]: limits on chains of signals causing signals.
//! * [`AsyncSignalProcessor`]: a bounded background queue of async handlers.
//! * [`SignalDispatcher`]: routes events to handlers by glob pattern.

pub(crate) mod constraints;
mod dispatcher;
pub(crate) mod event;
pub(crate) mod handler;
pub(crate) mod processor;
mod runner;
mod sink;
mod source;
mod stream;

pub use constraints::{BlockReason, SignalConstraints};
pub use dispatcher::SignalDispatcher;
pub use event::{SignalEvent, SignalRetracted};
pub use processor::AsyncSignalProcessor;
pub use sink::{SignalSink, Subscription};
pub use source::SignalSource;
pub use stream::SignalStream;
