//! Stream sources never lose an item: `from_stream` (all three coordinators) and the `_stream`
//! one-shot helpers read their stream to its end, whatever refuses an item on the way.
//! Items read == completed + failed + cancelled, always.

use ephemeral::{
    for_each_keyed_stream, for_each_stream, KeyedWorkCoordinator, Options, ResultCoordinator,
    SignalSink, WorkCoordinator,
};
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// 400 events over 10 keys, `hot` of them for key 0 first, then the rest round-robin.
fn events(hot: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = (0..hot).map(|seq| (0, seq)).collect();
    let mut seq = vec![hot; 1];
    seq.extend(std::iter::repeat_n(0, 9));
    let mut key = 1u32;
    while out.len() < 400 {
        let k = (key % 10) as usize;
        out.push((k as u32, seq[k]));
        seq[k] += 1;
        key += 1;
    }
    out
}

/// A stream over `items` that counts what was read.
fn counted<T: Send + 'static>(
    items: Vec<T>,
    read: Arc<AtomicU64>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::iter(items).inspect(move |_| {
        read.fetch_add(1, SeqCst);
    })
}

#[tokio::test(start_paused = true)]
async fn keyed_from_stream_waits_for_a_hot_keys_room_and_keeps_order() {
    let read = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let c = KeyedWorkCoordinator::from_stream(
        counted(events(100), read.clone()),
        |(key, _): &(u32, u32)| *key,
        move |(key, seq): (u32, u32), _op| {
            let log = log.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                log.lock().unwrap().push((key, seq));
                Ok::<_, std::io::Error>(())
            }
        },
        Options::default().max_concurrency(4).max_pending_per_key(2),
    );
    c.drain().await;
    let stats = c.stats();
    assert_eq!(read.load(SeqCst), 400);
    assert_eq!(stats.enqueued, 400);
    assert_eq!(stats.completed, 400, "{stats:?}");
    assert_eq!(stats.cancelled, 0);
    // Per-key order held while the reader waited.
    let seen = seen.lock().unwrap();
    for key in 0..10 {
        let seqs: Vec<u32> = seen
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| *s)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] + 1 == w[1]),
            "key {key}: {seqs:?}"
        );
    }
}

/// A stream of `n` items, one per millisecond, that raises `halt` on `sink` as it reads item
/// `at` (the sink's max age makes the signal leave 50 ms later).
fn halting_stream(
    n: u64,
    at: u64,
    sink: SignalSink,
    read: Arc<AtomicU64>,
) -> impl futures::Stream<Item = u64> + Send + 'static {
    futures::stream::iter(0..n).then(move |i| {
        let sink = sink.clone();
        let read = read.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if i == at {
                sink.raise("halt");
            }
            read.fetch_add(1, SeqCst);
            i
        }
    })
}

#[tokio::test(start_paused = true)]
async fn work_from_stream_reads_on_after_a_cancel_on_signal_and_counts_refusals() {
    let sink = SignalSink::new(100, Duration::from_millis(50));
    let read = Arc::new(AtomicU64::new(0));
    let c = WorkCoordinator::from_stream(
        halting_stream(300, 100, sink.clone(), read.clone()),
        |_: u64, _op| async { Ok::<_, std::io::Error>(()) },
        Options::default()
            .max_concurrency(4)
            .signals(sink)
            .cancel_on_signals(["halt"]),
    );
    c.drain().await;
    let stats = c.stats();
    assert_eq!(read.load(SeqCst), 300, "the stream was read to its end");
    assert!(stats.cancelled >= 40, "{stats:?}");
    assert!(stats.completed >= 200, "{stats:?}");
    assert_eq!(stats.completed + stats.failed + stats.cancelled, 300);
    assert_eq!(stats.enqueued, 300);
}

#[tokio::test(start_paused = true)]
async fn result_from_stream_reads_on_after_a_cancel_on_signal() {
    let sink = SignalSink::new(100, Duration::from_millis(50));
    let read = Arc::new(AtomicU64::new(0));
    let c = ResultCoordinator::from_stream(
        halting_stream(300, 100, sink.clone(), read.clone()),
        |n: u64, _op| async move { Ok::<_, std::io::Error>(n) },
        Options::default()
            .max_concurrency(4)
            .max_tracked_operations(1000)
            .signals(sink)
            .cancel_on_signals(["halt"]),
    );
    c.drain().await;
    let stats = c.stats();
    assert_eq!(read.load(SeqCst), 300);
    assert!(stats.cancelled >= 40, "{stats:?}");
    assert_eq!(stats.completed + stats.failed + stats.cancelled, 300);
    assert_eq!(c.results().len() as u64, stats.completed);
    // Items after the signal left ran.
    assert!(c.results().contains(&299));
}

#[tokio::test(start_paused = true)]
async fn for_each_stream_reads_on_after_a_cancel_on_signal() {
    let sink = SignalSink::new(100, Duration::from_millis(50));
    let read = Arc::new(AtomicU64::new(0));
    let summary = for_each_stream(
        halting_stream(300, 100, sink.clone(), read.clone()),
        |_: u64, _op| async { Ok::<_, std::io::Error>(()) },
        Options::default()
            .max_concurrency(4)
            .signals(sink)
            .cancel_on_signals(["halt"]),
    )
    .await
    .unwrap();
    assert_eq!(read.load(SeqCst), 300);
    assert!(summary.cancelled >= 40, "{summary:?}");
    assert_eq!(summary.completed + summary.failed + summary.cancelled, 300);
}

#[tokio::test(start_paused = true)]
async fn for_each_keyed_stream_with_a_pending_limit_runs_every_item() {
    let read = Arc::new(AtomicU64::new(0));
    let summary = for_each_keyed_stream(
        counted(events(100), read.clone()),
        |(key, _): &(u32, u32)| *key,
        |_item, _op| async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, std::io::Error>(())
        },
        Options::default().max_concurrency(4).max_pending_per_key(2),
    )
    .await
    .unwrap();
    assert_eq!(read.load(SeqCst), 400);
    assert_eq!(
        (summary.completed, summary.cancelled),
        (400, 0),
        "{summary:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keyed_from_stream_reader_blocked_on_a_key_stops_at_cancel() {
    // The reader waits for a hot key's room while the coordinator is paused; a cancel ends
    // the wait, and the item it held counts as cancelled.
    let read = Arc::new(AtomicU64::new(0));
    let c = KeyedWorkCoordinator::from_stream(
        counted(vec![(0u32, 0u32), (0, 1), (0, 2), (1, 0)], read.clone()),
        |(key, _): &(u32, u32)| *key,
        |_item, _op| async { Ok::<_, std::io::Error>(()) },
        Options::default().max_concurrency(2).max_pending_per_key(2),
    );
    c.pause();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        read.load(SeqCst),
        3,
        "the reader waits on the third item of key 0"
    );
    c.cancel();
    tokio::time::timeout(Duration::from_secs(5), c.drain())
        .await
        .expect("a cancel ends the reader's wait");
    let stats = c.stats();
    assert_eq!(read.load(SeqCst), 3);
    assert_eq!(stats.cancelled, 3, "{stats:?}");
    assert_eq!(stats.enqueued, 3);
}

#[tokio::test(start_paused = true)]
async fn from_stream_item_read_as_the_coordinator_closes_is_counted() {
    // The stream is slow; the user completes the coordinator meanwhile: what was read is
    // accounted for, nothing more is read.
    let read = Arc::new(AtomicU64::new(0));
    let r = read.clone();
    let stream = futures::stream::iter(0..100u32).then(move |i| {
        let r = r.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            r.fetch_add(1, SeqCst);
            i
        }
    });
    let c = WorkCoordinator::from_stream(
        stream,
        |_: u32, _op| async { Ok::<_, std::io::Error>(()) },
        Options::default().max_concurrency(2),
    );
    tokio::time::sleep(Duration::from_millis(55)).await;
    c.complete();
    c.drain().await;
    let stats = c.stats();
    let read = read.load(SeqCst);
    assert!(read < 100);
    assert_eq!(
        stats.completed + stats.failed + stats.cancelled,
        read,
        "{stats:?}"
    );
}
