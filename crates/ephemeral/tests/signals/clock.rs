//! `ephemeral::now()`: the library's clock follows tokio's (paused) clock, and event timestamps,
//! query bounds and sink ages all agree with it.

use ephemeral::{OperationId, SignalEvent, SignalSink, SignalSource};
use std::time::Duration;

fn names(events: &[SignalEvent]) -> Vec<&str> {
    events.iter().map(SignalEvent::signal).collect()
}

#[tokio::test(start_paused = true)]
async fn now_follows_the_paused_clock() {
    let before = ephemeral::now();
    let wall = std::time::SystemTime::now();
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(
        ephemeral::now().duration_since(before).unwrap(),
        Duration::from_secs(3600)
    );
    // The wall clock did not move an hour.
    assert!(std::time::SystemTime::now().duration_since(wall).unwrap() < Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn raised_events_are_stamped_with_now() {
    let sink = SignalSink::default();
    tokio::time::advance(Duration::from_secs(5)).await;
    let at = ephemeral::now();
    let evt = sink.raise("x");
    assert_eq!(evt.timestamp(), at);
}

#[tokio::test(start_paused = true)]
async fn query_bounds_taken_from_now_split_events_by_the_paused_clock() {
    let sink = SignalSink::new(100, Duration::from_secs(3600));
    let before = ephemeral::now();
    sink.raise("early");
    tokio::time::advance(Duration::from_secs(30)).await;
    let since = ephemeral::now();
    sink.raise("late");

    assert_eq!(names(&sink.signals_since(ephemeral::now())), ["late"]);
    assert_eq!(
        names(&sink.signals_between(before, ephemeral::now())),
        ["early", "late"]
    );

    tokio::time::advance(Duration::from_secs(1)).await;
    sink.raise("later");
    assert_eq!(names(&sink.signals_since(since)), ["late", "later"]);
    assert_eq!(
        names(&sink.signals_between(before, since)),
        ["early", "late"]
    );
    assert_eq!(
        names(&sink.signals_between(before, ephemeral::now())),
        ["early", "late", "later"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_hand_made_event_stamped_with_now_is_fresh_on_the_paused_clock() {
    let sink = SignalSink::new(100, Duration::from_secs(60));
    tokio::time::advance(Duration::from_secs(70)).await;
    sink.raise_event(SignalEvent::new(
        "hand-made",
        OperationId::next(),
        None,
        ephemeral::now(),
    ));
    assert!(sink.detect("hand-made"));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(sink.detect("hand-made"));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!sink.detect("hand-made"));
}

#[tokio::test(start_paused = true)]
async fn an_event_from_the_future_stays_until_its_timestamp_plus_max_age() {
    let sink = SignalSink::new(100, Duration::from_secs(60));
    let at = ephemeral::now() + Duration::from_secs(30);
    sink.raise_event(SignalEvent::new("planned", OperationId::next(), None, at));
    sink.raise("now");
    assert_eq!(sink.len(), 2);

    tokio::time::advance(Duration::from_secs(61)).await;
    // The ordinary event has expired; the one stamped 30 s ahead has 29 s left.
    assert_eq!(names(&sink.signals()), ["planned"]);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(sink.detect("planned"));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!sink.detect("planned"));
    assert!(sink.is_empty());
}
