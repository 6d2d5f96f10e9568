//! `ephemeral::patterns`, part A: the log watcher (exactly once, never a miss, contained
//! panics, stop), the anomaly detector and the circuit breaker on the paused clock, dynamic
//! concurrency (scales down after `load.high`, hysteresis, stops on drop) and signal-driven
//! backpressure.

mod support;

use ephemeral::patterns::{
    signal_driven_backpressure, CircuitBreaker, DynamicConcurrency, ScalingConfig,
    SignalAnomalyDetector, SignalLogWatcher,
};
use ephemeral::{OperationId, Options, SignalEvent, SignalSink, WorkCoordinator};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{quiet_deliberate_panics, PANIC_MARK};
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

fn recorder() -> (
    Arc<Mutex<Vec<SignalEvent>>>,
    impl Fn(&SignalEvent) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    (seen, move |evt: &SignalEvent| {
        log.lock().unwrap().push(evt.clone());
    })
}

fn names(events: &[SignalEvent]) -> Vec<String> {
    events.iter().map(|e| e.signal().to_string()).collect()
}

// ---------------------------------------------------------------- SignalLogWatcher

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn watcher_reports_events_before_and_after_creation_once_in_order() {
    let sink = SignalSink::new(100, MINUTE);
    sink.raise("m.0");
    sink.raise("other");
    sink.raise("m.1");
    let (seen, on_match) = recorder();
    let watcher = SignalLogWatcher::new(&sink, "m.*", on_match);
    assert_eq!(names(&seen.lock().unwrap()), ["m.0", "m.1"]);
    sink.raise("m.2");
    sink.raise("other");
    sink.raise("m.3");
    tokio::time::advance(Duration::from_secs(1)).await;
    sink.raise("m.4");
    assert_eq!(
        names(&seen.lock().unwrap()),
        ["m.0", "m.1", "m.2", "m.3", "m.4"]
    );
    assert_eq!(watcher.matched(), 5);
    assert_eq!(watcher.skipped(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn watcher_callback_may_raise_on_the_same_sink() {
    let sink = SignalSink::new(100, MINUTE);
    let raiser = sink.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let watcher = SignalLogWatcher::new(&sink, "m.*", move |evt| {
        log.lock().unwrap().push(evt.signal().to_string());
        if evt.is("m.a") {
            raiser.raise("m.b"); // re-entrant: queued, delivered after this call
        }
    });
    sink.raise("m.a");
    assert_eq!(*seen.lock().unwrap(), ["m.a", "m.b"]);
    assert_eq!(watcher.matched(), 2);
}

/// Several threads raise while the watcher is made: every matching event is reported exactly
/// once (none twice, none missed), and each thread's events in its raise order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watcher_exactly_once_under_concurrent_raises() {
    const TASKS: usize = 4;
    const PER_TASK: usize = 2_000;
    const BEFORE: usize = 50;
    for _round in 0..5 {
        let sink = SignalSink::new(100_000, Duration::from_secs(3600));
        let mut raised = Vec::new();
        for i in 0..BEFORE {
            raised.push(sink.raise_with_key("m.before", i.to_string()));
            sink.raise("noise");
        }
        let counts: Arc<Mutex<HashMap<SignalEvent, usize>>> = Arc::default();
        let order: Arc<Mutex<Vec<SignalEvent>>> = Arc::default();
        let started = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let sink = sink.clone();
            let started = started.clone();
            tasks.push(tokio::spawn(async move {
                started.wait().await;
                let mut mine = Vec::new();
                for i in 0..PER_TASK {
                    mine.push(sink.raise_with_key(format!("m.task{t}"), i.to_string()));
                    if i % 3 == 0 {
                        sink.raise("noise");
                    }
                    if i % 256 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                mine
            }));
        }
        started.wait().await;
        let (c, o) = (counts.clone(), order.clone());
        let watcher = SignalLogWatcher::new(&sink, "m.*", move |evt| {
            *c.lock().unwrap().entry(evt.clone()).or_insert(0) += 1;
            o.lock().unwrap().push(evt.clone());
        });
        for task in tasks {
            raised.extend(task.await.unwrap());
        }
        let expected = BEFORE + TASKS * PER_TASK;
        assert_eq!(raised.len(), expected);
        let counts = counts.lock().unwrap();
        for evt in &raised {
            assert_eq!(
                counts.get(evt),
                Some(&1),
                "{evt:?} reported {:?} times",
                counts.get(evt)
            );
        }
        assert_eq!(counts.len(), expected, "nothing else reported");
        assert_eq!(watcher.matched(), expected as u64);
        // Each raiser's events arrive in its raise order.
        let mut last: HashMap<String, i64> = HashMap::new();
        let order = order.lock().unwrap().clone();
        for evt in order.iter() {
            let seq: i64 = evt.key().unwrap().parse().unwrap();
            let prev = last.insert(evt.signal().to_string(), seq).unwrap_or(-1);
            assert!(
                seq > prev,
                "{} out of order: {seq} after {prev}",
                evt.signal()
            );
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn watcher_contains_a_panicking_callback() {
    quiet_deliberate_panics();
    let sink = SignalSink::new(100, MINUTE);
    let ok = Arc::new(AtomicUsize::new(0));
    let counter = ok.clone();
    let watcher = SignalLogWatcher::new(&sink, "m.*", move |evt| {
        if evt.is("m.bad") {
            panic!("{}", PANIC_MARK);
        }
        counter.fetch_add(1, Ordering::SeqCst);
    });
    sink.raise("m.ok");
    sink.raise("m.bad");
    sink.raise("m.ok");
    sink.raise("m.bad");
    sink.raise("m.ok");
    assert_eq!(ok.load(Ordering::SeqCst), 3);
    assert_eq!(watcher.matched(), 5);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn watcher_stop_and_drop_stop_it() {
    let sink = SignalSink::new(100, MINUTE);
    let (seen, on_match) = recorder();
    let watcher = SignalLogWatcher::new(&sink, "m", on_match);
    let clone = watcher.clone();
    sink.raise("m");
    clone.stop();
    assert!(watcher.is_stopped());
    sink.raise("m");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(watcher.matched(), 1);

    let (seen, on_match) = recorder();
    let watcher = SignalLogWatcher::new(&sink, "m", on_match);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "both m events are in the sink"
    );
    let clone = watcher.clone();
    drop(watcher);
    sink.raise("m"); // a clone still lives
    assert_eq!(seen.lock().unwrap().len(), 3);
    drop(clone);
    sink.raise("m");
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn watcher_on_a_small_sink_reports_every_raise() {
    let sink = SignalSink::new(4, MINUTE);
    let (seen, on_match) = recorder();
    let watcher = SignalLogWatcher::new(&sink, "m", on_match);
    for _ in 0..1_000 {
        sink.raise("m");
    }
    assert_eq!(seen.lock().unwrap().len(), 1_000);
    assert_eq!(watcher.matched(), 1_000);
    assert_eq!(watcher.skipped(), 0);
}

// ---------------------------------------------------------------- SignalAnomalyDetector

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn anomaly_count_follows_the_clock() {
    let sink = SignalSink::new(100, MINUTE);
    let detector = SignalAnomalyDetector::new(&sink, "error.*", 4, Duration::from_secs(10));
    for _ in 0..3 {
        sink.raise("error.a");
    }
    sink.raise("info");
    assert_eq!(detector.count(), 3);
    assert!(!detector.is_anomalous());
    tokio::time::advance(Duration::from_secs(4)).await;
    sink.raise("error.b");
    sink.raise("error.c");
    assert_eq!(detector.count(), 5);
    assert!(detector.is_anomalous());
    tokio::time::advance(Duration::from_millis(5_999)).await;
    assert_eq!(detector.count(), 5);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(detector.count(), 2, "the first three are 10 s old");
    assert!(!detector.is_anomalous());
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(detector.count(), 0);
}

// ---------------------------------------------------------------- CircuitBreaker

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn breaker_opens_at_threshold_and_closes_on_time() {
    let sink = SignalSink::new(100, MINUTE);
    let breaker = CircuitBreaker::new(&sink, "api.failed", 3, Duration::from_secs(10));
    for _ in 0..2 {
        sink.raise("api.failed");
        sink.raise("api.ok");
        assert!(!breaker.is_open());
        assert_eq!(breaker.time_until_close(), None);
        assert!(breaker.check().is_ok());
        tokio::time::advance(Duration::from_secs(2)).await;
    }
    sink.raise("api.failed"); // t = 4 s: failures at 0, 2, 4
    assert_eq!(breaker.failure_count(), 3);
    assert!(breaker.is_open());
    assert_eq!(breaker.time_until_close(), Some(Duration::from_secs(6)));
    tokio::time::advance(Duration::from_secs(2)).await;
    sink.raise("api.failed"); // t = 6 s: four failures, the one at 2 s is the third youngest
    assert_eq!(breaker.failure_count(), 4);
    let open = breaker.check().unwrap_err();
    assert_eq!(open.retry_after(), Duration::from_secs(6));
    assert!(open.to_string().contains("circuit open"));
    let _: &dyn std::error::Error = &open;

    tokio::time::advance(Duration::from_millis(5_999)).await;
    assert!(breaker.is_open());
    assert_eq!(breaker.time_until_close(), Some(Duration::from_millis(1)));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!breaker.is_open());
    assert_eq!(breaker.failure_count(), 2);
    assert_eq!(breaker.time_until_close(), None);
    assert!(breaker.check().is_ok());
}

#[test]
#[should_panic(expected = "threshold")]
fn breaker_refuses_a_zero_threshold() {
    let _ = CircuitBreaker::new(&SignalSink::default(), "x", 0, MINUTE);
}

// ---------------------------------------------------------------- DynamicConcurrency

fn dynamic_coordinator() -> WorkCoordinator<u32> {
    WorkCoordinator::new(
        |_: u32, _op| async {},
        Options::default()
            .max_concurrency(3)
            .dynamic_concurrency(true),
    )
}

type Changes = Arc<Mutex<Vec<(usize, usize, Instant)>>>;

fn config_recording(min: usize, max: usize) -> (ScalingConfig, Changes) {
    let changes: Changes = Arc::default();
    let log = changes.clone();
    let config = ScalingConfig::new(min, max)
        .sample_interval(Duration::from_millis(100))
        .min_interval(Duration::from_secs(1))
        // Long enough that every load.high raised in a test stays in the window.
        .window(Duration::from_secs(60))
        .on_adjusted(move |prev, new| log.lock().unwrap().push((prev, new, Instant::now())));
    (config, changes)
}

#[track_caller]
fn assert_hysteresis(changes: &Changes) {
    let changes = changes.lock().unwrap();
    for pair in changes.windows(2) {
        assert!(
            pair[1].2 - pair[0].2 >= Duration::from_secs(1),
            "two changes within min_interval: {changes:?}"
        );
    }
    for (prev, new, _) in changes.iter() {
        assert_ne!(prev, new, "on_adjusted without a change");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dynamic_scales_up_then_down_after_a_newer_low() {
    let sink = SignalSink::new(100, MINUTE);
    let coordinator = dynamic_coordinator();
    let (config, changes) = config_recording(1, 16);
    let scaler = DynamicConcurrency::start(&coordinator, &sink, config);
    assert_eq!(coordinator.max_concurrency(), 1, "set to min at start");

    sink.raise("load.high");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(coordinator.max_concurrency(), 16, "1 -> 2 -> 4 -> 8 -> 16");
    tokio::time::sleep(Duration::from_secs(1)).await; // load.high still decides: stays at max

    sink.raise("load.low"); // load.high is still within the window, but older
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        coordinator.max_concurrency() < 16,
        "it must scale down after load.high was seen"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(coordinator.max_concurrency(), 1, "halved down to min");

    let got: Vec<(usize, usize)> = changes.lock().unwrap().iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        got,
        [
            (1, 2),
            (2, 4),
            (4, 8),
            (8, 16),
            (16, 8),
            (8, 4),
            (4, 2),
            (2, 1)
        ]
    );
    assert_hysteresis(&changes);
    assert_eq!(scaler.adjustments(), 8);
    assert_eq!(scaler.current(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dynamic_never_changes_twice_within_min_interval() {
    let sink = SignalSink::new(1_000, MINUTE);
    let coordinator = dynamic_coordinator();
    let (config, changes) = config_recording(1, 64);
    let _scaler = DynamicConcurrency::start(&coordinator, &sink, config);
    // Flip the newest signal every 150 ms for 10 s.
    for i in 0..66 {
        sink.raise(if i % 2 == 0 { "load.high" } else { "load.low" });
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(changes.lock().unwrap().len() >= 5, "{changes:?}");
    assert_hysteresis(&changes);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dynamic_on_adjusted_only_on_change_and_tie_goes_up() {
    let sink = SignalSink::new(100, MINUTE);
    let coordinator = dynamic_coordinator();
    let (config, changes) = config_recording(2, 4);
    let _scaler = DynamicConcurrency::start(&coordinator, &sink, config);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(changes.lock().unwrap().is_empty(), "no signal, no change");

    // A load.low and a load.high with the same timestamp: up wins.
    let at = ephemeral::now();
    sink.raise_event(SignalEvent::new("load.low", OperationId::next(), None, at));
    sink.raise_event(SignalEvent::new("load.high", OperationId::next(), None, at));
    sink.raise_event(SignalEvent::new("load.low", OperationId::next(), None, at));
    tokio::time::sleep(Duration::from_secs(4)).await; // at max for most of it
    assert_eq!(coordinator.max_concurrency(), 4);
    let got: Vec<(usize, usize)> = changes.lock().unwrap().iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(got, [(2, 4)], "called once, for the one change");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dynamic_stops_on_stop_and_on_drop() {
    let sink = SignalSink::new(100, MINUTE);
    let coordinator = dynamic_coordinator();
    let (config, changes) = config_recording(1, 64);
    let scaler = DynamicConcurrency::start(&coordinator, &sink, config.clone());
    sink.raise("load.high");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(coordinator.max_concurrency(), 2);
    let clone = scaler.clone();
    drop(scaler);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(coordinator.max_concurrency(), 4, "a clone keeps it running");
    drop(clone);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        coordinator.max_concurrency(),
        4,
        "dropping the last handle stops it"
    );
    assert_eq!(changes.lock().unwrap().len(), 2);

    changes.lock().unwrap().clear();
    let scaler = DynamicConcurrency::start(&coordinator, &sink, config);
    sink.raise("load.high");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(coordinator.max_concurrency(), 2);
    scaler.stop();
    assert!(scaler.is_stopped());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(coordinator.max_concurrency(), 2, "stop stops it");
}

#[tokio::test(flavor = "current_thread")]
#[should_panic(expected = "dynamic_concurrency")]
async fn dynamic_needs_a_dynamic_coordinator() {
    let coordinator = WorkCoordinator::new(|_: u32, _op| async {}, Options::default());
    let _ = DynamicConcurrency::start(
        &coordinator,
        &SignalSink::default(),
        ScalingConfig::new(1, 4),
    );
}

// ---------------------------------------------------------------- backpressure

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn backpressure_holds_while_present_and_releases_within_one_interval() {
    let sink = SignalSink::new(100, Duration::from_secs(3600));
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let coordinator = signal_driven_backpressure(
        move |_: u32, _op| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        },
        &sink,
        Options::default().max_concurrency(2),
    );
    sink.raise("backpressure.x");
    for i in 0..5 {
        coordinator.enqueue(i).await.unwrap();
    }
    // Far longer than the default 10 attempts × 100 ms: the attempts do not run out.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "held while backpressure.x is there"
    );
    assert!(coordinator.stats().deferred > 0);
    assert_eq!(coordinator.stats().defer_timeouts, 0);

    tokio::time::sleep(Duration::from_millis(37)).await; // clear mid-interval
    sink.clear();
    tokio::time::sleep(Duration::from_millis(100)).await; // one check interval
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        5,
        "released within one check interval"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn backpressure_keeps_a_bound_the_options_set() {
    let sink = SignalSink::new(100, Duration::from_secs(3600));
    let coordinator = signal_driven_backpressure(
        |_: u32, _op| async {},
        &sink,
        Options::default()
            .max_concurrency(1)
            .max_defer_attempts(3)
            .defer_on_signals(["maintenance"]),
    );
    sink.raise("maintenance");
    coordinator.enqueue(1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(coordinator.total_completed(), 1, "3 attempts, then it ran");
    assert_eq!(coordinator.stats().defer_timeouts, 1);

    sink.clear();
    sink.raise("backpressure.db");
    coordinator.enqueue(2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(coordinator.total_completed(), 1, "backpressure.* holds too");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(coordinator.total_completed(), 2);
}
