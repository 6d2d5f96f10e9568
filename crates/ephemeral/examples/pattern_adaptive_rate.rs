//! `AdaptiveRate`: a fake API answers "slow down" now and then; the body emits
//! `rate-limit:<n>ms`, and `enqueue` waits out the newest such signal before handing over the
//! next request.
//!
//! Run with `cargo run --example pattern_adaptive_rate` (about two seconds).

use ephemeral::patterns::{parse_retry_after, AdaptiveRate};
use ephemeral::{Operation, Options};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let start = Instant::now();
    let api = AdaptiveRate::new(
        move |request: u32, op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if request % 5 == 4 {
                // The server's 429 carries a retry-after: say so as a signal.
                let signal = format!("rate-limit:{}ms", 200 + 50 * request);
                println!(
                    "{:>5} ms  request {request:>2}: 429, emits {signal}",
                    start.elapsed().as_millis()
                );
                op.emit(signal);
            } else {
                println!(
                    "{:>5} ms  request {request:>2}: 200",
                    start.elapsed().as_millis()
                );
            }
        },
        Options::default().max_concurrency(2).name("api"),
    );

    assert_eq!(
        parse_retry_after("rate-limit:250ms"),
        Some(Duration::from_millis(250))
    );
    for request in 0..15 {
        if let Some(wait) = api.current_delay() {
            println!(
                "{:>5} ms  enqueue of request {request} waits {} ms",
                start.elapsed().as_millis(),
                wait.as_millis()
            );
        }
        api.enqueue(request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    api.coordinator().complete();
    api.coordinator().drain().await;
    let stats = api.coordinator().stats();
    println!(
        "{:>5} ms  done: {} requests completed",
        start.elapsed().as_millis(),
        stats.completed
    );
    assert_eq!(stats.completed, 15);
}
