//! Signals in action: bodies emit them, an `on_signal` handler reacts on the spot, an async
//! handler does slower work off the hot path, and a separate task polls the shared sink.
//!
//! A payment processor emits `payment.slow` and `payment.declined`; the sync handler counts
//! declines and raises `fraud.suspected` on the sink after three in a row; the async handler
//! "notifies" about slow payments; a monitor task polls the sink and reports what it senses.
//!
//! Run with `cargo run --example signal_reaction` (about a second).

use ephemeral::{Operation, Options, SignalSink, SignalSource, WorkCoordinator};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let sink = SignalSink::default();
    let declines_in_a_row = Arc::new(AtomicUsize::new(0));
    let notified = Arc::new(AtomicUsize::new(0));

    let on_signal = {
        let sink = sink.clone();
        let declines = declines_in_a_row.clone();
        move |e: &ephemeral::SignalEvent| {
            if e.is("payment.declined") {
                if declines.fetch_add(1, Ordering::Relaxed) + 1 == 3 {
                    sink.raise("fraud.suspected");
                }
            } else if e.is("payment.ok") {
                declines.store(0, Ordering::Relaxed);
            }
        }
    };
    let on_signal_async = {
        let notified = notified.clone();
        move |e: ephemeral::SignalEvent| {
            let notified = notified.clone();
            async move {
                if e.is("payment.slow") {
                    tokio::time::sleep(Duration::from_millis(20)).await; // "send an email"
                    notified.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };
    let payments = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            op.set_label(format!("payment #{n}"));
            tokio::time::sleep(Duration::from_millis(5)).await;
            if n % 7 == 0 {
                op.emit("payment.slow");
            }
            if (10..13).contains(&n) {
                op.emit("payment.declined");
                return Err("card declined");
            }
            op.emit("payment.ok");
            Ok(())
        },
        Options::default()
            .name("payments")
            .max_concurrency(1)
            .signals(sink.clone())
            .on_signal(on_signal)
            .on_signal_async(on_signal_async),
    );

    let monitor = {
        let sink = sink.clone();
        tokio::spawn(async move {
            let mut reported = false;
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if !reported && sink.has_signal("fraud.suspected") {
                    let e = &sink.signals_named("fraud.suspected")[0];
                    println!(
                        "monitor: the sink says {} (raised by the on_signal handler)",
                        e.signal()
                    );
                    reported = true;
                }
            }
        })
    };

    for n in 1..=30 {
        payments.enqueue(n).await.expect("open");
    }
    payments.complete();
    payments.drain().await; // also waits for the async handlers
    monitor.await.expect("the monitor does not panic");

    println!(
        "payments: {} ok, {} declined; slow-payment notices sent: {}",
        payments.total_completed(),
        payments.total_failed(),
        notified.load(Ordering::Relaxed)
    );
    println!(
        "window signals: {} slow, {} declined; sink: {} events, fraud.suspected present: {}",
        payments.count_signals("payment.slow"),
        payments.count_signals("payment.declined"),
        sink.len(),
        sink.detect("fraud.suspected")
    );
}
