//! A short tour of `ephemeral`: patterns, a shared sink, a work coordinator with live
//! counters, a failing item, signals and snapshots, then per-key ordering and a rejected hot
//! key.
//!
//! Run with `cargo run --release --example tour`.

use ephemeral::pattern::{matches, matches_any};
use ephemeral::{
    EnqueueError, KeyedWorkCoordinator, Operation, Options, SignalSink, SignalSource,
    TryEnqueueError, WorkCoordinator,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::main]
async fn main() {
    println!("== patterns ==");
    for (text, pattern) in [
        ("http.error.503", "http.error.*"),
        ("progress:7", "progress:?"),
        ("HTTP.error.503", "http.*"),
    ] {
        println!("  {text:<16} ~ {pattern:<14} -> {}", matches(text, pattern));
    }
    println!(
        "  matches_any(\"circuit-open\", [\"system-overload, circuit-*\"]) -> {}",
        matches_any("circuit-open", ["system-overload, circuit-*"])
    );

    println!("\n== a shared sink ==");
    let sink = SignalSink::new(1000, Duration::from_secs(60));
    let _watch = sink.subscribe(|evt| {
        if evt.matches("http.error.*") {
            println!("  [subscriber] saw {}", evt.signal());
        }
    });
    sink.raise("system-maintenance");
    println!(
        "  detect(\"system-maintenance\") -> {}",
        sink.detect("system-maintenance")
    );

    println!("\n== a work coordinator ==");
    let coordinator = WorkCoordinator::new(
        |n: u32, op: Operation| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if n % 7 == 0 {
                op.emit("cache-miss");
            }
            if n == 13 {
                op.emit("http.error.503");
                return Err(format!("item {n}: upstream answered 503"));
            }
            Ok(())
        },
        Options::default()
            .max_concurrency(4)
            .max_tracked_operations(50)
            .signals(sink.clone())
            .name("tour"),
    );
    for n in 0..40 {
        coordinator.enqueue(n).await.expect("open coordinator");
        if n % 10 == 9 {
            let s = coordinator.stats();
            println!(
                "  live: pending={:<3} active={} completed={:<3} failed={}",
                s.pending, s.active, s.completed, s.failed
            );
        }
    }
    coordinator.complete();
    coordinator.drain().await;
    let s = coordinator.stats();
    println!(
        "  drained: enqueued={} completed={} failed={} cancelled={}",
        s.enqueued, s.completed, s.failed, s.cancelled
    );
    for failed in coordinator.failed() {
        println!(
            "  failed op {} after {:?}: {} (signals {:?})",
            failed.id(),
            failed.duration().unwrap_or_default(),
            failed.error().map(ToString::to_string).unwrap_or_default(),
            failed.signals()
        );
    }
    println!(
        "  window signals: cache-miss x{}, http.error.* x{}",
        coordinator.count_signals("cache-miss"),
        coordinator.count_signals_matching("http.error.*")
    );
    println!(
        "  sink holds {} events (it saw every operation signal too)",
        sink.len()
    );
    let snapshot = coordinator.snapshot();
    println!(
        "  snapshot: {} operations, first {:?}",
        snapshot.len(),
        snapshot.first().map(|s| s.id())
    );

    println!("\n== cancel-on-signal ==");
    let guarded = WorkCoordinator::new(
        |_: u32, _op| async { Ok::<_, std::io::Error>(()) },
        Options::default()
            .cancel_on_signals(["circuit-open"])
            .signals(sink.clone()),
    );
    sink.raise("circuit-open");
    match guarded.enqueue(1).await {
        Err(EnqueueError::Rejected(item)) => {
            println!("  item {item} rejected while circuit-open is present")
        }
        other => println!("  unexpected: {other:?}"),
    }
    sink.clear();
    println!(
        "  after clearing the sink: {:?}",
        guarded.enqueue(2).await.map(|_| "accepted")
    );

    println!("\n== per-key order and a hot key ==");
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let commands = KeyedWorkCoordinator::new(
        |cmd: &(&'static str, u32)| cmd.0,
        move |cmd: (&'static str, u32), _op: Operation| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                seen.lock().expect("log").push(cmd);
                Ok::<_, std::io::Error>(())
            }
        },
        Options::default().max_concurrency(4).max_pending_per_key(3),
    );
    commands.pause();
    for seq in 0..5 {
        match commands.try_enqueue(("hot-user", seq)) {
            Ok(_) => {}
            Err(TryEnqueueError::KeyOverloaded(cmd)) => {
                println!("  rejected {cmd:?}: hot key has 3 pending")
            }
            Err(e) => println!("  unexpected: {e}"),
        }
    }
    for seq in 0..3 {
        commands
            .try_enqueue(("alice", seq))
            .expect("room for alice");
    }
    commands.resume();
    commands.complete();
    commands.drain().await;
    let log = log.lock().expect("log");
    for user in ["hot-user", "alice"] {
        let order: Vec<u32> = log
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(_, s)| *s)
            .collect();
        println!("  {user:<9} ran in order {order:?}");
    }
}
