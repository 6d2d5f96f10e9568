//! Per-item visibility: `enqueue_with_handle` and `Completion`, `snapshot_of`, labels, and
//! bodies returning `()`.

use ephemeral::{
    for_each, KeyedWorkCoordinator, Operation, OperationId, Options, ResultCoordinator, SignalSink,
    WorkCoordinator,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[tokio::test]
async fn a_completion_resolves_to_the_items_outcome_after_it_shows_finished() {
    let c = WorkCoordinator::new(
        |n: u32, _op: Operation| async move {
            match n {
                1 => Err("one failed"),
                2 => panic!("two panicked"),
                _ => Ok(()),
            }
        },
        Options::default().max_concurrency(2),
    );
    let handles = [
        c.enqueue_with_handle(0).await.unwrap(),
        c.enqueue_with_handle(1).await.unwrap(),
        c.enqueue_with_handle(2).await.unwrap(),
    ];
    let ids: Vec<OperationId> = handles.iter().map(|h| h.id()).collect();
    let [ok, failed, panicked] = handles;
    assert!(ok.await.is_ok());
    let snap = c
        .snapshot_of(ids[0])
        .expect("finished before the completion resolved");
    assert!(snap.completed().is_some() && !snap.is_faulted());
    let e = failed.await.unwrap_err();
    assert_eq!(e.to_string(), "one failed");
    assert!(!e.is_cancelled());
    let e = panicked.await.unwrap_err();
    assert!(e.is_panic());
    assert!(c.snapshot_of(ids[2]).unwrap().is_faulted());
    assert_eq!(c.owed_replies(), 0);
    c.complete();
    c.drain().await;
}

#[tokio::test]
async fn a_result_completion_carries_a_clone_of_the_result() {
    let c = ResultCoordinator::new(
        |n: u64, _op| async move { Ok::<_, std::io::Error>(format!("#{n}")) },
        Options::default(),
    );
    let h = c.enqueue_with_handle(7).await.unwrap();
    assert_eq!(h.await.unwrap(), "#7");
    assert_eq!(c.results(), ["#7"], "the result also stays in the window");
}

#[tokio::test]
async fn a_keyed_completion_resolves() {
    let c = KeyedWorkCoordinator::new(
        |(k, _): &(char, u32)| *k,
        |_item: (char, u32), _op| async {},
        Options::default(),
    );
    let a = c.enqueue_with_handle(('a', 0)).await.unwrap();
    let b = c.enqueue_with_handle(('a', 1)).await.unwrap();
    assert!(a.await.is_ok() && b.await.is_ok());
    assert_eq!(c.total_completed(), 2);
}

#[tokio::test]
async fn items_dropped_before_starting_resolve_as_not_started() {
    let c = WorkCoordinator::new(|_: u32, _op| async {}, Options::default());
    c.pause();
    let h = c.enqueue_with_handle(1).await.unwrap();
    let plain = c.enqueue(2).await.unwrap();
    c.cancel();
    let e = h.await.unwrap_err();
    assert!(e.is_cancelled() && e.is_not_started(), "{e:?}");
    assert_eq!(e.to_string(), "cancelled before it started");
    assert!(
        c.snapshot_of(plain).is_none(),
        "never started, never in the window"
    );
    assert_eq!(c.stats().cancelled, 2);
    assert_eq!(c.owed_replies(), 0);
}

#[tokio::test]
async fn an_item_discarded_by_a_cancel_on_signal_resolves_as_not_started() {
    let sink = SignalSink::default();
    let c = WorkCoordinator::new(
        |_: u32, _op| async {},
        Options::default()
            .signals(sink.clone())
            .cancel_on_signals(["halt"]),
    );
    c.pause();
    let h = c.enqueue_with_handle(1).await.unwrap();
    sink.raise("halt");
    c.resume();
    let e = tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .expect("resolves")
        .unwrap_err();
    assert!(e.is_not_started());
    assert_eq!(c.stats().cancelled, 1);
    assert_eq!(c.owed_replies(), 0);
}

#[tokio::test]
async fn a_refused_enqueue_with_handle_hands_the_item_back_and_owes_nothing() {
    let c = WorkCoordinator::new(|_: u32, _op| async {}, Options::default());
    c.complete();
    match c.enqueue_with_handle(5).await {
        Err(e) => assert_eq!(e.into_inner(), 5),
        Ok(_) => panic!("closed"),
    }
    assert_eq!(c.owed_replies(), 0);
}

#[tokio::test]
async fn a_dropped_enqueue_with_handle_owes_nothing_and_a_dropped_completion_does_not_cancel() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op| {
            let g = g.clone();
            async move {
                g.acquire().await.unwrap().forget();
            }
        },
        Options::default().max_concurrency(1).queue_capacity(1),
    );
    c.enqueue(0).await.unwrap(); // runs, blocked on the gate
    tokio::task::yield_now().await;
    c.enqueue(1).await.unwrap(); // fills the queue
                                 // Waits for room, then is dropped: the item is not enqueued.
    let waited = tokio::time::timeout(Duration::from_millis(20), c.enqueue_with_handle(2)).await;
    assert!(waited.is_err());
    gate.add_permits(10);
    let dropped = c.enqueue_with_handle(3).await.unwrap();
    drop(dropped);
    c.complete();
    c.drain().await;
    assert_eq!(
        c.total_completed(),
        3,
        "0, 1 and 3 ran; 2 was never enqueued"
    );
    assert_eq!(c.owed_replies(), 0);
}

#[tokio::test]
async fn snapshot_of_finds_running_and_finished_operations_and_ids_parse_back() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let c = WorkCoordinator::new(
        move |n: u32, op: Operation| {
            let g = g.clone();
            async move {
                op.set_label(format!("item-{n}"));
                if n == 1 {
                    g.acquire().await.unwrap().forget();
                }
            }
        },
        Options::default().max_concurrency(2),
    );
    let done = c.enqueue(0).await.unwrap();
    let running = c.enqueue(1).await.unwrap();
    for _ in 0..100 {
        if c.snapshot_of(done).is_some_and(|s| !s.is_running()) && c.active_count() == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let text = running.to_string();
    let parsed: OperationId = text.parse().unwrap();
    let snap = c.snapshot_of(parsed).expect("running operations are found");
    assert!(snap.is_running());
    assert_eq!(snap.label(), Some("item-1"));
    assert_eq!(c.snapshot_of(done).unwrap().label(), Some("item-0"));
    assert!(c.snapshot_of(OperationId::next()).is_none());
    gate.add_permits(1);
    c.complete();
    c.drain().await;
    assert!(c.evict(done));
    assert!(c.snapshot_of(done).is_none());
}

#[tokio::test]
async fn labels_are_cut_to_their_bound_at_a_char_boundary_and_frozen_after_the_body() {
    let kept = Arc::new(std::sync::Mutex::new(None::<Operation>));
    let k = kept.clone();
    let c = WorkCoordinator::new(
        move |_: (), op: Operation| {
            let k = k.clone();
            async move {
                // 'é' is two bytes: 127 ASCII bytes + 'é' would end past the bound.
                let long = format!("{}é{}", "x".repeat(127), "y".repeat(300));
                assert!(op.set_label(&long));
                *k.lock().unwrap() = Some(op);
            }
        },
        Options::default(),
    );
    c.enqueue(()).await.unwrap();
    c.complete();
    c.drain().await;
    let label = c.snapshot()[0].label().unwrap().to_string();
    assert_eq!(label, "x".repeat(127));
    assert!(label.len() <= Operation::MAX_LABEL_LEN);
    let op = kept.lock().unwrap().take().unwrap();
    assert!(
        !op.set_label("late"),
        "a finished operation's label no longer changes"
    );
    assert_eq!(c.snapshot()[0].label(), Some(label.as_str()));
}

#[tokio::test]
async fn bodies_may_return_unit() {
    let c = WorkCoordinator::new(|_: u32, _op| async {}, Options::default());
    c.enqueue(1).await.unwrap();
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 1);
    let summary = for_each(0..10u32, |_, _| async {}, Options::default())
        .await
        .unwrap();
    assert_eq!(summary.completed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_completion_resolves_once_under_concurrent_producers_and_a_cancel() {
    for round in 0..20 {
        let c = WorkCoordinator::new(
            |n: u32, _op| async move {
                if n % 7 == 0 {
                    tokio::task::yield_now().await;
                }
                if n % 11 == 0 {
                    Err("eleven")
                } else {
                    Ok(())
                }
            },
            Options::default().max_concurrency(3).queue_capacity(16),
        );
        let mut producers = Vec::new();
        for p in 0..3u32 {
            let c = c.clone();
            producers.push(tokio::spawn(async move {
                let mut handles = Vec::new();
                for n in 0..300u32 {
                    match c.enqueue_with_handle(p * 1000 + n).await {
                        Ok(h) => handles.push(h),
                        Err(_) => break,
                    }
                }
                let (mut ok, mut failed, mut unstarted) = (0u64, 0u64, 0u64);
                for h in handles {
                    match h.await {
                        Ok(()) => ok += 1,
                        Err(e) if e.is_not_started() => unstarted += 1,
                        Err(_) => failed += 1,
                    }
                }
                (ok, failed, unstarted)
            }));
        }
        if round % 2 == 0 {
            tokio::task::yield_now().await;
            c.cancel();
        } else {
            // Later than the other rounds: let the producers and workers get further.
            for _ in 0..64 {
                tokio::task::yield_now().await;
            }
            c.cancel();
        }
        let mut totals = (0, 0, 0);
        for p in producers {
            let (ok, failed, unstarted) = p.await.unwrap();
            totals = (totals.0 + ok, totals.1 + failed, totals.2 + unstarted);
        }
        c.drain().await;
        let s = c.stats();
        assert_eq!(
            (totals.0, totals.1, totals.2),
            (s.completed, s.failed, s.cancelled),
            "{s:?}"
        );
        assert_eq!(s.enqueued, s.completed + s.failed + s.cancelled);
        assert_eq!(c.owed_replies(), 0);
    }
}
