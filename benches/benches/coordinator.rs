//! The work path: 1,000,000 trivial items through our coordinators and through plain tokio
//! shapes, in the same process, on a 2-worker multi-thread runtime at concurrency 8.
//!
//! Two parts:
//! 1. criterion groups (`cargo bench -p ephemeral-benches --bench coordinator`);
//!
//! Every shape runs as a task spawned on the runtime (the producer of an application is a task
//! too), so no third `block_on` thread competes with the runtime's two for the two cores.
//!
//! 2. a report printed after them: interleaved rounds of every shape, with ns/item, the ratio
//!    to `buffer_unordered(8)`, voluntary context switches per 1000 items (`csw/1k`), and a
//!    resident-memory probe while 10,000,000 items pass through a coordinator.
//!    `EPHEMERAL_BENCH_REPORT=0` skips it; `EPHEMERAL_BENCH_ROUNDS` sets the rounds (default 5);
//!    `EPHEMERAL_BENCH_ONLY=Work,mpsc` keeps the baseline and the shapes whose names contain one
//!    of the given parts; `EPHEMERAL_BENCH_RSS=0` skips the memory probe.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, Criterion};
use ephemeral::{for_each, KeyedWorkCoordinator, Operation, Options, WorkCoordinator};
use futures::StreamExt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, Semaphore};

const ITEMS: u64 = 1_000_000;
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

/// Our coordinator, full tracking (window of 200, signals off), trivial body.
async fn ours(items: u64) {
    let c = WorkCoordinator::new(
        |n: u64, _op: Operation| async move {
            black_box(n);
            Ok::<_, Io>(())
        },
        Options::default()
            .max_concurrency(CONCURRENCY)
            .queue_capacity(1024),
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
async fn ours_keyed(items: u64) {
    let c = KeyedWorkCoordinator::new(
        |n: &u64| n % KEYS,
        |n: u64, _op: Operation| async move {
            black_box(n);
            Ok::<_, Io>(())
        },
        Options::default()
            .max_concurrency(CONCURRENCY)
            .max_concurrency_per_key(1)
            .queue_capacity(1024),
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
async fn ours_for_each(items: u64) {
    let summary = for_each(
        0..items,
        |n: u64, _op: Operation| async move {
            black_box(n);
            Ok::<_, Io>(())
        },
        Options::default()
            .max_concurrency(CONCURRENCY)
            .queue_capacity(1024),
    )
    .await
    .expect("not cancelled");
    assert_eq!(summary.completed, items);
}

/// `futures::StreamExt::buffer_unordered(8)`: in-task concurrency, no hand-off.
async fn buffer_unordered(items: u64) {
    futures::stream::iter(0..items)
        .map(|n| async move { black_box(n) })
        .buffer_unordered(CONCURRENCY)
        .for_each(|_| async {})
        .await;
}

/// A `Semaphore` permit and a `tokio::spawn` per item.
async fn spawn_per_item(items: u64) {
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    for n in 0..items {
        let permit = sem.clone().acquire_owned().await.expect("open semaphore");
        tokio::spawn(async move {
            black_box(n);
            drop(permit);
        });
    }
    let _all = sem
        .acquire_many(CONCURRENCY as u32)
        .await
        .expect("open semaphore");
}

/// A tokio mpsc(1024) feeding 8 workers that share the receiver behind a mutex.
async fn mpsc_pool(items: u64) {
    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    match next {
                        Some(n) => {
                            black_box(n);
                        }
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

type ShapeFn = fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
type Shape = (&'static str, ShapeFn);

fn shapes() -> Vec<Shape> {
    vec![
        ("buffer_unordered(8)", |n| Box::pin(buffer_unordered(n))),
        ("ephemeral WorkCoordinator", |n| Box::pin(ours(n))),
        ("ephemeral for_each", |n| Box::pin(ours_for_each(n))),
        ("ephemeral KeyedWorkCoordinator (10k keys)", |n| {
            Box::pin(ours_keyed(n))
        }),
        ("tokio mpsc + 8 workers", |n| Box::pin(mpsc_pool(n))),
        ("Semaphore + spawn per item", |n| {
            Box::pin(spawn_per_item(n))
        }),
    ]
}

/// Runs a shape as a task of the runtime (as the producer would be in an application, e.g. an
/// axum handler), so producer and consumers share the runtime's two threads instead of a third
/// `block_on` thread competing for the two cores.
fn run_shape(rt: &Runtime, shape: ShapeFn, items: u64) {
    rt.block_on(async move { tokio::spawn(shape(items)).await })
        .expect("shape panicked");
}

fn work_path(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("work_1M");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.warm_up_time(Duration::from_secs(1));
    group.throughput(criterion::Throughput::Elements(ITEMS));
    for (name, shape) in shapes() {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    run_shape(&rt, shape, ITEMS);
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

fn report() {
    let rounds: usize = std::env::var("EPHEMERAL_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let rt = runtime();
    // `EPHEMERAL_BENCH_ONLY=a,b` keeps the baseline plus the shapes whose names contain a or b.
    let only: Vec<String> = std::env::var("EPHEMERAL_BENCH_ONLY")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let shapes: Vec<Shape> = shapes()
        .into_iter()
        .enumerate()
        .filter(|(i, (name, _))| {
            *i == 0 || only.is_empty() || only.iter().any(|o| name.contains(o.as_str()))
        })
        .map(|(_, s)| s)
        .collect();
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    let mut csw: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    rt.block_on(ours(10_000));
    for _ in 0..rounds {
        for (i, (_, shape)) in shapes.iter().enumerate() {
            let c0 = voluntary_csw();
            let t0 = Instant::now();
            run_shape(&rt, *shape, ITEMS);
            let elapsed = t0.elapsed();
            let c1 = voluntary_csw();
            ns[i].push(elapsed.as_nanos() as f64 / ITEMS as f64);
            csw[i].push((c1 - c0) as f64 * 1000.0 / ITEMS as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&mut ns[0].clone());
    println!("\n## work path: {ITEMS} trivial items, concurrency {CONCURRENCY}, 2 runtime threads, median of {rounds} interleaved rounds\n");
    println!("| shape | ns/item | × buffer_unordered | csw/1k |");
    println!("|---|--:|--:|--:|");
    for (i, (name, _)) in shapes.iter().enumerate() {
        let n = median(&mut ns[i]);
        let c = median(&mut csw[i]);
        println!("| {name} | {n:.0} | {:.2} | {c:.2} |", n / base);
    }

    if std::env::var("EPHEMERAL_BENCH_RSS").as_deref() == Ok("0") {
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
            Options::default()
                .max_concurrency(CONCURRENCY)
                .queue_capacity(1024),
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

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::var("EPHEMERAL_BENCH_REPORT").as_deref() != Ok("0") {
        report();
    }
}
