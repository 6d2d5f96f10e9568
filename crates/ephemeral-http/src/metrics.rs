//! `GET metrics`: Prometheus text through a recorder of our own, never installed globally.

use crate::registry::Registry;
use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_counter!("ephemeral_enqueued_total", Unit::Count, "Items accepted.");
            describe_counter!(
                "ephemeral_finished_total",
                Unit::Count,
                "Operations finished, by outcome: completed (Ok) or failed (Err or panic)."
            );
            describe_counter!(
                "ephemeral_cancelled_total",
                Unit::Count,
                "Items dropped before they started."
            );
            describe_gauge!("ephemeral_pending", Unit::Count, "Items waiting to start.");
            describe_gauge!("ephemeral_active", Unit::Count, "Bodies running now.");
            describe_gauge!(
                "ephemeral_max_concurrency",
                Unit::Count,
                "The current concurrency limit."
            );
            describe_gauge!(
                "ephemeral_deferred",
                Unit::Count,
                "Starts held back by a defer signal right now."
            );
            describe_gauge!(
                "ephemeral_sink_signals",
                Unit::Count,
                "Signals held by a registered sink."
            );
        });
        Metrics { recorder, handle }
    }

    /// Sets every series from the registry's current numbers, then renders them.
    pub(crate) fn render(&self, registry: &Registry) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            for (name, c) in registry.coordinators() {
                let s = c.stats();
                let label = [("coordinator", name.to_string())];
                counter!("ephemeral_enqueued_total", &label).absolute(s.enqueued);
                let finished = |outcome: &'static str| {
                    [
                        ("coordinator", name.to_string()),
                        ("outcome", outcome.to_string()),
                    ]
                };
                counter!("ephemeral_finished_total", &finished("completed")).absolute(s.completed);
                counter!("ephemeral_finished_total", &finished("failed")).absolute(s.failed);
                counter!("ephemeral_cancelled_total", &label).absolute(s.cancelled);
                gauge!("ephemeral_pending", &label).set(s.pending as f64);
                gauge!("ephemeral_active", &label).set(s.active as f64);
                gauge!("ephemeral_max_concurrency", &label).set(s.max_concurrency as f64);
                gauge!("ephemeral_deferred", &label).set(s.deferred as f64);
            }
            for (name, sink) in registry.sinks() {
                let label = [("sink", name.to_string())];
                gauge!("ephemeral_sink_signals", &label).set(sink.len() as f64);
            }
        });
        self.handle.render()
    }
}
