//! The work-coordinator invariants, per key: the global cap, the per-key cap, cancel, drain, failures.

use super::*;

#[tokio::test(start_paused = true)]
async fn global_cap_holds_across_keys_and_no_slot_idles() {
    let active = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (a, m) = (active.clone(), max.clone());
    let c = KeyedWorkCoordinator::new(
        |it: &(u32, u32)| it.0,
        move |_it: (u32, u32), _op: Operation| {
            let (a, m) = (a.clone(), m.clone());
            async move {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                a.fetch_sub(1, Ordering::SeqCst);
                BodyResult::Ok(())
            }
        },
        Options::default()
            .max_concurrency(3)
            .max_concurrency_per_key(2),
    );
    let t0 = Instant::now();
    for n in 0..4 {
        for key in 0..10 {
            c.enqueue((key, n)).await.unwrap();
        }
    }
    c.complete();
    c.drain().await;
    assert_eq!(max.load(Ordering::SeqCst), 3);
    // 40 one-second items on 3 slots: 14 rounds, no slot left idle while items were ready.
    assert_eq!(t0.elapsed(), Duration::from_secs(14));
    assert_eq!(c.total_completed(), 40);
}

#[tokio::test(start_paused = true)]
async fn per_key_cap_limits_a_single_key() {
    let active = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (a, m) = (active.clone(), max.clone());
    let c = KeyedWorkCoordinator::new(
        |_: &u32| "only",
        move |_n: u32, _op: Operation| {
            let (a, m) = (a.clone(), m.clone());
            async move {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                a.fetch_sub(1, Ordering::SeqCst);
                BodyResult::Ok(())
            }
        },
        Options::default()
            .max_concurrency(8)
            .max_concurrency_per_key(2),
    );
    let t0 = Instant::now();
    for n in 0..10 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    assert_eq!(max.load(Ordering::SeqCst), 2);
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_pending_items_of_every_key_and_waits_for_running_bodies() {
    let returned = Arc::new(AtomicUsize::new(0));
    let saw_cancel = Arc::new(AtomicUsize::new(0));
    let (r, s) = (returned.clone(), saw_cancel.clone());
    let c = KeyedWorkCoordinator::new(
        |it: &(&'static str, u32)| it.0,
        move |_it: (&'static str, u32), op: Operation| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                op.token().cancelled().await;
                s.fetch_add(1, Ordering::SeqCst);
                // Ignores the token a while longer.
                tokio::time::sleep(Duration::from_secs(3)).await;
                r.fetch_add(1, Ordering::SeqCst);
                BodyResult::Ok(())
            }
        },
        Options::default()
            .max_concurrency(2)
            .max_concurrency_per_key(1),
    );
    for n in 0..10 {
        for key in ["a", "b", "c"] {
            c.enqueue((key, n)).await.unwrap();
        }
    }
    wait_until(100, || c.active_count() == 2).await;
    assert_eq!(c.active_keys(), 3);
    c.cancel();
    let s = c.stats();
    assert_eq!((s.pending, s.active, s.cancelled), (0, 2, 28));
    assert!(s.closed);
    match c.try_enqueue(("a", 99)) {
        Err(TryEnqueueError::Closed(item)) => assert_eq!(item, ("a", 99)),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(
        c.enqueue(("d", 0)).await,
        Err(EnqueueError::Closed(("d", 0)))
    ));
    assert!(!c.is_drained());
    let t0 = Instant::now();
    c.shutdown().await;
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert_eq!(returned.load(Ordering::SeqCst), 2);
    assert_eq!(saw_cancel.load(Ordering::SeqCst), 2);
    let s = c.stats();
    assert_eq!(s.enqueued, 30);
    assert_eq!(s.enqueued, s.completed + s.failed + s.cancelled);
    assert_eq!(c.active_keys(), 0);
    assert!(c.is_drained());
}

#[tokio::test(start_paused = true)]
async fn drain_waits_while_paused_and_runs_everything_after_resume() {
    let (c, log) = timed(Options::default().max_concurrency(4));
    c.pause();
    for n in 0..6 {
        c.enqueue(if n % 2 == 0 { ("x", n, 1) } else { ("y", n, 1) })
            .await
            .unwrap();
    }
    assert!(c.complete());
    assert!(!c.complete());
    assert!(tokio::time::timeout(Duration::from_secs(60), c.drain())
        .await
        .is_err());
    assert_eq!(c.pending_count(), 6);
    assert!(log.lock().unwrap().is_empty());
    c.resume();
    c.drain().await;
    let s = c.stats();
    assert_eq!((s.enqueued, s.completed, s.pending, s.active), (6, 6, 0, 0));
    assert_eq!(c.active_keys(), 0);
}

#[tokio::test]
async fn failures_and_panics_are_counted_and_do_not_stall_the_key() {
    quiet_deliberate_panics();
    let c = KeyedWorkCoordinator::new(
        |it: &(&'static str, u32)| it.0,
        |(_, n): (&'static str, u32), _op: Operation| async move {
            match n % 3 {
                0 => Ok(()),
                1 => Err(std::io::Error::other("deliberate failure")),
                _ => panic!("deliberate test panic"),
            }
        },
        Options::default().max_concurrency(2),
    );
    for n in 0..9 {
        c.enqueue(("k", n)).await.unwrap();
    }
    c.complete();
    c.drain().await;
    let s = c.stats();
    assert_eq!((s.completed, s.failed), (3, 6));
    let failed = c.failed();
    assert_eq!(failed.len(), 6);
    assert_eq!(
        failed
            .iter()
            .filter(|s| s.error().unwrap().is_panic())
            .count(),
        3
    );
    assert_eq!(c.active_keys(), 0);
}
