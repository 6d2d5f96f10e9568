//! WorkCoordinator: no loss, the concurrency cap, drain/complete/cancel, the window, signals.

use ephemeral::{
    BlockReason, EnqueueError, Operation, OperationId, Options, SignalConstraints, SignalEvent,
    SignalSink, SignalSource, TryEnqueueError, WorkCoordinator,
};
mod support;
use support::wait_until;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

type Io = std::io::Error;

/// Tracks bodies in flight and the highest number seen.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_item_lost_or_run_twice_with_failures_and_panics() {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let inflight = Arc::new(InFlight::default());
    let (s, f) = (seen.clone(), inflight.clone());
    let c = WorkCoordinator::new(
        move |n: u64, _op: Operation| {
            let (seen, inflight) = (s.clone(), f.clone());
            async move {
                inflight.enter();
                assert!(seen.lock().unwrap().insert(n), "item {n} ran twice");
                if n % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                inflight.exit();
                match n % 10 {
                    7 => Err(Io::other("seven")),
                    9 => panic!("nine"),
                    _ => Ok(()),
                }
            }
        },
        Options::default().max_concurrency(6).queue_capacity(64),
    );
    for n in 0..20_000u64 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    let s = c.stats();
    assert_eq!(s.enqueued, 20_000);
    assert_eq!(s.completed + s.failed + s.cancelled, s.enqueued);
    assert_eq!(s.failed, 4_000);
    assert_eq!(s.pending + s.active, 0);
    assert_eq!(seen.lock().unwrap().len(), 20_000);
    assert!(inflight.max.load(Ordering::SeqCst) <= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_midway_accounts_for_every_item() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let c = WorkCoordinator::new(
        move |_n: u32, op: Operation| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    () = op.token().cancelled() => Err(Io::other("cancelled")),
                    () = tokio::time::sleep(Duration::from_millis(1)) => Ok(()),
                }
            }
        },
        Options::default().max_concurrency(4).queue_capacity(10_000),
    );
    for n in 0..5_000 {
        c.try_enqueue(n).unwrap();
    }
    while c.total_completed() < 50 {
        tokio::task::yield_now().await;
    }
    c.cancel();
    assert_eq!(c.pending_count(), 0, "cancel leaves nothing pending");
    assert!(matches!(c.try_enqueue(1), Err(TryEnqueueError::Closed(1))));
    c.drain().await;
    let s = c.stats();
    assert_eq!(s.completed + s.failed + s.cancelled, 5_000);
    assert_eq!(
        s.completed + s.failed,
        started.load(Ordering::SeqCst) as u64
    );
    assert!(s.cancelled > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_never_exceeds_the_limit_even_while_shrinking() {
    let inflight = Arc::new(InFlight::default());
    let f = inflight.clone();
    let c = WorkCoordinator::new(
        move |n: u64, _op| {
            let f = f.clone();
            async move {
                f.enter();
                for _ in 0..(n % 4) {
                    tokio::task::yield_now().await;
                }
                f.exit();
                Ok::<_, Io>(())
            }
        },
        Options::default()
            .max_concurrency(8)
            .dynamic_concurrency(true)
            .queue_capacity(100_000),
    );
    for n in 0..30_000 {
        c.try_enqueue(n).unwrap();
    }
    while c.total_completed() < 5_000 {
        tokio::task::yield_now().await;
    }
    assert!(inflight.max.load(Ordering::SeqCst) <= 8);
    c.set_max_concurrency(2).unwrap();
    // Once the excess has finished, running never goes above the new limit again.
    while c.active_count() > 2 {
        tokio::task::yield_now().await;
    }
    inflight
        .max
        .store(inflight.now.load(Ordering::SeqCst), Ordering::SeqCst);
    c.complete();
    c.drain().await;
    assert!(
        inflight.max.load(Ordering::SeqCst) <= 2,
        "max {}",
        inflight.max.load(Ordering::SeqCst)
    );
    assert_eq!(c.total_completed(), 30_000);
}

#[tokio::test(start_paused = true)]
async fn growing_the_limit_starts_waiting_items_at_once() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op| {
            let g = g.clone();
            async move {
                let _permit = g.acquire().await.unwrap();
                Ok::<_, Io>(())
            }
        },
        Options::default()
            .max_concurrency(1)
            .dynamic_concurrency(true),
    );
    for n in 0..5 {
        c.enqueue(n).await.unwrap();
    }
    tokio::task::yield_now().await;
    assert_eq!(c.active_count(), 1);
    c.set_max_concurrency(4).unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(c.active_count(), 4);
    assert_eq!(c.max_concurrency(), 4);
    gate.add_permits(100);
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 5);
}

#[tokio::test(start_paused = true)]
async fn set_max_concurrency_errors() {
    let fixed = WorkCoordinator::new(|_: u8, _op| async { Ok::<_, Io>(()) }, Options::default());
    assert_eq!(
        fixed.set_max_concurrency(3),
        Err(ephemeral::ConcurrencyError::NotDynamic)
    );
    let dynamic = WorkCoordinator::new(
        |_: u8, _op| async { Ok::<_, Io>(()) },
        Options::default().dynamic_concurrency(true),
    );
    assert_eq!(
        dynamic.set_max_concurrency(0),
        Err(ephemeral::ConcurrencyError::Zero)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_body_does_not_stall_the_others() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let c = WorkCoordinator::new(
        move |n: u32, _op| {
            let rx = rx.clone();
            let tx = tx.clone();
            async move {
                if n == 0 {
                    // Blocks its thread before any await until item 1 has run.
                    let got = rx.lock().unwrap().recv_timeout(Duration::from_secs(20));
                    if got.is_err() {
                        return Err(Io::other("item 1 never ran while item 0 blocked"));
                    }
                } else {
                    let _ = tx.send(());
                }
                Ok(())
            }
        },
        Options::default().max_concurrency(2),
    );
    c.enqueue(0).await.unwrap();
    c.enqueue(1).await.unwrap();
    c.complete();
    c.drain().await;
    assert_eq!(c.total_failed(), 0, "{:?}", c.failed());
    assert_eq!(c.total_completed(), 2);
}

#[tokio::test(start_paused = true)]
async fn drain_complete_semantics() {
    let c = WorkCoordinator::new(|_: u8, _op| async { Ok::<_, Io>(()) }, Options::default());
    let drain = c.drain();
    tokio::pin!(drain);
    assert!(
        futures::poll!(drain.as_mut()).is_pending(),
        "drain before complete stays pending"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(futures::poll!(drain.as_mut()).is_pending());
    assert!(c.complete());
    assert!(!c.complete(), "a second complete is harmless and says so");
    assert!(
        futures::poll!(drain.as_mut()).is_ready(),
        "empty completed coordinator drains at once"
    );
    assert!(c.is_drained());
    assert!(matches!(c.enqueue(9).await, Err(EnqueueError::Closed(9))));
    assert!(matches!(c.try_enqueue(8), Err(TryEnqueueError::Closed(8))));
    assert_eq!(c.total_enqueued(), 0, "refused items are not counted");
}

#[tokio::test(start_paused = true)]
async fn queue_capacity_is_exact_and_enqueue_waits_for_room() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op| {
            let g = g.clone();
            async move {
                g.acquire().await.unwrap().forget();
                Ok::<_, Io>(())
            }
        },
        Options::default().max_concurrency(2).queue_capacity(3),
    );
    c.enqueue(0).await.unwrap();
    c.enqueue(1).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(c.active_count(), 2);
    for n in 2..5 {
        c.try_enqueue(n).unwrap();
    }
    assert_eq!(c.pending_count(), 3);
    assert!(matches!(c.try_enqueue(5), Err(TryEnqueueError::Full(5))));
    let waiting = c.enqueue(6);
    tokio::pin!(waiting);
    assert!(futures::poll!(waiting.as_mut()).is_pending());
    gate.add_permits(1);
    let id = waiting.await.unwrap();
    assert_ne!(id, OperationId::from(0));
    gate.add_permits(100);
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 6);
}

#[tokio::test(start_paused = true)]
async fn pause_and_resume() {
    let c = WorkCoordinator::new(|_: u8, _op| async { Ok::<_, Io>(()) }, Options::default());
    c.pause();
    assert!(c.is_paused());
    for n in 0..10 {
        c.enqueue(n).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(c.pending_count(), 10);
    assert_eq!(c.total_completed(), 0);
    c.complete();
    let drain = c.drain();
    tokio::pin!(drain);
    assert!(
        futures::poll!(drain.as_mut()).is_pending(),
        "drain while paused waits"
    );
    c.resume();
    drain.await;
    assert_eq!(c.total_completed(), 10);
}

#[tokio::test(start_paused = true)]
async fn window_holds_running_plus_bounded_finished() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |n: u32, _op| {
            let g = g.clone();
            async move {
                if n < 3 {
                    g.notified().await;
                }
                Ok::<_, Io>(())
            }
        },
        Options::default()
            .max_concurrency(4)
            .max_tracked_operations(5)
            .queue_capacity(1000),
    );
    for n in 0..100 {
        c.enqueue(n).await.unwrap();
    }
    while c.total_completed() < 97 {
        tokio::task::yield_now().await;
    }
    let snap = c.snapshot();
    assert_eq!(
        c.running().len(),
        3,
        "every running operation is in the window"
    );
    assert_eq!(
        c.completed().len(),
        5,
        "at most max_tracked_operations finished ones"
    );
    assert_eq!(snap.len(), 8);
    let started: Vec<_> = snap.iter().map(|s| s.started()).collect();
    assert!(started.windows(2).all(|w| w[0] <= w[1]), "start order");
    gate.notify_waiters();
    c.complete();
    c.drain().await;
    assert_eq!(c.snapshot().len(), 5);
    assert!(c.window_len() <= 5 + 4);
}

#[tokio::test(start_paused = true)]
async fn finished_operations_expire_by_lifetime_even_when_idle() {
    let c = WorkCoordinator::new(
        |_: u8, op: Operation| async move {
            op.emit("done");
            Ok::<_, Io>(())
        },
        Options::default().max_operation_lifetime(Some(Duration::from_secs(10))),
    );
    c.enqueue(1).await.unwrap();
    c.complete();
    c.drain().await;
    assert_eq!(c.snapshot().len(), 1);
    assert!(c.has_signal("done"));
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(c.snapshot().len(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        c.snapshot().is_empty(),
        "expired operations are never returned"
    );
    assert!(c.completed().is_empty());
    assert!(!c.has_signal("done"), "nor are their signals");
    assert_eq!(c.total_signals(), 0);
}

#[tokio::test(start_paused = true)]
async fn pinned_operations_stay_until_unpinned_or_evicted() {
    let c = WorkCoordinator::new(
        |_: u32, _op| async { Ok::<_, Io>(()) },
        Options::default()
            .max_concurrency(1)
            .max_tracked_operations(3)
            .max_operation_lifetime(Some(Duration::from_secs(60))),
    );
    let first = c.enqueue(0).await.unwrap();
    let second = c.enqueue(1).await.unwrap();
    while c.total_completed() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(c.pin(first));
    assert!(c.pin(second));
    for n in 2..50 {
        c.enqueue(n).await.unwrap();
    }
    while c.total_completed() < 50 {
        tokio::task::yield_now().await;
    }
    let ids: Vec<_> = c.snapshot().iter().map(|s| s.id()).collect();
    assert_eq!(ids.len(), 3, "pinned ones count toward the bound");
    assert!(ids.contains(&first) && ids.contains(&second));
    assert!(c.snapshot().iter().filter(|s| s.is_pinned()).count() == 2);
    tokio::time::advance(Duration::from_secs(120)).await;
    let ids: Vec<_> = c.snapshot().iter().map(|s| s.id()).collect();
    assert_eq!(ids, vec![first, second], "pinned ones never expire");
    assert!(c.evict(first));
    assert!(!c.evict(first));
    assert!(c.unpin(second));
    assert!(c.snapshot().is_empty(), "unpinned and expired");
    assert!(!c.pin(OperationId::next()), "unknown ids are not found");
}

#[tokio::test(start_paused = true)]
async fn snapshots_are_copies_without_payloads() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |_: String, op: Operation| {
            let g = g.clone();
            async move {
                op.emit("a");
                g.notified().await;
                op.emit("b");
                Ok::<_, Io>(())
            }
        },
        Options::default(),
    );
    c.enqueue("secret payload".to_string()).await.unwrap();
    tokio::task::yield_now().await;
    let before = c.snapshot();
    assert_eq!(before.len(), 1);
    assert!(before[0].is_running());
    gate.notify_waiters();
    c.complete();
    c.drain().await;
    assert_eq!(before[0].signals().len(), 1, "a snapshot never changes");
    assert!(before[0].completed().is_none());
    let after = c.snapshot();
    assert_eq!(after[0].signals().len(), 2);
    assert!(!format!("{after:?}").contains("secret payload"));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_body_is_a_failure_and_the_coordinator_goes_on() {
    let c = WorkCoordinator::new(
        |n: u8, _op| async move {
            if n == 1 {
                panic!("boom {n}");
            }
            Ok::<_, Io>(())
        },
        Options::default().max_concurrency(1),
    );
    for n in 0..3 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    assert_eq!((c.total_completed(), c.total_failed()), (2, 1));
    let failed = c.failed();
    let err = failed[0].error().unwrap();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("boom 1"));
}

#[derive(Debug)]
struct Custom(u32);
impl std::fmt::Display for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "custom {}", self.0)
    }
}
impl std::error::Error for Custom {}

#[tokio::test(start_paused = true)]
async fn body_errors_are_reachable_by_downcast() {
    let c = WorkCoordinator::new(
        |n: u32, _op| async move { Err(Custom(n)) },
        Options::default(),
    );
    c.enqueue(42).await.unwrap();
    c.complete();
    c.drain().await;
    let failed = c.failed();
    let err = failed[0].error().unwrap();
    assert_eq!(err.downcast_ref::<Custom>().unwrap().0, 42);
    assert!(!err.is_panic() && !err.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn panicking_callbacks_never_hang_drain() {
    let samples = Arc::new(AtomicUsize::new(0));
    let s = samples.clone();
    let c = WorkCoordinator::new(
        |_: u8, op: Operation| async move {
            op.emit("x");
            op.retract("x");
            Ok::<_, Io>(())
        },
        Options::default()
            .on_sample(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
                panic!("sampler")
            })
            .on_signal(|_| panic!("on_signal"))
            .on_signal_retracted(|_| panic!("on_retracted"))
            .on_signal_async(|_| async { panic!("async handler") as Result<(), Io> }),
    );
    for n in 0..20 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    tokio::time::timeout(Duration::from_secs(5), c.drain())
        .await
        .expect("drain hung");
    assert_eq!(c.total_completed(), 20);
    assert_eq!(
        samples.load(Ordering::SeqCst),
        20,
        "on_sample runs once per finished operation"
    );
}

#[tokio::test(start_paused = true)]
async fn on_sample_sees_the_operation_finished() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let c = WorkCoordinator::new(
        |_: u8, _op| async { Ok::<_, Io>(()) },
        Options::default()
            .max_concurrency(1)
            .on_sample(move |window| {
                let finished = window.iter().filter(|o| !o.is_running()).count();
                s.lock().unwrap().push(finished);
            }),
    );
    for n in 0..4 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
}

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

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_runs_queued_work_then_releases_the_body() {
    let ran = Arc::new(AtomicUsize::new(0));
    let marker = Arc::new(());
    let (r, m) = (ran.clone(), marker.clone());
    let c = WorkCoordinator::new(
        move |_: u32, _op| {
            let r = r.clone();
            let _keep = m.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Io>(())
            }
        },
        Options::default().max_concurrency(2),
    );
    for n in 0..10 {
        c.enqueue(n).await.unwrap();
    }
    let other = c.clone();
    drop(c);
    assert!(!other.is_completed(), "a clone keeps it open");
    drop(other);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 10, "queued work still ran");
    assert_eq!(
        Arc::strong_count(&marker),
        1,
        "the body closure was released"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_bodies_that_ignore_their_token() {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Io>(())
            }
        },
        Options::default().max_concurrency(2),
    );
    for n in 0..5 {
        c.enqueue(n).await.unwrap();
    }
    tokio::task::yield_now().await;
    c.shutdown().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "both running bodies returned"
    );
    let s = c.stats();
    assert_eq!(
        (s.completed, s.cancelled, s.pending, s.active),
        (2, 3, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_parent_token_cancels_the_coordinator() {
    let parent = ephemeral::CancellationToken::new();
    let c = WorkCoordinator::new(
        |_: u32, op: Operation| async move {
            op.token().cancelled().await;
            Err(Io::other("stopped"))
        },
        Options::default()
            .max_concurrency(1)
            .cancellation_token(parent.clone()),
    );
    for n in 0..3 {
        c.enqueue(n).await.unwrap();
    }
    tokio::task::yield_now().await;
    parent.cancel();
    c.drain().await;
    let s = c.stats();
    assert_eq!((s.failed, s.cancelled), (1, 2));
    assert!(c.failed()[0].error().unwrap().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn from_stream_feeds_and_completes() {
    let c = WorkCoordinator::from_stream(
        futures::stream::iter(0..50u32),
        |_, _op| async { Ok::<_, Io>(()) },
        Options::default().queue_capacity(4),
    );
    c.drain().await;
    assert_eq!(c.total_completed(), 50);
    assert!(c.is_completed());
}

#[test]
#[should_panic(expected = "max_concurrency must be at least 1")]
fn zero_concurrency_is_a_clear_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _g = rt.enter();
    let _ = WorkCoordinator::new(
        |_: u8, _op| async { Ok::<_, Io>(()) },
        Options::default().max_concurrency(0),
    );
}

#[test]
fn invalid_options_name_the_field() {
    for (options, field) in [
        (Options::default().max_concurrency(0), "max_concurrency"),
        (
            Options::default().max_tracked_operations(0),
            "max_tracked_operations",
        ),
        (Options::default().queue_capacity(0), "queue_capacity"),
        (
            Options::default().max_concurrency_per_key(0),
            "max_concurrency_per_key",
        ),
        (
            Options::default().max_concurrent_signal_handlers(0),
            "max_concurrent_signal_handlers",
        ),
        (
            Options::default().max_queued_signals(0),
            "max_queued_signals",
        ),
    ] {
        let err = options.validate().unwrap_err();
        assert_eq!(err.field(), field);
        assert!(err.to_string().starts_with(field));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_by_the_window() {
    let c = WorkCoordinator::new(
        |n: u64, op: Operation| async move {
            if n % 100 == 0 {
                op.emit("tick");
            }
            Ok::<_, Io>(())
        },
        Options::default()
            .max_concurrency(8)
            .max_tracked_operations(64)
            .queue_capacity(256),
    );
    for n in 0..200_000u64 {
        c.enqueue(n).await.unwrap();
        if n % 50_000 == 0 {
            // Per-worker shards of at most 64 finished operations, plus the running ones.
            assert!(c.window_len() <= 9 * 64 + 8, "window {}", c.window_len());
            // Reads see the newest 64.
            assert!(c.completed().len() <= 64);
        }
    }
    c.complete();
    c.drain().await;
    // A read trims the shards of workers that have not left yet.
    assert!(c.total_signals() <= 64);
    assert!(c.window_len() <= 64);
}

/// Park/wake races: the queue empties and refills thousands of times while several producers
/// push small bursts, the limit moves and intake pauses; a lost wake-up shows as a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_never_lose_a_wakeup() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let c = WorkCoordinator::new(
        move |n: u64, _op| {
            let d = d.clone();
            async move {
                if n % 5 == 0 {
                    tokio::task::yield_now().await;
                }
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Io>(())
            }
        },
        Options::default()
            .max_concurrency(3)
            .dynamic_concurrency(true)
            .queue_capacity(4),
    );
    let producers: Vec<_> = (0..3u64)
        .map(|p| {
            let c = c.clone();
            tokio::spawn(async move {
                for round in 0..1_500u64 {
                    for k in 0..(round % 3 + 1) {
                        c.enqueue(p * 1_000_000 + round * 10 + k).await.unwrap();
                    }
                    if round % 7 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    let fiddler = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..300usize {
                c.set_max_concurrency(1 + i % 4).unwrap();
                if i % 10 == 0 {
                    c.pause();
                    tokio::task::yield_now().await;
                    c.resume();
                }
                tokio::task::yield_now().await;
            }
            c.set_max_concurrency(3).unwrap();
        })
    };
    for p in producers {
        tokio::time::timeout(Duration::from_secs(60), p)
            .await
            .expect("a producer stalled: lost wake-up for queue room")
            .unwrap();
    }
    fiddler.await.unwrap();
    c.complete();
    tokio::time::timeout(Duration::from_secs(60), c.drain())
        .await
        .expect("drain stalled: lost worker wake-up");
    let expected: u64 = 3 * (0..1_500u64).map(|r| r % 3 + 1).sum::<u64>();
    assert_eq!(done.load(Ordering::SeqCst) as u64, expected);
    assert_eq!(c.total_completed(), expected);
}

/// Capacities above the preallocated ring's limit are exact too (and allocate as they fill).
#[tokio::test(start_paused = true)]
async fn very_large_queue_capacity_is_exact() {
    let c = WorkCoordinator::new(
        |_: u32, _op| async { Ok::<_, Io>(()) },
        Options::default().queue_capacity(70_000),
    );
    c.pause();
    for n in 0..70_000 {
        c.try_enqueue(n).unwrap();
    }
    assert!(matches!(c.try_enqueue(1), Err(TryEnqueueError::Full(1))));
    assert_eq!(c.pending_count(), 70_000);
    c.resume();
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 70_000);
    // An untouched coordinator with a huge capacity costs nothing up front.
    let big = WorkCoordinator::new(
        |_: u32, _op| async { Ok::<_, Io>(()) },
        Options::default().queue_capacity(100_000_000),
    );
    big.enqueue(1).await.unwrap();
    big.complete();
    big.drain().await;
    assert_eq!(big.total_completed(), 1);
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

/// Bodies that never wait must not let a worker hold its thread: other tasks get turns while
/// a long queue of trivial items runs.
#[tokio::test(start_paused = true)]
async fn trivial_bodies_do_not_hog_the_thread() {
    let c = WorkCoordinator::new(
        |_: u32, _op| async { Ok::<_, Io>(()) },
        Options::default().max_concurrency(1).queue_capacity(20_000),
    );
    for n in 0..20_000 {
        c.try_enqueue(n).unwrap();
    }
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let (c2, s) = (c.clone(), seen.clone());
    let other = tokio::spawn(async move {
        s.store(c2.total_completed(), Ordering::SeqCst);
    });
    c.complete();
    c.drain().await;
    other.await.unwrap();
    let at = seen.load(Ordering::SeqCst);
    assert!(at < 10_000, "the other task only ran after {at} items");
}

/// `complete` racing producers on other threads: an item accepted by `try_enqueue` has run
/// by the time `drain` returns (a drain that missed a push still in flight would return
/// before that item ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_every_item_accepted_while_complete_races_producers() {
    for round in 0..2000u64 {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let c = Arc::new(WorkCoordinator::new(
            move |_: u64, _op: Operation| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Io>(())
                }
            },
            Options::default().max_concurrency(2).queue_capacity(64),
        ));
        let producers: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut accepted = 0usize;
                    loop {
                        match c.try_enqueue(0) {
                            Ok(_) => accepted += 1,
                            Err(TryEnqueueError::Full(_)) => tokio::task::yield_now().await,
                            Err(TryEnqueueError::Closed(_)) => return accepted,
                            Err(e) => panic!("unexpected refusal: {e}"),
                        }
                    }
                })
            })
            .collect();
        for _ in 0..(round % 7) {
            tokio::task::yield_now().await;
        }
        c.complete();
        c.drain().await;
        let ran_at_drain = ran.load(Ordering::SeqCst);
        let mut accepted = 0;
        for p in producers {
            accepted += p.await.unwrap();
        }
        assert_eq!(
            accepted, ran_at_drain,
            "round {round}: drain returned early"
        );
        let s = c.stats();
        assert_eq!(s.enqueued, accepted as u64);
        assert_eq!(s.enqueued, s.completed + s.failed + s.cancelled);
    }
}

/// The window is sharded per worker: with several workers, every read still sees exactly the
/// newest `max_tracked_operations` finished operations, and pin, unpin and evict find an
/// operation whichever worker ran it.
#[tokio::test(start_paused = true)]
async fn window_reads_are_exact_across_workers() {
    let c = WorkCoordinator::new(
        |n: u64, _op: Operation| async move {
            // Uneven durations, so workers finish out of step.
            tokio::time::sleep(Duration::from_millis(1 + n % 5)).await;
            Ok::<_, Io>(())
        },
        Options::default()
            .max_concurrency(4)
            .max_tracked_operations(6)
            .queue_capacity(100),
    );
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(c.enqueue(n).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(15)).await;
    c.pause();
    // Running ones finish; no new one starts.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(c.active_count(), 0);
    let finished = c.total_completed();
    assert!((12..40).contains(&finished), "{finished} finished");
    let done = c.completed();
    assert_eq!(done.len(), 6, "exactly the window's capacity");
    // The newest six by completion: nothing that finished later was left out.
    let oldest_kept = done.iter().filter_map(|s| s.completed()).min().unwrap();
    assert!(done.iter().all(|s| s.completed().unwrap() >= oldest_kept));
    let kept: HashSet<OperationId> = done.iter().map(|s| s.id()).collect();
    let (inside, outside): (Vec<&OperationId>, Vec<&OperationId>) = ids
        .iter()
        .take(finished as usize)
        .partition(|id| kept.contains(*id));
    assert_eq!(inside.len(), 6);
    for id in &outside {
        assert!(
            !c.pin(**id),
            "an operation that left the window cannot be pinned"
        );
        assert!(!c.evict(**id));
    }
    // Pin two kept operations (whatever worker ran them), evict another.
    assert!(c.pin(*inside[0]));
    assert!(c.pin(*inside[1]));
    assert!(c.evict(*inside[2]));
    assert!(!c.evict(*inside[2]));
    assert_eq!(c.completed().len(), 5);
    c.resume();
    c.complete();
    c.drain().await;
    let done = c.completed();
    assert_eq!(done.len(), 6);
    let pinned: Vec<_> = done
        .iter()
        .filter(|s| s.is_pinned())
        .map(|s| s.id())
        .collect();
    assert_eq!(pinned.len(), 2, "pinned operations outlive 30 newer ones");
    assert!(pinned.contains(inside[0]) && pinned.contains(inside[1]));
    assert!(c.unpin(*inside[0]));
    assert!(!c.unpin(*inside[0]));
    assert_eq!(c.total_completed(), 40);
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
