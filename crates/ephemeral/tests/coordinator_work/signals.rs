//! Signals: emitted and recorded, constraints, cancel and defer gates, retractions.

use super::*;

#[tokio::test(start_paused = true)]
async fn emitted_signals_reach_window_sink_and_handlers() {
    let sink = SignalSink::default();
    let sync_seen = Arc::new(Mutex::new(Vec::new()));
    let async_seen = Arc::new(Mutex::new(Vec::new()));
    let retracted = Arc::new(Mutex::new(Vec::new()));
    let (a, b, r) = (sync_seen.clone(), async_seen.clone(), retracted.clone());
    let c = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            op.emit(format!("item.{n}"));
            op.emit("processing");
            assert!(op.has_signal("processing"));
            assert_eq!(op.retract_matching("proc*"), 1);
            assert!(!op.retract("processing"));
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, Io>(())
        },
        Options::default()
            .signals(sink.clone())
            .on_signal(move |e| a.lock().unwrap().push(e.signal().to_string()))
            .on_signal_async(move |e: SignalEvent| {
                let b = b.clone();
                async move {
                    b.lock().unwrap().push(e.signal().to_string());
                    Ok::<_, Io>(())
                }
            })
            .on_signal_retracted(move |e| {
                r.lock()
                    .unwrap()
                    .push((e.signal().to_string(), e.pattern().map(String::from)))
            }),
    );
    for n in 0..3 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(c.count_signals_matching("item.*"), 3);
    assert!(
        !c.has_signal("processing"),
        "retracted signals leave the window"
    );
    assert_eq!(
        sink.count_signals("processing"),
        3,
        "the sink is append-only"
    );
    assert_eq!(sync_seen.lock().unwrap().len(), 6);
    assert_eq!(async_seen.lock().unwrap().len(), 6);
    assert_eq!(retracted.lock().unwrap().len(), 3);
    assert!(retracted
        .lock()
        .unwrap()
        .iter()
        .all(|(s, p)| s == "processing" && p.as_deref() == Some("proc*")));
    // Real timestamps and propagation.
    let events = c.signals_named("item.0");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].depth(), 1);
    assert_eq!(events[0].propagation().len(), 1);
    let snap = c.snapshot();
    assert!(events[0].timestamp() >= snap[0].started());
    assert_eq!(
        c.signals_since(events[0].timestamp()).len(),
        c.total_signals()
    );
}

#[tokio::test(start_paused = true)]
async fn constraints_apply_to_caused_signals() {
    let blocked = Arc::new(Mutex::new(Vec::new()));
    let b = blocked.clone();
    let results = Arc::new(Mutex::new(Vec::new()));
    let r = results.clone();
    let c = WorkCoordinator::new(
        move |_: u8, op: Operation| {
            let r = r.clone();
            async move {
                let mut cause =
                    SignalEvent::new("seed", op.id(), None, std::time::SystemTime::now());
                let root = op.emit("a");
                r.lock().unwrap().push(root);
                // a -> b -> c (max depth 3), then d is blocked by depth.
                for name in ["a", "b", "c", "d"] {
                    let ok = op.emit_caused(name, &cause);
                    r.lock().unwrap().push(ok);
                    if ok {
                        cause = op.signals().last().unwrap().clone();
                    }
                }
                // A cycle: "b" caused by a chain that holds "b".
                let chain = op.signals_named_for_test("b");
                r.lock().unwrap().push(op.emit_caused("b", &chain));
                Ok::<_, Io>(())
            }
        },
        Options::default().signal_constraints(
            SignalConstraints::default()
                .max_depth(3)
                .on_blocked(move |e, why| b.lock().unwrap().push((e.signal().to_string(), why))),
        ),
    );
    c.enqueue(0).await.unwrap();
    c.complete();
    c.drain().await;
    // emit("a") ok; caused by the hand-made seed (depth 0): a fresh chain a(1), b(2), c(3); d blocked.
    assert_eq!(
        *results.lock().unwrap(),
        vec![true, true, true, true, false, false]
    );
    let blocked = blocked.lock().unwrap();
    assert_eq!(blocked[0], ("d".to_string(), BlockReason::MaxDepthExceeded));
    assert_eq!(blocked[1], ("b".to_string(), BlockReason::CycleDetected));
    assert!(
        c.signals_named("d").is_empty(),
        "blocked signals are not stored"
    );
    assert_eq!(c.signals_named("c")[0].depth(), 3);
}

/// Test helper: the last event named `name` an operation holds.
trait SignalsNamed {
    fn signals_named_for_test(&self, name: &str) -> SignalEvent;
}

impl SignalsNamed for Operation {
    fn signals_named_for_test(&self, name: &str) -> SignalEvent {
        self.signals()
            .into_iter()
            .filter(|e| e.is(name))
            .last()
            .unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_on_signals_rejects_intake_and_cancels_queued_items() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |n: u32, op: Operation| {
            let g = g.clone();
            async move {
                if n == 0 {
                    op.emit("circuit-open");
                    g.notified().await;
                }
                Ok::<_, Io>(())
            }
        },
        Options::default()
            .max_concurrency(1)
            .max_operation_lifetime(Some(Duration::from_secs(5)))
            .cancel_on_signals(["system-overload, circuit-*"]),
    );
    c.enqueue(0).await.unwrap();
    tokio::task::yield_now().await;
    assert!(c.has_signal("circuit-open"));
    // Intake refused while the signal is present.
    assert!(matches!(c.enqueue(1).await, Err(EnqueueError::Rejected(1))));
    assert!(matches!(
        c.try_enqueue(2),
        Err(TryEnqueueError::Rejected(2))
    ));
    assert_eq!(c.total_enqueued(), 1);
    // An item queued before the signal appeared... queue one by pausing the gate check: the
    // signal is gone once the operation expires, then intake flows again.
    gate.notify_waiters();
    while c.total_completed() < 1 {
        tokio::task::yield_now().await;
    }
    assert!(
        matches!(c.try_enqueue(3), Err(TryEnqueueError::Rejected(3))),
        "finished ops keep their signals"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    c.try_enqueue(4)
        .expect("signal expired: intake flows again");
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 2);
}

#[tokio::test(start_paused = true)]
async fn cancel_on_signals_skips_already_queued_items() {
    let sink = SignalSink::default();
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok::<_, Io>(())
            }
        },
        Options::default()
            .max_concurrency(1)
            .signals(sink.clone())
            .cancel_on_signals(["overload"]),
    );
    for n in 0..5 {
        c.enqueue(n).await.unwrap();
    }
    tokio::task::yield_now().await;
    assert_eq!(c.active_count(), 1);
    sink.raise("overload");
    gate.notify_waiters();
    c.complete();
    c.drain().await;
    let s = c.stats();
    assert_eq!(
        (s.completed, s.cancelled),
        (1, 4),
        "queued items are not started"
    );
    assert_eq!(s.enqueued, s.completed + s.failed + s.cancelled);
}

#[tokio::test(start_paused = true)]
async fn defer_on_signals_waits_then_runs_when_the_signal_goes() {
    let sink = SignalSink::default();
    let started = Arc::new(Mutex::new(Vec::new()));
    let s = started.clone();
    let c = WorkCoordinator::new(
        move |n: u32, _op| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((n, tokio::time::Instant::now()));
                Ok::<_, Io>(())
            }
        },
        Options::default()
            .signals(sink.clone())
            .defer_on_signals(["rate-limit:*"])
            .defer_check_interval(Duration::from_millis(100))
            .max_defer_attempts(50),
    );
    let t0 = tokio::time::Instant::now();
    sink.raise("rate-limit:500ms");
    c.enqueue(1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        started.lock().unwrap().is_empty(),
        "deferred while the signal is present"
    );
    sink.clear();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = started.lock().unwrap();
    assert_eq!(started.len(), 1);
    let waited = started[0].1 - t0;
    assert!(
        waited >= Duration::from_millis(1000) && waited <= Duration::from_millis(1100),
        "{waited:?}"
    );
    assert_eq!(c.stats().defer_timeouts, 0);
}

#[tokio::test(start_paused = true)]
async fn defer_runs_anyway_after_max_attempts_and_counts_it() {
    let sink = SignalSink::new(100, Duration::from_secs(3600));
    let c = WorkCoordinator::new(
        |_: u32, _op| async { Ok::<_, Io>(()) },
        Options::default()
            .max_concurrency(1)
            .signals(sink.clone())
            .defer_on_signals(["backpressure.*"])
            .defer_check_interval(Duration::from_millis(50))
            .max_defer_attempts(4),
    );
    sink.raise("backpressure.db");
    let t0 = tokio::time::Instant::now();
    c.enqueue(1).await.unwrap();
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 1);
    assert_eq!(c.stats().defer_timeouts, 1);
    assert!(tokio::time::Instant::now() - t0 >= Duration::from_millis(200));
}

/// Retractions reach the queued async handler too, with the pattern that removed them.
#[tokio::test(start_paused = true)]
async fn retractions_reach_the_async_handler() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let c = WorkCoordinator::new(
        |_: u8, op: Operation| async move {
            op.emit("stage.a");
            op.emit("stage.b");
            op.emit("keep");
            assert_eq!(op.retract_matching("stage.*"), 2);
            assert!(op.retract("keep"));
            Ok::<_, Io>(())
        },
        Options::default().on_signal_retracted_async(move |e: ephemeral::SignalRetracted| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap()
                    .push((e.signal().to_string(), e.was_pattern_match()));
                Ok::<_, Io>(())
            }
        }),
    );
    c.enqueue(0).await.unwrap();
    c.complete();
    c.drain().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("keep".to_string(), false),
            ("stage.a".to_string(), true),
            ("stage.b".to_string(), true)
        ]
    );
    assert_eq!(c.total_signals(), 0);
}

/// A cancel-on signal held by an operation that has left the (sharded) window stops
/// refusing intake, although the worker that ran it (now idle) still holds its record until
/// a read trims it.
#[tokio::test(start_paused = true)]
async fn cancel_gate_lifts_once_its_signal_leaves_the_window() {
    let c = WorkCoordinator::new(
        |n: u64, op: Operation| async move {
            if n == 0 {
                // All three have started by then.
                tokio::time::sleep(Duration::from_millis(1)).await;
                op.emit("overload");
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, Io>(())
        },
        Options::default()
            .max_concurrency(3)
            .max_tracked_operations(2)
            .queue_capacity(10)
            .cancel_on_signals(["overload"]),
    );
    for n in 0..3 {
        c.enqueue(n).await.unwrap();
    }
    wait_until(1000, || c.active_count() == 3).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    assert_eq!(c.total_completed(), 1);
    assert!(matches!(
        c.try_enqueue(7),
        Err(TryEnqueueError::Rejected(7))
    ));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(c.total_completed(), 3);
    // Operations 1 and 2 finished after 0: the window's two newest no longer hold the signal.
    c.try_enqueue(8).unwrap();
    assert!(!c.has_signal("overload"));
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 4);
}
