//! Loom model of the drain check (run with `RUSTFLAGS="--cfg loom"`, see RELIABILITY.md).
//!
//! It drives the engine's own [`is_drained`], [`count_in`] and [`count_accepted_cancelled`]
//! over [`Shards`] with the engine's `SlotState` (`loom_shards::ModelSlot`), from plain loom
//! threads that follow `intake.rs`, `worker.rs` and `control.rs`:
//!
//! * a producer counts its item in (`count_in`), then pushes it, or takes its count back
//!   when it sees `closed`; an accepted item gets a worker (`wake_one` spawning one);
//! * that worker stores `busy = true`, pops, starts the item under its slot's lock, records
//!   it under the lock (`settle_slot` before `on_sample`), samples (a read of the whole
//!   window, as `sample` does through `snapshot_where`), then clears `busy`;
//! * a stream source whose item is refused holds `sourcing` while it counts the item as
//!   accepted and cancelled;
//! * the closer stores `closed` and runs the check, as `complete` does (the check's thread:
//!   loom allows four threads besides the main one).
//!
//! The promises: a drain is never reported while an item is live (accepted and not yet
//! finished with, its sample included), and no item is accepted after a drain was reported.
//! Each party looks at a plain std flag `reported` (bookkeeping that loom does not schedule)
//! right after the step it checks, with no loom operation in between, so the look is
//! atomic with that step: the producer just after its push, the worker at the end of its
//! sample. At the end every accepted item is finished or cancelled.

use super::drain::{count_accepted_cancelled, count_in, is_drained, Drainable, Tally};
use super::loom_shards::{ModelShards, ModelSlot, NoGates, WINDOW};
use super::shards::{Shard, Shards};
use crate::id::OperationId;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use crate::sync::model;
use crate::window::Window;
use loom::thread;
use std::sync::atomic::Ordering::Relaxed;
// std's `Arc`, not loom's (see `loom_models.rs`).
use std::sync::Arc;
use tokio::time::Instant;

/// A deliberate break of the drain check or of a party's counting, for the model to show it
/// catches it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Broken {
    /// The check reads a slot's `busy` before locking its counts (bug a, before 0300d03).
    BusyBeforeCounts,
    /// The check does not read `enqueued` again at the end (half of bug b's fix undone).
    NoSecondEnqueuedRead,
    /// A refused item is counted cancelled before enqueued, and the check does not read
    /// `enqueued` again (bug b, the code before 0300d03).
    CancelledFirstNoSecondRead,
    /// A refused item is counted cancelled before enqueued (the check reads `enqueued`
    /// again).
    CancelledFirst,
    /// A producer reads `closed` before counting its item in `enqueued`.
    ClosedBeforeCountIn,
}

struct Model {
    broken: Option<Broken>,
    closed: AtomicBool,
    /// The intake: items queued.
    queued: AtomicUsize,
    sourcing: AtomicUsize,
    enqueued: AtomicU64,
    cancelled: AtomicU64,
    shards: ModelShards,
    slot: Arc<ModelSlot>,
    op: OperationId,
    now: Instant,
    /// A drain was reported (bookkeeping, not scheduled by loom).
    reported: std::sync::atomic::AtomicBool,
}

impl Drainable for Model {
    fn closed(&self) -> bool {
        self.closed.load(SeqCst)
    }
    fn pending(&self) -> usize {
        self.queued.load(SeqCst)
    }
    fn sourcing(&self) -> usize {
        self.sourcing.load(SeqCst)
    }
    fn enqueued(&self) -> u64 {
        self.enqueued.load(SeqCst)
    }
    fn cancelled(&self) -> u64 {
        self.cancelled.load(SeqCst)
    }
    fn broken(&self) -> Option<Broken> {
        match self.broken {
            Some(Broken::CancelledFirstNoSecondRead) => Some(Broken::NoSecondEnqueuedRead),
            other => other,
        }
    }
}

impl Model {
    fn new(broken: Option<Broken>) -> Self {
        let now = Instant::from_std(std::time::Instant::now());
        let shards = Shards::new(Window::new(WINDOW, None));
        let slot = shards
            .add(|| Some(Arc::new(ModelSlot::new(now))))
            .expect("added");
        Model {
            broken,
            closed: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            sourcing: AtomicUsize::new(0),
            enqueued: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            shards,
            slot,
            op: OperationId::next(),
            now,
            reported: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `Shared::try_push` (its counting): whether the item was accepted.
    fn try_push(&self) -> bool {
        if self.broken == Some(Broken::ClosedBeforeCountIn) {
            if self.closed.load(SeqCst) {
                return false;
            }
            self.enqueued.fetch_add(1, SeqCst);
            self.push();
            return true;
        }
        let Some(count) = count_in(&self.enqueued, &self.closed) else {
            return false;
        };
        self.push();
        count.keep();
        true
    }

    /// The intake's push; an accepted item is live from here on.
    fn push(&self) {
        self.queued.fetch_add(1, SeqCst);
        assert!(
            !self.reported.load(Relaxed),
            "an item was accepted after a drain was reported"
        );
    }

    /// A worker running one item (`Shared::next`, `settle_slot`, the worker loop with an
    /// `on_sample`), then finding no more.
    fn worker(&self) {
        self.slot.busy.store(true, SeqCst);
        let popped = self
            .queued
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if popped {
            self.slot
                .lock()
                .running
                .start(self.op, Some(()), 0, self.now);
            // The body runs; then the record, under the lock, before the sample.
            self.slot
                .lock()
                .settle(Ok(1), self.now, &NoGates, &mut Vec::new(), |_| ());
            // `sample`: a read of the whole window.
            self.shards.read(|_, _| ());
            assert!(
                !self.reported.load(Relaxed),
                "a drain was reported while an item was live (before its worker was done with it)"
            );
        }
        // The next look finds nothing: no longer busy.
        self.slot.busy.store(false, SeqCst);
    }

    /// A stream source whose item is refused: counted accepted and cancelled while it holds
    /// `sourcing` (`enqueue_from_source`, `count_refused_as_cancelled`).
    fn source(&self) {
        self.sourcing.fetch_add(1, SeqCst);
        match self.broken {
            Some(Broken::CancelledFirst | Broken::CancelledFirstNoSecondRead) => {
                self.cancelled.fetch_add(1, SeqCst);
                self.enqueued.fetch_add(1, SeqCst);
            }
            _ => count_accepted_cancelled(&self.enqueued, &self.cancelled),
        }
        self.sourcing.fetch_sub(1, SeqCst);
    }

    /// `complete`: `closed`, then the check.
    fn close(&self) {
        self.closed.store(true, SeqCst);
        if is_drained(self, &self.shards) {
            self.reported.store(true, Relaxed);
        }
    }

    /// At the end: every accepted item finished or cancelled, none left queued.
    fn check_end(&self) {
        assert_eq!(self.queued.load(SeqCst), 0, "an item was left queued");
        let finished = self.shards.read(|retired, slots| {
            retired.finished() + slots.iter().map(|st| st.finished()).sum::<u64>()
        });
        assert_eq!(
            finished + self.cancelled.load(SeqCst),
            self.enqueued.load(SeqCst),
            "accepted items not all finished or cancelled"
        );
        assert!(!self.slot.busy(), "the worker still busy");
    }
}

fn drain_check(broken: Option<Broken>) {
    let model = Arc::new(Model::new(broken));
    let producer = {
        let m = model.clone();
        thread::spawn(move || {
            if m.try_push() {
                // `wake_one` spawns a worker for the accepted item.
                thread::spawn(move || m.worker()).join().unwrap();
            }
        })
    };
    let source = {
        let m = model.clone();
        thread::spawn(move || m.source())
    };
    let closer = {
        let m = model.clone();
        thread::spawn(move || m.close())
    };
    producer.join().unwrap();
    source.join().unwrap();
    closer.join().unwrap();
    model.check_end();
}

/// A producer, a worker, a refused source item and a closer running the check: no drain is
/// reported while an item is live, and none accepted after one.
#[test]
fn loom_drain_check() {
    model::check("drain_check", || drain_check(None));
}

/// Broken variant: bug a, the check reading `busy` before the slot's counts.
#[test]
#[should_panic(expected = "a drain was reported")]
fn loom_drain_catches_busy_before_counts() {
    model::check("drain_busy_before_counts", || {
        drain_check(Some(Broken::BusyBeforeCounts));
    });
}

/// Broken variant: the check without its second read of `enqueued`.
#[test]
#[should_panic(expected = "a drain was reported")]
fn loom_drain_catches_no_second_enqueued_read() {
    model::check("drain_no_second_enqueued_read", || {
        drain_check(Some(Broken::NoSecondEnqueuedRead));
    });
}

/// Broken variant: bug b as it was, a refused item counted cancelled before enqueued and no
/// second read of `enqueued`.
#[test]
#[should_panic(expected = "a drain was reported")]
fn loom_drain_catches_cancelled_first() {
    model::check("drain_cancelled_first", || {
        drain_check(Some(Broken::CancelledFirstNoSecondRead));
    });
}

/// Broken variant: a producer reading `closed` before counting itself in `enqueued`.
#[test]
#[should_panic(expected = "a drain was reported")]
fn loom_drain_catches_closed_before_count_in() {
    model::check("drain_closed_before_count_in", || {
        drain_check(Some(Broken::ClosedBeforeCountIn));
    });
}

/// Broken variant: a refused item counted cancelled before enqueued, with the check's second
/// read of `enqueued` in place.
#[test]
#[should_panic(expected = "a drain was reported")]
fn loom_drain_catches_cancelled_first_with_second_read() {
    model::check("drain_cancelled_first_with_second_read", || {
        drain_check(Some(Broken::CancelledFirst));
    });
}
