//! from_stream, and cancel racing producers.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_stream_keeps_per_key_order_and_completes_itself() {
    let log = Arc::new(Mutex::new(HashMap::<u32, Vec<u32>>::new()));
    let l = log.clone();
    let items: Vec<(u32, u32)> = (0..300).map(|i| (i % 7, i / 7)).collect();
    let c = KeyedWorkCoordinator::from_stream(
        futures::stream::iter(items),
        |it: &(u32, u32)| it.0,
        move |(k, n): (u32, u32), _op: Operation| {
            let l = l.clone();
            async move {
                l.lock().unwrap().entry(k).or_default().push(n);
                tokio::task::yield_now().await;
                BodyResult::Ok(())
            }
        },
        Options::default().max_concurrency(4).queue_capacity(16),
    );
    tokio::time::timeout(Duration::from_secs(30), c.drain())
        .await
        .expect("from_stream coordinator never drained");
    assert!(c.is_completed());
    assert_eq!(c.total_completed(), 300);
    let log = log.lock().unwrap();
    for (k, seen) in log.iter() {
        let expected: Vec<u32> = (0..300).filter(|i| i % 7 == *k).map(|i| i / 7).collect();
        assert_eq!(seen, &expected, "key {k}");
    }
}

/// `cancel` racing producers and workers on other threads: every accepted item is accounted
/// for, `drain` returns, and no key state is left behind (an item pushed just after the cancel
/// emptied the queues must not wait for workers that are gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_producers_leaves_nothing_behind() {
    for round in 0..1000u64 {
        let c = Arc::new(KeyedWorkCoordinator::new(
            |n: &u64| n % 13,
            |_n: u64, _op: Operation| async { BodyResult::Ok(()) },
            Options::default()
                .max_concurrency(3)
                .max_concurrency_per_key(1)
                .queue_capacity(100_000),
        ));
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut accepted = 0u64;
                    for n in 0.. {
                        match c.try_enqueue(n * 2 + p) {
                            Ok(_) => accepted += 1,
                            Err(TryEnqueueError::Full(_)) => tokio::task::yield_now().await,
                            Err(_) => return accepted,
                        }
                    }
                    accepted
                })
            })
            .collect();
        for _ in 0..(round % 5) {
            tokio::task::yield_now().await;
        }
        c.cancel();
        let mut accepted = 0;
        for p in producers {
            accepted += p.await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), c.drain())
            .await
            .unwrap_or_else(|_| panic!("round {round}: drain hung with {:?}", c.stats()));
        let s = c.stats();
        assert_eq!(s.enqueued, accepted, "round {round}");
        assert_eq!(
            s.enqueued,
            s.completed + s.failed + s.cancelled,
            "round {round}"
        );
        assert_eq!((s.pending, s.active), (0, 0), "round {round}");
        assert_eq!(c.active_keys(), 0, "round {round}: key state left behind");
    }
}
