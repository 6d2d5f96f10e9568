//! The JSON documents the endpoints answer with.

use crate::registry::Registry;
use crate::time::format_rfc3339_millis;
use ephemeral::pattern::Pattern;
use ephemeral::{AnyCoordinator, OperationSnapshot, SignalEvent, SignalSource};
use serde::Serialize;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `GET api/status`.
#[derive(Serialize)]
pub(crate) struct StatusDoc {
    coordinators: Vec<CoordinatorStatus>,
    sinks: Vec<SinkStatus>,
    time: String,
    controls: bool,
}

/// One coordinator in the status document (also the answer of the control endpoints).
#[derive(Serialize)]
pub(crate) struct CoordinatorStatus {
    name: String,
    max_concurrency: usize,
    paused: bool,
    closed: bool,
    pending: usize,
    active: usize,
    enqueued: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    deferred: usize,
    dynamic: bool,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
}

#[derive(Serialize)]
struct SinkStatus {
    name: String,
    len: usize,
}

/// One operation of `GET api/coordinators/{name}/operations`.
#[derive(Serialize)]
pub(crate) struct OperationDoc {
    id: String,
    key: Option<String>,
    label: Option<String>,
    state: &'static str,
    started: String,
    completed: Option<String>,
    duration_ms: f64,
    error: Option<String>,
    signals: Vec<String>,
    pinned: bool,
}

/// One signal of `GET api/signals` and of the `signal` server-sent event.
#[derive(Serialize)]
pub(crate) struct SignalDoc {
    signal: String,
    key: Option<String>,
    operation_id: String,
    timestamp: String,
    source: String,
}

fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(millis(sorted[rank.clamp(1, sorted.len()) - 1]))
}

pub(crate) fn coordinator_status(name: &str, c: &dyn AnyCoordinator) -> CoordinatorStatus {
    let stats = c.stats();
    let mut durations: Vec<Duration> = c
        .snapshot()
        .iter()
        .filter_map(OperationSnapshot::duration)
        .collect();
    durations.sort_unstable();
    CoordinatorStatus {
        name: name.to_owned(),
        max_concurrency: stats.max_concurrency,
        paused: stats.paused,
        closed: stats.closed,
        pending: stats.pending,
        active: stats.active,
        enqueued: stats.enqueued,
        completed: stats.completed,
        failed: stats.failed,
        cancelled: stats.cancelled,
        deferred: stats.deferred,
        dynamic: c.is_dynamic(),
        p50_ms: percentile(&durations, 0.50),
        p95_ms: percentile(&durations, 0.95),
    }
}

pub(crate) fn status(registry: &Registry, controls: bool) -> StatusDoc {
    StatusDoc {
        coordinators: registry
            .coordinators()
            .iter()
            .map(|(name, c)| coordinator_status(name, &**c))
            .collect(),
        sinks: registry
            .sinks()
            .iter()
            .map(|(name, s)| SinkStatus {
                name: name.to_string(),
                len: s.len(),
            })
            .collect(),
        time: format_rfc3339_millis(ephemeral::now()),
        controls,
    }
}

/// The window's operations: running first (newest started first), then finished ones, newest
/// finished first.
pub(crate) fn operations(c: &dyn AnyCoordinator) -> Vec<OperationDoc> {
    let now = ephemeral::now();
    let mut ops = c.snapshot();
    ops.sort_by(|a, b| match (a.completed(), b.completed()) {
        (None, None) => b.started().cmp(&a.started()),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x),
    });
    ops.iter()
        .map(|op| OperationDoc {
            id: op.id().to_string(),
            key: op.key().map(str::to_owned),
            label: op.label().map(str::to_owned),
            state: if op.is_running() {
                "running"
            } else if op.is_faulted() {
                "failed"
            } else {
                "completed"
            },
            started: format_rfc3339_millis(op.started()),
            completed: op.completed().map(format_rfc3339_millis),
            duration_ms: millis(
                op.duration()
                    .unwrap_or_else(|| now.duration_since(op.started()).unwrap_or_default()),
            ),
            error: op.error().map(ToString::to_string),
            signals: op.signals().iter().map(|s| s.to_string()).collect(),
            pinned: op.is_pinned(),
        })
        .collect()
}

pub(crate) fn signal_doc(source: &str, e: &SignalEvent) -> SignalDoc {
    SignalDoc {
        signal: e.signal().to_owned(),
        key: e.key().map(str::to_owned),
        operation_id: e.operation_id().to_string(),
        timestamp: format_rfc3339_millis(e.timestamp()),
        source: source.to_owned(),
    }
}

/// Which signals `GET api/signals` answers with.
#[derive(Default)]
pub(crate) struct SignalFilter {
    pub(crate) pattern: Option<Pattern>,
    pub(crate) key: Option<String>,
    pub(crate) since: Option<SystemTime>,
    pub(crate) limit: usize,
}

impl SignalFilter {
    pub(crate) fn keeps(&self, e: &SignalEvent) -> bool {
        self.pattern.as_ref().is_none_or(|p| p.matches(e.signal()))
            && self.key.as_deref().is_none_or(|k| e.key() == Some(k))
            && self.since.is_none_or(|s| e.timestamp() >= s)
    }
}

/// The newest `filter.limit` signals of every coordinator and sink, newest first. An event seen
/// both through a coordinator and a sink (a coordinator raising into a sink) is listed once,
/// under the coordinator's name.
pub(crate) fn signals(registry: &Registry, filter: &SignalFilter) -> Vec<SignalDoc> {
    let mut found: Vec<(SignalEvent, Arc<str>)> = Vec::new();
    let mut seen: HashSet<SignalEvent> = HashSet::new();
    let mut take = |name: &Arc<str>, e: &SignalEvent| {
        if filter.keeps(e) && seen.insert(e.clone()) {
            found.push((e.clone(), name.clone()));
        }
        ControlFlow::Continue(())
    };
    for (name, c) in registry.coordinators() {
        c.visit_signals(&mut |e| take(&name, e));
    }
    for (name, s) in registry.sinks() {
        s.visit_signals(&mut |e| take(&name, e));
    }
    found.sort_by_key(|(e, _)| std::cmp::Reverse(e.timestamp()));
    found.truncate(filter.limit);
    found.iter().map(|(e, name)| signal_doc(name, e)).collect()
}
