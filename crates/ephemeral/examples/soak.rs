//! Soak: millions of operations with random failures, panics and cancellations through a work
//! and a keyed coordinator (a million distinct keys), checking that every item's fate is
//! observed exactly once and that resident memory stays flat.
//!
//! ```text
//! cargo run --release --example soak                 # 10,000,000 operations per coordinator
//! cargo run --release --example soak -- --ops 2000000  # CI's short form
//! ```
//!
//! Items go through in rounds of 100,000. Each round's coordinator is cancelled at a random
//! point with a random share of its items still pending (one round in ten) or completed and
//! drained (the others). Per round: every item ran at most once (a bitmap, test-and-set in the
//! body), `enqueued == completed + failed + cancelled`, and items that ran == completed +
//! failed. Resident memory (the peak over three rounds) is read at one million operations and
//! at the end. The run fails if the end is more than 5 % above it **and** more than 2 MiB above
//! it: the whole process holds about 5 MiB, and the allocator alone moves that by ±1.5 MiB from
//! one round to the next, while a leak of even one byte per operation would add 9 MiB over the
//! 9 million operations between the probes.

use ephemeral::{KeyedWorkCoordinator, Operation, Options, WorkCoordinator};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

const ROUND: u64 = 100_000;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// xorshift: a cheap deterministic stream of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the bodies of one round record.
struct Round {
    ran: Vec<AtomicU8>,
    twice: AtomicU64,
    ran_count: AtomicU64,
}

impl Round {
    fn new() -> Arc<Self> {
        Arc::new(Round {
            ran: (0..ROUND).map(|_| AtomicU8::new(0)).collect(),
            twice: AtomicU64::new(0),
            ran_count: AtomicU64::new(0),
        })
    }

    /// The body's work: mark the item, then fail or panic for some.
    fn run(&self, item: u64) -> Result<(), &'static str> {
        let i = (item % ROUND) as usize;
        if self.ran[i].swap(1, Ordering::Relaxed) != 0 {
            self.twice.fetch_add(1, Ordering::Relaxed);
        }
        self.ran_count.fetch_add(1, Ordering::Relaxed);
        let h = item.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        if h % 5000 == 0 {
            panic!("planned panic for item {item}");
        }
        if h % 10 == 0 {
            return Err("planned failure");
        }
        Ok(())
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Totals {
    enqueued: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    cancelled_rounds: u64,
}

macro_rules! soak_round {
    ($coordinator:expr, $round:expr, $rng:expr, $base:expr, $totals:expr) => {{
        let c = $coordinator;
        let round: Arc<Round> = $round;
        let cancel_at = if $rng.next() % 10 == 0 {
            Some($rng.next() % ROUND)
        } else {
            None
        };
        let mut accepted = 0u64;
        for i in 0..ROUND {
            if cancel_at == Some(i) {
                c.cancel();
            }
            match c.enqueue($base + i).await {
                Ok(_) => accepted += 1,
                Err(_) => assert!(cancel_at.is_some_and(|at| i >= at), "refused while open"),
            }
        }
        c.complete();
        c.drain().await;
        let s = c.stats();
        assert_eq!(s.enqueued, accepted, "{s:?}");
        assert_eq!(s.completed + s.failed + s.cancelled, s.enqueued, "{s:?}");
        assert_eq!(round.twice.load(Ordering::Relaxed), 0, "an item ran twice");
        assert_eq!(
            round.ran_count.load(Ordering::Relaxed),
            s.completed + s.failed,
            "{s:?}"
        );
        if cancel_at.is_none() {
            assert_eq!(s.cancelled, 0, "{s:?}");
        }
        $totals.enqueued += s.enqueued;
        $totals.completed += s.completed;
        $totals.failed += s.failed;
        $totals.cancelled += s.cancelled;
        $totals.cancelled_rounds += u64::from(cancel_at.is_some());
    }};
}

fn options() -> Options {
    Options::default()
        .max_concurrency(8)
        .max_tracked_operations(1000)
}

async fn soak(keyed: bool, ops: u64) -> (Totals, u64, u64) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ u64::from(keyed));
    let mut totals = Totals::default();
    let mut rss_at_1m = 0;
    let mut rss_end = 0;
    let rounds = ops.div_ceil(ROUND);
    // At one million operations (or half-way, for short runs).
    let probe = 1_000_000u64.min((rounds / 2).max(1) * ROUND);
    for r in 0..rounds {
        let round = Round::new();
        let base = r * ROUND;
        let body_round = round.clone();
        if keyed {
            let c = KeyedWorkCoordinator::new(
                |item: &u64| item % 1_000_000,
                move |item: u64, _op: Operation| {
                    let round = body_round.clone();
                    async move { round.run(item) }
                },
                options(),
            );
            soak_round!(&c, round, rng, base, totals);
        } else {
            let c = WorkCoordinator::new(
                move |item: u64, _op: Operation| {
                    let round = body_round.clone();
                    async move { round.run(item) }
                },
                options(),
            );
            soak_round!(&c, round, rng, base, totals);
        }
        // The allocator keeps freed rounds' memory in varying amounts: read the peak over the
        // three rounds up to each probe, not a single sample.
        let done = (r + 1) * ROUND;
        let rss = rss_kb();
        if done + 3 * ROUND > probe && done <= probe {
            rss_at_1m = rss_at_1m.max(rss);
        }
        if r + 3 >= rounds {
            rss_end = rss_end.max(rss);
        }
    }
    (totals, rss_at_1m, rss_end)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut ops = 10_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ops" => ops = args.next().and_then(|v| v.parse().ok()).expect("--ops N"),
            other => panic!("unknown argument {other}"),
        }
    }
    // Planned panics are counted as failures; keep their messages quiet.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("planned panic"));
        if !planned {
            default_hook(info);
        }
    }));
    let mut failed = false;
    for keyed in [false, true] {
        let started = Instant::now();
        let (t, early, end) = soak(keyed, ops).await;
        let growth = (end as f64 - early as f64) / early as f64 * 100.0;
        println!(
            "{}: {} operations in {:.1} s: {} completed, {} failed, {} cancelled ({} rounds cancelled); \
             resident memory {} KiB at {}M, {} KiB at the end ({:+.1} %)",
            if keyed { "keyed (1M keys)" } else { "work" },
            t.enqueued,
            started.elapsed().as_secs_f64(),
            t.completed,
            t.failed,
            t.cancelled,
            t.cancelled_rounds,
            early,
            (1_000_000u64.min((ops.div_ceil(ROUND) / 2).max(1) * ROUND)) as f64 / 1e6,
            end,
            growth
        );
        assert_eq!(t.completed + t.failed + t.cancelled, t.enqueued);
        if growth > 5.0 && end > early + 2048 {
            eprintln!("resident memory grew more than 5 % and more than 2 MiB");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
