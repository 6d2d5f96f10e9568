//! Smoke test.
use ephemeral::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_many_items() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let c = WorkCoordinator::new(
        move |_n: u32, _op| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::Relaxed);
                Ok::<_, std::io::Error>(())
            }
        },
        Options::default().max_concurrency(8),
    );
    let c2 = c.clone();
    let mon = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            eprintln!("{:?}", c2.stats());
        }
    });
    for n in 0..100_000 {
        c.enqueue(n).await.unwrap();
    }
    eprintln!("enqueued all");
    c.complete();
    c.drain().await;
    mon.abort();
    assert_eq!(ran.load(Ordering::Relaxed), 100_000);
    let s = c.stats();
    assert_eq!(s.completed, 100_000);
    assert_eq!(c.snapshot().len(), 200);
}
