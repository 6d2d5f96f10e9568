//! `SignalDispatcher`: routing, ordering, failure isolation, bounds and cleanup.

use ephemeral::{BoxError, OperationId, SignalDispatcher, SignalEvent, SignalSink};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Barrier, Semaphore};

type Log = Arc<Mutex<Vec<String>>>;

fn ev(name: &str) -> SignalEvent {
    SignalEvent::new(name, OperationId::next(), None, ephemeral::now())
}

/// An event whose key carries a sequence number.
fn ev_seq(name: &str, seq: usize) -> SignalEvent {
    SignalEvent::new(
        name,
        OperationId::next(),
        Some(&seq.to_string()),
        ephemeral::now(),
    )
}

fn seq(evt: &SignalEvent) -> usize {
    evt.key().unwrap().parse().unwrap()
}

/// Registers a handler that logs `<tag> start` and `<tag> end`, yielding in between.
fn logging(d: &SignalDispatcher, pattern: &str, tag: &str, log: &Log) {
    let (tag, log) = (tag.to_string(), log.clone());
    d.register(pattern, move |_evt: SignalEvent| {
        let (tag, log) = (tag.clone(), log.clone());
        async move {
            log.lock().unwrap().push(format!("{tag} start"));
            tokio::time::sleep(Duration::from_millis(10)).await;
            tokio::task::yield_now().await;
            log.lock().unwrap().push(format!("{tag} end"));
            Ok::<_, BoxError>(())
        }
    });
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test(start_paused = true)]
async fn matching_handlers_run_sequentially_in_registration_order() {
    let d = SignalDispatcher::new();
    let log: Log = Arc::default();
    logging(&d, "http.error.*", "1", &log);
    logging(&d, "nope", "x", &log);
    logging(&d, "*", "2", &log);
    logging(&d, "http.error.503", "3", &log);
    logging(&d, "http.?rror.5*", "4", &log);

    assert!(d.dispatch(ev("http.error.503")));
    d.shutdown().await;
    assert_eq!(
        take(&log),
        ["1 start", "1 end", "2 start", "2 end", "3 start", "3 end", "4 start", "4 end"]
    );
    assert_eq!(d.processed_count(), 1);
    assert_eq!(d.failed_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn events_without_a_matching_handler_are_processed_quietly() {
    let d = SignalDispatcher::new();
    let log: Log = Arc::default();
    logging(&d, "a", "a", &log);
    assert!(d.dispatch(ev("b")));
    d.shutdown().await;
    assert!(take(&log).is_empty());
    assert_eq!(d.processed_count(), 1);
    assert_eq!(d.tracked_names(), 0);
}

#[tokio::test(start_paused = true)]
async fn same_name_is_handled_in_dispatch_order_without_overlap() {
    let d = SignalDispatcher::with_limits(4, 10_000);
    let order: Arc<Mutex<HashMap<String, Vec<usize>>>> = Arc::default();
    let in_flight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    {
        let (order, in_flight, overlaps) = (order.clone(), in_flight.clone(), overlaps.clone());
        d.register("*", move |evt: SignalEvent| {
            let (order, in_flight, overlaps) = (order.clone(), in_flight.clone(), overlaps.clone());
            async move {
                let name = evt.signal().to_string();
                {
                    let mut f = in_flight.lock().unwrap();
                    let n = f.entry(name.clone()).or_default();
                    *n += 1;
                    if *n > 1 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                }
                // Later events sleep less, so overlap would reorder completions.
                let ms = 50 - (seq(&evt) % 50) as u64;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                order
                    .lock()
                    .unwrap()
                    .entry(name.clone())
                    .or_default()
                    .push(seq(&evt));
                *in_flight.lock().unwrap().get_mut(&name).unwrap() -= 1;
                Ok::<_, BoxError>(())
            }
        });
    }
    let names = ["a", "b", "c", "d", "e", "f"];
    for i in 0..60 {
        for name in names {
            assert!(d.dispatch(ev_seq(name, i)));
        }
        if i % 7 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    d.shutdown().await;
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "events of one name overlapped"
    );
    let order = order.lock().unwrap();
    for name in names {
        assert_eq!(order[name], (0..60).collect::<Vec<_>>(), "order of {name}");
    }
    assert_eq!(d.processed_count(), 360);
}

#[tokio::test(start_paused = true)]
async fn different_names_overlap_up_to_the_cap() {
    // Two names must be handled at the same time: each handler waits for the other.
    let d = SignalDispatcher::with_limits(2, 100);
    let barrier = Arc::new(Barrier::new(2));
    {
        let barrier = barrier.clone();
        d.register("meet.*", move |_evt: SignalEvent| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                Ok::<_, BoxError>(())
            }
        });
    }
    assert!(d.dispatch(ev("meet.a")));
    assert!(d.dispatch(ev("meet.b")));
    tokio::time::timeout(Duration::from_secs(5), d.shutdown())
        .await
        .expect("different names did not run concurrently");
    assert_eq!(d.processed_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn never_more_names_at_once_than_the_cap() {
    for cap in [1, 3] {
        let d = SignalDispatcher::with_limits(cap, 1000);
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        {
            let (now, max) = (now.clone(), max.clone());
            d.register("*", move |_evt: SignalEvent| {
                let (now, max) = (now.clone(), max.clone());
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                }
            });
        }
        for i in 0..100 {
            assert!(d.dispatch(ev(&format!("n{}", i % 10))));
        }
        d.shutdown().await;
        assert_eq!(max.load(Ordering::SeqCst), cap, "cap {cap}");
        assert_eq!(d.processed_count(), 100);
    }
}

#[tokio::test(start_paused = true)]
async fn failing_and_panicking_handlers_do_not_stop_the_others() {
    let d = SignalDispatcher::new();
    let ran = Arc::new(AtomicUsize::new(0));
    // Four distinct patterns that all match every name used below.
    d.register("*", |_evt: SignalEvent| async { Err::<(), _>("boom") });
    d.register("?*", |_evt: SignalEvent| async {
        panic!("handler panicked on purpose");
        #[allow(unreachable_code)]
        Ok::<(), BoxError>(())
    });
    d.register(
        "*?",
        |_evt: SignalEvent| -> std::future::Ready<Result<(), BoxError>> {
            panic!("handler panicked before returning a future")
        },
    );
    {
        let ran = ran.clone();
        d.register("**", move |_evt: SignalEvent| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        });
    }
    for i in 0..3 {
        assert!(d.dispatch(ev(&format!("e{i}"))));
        assert!(d.dispatch(ev("same")));
    }
    d.shutdown().await;
    assert_eq!(ran.load(Ordering::SeqCst), 6);
    assert_eq!(d.failed_count(), 18);
    assert_eq!(d.processed_count(), 6);
}

#[tokio::test(start_paused = true)]
async fn the_dispatcher_keeps_working_after_failures() {
    let d = SignalDispatcher::new();
    let ran = Arc::new(AtomicUsize::new(0));
    d.register("bad", |_evt: SignalEvent| async {
        panic!("bad");
        #[allow(unreachable_code)]
        Ok::<(), BoxError>(())
    });
    {
        let ran = ran.clone();
        d.register("good", move |_evt: SignalEvent| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        });
    }
    assert!(d.dispatch(ev("bad")));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(d.failed_count(), 1);
    assert!(d.dispatch(ev("bad")));
    assert!(d.dispatch(ev("good")));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(d.failed_count(), 2);
    d.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn handlers_registered_for_the_same_pattern_all_run_in_registration_order() {
    let d = SignalDispatcher::new();
    let log: Log = Arc::default();
    logging(&d, "x", "x-1", &log);
    logging(&d, "*", "star", &log);
    logging(&d, "x", "x-2", &log);

    let patterns: Vec<String> = d.patterns().iter().map(ToString::to_string).collect();
    assert_eq!(patterns, ["x", "*", "x"]);

    // Two events of one name: each runs every handler one after another, in registration
    // order, and the second event starts after the first is done.
    assert!(d.dispatch(ev("x")));
    assert!(d.dispatch(ev("x")));
    d.shutdown().await;
    let once = [
        "x-1 start",
        "x-1 end",
        "star start",
        "star end",
        "x-2 start",
        "x-2 end",
    ];
    assert_eq!(take(&log), [once, once].concat());
    assert_eq!(d.processed_count(), 2);
    assert_eq!(d.failed_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn replace_swaps_every_handler_of_a_pattern_for_one_in_the_first_place() {
    let d = SignalDispatcher::new();
    let log: Log = Arc::default();
    logging(&d, "x", "old-x-1", &log);
    logging(&d, "*", "star", &log);
    logging(&d, "x", "old-x-2", &log);
    logging(&d, "x*", "x-star", &log);

    let (tag, sink) = ("new-x".to_string(), log.clone());
    let replaced = d.replace("x", move |_evt: SignalEvent| {
        let (tag, log) = (tag.clone(), sink.clone());
        async move {
            log.lock().unwrap().push(format!("{tag} ran"));
            Ok::<_, BoxError>(())
        }
    });
    assert!(replaced);
    let patterns: Vec<String> = d.patterns().iter().map(ToString::to_string).collect();
    assert_eq!(patterns, ["x", "*", "x*"]);
    // A pattern with no handler yet is added last.
    assert!(!d.replace("new", |_evt: SignalEvent| async { Ok::<_, BoxError>(()) }));
    let patterns: Vec<String> = d.patterns().iter().map(ToString::to_string).collect();
    assert_eq!(patterns, ["x", "*", "x*", "new"]);

    assert!(d.dispatch(ev("x")));
    d.shutdown().await;
    assert_eq!(
        take(&log),
        [
            "new-x ran",
            "star start",
            "star end",
            "x-star start",
            "x-star end"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn registration_is_seen_by_later_events() {
    let d = SignalDispatcher::new();
    let log: Log = Arc::default();
    assert!(d.dispatch(ev("x")));
    tokio::time::sleep(Duration::from_millis(1)).await;
    logging(&d, "x", "x", &log);
    assert!(d.dispatch(ev("x")));
    d.shutdown().await;
    assert_eq!(take(&log), ["x start", "x end"]);
    assert_eq!(d.processed_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_runs_everything_queued_then_refuses() {
    let d = SignalDispatcher::with_limits(2, 10_000);
    let ran = Arc::new(AtomicUsize::new(0));
    {
        let ran = ran.clone();
        d.register("*", move |_evt: SignalEvent| {
            let ran = ran.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        });
    }
    for i in 0..500 {
        assert!(d.dispatch(ev(&format!("n{}", i % 7))));
    }
    assert!(!d.is_shut_down());
    d.shutdown().await;
    assert!(d.is_shut_down());
    assert_eq!(ran.load(Ordering::SeqCst), 500);
    assert_eq!(d.processed_count(), 500);
    assert_eq!(d.queued_count(), 0);

    assert!(!d.dispatch(ev("n0")));
    let clone = d.clone();
    assert!(!clone.dispatch(ev("late")));
    // Refusals after shutdown are not "dropped because full".
    assert_eq!(d.dropped_count(), 0);
    // Idempotent.
    d.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 500);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_and_counts() {
    let d = SignalDispatcher::with_limits(1, 3);
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let handled: Log = Arc::default();
    {
        let (gate, started, handled) = (gate.clone(), started.clone(), handled.clone());
        d.register("*", move |evt: SignalEvent| {
            let (gate, started, handled) = (gate.clone(), started.clone(), handled.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                handled.lock().unwrap().push(evt.key().unwrap().to_string());
                Ok::<_, BoxError>(())
            }
        });
    }
    assert!(d.dispatch(ev_seq("a", 0)));
    while started.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // The running event does not count towards the queue bound.
    assert!(d.dispatch(ev_seq("a", 1)));
    assert!(d.dispatch(ev_seq("b", 2)));
    assert!(d.dispatch(ev_seq("a", 3)));
    assert_eq!(d.queued_count(), 3);
    assert!(!d.dispatch(ev_seq("c", 4)));
    assert!(!d.dispatch(ev_seq("a", 5)));
    assert_eq!(d.dropped_count(), 2);
    assert_eq!(d.tracked_names(), 2);

    gate.add_permits(100);
    d.shutdown().await;
    let mut handled = take(&handled);
    handled.sort();
    assert_eq!(handled, ["0", "1", "2", "3"]);
    assert_eq!(d.processed_count(), 4);
    assert_eq!(d.dropped_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn per_name_state_is_released() {
    let d = SignalDispatcher::with_limits(8, 200_000);
    let hits = Arc::new(AtomicUsize::new(0));
    {
        let hits = hits.clone();
        d.register("progress:*", move |_evt: SignalEvent| {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::Relaxed);
                Ok::<_, BoxError>(())
            }
        });
    }
    // Waves: the state must be back to zero between them, not only at the end.
    for wave in 0..10 {
        for i in 0..1_000 {
            assert!(d.dispatch(ev(&format!("progress:{}", wave * 1_000 + i))));
        }
        assert!(d.tracked_names() > 0);
        while d.processed_count() < (wave + 1) * 1_000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::task::yield_now().await;
        assert_eq!(d.tracked_names(), 0, "after wave {wave}");
    }
    for i in 0..100_000 {
        assert!(d.dispatch(ev(&format!("progress:{i}"))));
    }
    assert_eq!(d.tracked_names(), 100_000);
    d.shutdown().await;
    assert_eq!(d.tracked_names(), 0);
    assert_eq!(d.queued_count(), 0);
    assert_eq!(hits.load(Ordering::Relaxed), 110_000);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_still_runs_queued_events_then_releases_handlers() {
    let ran = Arc::new(AtomicUsize::new(0));
    let d = SignalDispatcher::with_limits(1, 100);
    {
        let ran = ran.clone();
        d.register("*", move |_evt: SignalEvent| {
            let ran = ran.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        });
    }
    for i in 0..5 {
        assert!(d.dispatch(ev(&format!("n{i}"))));
    }
    drop(d);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    // The handler closure (which holds a clone of `ran`) has been dropped with the task.
    assert_eq!(Arc::strong_count(&ran), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dispatchers_keep_per_name_order() {
    let d = SignalDispatcher::with_limits(3, 100_000);
    let order: Arc<Mutex<HashMap<String, Vec<usize>>>> = Arc::default();
    {
        let order = order.clone();
        d.register("*", move |evt: SignalEvent| {
            let order = order.clone();
            async move {
                tokio::task::yield_now().await;
                order
                    .lock()
                    .unwrap()
                    .entry(evt.signal().to_string())
                    .or_default()
                    .push(seq(&evt));
                Ok::<_, BoxError>(())
            }
        });
    }
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let d = d.clone();
            tokio::spawn(async move {
                for i in 0..2_000 {
                    assert!(d.dispatch(ev_seq(&format!("p{p}"), i)));
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    d.shutdown().await;
    let order = order.lock().unwrap();
    for p in 0..4 {
        assert_eq!(order[&format!("p{p}")], (0..2_000).collect::<Vec<_>>());
    }
    assert_eq!(d.tracked_names(), 0);
}

#[tokio::test(start_paused = true)]
async fn attach_dispatches_every_raise_on_the_sink_until_detached() {
    let d = SignalDispatcher::new();
    let log: Log = Arc::default();
    logging(&d, "alert.*", "alert", &log);
    logging(&d, "*", "any", &log);
    let sink = SignalSink::default();
    sink.raise("alert.before"); // raised before attaching: not dispatched

    let attached = d.attach(&sink);
    sink.raise("alert.disk");
    sink.raise_with_key("progress", "job-1");
    // Raised by a coordinator's operation on the same sink too (a clone is the same sink).
    sink.clone().raise("alert.cpu");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(d.processed_count(), 3);
    // Different names are handled concurrently: compare what ran, not the interleaving.
    let mut ran = take(&log);
    ran.retain(|l| l.ends_with("end"));
    ran.sort();
    assert_eq!(
        ran,
        ["alert end", "alert end", "any end", "any end", "any end"]
    );

    drop(attached);
    sink.raise("alert.after");
    d.shutdown().await;
    assert_eq!(d.processed_count(), 3);
    assert!(take(&log).is_empty());
    assert_eq!(sink.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn an_attached_sink_does_not_keep_the_dispatcher_or_its_handlers_alive() {
    let ran = Arc::new(AtomicUsize::new(0));
    let sink = SignalSink::default();
    let d = SignalDispatcher::new();
    {
        let ran = ran.clone();
        d.register("*", move |_evt: SignalEvent| {
            ran.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) }
        });
    }
    let attached = d.attach(&sink);
    sink.raise("a");
    drop(d);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // The dispatcher finished and released its handler although the sink is still attached.
    assert_eq!(Arc::strong_count(&ran), 1);
    sink.raise("b"); // harmless
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    drop(attached);
}

#[tokio::test(start_paused = true)]
async fn after_shutdown_an_attached_sink_raises_are_refused() {
    let d = SignalDispatcher::new();
    let log: Log = Arc::default();
    logging(&d, "*", "any", &log);
    let sink = SignalSink::default();
    let _attached = d.attach(&sink);
    d.shutdown().await;
    sink.raise("late");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(d.processed_count(), 0);
    assert!(take(&log).is_empty());
    assert!(sink.detect("late"));
}

#[tokio::test]
async fn handlers_may_return_unit() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    let dispatcher = SignalDispatcher::new();
    dispatcher.register("a.*", move |_evt| {
        let s = s.clone();
        async move {
            s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    assert!(dispatcher.dispatch(SignalEvent::new(
        "a.b",
        OperationId::next(),
        None,
        ephemeral::now()
    )));
    dispatcher.shutdown().await;
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}
