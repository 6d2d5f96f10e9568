//! `ReactiveFanOut`: a fast stage 1 (parse) feeds a slow stage 2 (store). When stage 2 backs
//! up, stage 1 drops to its minimum concurrency and raises `stage2.backpressure`; once stage 2
//! catches up it returns to its maximum. The drain loses nothing: every page ends failed in
//! stage 1, or completed or failed in stage 2.
//!
//! Run with `cargo run --example pattern_fan_out` (about two seconds). Two bursts of pages, each backing stage 2 up..

use ephemeral::patterns::{FanOutConfig, ReactiveFanOut};
use ephemeral::{Operation, SignalSource};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let pipeline = ReactiveFanOut::new(
        |page: u32, _op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if page % 17 == 16 {
                return Err(format!("page {page}: parse error"));
            }
            Ok(page)
        },
        |page: u32, _op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            if page % 23 == 22 {
                return Err(format!("page {page}: store failed"));
            }
            Ok(())
        },
        FanOutConfig::default()
            .stage1_max(8)
            .stage1_min(1)
            .stage2_max(4)
            .backpressure_threshold(12)
            .relief_threshold(3)
            .cooldown(Duration::from_millis(200)),
    );

    let start = Instant::now();
    let watcher = {
        let p = pipeline.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                let limit = p.stage1_max_concurrency();
                if limit != last {
                    println!(
                        "{:>5} ms  stage 1 limit {limit} (stage 2 pending {})",
                        start.elapsed().as_millis(),
                        p.stage2_pending()
                    );
                    last = limit;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let pages: u32 = 120;
    for burst in 0..2 {
        for page in burst * 60..(burst + 1) * 60 {
            pipeline.enqueue(page).await.unwrap();
        }
        println!(
            "{:>5} ms  burst {burst} enqueued",
            start.elapsed().as_millis()
        );
        // Let stage 2 catch up: the limit returns to its maximum after the cooldown.
        while pipeline.stage1().total_enqueued()
            > pipeline.stage1().total_failed()
                + pipeline.stage2().total_completed()
                + pipeline.stage2().total_failed()
            || pipeline.stage1_max_concurrency() != 8
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // the watcher prints
    }
    println!("{:>5} ms  draining", start.elapsed().as_millis());
    pipeline.drain().await;
    watcher.abort();

    let (s1, s2) = (pipeline.stage1().stats(), pipeline.stage2().stats());
    println!(
        "{:>5} ms  stage 1 failed {}, stage 2 completed {} and failed {}: {} of {pages}",
        start.elapsed().as_millis(),
        s1.failed,
        s2.completed,
        s2.failed,
        s1.failed + s2.completed + s2.failed
    );
    println!(
        "          signals: {} x stage2.backpressure, {} x stage2.failed",
        pipeline.signals().count_signals("stage2.backpressure"),
        pipeline.signals().count_signals("stage2.failed")
    );
    assert_eq!(s1.failed + s2.completed + s2.failed, u64::from(pages));
}
