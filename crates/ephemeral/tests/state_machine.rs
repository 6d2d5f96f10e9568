//! Random scripts of enqueue / try_enqueue / pause / resume / set_max_concurrency / pin / unpin /
//! evict / complete / cancel / advance-clock, run against the plain and the keyed coordinator on
//! a paused clock and checked against a sequential model after every step and at the end.
//!
//! What the model holds: which items were accepted (and that every refused item came back to
//! the caller unchanged), whether the coordinator is paused or closed, the concurrency limits in
//! force, and which operations are pinned. What is checked:
//! - no item runs twice, and no refused or never-accepted item runs at all;
//! - concurrency never exceeds the limit (the previous one too, while a shrink drains);
//! - nothing starts while paused;
//! - the lifetime counters only grow, and `enqueued` is exactly the accepted count;
//! - the window lists each operation once, holds at most `max_tracked_operations` finished
//!   ones beyond those pinned, and keeps a pinned operation until it is unpinned or evicted;
//! - per-key start order is acceptance order (keyed);
//! - at the end (complete + drain): accepted == completed + failed + cancelled, and every
//!   accepted item either ran exactly once or was counted cancelled.

use ephemeral::{
    EnqueueError, KeyedWorkCoordinator, Operation, OperationId, Options, TryEnqueueError,
    WorkCoordinator,
};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

#[derive(Debug, Clone)]
enum Step {
    Enqueue,
    TryEnqueue,
    Pause,
    Resume,
    SetMax(usize),
    Pin(usize),
    Unpin(usize),
    Evict(usize),
    Complete,
    Cancel,
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Enqueue),
        4 => Just(Step::TryEnqueue),
        1 => Just(Step::Pause),
        2 => Just(Step::Resume),
        2 => (1usize..6).prop_map(Step::SetMax),
        1 => any::<usize>().prop_map(Step::Pin),
        1 => any::<usize>().prop_map(Step::Unpin),
        1 => any::<usize>().prop_map(Step::Evict),
        1 => Just(Step::Complete),
        1 => Just(Step::Cancel),
        5 => (0u64..80).prop_map(Step::Advance),
    ]
}

/// What bodies record, shared with the test.
#[derive(Default)]
struct Record {
    runs: Mutex<HashMap<u32, u32>>,
    /// Start order per key (keyed runs only).
    starts: Mutex<HashMap<u32, Vec<u32>>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
}

/// The item's behaviour follows from its number: how long it runs, and whether it fails or
/// panics.
async fn body(n: u32, record: Arc<Record>, keyed: bool) -> Result<(), String> {
    *record.runs.lock().unwrap().entry(n).or_default() += 1;
    if keyed {
        record
            .starts
            .lock()
            .unwrap()
            .entry(n % 4)
            .or_default()
            .push(n);
    }
    record.started.fetch_add(1, Ordering::SeqCst);
    let now = record.running.fetch_add(1, Ordering::SeqCst) + 1;
    record.peak.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(u64::from(n % 7) * 10)).await;
    record.running.fetch_sub(1, Ordering::SeqCst);
    if n % 13 == 12 {
        panic!("item {n} panics");
    }
    if n % 5 == 0 {
        return Err(format!("item {n} fails"));
    }
    Ok(())
}

/// One coordinator of either kind, seen through what the script needs.
enum Subject {
    Work(WorkCoordinator<u32>),
    Keyed(KeyedWorkCoordinator<u32, u32>),
}

macro_rules! both {
    ($s:expr, $c:ident => $e:expr) => {
        match $s {
            Subject::Work($c) => $e,
            Subject::Keyed($c) => $e,
        }
    };
}

const TRACKED: usize = 8;

impl Subject {
    fn new(keyed: bool, record: &Arc<Record>) -> Self {
        let options = Options::default()
            .max_concurrency(3)
            .dynamic_concurrency(true)
            .max_tracked_operations(TRACKED)
            .queue_capacity(6);
        let r = record.clone();
        if keyed {
            Subject::Keyed(KeyedWorkCoordinator::new(
                |n: &u32| n % 4,
                move |n: u32, _op: Operation| body(n, r.clone(), true),
                options,
            ))
        } else {
            Subject::Work(WorkCoordinator::new(
                move |n: u32, _op: Operation| body(n, r.clone(), false),
                options,
            ))
        }
    }

    async fn enqueue(&self, n: u32) -> Result<OperationId, EnqueueError<u32>> {
        both!(self, c => c.enqueue(n).await)
    }

    fn try_enqueue(&self, n: u32) -> Result<OperationId, TryEnqueueError<u32>> {
        both!(self, c => c.try_enqueue(n))
    }
}

#[derive(Default)]
struct Model {
    accepted: Vec<u32>,
    accepted_set: HashSet<u32>,
    refused: HashSet<u32>,
    paused: bool,
    closed: bool,
    cancelled: bool,
    limit: usize,
    /// The limit before the last shrink, honoured until the excess has had time to finish.
    shrink_from: Option<(usize, tokio::time::Instant)>,
    pinned: HashSet<OperationId>,
    last: (u64, u64, u64),
}

/// Lets woken tasks run without moving the paused clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

async fn run_script(keyed: bool, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let record = Arc::new(Record::default());
    let subject = Subject::new(keyed, &record);
    let mut model = Model {
        limit: 3,
        ..Model::default()
    };
    let mut next = 0u32;
    for step in steps {
        match step {
            Step::Enqueue => {
                let n = next;
                next += 1;
                // The queue may be full: a bounded wait, then the enqueue is dropped (cancel
                // safe: a dropped enqueue enqueues nothing).
                let got = tokio::time::timeout(Duration::from_millis(30), subject.enqueue(n)).await;
                match got {
                    Ok(Ok(_)) => {
                        prop_assert!(!model.closed, "accepted after close");
                        model.accepted.push(n);
                        model.accepted_set.insert(n);
                    }
                    Ok(Err(e)) => {
                        prop_assert!(matches!(e, EnqueueError::Closed(_)), "{e:?}");
                        prop_assert!(model.closed);
                        prop_assert_eq!(e.into_inner(), n, "the refused item comes back");
                        model.refused.insert(n);
                    }
                    Err(_) => {
                        model.refused.insert(n);
                    }
                }
            }
            Step::TryEnqueue => {
                let n = next;
                next += 1;
                match subject.try_enqueue(n) {
                    Ok(_) => {
                        prop_assert!(!model.closed, "accepted after close");
                        model.accepted.push(n);
                        model.accepted_set.insert(n);
                    }
                    Err(TryEnqueueError::Full(back)) => {
                        prop_assert!(!model.closed);
                        prop_assert_eq!(back, n);
                        model.refused.insert(n);
                    }
                    Err(TryEnqueueError::Closed(back)) => {
                        prop_assert!(model.closed);
                        prop_assert_eq!(back, n);
                        model.refused.insert(n);
                    }
                    Err(e) => prop_assert!(false, "unexpected refusal {e:?}"),
                }
            }
            Step::Pause => {
                both!(&subject, c => c.pause());
                model.paused = true;
            }
            Step::Resume => {
                both!(&subject, c => c.resume());
                model.paused = false;
            }
            Step::SetMax(k) => {
                both!(&subject, c => c.set_max_concurrency(k)).unwrap();
                if k < model.limit {
                    let from = model
                        .shrink_from
                        .map_or(model.limit, |(f, _)| f.max(model.limit));
                    model.shrink_from = Some((from, tokio::time::Instant::now()));
                }
                model.limit = k;
            }
            Step::Pin(i) | Step::Unpin(i) | Step::Evict(i) => {
                let snapshot = both!(&subject, c => c.snapshot());
                if !snapshot.is_empty() {
                    let id = snapshot[i % snapshot.len()].id();
                    match step {
                        Step::Pin(_) => {
                            if both!(&subject, c => c.pin(id)) {
                                model.pinned.insert(id);
                            }
                        }
                        Step::Unpin(_) => {
                            let was = both!(&subject, c => c.unpin(id));
                            prop_assert_eq!(was, model.pinned.remove(&id), "unpin of {}", id);
                        }
                        _ => {
                            if both!(&subject, c => c.evict(id)) {
                                model.pinned.remove(&id);
                            }
                        }
                    }
                }
            }
            Step::Complete => {
                both!(&subject, c => c.complete());
                model.closed = true;
            }
            Step::Cancel => {
                both!(&subject, c => c.cancel());
                model.closed = true;
                model.cancelled = true;
            }
            Step::Advance(ms) => {
                let started = record.started.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                settle().await;
                if model.paused {
                    prop_assert_eq!(
                        record.started.load(Ordering::SeqCst),
                        started,
                        "a start while paused"
                    );
                }
            }
        }
        settle().await;
        check(&subject, &record, &mut model)?;
    }

    // The end: every accepted item's fate, once.
    both!(&subject, c => c.resume());
    both!(&subject, c => c.complete());
    model.paused = false;
    model.closed = true;
    tokio::time::timeout(Duration::from_secs(600), async {
        both!(&subject, c => c.drain().await)
    })
    .await
    .map_err(|_| TestCaseError::fail("drain hung"))?;
    check(&subject, &record, &mut model)?;
    let stats = both!(&subject, c => c.stats());
    let runs = record.runs.lock().unwrap().clone();
    for (n, count) in &runs {
        prop_assert_eq!(*count, 1, "item {} ran {} times", n, count);
        prop_assert!(
            model.accepted_set.contains(n),
            "item {} ran but was never accepted",
            n
        );
    }
    let ran = runs.len() as u64;
    prop_assert_eq!(stats.enqueued, model.accepted.len() as u64);
    prop_assert_eq!(stats.completed + stats.failed, ran, "{:?}", stats);
    prop_assert_eq!(
        stats.completed + stats.failed + stats.cancelled,
        stats.enqueued,
        "{:?}",
        stats
    );
    if !model.cancelled {
        prop_assert_eq!(
            stats.cancelled,
            0,
            "nothing cancelled without cancel: {:?}",
            stats
        );
    }
    prop_assert_eq!((stats.pending, stats.active), (0, 0));
    if keyed {
        // Per key, the items that ran started in the order they were accepted.
        let starts = record.starts.lock().unwrap().clone();
        for (key, order) in starts {
            let expected: Vec<u32> = model
                .accepted
                .iter()
                .copied()
                .filter(|n| n % 4 == key && runs.contains_key(n))
                .collect();
            prop_assert_eq!(order, expected, "key {}", key);
        }
    }
    Ok(())
}

fn check(subject: &Subject, record: &Record, model: &mut Model) -> Result<(), TestCaseError> {
    let stats = both!(subject, c => c.stats());
    // Concurrency: the limit in force, or the one before a shrink while its excess drains
    // (bodies run at most 60 ms).
    let now = tokio::time::Instant::now();
    if let Some((_, at)) = model.shrink_from {
        if now.duration_since(at) > Duration::from_millis(70) {
            model.shrink_from = None;
        }
    }
    let bound = model
        .shrink_from
        .map_or(model.limit, |(f, _)| f.max(model.limit));
    prop_assert!(stats.active <= bound, "{} active > {}", stats.active, bound);
    prop_assert!(
        record.running.load(Ordering::SeqCst) <= bound,
        "bodies running above the limit"
    );
    prop_assert!(
        record.peak.load(Ordering::SeqCst) <= 5,
        "never above the largest limit"
    );
    prop_assert_eq!(stats.max_concurrency, model.limit);
    prop_assert_eq!(stats.paused, model.paused);
    prop_assert_eq!(stats.closed, model.closed);
    prop_assert_eq!(stats.enqueued, model.accepted.len() as u64);
    let counts = (stats.completed, stats.failed, stats.cancelled);
    prop_assert!(
        counts.0 >= model.last.0 && counts.1 >= model.last.1 && counts.2 >= model.last.2,
        "counters went back: {:?} then {:?}",
        model.last,
        counts
    );
    model.last = counts;
    for runs in record.runs.lock().unwrap().values() {
        prop_assert!(*runs <= 1, "an item ran twice");
    }
    // The window.
    let snapshot = both!(subject, c => c.snapshot());
    let ids: HashSet<OperationId> = snapshot.iter().map(|s| s.id()).collect();
    prop_assert_eq!(ids.len(), snapshot.len(), "an operation listed twice");
    let finished = snapshot.iter().filter(|s| !s.is_running()).count();
    prop_assert!(
        finished <= TRACKED + model.pinned.len(),
        "{} finished listed, {} pinned",
        finished,
        model.pinned.len()
    );
    for id in &model.pinned {
        prop_assert!(ids.contains(id), "pinned {} left the window", id);
    }
    Ok(())
}

/// Bodies panic on purpose: keep their messages out of the test output (others still show).
fn quiet_body_panics() {
    support::quiet_panics(|msg| msg.ends_with(" panics"));
}

fn runtime() -> tokio::runtime::Runtime {
    quiet_body_panics();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    })]

    #[test]
    fn work_coordinator_follows_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        runtime().block_on(run_script(false, steps))?;
    }

    #[test]
    fn keyed_coordinator_follows_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        runtime().block_on(run_script(true, steps))?;
    }
}
