//! `ControlledFanOut`: fetch pages from several hosts, at most 6 fetches at once in all and
//! at most 2 per host. A line shows the running fetches per host every 100 ms.
//!
//! Run with `cargo run --example pattern_controlled_fan_out` (about a second).

use ephemeral::patterns::ControlledFanOut;
use ephemeral::Operation;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fetches = ControlledFanOut::new(
        |url: &(&'static str, u32)| url.0,
        |url: (&'static str, u32), _op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(60 + 20 * u64::from(url.1 % 3))).await;
        },
        6,
        2,
    );
    let start = Instant::now();
    for page in 0..8 {
        for host in ["a.example", "b.example", "c.example", "d.example"] {
            fetches.enqueue((host, page)).await.unwrap();
        }
    }
    let mut max_per_host = 0;
    let mut max_total = 0;
    while fetches.coordinator().total_completed() < 32 {
        let mut running: BTreeMap<String, usize> = BTreeMap::new();
        for op in fetches.coordinator().running() {
            *running
                .entry(op.key().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        let total: usize = running.values().sum();
        max_total = max_total.max(total);
        max_per_host = max_per_host.max(running.values().copied().max().unwrap_or(0));
        println!(
            "{:>5} ms  running {total} {running:?}, completed {}",
            start.elapsed().as_millis(),
            fetches.coordinator().total_completed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fetches.drain().await;
    println!(
        "{:>5} ms  done: at most {max_total} at once, at most {max_per_host} per host",
        start.elapsed().as_millis()
    );
    assert!(max_total <= 6 && max_per_host <= 2);
}
