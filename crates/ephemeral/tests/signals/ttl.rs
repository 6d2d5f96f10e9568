//! Signals with a time to live: `Operation::emit_for` and `Options::signal_ttl`.

use ephemeral::{Operation, Options, SignalRetracted, SignalSink, SignalSource, WorkCoordinator};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_signal_with_a_ttl_leaves_a_finished_operation_and_fires_a_retraction() {
    let retracted: Arc<Mutex<Vec<SignalRetracted>>> = Arc::default();
    let log = retracted.clone();
    let c = WorkCoordinator::new(
        |_: (), op: Operation| async move {
            op.emit_for("rate-limit", Duration::from_millis(500));
            op.emit("kept");
            assert!(op.has_signal("rate-limit"));
        },
        Options::default().on_signal_retracted(move |r| log.lock().unwrap().push(r.clone())),
    );
    c.enqueue(()).await.unwrap();
    c.complete();
    c.drain().await;
    assert!(c.has_signal("rate-limit"));
    assert_eq!(c.count_signals("rate-limit"), 1);

    tokio::time::sleep(Duration::from_millis(499)).await;
    assert!(c.has_signal("rate-limit"), "still within its ttl");
    // No read between here and the check of the handler: the background task retracts it.
    tokio::time::sleep(Duration::from_millis(2)).await;
    {
        let r = retracted.lock().unwrap();
        assert_eq!(r.len(), 1, "one retraction event, fired on time");
        assert!(r[0].is("rate-limit"));
        assert!(r[0].is_expiry());
        assert!(!r[0].was_pattern_match());
    }
    assert!(!c.has_signal("rate-limit"));
    assert!(c.has_signal("kept"), "signals without a ttl stay");
    let snap = c.snapshot();
    assert_eq!(snap.len(), 1, "the operation itself stays in the window");
    assert_eq!(snap[0].signals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_ttl_ends_a_signal_of_a_running_operation_too() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |_: (), op: Operation| {
            let g = g.clone();
            async move {
                op.emit_for("busy", Duration::from_millis(100));
                g.notified().await;
                assert!(!op.has_signal("busy"), "the handle no longer sees it");
                assert!(op.signals().is_empty());
            }
        },
        Options::default(),
    );
    c.enqueue(()).await.unwrap();
    tokio::time::sleep(MS).await;
    assert_eq!(c.running()[0].signals().len(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(c.running()[0].signals().is_empty());
    gate.notify_one();
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 1, "the body's own checks held");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_back_off_with_a_ttl_ends_instead_of_deferring_every_later_start() {
    // The crawler of the first-hour trial: the 5th item hits a rate limit. With a ttl the
    // back-off lasts about its ttl; without one (the old behaviour) every later start waits
    // out all of its defer attempts while the failed operation is listed.
    let start = Instant::now();
    let c = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if n == 5 {
                op.emit_for("rate-limit", Duration::from_millis(300));
                return Err("429 Too Many Requests");
            }
            Ok(())
        },
        Options::default()
            .max_concurrency(2)
            .defer_on_signals(["rate-limit"]),
    );
    for n in 0..40 {
        c.enqueue(n).await.unwrap();
    }
    // While the back-off holds, the coordinator says why nothing runs.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = c.stats();
    assert!(during.deferred > 0, "{during:?}");
    assert_eq!(during.active, 0, "{during:?}");
    c.complete();
    c.drain().await;
    let elapsed = start.elapsed();
    let stats = c.stats();
    assert_eq!(stats.defer_timeouts, 0, "{stats:?}");
    assert_eq!((stats.completed, stats.failed), (39, 1));
    assert_eq!(stats.deferred, 0);
    // 40 items × 10 ms over 2 workers is 200 ms; plus a 300 ms back-off (rounded up to the
    // defer check interval).
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert_eq!(c.failed().len(), 1, "the failure stays listed");
}

#[tokio::test(start_paused = true)]
async fn options_signal_ttl_applies_to_every_emit() {
    let c = WorkCoordinator::new(
        |_: (), op: Operation| async move {
            op.emit("a");
            op.emit_for("b", Duration::from_secs(10)); // its own ttl wins
        },
        Options::default().signal_ttl(Some(Duration::from_secs(1))),
    );
    c.enqueue(()).await.unwrap();
    c.complete();
    c.drain().await;
    assert!(c.has_signal("a") && c.has_signal("b"));
    tokio::time::sleep(Duration::from_millis(1001)).await;
    assert!(!c.has_signal("a"));
    assert!(c.has_signal("b"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(c.total_signals(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_ttl_signal_leaves_the_sink_and_its_cancel_gate_releases() {
    let sink = SignalSink::default(); // one minute of max age
    let c = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            if n == 0 {
                op.emit_for("circuit-open", Duration::from_secs(2));
            }
        },
        Options::default()
            .signals(sink.clone())
            .cancel_on_signals(["circuit-open"]),
    );
    c.enqueue(0).await.unwrap();
    tokio::time::sleep(MS).await;
    assert!(sink.detect("circuit-open"));
    assert!(c.enqueue(1).await.is_err(), "the circuit is open");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !sink.detect("circuit-open"),
        "gone from the sink with its ttl"
    );
    assert!(c.enqueue(2).await.is_ok(), "the gate released");
    c.complete();
    c.drain().await;
}

#[tokio::test(start_paused = true)]
async fn a_signal_retracted_before_its_ttl_fires_one_retraction_only() {
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    let c = WorkCoordinator::new(
        |_: (), op: Operation| async move {
            op.emit_for("x", Duration::from_millis(50));
            assert!(op.retract("x"));
        },
        Options::default().on_signal_retracted(move |_| {
            n.fetch_add(1, SeqCst);
        }),
    );
    c.enqueue(()).await.unwrap();
    c.complete();
    c.drain().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.snapshot().len(), 1);
    assert_eq!(count.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_evicted_operation_s_ttl_signal_fires_nothing() {
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    let c = WorkCoordinator::new(
        |_: (), op: Operation| async move {
            op.emit_for("x", Duration::from_millis(50));
        },
        Options::default()
            .max_concurrency(1)
            .on_signal_retracted(move |_| {
                n.fetch_add(1, SeqCst);
            }),
    );
    let id = c.enqueue(()).await.unwrap();
    c.complete();
    c.drain().await;
    assert!(c.evict(id));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.total_signals(), 0);
    assert_eq!(count.load(SeqCst), 0, "it left with its operation");
}

#[tokio::test(start_paused = true)]
async fn the_expiry_task_ends_with_its_coordinator() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let c = WorkCoordinator::new(
        |_: (), op: Operation| async move {
            op.emit_for("x", Duration::from_secs(3600));
        },
        Options::default().max_concurrency(1),
    );
    c.enqueue(()).await.unwrap();
    c.complete();
    c.drain().await;
    tokio::time::sleep(MS).await;
    assert!(metrics.num_alive_tasks() > before, "the expiry task runs");
    drop(c);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        before,
        "no task outlives the coordinator"
    );
}
