//! `SignalSink::remove_where`: exact removal, no notification, and gates that see it.

use ephemeral::{Operation, Options, SignalSink, SignalSource, WorkCoordinator};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn removes_exactly_the_matching_events_and_reports_how_many() {
    let sink = SignalSink::new(100, Duration::from_secs(60));
    for i in 0..10 {
        sink.raise_with_key("maintenance", format!("db-{}", i % 3));
    }
    sink.raise("other");
    assert_eq!(sink.remove_where(|e| e.key() == Some("db-1")), 3);
    assert_eq!(sink.len(), 8);
    assert_eq!(sink.count_signals("maintenance"), 7);
    assert!(sink.signals_for_key("db-1").is_empty());
    assert_eq!(sink.remove_where(|e| e.key() == Some("db-1")), 0);
    assert_eq!(sink.remove_where(|_| true), 8);
    assert!(sink.is_empty());
    // The sink keeps working afterwards, in order.
    sink.raise("a");
    sink.raise("b");
    let names: Vec<String> = sink
        .signals()
        .iter()
        .map(|e| e.signal().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn removal_does_not_call_subscribers() {
    let sink = SignalSink::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let _sub = sink.subscribe(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    sink.raise("x");
    assert_eq!(sink.remove_where(|e| e.is("x")), 1);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn aged_out_events_are_not_offered_to_the_predicate() {
    let sink = SignalSink::new(10, Duration::from_secs(1));
    sink.raise("old");
    tokio::time::advance(Duration::from_secs(2)).await;
    sink.raise("new");
    let mut seen = Vec::new();
    let removed = sink.remove_where(|e| {
        seen.push(e.signal().to_owned());
        false
    });
    assert_eq!(removed, 0);
    assert!(seen.iter().all(|s| s == "new"), "{seen:?}");
}

/// A coordinator deferring on a signal in its sink starts work as soon as the signal is
/// removed by hand, without waiting for it to age out.
#[tokio::test(start_paused = true)]
async fn a_deferring_coordinator_resumes_when_the_signal_is_removed() {
    let sink = SignalSink::new(100, Duration::from_secs(3600));
    sink.raise("rate-limit");
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op: Operation| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::Relaxed);
            }
        },
        Options::default()
            .signals(sink.clone())
            .defer_on_signals(["rate-limit"])
            .max_defer_attempts(u32::MAX),
    );
    for n in 0..5 {
        c.enqueue(n).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        ran.load(Ordering::Relaxed),
        0,
        "deferred while the signal is there"
    );
    assert!(c.stats().deferred > 0);
    assert_eq!(sink.remove_where(|e| e.is("rate-limit")), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ran.load(Ordering::Relaxed), 5);
    c.complete();
    c.drain().await;
}
