//! `DynamicConcurrency`: `load.high` doubles the limit, a newer `load.low` halves it.
//!
//! `cargo run --example pattern_dynamic_concurrency`

use ephemeral::patterns::{DynamicConcurrency, ScalingConfig};
use ephemeral::{Options, SignalSink, WorkCoordinator};
use std::time::Duration;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let sink = SignalSink::default();
    let coordinator = WorkCoordinator::new(
        |_job: u32, _op| async { tokio::time::sleep(Duration::from_millis(50)).await },
        Options::default().dynamic_concurrency(true),
    );
    let config = ScalingConfig::new(1, 16)
        .on_adjusted(|previous, new| println!("  limit {previous} -> {new}"));
    let scaler = DynamicConcurrency::start(&coordinator, &sink, config);
    println!("start: limit {}", coordinator.max_concurrency());

    println!("load.high raised");
    sink.raise("load.high");
    tokio::time::sleep(Duration::from_secs(5)).await;

    println!("load.low raised (load.high is still in the window, but older)");
    sink.raise("load.low");
    tokio::time::sleep(Duration::from_secs(5)).await;

    println!(
        "end: limit {}, {} adjustments",
        scaler.current(),
        scaler.adjustments()
    );
    assert_eq!(coordinator.max_concurrency(), 1);
    drop(scaler); // stops the control task
}
