//! One-shot runs: `for_each`, `for_each_stream`, `for_each_keyed` and `for_each_keyed_stream`:
//! summary counts, the final window as snapshot, body failures, the concurrency caps, and
//! cancellation through the options' token.

mod support;
use support::quiet_deliberate_panics;

use ephemeral::{
    for_each, for_each_keyed, for_each_keyed_stream, for_each_stream, Cancelled, Operation,
    OperationId, Options,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type BodyResult = Result<(), std::io::Error>;

/// Multiples of 5 fail, 7 panics, the rest succeed.
async fn mixed(n: u32, _op: Operation) -> BodyResult {
    match n {
        7 => panic!("deliberate test panic"),
        n if n % 5 == 0 => Err(std::io::Error::other("multiple of five")),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn summary_counts_successes_failures_and_panics() {
    quiet_deliberate_panics();
    let summary = for_each(0..50u32, mixed, Options::default().max_concurrency(4))
        .await
        .expect("body failures must not fail the call");
    assert_eq!((summary.completed, summary.failed), (39, 11));
    assert_eq!(summary.snapshot.len(), 50);
    assert!(summary.snapshot.iter().all(|s| !s.is_running()));
    assert_eq!(
        summary.snapshot.iter().filter(|s| s.is_faulted()).count(),
        11
    );
    assert_eq!(
        summary
            .snapshot
            .iter()
            .filter(|s| s.error().is_some_and(|e| e.is_panic()))
            .count(),
        1
    );
}

#[tokio::test]
async fn every_body_failing_still_returns_a_summary() {
    let summary = for_each(
        0..20u32,
        |_n, _op| async { Err::<(), _>("always") },
        Options::default().max_concurrency(3),
    )
    .await
    .unwrap();
    assert_eq!((summary.completed, summary.failed), (0, 20));
    let e = summary.snapshot[0].error().unwrap();
    assert_eq!(e.to_string(), "always");
}

#[tokio::test]
async fn snapshot_is_the_final_window() {
    let ids = Arc::new(Mutex::new(Vec::<OperationId>::new()));
    let i = ids.clone();
    let summary = for_each(
        0..30u32,
        move |_n, op: Operation| {
            i.lock().unwrap().push(op.id());
            async { BodyResult::Ok(()) }
        },
        Options::default()
            .max_concurrency(1)
            .max_tracked_operations(10),
    )
    .await
    .unwrap();
    assert_eq!((summary.completed, summary.failed), (30, 0));
    let ids = ids.lock().unwrap();
    let window: Vec<OperationId> = summary.snapshot.iter().map(|s| s.id()).collect();
    assert_eq!(window, ids[20..]);
    assert!(summary.snapshot.iter().all(|s| s.completed().is_some()));
}

#[tokio::test(start_paused = true)]
async fn for_each_respects_the_concurrency_cap() {
    let active = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (a, m) = (active.clone(), max.clone());
    let t0 = Instant::now();
    let summary = for_each(
        0..20u32,
        move |_n, _op| {
            let (a, m) = (a.clone(), m.clone());
            async move {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                a.fetch_sub(1, Ordering::SeqCst);
                BodyResult::Ok(())
            }
        },
        Options::default().max_concurrency(4).queue_capacity(2),
    )
    .await
    .unwrap();
    assert_eq!(summary.completed, 20);
    assert_eq!(max.load(Ordering::SeqCst), 4);
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test]
async fn for_each_stream_runs_every_item() {
    quiet_deliberate_panics();
    let summary = for_each_stream(
        futures::stream::iter(0..50u32).then(|n| async move {
            tokio::task::yield_now().await;
            n
        }),
        mixed,
        Options::default().max_concurrency(4).queue_capacity(3),
    )
    .await
    .unwrap();
    assert_eq!((summary.completed, summary.failed), (39, 11));
}

// ----- cancellation -------------------------------------------------------------------------

/// Counts started and returned bodies; each body works 1 s, or, once its token is cancelled,
/// ignores it for 2 s more before returning.
#[derive(Clone, Default)]
struct Tally {
    started: Arc<AtomicUsize>,
    returned: Arc<AtomicUsize>,
}

impl Tally {
    fn body<T>(
        &self,
    ) -> impl Fn(T, Operation) -> futures::future::BoxFuture<'static, BodyResult> + Send + Sync + 'static
    {
        let t = self.clone();
        move |_item, op: Operation| {
            let t = t.clone();
            Box::pin(async move {
                t.started.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = op.token().cancelled() => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
                t.returned.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn returned(&self) -> usize {
        self.returned.load(Ordering::SeqCst)
    }
}

fn cancel_after(token: &CancellationToken, after: Duration) {
    let token = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        token.cancel();
    });
}

#[tokio::test(start_paused = true)]
async fn cancelling_returns_only_after_every_started_body_returned() {
    let tally = Tally::default();
    let token = CancellationToken::new();
    cancel_after(&token, Duration::from_millis(4500));
    let t0 = Instant::now();
    let result = for_each(
        0..100u32,
        tally.body(),
        Options::default()
            .max_concurrency(3)
            .queue_capacity(4)
            .cancellation_token(token.clone()),
    )
    .await;
    assert_eq!(result.unwrap_err(), Cancelled);
    assert_eq!(
        tally.started(),
        tally.returned(),
        "returned before bodies did"
    );
    // Items started in rounds at 0..=4 s; the last round was cancelled at 4.5 s.
    assert_eq!(tally.started(), 15);
    assert_eq!(t0.elapsed(), Duration::from_millis(6500));
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_keyed_run_waits_for_started_bodies() {
    let tally = Tally::default();
    let token = CancellationToken::new();
    cancel_after(&token, Duration::from_millis(2500));
    let t0 = Instant::now();
    let result = for_each_keyed(
        0..60u32,
        |n: &u32| n % 3,
        tally.body(),
        Options::default()
            .max_concurrency(8)
            .queue_capacity(5)
            .cancellation_token(token.clone()),
    )
    .await;
    assert_eq!(result.unwrap_err(), Cancelled);
    assert_eq!(tally.started(), tally.returned());
    // Three keys, one at a time each: rounds at 0, 1, 2 s.
    assert_eq!(tally.started(), 9);
    assert_eq!(t0.elapsed(), Duration::from_millis(4500));
}

#[tokio::test(start_paused = true)]
async fn cancelling_while_the_stream_stalls_ends_the_run() {
    let tally = Tally::default();
    let token = CancellationToken::new();
    cancel_after(&token, Duration::from_millis(500));
    // Three items, then a stream that never yields again.
    let items = futures::stream::iter(0..3u32).chain(futures::stream::pending());
    let result = tokio::time::timeout(
        Duration::from_secs(3600),
        for_each_stream(
            items,
            tally.body(),
            Options::default()
                .max_concurrency(4)
                .cancellation_token(token.clone()),
        ),
    )
    .await
    .expect("for_each_stream ignored the cancelled token while its stream stalled");
    assert_eq!(result.unwrap_err(), Cancelled);
    assert_eq!((tally.started(), tally.returned()), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_stalled_keyed_stream_ends_the_run() {
    let tally = Tally::default();
    let token = CancellationToken::new();
    cancel_after(&token, Duration::from_millis(500));
    let items = futures::stream::iter(0..4u32).chain(futures::stream::pending());
    let result = tokio::time::timeout(
        Duration::from_secs(3600),
        for_each_keyed_stream(
            items,
            |n: &u32| n % 2,
            tally.body(),
            Options::default()
                .max_concurrency(4)
                .cancellation_token(token.clone()),
        ),
    )
    .await
    .expect("for_each_keyed_stream ignored the cancelled token while its stream stalled");
    assert_eq!(result.unwrap_err(), Cancelled);
    assert_eq!((tally.started(), tally.returned()), (2, 2));
}

#[tokio::test]
async fn an_already_cancelled_token_runs_nothing() {
    let token = CancellationToken::new();
    token.cancel();
    let tally = Tally::default();
    let options = Options::default().cancellation_token(token);
    assert_eq!(
        for_each(0..10u32, tally.body(), options.clone())
            .await
            .unwrap_err(),
        Cancelled
    );
    assert_eq!(
        for_each_stream(
            futures::stream::iter(0..10u32),
            tally.body(),
            options.clone()
        )
        .await
        .unwrap_err(),
        Cancelled
    );
    assert_eq!(
        for_each_keyed(0..10u32, |n: &u32| *n, tally.body(), options.clone())
            .await
            .unwrap_err(),
        Cancelled
    );
    assert_eq!(
        for_each_keyed_stream(
            futures::stream::iter(0..10u32),
            |n: &u32| *n,
            tally.body(),
            options
        )
        .await
        .unwrap_err(),
        Cancelled
    );
    assert_eq!(tally.started(), 0);
}

#[tokio::test]
async fn an_uncancelled_token_changes_nothing() {
    let token = CancellationToken::new();
    let summary = for_each(
        0..10u32,
        |_n, _op| async { BodyResult::Ok(()) },
        Options::default().cancellation_token(token.clone()),
    )
    .await
    .unwrap();
    assert_eq!(summary.completed, 10);
    assert!(!token.is_cancelled());
}

// ----- keyed --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_keyed_keeps_per_key_order() {
    let log = Arc::new(Mutex::new(HashMap::<u32, Vec<u32>>::new()));
    let l = log.clone();
    let items: Vec<(u32, u32)> = (0..400).map(|i| (i % 9, i)).collect();
    let summary = for_each_keyed(
        items,
        |it: &(u32, u32)| it.0,
        move |(k, i): (u32, u32), op: Operation| {
            let l = l.clone();
            async move {
                assert_eq!(op.key(), Some(k.to_string().as_str()));
                l.lock().unwrap().entry(k).or_default().push(i);
                tokio::task::yield_now().await;
                if i % 10 == 0 {
                    Err(std::io::Error::other("tenth"))
                } else {
                    Ok(())
                }
            }
        },
        Options::default()
            .max_concurrency(4)
            .queue_capacity(8)
            .max_tracked_operations(1000),
    )
    .await
    .unwrap();
    assert_eq!((summary.completed, summary.failed), (360, 40));
    assert_eq!(summary.snapshot.len(), 400);
    let log = log.lock().unwrap();
    for (k, seen) in log.iter() {
        let expected: Vec<u32> = (0..400).filter(|i| i % 9 == *k).collect();
        assert_eq!(seen, &expected, "key {k}");
    }
    for s in &summary.snapshot {
        assert!(s.key().is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn for_each_keyed_runs_keys_in_parallel_and_one_key_serially() {
    let t0 = Instant::now();
    let summary = for_each_keyed(
        // Key "slow" has 3 items, each other key one: with 4 slots, the run takes 3 s.
        vec!["slow", "slow", "slow", "a", "b", "c", "d", "e"],
        |k: &&'static str| *k,
        |_k, _op| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            BodyResult::Ok(())
        },
        Options::default().max_concurrency(4),
    )
    .await
    .unwrap();
    assert_eq!(summary.completed, 8);
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    let slow: Vec<_> = summary
        .snapshot
        .iter()
        .filter(|s| s.key() == Some("slow"))
        .collect();
    assert_eq!(slow.len(), 3);
    for pair in slow.windows(2) {
        assert!(pair[0].completed().unwrap() <= pair[1].started());
    }
}

#[tokio::test]
async fn for_each_keyed_stream_summary() {
    let summary = for_each_keyed_stream(
        futures::stream::iter(0..30u32),
        |n: &u32| n % 4,
        |n, _op| async move {
            if n == 3 {
                Err("three")
            } else {
                Ok(())
            }
        },
        Options::default().max_concurrency(2),
    )
    .await
    .unwrap();
    assert_eq!((summary.completed, summary.failed), (29, 1));
    assert_eq!(summary.snapshot.len(), 30);
}

/// While a cancel-on signal is present, for_each refuses items and counts them.
#[tokio::test(start_paused = true)]
async fn a_present_cancel_signal_refuses_items() {
    let sink = ephemeral::SignalSink::default();
    sink.raise("overload");
    let summary = ephemeral::for_each(
        0..5u32,
        |_n, _op| async { Ok::<_, std::io::Error>(()) },
        ephemeral::Options::default()
            .signals(sink.clone())
            .cancel_on_signals(["overload"]),
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.completed, summary.failed, summary.cancelled),
        (0, 0, 5)
    );
}
