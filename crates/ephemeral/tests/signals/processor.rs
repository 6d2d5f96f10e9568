//! `AsyncSignalProcessor`: bounded queue (drop oldest), bounded concurrency, failure counting,
//! shutdown and cancel.

use ephemeral::{AsyncSignalProcessor, BoxError, OperationId, SignalEvent};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

fn ev(name: &str) -> SignalEvent {
    SignalEvent::new(name, OperationId::next(), None, SystemTime::now())
}

/// A processor whose handler records each signal's name once a gate permit is available.
struct Gated {
    processor: AsyncSignalProcessor,
    gate: Arc<Semaphore>,
    started: Arc<AtomicUsize>,
    ran: Arc<Mutex<Vec<String>>>,
}

fn gated(max_concurrency: usize, max_queue: usize) -> Gated {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let processor = {
        let (gate, started, ran) = (gate.clone(), started.clone(), ran.clone());
        AsyncSignalProcessor::new(
            move |evt: SignalEvent, _token: CancellationToken| {
                let (gate, started, ran) = (gate.clone(), started.clone(), ran.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    gate.acquire().await.unwrap().forget();
                    ran.lock().unwrap().push(evt.signal().to_string());
                    Ok::<_, BoxError>(())
                }
            },
            max_concurrency,
            max_queue,
        )
    };
    Gated {
        processor,
        gate,
        started,
        ran,
    }
}

async fn wait_started(started: &AtomicUsize, n: usize) {
    while started.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_exactly_the_oldest_waiting_signal() {
    let g = gated(1, 3);
    assert!(g.processor.enqueue(ev("s0")));
    wait_started(&g.started, 1).await;
    // s0 runs (blocked on the gate); s1..s3 fill the queue.
    for name in ["s1", "s2", "s3"] {
        assert!(g.processor.enqueue(ev(name)));
    }
    assert_eq!(g.processor.queued_count(), 3);
    assert_eq!(g.processor.dropped_count(), 0);
    // Each further signal pushes out the oldest waiting one and is itself accepted.
    assert!(g.processor.enqueue(ev("s4")));
    assert_eq!(g.processor.dropped_count(), 1);
    assert!(g.processor.enqueue(ev("s5")));
    assert_eq!(g.processor.dropped_count(), 2);
    assert_eq!(g.processor.queued_count(), 3);

    g.gate.add_permits(100);
    g.processor.shutdown().await;
    assert_eq!(*g.ran.lock().unwrap(), ["s0", "s3", "s4", "s5"]);
    assert_eq!(g.processor.processed_count(), 4);
    assert_eq!(g.processor.dropped_count(), 2);
    assert_eq!(g.processor.failed_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn never_more_handlers_at_once_than_the_cap() {
    for cap in [1, 4] {
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let processor = {
            let (now, max) = (now.clone(), max.clone());
            AsyncSignalProcessor::new(
                move |_evt: SignalEvent, _token: CancellationToken| {
                    let (now, max) = (now.clone(), max.clone());
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, BoxError>(())
                    }
                },
                cap,
                1000,
            )
        };
        for i in 0..100 {
            assert!(processor.enqueue(ev(&format!("s{i}"))));
            if i % 13 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        processor.shutdown().await;
        assert_eq!(max.load(Ordering::SeqCst), cap, "cap {cap}");
        assert_eq!(processor.processed_count(), 100);
    }
}

#[tokio::test(start_paused = true)]
async fn failing_and_panicking_handlers_are_counted_and_processing_goes_on() {
    let ok = Arc::new(AtomicUsize::new(0));
    let processor = {
        let ok = ok.clone();
        AsyncSignalProcessor::new(
            move |evt: SignalEvent, _token: CancellationToken| {
                if evt.is("panic-now") {
                    panic!("handler panicked before returning its future");
                }
                let ok = ok.clone();
                async move {
                    match evt.signal() {
                        "fail" => Err::<(), BoxError>("failed on purpose".into()),
                        "panic" => panic!("handler panicked on purpose"),
                        _ => {
                            ok.fetch_add(1, Ordering::SeqCst);
                            Ok(())
                        }
                    }
                }
            },
            2,
            100,
        )
    };
    for name in [
        "fail",
        "panic",
        "panic-now",
        "ok",
        "fail",
        "ok",
        "panic",
        "ok",
    ] {
        assert!(processor.enqueue(ev(name)));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), processor.shutdown())
        .await
        .expect("shutdown hung after a handler panicked");
    assert_eq!(processor.failed_count(), 5);
    assert_eq!(processor.processed_count(), 3);
    assert_eq!(ok.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_runs_everything_queued_then_enqueue_answers_false() {
    let ran = Arc::new(AtomicUsize::new(0));
    let processor = {
        let ran = ran.clone();
        AsyncSignalProcessor::new(
            move |_evt: SignalEvent, _token: CancellationToken| {
                let ran = ran.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                }
            },
            3,
            1000,
        )
    };
    for i in 0..300 {
        assert!(processor.enqueue(ev(&format!("s{i}"))));
    }
    processor.shutdown().await;
    assert_eq!(ran.load(Ordering::SeqCst), 300);
    assert_eq!(processor.processed_count(), 300);
    assert_eq!(processor.queued_count(), 0);
    assert!(!processor.enqueue(ev("late")));
    assert!(!processor.clone().enqueue(ev("late")));
    assert_eq!(processor.dropped_count(), 0);
    processor.shutdown().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 300);
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_queued_signals_and_cancels_running_handlers() {
    let started = Arc::new(AtomicUsize::new(0));
    let saw_cancel = Arc::new(AtomicUsize::new(0));
    let processor = {
        let (started, saw_cancel) = (started.clone(), saw_cancel.clone());
        AsyncSignalProcessor::new(
            move |_evt: SignalEvent, token: CancellationToken| {
                let (started, saw_cancel) = (started.clone(), saw_cancel.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    token.cancelled().await;
                    saw_cancel.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                }
            },
            2,
            100,
        )
    };
    for i in 0..10 {
        assert!(processor.enqueue(ev(&format!("s{i}"))));
    }
    wait_started(&started, 2).await;
    assert_eq!(processor.queued_count(), 8);
    tokio::time::timeout(Duration::from_secs(60), processor.cancel())
        .await
        .expect("cancel did not return");
    assert_eq!(saw_cancel.load(Ordering::SeqCst), 2);
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(processor.dropped_count(), 8);
    assert_eq!(processor.queued_count(), 0);
    assert!(!processor.enqueue(ev("late")));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_runs_queued_signals_then_releases_the_handler() {
    let ran = Arc::new(AtomicUsize::new(0));
    let processor = {
        let ran = ran.clone();
        AsyncSignalProcessor::new(
            move |_evt: SignalEvent, _token: CancellationToken| {
                let ran = ran.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                }
            },
            1,
            100,
        )
    };
    for i in 0..5 {
        assert!(processor.enqueue(ev(&format!("s{i}"))));
    }
    drop(processor);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    assert_eq!(Arc::strong_count(&ran), 1);
}

/// A handler may enqueue onto its own processor from its synchronous part. (The processor
/// used to call handlers while holding its queue lock, which deadlocked here; the work runs on
/// its own thread so a regression fails by timeout instead of hanging the suite.)
#[test]
fn a_handler_may_enqueue_from_its_synchronous_part() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let cell: Arc<OnceLock<AsyncSignalProcessor>> = Arc::default();
            let seen: Arc<Mutex<Vec<String>>> = Arc::default();
            let processor = {
                let (cell, seen) = (cell.clone(), seen.clone());
                AsyncSignalProcessor::new(
                    move |evt: SignalEvent, _token: CancellationToken| {
                        if evt.is("first") {
                            assert!(cell.get().unwrap().enqueue(ev("second")));
                        }
                        seen.lock().unwrap().push(evt.signal().to_string());
                        async { Ok::<_, BoxError>(()) }
                    },
                    1,
                    10,
                )
            };
            cell.set(processor.clone()).unwrap();
            assert!(processor.enqueue(ev("first")));
            while processor.processed_count() < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let seen = seen.lock().unwrap().clone();
            tx.send(seen).unwrap();
            // Break the handle cycle (the handler holds a handle via `cell`).
            processor.shutdown().await;
        });
    });
    let seen = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("handler deadlocked enqueueing onto its own processor");
    assert_eq!(seen, ["first", "second"]);
}

#[tokio::test]
async fn handlers_may_return_unit() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    let processor = AsyncSignalProcessor::new(
        move |_evt: SignalEvent, _token| {
            let s = s.clone();
            async move {
                s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        },
        2,
        10,
    );
    processor.enqueue(SignalEvent::new(
        "a",
        OperationId::next(),
        None,
        ephemeral::now(),
    ));
    processor.shutdown().await;
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(processor.processed_count(), 1);
}
