//! The per-key pending limit (fair scheduling).

use super::*;

#[tokio::test]
async fn a_pending_limit_refuses_a_key_at_its_limit() {
    let (c, gate) = gated(
        Options::default()
            .max_concurrency(4)
            .max_concurrency_per_key(1)
            .max_pending_per_key(3),
    );
    // a0 runs (running items do not count toward the threshold), a1..a3 pend.
    c.enqueue(('a', 0)).await.unwrap();
    wait_until(1000, || c.active_count() == 1).await;
    for n in 1..=3 {
        c.try_enqueue(('a', n)).unwrap();
    }
    assert_eq!(c.pending_count_for_key(&'a'), 3);
    match c.try_enqueue(('a', 4)) {
        Err(TryEnqueueError::KeyOverloaded(item)) => assert_eq!(item, ('a', 4)),
        other => panic!("expected KeyOverloaded, got {other:?}"),
    }
    match c.enqueue(('a', 5)).await {
        Err(EnqueueError::KeyOverloaded(item)) => assert_eq!(item, ('a', 5)),
        other => panic!("expected KeyOverloaded, got {other:?}"),
    }
    // Other keys are unaffected.
    c.try_enqueue(('b', 0)).unwrap();
    c.enqueue(('b', 1)).await.unwrap();
    // Refused items were never enqueued.
    assert_eq!(c.total_enqueued(), 6);
    // Once one of a's items starts, a takes one more.
    gate.add_permits(1);
    wait_until(1000, || c.pending_count_for_key(&'a') == 2).await;
    c.try_enqueue(('a', 6)).unwrap();
    assert!(matches!(
        c.try_enqueue(('a', 7)),
        Err(TryEnqueueError::KeyOverloaded(_))
    ));
    gate.add_permits(1000);
    c.complete();
    c.drain().await;
    let s = c.stats();
    assert_eq!((s.enqueued, s.completed), (7, 7));
}

#[tokio::test]
#[allow(deprecated)] // the deprecated spelling keeps working
async fn without_fair_scheduling_no_key_is_refused() {
    let (c, gate) = gated(
        Options::default()
            .max_concurrency(1)
            .fair_scheduling_threshold(2),
    );
    for n in 0..50 {
        c.try_enqueue(('a', n)).unwrap();
    }
    gate.add_permits(1000);
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 50);
}

#[tokio::test]
#[allow(deprecated)]
async fn the_deprecated_fair_scheduling_pair_still_sets_the_pending_limit() {
    let options = Options::default()
        .fair_scheduling(true)
        .fair_scheduling_threshold(2);
    assert_eq!(options.pending_limit_per_key(), Some(2));
    let (c, gate) = gated(options.max_concurrency(1));
    c.pause();
    c.try_enqueue(('a', 0)).unwrap();
    c.try_enqueue(('a', 1)).unwrap();
    assert!(matches!(
        c.try_enqueue(('a', 2)),
        Err(TryEnqueueError::KeyOverloaded(('a', 2)))
    ));
    c.resume();
    gate.add_permits(10);
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 2);
    assert_eq!(
        Options::default()
            .max_pending_per_key(0)
            .validate()
            .unwrap_err()
            .field(),
        "max_pending_per_key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_scheduling_check_is_atomic_with_the_insert() {
    for round in 0..40 {
        let (c, gate) = gated(Options::default().max_concurrency(2).max_pending_per_key(7));
        c.pause();
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut accepted = 0usize;
                    for n in 0..50 {
                        let ok = if (n + t) % 2 == 0 {
                            c.try_enqueue(('k', n)).is_ok()
                        } else {
                            c.enqueue(('k', n)).await.is_ok()
                        };
                        accepted += usize::from(ok);
                        if n % 8 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    accepted
                })
            })
            .collect();
        let mut accepted = 0;
        for t in tasks {
            accepted += t.await.unwrap();
        }
        assert_eq!(accepted, 7, "round {round}");
        assert_eq!(c.pending_count_for_key(&'k'), 7);
        assert_eq!(c.total_enqueued(), 7);
        gate.add_permits(100);
        c.resume();
        c.complete();
        c.drain().await;
        assert_eq!(c.total_completed(), 7);
    }
}
