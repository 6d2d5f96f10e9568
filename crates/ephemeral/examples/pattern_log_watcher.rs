//! `SignalLogWatcher`: one callback per matching event, those already in the sink first.
//!
//! `cargo run --example pattern_log_watcher`

use ephemeral::patterns::SignalLogWatcher;
use ephemeral::{Operation, Options, SignalSink, WorkCoordinator};
use std::time::Duration;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let sink = SignalSink::default();
    sink.raise("error.boot"); // already there when the watcher starts

    let watcher = SignalLogWatcher::new(&sink, "error.*", |evt| {
        println!("[watcher] {} (key {:?})", evt.signal(), evt.key());
    });

    // A coordinator whose bodies emit signals into the same sink.
    let jobs = WorkCoordinator::new(
        |job: u32, op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(job))).await;
            if job % 3 == 0 {
                op.emit("error.job");
            } else {
                op.emit("info.done");
            }
        },
        Options::default().max_concurrency(4).signals(sink.clone()),
    );
    for job in 1..=9 {
        jobs.enqueue(job).await.unwrap();
    }
    jobs.complete();
    jobs.drain().await;

    println!("{} error events reported, each once", watcher.matched());
    assert_eq!(watcher.matched(), 4);
    watcher.stop();
    sink.raise("error.after-stop");
    assert_eq!(watcher.matched(), 4);
    println!("after stop: still {}", watcher.matched());
}
