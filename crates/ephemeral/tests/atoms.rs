//! `ephemeral::atoms`: each atom's promises, on a paused clock wherever time matters.

mod support;
use support::{quiet_deliberate_panics, wait_until, PANIC_MARK};

use ephemeral::atoms::{
    BatchingAtom, FixedWorkAtom, KeyedSequentialAtom, RetryAtom, RetryPolicy, SignalAwareAtom,
};
use ephemeral::{EnqueueError, Operation, Options, SignalSink};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};

const MS: Duration = Duration::from_millis(1);

/// Counts bodies running at once and remembers the highest count.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

// ----- FixedWorkAtom ----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn fixed_caps_concurrency_at_its_limit() {
    let gauge = Arc::new(Gauge::default());
    let g = gauge.clone();
    let atom = FixedWorkAtom::new(
        move |_n: u32, _op: Operation| {
            let g = g.clone();
            async move {
                g.enter();
                sleep(10 * MS).await;
                g.leave();
            }
        },
        3,
    );
    for n in 0..20 {
        atom.enqueue(n).await.unwrap();
    }
    atom.drain().await;
    assert_eq!(gauge.max(), 3, "the cap is reached and never exceeded");
    assert_eq!(atom.stats().completed, 20);
    assert_eq!(atom.snapshot().len(), 20);
    assert!(matches!(
        atom.enqueue(99).await,
        Err(EnqueueError::Closed(99))
    ));
}

// ----- KeyedSequentialAtom ----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn keyed_sequential_keeps_key_order_and_runs_keys_in_parallel() {
    let gauge = Arc::new(Gauge::default());
    let per_key: Arc<Mutex<HashMap<char, usize>>> = Arc::default();
    let overlap = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(char, u32)>>> = Arc::default();
    let (g, pk, ov, lg) = (gauge.clone(), per_key.clone(), overlap.clone(), log.clone());
    let atom = KeyedSequentialAtom::new(
        |item: &(char, u32)| item.0,
        move |item: (char, u32), _op: Operation| {
            let (g, pk, ov, lg) = (g.clone(), pk.clone(), ov.clone(), lg.clone());
            async move {
                g.enter();
                {
                    let mut pk = pk.lock().unwrap();
                    let n = pk.entry(item.0).or_default();
                    *n += 1;
                    if *n > 1 {
                        ov.store(true, Ordering::SeqCst);
                    }
                }
                lg.lock().unwrap().push(item);
                sleep(10 * MS).await;
                *pk.lock().unwrap().get_mut(&item.0).unwrap() -= 1;
                g.leave();
            }
        },
        8,
    );
    let start = Instant::now();
    for seq in 0..5 {
        for key in ['a', 'b', 'c'] {
            atom.enqueue((key, seq)).await.unwrap();
        }
    }
    atom.drain().await;
    assert!(
        !overlap.load(Ordering::SeqCst),
        "two items of one key ran at once"
    );
    assert_eq!(gauge.max(), 3, "the three keys run in parallel");
    assert!(start.elapsed() < 60 * MS, "took {:?}", start.elapsed());
    let log = log.lock().unwrap();
    for key in ['a', 'b', 'c'] {
        let seqs: Vec<u32> = log.iter().filter(|i| i.0 == key).map(|i| i.1).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4], "order of key {key}");
    }
    assert_eq!(atom.stats().completed, 15);
}

#[tokio::test]
async fn keyed_sequential_pending_limit_answers_key_overloaded() {
    let atom = KeyedSequentialAtom::with_options(
        |item: &(char, u32)| item.0,
        |_item: (char, u32), _op: Operation| async {},
        Options::default().max_pending_per_key(2),
    );
    atom.coordinator().pause();
    atom.enqueue(('a', 0)).await.unwrap();
    atom.enqueue(('a', 1)).await.unwrap();
    match atom.enqueue(('a', 2)).await {
        Err(EnqueueError::KeyOverloaded(item)) => assert_eq!(item, ('a', 2)),
        other => panic!("expected KeyOverloaded, got {other:?}"),
    }
    atom.enqueue(('b', 0)).await.unwrap();
    atom.coordinator().resume();
    atom.drain().await;
    assert_eq!(atom.stats().completed, 3);
}

// ----- SignalAwareAtom --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn signal_aware_rejects_while_a_cancel_signal_is_live_then_accepts() {
    let sink = SignalSink::new(100, Duration::from_secs(1));
    let no_defer: [&str; 0] = [];
    let atom = SignalAwareAtom::new(
        |_n: u32, _op: Operation| async {},
        ["maint*"],
        no_defer,
        Options::default().signals(sink.clone()),
    );
    assert!(atom.sink().same_sink(&sink));
    atom.enqueue(1).await.unwrap();
    sleep(MS).await; // item 1 runs (a queued item would be dropped by the signal)
    assert_eq!(atom.stats().completed, 1);
    atom.raise("maintenance");
    assert!(matches!(
        atom.enqueue(2).await,
        Err(EnqueueError::Rejected(2))
    ));
    sleep(Duration::from_millis(900)).await;
    assert!(matches!(
        atom.enqueue(3).await,
        Err(EnqueueError::Rejected(3))
    ));
    sleep(Duration::from_millis(200)).await; // past the sink's max_age
    atom.enqueue(4).await.unwrap();
    atom.drain().await;
    assert_eq!(atom.stats().completed, 2);
}

#[tokio::test(start_paused = true)]
async fn signal_aware_extends_the_options_lists_and_owns_a_sink_without_one() {
    let no_defer: [&str; 0] = [];
    let atom = SignalAwareAtom::new(
        |_n: u32, _op: Operation| async {},
        ["maintenance"],
        no_defer,
        Options::default().cancel_on_signals(["outage"]),
    );
    // Its own sink (SignalSink::default(): one minute) is the one the coordinator reads.
    atom.sink().raise("outage");
    assert!(matches!(
        atom.enqueue(1).await,
        Err(EnqueueError::Rejected(1))
    ));
    sleep(Duration::from_secs(61)).await;
    atom.enqueue(2).await.unwrap();
    atom.raise("maintenance");
    assert!(matches!(
        atom.enqueue(3).await,
        Err(EnqueueError::Rejected(3))
    ));
}

#[tokio::test(start_paused = true)]
async fn signal_aware_defer_holds_starts_until_the_signal_ages_out() {
    let sink = SignalSink::new(100, Duration::from_secs(1));
    let started: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let s = started.clone();
    let no_cancel: [&str; 0] = [];
    let atom = SignalAwareAtom::new(
        move |_n: u32, _op: Operation| {
            s.lock().unwrap().push(Instant::now());
            async {}
        },
        no_cancel,
        ["busy"],
        Options::default()
            .signals(sink)
            .defer_check_interval(Duration::from_millis(100))
            .max_defer_attempts(1000),
    );
    let t0 = Instant::now();
    atom.raise("busy");
    atom.enqueue(1).await.unwrap();
    sleep(Duration::from_millis(500)).await;
    assert!(
        started.lock().unwrap().is_empty(),
        "a start went ahead of the signal"
    );
    assert_eq!(atom.stats().deferred, 1);
    atom.drain().await;
    let at = started.lock().unwrap()[0];
    assert!(
        at >= t0 + Duration::from_secs(1),
        "started at {:?}",
        at - t0
    );
    assert!(
        at <= t0 + Duration::from_millis(1200),
        "started at {:?}",
        at - t0
    );
    assert_eq!(atom.stats().defer_timeouts, 0);
}

// ----- BatchingAtom -----------------------------------------------------------------------------

type Batches = Arc<Mutex<Vec<Vec<u32>>>>;
type Timed = Arc<Mutex<Vec<(Instant, Vec<u32>)>>>;

fn recording(max: usize, interval: Duration) -> (BatchingAtom<u32>, Batches) {
    let log: Batches = Arc::default();
    let l = log.clone();
    let atom = BatchingAtom::new(max, interval, move |batch: Vec<u32>| {
        l.lock().unwrap().push(batch);
        async {}
    });
    (atom, log)
}

#[tokio::test(start_paused = true)]
async fn batching_delivers_full_batches_by_size() {
    let (atom, log) = recording(3, Duration::from_secs(3600));
    for n in 0..7 {
        atom.add(n).await.unwrap();
    }
    wait_until(1000, || atom.stats().batches == 2).await;
    assert_eq!(*log.lock().unwrap(), [vec![0, 1, 2], vec![3, 4, 5]]);
    assert_eq!(atom.stats().buffered, 1);
    atom.close().await;
    assert_eq!(log.lock().unwrap().last().unwrap(), &vec![6]);
    let stats = atom.stats();
    assert_eq!((stats.batches, stats.items, stats.buffered), (3, 7, 0));
}

#[tokio::test(start_paused = true)]
async fn batching_delivers_a_batch_when_its_oldest_item_waited_the_interval() {
    let delivered: Timed = Arc::default();
    let d = delivered.clone();
    let atom = BatchingAtom::new(100, Duration::from_millis(500), move |batch: Vec<u32>| {
        d.lock().unwrap().push((Instant::now(), batch));
        async {}
    });
    let t0 = Instant::now();
    atom.add(1).await.unwrap();
    sleep(Duration::from_millis(400)).await;
    atom.add(2).await.unwrap();
    assert!(delivered.lock().unwrap().is_empty());
    sleep(Duration::from_millis(150)).await;
    {
        let d = delivered.lock().unwrap();
        assert_eq!(d.len(), 1, "due at 500 ms by the oldest item");
        assert_eq!(d[0].1, [1, 2]);
        assert_eq!(d[0].0 - t0, Duration::from_millis(500));
    }
    // The next batch's clock starts with its own first item.
    atom.add(3).await.unwrap();
    let t1 = Instant::now();
    sleep(Duration::from_millis(499)).await;
    assert_eq!(delivered.lock().unwrap().len(), 1);
    sleep(Duration::from_millis(2)).await;
    let d = delivered.lock().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].0 - t1, Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batching_never_overlaps_and_keeps_item_order_under_concurrent_adds() {
    let busy = Arc::new(AtomicBool::new(false));
    let overlap = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let (b, o, l) = (busy.clone(), overlap.clone(), log.clone());
    let atom = BatchingAtom::new(
        7,
        Duration::from_millis(2),
        move |batch: Vec<(u32, u32)>| {
            let (b, o, l) = (b.clone(), o.clone(), l.clone());
            async move {
                if b.swap(true, Ordering::SeqCst) {
                    o.store(true, Ordering::SeqCst);
                }
                assert!(!batch.is_empty() && batch.len() <= 7);
                tokio::task::yield_now().await;
                sleep(Duration::from_micros(200)).await;
                l.lock().unwrap().extend(batch);
                b.store(false, Ordering::SeqCst);
            }
        },
    );
    let mut tasks = Vec::new();
    for producer in 0..4u32 {
        let atom = atom.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..300u32 {
                atom.add((producer, seq)).await.unwrap();
                if seq % 17 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    atom.close().await;
    assert!(
        !overlap.load(Ordering::SeqCst),
        "two batch handlers ran at once"
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1200);
    for producer in 0..4 {
        let seqs: Vec<u32> = log
            .iter()
            .filter(|i| i.0 == producer)
            .map(|i| i.1)
            .collect();
        assert_eq!(
            seqs,
            (0..300).collect::<Vec<_>>(),
            "order of producer {producer}"
        );
    }
    let stats = atom.stats();
    assert_eq!(
        (stats.items, stats.failed_batches, stats.buffered),
        (1200, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn batching_handler_panic_or_error_counts_and_delivery_goes_on() {
    quiet_deliberate_panics();
    let log: Batches = Arc::default();
    let l = log.clone();
    let atom = BatchingAtom::new(2, Duration::from_secs(3600), move |batch: Vec<u32>| {
        l.lock().unwrap().push(batch.clone());
        async move {
            if batch.contains(&3) {
                panic!("{}", PANIC_MARK);
            }
            if batch.contains(&5) {
                return Err("write failed");
            }
            Ok(())
        }
    });
    for n in 0..8 {
        atom.add(n).await.unwrap();
    }
    atom.close().await;
    assert_eq!(
        *log.lock().unwrap(),
        [vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]]
    );
    let stats = atom.stats();
    assert_eq!(
        (stats.batches, stats.items, stats.failed_batches),
        (4, 8, 2)
    );
    assert_eq!(atom.coordinator().total_failed(), 2);
    assert_eq!(atom.coordinator().total_completed(), 2);
}

#[tokio::test(start_paused = true)]
async fn batching_close_returns_after_the_last_batch_finished_and_refuses_new_items() {
    let finished = Arc::new(AtomicU32::new(0));
    let f = finished.clone();
    let atom = BatchingAtom::new(10, Duration::from_secs(3600), move |_batch: Vec<u32>| {
        let f = f.clone();
        async move {
            sleep(Duration::from_secs(1)).await;
            f.fetch_add(1, Ordering::SeqCst);
        }
    });
    let other = atom.clone();
    for n in 0..15 {
        atom.add(n).await.unwrap();
    }
    let t0 = Instant::now();
    atom.close().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "close returned before a handler finished"
    );
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(atom.stats().items, 15);
    match other.add(42).await {
        Err(EnqueueError::Closed(item)) => assert_eq!(item, 42),
        r => panic!("expected Closed, got {r:?}"),
    }
    atom.close().await; // idempotent
    assert!(atom.coordinator().is_drained());
}

#[tokio::test(start_paused = true)]
async fn batching_flush_delivers_the_buffer_and_waits_for_it() {
    let log: Batches = Arc::default();
    let l = log.clone();
    let atom = BatchingAtom::new(100, Duration::from_secs(3600), move |batch: Vec<u32>| {
        let l = l.clone();
        async move {
            sleep(Duration::from_millis(200)).await;
            l.lock().unwrap().push(batch);
        }
    });
    atom.add(1).await.unwrap();
    atom.add(2).await.unwrap();
    let t0 = Instant::now();
    atom.flush().await;
    assert_eq!(
        *log.lock().unwrap(),
        [vec![1, 2]],
        "flush returned before the handler finished"
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    atom.flush().await; // nothing buffered: returns at once
    assert_eq!(t0.elapsed(), Duration::from_millis(200));
    atom.add(3).await.unwrap();
    atom.flush().await;
    assert_eq!(log.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn batching_add_waits_for_room_when_the_handler_falls_behind() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let atom = BatchingAtom::new(2, Duration::from_secs(3600), move |_batch: Vec<u32>| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
        }
    });
    // At most 4 × max_batch_size items are held: the 9th add must wait.
    let mut added = 0;
    for n in 0..20 {
        match tokio::time::timeout(Duration::from_secs(1), atom.add(n)).await {
            Ok(r) => {
                r.unwrap();
                added += 1;
            }
            Err(_) => break,
        }
    }
    assert_eq!(
        added, 8,
        "4 × max_batch_size items are held, then add waits"
    );
    assert_eq!(atom.stats().buffered, added);
    gate.add_permits(100);
    atom.close().await;
    assert_eq!(atom.stats().items, added as u64);
}

#[tokio::test(start_paused = true)]
async fn batching_dropping_the_last_handle_delivers_the_rest() {
    let (atom, log) = recording(100, Duration::from_secs(3600));
    let coordinator = atom.coordinator().clone();
    atom.add(1).await.unwrap();
    atom.add(2).await.unwrap();
    drop(atom);
    coordinator.drain().await;
    assert_eq!(*log.lock().unwrap(), [vec![1, 2]]);
}

// ----- RetryAtom --------------------------------------------------------------------------------

type Calls = Arc<Mutex<Vec<Instant>>>;
type Attempt = std::future::Ready<Result<(), String>>;

/// A body failing until attempt `succeed_on` (never if 0), logging each call's time.
fn flaky(
    succeed_on: u32,
) -> (
    impl Fn(u32, Operation) -> Attempt + Send + Sync + 'static,
    Calls,
) {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let body = move |_item: u32, _op: Operation| {
        let mut calls = c.lock().unwrap();
        calls.push(Instant::now());
        let attempt = calls.len() as u32;
        std::future::ready(if attempt == succeed_on {
            Ok(())
        } else {
            Err(format!("attempt {attempt} failed"))
        })
    };
    (body, calls)
}

#[tokio::test(start_paused = true)]
async fn retry_runs_until_success_and_emits_retry_signals() {
    let (body, calls) = flaky(3);
    let atom = RetryAtom::new(body, RetryPolicy::new(5), Options::default());
    atom.enqueue(1).await.unwrap();
    atom.drain().await;
    assert_eq!(calls.lock().unwrap().len(), 3);
    let stats = atom.stats();
    assert_eq!((stats.completed, stats.failed), (1, 0));
    let snap = &atom.snapshot()[0];
    let signals: Vec<&str> = snap.signals().iter().map(|s| &**s).collect();
    assert_eq!(signals, ["retry:2", "retry:3"]);
}

#[tokio::test(start_paused = true)]
async fn retry_exhausted_fails_once_with_the_last_error() {
    let (body, calls) = flaky(0);
    let atom = RetryAtom::new(body, RetryPolicy::new(3), Options::default());
    atom.enqueue(1).await.unwrap();
    atom.drain().await;
    assert_eq!(calls.lock().unwrap().len(), 3);
    let stats = atom.stats();
    assert_eq!((stats.completed, stats.failed), (0, 1));
    let failed = atom.coordinator().failed();
    assert_eq!(failed.len(), 1);
    let err = failed[0].error().unwrap().to_string();
    assert!(err.contains("attempt 3 failed"), "{err}");
    let signals: Vec<&str> = failed[0].signals().iter().map(|s| &**s).collect();
    assert_eq!(signals, ["retry:2", "retry:3"]);
}

#[tokio::test(start_paused = true)]
async fn retry_waits_the_default_and_custom_backoff() {
    let (body, calls) = flaky(0);
    let atom = RetryAtom::new(body, RetryPolicy::new(4), Options::default());
    atom.enqueue(1).await.unwrap();
    atom.drain().await;
    let gaps: Vec<Duration> = calls
        .lock()
        .unwrap()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert_eq!(gaps, [50 * MS, 100 * MS, 150 * MS]);

    let (body, calls) = flaky(0);
    let policy = RetryPolicy::new(3).backoff(|n| Duration::from_secs(u64::from(n) * 2));
    let atom = RetryAtom::new(body, policy, Options::default());
    atom.enqueue(1).await.unwrap();
    atom.drain().await;
    let gaps: Vec<Duration> = calls
        .lock()
        .unwrap()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert_eq!(gaps, [Duration::from_secs(2), Duration::from_secs(4)]);
}

#[tokio::test(start_paused = true)]
async fn retry_cancel_during_backoff_stops_at_once() {
    let (body, calls) = flaky(0);
    let policy = RetryPolicy::new(10).backoff(|_| Duration::from_secs(10));
    let atom = RetryAtom::new(body, policy, Options::default());
    atom.enqueue(1).await.unwrap();
    sleep(Duration::from_secs(1)).await; // first attempt failed; in the backoff now
    assert_eq!(calls.lock().unwrap().len(), 1);
    let t0 = Instant::now();
    atom.coordinator().cancel();
    atom.drain().await;
    assert!(t0.elapsed() < MS, "waited {:?} after cancel", t0.elapsed());
    sleep(Duration::from_secs(60)).await;
    assert_eq!(
        calls.lock().unwrap().len(),
        1,
        "no attempt after the cancel"
    );
    assert_eq!(atom.stats().failed, 1);
}

#[test]
#[should_panic(expected = "max_attempts must be at least 1")]
fn retry_policy_of_zero_attempts_panics() {
    let _ = RetryPolicy::new(0);
}
