//! `drain` waits for the coordinator's own async signal handlers.

use ephemeral::{Operation, Options, WorkCoordinator};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_drain_every_queued_signal_was_handled_failed_or_dropped() {
    for _ in 0..5 {
        let handled = Arc::new(AtomicU64::new(0));
        let retractions = Arc::new(AtomicU64::new(0));
        let (h, r) = (handled.clone(), retractions.clone());
        let c = WorkCoordinator::new(
            |n: u64, op: Operation| async move {
                op.emit(if n % 10 == 0 { "fail" } else { "ok" });
                op.retract("ok");
            },
            Options::default()
                .max_concurrency(4)
                .max_queued_signals(64)
                .on_signal_async(move |e| {
                    let h = h.clone();
                    async move {
                        tokio::task::yield_now().await;
                        if e.is("fail") {
                            return Err("handler failed");
                        }
                        h.fetch_add(1, SeqCst);
                        Ok(())
                    }
                })
                .on_signal_retracted_async(move |_| {
                    let r = r.clone();
                    async move {
                        tokio::task::yield_now().await;
                        r.fetch_add(1, SeqCst);
                    }
                }),
        );
        for n in 0..5000 {
            c.enqueue(n).await.unwrap();
        }
        c.complete();
        c.drain().await;
        assert!(c.is_drained());
        let s = c.stats();
        let handled = handled.load(SeqCst);
        let retractions = retractions.load(SeqCst);
        assert_eq!(
            handled + retractions + s.signal_handler_drops + s.signal_handler_failures,
            5000 + 4500,
            "{s:?}, handled {handled}, retractions {retractions}"
        );
    }
}

#[tokio::test]
async fn is_drained_waits_for_a_running_handler() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let c = WorkCoordinator::new(
        |_: (), op: Operation| async move {
            op.emit("x");
        },
        Options::default().on_signal_async(move |_| {
            let g = g.clone();
            async move {
                g.acquire().await.unwrap().forget();
            }
        }),
    );
    c.enqueue(()).await.unwrap();
    c.complete();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(!c.is_drained(), "its signal handler still runs");
    gate.add_permits(1);
    c.drain().await;
    assert!(c.is_drained());
}
