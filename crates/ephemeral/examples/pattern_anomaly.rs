//! `SignalAnomalyDetector`: a burst of errors within a window, on tokio's clock.
//!
//! `cargo run --example pattern_anomaly`

use ephemeral::patterns::SignalAnomalyDetector;
use ephemeral::SignalSink;
use std::time::Duration;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let sink = SignalSink::default();
    let detector = SignalAnomalyDetector::new(&sink, "http.error.*", 5, Duration::from_secs(2));

    for tick in 0..12u32 {
        // A burst of errors between 1 s and 2 s, a trickle otherwise.
        let errors = if (4..8).contains(&tick) {
            3
        } else {
            usize::from(tick % 3 == 0)
        };
        for _ in 0..errors {
            sink.raise("http.error.503");
        }
        println!(
            "t = {:>4} ms: {} errors in the last 2 s{}",
            tick * 250,
            detector.count(),
            if detector.is_anomalous() {
                "  <-- anomaly"
            } else {
                ""
            }
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "2 s of quiet later: {} errors, anomalous: {}",
        detector.count(),
        detector.is_anomalous()
    );
    assert!(!detector.is_anomalous());
}
