//! `ResultCoordinator`: results, typed and base snapshots, successful / failed views, results
//! living exactly as long as their operation stays in the window, and `on_sample`.

mod support;
use support::{quiet_deliberate_panics, wait_until};

use ephemeral::{Operation, OperationId, Options, ResultCoordinator};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Doubles `n`; 3 fails with an io error, 5 panics.
fn doubling(options: Options) -> ResultCoordinator<u32, u32> {
    quiet_deliberate_panics();
    ResultCoordinator::new(
        |n: u32, _op: Operation| async move {
            match n {
                3 => Err(std::io::Error::other("three")),
                5 => panic!("deliberate test panic"),
                n => Ok(n * 2),
            }
        },
        options,
    )
}

#[tokio::test]
async fn results_and_snapshots_in_start_order() {
    let c = doubling(Options::default().max_concurrency(1));
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(c.enqueue(n).await.unwrap());
    }
    c.complete();
    c.drain().await;

    assert_eq!(c.results(), [0, 2, 4, 8, 12, 14]);

    let snap = c.snapshot();
    assert_eq!(
        snap.iter().map(|s| s.operation().id()).collect::<Vec<_>>(),
        ids
    );
    let typed: Vec<Option<u32>> = snap.iter().map(|s| s.result().copied()).collect();
    assert_eq!(
        typed,
        [
            Some(0),
            Some(2),
            Some(4),
            None,
            Some(8),
            None,
            Some(12),
            Some(14)
        ]
    );
    for s in &snap {
        assert_eq!(s.operation().is_faulted(), s.result().is_none());
        assert!(!s.operation().is_running());
    }
    let (op, result) = snap[1].clone().into_parts();
    assert_eq!((op.id(), result), (ids[1], Some(2)));

    let base = c.base_snapshot();
    assert_eq!(base.iter().map(|s| s.id()).collect::<Vec<_>>(), ids);

    let ok = c.successful();
    assert_eq!(ok.len(), 6);
    assert!(ok
        .iter()
        .all(|s| s.result().is_some() && !s.operation().is_faulted()));
    assert_eq!(
        ok.iter().map(|s| *s.result().unwrap()).collect::<Vec<_>>(),
        c.results()
    );

    let failed = c.failed();
    assert_eq!(
        failed
            .iter()
            .map(|s| s.operation().id())
            .collect::<Vec<_>>(),
        [ids[3], ids[5]]
    );
    assert!(failed.iter().all(|s| s.result().is_none()));
    let e3 = failed[0].operation().error().unwrap();
    assert_eq!(
        e3.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "three"
    );
    assert!(!e3.is_panic());
    assert!(failed[1].operation().error().unwrap().is_panic());

    let s = c.stats();
    assert_eq!((s.enqueued, s.completed, s.failed), (8, 6, 2));
}

#[tokio::test]
async fn running_operations_show_without_a_result() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let c = ResultCoordinator::new(
        move |n: u32, _op: Operation| {
            let g = g.clone();
            async move {
                g.acquire().await.unwrap().forget();
                Ok::<_, std::io::Error>(format!("r{n}"))
            }
        },
        Options::default().max_concurrency(2),
    );
    let id = c.enqueue(7).await.unwrap();
    wait_until(1000, || c.active_count() == 1).await;
    let snap = c.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].operation().id(), id);
    assert!(snap[0].operation().is_running());
    assert!(snap[0].result().is_none());
    assert!(c.results().is_empty());
    assert!(c.successful().is_empty());
    assert!(c.failed().is_empty());
    assert_eq!(c.running().len(), 1);
    assert_eq!(c.base_snapshot().len(), 1);
    gate.add_permits(1);
    c.complete();
    c.drain().await;
    assert_eq!(c.results(), ["r7".to_string()]);
    assert!(c.running().is_empty());
}

/// A result that counts its live copies.
#[derive(Clone, Debug)]
struct Counted {
    n: u32,
    _alive: Arc<()>,
}

fn counted(options: Options) -> (ResultCoordinator<u32, Counted>, Arc<()>) {
    let alive = Arc::new(());
    let a = alive.clone();
    let c = ResultCoordinator::new(
        move |n: u32, _op: Operation| {
            let a = a.clone();
            async move { Ok::<_, std::io::Error>(Counted { n, _alive: a }) }
        },
        options,
    );
    (c, alive)
}

/// Live results held by the coordinator (the test holds one reference, the body closure one).
fn held(alive: &Arc<()>) -> usize {
    Arc::strong_count(alive) - 2
}

#[tokio::test]
async fn results_leave_with_their_operation_when_the_window_is_full() {
    let (c, alive) = counted(
        Options::default()
            .max_concurrency(1)
            .max_tracked_operations(5),
    );
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(c.enqueue(n).await.unwrap());
    }
    c.complete();
    c.drain().await;
    let kept: Vec<u32> = c.results().iter().map(|r| r.n).collect();
    assert_eq!(kept, [15, 16, 17, 18, 19]);
    assert_eq!(c.snapshot().len(), 5);
    assert_eq!(c.base_snapshot().len(), 5);
    assert_eq!(held(&alive), 5, "evicted results are still held");

    assert!(c.evict(ids[17]));
    assert!(!c.evict(ids[17]));
    assert!(!c.evict(ids[0]));
    let kept: Vec<u32> = c.results().iter().map(|r| r.n).collect();
    assert_eq!(kept, [15, 16, 18, 19]);
    assert_eq!(held(&alive), 4);
}

#[tokio::test]
async fn a_pinned_operation_keeps_its_result() {
    let (c, alive) = counted(
        Options::default()
            .max_concurrency(1)
            .max_tracked_operations(3),
    );
    let first = c.enqueue(100).await.unwrap();
    wait_until(1000, || c.total_completed() == 1).await;
    assert!(c.pin(first));
    for n in 0..10 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    c.drain().await;
    let kept: Vec<u32> = c.results().iter().map(|r| r.n).collect();
    assert_eq!(kept, [100, 8, 9]);
    assert!(c.snapshot()[0].operation().is_pinned());
    assert_eq!(held(&alive), 3);
    assert!(c.unpin(first));
}

#[tokio::test(start_paused = true)]
async fn results_expire_with_their_operation() {
    let (c, alive) = counted(
        Options::default()
            .max_concurrency(2)
            .max_operation_lifetime(Some(Duration::from_secs(10))),
    );
    for n in 0..3 {
        c.enqueue(n).await.unwrap();
    }
    wait_until(1000, || c.total_completed() == 3).await;
    assert_eq!(c.results().len(), 3);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(c.successful().len(), 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Reads are exact even on an idle coordinator.
    assert!(c.results().is_empty());
    assert!(c.snapshot().is_empty());
    assert!(c.base_snapshot().is_empty());
    assert!(c.successful().is_empty());
    // The next write drops the expired ones and their results.
    c.enqueue(9).await.unwrap();
    wait_until(1000, || c.total_completed() == 4).await;
    assert_eq!(c.results().iter().map(|r| r.n).collect::<Vec<_>>(), [9]);
    assert_eq!(held(&alive), 1);
    c.complete();
    c.drain().await;
}

#[tokio::test]
async fn a_read_drops_results_that_left_the_window() {
    let (c, alive) = counted(
        Options::default()
            .max_concurrency(4)
            .max_tracked_operations(50),
    );
    for n in 0..1000 {
        c.enqueue(n).await.unwrap();
    }
    // Workers stay (paused, not exited), each with its own shard of finished operations.
    c.pause();
    wait_until(1000, || c.active_count() == 0).await;
    let done = c.total_completed();
    assert!(done >= 200, "only {done} ran");
    assert!(held(&alive) <= 4 * 50);
    let newest: Vec<u32> = c.results().iter().map(|r| r.n).collect();
    assert_eq!(newest.len(), 50);
    let first = u32::try_from(done).unwrap() - 50;
    assert_eq!(
        newest,
        (first..first + 50).collect::<Vec<_>>(),
        "the newest 50"
    );
    assert_eq!(
        held(&alive),
        50,
        "results outside the window are dropped by the read"
    );
    c.resume();
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_over_many_results() {
    let (c, alive) = counted(
        Options::default()
            .max_concurrency(4)
            .max_tracked_operations(50),
    );
    for n in 0..20_000 {
        c.enqueue(n).await.unwrap();
        if n % 1000 == 0 {
            // Per-worker shards of at most 50 finished operations each...
            assert!(held(&alive) <= 5 * 50, "{} results held", held(&alive));
            assert!(c.window_len() <= 5 * 50 + 4);
            // ...of which reads see the newest 50.
            assert!(c.results().len() <= 50);
        }
    }
    c.complete();
    c.drain().await;
    assert_eq!(c.results().len(), 50);
    // A worker that exits after the drain moves its shard to the retired window and drops
    // what falls out of it just after releasing the locks: on another thread that may land
    // an instant after our read.
    wait_until(100_000, || held(&alive) == 50).await;
    assert_eq!(c.total_completed(), 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sample_sees_every_finished_operation_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(HashSet::<OperationId>::new()));
    let (k, s) = (calls.clone(), seen.clone());
    let c = ResultCoordinator::new(
        |n: u32, _op: Operation| async move {
            if n % 4 == 0 {
                Err(std::io::Error::other("nope"))
            } else {
                Ok(vec![n; 3])
            }
        },
        Options::default()
            .max_concurrency(3)
            .max_tracked_operations(1000)
            // The handler's type is `Fn(&[OperationSnapshot])`: base snapshots, no results.
            .on_sample(move |window| {
                k.fetch_add(1, Ordering::SeqCst);
                let mut seen = s.lock().unwrap();
                seen.extend(window.iter().filter(|o| !o.is_running()).map(|o| o.id()));
            }),
    );
    let mut ids = HashSet::new();
    for n in 0..200 {
        ids.insert(c.enqueue(n).await.unwrap());
    }
    c.complete();
    c.drain().await;
    assert_eq!(calls.load(Ordering::SeqCst), 200);
    assert_eq!(*seen.lock().unwrap(), ids);
    assert_eq!(c.results().len(), 150);
    assert_eq!(c.failed().len(), 50);
}

/// A result whose `Drop` reads the coordinator that held it.
struct Reentrant {
    home: Arc<std::sync::OnceLock<ResultCoordinator<u32, Reentrant>>>,
    dropped: Arc<AtomicUsize>,
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        if let Some(c) = self.home.get() {
            // Every kind of read: counters, snapshots, signal queries, window edits.
            let _ = c.stats();
            let _ = c.base_snapshot().len();
            let _ = ephemeral::SignalSource::has_signal(c, "x");
            let _ = c.evict(ephemeral::OperationId::next());
        }
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Results leave the window on the worker's hot path, on reads (trim, evict) and when workers
/// exit; their `Drop` (user code) runs after the coordinator's locks are released, so it may
/// call back into the coordinator without deadlocking. (The scenario runs on a runtime of its
/// own, so a deadlock fails the test instead of hanging it.)
#[test]
fn a_result_dropped_by_the_window_may_call_back_into_the_coordinator() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let home = Arc::new(std::sync::OnceLock::new());
            let dropped = Arc::new(AtomicUsize::new(0));
            let (h, d) = (home.clone(), dropped.clone());
            let c = ResultCoordinator::new(
                move |_: u32, _op: Operation| {
                    let (home, dropped) = (h.clone(), d.clone());
                    async move { Ok::<_, std::io::Error>(Reentrant { home, dropped }) }
                },
                Options::default()
                    .max_concurrency(3)
                    .max_tracked_operations(4)
                    .dynamic_concurrency(true),
            );
            assert!(home.set(c.clone()).is_ok());
            for n in 0..300 {
                c.enqueue(n).await.unwrap();
                if n % 50 == 0 {
                    // Reads trim the shards (dropping results) while workers record.
                    let finished = c.base_snapshot().into_iter().find(|s| !s.is_running());
                    if let Some(s) = finished {
                        c.evict(s.id());
                    }
                }
                if n == 150 {
                    // Workers leave (their shards merge, evicting results).
                    c.set_max_concurrency(1).unwrap();
                }
            }
            c.complete();
            c.drain().await;
            let _ = c.base_snapshot().len();
            assert_eq!(c.total_completed(), 300);
            assert!(
                dropped.load(Ordering::SeqCst) >= 290,
                "results were dropped along the way"
            );
        });
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a result's Drop deadlocked the coordinator (or the scenario panicked)");
}
