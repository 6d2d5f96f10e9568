//! The work path: items through our coordinators and one-shot runs and through plain tokio /
//! futures shapes, in the same process, on a 2-worker multi-thread runtime at concurrency 8,
//! each with two bodies: a trivial one and one that awaits `tokio::task::yield_now()` once.
//!
//! Two parts:
//! 1. criterion groups (`cargo bench -p ephemeral-benches --bench coordinator`), trivial body;
//! 2. a report printed after them: interleaved rounds of every shape and body, with ns/item,
//!    the ratio to `buffer_unordered(8)` (coordinators) and to `for_each_concurrent(8)`
//!    (one-shot runs), voluntary context switches per 1000 items (`csw/1k`), the cost of
//!    one read of the clock every tracked operation needs set against what a 1.3× target
//!    leaves per item, and a resident-memory probe while 10,000,000 items pass through a
//!    coordinator.
//!
//! The report alone: `cargo bench -p ephemeral-benches --bench coordinator -- --report`
//! (skips criterion); a short form: `-- --quick` (200,000 items, 3 rounds, no memory probe).
//!
//! Every shape runs as a task spawned on the runtime (the producer of an application is a task
//! too), so no third `block_on` thread competes with the runtime's two for the two cores.
//!
//! Knobs: `EPHEMERAL_BENCH_REPORT=0` skips the report; `EPHEMERAL_BENCH_ROUNDS` sets the rounds
//! (default 5); `EPHEMERAL_BENCH_ITEMS` the items per run (default 1,000,000);
//! `EPHEMERAL_BENCH_QUICK=1` is `--quick`; `EPHEMERAL_BENCH_ONLY=Work,mpsc` keeps the two
//! baselines and the shapes whose names contain one of the given parts;
//! `EPHEMERAL_BENCH_BODY=trivial` (or `yield`) runs one body only; `EPHEMERAL_BENCH_RSS=0` skips
//! the memory probe; `EPHEMERAL_BENCH_THREADS=1` uses a current-thread runtime.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, Criterion};
use ephemeral::{
    for_each, for_each_keyed, for_each_stream, KeyedWorkCoordinator, Operation, Options,
    WorkCoordinator,
};
use futures::StreamExt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Semaphore};

const ITEMS: u64 = 1_000_000;
const QUICK_ITEMS: u64 = 200_000;
const CONCURRENCY: usize = 8;
const KEYS: u64 = 10_000;

type Io = std::io::Error;

fn runtime() -> Runtime {
    // `EPHEMERAL_BENCH_THREADS=1`: a current-thread runtime instead, to separate the cost of
    // the work itself from the cost of handing it across cores.
    if std::env::var("EPHEMERAL_BENCH_THREADS").as_deref() == Ok("1") {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The body every shape runs: trivial, or one `yield_now` (a body that suspends once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Trivial,
    Yield,
}

impl Body {
    fn name(self) -> &'static str {
        match self {
            Body::Trivial => "trivial",
            Body::Yield => "yield",
        }
    }

    async fn run(self, n: u64) {
        black_box(n);
        if self == Body::Yield {
            tokio::task::yield_now().await;
        }
    }
}

fn options() -> Options {
    Options::default()
        .max_concurrency(CONCURRENCY)
        .queue_capacity(1024)
}

/// Our coordinator, full tracking (window of 200, signals off).
async fn ours(items: u64, body: Body) {
    let c = WorkCoordinator::new(
        move |n: u64, _op: Operation| async move {
            body.run(n).await;
            Ok::<_, Io>(())
        },
        options(),
    );
    for n in 0..items {
        if c.enqueue(n).await.is_err() {
            unreachable!("open coordinator");
        }
    }
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), items);
}

/// Our keyed coordinator: items spread over `KEYS` keys, per-key cap 1, global cap 8.
async fn ours_keyed(items: u64, body: Body) {
    let c = KeyedWorkCoordinator::new(
        |n: &u64| n % KEYS,
        move |n: u64, _op: Operation| async move {
            body.run(n).await;
            Ok::<_, Io>(())
        },
        options().max_concurrency_per_key(1),
    );
    for n in 0..items {
        if c.enqueue(n).await.is_err() {
            unreachable!("open coordinator");
        }
    }
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), items);
}

/// Our one-shot `for_each`.
async fn ours_for_each(items: u64, body: Body) {
    let summary = for_each(
        0..items,
        move |n: u64, _op: Operation| async move {
            body.run(n).await;
            Ok::<_, Io>(())
        },
        options(),
    )
    .await
    .expect("not cancelled");
    assert_eq!(summary.completed, items);
}

/// Our one-shot `for_each_stream`.
async fn ours_for_each_stream(items: u64, body: Body) {
    let summary = for_each_stream(
        futures::stream::iter(0..items),
        move |n: u64, _op: Operation| async move {
            body.run(n).await;
            Ok::<_, Io>(())
        },
        options(),
    )
    .await
    .expect("not cancelled");
    assert_eq!(summary.completed, items);
}

/// Our one-shot `for_each_keyed`: items spread over `KEYS` keys, per-key cap 1.
async fn ours_for_each_keyed(items: u64, body: Body) {
    let summary = for_each_keyed(
        0..items,
        |n: &u64| n % KEYS,
        move |n: u64, _op: Operation| async move {
            body.run(n).await;
            Ok::<_, Io>(())
        },
        options().max_concurrency_per_key(1),
    )
    .await
    .expect("not cancelled");
    assert_eq!(summary.completed, items);
}

/// `futures::StreamExt::buffer_unordered(8)`: in-task concurrency, no hand-off.
async fn buffer_unordered(items: u64, body: Body) {
    futures::stream::iter(0..items)
        .map(|n| body.run(n))
        .buffer_unordered(CONCURRENCY)
        .for_each(|()| async {})
        .await;
}

/// `futures::StreamExt::for_each_concurrent(8)`: in-task concurrency, no hand-off.
async fn for_each_concurrent(items: u64, body: Body) {
    futures::stream::iter(0..items)
        .for_each_concurrent(CONCURRENCY, |n| body.run(n))
        .await;
}

/// A `Semaphore` permit and a `tokio::spawn` per item.
async fn spawn_per_item(items: u64, body: Body) {
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    for n in 0..items {
        let permit = sem.clone().acquire_owned().await.expect("open semaphore");
        tokio::spawn(async move {
            body.run(n).await;
            drop(permit);
        });
    }
    let _all = sem
        .acquire_many(CONCURRENCY as u32)
        .await
        .expect("open semaphore");
}

/// A tokio mpsc(1024) feeding 8 workers that share the receiver behind a mutex.
async fn mpsc_pool(items: u64, body: Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    match next {
                        Some(n) => body.run(n).await,
                        None => break,
                    }
                }
            })
        })
        .collect();
    for n in 0..items {
        tx.send(n).await.expect("workers alive");
    }
    drop(tx);
    for w in workers {
        w.await.expect("worker");
    }
}

type ShapeFut = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
type ShapeFn = fn(u64, Body) -> ShapeFut;

/// What a shape's ratio is taken against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Against {
    /// A baseline itself.
    Baseline,
    /// `buffer_unordered(8)` (coordinators and plain pools).
    BufferUnordered,
    /// `for_each_concurrent(8)` (one-shot runs).
    ForEachConcurrent,
}

struct Shape {
    name: &'static str,
    run: ShapeFn,
    against: Against,
}

const BUFFER_UNORDERED: &str = "buffer_unordered(8)";
const FOR_EACH_CONCURRENT: &str = "for_each_concurrent(8)";

fn shapes() -> Vec<Shape> {
    let shape = |name, run, against| Shape { name, run, against };
    vec![
        shape(
            BUFFER_UNORDERED,
            (|n, b| Box::pin(buffer_unordered(n, b))) as ShapeFn,
            Against::Baseline,
        ),
        shape(
            FOR_EACH_CONCURRENT,
            |n, b| Box::pin(for_each_concurrent(n, b)),
            Against::Baseline,
        ),
        shape(
            "ephemeral for_each",
            |n, b| Box::pin(ours_for_each(n, b)),
            Against::ForEachConcurrent,
        ),
        shape(
            "ephemeral for_each_stream",
            |n, b| Box::pin(ours_for_each_stream(n, b)),
            Against::ForEachConcurrent,
        ),
        shape(
            "ephemeral for_each_keyed (10k keys)",
            |n, b| Box::pin(ours_for_each_keyed(n, b)),
            Against::ForEachConcurrent,
        ),
        shape(
            "ephemeral WorkCoordinator",
            |n, b| Box::pin(ours(n, b)),
            Against::BufferUnordered,
        ),
        shape(
            "ephemeral KeyedWorkCoordinator (10k keys)",
            |n, b| Box::pin(ours_keyed(n, b)),
            Against::BufferUnordered,
        ),
        shape(
            "tokio mpsc + 8 workers",
            |n, b| Box::pin(mpsc_pool(n, b)),
            Against::BufferUnordered,
        ),
        shape(
            "Semaphore + spawn per item",
            |n, b| Box::pin(spawn_per_item(n, b)),
            Against::BufferUnordered,
        ),
    ]
}

/// Runs a shape as a task of the runtime (as the producer would be in an application, e.g. an
/// axum handler), so producer and consumers share the runtime's two threads instead of a third
/// `block_on` thread competing for the two cores.
fn run_shape(rt: &Runtime, shape: ShapeFn, items: u64, body: Body) {
    rt.block_on(async move { tokio::spawn(shape(items, body)).await })
        .expect("shape panicked");
}

fn work_path(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("work_1M");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(criterion::Throughput::Elements(ITEMS));
    for shape in shapes() {
        let run = shape.run;
        group.bench_function(shape.name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    run_shape(&rt, run, ITEMS, Body::Trivial);
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, work_path);

/// Voluntary context switches of every thread of this process so far.
fn voluntary_csw() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// Resident set size in kB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

/// The first line of `/proc/loadavg` (the machine's load when the report ran).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v != "0" && !v.is_empty())
}

fn quick() -> bool {
    env_flag("EPHEMERAL_BENCH_QUICK") || std::env::args().any(|a| a == "--quick")
}

fn report() {
    let quick = quick();
    let rounds: usize = std::env::var("EPHEMERAL_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 3 } else { 5 });
    let items: u64 = std::env::var("EPHEMERAL_BENCH_ITEMS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { QUICK_ITEMS } else { ITEMS });
    let bodies: Vec<Body> = match std::env::var("EPHEMERAL_BENCH_BODY").as_deref() {
        Ok("trivial") => vec![Body::Trivial],
        Ok("yield") => vec![Body::Yield],
        _ => vec![Body::Trivial, Body::Yield],
    };
    let rt = runtime();
    // `EPHEMERAL_BENCH_ONLY=a,b` keeps the baselines plus the shapes whose names contain a or b.
    let only: Vec<String> = std::env::var("EPHEMERAL_BENCH_ONLY")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let shapes: Vec<Shape> = shapes()
        .into_iter()
        .filter(|s| {
            s.against == Against::Baseline
                || only.is_empty()
                || only.iter().any(|o| s.name.contains(o.as_str()))
        })
        .collect();
    // ns[body][shape] = one figure per round.
    let mut ns = vec![vec![Vec::new(); shapes.len()]; bodies.len()];
    let mut csw = vec![vec![Vec::new(); shapes.len()]; bodies.len()];
    let load_before = load();
    // Warm-up: every shape once on a few items.
    for body in &bodies {
        for s in &shapes {
            run_shape(&rt, s.run, 10_000, *body);
        }
    }
    for _ in 0..rounds {
        for (b, body) in bodies.iter().enumerate() {
            for (i, s) in shapes.iter().enumerate() {
                let c0 = voluntary_csw();
                let t0 = Instant::now();
                run_shape(&rt, s.run, items, *body);
                let elapsed = t0.elapsed();
                let c1 = voluntary_csw();
                ns[b][i].push(elapsed.as_nanos() as f64 / items as f64);
                csw[b][i].push((c1 - c0) as f64 * 1000.0 / items as f64);
            }
        }
    }
    let load_after = load();
    let threads = if std::env::var("EPHEMERAL_BENCH_THREADS").as_deref() == Ok("1") {
        "current-thread runtime"
    } else {
        "2 runtime threads"
    };
    println!(
        "\n## work path: {items} items, concurrency {CONCURRENCY}, {threads}, median of {rounds} \
         interleaved rounds (load average before: {load_before}; after: {load_after})\n"
    );
    let position = |name: &str| shapes.iter().position(|s| s.name == name);
    let (bu, fec) = (position(BUFFER_UNORDERED), position(FOR_EACH_CONCURRENT));
    for (b, body) in bodies.iter().enumerate() {
        let meds: Vec<f64> = ns[b].iter().map(|v| median(v)).collect();
        println!("### body: {}\n", body.name());
        println!("| shape | ns/item | ratio | against | csw/1k | spread (min–max ns) |");
        println!("|---|--:|--:|---|--:|---|");
        for (i, s) in shapes.iter().enumerate() {
            let (base, label) = match s.against {
                Against::Baseline | Against::BufferUnordered => (bu, BUFFER_UNORDERED),
                Against::ForEachConcurrent => (fec, FOR_EACH_CONCURRENT),
            };
            let ratio = base.map_or(f64::NAN, |base| meds[i] / meds[base]);
            let lo = ns[b][i].iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ns[b][i].iter().copied().fold(0.0, f64::max);
            println!(
                "| {} | {:.0} | {ratio:.2} | {label} | {:.2} | {lo:.0}–{hi:.0} |",
                s.name,
                meds[i],
                median(&csw[b][i])
            );
        }
        // Per-round ratios (each round's shapes ran side by side): the median of those is
        // steadier than a ratio of medians under load.
        println!("\nper-round ratio medians ({}):", body.name());
        for (i, s) in shapes.iter().enumerate() {
            let base = match s.against {
                Against::Baseline => continue,
                Against::BufferUnordered => bu,
                Against::ForEachConcurrent => fec,
            };
            let Some(base) = base else { continue };
            let per_round: Vec<f64> = ns[b][i]
                .iter()
                .zip(&ns[b][base])
                .map(|(x, y)| x / y)
                .collect();
            println!("- {}: {:.2}", s.name, median(&per_round));
        }
        println!();
    }
    floor(&rt, &bodies, &ns, fec);

    if quick || std::env::var("EPHEMERAL_BENCH_RSS").as_deref() == Ok("0") {
        return;
    }
    println!(
        "\n## resident memory while 10,000,000 items pass through a WorkCoordinator (window 200)\n"
    );
    println!("| items so far | RSS kB |");
    println!("|--:|--:|");
    rt.block_on(async {
        let c = WorkCoordinator::new(
            |n: u64, op: Operation| async move {
                if n % 1000 == 0 {
                    op.emit("tick");
                }
                Ok::<_, Io>(())
            },
            options(),
        );
        for n in 0..10_000_000u64 {
            if c.enqueue(n).await.is_err() {
                unreachable!("open coordinator");
            }
            if n % 1_000_000 == 0 {
                println!("| {n} | {} |", rss_kb());
            }
        }
        c.complete();
        c.drain().await;
        println!("| 10000000 (drained) | {} |", rss_kb());
    });
}

/// ns per read of the clock the library tracks operations on (`tokio::time::Instant::now`,
/// read inside the runtime as the engine reads it): the median of 5 runs of 2,000,000 reads.
fn clock_read_ns(rt: &Runtime) -> f64 {
    const READS: u32 = 2_000_000;
    let runs: Vec<f64> = (0..5)
        .map(|_| {
            rt.block_on(async {
                let t0 = Instant::now();
                for _ in 0..READS {
                    black_box(tokio::time::Instant::now());
                }
                t0.elapsed().as_nanos() as f64 / f64::from(READS)
            })
        })
        .collect();
    median(&runs)
}

/// What the 1.3× target of the one-shot runs leaves per item next to the clock read every
/// tracked operation needs (its end, which is also the next start, is read once).
fn floor(rt: &Runtime, bodies: &[Body], ns: &[Vec<Vec<f64>>], fec: Option<usize>) {
    let clock = clock_read_ns(rt);
    println!("## floor: one clock read per tracked operation\n");
    println!("clock read (tokio::time::Instant::now, in the runtime): {clock:.1} ns\n");
    let Some(fec) = fec else { return };
    println!(
        "| body | for_each_concurrent(8) ns/item | 1.3× leaves per item | clock read share of it |"
    );
    println!("|---|--:|--:|--:|");
    for (b, body) in bodies.iter().enumerate() {
        let base = median(&ns[b][fec]);
        let budget = 0.3 * base;
        println!(
            "| {} | {base:.0} | {budget:.1} ns | {:.0} % |",
            body.name(),
            100.0 * clock / budget
        );
    }
    println!();
}

fn main() {
    let report_only = quick() || std::env::args().any(|a| a == "--report");
    if !report_only {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    if std::env::var("EPHEMERAL_BENCH_REPORT").as_deref() != Ok("0") {
        report();
    }
}
