//! The optional exports: `metrics` counters and histogram, `tracing` spans and events.
#![cfg(all(feature = "metrics", feature = "tracing"))]

use ephemeral::{Operation, Options, WorkCoordinator};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[tokio::test]
async fn counters_and_the_duration_histogram_follow_the_work() {
    // The recorder is installed before the coordinator is built, as the docs ask.
    let snapshotter = global_recorder();
    let c = {
        WorkCoordinator::new(
            |n: u32, op: Operation| async move {
                if n % 4 == 0 {
                    op.emit("http.error.503");
                    return Err("down");
                }
                Ok(())
            },
            Options::default().name("fetcher").max_concurrency(3),
        )
    };
    for n in 0..20 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    let mut found: HashMap<String, u64> = HashMap::new();
    let mut gauges: HashMap<String, f64> = HashMap::new();
    let mut durations = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        if !labels.contains(&"coordinator=fetcher".to_string()) {
            continue; // another test's coordinator
        }
        assert!(labels
            .iter()
            .all(|l| !l.starts_with("id") && !l.starts_with("key")));
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(v) => {
                found.insert(name, v);
            }
            DebugValue::Histogram(values) => durations += values.len(),
            DebugValue::Gauge(v) => {
                gauges.insert(name, v.into_inner());
            }
        }
    }
    assert_eq!(found["ephemeral_enqueued_total{coordinator=fetcher}"], 20);
    assert_eq!(
        found["ephemeral_finished_total{coordinator=fetcher,outcome=completed}"],
        15
    );
    assert_eq!(
        found["ephemeral_finished_total{coordinator=fetcher,outcome=failed}"],
        5
    );
    assert_eq!(
        found["ephemeral_signals_total{coordinator=fetcher,signal=http.error.503}"],
        5
    );
    assert_eq!(durations, 20);
    assert_eq!(gauges["ephemeral_pending{coordinator=fetcher}"], 0.0);
    assert_eq!(gauges["ephemeral_active{coordinator=fetcher}"], 0.0);
    assert_eq!(
        gauges["ephemeral_max_concurrency{coordinator=fetcher}"],
        3.0
    );
}

/// The test binary's global recorder (installed once).
fn global_recorder() -> metrics_util::debugging::Snapshotter {
    static SNAPSHOTTER: std::sync::OnceLock<metrics_util::debugging::Snapshotter> =
        std::sync::OnceLock::new();
    SNAPSHOTTER
        .get_or_init(|| {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder
                .install()
                .expect("no other recorder in this test binary");
            snapshotter
        })
        .clone()
}

/// Records spans named `ephemeral.op` with their fields, and the events inside them.
#[derive(Clone, Default)]
struct Spans {
    /// Every `ephemeral.op` span's fields, in creation order (span ids are reused once a span
    /// closes, so they index `live` only).
    ops: Arc<Mutex<Vec<HashMap<String, String>>>>,
    live: Arc<Mutex<HashMap<u64, usize>>>,
    /// (index in `ops`, signal) of each signal event inside an `ephemeral.op` span.
    signals_in_ops: Arc<Mutex<Vec<(usize, String)>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);
impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "ephemeral.op" {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            let mut ops = self.ops.lock().unwrap();
            ops.push(fields);
            self.live
                .lock()
                .unwrap()
                .insert(id.into_u64(), ops.len() - 1);
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        // `live`'s guard is released before `ops` is locked: `on_new_span` takes `ops`, then
        // `live`, and holding both here in the other order deadlocked parallel tests.
        let at = self.live.lock().unwrap().get(&id.into_u64()).copied();
        if let Some(at) = at {
            values.record(&mut Fields(&mut self.ops.lock().unwrap()[at]));
        }
    }
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        if let (Some(signal), Some(span)) = (fields.get("signal"), ctx.event_span(event)) {
            if let Some(&at) = self.live.lock().unwrap().get(&span.id().into_u64()) {
                self.signals_in_ops
                    .lock()
                    .unwrap()
                    .push((at, signal.clone()));
            }
        }
    }
}

/// The test binary's global subscriber (installed once: tests run on several threads, and a
/// thread-scoped one would race with callsites registered elsewhere).
fn global_spans() -> Spans {
    static SPANS: std::sync::OnceLock<Spans> = std::sync::OnceLock::new();
    SPANS
        .get_or_init(|| {
            let spans = Spans::default();
            let subscriber = tracing_subscriber::registry().with(spans.clone());
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other subscriber in this test binary");
            spans
        })
        .clone()
}

#[tokio::test(flavor = "current_thread")]
async fn each_operation_runs_in_a_span_with_its_outcome_and_signals() {
    let spans = global_spans();
    let c = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            op.emit("seen");
            if n == 1 {
                Err("bad")
            } else {
                Ok(())
            }
        },
        Options::default().name("spans").max_concurrency(1),
    );
    let ok = c.enqueue(0).await.unwrap();
    let bad = c.enqueue(1).await.unwrap();
    c.complete();
    c.drain().await;
    let ops = spans.ops.lock().unwrap();
    let mine: HashMap<usize, &HashMap<String, String>> = ops
        .iter()
        .enumerate()
        .filter(|(_, f)| f["coordinator"] == "spans")
        .collect();
    assert_eq!(mine.len(), 2);
    let by_id: HashMap<String, &HashMap<String, String>> =
        mine.values().map(|f| (f["id"].clone(), *f)).collect();
    assert_eq!(by_id[&ok.to_string()]["outcome"], "completed");
    assert_eq!(by_id[&bad.to_string()]["outcome"], "failed");
    let signals: Vec<String> = spans
        .signals_in_ops
        .lock()
        .unwrap()
        .iter()
        .filter(|(span, _)| mine.contains_key(span))
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(signals, ["seen", "seen"]);
}
