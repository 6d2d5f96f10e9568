//! Bad input: zeros, `usize::MAX`, empty and pathological patterns, huge and odd signal names,
//! `Duration::ZERO` and `Duration::MAX`. Each gets a clear error or a documented bound; none
//! panics inside a worker or overflows.

use ephemeral::{
    AsyncSignalProcessor, ConcurrencyError, KeyedWorkCoordinator, Operation, Options, Pattern,
    SignalDispatcher, SignalEvent, SignalSink, SignalSource, WorkCoordinator,
};
use std::time::Duration;

#[test]
fn zero_limits_are_refused_with_the_field_named() {
    let zeros: [(Options, &str); 7] = [
        (Options::default().max_concurrency(0), "max_concurrency"),
        (
            Options::default().max_concurrency_per_key(0),
            "max_concurrency_per_key",
        ),
        (
            Options::default().max_tracked_operations(0),
            "max_tracked_operations",
        ),
        (Options::default().queue_capacity(0), "queue_capacity"),
        (
            Options::default().max_concurrent_signal_handlers(0),
            "max_concurrent_signal_handlers",
        ),
        (
            Options::default().max_queued_signals(0),
            "max_queued_signals",
        ),
        (
            Options::default().max_pending_per_key(0),
            "max_pending_per_key",
        ),
    ];
    for (options, field) in zeros {
        let err = options.validate().unwrap_err();
        assert_eq!(err.field(), field);
        assert!(err.to_string().starts_with(field), "{err}");
    }
    let err = Options::default()
        .defer_on_signals(["x"])
        .defer_check_interval(Duration::ZERO)
        .validate()
        .unwrap_err();
    assert_eq!(err.field(), "defer_check_interval");
}

#[test]
#[should_panic(expected = "invalid ephemeral::Options: max_concurrency must be at least 1")]
fn a_constructor_given_a_zero_limit_panics_in_the_caller_with_the_reason() {
    let _ = WorkCoordinator::new(
        |_: u32, _op: Operation| async {},
        Options::default().max_concurrency(0),
    );
}

#[tokio::test]
async fn set_max_concurrency_refuses_zero_and_takes_usize_max() {
    let c = WorkCoordinator::new(
        |_: u32, _op: Operation| async {},
        Options::default().dynamic_concurrency(true),
    );
    assert_eq!(c.set_max_concurrency(0), Err(ConcurrencyError::Zero));
    assert_eq!(c.set_max_concurrency(usize::MAX), Ok(()));
    assert_eq!(c.max_concurrency(), usize::MAX);
    for i in 0..100 {
        c.enqueue(i).await.unwrap();
    }
    c.complete();
    c.drain().await;
    assert_eq!(c.stats().completed, 100);
}

/// `usize::MAX` and `Duration::MAX` everywhere are bounds, not allocations or overflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_limits_and_durations_are_accepted_and_work() {
    let all_max = Options::default()
        .max_concurrency(usize::MAX)
        .max_concurrency_per_key(usize::MAX)
        .max_tracked_operations(usize::MAX)
        .queue_capacity(usize::MAX)
        .max_pending_per_key(usize::MAX)
        .max_queued_signals(usize::MAX)
        .max_concurrent_signal_handlers(usize::MAX)
        .max_operation_lifetime(Some(Duration::MAX))
        .signal_ttl(Some(Duration::MAX))
        .max_defer_attempts(u32::MAX)
        .defer_check_interval(Duration::MAX)
        .defer_on_signals(["never-raised"])
        .on_signal_async(|_e: SignalEvent| async {});
    all_max.validate().unwrap();
    let c = KeyedWorkCoordinator::new(
        |n: &u32| n % 7,
        |n: u32, op: Operation| async move {
            op.emit(format!("done.{n}"));
            op.emit_for("forever", Duration::MAX);
        },
        all_max,
    );
    for i in 0..200 {
        c.enqueue(i).await.unwrap();
    }
    c.complete();
    c.drain().await;
    let s = c.stats();
    assert_eq!((s.completed, s.failed, s.cancelled), (200, 0, 0), "{s:?}");
    assert_eq!(c.snapshot().len(), 200);
    assert!(c.has_signal("forever"));
}

#[tokio::test(start_paused = true)]
async fn a_zero_lifetime_window_forgets_finished_operations_at_once() {
    let c = WorkCoordinator::new(
        |_: u32, _op: Operation| async {},
        Options::default().max_operation_lifetime(Some(Duration::ZERO)),
    );
    for i in 0..10 {
        c.enqueue(i).await.unwrap();
    }
    c.complete();
    c.drain().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(c.snapshot().is_empty());
    assert_eq!(
        c.stats().completed,
        10,
        "counters keep what the window forgets"
    );
}

#[tokio::test(start_paused = true)]
async fn sinks_at_the_extremes() {
    // Capacity usize::MAX is a bound, not an allocation; Duration::MAX never overflows.
    let huge = SignalSink::new(usize::MAX, Duration::MAX);
    huge.raise("x");
    tokio::time::sleep(Duration::from_secs(3600 * 24 * 365)).await;
    assert!(huge.detect("x"));
    // Duration::ZERO: nothing is ever visible, and nothing breaks.
    let zero = SignalSink::new(1, Duration::ZERO);
    zero.raise("y");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(zero.is_empty());
    assert_eq!(zero.total_signals(), 0);
    assert!(!zero.has_signal_matching("*"));
    // A ttl of Duration::MAX or ZERO.
    let sink = SignalSink::new(10, Duration::from_secs(60));
    let now = ephemeral::now();
    sink.raise_event(
        SignalEvent::new("max", ephemeral::OperationId::next(), None, now).with_ttl(Duration::MAX),
    );
    sink.raise_event(
        SignalEvent::new("zero", ephemeral::OperationId::next(), None, now)
            .with_ttl(Duration::ZERO),
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(sink.detect("max"));
    assert!(!sink.detect("zero"));
}

#[test]
#[should_panic(expected = "max_capacity must be at least 1")]
fn a_sink_of_zero_capacity_is_refused() {
    let _ = SignalSink::new(0, Duration::from_secs(1));
}

#[test]
fn pathological_patterns_match_in_linear_time() {
    let long = "a".repeat(1 << 20);
    // Exponential backtracking would not finish; each of these is a few milliseconds here.
    for pattern in [
        "*".repeat(10_000),
        "a*".repeat(5_000) + "b",
        "*a".repeat(5_000) + "b",
        "?".repeat(10_000),
        "*?".repeat(3_000) + "b",
        String::new(),
    ] {
        let p = Pattern::new(&pattern);
        let expected = pattern.chars().all(|c| c == '*') && !pattern.is_empty();
        assert_eq!(
            p.matches(&long),
            expected,
            "{}",
            &pattern[..pattern.len().min(12)]
        );
    }
    assert!(Pattern::new("").matches(""));
    assert!(!Pattern::new("").matches("a"));
}

#[test]
fn huge_odd_and_empty_signal_names_are_ordinary_names() {
    let sink = SignalSink::new(100, Duration::from_secs(60));
    let huge = "n".repeat(1 << 20);
    for name in [
        huge.as_str(),
        "",
        "nul\0byte",
        "ünïcødé.名前",
        "tab\tnew\nline",
        "*",
        "?",
    ] {
        sink.raise(name);
        assert!(sink.detect(name), "{:?}", &name[..name.len().min(12)]);
        assert_eq!(sink.count_signals(name), 1);
    }
    assert!(sink.has_signal_matching("nul\0*"));
    assert!(sink.has_signal_matching("ünïcødé.*"));
    assert_eq!(sink.signals_matching("*").len(), 7);
    // A literal `*` name is matched by the pattern `*` like any other, and exactly by `detect`.
    assert_eq!(sink.count_signals("*"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_carry_huge_and_odd_signal_names() {
    let huge: std::sync::Arc<str> = "s".repeat(1 << 20).into();
    let h = huge.clone();
    let c = WorkCoordinator::new(
        move |n: u32, op: Operation| {
            let h = h.clone();
            async move {
                op.emit(h.to_string());
                op.emit("nul\0".to_string() + &n.to_string());
                op.emit("ünï");
                op.emit("");
            }
        },
        Options::default()
            .cancel_on_signals(["never"])
            .defer_on_signals([""]),
    );
    for i in 0..20 {
        c.enqueue(i).await.unwrap();
    }
    c.complete();
    c.drain().await;
    let s = c.stats();
    assert_eq!(s.completed + s.cancelled, 20, "{s:?}");
    assert!(c.has_signal(&huge));
    assert!(c.has_signal_matching("nul\0*"));
}

#[tokio::test]
#[should_panic]
async fn a_processor_of_zero_concurrency_is_refused() {
    let _ = AsyncSignalProcessor::new(|_e: SignalEvent, _t| async {}, 0, 1);
}

#[tokio::test]
async fn dispatchers_take_empty_and_pathological_patterns() {
    let d = SignalDispatcher::new();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for pattern in [String::new(), "*".repeat(10_000), "a,,b, ,".to_string()] {
        let h = hits.clone();
        d.register(pattern, move |_e: SignalEvent| {
            h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async {}
        });
    }
    let sink = SignalSink::default();
    let _sub = d.attach(&sink);
    sink.raise("anything");
    sink.raise("");
    while d.processed_count() + d.failed_count() + d.dropped_count() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(hits.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    d.shutdown().await;
}
