//! `SignalSink`: capacity and age bounds (also under concurrency and a paused clock),
//! subscriptions, clearing and the `SignalSource` queries.

use ephemeral::{OperationId, SignalEvent, SignalSink, SignalSource};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn names(events: &[SignalEvent]) -> Vec<&str> {
    events.iter().map(SignalEvent::signal).collect()
}

/// Every way of counting the live events must give the same answer.
#[track_caller]
fn assert_consistent(sink: &SignalSink) -> usize {
    let n = sink.sense(|_| true).len();
    assert_eq!(sink.len(), n, "len");
    assert_eq!(sink.is_empty(), n == 0, "is_empty");
    assert_eq!(sink.total_signals(), n, "total_signals");
    assert_eq!(sink.signals().len(), n, "signals");
    assert!(n <= sink.max_capacity(), "{n} events > capacity");
    n
}

#[test]
fn defaults() {
    let sink = SignalSink::default();
    assert_eq!(sink.max_capacity(), 1000);
    assert_eq!(sink.max_age(), MINUTE);
    assert!(sink.is_empty());
}

#[test]
#[should_panic(expected = "max_capacity")]
fn zero_capacity_is_refused() {
    let _ = SignalSink::new(0, MINUTE);
}

#[test]
fn capacity_keeps_the_newest_events() {
    let sink = SignalSink::new(5, MINUTE);
    for i in 0..12 {
        sink.raise(format!("s{i}"));
        assert_eq!(assert_consistent(&sink), (i + 1).min(5));
    }
    assert_eq!(
        names(&sink.sense(|_| true)),
        ["s7", "s8", "s9", "s10", "s11"]
    );
    // raise_event obeys the same bound.
    let evt = sink.raise("probe");
    sink.raise_event(SignalEvent::new(
        "manual",
        OperationId::next(),
        None,
        evt.timestamp(),
    ));
    assert_eq!(
        names(&sink.signals()),
        ["s9", "s10", "s11", "probe", "manual"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_raises_below_capacity_lose_nothing() {
    let sink = SignalSink::new(10_000, MINUTE);
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let sink = sink.clone();
            tokio::spawn(async move {
                for i in 0..2_000 {
                    sink.raise(format!("t{t}-{i}"));
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(assert_consistent(&sink), 8_000);
    let seen: HashSet<String> = sink
        .signals()
        .iter()
        .map(|e| e.signal().to_string())
        .collect();
    assert_eq!(seen.len(), 8_000);
    for t in 0..4 {
        for i in 0..2_000 {
            assert!(seen.contains(&format!("t{t}-{i}")), "lost t{t}-{i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_raises_never_exceed_capacity_at_any_read() {
    let sink = SignalSink::new(100, MINUTE);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (sink, stop) = (sink.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0usize;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                assert!(sink.len() <= 100);
                assert!(sink.sense(|_| true).len() <= 100);
                assert!(sink.total_signals() <= 100);
                reads += 1;
            }
            reads
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let sink = sink.clone();
            tokio::task::spawn_blocking(move || {
                for i in 0..5_000 {
                    sink.raise(format!("t{t}-{i}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(assert_consistent(&sink), 100);
    // Each writer's own events stay in raise order (the sink is FIFO).
    let all = sink.signals();
    for t in 0..4 {
        let prefix = format!("t{t}-");
        let seq: Vec<usize> = all
            .iter()
            .filter_map(|e| e.signal().strip_prefix(&prefix))
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "writer {t}: {seq:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn events_older_than_max_age_are_never_returned() {
    let sink = SignalSink::new(100, Duration::from_secs(10));
    let a = sink.raise_with_key("http.error.503", "api");
    tokio::time::advance(Duration::from_secs(5)).await;
    let b = sink.raise("b");
    assert_eq!(assert_consistent(&sink), 2);

    // Exactly max_age old is not older than max_age.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(names(&sink.signals()), ["http.error.503", "b"]);

    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(assert_consistent(&sink), 1);
    assert_eq!(names(&sink.sense(|_| true)), ["b"]);
    assert!(!sink.detect("http.error.503"));
    assert!(!sink.detect_where(|e| e.key() == Some("api")));
    assert!(!sink.has_signal("http.error.503"));
    assert!(!sink.has_signal_matching("http.*"));
    assert_eq!(sink.count_signals("http.error.503"), 0);
    assert_eq!(sink.count_signals_matching("http.*"), 0);
    assert!(sink.signals_named("http.error.503").is_empty());
    assert!(sink.signals_matching("*.503").is_empty());
    assert!(sink.signals_for_key("api").is_empty());
    assert_eq!(names(&sink.signals_since(a.timestamp())), ["b"]);
    assert_eq!(
        names(&sink.signals_between(a.timestamp(), b.timestamp())),
        ["b"]
    );

    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(assert_consistent(&sink), 0);
    assert!(!sink.detect("b"));
    assert!(sink.signals().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_event_raised_with_an_old_timestamp_ages_by_that_timestamp() {
    let sink = SignalSink::new(100, MINUTE);
    let now = sink.raise("fresh").timestamp();
    let old = SignalEvent::new(
        "old",
        OperationId::next(),
        Some("k"),
        now - Duration::from_secs(50),
    );
    sink.raise_event(old.clone());
    // Kept as it is, behind a fresher event.
    assert_eq!(names(&sink.signals()), ["fresh", "old"]);
    assert_eq!(sink.signals_named("old")[0], old);

    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(names(&sink.signals()), ["fresh"]);
    assert_eq!(assert_consistent(&sink), 1);
    assert!(!sink.detect("old"));

    // Already older than max_age: accepted but never returned.
    let now = sink.raise("fresh2").timestamp();
    sink.raise_event(SignalEvent::new(
        "ancient",
        OperationId::next(),
        None,
        now - Duration::from_secs(61),
    ));
    assert!(!sink.detect("ancient"));
    assert_eq!(names(&sink.signals()), ["fresh", "fresh2"]);
    assert_eq!(assert_consistent(&sink), 2);

    // fresh2 is exactly max_age old, then older.
    tokio::time::advance(MINUTE).await;
    assert_eq!(names(&sink.signals()), ["fresh2"]);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(assert_consistent(&sink), 0);
}

#[tokio::test(start_paused = true)]
async fn counts_agree_with_sense_through_a_mixed_history() {
    let sink = SignalSink::new(7, Duration::from_secs(20));
    // A small deterministic pseudo-random walk over raises, old raises, time and clears.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for step in 0..2_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 10 {
            0..=3 => {
                sink.raise(format!("s{step}"));
            }
            4 | 5 => {
                let now = sink.raise("anchor").timestamp();
                let back = Duration::from_secs(x % 30);
                sink.raise_event(SignalEvent::new(
                    format!("old{step}"),
                    OperationId::next(),
                    None,
                    now - back,
                ));
            }
            6..=8 => tokio::time::advance(Duration::from_millis(x % 7_000)).await,
            _ => {
                if step % 50 == 0 {
                    sink.clear();
                }
            }
        }
        assert_consistent(&sink);
    }
}

#[tokio::test(start_paused = true)]
async fn source_queries() {
    let sink = SignalSink::new(100, MINUTE);
    let e1 = sink.raise("http.error.503");
    tokio::time::advance(Duration::from_secs(1)).await;
    let e2 = sink.raise_with_key("cache-hit", "user-1");
    let e3 = sink.raise("http.error.502");
    tokio::time::advance(Duration::from_secs(1)).await;
    let e4 = sink.raise_with_key("cache-hit", "user-2");
    tokio::time::advance(Duration::from_secs(1)).await;
    let e5 = sink.raise("http.ok");
    assert!(e1.timestamp() < e2.timestamp());
    assert_eq!(e2.timestamp(), e3.timestamp());
    assert!(e3.timestamp() < e4.timestamp() && e4.timestamp() < e5.timestamp());

    assert_eq!(sink.signals(), [&e1, &e2, &e3, &e4, &e5].map(Clone::clone));
    assert!(sink.has_signal("cache-hit"));
    assert!(!sink.has_signal("cache"));
    assert!(!sink.has_signal("http.error.*"));
    assert!(sink.has_signal_matching("http.error.*"));
    assert!(sink.has_signal_matching("cache-???"));
    assert!(!sink.has_signal_matching("HTTP.*"));
    assert_eq!(sink.count_signals("cache-hit"), 2);
    assert_eq!(sink.count_signals("http.error.503"), 1);
    assert_eq!(sink.count_signals("nope"), 0);
    assert_eq!(sink.count_signals_matching("http.*"), 3);
    assert_eq!(sink.count_signals_matching("http.error.*"), 2);
    assert_eq!(sink.count_signals_matching("*"), 5);
    assert_eq!(sink.total_signals(), 5);
    assert_eq!(sink.signals_named("cache-hit"), [e2.clone(), e4.clone()]);
    assert_eq!(
        sink.signals_matching("http.error.*"),
        [e1.clone(), e3.clone()]
    );
    assert_eq!(sink.signals_matching("*.50?"), [e1.clone(), e3.clone()]);
    assert_eq!(sink.signals_for_key("user-2"), std::slice::from_ref(&e4));
    assert!(sink.signals_for_key("user-3").is_empty());

    // Since: inclusive.
    assert_eq!(
        sink.signals_since(e2.timestamp()),
        [&e2, &e3, &e4, &e5].map(Clone::clone)
    );
    assert_eq!(
        sink.signals_since(e5.timestamp()),
        std::slice::from_ref(&e5)
    );
    assert!(sink
        .signals_since(e5.timestamp() + Duration::from_nanos(1))
        .is_empty());
    // Between: inclusive on both ends.
    assert_eq!(
        sink.signals_between(e1.timestamp(), e4.timestamp()),
        [&e1, &e2, &e3, &e4].map(Clone::clone)
    );
    assert_eq!(
        sink.signals_between(e2.timestamp(), e2.timestamp()),
        [e2.clone(), e3.clone()]
    );
    let tick = Duration::from_nanos(1);
    assert_eq!(
        sink.signals_between(e1.timestamp() + tick, e4.timestamp() - tick),
        [e2.clone(), e3.clone()]
    );
    assert!(sink
        .signals_between(e4.timestamp(), e1.timestamp())
        .is_empty());

    // Events from `raise` carry a fresh id and no propagation.
    assert_ne!(e1.operation_id(), e3.operation_id());
    assert_eq!(e1.depth(), 0);
    assert_eq!(e2.key(), Some("user-1"));
    assert_eq!(e1.key(), None);
}

#[test]
fn detect_is_exact_and_detect_where_takes_a_predicate() {
    let sink = SignalSink::default();
    sink.raise_with_key("rate-limit", "api");
    assert!(sink.detect("rate-limit"));
    assert!(!sink.detect("rate-*"));
    assert!(!sink.detect("rate"));
    assert!(sink.detect_where(|e| e.matches("rate-*")));
    assert!(sink.detect_where(|e| e.key() == Some("api")));
    assert!(!sink.detect_where(|e| e.key() == Some("other")));
    assert_eq!(sink.sense(|e| e.is("rate-limit")).len(), 1);
    assert!(sink.sense(|e| e.is("x")).is_empty());
}

#[test]
fn clear_drops_everything_and_the_sink_keeps_working() {
    let sink = SignalSink::new(10, MINUTE);
    for i in 0..20 {
        sink.raise(format!("s{i}"));
    }
    let other = sink.clone();
    other.clear();
    assert_eq!(assert_consistent(&sink), 0);
    assert!(!sink.detect("s19"));
    sink.raise("after");
    assert_eq!(names(&other.signals()), ["after"]);
    assert!(sink.same_sink(&other));
    assert!(!sink.same_sink(&SignalSink::default()));
}

#[test]
fn subscribers_see_every_raise_until_unsubscribed() {
    let sink = SignalSink::default();
    let seen: Arc<Mutex<Vec<SignalEvent>>> = Arc::default();
    let sub = {
        let (seen, sink2) = (seen.clone(), sink.clone());
        sink.subscribe(move |evt| {
            // Called after the event is stored, without the sink's lock held.
            assert!(sink2.detect(evt.signal()));
            seen.lock().unwrap().push(evt.clone());
        })
    };
    let a = sink.raise("a");
    let b = sink.raise_with_key("b", "k");
    let c = SignalEvent::new("c", OperationId::next(), None, a.timestamp());
    sink.raise_event(c.clone());
    assert_eq!(*seen.lock().unwrap(), [a, b, c]);

    drop(sub);
    sink.raise("d");
    assert_eq!(seen.lock().unwrap().len(), 3);

    let count = Arc::new(AtomicUsize::new(0));
    let sub = {
        let count = count.clone();
        sink.subscribe(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })
    };
    sink.raise("e");
    sub.unsubscribe();
    sink.raise("f");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_subscriber_breaks_neither_raising_nor_other_subscribers() {
    let sink = SignalSink::new(100, MINUTE);
    let before = Arc::new(AtomicUsize::new(0));
    let after = Arc::new(AtomicUsize::new(0));
    let _s1 = {
        let before = before.clone();
        sink.subscribe(move |_| {
            before.fetch_add(1, Ordering::SeqCst);
        })
    };
    let _boom = sink.subscribe(|evt| panic!("subscriber panicked on {}", evt.signal()));
    let _s2 = {
        let after = after.clone();
        sink.subscribe(move |_| {
            after.fetch_add(1, Ordering::SeqCst);
        })
    };
    for i in 0..5 {
        let evt = sink.raise(format!("s{i}"));
        assert!(sink.detect(evt.signal()));
    }
    assert_eq!(before.load(Ordering::SeqCst), 5);
    assert_eq!(after.load(Ordering::SeqCst), 5);
    assert_eq!(assert_consistent(&sink), 5);
}

#[test]
fn a_subscription_outliving_its_sink_is_harmless() {
    let sink = SignalSink::default();
    let sub = sink.subscribe(|_| {});
    drop(sink);
    drop(sub);
}
