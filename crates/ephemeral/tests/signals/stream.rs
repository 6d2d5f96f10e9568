//! `SignalSink::stream`: order, bounded lossy buffering (oldest dropped and counted), wake-ups,
//! the end of the stream, and unsubscribing on drop.

use ephemeral::{SignalEvent, SignalSink, SignalStream};
use futures::StreamExt;
use std::time::Duration;

fn seq(evt: &SignalEvent) -> usize {
    evt.key().unwrap().parse().unwrap()
}

fn raise_seq(sink: &SignalSink, i: usize) {
    sink.raise_with_key("tick", i.to_string());
}

#[tokio::test]
async fn events_arrive_in_raise_order() {
    let sink = SignalSink::new(10, Duration::from_secs(60));
    let mut stream = sink.stream(1_000);
    for i in 0..1_000 {
        raise_seq(&sink, i);
    }
    let mut got = Vec::new();
    for _ in 0..1_000 {
        got.push(seq(&stream.next().await.unwrap()));
    }
    assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    assert_eq!(stream.dropped(), 0);
    // The stream sees every raise, not only what the (smaller) sink window keeps.
    assert_eq!(sink.len(), 10);
}

#[tokio::test]
async fn only_events_raised_after_the_stream_was_made_arrive() {
    let sink = SignalSink::default();
    sink.raise("before");
    let mut stream = sink.stream(8);
    sink.raise("after");
    assert_eq!(stream.len(), 1);
    assert_eq!(stream.recv().await.unwrap().signal(), "after");
    assert!(stream.is_empty());
}

#[tokio::test]
async fn a_burst_drops_the_oldest_waiting_events_and_counts_them() {
    let sink = SignalSink::default();
    let mut stream = sink.stream(8);
    assert_eq!(stream.capacity(), 8);
    for i in 0..100 {
        raise_seq(&sink, i);
    }
    assert_eq!(stream.len(), 8);
    assert_eq!(stream.dropped(), 92);
    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(seq(&stream.recv().await.unwrap()));
    }
    assert_eq!(got, (92..100).collect::<Vec<_>>());

    // Room again: nothing more is dropped while the consumer keeps up.
    raise_seq(&sink, 100);
    assert_eq!(seq(&stream.recv().await.unwrap()), 100);
    assert_eq!(stream.dropped(), 92);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_loses_only_counted_events_and_never_reorders() {
    const N: usize = 20_000;
    let sink = SignalSink::default();
    let mut stream = sink.stream(16);
    let producer = tokio::spawn(async move {
        for i in 0..N {
            raise_seq(&sink, i);
            if i % 1_000 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // The last sink handle goes with the producer: the stream ends.
    });
    let mut got = Vec::new();
    while let Some(evt) = stream.next().await {
        got.push(seq(&evt));
        if got.len() % 16 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    producer.await.unwrap();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "reordered");
    assert_eq!(
        got.last(),
        Some(&(N - 1)),
        "the newest event is never dropped"
    );
    assert_eq!(got.len() as u64 + stream.dropped(), N as u64);
    assert!(
        stream.dropped() > 0,
        "the consumer was meant to fall behind"
    );
}

#[tokio::test]
async fn a_waiting_consumer_is_woken_by_a_raise() {
    let sink = SignalSink::default();
    let mut stream = sink.stream(4);
    let waiter = tokio::spawn(async move { stream.recv().await.map(|e| e.signal().to_string()) });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    sink.raise("wake");
    assert_eq!(waiter.await.unwrap().as_deref(), Some("wake"));
}

#[tokio::test]
async fn the_stream_ends_once_every_sink_handle_is_gone_after_the_waiting_events() {
    let sink = SignalSink::default();
    let other = sink.clone();
    let mut stream = sink.stream(4);
    sink.raise("a");
    drop(sink);
    // A handle remains: after "a", the stream waits.
    assert_eq!(stream.recv().await.unwrap().signal(), "a");
    let pending = tokio::time::timeout(Duration::from_millis(20), stream.recv()).await;
    assert!(
        pending.is_err(),
        "the stream ended while a sink handle lived"
    );

    other.raise("b");
    drop(other);
    assert_eq!(futures::Stream::size_hint(&stream), (1, Some(1)));
    assert_eq!(stream.recv().await.unwrap().signal(), "b");
    assert!(stream.recv().await.is_none());
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_consumer_waiting_when_the_last_handle_goes_sees_the_end() {
    let sink = SignalSink::default();
    let mut stream = sink.stream(4);
    let waiter = tokio::spawn(async move { stream.recv().await });
    tokio::task::yield_now().await;
    drop(sink);
    assert!(waiter.await.unwrap().is_none());
}

#[tokio::test]
async fn dropping_a_stream_leaves_the_sink_and_other_streams_working() {
    let sink = SignalSink::default();
    let first = sink.stream(4);
    let mut second = sink.stream(4);
    sink.raise("a");
    drop(first);
    sink.raise("b");
    assert_eq!(second.recv().await.unwrap().signal(), "a");
    assert_eq!(second.recv().await.unwrap().signal(), "b");
    assert_eq!(sink.len(), 2);
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn zero_capacity_is_refused() {
    let _ = SignalSink::default().stream(0);
}

#[test]
fn the_stream_is_send_sync_and_unpin() {
    fn is<T: Send + Sync + Unpin + std::fmt::Debug>() {}
    is::<SignalStream>();
}
