//! complete, drain, pause, cancel, shutdown, the last handle, parent tokens, streams and invalid options.

use super::*;

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
