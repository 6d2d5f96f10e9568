//! `CircuitBreaker`: failures within a window open it; it closes as they age out.
//!
//! `cargo run --example pattern_circuit_breaker`

use ephemeral::patterns::CircuitBreaker;
use ephemeral::SignalSink;
use std::time::Duration;

async fn call_api(attempt: u32, sink: &SignalSink) {
    if attempt < 4 {
        println!("  call {attempt}: failed");
        sink.raise("api.failed");
    } else {
        println!("  call {attempt}: ok");
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let sink = SignalSink::default();
    let breaker = CircuitBreaker::new(&sink, "api.failed", 3, Duration::from_secs(1));

    for attempt in 1..=5 {
        match breaker.check() {
            Ok(()) => call_api(attempt, &sink).await,
            Err(open) => {
                println!("  call {attempt}: skipped, {open}");
                tokio::time::sleep(open.retry_after()).await;
                println!(
                    "  waited {:?}: open = {}",
                    open.retry_after(),
                    breaker.is_open()
                );
                call_api(attempt, &sink).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("failures in the window: {}", breaker.failure_count());
}
