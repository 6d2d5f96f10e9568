//! `signal_driven_backpressure`: starts wait while the sink holds `backpressure.*`.
//!
//! `cargo run --example pattern_backpressure`

use ephemeral::patterns::signal_driven_backpressure;
use ephemeral::{Options, SignalSink};
use std::time::Duration;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let sink = SignalSink::default();
    let start = tokio::time::Instant::now();
    let writer = signal_driven_backpressure(
        move |row: u32, _op| async move {
            println!(
                "  t = {:>5} ms: wrote row {row}",
                start.elapsed().as_millis()
            );
        },
        &sink,
        Options::default().max_concurrency(2),
    );

    println!("the database says: slow down (backpressure.db)");
    sink.raise("backpressure.db");
    for row in 0..4 {
        writer.enqueue(row).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "after 3 s: {} rows written, {} starts waiting",
        writer.total_completed(),
        writer.stats().deferred
    );

    println!("the database recovered: sink cleared");
    sink.clear();
    writer.complete();
    writer.drain().await;
    println!(
        "done at t = {} ms: {} rows written",
        start.elapsed().as_millis(),
        writer.total_completed()
    );
    assert_eq!(writer.total_completed(), 4);
}
