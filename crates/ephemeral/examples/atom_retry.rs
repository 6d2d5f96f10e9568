//! `RetryAtom`: flaky uploads retried with a backoff, `retry:<k>` signals on the side.
//!
//! Upload "a" succeeds on its third attempt, "b" fails all four, "c" works at once.
//!
//! ```sh
//! cargo run -p ephemeral --example atom_retry
//! ```

use ephemeral::atoms::{RetryAtom, RetryPolicy};
use ephemeral::{Operation, Options, SignalSource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t0 = Instant::now();
    let attempts: Arc<Mutex<HashMap<&'static str, u32>>> = Arc::default();
    let seen = attempts.clone();
    let uploads = RetryAtom::new(
        move |file: &'static str, _op: Operation| {
            let attempt = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(file).or_default();
                *n += 1;
                *n
            };
            async move {
                let ok = match file {
                    "a" => attempt >= 3,
                    "b" => false,
                    _ => true,
                };
                let ms = t0.elapsed().as_millis();
                if ok {
                    println!("{ms:>5} ms  upload {file}: attempt {attempt} ok");
                    Ok(())
                } else {
                    println!("{ms:>5} ms  upload {file}: attempt {attempt} failed");
                    Err(format!(
                        "upload {file}: connection reset (attempt {attempt})"
                    ))
                }
            }
        },
        RetryPolicy::new(4).backoff(|n| Duration::from_millis(100) * 2u32.pow(n - 1)),
        Options::default()
            .max_concurrency(3)
            .on_signal(|s| println!("          signal {} from {}", s.signal(), s.operation_id())),
    );
    for file in ["a", "b", "c"] {
        uploads.enqueue(file).await.expect("open");
    }
    uploads.drain().await;
    let stats = uploads.stats();
    println!("completed {}, failed {}", stats.completed, stats.failed);
    for op in uploads.coordinator().failed() {
        println!(
            "failed: {}",
            op.error().map(ToString::to_string).unwrap_or_default()
        );
    }
    println!(
        "retry signals: {}",
        uploads.coordinator().count_signals_matching("retry:*")
    );
}
