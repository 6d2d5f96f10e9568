//! The concurrency cap and the queue: no item lost or run twice, limits that move, capacity that is exact, no lost wake-ups.

use super::*;

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
