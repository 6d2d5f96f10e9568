//! The window stays bounded however much passes through it: a tiny window and a long one,
//! side by side, over 200,000 operations each.
//!
//! The tiny window keeps the 10 newest finished operations; the long one keeps up to 5,000
//! for a minute. Both report what they hold as the work flows: memory follows the window, not
//! the number of items.
//!
//! Run with `cargo run --release --example long_window` (a few seconds).

use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
use std::time::{Duration, Instant};

fn body() -> impl Fn(u64, Operation) -> std::future::Ready<Result<(), &'static str>> + Clone {
    |n: u64, op: Operation| {
        if n % 1000 == 0 {
            op.emit("milestone");
        }
        std::future::ready(if n % 97 == 0 {
            Err("every 97th fails")
        } else {
            Ok(())
        })
    }
}

#[tokio::main]
async fn main() {
    let tiny = WorkCoordinator::new(
        body(),
        Options::default()
            .name("tiny")
            .max_concurrency(4)
            .max_tracked_operations(10),
    );
    let long = WorkCoordinator::new(
        body(),
        Options::default()
            .name("long")
            .max_concurrency(4)
            .max_tracked_operations(5_000)
            .max_operation_lifetime(Some(Duration::from_secs(60))),
    );
    let started = Instant::now();
    println!(
        "{:>8}  {:>22}  {:>22}",
        "items", "tiny: window / signals", "long: window / signals"
    );
    for n in 1..=200_000u64 {
        tiny.enqueue(n).await.expect("open");
        long.enqueue(n).await.expect("open");
        if n % 40_000 == 0 {
            println!(
                "{n:>8}  {:>13} / {:>6}  {:>13} / {:>6}",
                tiny.snapshot().len(),
                tiny.total_signals(),
                long.snapshot().len(),
                long.total_signals(),
            );
        }
    }
    for c in [&tiny, &long] {
        c.complete();
        c.drain().await;
    }
    for c in [&tiny, &long] {
        let s = c.stats();
        println!(
            "{:<5} completed {:>7}, failed {:>5}; window {:>5} operations ({} failed in it), {} signals",
            c.name().unwrap_or("?"),
            s.completed,
            s.failed,
            c.snapshot().len(),
            c.failed().len(),
            c.total_signals(),
        );
    }
    println!(
        "400,000 operations in {:.1?}: the windows never held more than their bound",
        started.elapsed()
    );
}
