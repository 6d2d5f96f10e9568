//! Waking, parking and retiring workers, and telling producers of room.
//!
//! # Invariants
//!
//! * At most one worker is being woken at a time (`parking.waking`): a producer wakes (or
//!   spawns) a worker only when none is already on its way and some worker is parked or not
//!   yet spawned; a worker that takes an item wakes the next one only if more items are ready.
//! * Parking: a worker registers its `Notified`, then counts itself `idle`, then re-checks for
//!   work (all `SeqCst`), so a producer either sees it idle or it sees the item. Wake-alls
//!   zero `idle` and bump `wake_all_gen`.
//! * A producer waiting for room counts itself in `room.waiters` after registering its
//!   `Notified` and before its last try; the first pop after that notifies once
//!   (`room.signalled`), and a producer that got room passes the notification on.

use super::*;

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    /// Whether an item is ready and intake is open to start it.
    pub(super) fn runnable(&self) -> bool {
        !self.paused.load(SeqCst) && !self.cancelled.load(SeqCst) && self.intake.has_ready()
    }

    /// Wakes (or spawns) one worker if an item is ready and nobody is on the way; returns
    /// whether it did.
    pub(super) fn wake_one(&self) -> bool {
        // Cheapest exits first: they read lines that rarely change. With every worker spawned
        // and none parked, all are busy or about to look for work themselves.
        if self.parking.idle.load(SeqCst) == 0
            && self.workers.load(SeqCst) >= self.limit.load(SeqCst)
        {
            return false;
        }
        if self.parking.waking.load(SeqCst) || !self.runnable() {
            return false;
        }
        if self.parking.waking.swap(true, SeqCst) {
            return false;
        }
        if take_one(&self.parking.idle) {
            self.work.notify_one();
            return true;
        }
        let mut ctl = self.ctl();
        if self.workers.load(SeqCst) < self.limit.load(SeqCst) && !self.cancelled.load(SeqCst) {
            let slot = Arc::new(Slot::new(
                self.hub.clone(),
                self.window_max,
                self.window_lifetime,
            ));
            ctl.slots.push(slot.clone());
            self.workers.fetch_add(1, SeqCst);
            drop(ctl);
            if let Some(me) = self.me.upgrade() {
                (self.spawn)(me, slot);
            }
            return true;
        }
        drop(ctl);
        self.parking.waking.store(false, SeqCst);
        // A worker may have parked between our idle check and now.
        if take_one(&self.parking.idle) {
            if !self.parking.waking.swap(true, SeqCst) {
                self.work.notify_one();
                return true;
            }
            self.parking.idle.fetch_add(1, SeqCst);
        }
        false
    }

    /// Wakes every parked worker (they re-read the state).
    pub(super) fn wake_all(&self) {
        self.parking.idle.store(0, SeqCst);
        self.wake_all_gen.fetch_add(1, SeqCst);
        self.work.notify_waiters();
    }

    /// Lets a waiting `enqueue` retry after room was made.
    pub(super) fn room_made(&self) {
        if self.room.key_waiters.load(SeqCst) > 0 {
            // A stream reader waits for some key's room: let it look again.
            self.key_room.notify_waiters();
        }
        if self.room.waiters.load(SeqCst) > 0
            && !self.room.signalled.load(SeqCst)
            && !self.room.signalled.swap(true, SeqCst)
        {
            self.space.notify_one();
        }
    }

    /// Nothing to start: exit if the coordinator is done with us, else park.
    pub(super) fn park_or_exit(&self) -> Next<T, I::Key, I::Label> {
        // A producer that was already past its `closed` check spawns a worker for its item.
        if self.closed.load(SeqCst) && self.intake.len() == 0 {
            Next::Exit
        } else {
            Next::Park
        }
    }

    /// Whether there are more workers than the limit (checked again under the lock by
    /// [`try_exit_for_shrink`](Self::try_exit_for_shrink)).
    pub(super) fn must_shrink(&self) -> bool {
        self.workers.load(SeqCst) > self.limit.load(SeqCst)
    }

    /// Leaves if there are more workers than the limit; returns whether this worker left. Its
    /// finished operations move to the window of retired workers.
    pub(super) fn try_exit_for_shrink(&self, slot: &WorkerSlot<T, I, R>) -> bool {
        self.unregister(slot, true)
    }

    /// Unregisters an exiting worker (shrink exits already did).
    pub(super) fn exit(&self, slot: &WorkerSlot<T, I, R>) {
        self.unregister(slot, false);
        // Someone else may have to take over (a shrink exit while items are ready).
        self.wake_one();
        self.check_drained();
    }

    /// Removes `slot` from the workers (only if they exceed the limit, with `shrinking`) and
    /// moves its finished operations to the retired window; returns whether it did.
    fn unregister(&self, slot: &WorkerSlot<T, I, R>, shrinking: bool) -> bool {
        let mut dead = Vec::new();
        let mut track = self.track();
        let mut ctl = self.ctl();
        if shrinking && self.workers.load(SeqCst) <= self.limit.load(SeqCst) {
            return false;
        }
        let Some(pos) = ctl.slots.iter().position(|s| Arc::ptr_eq(s, slot)) else {
            return false;
        };
        ctl.slots.swap_remove(pos);
        self.workers.fetch_sub(1, SeqCst);
        track
            .retired
            .absorb(&mut slot.lock().window, &self.hub.gates);
        track.retired.take_dead(&mut dead);
        drop(ctl);
        drop(track);
        // Results that left the window are dropped outside the locks.
        drop(dead);
        true
    }
}

/// Withdraws an `enqueue` waiter's registration however its wait ends.
pub(super) struct WaiterGuard<'a>(pub(super) &'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}
