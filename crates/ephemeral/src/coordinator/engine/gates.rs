//! Cancel-on-signal and defer-on-signal gates.
//!
//! A gate is "active" while a signal matching its patterns is present in the coordinator's
//! window or in the configured sink. Checking must be cheap because it happens per item, so
//! nothing is scanned on the fast path:
//!
//! * the window side keeps an exact count of live window signals matching the patterns,
//!   updated when signals are emitted, retracted, or leave the window; a positive count may
//!   include expired operations not yet dropped, so the coordinator purges and re-reads it;
//! * the sink side caches the last answer with the sink's change generation and, when a match
//!   was present, the instant until which it surely stays (events only disappear by ageing,
//!   which the deadline covers, or by raises and clears, which move the generation).
//!
//! # Invariants
//!
//! * A gate's window count equals the live window signals matching it, plus matches on
//!   expired operations not yet purged, once every emit, retract or removal in flight has
//!   returned: it is raised under the slot's lock as a signal is recorded, and lowered as one
//!   is retracted or leaves the window.
//! * The sink cache lock is taken with no engine lock held, and the sink's lock under it
//!   (see the engine's lock order).

use super::{Intake, Shared};
use crate::pattern::PatternSet;
use crate::signal::SignalSink;
use crate::sync::atomic::{AtomicIsize, Ordering};
use crate::sync::Mutex;
use crate::time;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GateKind {
    Cancel,
    Defer,
}

pub(crate) struct Gates {
    cancel: Gate,
    defer: Gate,
    sink: Option<SignalSink>,
}

struct Gate {
    patterns: PatternSet,
    window_hits: AtomicIsize,
    cache: Mutex<Option<SinkAnswer>>,
}

#[derive(Clone, Copy)]
struct SinkAnswer {
    generation: u64,
    /// `Some(deadline)` if a match is present until then; `None` if none is present.
    until: Option<Instant>,
}

impl Gate {
    fn new(patterns: PatternSet) -> Self {
        Gate {
            patterns,
            window_hits: AtomicIsize::new(0),
            cache: Mutex::new(None),
        }
    }

    fn sink_active(&self, sink: &SignalSink) -> bool {
        let generation = sink.generation();
        let mut cache = self.cache.lock();
        if let Some(answer) = *cache {
            if answer.generation == generation {
                match answer.until {
                    None => return false,
                    Some(deadline) if time::now() <= deadline => return true,
                    Some(_) => {}
                }
            }
        }
        let until = sink.matching_until(&self.patterns);
        *cache = Some(SinkAnswer { generation, until });
        until.is_some()
    }
}

impl Gates {
    pub(crate) fn new(cancel: PatternSet, defer: PatternSet, sink: Option<SignalSink>) -> Self {
        Gates {
            cancel: Gate::new(cancel),
            defer: Gate::new(defer),
            sink,
        }
    }

    fn gate(&self, kind: GateKind) -> &Gate {
        match kind {
            GateKind::Cancel => &self.cancel,
            GateKind::Defer => &self.defer,
        }
    }

    /// Whether any gate is configured (otherwise no bookkeeping happens at all).
    pub(crate) fn any(&self) -> bool {
        !self.cancel.patterns.is_empty() || !self.defer.patterns.is_empty()
    }

    pub(crate) fn configured(&self, kind: GateKind) -> bool {
        !self.gate(kind).patterns.is_empty()
    }

    /// A window signal appeared.
    pub(crate) fn added(&self, name: &str) {
        for gate in [&self.cancel, &self.defer] {
            if !gate.patterns.is_empty() && gate.patterns.matches(name) {
                gate.window_hits.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// A window signal went away.
    pub(crate) fn removed_one(&self, name: &str) {
        for gate in [&self.cancel, &self.defer] {
            if !gate.patterns.is_empty() && gate.patterns.matches(name) {
                gate.window_hits.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Whether the window may hold a matching signal (exact once expired operations are purged).
    pub(crate) fn window_maybe(&self, kind: GateKind) -> bool {
        self.gate(kind).window_hits.load(Ordering::Acquire) > 0
    }

    /// Whether the sink holds a matching live signal.
    pub(crate) fn sink_active(&self, kind: GateKind) -> bool {
        let gate = self.gate(kind);
        match &self.sink {
            Some(sink) if !gate.patterns.is_empty() => gate.sink_active(sink),
            _ => false,
        }
    }
}

impl crate::window::OnRemoved for Gates {
    fn removed(&self, signals: &[crate::signal::SignalEvent]) {
        if self.any() {
            for s in signals {
                self.removed_one(s.signal());
            }
        }
    }
}

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    /// Whether a cancel-on / defer-on signal is present (exact: expired operations are purged
    /// before a positive window count is believed).
    pub(super) fn gate_active(&self, kind: GateKind) -> bool {
        let gates = &self.hub.gates;
        if !gates.configured(kind) {
            return false;
        }
        if gates.window_maybe(kind) {
            // Trimming the window to its logical content makes the count exact.
            self.with_window(|_| ());
            if gates.window_maybe(kind) {
                return true;
            }
        }
        gates.sink_active(kind)
    }
}
