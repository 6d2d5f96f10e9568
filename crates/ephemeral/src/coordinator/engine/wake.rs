//! Waking, parking and retiring workers, and telling producers of room.
//!
//! # Invariants
//!
//! * At most one worker is being woken at a time (`parking.waking`): a producer wakes (or
//!   spawns) a worker only when none is already on its way and some worker is parked or not
//!   yet spawned; a worker that takes an item wakes the next one only if more items are ready.
//! * Parking: a worker registers its `Notified`, then counts itself `idle`, then re-checks for
//!   work (all `SeqCst`), so a producer either sees it idle or it sees the item. Wake-alls
//!   start a new generation of `idle` with no one counted. A worker whose re-check finds work
//!   takes back a count only of its own generation and looks again; it never waits there.
//! * The handshake's own code is [`Parking`] and [`Room`], apart from tokio, so that the loom
//!   models (`loom_models.rs`) run it as is.
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
    /// whether it did (see [`Parking::wake_one`]).
    #[inline]
    pub(super) fn wake_one(&self) -> bool {
        self.parking.wake_one(self)
    }

    /// Spawns a worker if there are fewer than the limit and the coordinator is not cancelled
    /// (under the worker list's lock); returns whether it did.
    fn spawn_worker(&self) -> bool {
        let slot = self.shards.add(|| {
            if self.workers.load(SeqCst) >= self.limit.load(SeqCst) || self.cancelled.load(SeqCst) {
                return None;
            }
            self.workers.fetch_add(1, SeqCst);
            Some(Arc::new(Slot::new(
                self.hub.clone(),
                self.window_max,
                self.window_lifetime,
            )))
        });
        let Some(slot) = slot else {
            return false;
        };
        if let Some(me) = self.me.upgrade() {
            (self.spawn)(me, slot);
        }
        true
    }

    /// Wakes every parked worker (they re-read the state).
    pub(super) fn wake_all(&self) {
        self.parking.wake_all();
        self.work.notify_waiters();
    }

    /// Lets a waiting `enqueue` retry after room was made.
    pub(super) fn room_made(&self) {
        if self.room.key_waiters.load(SeqCst) > 0 {
            // A stream reader waits for some key's room: let it look again.
            self.key_room.notify_waiters();
        }
        if self.room.made() {
            self.space.notify_one();
        }
    }

    /// Whether a worker about to park must look again instead (checked after it counted
    /// itself idle, see [`Parking::park`]).
    pub(super) fn worth_looking_again(&self) -> bool {
        self.cancelled.load(SeqCst)
            || self.runnable()
            || (self.closed.load(SeqCst) && self.intake.len() == 0)
            || self.must_shrink()
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
        let gates = &self.hub.gates;
        let removed = self.shards.retire(
            slot,
            || !shrinking || self.workers.load(SeqCst) > self.limit.load(SeqCst),
            |retired, st| {
                self.workers.fetch_sub(1, SeqCst);
                retired.absorb(&mut st.window, gates);
                retired.take_dead(&mut dead);
            },
        );
        // Results that left the window are dropped outside the locks.
        drop(dead);
        removed
    }
}

impl<T, I, R> Wakeable for Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    #[inline]
    fn runnable(&self) -> bool {
        Shared::runnable(self)
    }
    #[inline]
    fn below_limit(&self) -> bool {
        self.workers.load(SeqCst) < self.limit.load(SeqCst)
    }
    fn try_spawn(&self) -> bool {
        self.spawn_worker()
    }
    #[inline]
    fn notify_one(&self) {
        self.work.notify_one();
    }
}

/// What [`Parking::wake_one`] needs from the engine around it.
///
/// The engine implements it with its intake, its worker list and a tokio `Notify`; the loom
/// models (`loom_models.rs`) with a counter and a model of that `Notify`, so they check this
/// handshake's own code. Generic, so the engine's calls are inlined as before.
pub(crate) trait Wakeable {
    /// An item is ready and intake is open to start it.
    fn runnable(&self) -> bool;
    /// Fewer workers than the limit (a cheap look at two atomics).
    fn below_limit(&self) -> bool;
    /// Spawns a worker if still below the limit and not cancelled; returns whether it did.
    fn try_spawn(&self) -> bool;
    /// Wakes one parked worker, or leaves a permit for the next to wait (tokio's
    /// `Notify::notify_one`).
    fn notify_one(&self);
}

/// The park/wake handshake's state: written when workers park and wake.
///
/// `idle` counts parked workers nobody has notified yet, per *generation*: a wake-all starts a
/// new generation with no one counted (it wakes them all). Both live in one word, so that a
/// worker taking its own count back takes it only from the generation it counted itself in:
/// a count a wake-all already cleared is never taken from a worker that parked after it (that
/// worker would then sleep uncounted, and a producer seeing no idle worker would wake nobody).
pub(crate) struct Parking {
    /// `generation << 32 | idle`.
    idle: AtomicU64,
    /// A worker is on its way (woken or spawned, not yet looking for work).
    waking: AtomicBool,
}

/// The idle count's bits of [`Parking::idle`].
const IDLE: u64 = (1 << 32) - 1;

/// What a parking worker does with its registered wake-up (see [`Parking::park`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParkWait {
    /// Do not wait: take the wake-up only if one already arrived (then this worker was the
    /// one woken and clears `waking`), and look for work again.
    Poll,
    /// Wait for the wake-up, then look for work again as the woken worker.
    Wait,
}

impl Parking {
    pub(crate) fn new() -> Self {
        Parking {
            idle: AtomicU64::new(0),
            waking: AtomicBool::new(false),
        }
    }

    /// A woken or spawned worker is looking for work: another may be woken now.
    #[inline]
    pub(crate) fn woke(&self) {
        self.waking.store(false, SeqCst);
    }

    /// Takes one idle worker's count, whatever its generation; returns whether there was one.
    #[inline]
    fn take_any(&self) -> bool {
        self.idle
            .fetch_update(SeqCst, SeqCst, |w| (w & IDLE != 0).then(|| w - 1))
            .is_ok()
    }

    /// Wakes (or spawns) one worker if an item is ready and nobody is on the way; returns
    /// whether it did. Called by producers after a push and by workers after a take.
    #[inline]
    pub(crate) fn wake_one(&self, env: &impl Wakeable) -> bool {
        // Our push (or take) is ordered before the loads below.
        crate::sync::seq_cst_point();
        // Cheapest exits first: they read lines that rarely change. With every worker spawned
        // and none parked, all are busy or about to look for work themselves.
        if self.idle.load(SeqCst) & IDLE == 0 && !env.below_limit() {
            return false;
        }
        if self.waking.load(SeqCst) || !env.runnable() {
            return false;
        }
        if self.waking.swap(true, SeqCst) {
            return false;
        }
        if self.take_any() {
            env.notify_one();
            return true;
        }
        if env.try_spawn() {
            return true;
        }
        self.waking.store(false, SeqCst);
        // A worker may have parked between our idle check and now.
        if self.take_any() {
            if !self.waking.swap(true, SeqCst) {
                env.notify_one();
                return true;
            }
            self.idle.fetch_add(1, SeqCst);
        }
        false
    }

    /// Forgets every parked worker (a new generation, no one counted): the caller then wakes
    /// them all (`notify_waiters`).
    pub(crate) fn wake_all(&self) {
        let _ = self
            .idle
            .fetch_update(SeqCst, SeqCst, |w| Some(((w >> 32) + 1) << 32));
    }

    /// A worker that found nothing to start parks. Its wake-up must be registered (tokio's
    /// `Notified::enable`) before this is called: it counts itself idle, then asks
    /// `look_again` (does work, a close or a shrink wait?), so that a producer either sees it
    /// idle or it sees the item. Says whether to wait for the wake-up or only take one that
    /// already arrived.
    #[inline]
    pub(crate) fn park(&self, look_again: impl FnOnce() -> bool) -> ParkWait {
        let generation = self.idle.fetch_add(1, SeqCst) >> 32;
        crate::sync::seq_cst_point();
        if look_again() {
            // Take our count back, unless a wake-all already cleared it (then it is no longer
            // ours to take: it may be a worker's that parked since). Either way we look again
            // rather than wait: a producer that took a count notifies the oldest parked
            // worker, which need not be us, so a wait here could last for ever (loom found
            // that: `loom_models::loom_park_wake`). A wake-up that did reach us is taken by
            // the poll, or passed on when our `Notified` is dropped.
            let _ = self.idle.fetch_update(SeqCst, SeqCst, |w| {
                (w >> 32 == generation && w & IDLE != 0).then(|| w - 1)
            });
            return ParkWait::Poll;
        }
        if self.idle.load(SeqCst) >> 32 == generation {
            ParkWait::Wait
        } else {
            // Woken by a wake-all; a wake-up stored for a parked worker may have reached us
            // too (see above).
            ParkWait::Poll
        }
    }
}

/// Producers waiting for queue room: written when a producer waits.
pub(crate) struct Room {
    /// `enqueue` calls waiting for room.
    waiters: AtomicUsize,
    /// A pop already notified the waiting producers since the last one registered.
    signalled: AtomicBool,
    /// Stream readers waiting for a key's room (an item refused with `KeyOverloaded`).
    pub(super) key_waiters: AtomicUsize,
}

impl Room {
    pub(crate) fn new() -> Self {
        Room {
            waiters: AtomicUsize::new(0),
            signalled: AtomicBool::new(false),
            key_waiters: AtomicUsize::new(0),
        }
    }

    /// A producer found the queue full and registered its wake-up (`Notified::enable`): it
    /// counts itself waiting, then retries its push. The next pop signals again (one
    /// notification per wait, not one per pop).
    #[inline]
    pub(crate) fn wait_begin(&self) {
        self.waiters.fetch_add(1, SeqCst);
        self.signalled.store(false, SeqCst);
        crate::sync::seq_cst_point();
    }

    /// The retry after [`wait_begin`](Self::wait_begin) got room: stops counting itself;
    /// returns whether other producers still wait (then, if room is left, it passes the
    /// notification on).
    #[inline]
    pub(crate) fn wait_won(&self) -> bool {
        self.waiters.fetch_sub(1, SeqCst);
        self.waiters.load(SeqCst) > 0
    }

    /// The retry was refused for good, or the wait ended (woken or dropped): stops counting
    /// itself.
    #[inline]
    pub(crate) fn wait_end(&self) {
        self.waiters.fetch_sub(1, SeqCst);
    }

    /// A pop made room: whether to notify one waiting producer (at most once per wait).
    #[inline]
    pub(crate) fn made(&self) -> bool {
        // The pop is ordered before the loads below.
        crate::sync::seq_cst_point();
        self.waiters.load(SeqCst) > 0
            && !self.signalled.load(SeqCst)
            && !self.signalled.swap(true, SeqCst)
    }

    /// Withdraws a waiting producer however its wait ends (the future may be dropped).
    pub(crate) fn waiting(&self) -> RoomGuard<'_> {
        RoomGuard(self)
    }
}

/// See [`Room::waiting`].
pub(crate) struct RoomGuard<'a>(&'a Room);

impl Drop for RoomGuard<'_> {
    fn drop(&mut self) {
        self.0.wait_end();
    }
}

/// Withdraws a stream reader's registration in `room.key_waiters` however its wait ends.
pub(super) struct WaiterGuard<'a>(pub(super) &'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}
