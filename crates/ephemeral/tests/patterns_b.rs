//! Patterns: `parse_retry_after` + `AdaptiveRate`, `ReactiveFanOut`, `ControlledFanOut`.

use ephemeral::patterns::{
    parse_retry_after, AdaptiveRate, ControlledFanOut, FanOutConfig, ReactiveFanOut,
};
use ephemeral::{Operation, Options, SignalSink, SignalSource};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[test]
fn parse_retry_after_table() {
    let cases: &[(&str, Option<u64>)] = &[
        ("rate-limit:250ms", Some(250)),
        ("rate-limit:0ms", Some(0)),
        ("rate-limit:  250ms  ", Some(250)),
        ("rate-limit:\t7ms\n", Some(7)),
        ("rate-limit:250MS", Some(250)),
        ("rate-limit:250Ms", Some(250)),
        ("anything-before:12ms", Some(12)),
        (":12ms", Some(12)),
        ("a:5ms:extra", None), // the part after the *first* colon is "5ms:extra"
        ("rate-limit:007ms", Some(7)),
        ("rate-limit:18446744073709551615ms", Some(u64::MAX)),
        ("rate-limit:18446744073709551616ms", None), // overflow
        ("rate-limit:99999999999999999999999ms", None),
        ("rate-limit:-5ms", None),
        ("rate-limit:+5ms", None),
        ("rate-limit:250", None),
        ("rate-limit:250s", None),
        ("rate-limit:ms", None),
        ("rate-limit:", None),
        ("rate-limit", None),
        ("250ms", None),
        ("rate-limit:2 50ms", None),
        ("rate-limit:250 ms", None),
        ("rate-limit:1.5ms", None),
        ("rate-limit:250msx", None),
        ("rate-limit:é5ms", None),
        ("rate-limit:5mé", None),
        ("", None),
    ];
    for &(input, expected) in cases {
        assert_eq!(
            parse_retry_after(input),
            expected.map(Duration::from_millis),
            "parse_retry_after({input:?})"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn adaptive_rate_waits_while_a_fresh_rate_limit_is_in_the_sink() {
    let sink = SignalSink::default();
    let rate = AdaptiveRate::new(
        |_: u32, _op| async {},
        Options::default().signals(sink.clone()),
    );

    // No signal: no wait.
    let t = Instant::now();
    rate.enqueue(0).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);

    sink.raise("rate-limit:300ms");
    tokio::time::sleep(100 * MS).await;
    let t = Instant::now();
    rate.enqueue(1).await.unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= 200 * MS && waited <= 205 * MS,
        "waited {waited:?}, want the 200 ms left of 300 ms"
    );

    // Now older than 300 ms: no wait.
    let t = Instant::now();
    rate.enqueue(2).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(rate.current_delay(), None);

    // Older than n already when enqueue is called: no wait.
    sink.raise("rate-limit:300ms");
    tokio::time::sleep(301 * MS).await;
    let t = Instant::now();
    rate.enqueue(3).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);

    // The newest signal decides: a later short one lifts an earlier long one.
    sink.raise("rate-limit:10000ms");
    tokio::time::sleep(MS).await;
    sink.raise("rate-limit:50ms");
    let t = Instant::now();
    rate.enqueue(4).await.unwrap();
    let waited = t.elapsed();
    assert!(waited >= 50 * MS && waited < 60 * MS, "waited {waited:?}");

    rate.coordinator().complete();
    rate.coordinator().drain().await;
    assert_eq!(rate.coordinator().total_completed(), 5);
}

#[tokio::test(start_paused = true)]
async fn adaptive_rate_obeys_a_rate_limit_emitted_by_its_own_body() {
    let rate = AdaptiveRate::new(
        |n: u32, op: Operation| async move {
            if n == 0 {
                op.emit("rate-limit:300ms");
            }
        },
        Options::default().max_concurrency(1),
    );
    rate.enqueue(0).await.unwrap();
    tokio::time::sleep(MS).await; // the body runs and emits
    assert!(rate.coordinator().has_signal("rate-limit:300ms"));
    let t = Instant::now();
    rate.enqueue(1).await.unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= 298 * MS && waited <= 300 * MS,
        "waited {waited:?}"
    );
    let t = Instant::now();
    rate.enqueue(2).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO, "older than 300 ms: no wait");
    rate.coordinator().complete();
    rate.coordinator().drain().await;
}

#[tokio::test(start_paused = true)]
async fn fan_out_drain_under_load_counts_every_item_once() {
    const ITEMS: u64 = 300;
    let stage2_runs = Arc::new(AtomicU64::new(0));
    let runs = stage2_runs.clone();
    let fan = ReactiveFanOut::new(
        |n: u64, _op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(n % 3)).await;
            if n % 7 == 0 {
                return Err("stage 1 failed");
            }
            Ok(n)
        },
        move |n: u64, _op: Operation| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(5 + n % 11)).await;
                if n % 5 == 0 {
                    return Err("stage 2 failed");
                }
                Ok(())
            }
        },
        FanOutConfig::default()
            .stage1_max(8)
            .stage2_max(2)
            .backpressure_threshold(6)
            .relief_threshold(2)
            .cooldown(50 * MS),
    );
    for n in 0..ITEMS {
        fan.enqueue(n).await.unwrap();
    }
    // Drain while stage 1 and stage 2 are both busy and stage 2's queue is full.
    tokio::time::sleep(20 * MS).await;
    assert!(fan.stage1().pending_count() > 0 || fan.stage1().active_count() > 0);
    fan.drain().await;

    let s1 = fan.stage1().stats();
    let s2 = fan.stage2().stats();
    let expect_failed1 = (0..ITEMS).filter(|n| n % 7 == 0).count() as u64;
    let expect_failed2 = (0..ITEMS).filter(|n| n % 7 != 0 && n % 5 == 0).count() as u64;
    assert_eq!(s1.enqueued, ITEMS);
    assert_eq!(
        (s1.failed, s1.cancelled, s2.cancelled),
        (expect_failed1, 0, 0)
    );
    assert_eq!(
        s1.completed, s2.enqueued,
        "every stage-1 result reached stage 2"
    );
    assert_eq!(s2.failed, expect_failed2);
    assert_eq!(s1.failed + s2.completed + s2.failed, ITEMS);
    assert_eq!(
        stage2_runs.load(SeqCst),
        s2.enqueued,
        "each run exactly once"
    );
    assert_eq!((s1.pending, s1.active, s2.pending, s2.active), (0, 0, 0, 0));
    assert!(fan.signals().has_signal("stage2.failed"));
    assert!(fan.signals().has_signal("stage2.backpressure"));
}

#[tokio::test(start_paused = true)]
async fn fan_out_stage1_drops_to_min_under_backpressure_and_returns_after_relief() {
    let sink = SignalSink::default();
    let fan = ReactiveFanOut::new(
        |n: u32, _op: Operation| async move { Ok::<_, std::io::Error>(n) },
        |_n: u32, _op: Operation| async move {
            tokio::time::sleep(100 * MS).await;
        },
        FanOutConfig::default()
            .stage1_max(6)
            .stage1_min(2)
            .stage2_max(1)
            .backpressure_threshold(5)
            .relief_threshold(2)
            .cooldown(200 * MS)
            .signals(sink.clone()),
    );
    assert_eq!(fan.stage1_max_concurrency(), 6);
    for n in 0..12 {
        fan.enqueue(n).await.unwrap();
    }
    tokio::time::sleep(10 * MS).await;
    assert!(
        fan.stage2_pending() >= 5,
        "stage 2 backed up: {}",
        fan.stage2_pending()
    );
    assert_eq!(fan.stage1_max_concurrency(), 2, "dropped to stage1_min");
    assert!(sink.has_signal("stage2.backpressure"));

    // While pending stays above relief, it stays at the minimum.
    let mut back_at_max = None;
    let start = Instant::now();
    while fan.stage2().total_completed() < 12 {
        if fan.stage2_pending() > 2 {
            assert_eq!(fan.stage1_max_concurrency(), 2, "no relief yet");
        } else if back_at_max.is_none() && fan.stage1_max_concurrency() == 6 {
            back_at_max = Some(start.elapsed());
        }
        tokio::time::sleep(10 * MS).await;
    }
    tokio::time::sleep(300 * MS).await;
    assert_eq!(
        fan.stage1_max_concurrency(),
        6,
        "back to stage1_max after relief"
    );
    assert!(back_at_max.is_some() || fan.stage1_max_concurrency() == 6);
    fan.drain().await;
}

#[tokio::test(start_paused = true)]
async fn fan_out_a_stage2_failed_signal_holds_stage1_at_min_for_the_cooldown() {
    let sink = SignalSink::default();
    let fan = ReactiveFanOut::new(
        |n: u32, _op: Operation| async move { Ok::<_, std::io::Error>(n) },
        |_n: u32, _op: Operation| async {},
        FanOutConfig::default()
            .cooldown(200 * MS)
            .signals(sink.clone()),
    );
    tokio::time::sleep(10 * MS).await;
    assert_eq!(fan.stage1_max_concurrency(), 8);
    sink.raise("stage2.failed");
    tokio::time::sleep(60 * MS).await; // a control tick at most 50 ms later
    assert_eq!(fan.stage1_max_concurrency(), 1);
    tokio::time::sleep(100 * MS).await; // 160 ms after the signal: still cooling down
    assert_eq!(fan.stage1_max_concurrency(), 1);
    tokio::time::sleep(100 * MS).await; // 260 ms: relieved
    assert_eq!(fan.stage1_max_concurrency(), 8);
    fan.drain().await;
}

#[tokio::test(start_paused = true)]
async fn fan_out_stage2_failures_raise_stage2_failed() {
    let fan = ReactiveFanOut::new(
        |n: u32, _op: Operation| async move { Ok::<_, std::io::Error>(n) },
        |n: u32, _op: Operation| async move {
            if n == 1 {
                Err("no")
            } else {
                Ok(())
            }
        },
        FanOutConfig::default(),
    );
    fan.enqueue(0).await.unwrap();
    fan.drain().await;
    assert!(!fan.signals().has_signal("stage2.failed"));
    let fan2 = ReactiveFanOut::new(
        |n: u32, _op: Operation| async move { Ok::<_, std::io::Error>(n) },
        |n: u32, _op: Operation| async move {
            if n == 1 {
                Err("no")
            } else {
                Ok(())
            }
        },
        FanOutConfig::default(),
    );
    fan2.enqueue(1).await.unwrap();
    fan2.drain().await;
    assert_eq!(fan2.signals().count_signals("stage2.failed"), 1);
    assert_eq!(fan2.stage2().total_failed(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_fan_out_completes_both_stages_and_runs_queued_items() {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let fan = ReactiveFanOut::new(
        |n: u32, _op: Operation| async move { Ok::<_, std::io::Error>(n) },
        move |_n: u32, _op: Operation| {
            let d = d.clone();
            async move {
                tokio::time::sleep(10 * MS).await;
                d.fetch_add(1, SeqCst);
            }
        },
        FanOutConfig::default(),
    );
    for n in 0..5 {
        fan.enqueue(n).await.unwrap();
    }
    let (s1, s2) = (fan.stage1().clone(), fan.stage2().clone());
    drop(fan);
    assert!(s1.is_completed());
    s1.drain().await;
    s2.drain().await;
    assert!(s2.is_completed());
    assert_eq!(done.load(SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn controlled_fan_out_keeps_the_per_key_and_global_caps() {
    #[derive(Default)]
    struct Seen {
        per_key: HashMap<u32, usize>,
        global: usize,
        max_per_key: usize,
        max_global: usize,
    }
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let fan = ControlledFanOut::new(
        |item: &(u32, u32)| item.0,
        move |item: (u32, u32), _op: Operation| {
            let s = s.clone();
            async move {
                {
                    let mut g = s.lock().unwrap();
                    let k = g.per_key.entry(item.0).or_default();
                    *k += 1;
                    let k = *k;
                    g.global += 1;
                    g.max_per_key = g.max_per_key.max(k);
                    g.max_global = g.max_global.max(g.global);
                }
                tokio::time::sleep(Duration::from_millis(10 + u64::from(item.1 % 3))).await;
                let mut g = s.lock().unwrap();
                *g.per_key.get_mut(&item.0).unwrap() -= 1;
                g.global -= 1;
            }
        },
        5,
        2,
    );
    for i in 0..60 {
        fan.enqueue((i % 4, i)).await.unwrap();
    }
    // One hot key alone: limited by the per-key cap.
    for i in 0..10 {
        fan.enqueue((99, i)).await.unwrap();
    }
    fan.drain().await;
    let g = seen.lock().unwrap();
    assert_eq!(fan.coordinator().total_completed(), 70);
    assert_eq!(g.max_per_key, 2, "per-key cap reached and never exceeded");
    assert_eq!(g.max_global, 5, "global cap reached and never exceeded");
    assert!(fan.coordinator().is_completed());
}

mod parse_retry_after_prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_u64_in_any_case_with_any_padding_parses(
            n: u64,
            prefix in "[a-z.-]{0,12}",
            unit in "(ms|MS|mS|Ms)",
            left in "[ \t]{0,3}",
            right in "[ \t]{0,3}",
        ) {
            let signal = format!("{prefix}:{left}{n}{unit}{right}");
            prop_assert_eq!(parse_retry_after(&signal), Some(Duration::from_millis(n)));
        }

        #[test]
        fn negative_or_unitless_numbers_do_not_parse(n in 1u64..) {
            let negative = format!("rate-limit:-{n}ms");
            let unitless = format!("rate-limit:{n}");
            let seconds = format!("rate-limit:{n}s");
            prop_assert_eq!(parse_retry_after(&negative), None);
            prop_assert_eq!(parse_retry_after(&unitless), None);
            prop_assert_eq!(parse_retry_after(&seconds), None);
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_retry_after(&s);
        }
    }
}
