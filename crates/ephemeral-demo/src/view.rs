//! What the terminal shows: a live table (redrawn in place on a terminal, a line per second
//! otherwise) and the closing summary.

use crate::sim::Service;
use ephemeral::{SignalSource, Stats};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Signals worth a line in the live view and the summary (prefix match).
const NOTABLE: [&str; 8] = [
    "rate-limit",
    "http.error.",
    "circuit-open",
    "circuit-closed",
    "load.high",
    "load.low",
    "backpressure.shed",
    "payment.failed",
];

fn notable(name: &str) -> Option<&'static str> {
    NOTABLE
        .iter()
        .find(|p| name.starts_with(**p) && !name.starts_with("rate-limit:"))
        .copied()
}

/// One row of the table.
fn row(out: &mut String, name: &str, s: &Stats) {
    let _ = writeln!(
        out,
        "  {name:<11} {limit:>5} {active:>6} {pending:>7} {done:>9} {failed:>7} {cancelled:>9} {deferred:>8}{state}",
        limit = s.max_concurrency,
        active = s.active,
        pending = s.pending,
        done = s.completed,
        failed = s.failed,
        cancelled = s.cancelled,
        deferred = s.deferred,
        state = if s.paused { "  paused" } else { "" },
    );
}

const HEADER: &str = "  coordinator limit active pending completed  failed cancelled deferred";

/// The live view: the table, the producers' counters and the signals of the last 5 s.
pub(crate) fn live(service: &Service, elapsed: Duration, total: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ephemeral demo  {:>4.0}s / {:.0}s   (Ctrl-C ends early)",
        elapsed.as_secs_f64(),
        total.as_secs_f64()
    );
    let _ = writeln!(out, "{HEADER}");
    for (name, c) in service.coordinators() {
        row(&mut out, name, &c.stats());
    }
    let since = ephemeral::now() - Duration::from_secs(5);
    let mut recent: BTreeMap<&str, usize> = BTreeMap::new();
    for e in service.sink.signals_since(since) {
        if let Some(kind) = notable(e.signal()) {
            *recent.entry(kind).or_default() += 1;
        }
    }
    let signals: Vec<String> = recent.iter().map(|(k, n)| format!("{k}×{n}")).collect();
    let _ = writeln!(
        out,
        "  signals (5 s): {}",
        if signals.is_empty() {
            "-".to_string()
        } else {
            signals.join("  ")
        }
    );
    let shed = &service.shed;
    let _ = writeln!(
        out,
        "  shed: {} commands (hot user), {} payments (circuit open {}×); autoscaler moved the limit {}×",
        shed.overloaded.load(Relaxed),
        shed.breaker.load(Relaxed),
        shed.breaker_opened.load(Relaxed),
        shed.scaled.load(Relaxed),
    );
    out
}

/// One line for `--headless` mode.
pub(crate) fn line(service: &Service, elapsed: Duration) -> String {
    let mut parts = vec![format!("[{:>4.0}s]", elapsed.as_secs_f64())];
    for (name, c) in service.coordinators() {
        let s = c.stats();
        parts.push(format!(
            "{name} {}/{} run, {} done, {} failed, {} pending",
            s.active, s.max_concurrency, s.completed, s.failed, s.pending
        ));
    }
    parts.join(" | ")
}

/// The closing summary.
pub(crate) fn summary(service: &Service, ran: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nsummary after {:.1} s", ran.as_secs_f64());
    let _ = writeln!(out, "{HEADER}");
    for (name, c) in service.coordinators() {
        row(&mut out, name, &c.stats());
    }
    let _ = writeln!(out, "\n  signals raised:");
    let raised = service
        .raised
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for (kind, n) in raised {
        let _ = writeln!(out, "    {kind:<20} {n:>6}");
    }
    let shed = &service.shed;
    let _ = writeln!(
        out,
        "\n  shed commands {}, payments refused by the breaker {} (opened {}×), limit changes {}",
        shed.overloaded.load(Relaxed),
        shed.breaker.load(Relaxed),
        shed.breaker_opened.load(Relaxed),
        shed.scaled.load(Relaxed),
    );
    let failures = service.translator.failed();
    if let Some(f) = failures.last() {
        let _ = writeln!(
            out,
            "  last translator failure: {} — {}",
            f.label().unwrap_or("?"),
            f.error().map(ToString::to_string).unwrap_or_default()
        );
    }
    out
}
