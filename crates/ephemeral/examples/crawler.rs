//! A simulated web crawler: 200 URLs fetched by a [`WorkCoordinator`] with at most 8 fetches
//! at once, a back-off whenever the (fake) server answers `429 Too Many Requests`, a live
//! progress line, and at the end the failures and a summary of them by signal.
//!
//! There is no network: `fetch` sleeps a few milliseconds and answers a status chosen by a
//! fixed pattern over the URL's index, so every run fails the same URLs.
//!
//! Run with `cargo run --example crawler` (it takes about two seconds).
//!
//! The back-off: on a 429 the body emits `rate-limit` with a time to live
//! ([`Operation::emit_for`]), and the coordinator defers every start while `rate-limit` is
//! present ([`Options::defer_on_signals`]). The ttl matters: a signal emitted with plain
//! `emit` counts as long as its operation stays in the window (5 minutes after it finished,
//! by default), so every later start would be held back for its full deferral.

use ephemeral::{CancellationToken, Operation, Options, Stats, WorkCoordinator};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How many URLs to crawl.
const URLS: usize = 200;
/// How long a 429 holds back new fetches.
const BACK_OFF: Duration = Duration::from_millis(300);
/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// A failed fetch: the body's error, kept (as metadata) by the coordinator's window.
#[derive(Debug)]
struct FetchError {
    status: u16,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self.status {
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "error",
        };
        write!(f, "{} {reason}", self.status)
    }
}

impl std::error::Error for FetchError {}

/// A stand-in for an HTTP GET: waits 10 to 28 ms on tokio's clock, then answers a status
/// that depends only on the page number at the end of the URL.
async fn fetch(url: &str) -> u16 {
    let page: usize = url
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let millis = 10 + (page * 7 % 10) * 2;
    tokio::time::sleep(Duration::from_millis(millis as u64)).await;
    match page {
        p if p % 45 == 20 => 429, // pages 20, 65, 110, 155
        p if p % 60 == 23 => 503, // pages 23, 83, 143
        p if p % 70 == 55 => 500, // pages 55, 125, 195
        _ => 200,
    }
}

#[tokio::main]
async fn main() {
    // Counts the back-offs as they start (on_signal runs for every emitted signal).
    let back_offs = Arc::new(AtomicUsize::new(0));
    let counter = back_offs.clone();

    let crawler = WorkCoordinator::new(
        |url: String, op: Operation| async move {
            // Snapshots tell which URL an operation fetched (see the failure list below),
            // without keeping the items: a label is short metadata.
            op.set_label(&url);
            let status = fetch(&url).await;
            match status {
                200..=299 => Ok(()),
                429 => {
                    // Back off: no fetch starts while `rate-limit` is present, and it
                    // retracts itself after BACK_OFF. `http.error.429` stays on the failed
                    // operation, so the summary below can count it.
                    op.emit_for("rate-limit", BACK_OFF);
                    op.emit("http.error.429");
                    Err(FetchError { status })
                }
                _ => {
                    op.emit(format!("http.error.{status}"));
                    Err(FetchError { status })
                }
            }
        },
        Options::default()
            .name("crawler")
            .max_concurrency(8)
            // Keep every finished operation listed, so every failure shows at the end.
            .max_tracked_operations(URLS)
            .defer_on_signals(["rate-limit"])
            .on_signal(move |event| {
                if event.is("rate-limit") {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }),
    );

    // The live progress line, from a separate task reading the counters.
    let started = Instant::now();
    let done = CancellationToken::new();
    let tty = std::io::stdout().is_terminal();
    let progress = tokio::spawn({
        let crawler = crawler.clone();
        let done = done.clone();
        async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => print_progress(started, &crawler.stats(), tty),
                    () = done.cancelled() => break,
                }
            }
            print_progress(started, &crawler.stats(), tty);
            if tty {
                println!();
            }
        }
    });

    for page in 0..URLS {
        let url = format!("https://example.com/page/{page}");
        crawler.enqueue(url).await.expect("the crawler is open");
    }
    crawler.complete();
    crawler.drain().await;
    done.cancel();
    progress.await.expect("the progress task does not panic");

    let failed = crawler.failed();
    println!("\nfailures ({}):", failed.len());
    for snapshot in &failed {
        let error = snapshot
            .error()
            .map(ToString::to_string)
            .unwrap_or_default();
        println!(
            "  {}  {}  after {:>5.1?}  {error}  signals {:?}",
            snapshot.id(),
            snapshot.label().unwrap_or("?"),
            snapshot.duration().unwrap_or_default(),
            snapshot.signals(),
        );
    }

    println!("\nfailures by signal:");
    let mut by_signal: BTreeMap<&str, usize> = BTreeMap::new();
    for snapshot in &failed {
        if snapshot.signals().is_empty() {
            *by_signal.entry("(no signal)").or_default() += 1;
        }
        let mut names: Vec<&str> = snapshot.signals().iter().map(|s| &**s).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            *by_signal.entry(name).or_default() += 1;
        }
    }
    for (signal, count) in &by_signal {
        println!("  {signal:<16} {count}");
    }
    println!(
        "  (`rate-limit` was emitted {} times with a {BACK_OFF:?} ttl: it retracted itself, so \
         finished operations no longer carry it)",
        back_offs.load(Ordering::Relaxed)
    );

    let stats = crawler.stats();
    println!(
        "\nstats: enqueued {} completed {} failed {} cancelled {} deferred {} defer timeouts {} \
         in {:.1?}",
        stats.enqueued,
        stats.completed,
        stats.failed,
        stats.cancelled,
        stats.deferred,
        stats.defer_timeouts,
        started.elapsed(),
    );
    assert_eq!(
        stats.enqueued,
        stats.completed + stats.failed + stats.cancelled
    );
}

/// One progress line: overwritten in place on a terminal, one line per refresh otherwise.
fn print_progress(started: Instant, stats: &Stats, tty: bool) {
    let line = format!(
        "[{:>4.1}s] completed {:>3}  failed {:>2}  pending {:>3}  active {}  deferred {}",
        started.elapsed().as_secs_f64(),
        stats.completed,
        stats.failed,
        stats.pending,
        stats.active,
        stats.deferred,
    );
    let mut out = std::io::stdout().lock();
    // A write error (a closed pipe) only loses progress output: ignore it.
    let _ = if tty {
        write!(out, "\r{line}   ").and_then(|()| out.flush())
    } else {
        writeln!(out, "{line}")
    };
}
