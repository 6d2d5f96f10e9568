//! Faults: bodies that hang until cancelled or ignore cancellation, handlers and samplers that
//! panic, key `Hash` / `Display` impls that panic, stream sources that panic or stall, every
//! handle dropped during `drain`, and the runtime shut down with work in flight. Each ends in a
//! defined state with nothing silently lost and no hang.

use ephemeral::{KeyedWorkCoordinator, Operation, Options, SignalEvent, WorkCoordinator};
use futures::{FutureExt, StreamExt};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod support;

/// Keeps planned panics' messages out of the output.
fn quiet() {
    support::quiet_panics(|msg| msg.starts_with("planned"));
}

#[tokio::test(start_paused = true)]
async fn a_body_that_waits_for_cancellation_ends_with_cancel_and_is_counted() {
    let c = WorkCoordinator::new(
        |_: u32, op: Operation| async move {
            op.token().cancelled().await;
            Err::<(), _>("cancelled")
        },
        Options::default().max_concurrency(2),
    );
    for i in 0..5 {
        c.enqueue(i).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(c.stats().active, 2, "two bodies hang until cancelled");
    c.shutdown().await;
    let s = c.stats();
    assert_eq!(s.enqueued, 5);
    assert_eq!(
        s.failed, 2,
        "the running ones saw the token and returned: {s:?}"
    );
    assert_eq!(
        s.cancelled, 3,
        "the pending ones were dropped and counted: {s:?}"
    );
    assert_eq!((s.active, s.pending), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_body_that_ignores_cancellation_is_waited_for_by_shutdown() {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op: Operation| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(600)).await;
                f.fetch_add(1, Ordering::SeqCst);
            }
        },
        Options::default().max_concurrency(1),
    );
    c.enqueue(1).await.unwrap();
    c.enqueue(2).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    c.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_secs(599),
        "shutdown waited for the body"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    let s = c.stats();
    assert_eq!((s.completed, s.cancelled), (1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handlers_and_samplers_are_contained() {
    quiet();
    let c = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            op.emit(format!("step.{n}"));
        },
        Options::default()
            .max_concurrency(4)
            .on_signal(|_e: &SignalEvent| panic!("planned: sync handler"))
            .on_signal_async(|_e: SignalEvent| async {
                panic!("planned: async handler");
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            })
            .on_sample(|_w| panic!("planned: sampler")),
    );
    for i in 0..200 {
        c.enqueue(i).await.unwrap();
    }
    c.complete();
    tokio::time::timeout(Duration::from_secs(60), c.drain())
        .await
        .expect("drain does not hang");
    let s = c.stats();
    assert_eq!((s.completed, s.failed), (200, 0), "{s:?}");
    assert!(
        s.signal_handler_failures > 0,
        "async handler panics are counted: {s:?}"
    );
}

/// A key whose `Hash` panics for one value.
#[derive(Clone, PartialEq, Eq)]
struct Touchy(u32);

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.0 == 13 {
            panic!("planned: hash of 13");
        }
        self.0.hash(state);
    }
}

impl fmt::Display for Touchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 7 {
            panic!("planned: display of 7");
        }
        write!(f, "k{}", self.0)
    }
}

impl fmt::Debug for Touchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Touchy({})", self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_key_hash_fails_that_enqueue_in_the_caller_and_nothing_else() {
    quiet();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let c = KeyedWorkCoordinator::new(
        |n: &u32| Touchy(n % 20),
        move |_n: u32, _op: Operation| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        },
        Options::default().max_concurrency(4),
    );
    let mut refused = 0;
    let mut accepted = 0;
    for i in 0..200u32 {
        match AssertUnwindSafe(c.enqueue(i)).catch_unwind().await {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(e)) => panic!("unexpected refusal {e:?}"),
            Err(_) => {
                assert_eq!(i % 20, 13, "only key 13's hash panics");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 10);
    c.complete();
    tokio::time::timeout(Duration::from_secs(60), c.drain())
        .await
        .expect("drain does not hang");
    let s = c.stats();
    assert_eq!(s.enqueued, accepted, "{s:?}");
    assert_eq!(s.completed, accepted, "{s:?}");
    assert_eq!(ran.load(Ordering::SeqCst) as u64, accepted);
    // A panicking Display becomes a placeholder label; the operation is listed.
    assert!(c.snapshot().iter().any(|op| op.key().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_stream_that_panics_midway_keeps_what_it_read() {
    quiet();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let source = futures::stream::iter(0..100u32).map(|n| {
        if n == 50 {
            panic!("planned: the source breaks");
        }
        n
    });
    let c = WorkCoordinator::from_stream(
        source,
        move |_n: u32, _op: Operation| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        },
        Options::default().max_concurrency(4),
    );
    tokio::time::timeout(Duration::from_secs(60), c.drain())
        .await
        .expect("a broken source ends the reading, not the coordinator");
    let s = c.stats();
    assert_eq!(s.enqueued, 50, "{s:?}");
    assert_eq!(
        s.completed, 50,
        "every item read before the panic ran: {s:?}"
    );
    assert!(c.is_completed());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_source_holds_drain_until_cancel() {
    let source = futures::stream::iter(0..3u32).chain(futures::stream::pending::<u32>());
    let c = WorkCoordinator::from_stream(
        source,
        |_n: u32, _op: Operation| async {},
        Options::default(),
    );
    let waited = tokio::time::timeout(Duration::from_secs(3600), c.drain()).await;
    assert!(waited.is_err(), "the stream may still yield: drain waits");
    assert_eq!(c.stats().completed, 3);
    c.cancel();
    tokio::time::timeout(Duration::from_secs(1), c.drain())
        .await
        .expect("cancel ends the reading");
    assert_eq!(c.stats().enqueued, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handle_dropped_during_drain_finishes_the_work_and_releases_everything() {
    let token = Arc::new(());
    let held = token.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let c = WorkCoordinator::new(
        move |_: u32, _op: Operation| {
            let held = held.clone();
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                r.fetch_add(1, Ordering::SeqCst);
                drop(held);
            }
        },
        Options::default().max_concurrency(4),
    );
    for i in 0..100 {
        c.enqueue(i).await.unwrap();
    }
    let draining = {
        let c = c.clone();
        tokio::spawn(async move { c.drain().await })
    };
    drop(c);
    tokio::time::sleep(Duration::from_millis(5)).await;
    draining.abort(); // the last handle goes with the drain future
    let _ = draining.await;
    // Dropping the last handle completes the coordinator: what was enqueued still runs, then
    // the body (and everything it holds) is released.
    for _ in 0..6000 {
        if Arc::strong_count(&token) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ran.load(Ordering::SeqCst), 100, "nothing enqueued was lost");
    assert_eq!(Arc::strong_count(&token), 1, "the body was released");
}

#[test]
fn a_runtime_shut_down_with_work_in_flight_releases_everything() {
    let token = Arc::new(());
    let held = token.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let c = rt.block_on(async move {
        let c = WorkCoordinator::new(
            move |_: u32, _op: Operation| {
                let held = held.clone();
                async move {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(held);
                }
            },
            Options::default().max_concurrency(2),
        );
        for i in 0..10 {
            c.enqueue(i).await.unwrap();
        }
        c
    });
    rt.shutdown_timeout(Duration::from_secs(10));
    // The runtime dropped the workers and their bodies; the handle stays usable to read.
    let s = c.stats();
    assert_eq!(s.enqueued, 10);
    drop(c);
    assert_eq!(Arc::strong_count(&token), 1, "nothing outlives the runtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_function_that_panics_on_a_streamed_item_ends_the_reading_there() {
    quiet();
    let source = futures::stream::iter(0..100u32);
    let c = KeyedWorkCoordinator::from_stream(
        source,
        |n: &u32| {
            if *n == 30 {
                panic!("planned: key of 30");
            }
            n % 5
        },
        |_n: u32, _op: Operation| async {},
        Options::default().max_concurrency(4),
    );
    tokio::time::timeout(Duration::from_secs(60), c.drain())
        .await
        .expect("drain does not hang");
    let s = c.stats();
    assert_eq!((s.enqueued, s.completed), (30, 30), "{s:?}");
    assert!(c.is_completed());
}
