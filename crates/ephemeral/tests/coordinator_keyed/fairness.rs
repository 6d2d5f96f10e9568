//! No head-of-line blocking, and round-robin fairness across keys.

use super::*;

#[tokio::test(start_paused = true)]
async fn idle_key_starts_before_queued_items_of_a_busy_key() {
    let (c, log) = timed(
        Options::default()
            .max_concurrency(2)
            .max_concurrency_per_key(1),
    );
    c.enqueue(("a", 1, 10)).await.unwrap();
    c.enqueue(("a", 2, 10)).await.unwrap();
    c.enqueue(("a", 3, 10)).await.unwrap();
    c.enqueue(("b", 1, 1)).await.unwrap();
    c.complete();
    c.drain().await;
    let log = log.lock().unwrap();
    let (b_pos, b_at) = start_of(&log, "b", 1);
    let (a2_pos, a2_at) = start_of(&log, "a", 2);
    assert_eq!(b_at, Duration::ZERO, "b1 waited behind a's queue: {log:?}");
    assert!(b_pos < a2_pos);
    assert_eq!(a2_at, Duration::from_secs(10));
    assert_eq!(start_of(&log, "a", 3).1, Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn idle_key_takes_the_first_freed_slot_whatever_waits_ahead() {
    let (c, log) = timed(
        Options::default()
            .max_concurrency(2)
            .max_concurrency_per_key(1),
    );
    c.enqueue(("a", 0, 100)).await.unwrap();
    c.enqueue(("c", 0, 5)).await.unwrap();
    for n in 1..=30 {
        c.enqueue(("a", n, 100)).await.unwrap();
    }
    c.enqueue(("b", 0, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    {
        let log = log.lock().unwrap();
        let (_, b_at) = start_of(&log, "b", 0);
        assert_eq!(b_at, Duration::from_secs(5), "{log:?}");
        assert_eq!(c.pending_count_for_key(&"a"), 30);
    }
    c.cancel();
    c.drain().await;
}

#[tokio::test(start_paused = true)]
async fn cold_keys_are_not_starved_by_a_hot_key_queued_first() {
    let (c, log) = timed(
        Options::default()
            .max_concurrency(1)
            .max_concurrency_per_key(1),
    );
    c.pause();
    for n in 0..100 {
        c.enqueue(("hot", n, 1)).await.unwrap();
    }
    let cold = ["c1", "c2", "c3", "c4"];
    for k in cold {
        c.enqueue((k, 0, 1)).await.unwrap();
    }
    c.resume();
    c.complete();
    c.drain().await;
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 104);
    for k in cold {
        let (pos, _) = start_of(&log, k, 0);
        assert!(pos <= cold.len(), "{k} started {pos}th: {:?}", &log[..8]);
    }
    let hot: Vec<u32> = log
        .iter()
        .filter(|(k, _, _)| *k == "hot")
        .map(|(_, n, _)| *n)
        .collect();
    assert_eq!(hot, (0..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_hot_key_below_its_cap_goes_to_the_back_of_the_ring() {
    // With two slots per key the hot key stays startable after each pop; it must still yield
    // its turn to every other ready key.
    let (c, log) = timed(
        Options::default()
            .max_concurrency(2)
            .max_concurrency_per_key(2),
    );
    c.pause();
    for n in 0..100 {
        c.enqueue(("hot", n, 1)).await.unwrap();
    }
    let cold = ["c1", "c2", "c3", "c4"];
    for k in cold {
        c.enqueue((k, 0, 1)).await.unwrap();
    }
    c.resume();
    c.complete();
    c.drain().await;
    let log = log.lock().unwrap();
    for k in cold {
        let (pos, at) = start_of(&log, k, 0);
        assert!(pos < 6, "{k} started {pos}th: {:?}", &log[..8]);
        assert!(at <= Duration::from_secs(2));
    }
}

#[tokio::test(start_paused = true)]
async fn cold_keys_arriving_late_get_their_turn_next() {
    let (c, log) = timed(
        Options::default()
            .max_concurrency(1)
            .max_concurrency_per_key(1),
    );
    for n in 0..50 {
        c.enqueue(("hot", n, 1)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let cold = ["c1", "c2", "c3", "c4"];
    for k in cold {
        c.enqueue((k, 0, 1)).await.unwrap();
    }
    c.complete();
    c.drain().await;
    let log = log.lock().unwrap();
    for (i, k) in cold.iter().enumerate() {
        let (_, at) = start_of(&log, k, 0);
        // hot3 ends at 4 s; then c1..c4 take one turn each before hot4.
        assert_eq!(at, Duration::from_secs(4 + i as u64), "{log:?}");
    }
    assert_eq!(start_of(&log, "hot", 4).1, Duration::from_secs(8));
}
