//! `SignalAwareAtom`: ambient signals refuse or hold work, and age out with the sink.
//!
//! A `maintenance` signal (live for one second in this sink) makes `enqueue` answer
//! `Rejected`; a `slow-down` signal holds starts until it ages out.
//!
//! ```sh
//! cargo run -p ephemeral --example atom_signal_aware
//! ```

use ephemeral::atoms::SignalAwareAtom;
use ephemeral::{EnqueueError, Operation, Options, SignalSink};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t0 = Instant::now();
    let orders = SignalAwareAtom::new(
        move |order: u32, _op: Operation| async move {
            println!("{:>5} ms  shipping order {order}", t0.elapsed().as_millis());
        },
        ["maintenance"],
        ["slow-down"],
        Options::default()
            .signals(SignalSink::new(100, Duration::from_secs(1)))
            .defer_check_interval(Duration::from_millis(100))
            .max_defer_attempts(50),
    );

    orders.enqueue(1).await.expect("open");
    tokio::time::sleep(Duration::from_millis(50)).await;

    orders.raise("maintenance");
    match orders.enqueue(2).await {
        Err(EnqueueError::Rejected(order)) => {
            println!(
                "{:>5} ms  order {order} rejected: maintenance",
                t0.elapsed().as_millis()
            );
        }
        other => println!("unexpected: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(1100)).await; // the signal ages out
    orders.enqueue(3).await.expect("accepted again");
    tokio::time::sleep(Duration::from_millis(50)).await;

    orders.raise("slow-down");
    println!(
        "{:>5} ms  slow-down raised, enqueueing order 4",
        t0.elapsed().as_millis()
    );
    orders.enqueue(4).await.expect("open");
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "{:>5} ms  deferred starts now: {}",
        t0.elapsed().as_millis(),
        orders.stats().deferred
    );
    orders.drain().await;
    let stats = orders.stats();
    println!(
        "shipped {} orders, {} sink signals live",
        stats.completed,
        orders.sink().len()
    );
}
