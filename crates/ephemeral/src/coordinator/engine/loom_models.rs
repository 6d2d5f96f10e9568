//! Loom models of the engine's handshakes (run with `RUSTFLAGS="--cfg loom"`, see
//! RELIABILITY.md).
//!
//! tokio cannot run under loom, so each model drives the engine's own handshake code
//! ([`Parking`], [`Room`]) from plain loom threads, with a counter for the intake and
//! [`model::Notify`] for tokio's `Notify`. The glue around the handshake calls (register,
//! then call, then wait or poll) follows `worker.rs` and `intake.rs` line for line.
//!
//! A lost wake-up shows as a loom deadlock: the model's main thread waits until every item
//! was run, so if an item is left in the queue while every worker sleeps (or a producer sleeps
//! while there is room), every thread is blocked.

use super::wake::{ParkWait, Parking, Room, Wakeable};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::sync::model::{self, Notify};
use loom::sync::{Condvar, Mutex};
// std's `Arc`, not loom's: when a broken variant deadlocks, loom unwinds the model, and a loom
// `Arc` dropped then would touch loom's torn-down state and abort the test run.
use loom::thread;
use std::sync::Arc;

/// How a model's parties deviate from the engine (the broken variants the models must catch).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// The engine's protocol.
    Engine,
    /// A parking worker does not look again after counting itself idle (check, then park).
    ParkWithoutRecheck,
    /// A producer facing a full queue counts itself waiting only after its last try.
    RoomRegisterAfterRetry,
}

/// The engine's surroundings of the handshake, reduced to a counter of queued items.
struct Engine {
    variant: Variant,
    parking: Parking,
    room: Room,
    /// Parked workers wait here (`Shared::work`).
    work: Notify,
    /// Producers waiting for room wait here (`Shared::space`).
    space: Notify,
    /// Items in the queue.
    queued: AtomicUsize,
    capacity: usize,
    closed: AtomicBool,
    /// Items run, for the main thread to wait on.
    ran: Mutex<usize>,
    ran_changed: Condvar,
}

impl Wakeable for Engine {
    fn runnable(&self) -> bool {
        self.queued.load(SeqCst) > 0
    }
    fn below_limit(&self) -> bool {
        // Every worker of the model is spawned up front.
        false
    }
    fn try_spawn(&self) -> bool {
        false
    }
    fn notify_one(&self) {
        self.work.notify_one();
    }
}

impl Engine {
    fn new(variant: Variant, capacity: usize) -> Self {
        Engine {
            variant,
            parking: Parking::new(),
            room: Room::new(),
            work: Notify::new(),
            space: Notify::new(),
            queued: AtomicUsize::new(0),
            capacity,
            closed: AtomicBool::new(false),
            ran: Mutex::new(0),
            ran_changed: Condvar::new(),
        }
    }

    /// The intake's push (a bounded queue).
    fn push(&self) -> bool {
        self.queued
            .fetch_update(SeqCst, SeqCst, |n| (n < self.capacity).then_some(n + 1))
            .is_ok()
    }

    /// The intake's pop.
    fn pop(&self) -> bool {
        self.queued
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// `Shared::try_push` (its wake-up after an accepted item).
    fn try_push(&self) -> bool {
        if !self.push() {
            return false;
        }
        self.parking.wake_one(self);
        true
    }

    /// `Shared::enqueue_as` (the yield before waiting left out: it only adds a try).
    fn enqueue(&self) {
        if self.try_push() {
            return;
        }
        loop {
            let mut notified = self.space.notified();
            notified.enable();
            let won = if self.variant == Variant::RoomRegisterAfterRetry {
                let won = self.try_push();
                self.room.wait_begin();
                won
            } else {
                self.room.wait_begin();
                self.try_push()
            };
            if won {
                if self.room.wait_won() && self.queued.load(SeqCst) < self.capacity {
                    self.space.notify_one();
                }
                return;
            }
            // (`intake.rs` withdraws through a guard, `Room::waiting`, for a dropped future;
            // the model's waits are never dropped, and a guard would touch loom from its
            // destructor while a failed model unwinds.)
            notified.wait();
            self.room.wait_end();
        }
    }

    /// `Shared::worth_looking_again`.
    fn worth_looking_again(&self) -> bool {
        self.runnable() || (self.closed.load(SeqCst) && self.queued.load(SeqCst) == 0)
    }

    /// The worker loop (`worker.rs`) with `Shared::next`'s take, room and wake steps.
    fn worker(&self) {
        let mut woken = true;
        loop {
            if std::mem::take(&mut woken) {
                self.parking.woke();
            }
            if self.closed.load(SeqCst) && self.queued.load(SeqCst) == 0 {
                return;
            }
            if self.pop() {
                if self.room.made() {
                    self.space.notify_one();
                }
                self.parking.wake_one(self);
                // The body.
                *self.ran.lock().unwrap() += 1;
                self.ran_changed.notify_all();
                continue;
            }
            if self.closed.load(SeqCst) && self.queued.load(SeqCst) == 0 {
                return;
            }
            let mut notified = self.work.notified();
            notified.enable();
            let wait = if self.variant == Variant::ParkWithoutRecheck {
                self.parking.park(|| false)
            } else {
                self.parking.park(|| self.worth_looking_again())
            };
            match wait {
                ParkWait::Poll => woken = notified.now_or_never(),
                ParkWait::Wait => {
                    notified.wait();
                    woken = true;
                }
            }
        }
    }

    /// Waits until `n` items ran (a loom deadlock if a wake-up was lost), then closes like
    /// `complete`: `closed`, then wake every worker.
    fn wait_then_close(&self, n: usize) {
        let mut ran = self.ran.lock().unwrap();
        while *ran < n {
            ran = self.ran_changed.wait(ran).unwrap();
        }
        drop(ran);
        self.closed.store(true, SeqCst);
        self.parking.wake_all();
        self.work.notify_waiters();
    }
}

/// `workers` workers, `producers` producers enqueueing `per_producer` items each into a queue
/// of `capacity`: every item runs, and then every thread ends.
fn run(variant: Variant, workers: usize, producers: usize, per_producer: usize, capacity: usize) {
    let engine = Arc::new(Engine::new(variant, capacity));
    let mut threads = Vec::new();
    for _ in 0..workers {
        let e = engine.clone();
        threads.push(thread::spawn(move || e.worker()));
    }
    for _ in 0..producers {
        let e = engine.clone();
        threads.push(thread::spawn(move || {
            for _ in 0..per_producer {
                e.enqueue();
            }
        }));
    }
    engine.wait_then_close(producers * per_producer);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(engine.queued.load(SeqCst), 0);
}

/// Two workers, one producer enqueueing two items: no item is left in the queue while every
/// worker sleeps, and no worker sleeps for ever after the close.
#[test]
fn loom_park_wake() {
    model::check("park_wake", || run(Variant::Engine, 2, 1, 2, 2));
}

/// One worker, one producer putting two items through a queue of one: no producer sleeps
/// while there is room, and no item waits while the worker sleeps.
#[test]
fn loom_room_waiter() {
    model::check("room_waiter", || run(Variant::Engine, 1, 1, 2, 1));
}

/// Two producers waiting for room in a queue of one at once: the notification is passed on.
#[test]
fn loom_room_two_waiters() {
    model::check("room_two_waiters", || run(Variant::Engine, 1, 2, 1, 1));
}

/// Broken variant: a worker that parks without looking again after counting itself idle.
#[test]
#[should_panic(expected = "deadlock")]
fn loom_park_wake_catches_park_without_recheck() {
    model::check("park_without_recheck", || {
        run(Variant::ParkWithoutRecheck, 2, 1, 2, 2);
    });
}

/// Broken variant: a producer that counts itself waiting for room after its last try.
#[test]
#[should_panic(expected = "deadlock")]
fn loom_room_catches_register_after_retry() {
    model::check("room_register_after_retry", || {
        run(Variant::RoomRegisterAfterRetry, 1, 1, 2, 1);
    });
}
