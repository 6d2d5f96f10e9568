//! Signal hot paths: raising on a sink, glob matching, and a pattern query over a full window.
//!
//! Run with `cargo bench -p ephemeral-benches --bench signals -- --warm-up-time 1
//! --measurement-time 3`. After criterion, a plain loop times `raise` and `emit` (no criterion
//! harness around each call): `EPHEMERAL_BENCH_LOOP=0` skips it; with `--loop-only` it runs
//! alone.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, Criterion};
use ephemeral::pattern::{self, Pattern};
use ephemeral::{SignalSink, SignalSource};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn raise(c: &mut Criterion) {
    let mut group = c.benchmark_group("sink_raise");
    let name: Arc<str> = Arc::from("http.error.503");

    // A full sink: every raise also evicts the oldest event, the steady state.
    let full = |sink: &SignalSink| {
        for _ in 0..sink.max_capacity() {
            sink.raise("warm-up");
        }
    };

    let sink = SignalSink::default();
    full(&sink);
    group.bench_function("no_subscriber/arc_name", |b| {
        b.iter(|| sink.raise(black_box(&name).clone()));
    });
    group.bench_function("no_subscriber/static_str", |b| {
        b.iter(|| sink.raise(black_box("http.error.503")));
    });
    group.bench_function("no_subscriber/emit_static_str", |b| {
        b.iter(|| sink.emit(black_box("http.error.503")));
    });
    group.bench_function("no_subscriber/emit_arc_name", |b| {
        b.iter(|| sink.emit(black_box(&name)));
    });

    let sink = SignalSink::default();
    full(&sink);
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let _subscription = sink.subscribe(move |_evt| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    group.bench_function("one_subscriber/arc_name", |b| {
        b.iter(|| sink.raise(black_box(&name).clone()));
    });
    group.bench_function("one_subscriber/static_str", |b| {
        b.iter(|| sink.raise(black_box("http.error.503")));
    });
    group.bench_function("one_subscriber/emit_static_str", |b| {
        b.iter(|| sink.emit(black_box("http.error.503")));
    });
    group.finish();
    // (Zero when a filter skipped these benches.)
    black_box(seen.load(Ordering::Relaxed));
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("pattern");
    group.bench_function("typical/free_fn", |b| {
        b.iter(|| pattern::matches(black_box("http.error.503"), black_box("http.error.*")));
    });
    let compiled = Pattern::new("http.error.*");
    group.bench_function("typical/compiled", |b| {
        b.iter(|| black_box(&compiled).matches(black_box("http.error.503")));
    });
    let general = Pattern::new("http.*.50?");
    group.bench_function("general/compiled", |b| {
        b.iter(|| black_box(&general).matches(black_box("http.error.503")));
    });

    let text = "a".repeat(64);
    group.bench_function("pathological/free_fn", |b| {
        b.iter(|| pattern::matches(black_box(&text), black_box("*a*a*a*a*a*b")));
    });
    let compiled = Pattern::new("*a*a*a*a*a*b");
    group.bench_function("pathological/compiled", |b| {
        b.iter(|| black_box(&compiled).matches(black_box(&text)));
    });
    group.finish();
}

fn query(c: &mut Criterion) {
    let sink = SignalSink::new(1000, Duration::from_secs(3600));
    let names = [
        "http.error.503",
        "http.ok",
        "cache-hit",
        "http.error.502",
        "rate-limit",
    ];
    for i in 0..200 {
        sink.raise(names[i % names.len()]);
    }
    assert_eq!(sink.len(), 200);
    assert_eq!(sink.count_signals_matching("http.error.*"), 80);
    c.bench_function("query/count_signals_matching_200", |b| {
        b.iter(|| sink.count_signals_matching(black_box("http.error.*")));
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = raise, matching, query
}
/// Times `n` calls of `f` in a plain loop; ns per call, the median of 5 runs.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = std::time::Instant::now();
            for _ in 0..n {
                f();
            }
            t0.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

/// `raise` and `emit` in a plain loop on a full sink, without and with one subscriber.
fn plain_loop() {
    const N: u32 = 2_000_000;
    let name: Arc<str> = Arc::from("http.error.503");
    println!("\n## sink raise in a plain loop ({N} calls, median of 5 runs, full sink of 1000)\n");
    println!("| call | no subscriber ns | one subscriber ns |");
    println!("|---|--:|--:|");
    let make = |subscribed: bool| {
        let sink = SignalSink::default();
        for _ in 0..sink.max_capacity() {
            sink.raise("warm-up");
        }
        let sub = subscribed.then(|| {
            sink.subscribe(|e| {
                black_box(e);
            })
        });
        (sink, sub)
    };
    type Call = fn(&SignalSink, &Arc<str>);
    let calls: [(&str, Call); 4] = [
        ("raise(&'static str)", |s, _| {
            black_box(s.raise(black_box("http.error.503")));
        }),
        ("raise(Arc<str>)", |s, n| {
            black_box(s.raise(black_box(n).clone()));
        }),
        ("emit(&'static str)", |s, _| {
            s.emit(black_box("http.error.503"))
        }),
        ("emit(&Arc<str>)", |s, n| s.emit(black_box(n))),
    ];
    for (label, call) in calls {
        let (plain, _none) = make(false);
        let (told, _sub) = make(true);
        let a = per_call(N, || call(&plain, &name));
        let b = per_call(N, || call(&told, &name));
        println!("| {label} | {a:.1} | {b:.1} |");
    }
    // Every raise stamps its event (ages are exact), so one clock read is its floor. Outside a
    // runtime `tokio::time::Instant::now` is the std clock, as the loop above reads it.
    let clock = per_call(N, || {
        black_box(tokio::time::Instant::now());
    });
    let id = per_call(N, || {
        black_box(ephemeral::OperationId::next());
    });
    println!(
        "\nfloor: one clock read {clock:.1} ns, one operation id {id:.1} ns \
         (every event gets both)"
    );
}

fn main() {
    let loop_only = std::env::args().any(|a| a == "--loop-only");
    if !loop_only {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    if std::env::var("EPHEMERAL_BENCH_LOOP").as_deref() != Ok("0") {
        plain_loop();
    }
}
