//! The window: running plus a bounded number of finished operations, lifetimes, pins, snapshots, memory.

use super::*;

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
