//! Loom models of the window's shards (run with `RUSTFLAGS="--cfg loom"`, see
//! RELIABILITY.md): a reader never sees an operation in two places or in none.
//!
//! The models drive the engine's own code: [`Shards`] (`read`, `add`, `retire`) over slots
//! holding the engine's [`SlotState`] (its `settle` and `Running::start`) and a retired
//! [`Window`]. Only the slot around the state is the model's (the engine's `Slot` needs a
//! `Hub`). A worker settles its operation and starts the next in one critical section of its
//! slot's lock, as `settle_slot` does; a leaving worker settles its last one, then retires
//! (`exit`, `unregister`).
//!
//! Every operation a worker started stays in the window (the shards are far larger than the
//! model's operations), so in every read each started operation must be seen exactly once:
//! running, or finished in a slot's shard, or retired. A worker bumps its `started` count
//! (plain std atomics: bookkeeping of the model that loom does not schedule) after the lock
//! it started an operation under is released, so a reader holding every lock that sees the
//! count `n` knows the worker's first `n` operations have started.

use super::shards::{Shard, Shards};
use super::slot::SlotState;
use crate::id::OperationId;
use crate::signal::SignalEvent;
use crate::sync::atomic::{AtomicBool, Ordering::SeqCst};
use crate::sync::{model, Mutex, MutexGuard};
use crate::window::{OnRemoved, Window};
use loom::thread;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
// std's `Arc`, not loom's (see `loom_models.rs`).
use std::sync::Arc;
use tokio::time::Instant;

/// How the model's parties deviate from the engine (the broken variants it must catch).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Engine,
    /// A worker ends its operation (takes it out of `running`) in one critical section and
    /// records it in its shard in a second one.
    SettleInTwo,
    /// A leaving worker takes its slot out of the list under `ctl`, then moves its shard to
    /// the retired one under `track`: two steps.
    RetireInTwo,
}

/// A worker's slot: the engine's state under a lock, and a busy flag.
pub(super) struct ModelSlot {
    state: Mutex<SlotState<u32, ()>>,
    pub(super) busy: AtomicBool,
}

impl ModelSlot {
    pub(super) fn new(now: Instant) -> Self {
        ModelSlot {
            state: Mutex::new(SlotState::new(WINDOW, None, now)),
            busy: AtomicBool::new(false),
        }
    }
}

impl Shard for ModelSlot {
    type State = SlotState<u32, ()>;
    fn lock(&self) -> MutexGuard<'_, SlotState<u32, ()>> {
        self.state.lock()
    }
    fn busy(&self) -> bool {
        self.busy.load(SeqCst)
    }
}

/// No gates: nothing to tell when a record leaves.
pub(super) struct NoGates;

impl OnRemoved for NoGates {
    fn removed(&self, _: &[SignalEvent]) {}
}

/// Far more than the model's operations: nothing is evicted.
pub(super) const WINDOW: usize = 64;

pub(super) type ModelShards = Shards<ModelSlot, Window<u32, ()>>;

/// One worker: its slot, the ids of its operations, how many it started.
struct Worker {
    slot: Arc<ModelSlot>,
    ops: Vec<OperationId>,
    started: AtomicUsize,
}

struct Model {
    variant: Variant,
    shards: ModelShards,
    workers: Vec<Worker>,
    now: Instant,
}

impl Model {
    /// `workers` workers, each with `ops` operations, its first one running.
    fn new(variant: Variant, workers: usize, ops: usize) -> Self {
        let now = Instant::from_std(std::time::Instant::now());
        let shards = Shards::new(Window::new(WINDOW, None));
        let workers = (0..workers)
            .map(|_| {
                let slot = shards
                    .add(|| Some(Arc::new(ModelSlot::new(now))))
                    .expect("added");
                let ops: Vec<OperationId> = (0..ops).map(|_| OperationId::next()).collect();
                slot.lock().running.start(ops[0], Some(()), 0, now);
                Worker {
                    slot,
                    ops,
                    started: AtomicUsize::new(1),
                }
            })
            .collect();
        Model {
            variant,
            shards,
            workers,
            now,
        }
    }

    /// Worker `w` settles its running operation and starts operation `next` (if any), in one
    /// critical section of its slot's lock (`settle_slot`), or in two with `SettleInTwo`.
    fn settle(&self, w: usize, next: Option<usize>) {
        let worker = &self.workers[w];
        let mut spare = Vec::new();
        let mut st = worker.slot.lock();
        if self.variant == Variant::SettleInTwo {
            let (rec, pinned) = st.running.finish(self.now, Ok(1));
            drop(st);
            st = worker.slot.lock();
            st.window.record(rec, pinned, self.now, &NoGates);
        } else {
            st.settle(Ok(1), self.now, &NoGates, &mut spare, |_| ());
        }
        if let Some(n) = next {
            st.running
                .start(worker.ops[n], Some(()), n as u64, self.now);
        }
        drop(st);
        if let Some(n) = next {
            worker.started.store(n + 1, Relaxed);
        }
    }

    /// Worker `w` leaves: its shard moves to the retired one (`unregister`), in one step
    /// under `track`, `ctl` and its slot's lock, or in two with `RetireInTwo`.
    fn retire(&self, w: usize) {
        let slot = &self.workers[w].slot;
        if self.variant == Variant::RetireInTwo {
            {
                let mut ctl = self.shards.ctl();
                let pos = ctl
                    .slots
                    .iter()
                    .position(|s| Arc::ptr_eq(s, slot))
                    .expect("listed");
                ctl.slots.swap_remove(pos);
            }
            let mut track = self.shards.track();
            track.retired.absorb(&mut slot.lock().window, &NoGates);
            return;
        }
        let removed = self.shards.retire(
            slot,
            || true,
            |retired, st| retired.absorb(&mut st.window, &NoGates),
        );
        assert!(removed);
    }

    /// A read (`with_window`): every operation started so far is seen exactly once.
    fn read(&self) {
        self.shards.read(|retired, slots| {
            let now = self.now;
            let mut seen: Vec<OperationId> = Vec::new();
            for st in slots.iter() {
                seen.extend(st.running.id);
                seen.extend(st.window.iter_live(now).map(|(rec, _)| rec.id));
            }
            seen.extend(retired.iter_live(now).map(|(rec, _)| rec.id));
            for worker in &self.workers {
                let started = worker.started.load(Relaxed);
                for (n, id) in worker.ops.iter().enumerate() {
                    let times = seen.iter().filter(|s| *s == id).count();
                    if n < started {
                        assert_eq!(
                            times, 1,
                            "a started operation seen {times} times in a read (not once)"
                        );
                    } else {
                        assert_eq!(times, 0, "an operation seen before it started");
                    }
                }
            }
        });
    }
}

/// Three workers, each settling its operation 1 and starting operation 2, settling 2 and
/// starting 3, then settling 3, while a reader reads twice: each started operation is seen
/// exactly once in every read.
fn settle_read(variant: Variant) {
    let model = Arc::new(Model::new(variant, 3, 3));
    let threads: Vec<_> = (0..3)
        .map(|w| {
            let m = model.clone();
            thread::spawn(move || {
                m.settle(w, Some(1));
                m.settle(w, Some(2));
                m.settle(w, None);
            })
        })
        .collect();
    model.read();
    model.read();
    for t in threads {
        t.join().unwrap();
    }
    model.read();
}

/// A worker settling operation 1, starting and settling operation 2, then leaving, while
/// another worker settles its operation and a reader reads twice.
fn retire_read(variant: Variant) {
    let model = Arc::new(Model::new(variant, 2, 2));
    let leaving = {
        let m = model.clone();
        thread::spawn(move || {
            m.settle(0, Some(1));
            m.settle(0, None);
            m.retire(0);
        })
    };
    let staying = {
        let m = model.clone();
        thread::spawn(move || m.settle(1, None))
    };
    model.read();
    model.read();
    leaving.join().unwrap();
    staying.join().unwrap();
    assert_eq!(
        model.shards.ctl().slots.len(),
        1,
        "the leaving slot still listed"
    );
    model.read();
}

#[test]
fn loom_window_settle_read() {
    model::check("window_settle_read", || settle_read(Variant::Engine));
}

#[test]
fn loom_window_retire_read() {
    model::check("window_retire_read", || retire_read(Variant::Engine));
}

/// Broken variant: the operation is taken out of `running` in one critical section and
/// recorded in the shard in another.
#[test]
#[should_panic(expected = "a started operation seen 0 times")]
fn loom_window_catches_settle_in_two() {
    model::check("window_settle_in_two", || settle_read(Variant::SettleInTwo));
}

/// Broken variant: a leaving worker's slot leaves the list, then its shard moves to the
/// retired one, in two steps.
#[test]
#[should_panic(expected = "a started operation seen 0 times")]
fn loom_window_catches_retire_in_two() {
    model::check("window_retire_in_two", || retire_read(Variant::RetireInTwo));
}
