//! The one engine behind every coordinator.
//!
//! # Shape
//!
//! A pool of long-lived worker tasks (never one task per item) pulls from an [`Intake`]: a
//! lock-free bounded ring for plain coordinators, per-key queues behind a short lock for keyed
//! ones. **The worker count is the concurrency cap**: each worker runs one body at a time,
//! workers are spawned on demand up to the limit, and they leave when the limit shrinks below
//! their number, so no per-item permit exists.
//!
//! The hot path takes no engine-wide lock. A producer checks a few atomics and pushes into the
//! intake. A worker marks its [`Slot`] busy, pops, runs the body, then records the finished
//! operation in the window (`track`, a lock only workers and readers take), reading the clock
//! once per item (the end of one item is the start of the next). Bodies write their signals
//! into their worker's slot.
//!
//! # Wake discipline
//!
//! At most one worker is being woken at a time (`waking`). A producer wakes (or spawns) a
//! worker only when none is already on its way and some worker is parked or not yet spawned;
//! a worker that takes an item wakes the next one only if more items are ready. Workers drain
//! the intake before parking.
//!
//! # Invariants
//!
//! * Running bodies never exceed the number of workers, which never exceeds the limit in force
//!   when the newest of them was spawned; after a shrink, workers above the limit leave before
//!   taking another item.
//! * A worker marks itself busy *before* popping, and a producer counts itself in `pushing`
//!   around its push, so "closed, `pushing == 0`, intake empty, no busy slot" is exactly
//!   drained. Every party that moves one of these towards zero re-checks and notifies.
//! * Parking: a worker registers its `Notified`, then counts itself `idle`, then re-checks for
//!   work (all sequentially consistent), so a producer either sees it idle or it sees the item.
//!   Wake-alls zero `idle` and bump `wake_all_gen`.
//! * After a drain, `enqueued == completed + failed + cancelled`.

use super::error::{EnqueueError, TryEnqueueError};
use super::scheduler::{Intake, Job, Refused};
use super::Stats;
use crate::id::OperationId;
use crate::operation::hub::Hub;
use crate::operation::{Operation, OperationError, OperationSnapshot, Slot};
use crate::options::{Options, SampleHandler};
use crate::signal::reactive::GateKind;
use crate::signal::SignalEvent;
use crate::time;
use crate::window::{Finished, Window};
use crate::BoxError;
use futures_util::FutureExt;
use std::future::Future;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type SpawnFn<T, I, R> = Box<dyn Fn(Arc<Shared<T, I, R>>, Arc<Slot>) + Send + Sync>;

pub(crate) struct Shared<T, I: Intake<T>, R> {
    pub(crate) intake: I,
    /// The finished-operation window and outcome counters: taken by workers finishing items
    /// and by readers. Lock order: `track` before `ctl`.
    track: Mutex<Track<R>>,
    /// Worker bookkeeping (spawn, exit, the slot list readers walk). Rarely taken.
    ctl: Mutex<Ctl>,
    pub(crate) hub: Arc<Hub>,

    closed: AtomicBool,
    cancelled: AtomicBool,
    paused: AtomicBool,
    limit: AtomicUsize,
    workers: AtomicUsize,
    space_waiters: AtomicUsize,
    wake_all_gen: AtomicU64,
    cancelled_items: AtomicU64,
    defer_timeouts: AtomicU64,
    /// Written by producers on every push: kept off the lines workers write.
    producer: Padded<ProducerCounters>,
    /// Written when workers park and wake.
    parking: Padded<Parking>,

    /// Parked workers wait here.
    work: Notify,
    /// `enqueue` calls waiting for queue room wait here.
    space: Notify,
    /// `drain` waits here.
    drained: Notify,

    capacity: usize,
    dynamic: bool,
    fair: bool,
    on_sample: Option<SampleHandler>,
    defer_interval: Duration,
    max_defer_attempts: u32,
    pub(crate) name: Option<Arc<str>>,
    runtime: tokio::runtime::Handle,
    /// Whether the runtime has several worker threads (and so LIFO slots).
    multi_thread: bool,
    spawn: SpawnFn<T, I, R>,
    me: Weak<Self>,
    /// Stops the parent-token watcher when the coordinator goes away.
    stop_watch: CancellationToken,
    /// Cancelled when the coordinator closes (stream feeders stop reading).
    pub(crate) closed_token: CancellationToken,
}

struct Ctl {
    slots: Vec<Arc<Slot>>,
}

/// Keeps a value on cache lines of its own, so writers of neighbouring fields do not steal
/// them (128 bytes: adjacent-line prefetching pairs lines on x86).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

struct ProducerCounters {
    /// Producers inside a push (so a drain never misses an item landing after `complete`).
    pushing: AtomicUsize,
    enqueued: AtomicU64,
}

struct Parking {
    /// Parked workers nobody has notified yet.
    idle: AtomicUsize,
    /// A worker is on its way (woken or spawned, not yet looking for work).
    waking: AtomicBool,
}

/// What finished operations left behind.
struct Track<R> {
    window: Window<R>,
    completed: u64,
    failed: u64,
}

/// What an item of a worker came to.
struct Done<K, R> {
    key: K,
    outcome: Result<R, OperationError>,
}

enum Next<T, K> {
    /// Run this item; `woke` says whether another worker was woken or spawned first.
    Run(Job<T, K>, bool),
    Park,
    Exit,
}

/// Why an item was refused (with the item and its key, for a retry).
enum Refusal<T, K> {
    Full(T, K),
    Closed(T),
    Rejected(T),
    KeyOverloaded(T),
}

impl<T, K> Refusal<T, K> {
    fn into_try(self) -> TryEnqueueError<T> {
        match self {
            Refusal::Full(t, _) => TryEnqueueError::Full(t),
            Refusal::Closed(t) => TryEnqueueError::Closed(t),
            Refusal::Rejected(t) => TryEnqueueError::Rejected(t),
            Refusal::KeyOverloaded(t) => TryEnqueueError::KeyOverloaded(t),
        }
    }
}

/// Decrements `counter` if it is positive; answers whether it did.
fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    /// Builds the engine for `body`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or on invalid options.
    #[track_caller]
    pub(crate) fn start<F, Fut, E>(
        make_intake: impl FnOnce(&Options) -> I,
        options: Options,
        body: F,
    ) -> Arc<Self>
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let options = options.validated();
        let runtime = tokio::runtime::Handle::try_current()
            .expect("ephemeral coordinators must be created within a tokio runtime");
        let token = match &options.cancellation_token {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        let hub = Arc::new(Hub::new(&options, token));
        let body = Arc::new(body);
        let spawn_rt = runtime.clone();
        let spawn: SpawnFn<T, I, R> = Box::new(move |shared, slot| {
            spawn_rt.spawn(worker(shared, slot, body.clone()));
        });
        let shared = Arc::new_cyclic(|me| Shared {
            intake: make_intake(&options),
            track: Mutex::new(Track {
                window: Window::new(
                    options.max_tracked_operations,
                    options.max_operation_lifetime,
                ),
                completed: 0,
                failed: 0,
            }),
            ctl: Mutex::new(Ctl { slots: Vec::new() }),
            hub,
            closed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            limit: AtomicUsize::new(options.max_concurrency),
            workers: AtomicUsize::new(0),
            space_waiters: AtomicUsize::new(0),
            wake_all_gen: AtomicU64::new(0),
            cancelled_items: AtomicU64::new(0),
            defer_timeouts: AtomicU64::new(0),
            producer: Padded(ProducerCounters {
                pushing: AtomicUsize::new(0),
                enqueued: AtomicU64::new(0),
            }),
            parking: Padded(Parking {
                idle: AtomicUsize::new(0),
                waking: AtomicBool::new(false),
            }),
            work: Notify::new(),
            space: Notify::new(),
            drained: Notify::new(),
            capacity: options.effective_queue_capacity(),
            dynamic: options.dynamic_concurrency,
            fair: options.fair_scheduling,
            on_sample: options.on_sample.clone(),
            defer_interval: options.defer_check_interval,
            max_defer_attempts: options.max_defer_attempts,
            name: options.name.clone(),
            multi_thread: matches!(
                runtime.runtime_flavor(),
                tokio::runtime::RuntimeFlavor::MultiThread
            ),
            runtime,
            spawn,
            me: me.clone(),
            stop_watch: CancellationToken::new(),
            closed_token: CancellationToken::new(),
        });
        if let Some(parent) = options.cancellation_token {
            let weak = Arc::downgrade(&shared);
            let stop = shared.stop_watch.clone();
            shared.runtime.spawn(async move {
                tokio::select! {
                    () = parent.cancelled() => {
                        if let Some(shared) = weak.upgrade() {
                            shared.cancel();
                        }
                    }
                    () = stop.cancelled() => {}
                }
            });
        }
        shared
    }

    fn track(&self) -> MutexGuard<'_, Track<R>> {
        // No user code runs under this lock except drops of evicted results; the state is
        // consistent at every unlock, so a poisoned lock is still usable.
        self.track.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ctl(&self) -> MutexGuard<'_, Ctl> {
        // Same reasoning as `track`.
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- intake -------------------------------------------------------------------------

    /// Whether a cancel-on / defer-on signal is present (exact: expired operations are purged
    /// before a positive window count is believed).
    fn gate_active(&self, kind: GateKind) -> bool {
        let gates = &self.hub.gates;
        if !gates.configured(kind) {
            return false;
        }
        if gates.window_maybe(kind) {
            self.track().window.purge_all(time::now(), gates);
            if gates.window_maybe(kind) {
                return true;
            }
        }
        gates.sink_active(kind)
    }

    fn try_push(&self, item: T, key: I::Key) -> Result<OperationId, Refusal<T, I::Key>> {
        if self.gate_active(GateKind::Cancel) {
            // Closed wins over Rejected.
            return Err(if self.closed.load(SeqCst) {
                Refusal::Closed(item)
            } else {
                Refusal::Rejected(item)
            });
        }
        self.producer.pushing.fetch_add(1, SeqCst);
        let outcome = if self.closed.load(SeqCst) {
            Err(Refusal::Closed(item))
        } else {
            match self.intake.try_push(item, key, self.capacity, self.fair) {
                Ok(id) => {
                    self.producer.enqueued.fetch_add(1, SeqCst);
                    Ok(id)
                }
                Err(Refused::Full(item, key)) => Err(Refusal::Full(item, key)),
                Err(Refused::KeyOverloaded(item)) => Err(Refusal::KeyOverloaded(item)),
            }
        };
        self.producer.pushing.fetch_sub(1, SeqCst);
        if outcome.is_ok() {
            self.wake_one();
        }
        if self.closed.load(SeqCst) {
            // We may have been the last party a drain or an exiting worker waited for.
            self.wake_one();
            self.check_drained();
        }
        outcome
    }

    pub(crate) fn try_enqueue(
        &self,
        item: T,
        key: I::Key,
    ) -> Result<OperationId, TryEnqueueError<T>> {
        self.try_push(item, key).map_err(Refusal::into_try)
    }

    pub(crate) async fn enqueue(
        &self,
        item: T,
        key: I::Key,
    ) -> Result<OperationId, EnqueueError<T>> {
        let (mut item, mut key) = match self.try_push(item, key) {
            Ok(id) => return Ok(id),
            Err(Refusal::Full(item, key)) => (item, key),
            Err(Refusal::Closed(t)) => return Err(EnqueueError::Closed(t)),
            Err(Refusal::Rejected(t)) => return Err(EnqueueError::Rejected(t)),
            Err(Refusal::KeyOverloaded(t)) => return Err(EnqueueError::KeyOverloaded(t)),
        };
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.space_waiters.fetch_add(1, SeqCst);
            let attempt = self.try_push(item, key);
            match attempt {
                Ok(id) => {
                    self.space_waiters.fetch_sub(1, SeqCst);
                    return Ok(id);
                }
                Err(Refusal::Full(i, k)) => {
                    item = i;
                    key = k;
                    // Cancel safety: the guard withdraws our registration if this future is
                    // dropped while waiting.
                    let guard = WaiterGuard(&self.space_waiters);
                    notified.await;
                    drop(guard);
                }
                Err(refusal) => {
                    self.space_waiters.fetch_sub(1, SeqCst);
                    return Err(match refusal {
                        Refusal::Closed(t) => EnqueueError::Closed(t),
                        Refusal::Rejected(t) => EnqueueError::Rejected(t),
                        Refusal::KeyOverloaded(t) => EnqueueError::KeyOverloaded(t),
                        Refusal::Full(..) => unreachable!("handled above"),
                    });
                }
            }
        }
    }

    // ----- waking -------------------------------------------------------------------------

    /// Whether an item is ready and intake is open to start it.
    fn runnable(&self) -> bool {
        !self.paused.load(SeqCst) && !self.cancelled.load(SeqCst) && self.intake.has_ready()
    }

    /// Wakes (or spawns) one worker if an item is ready and nobody is on the way; answers
    /// whether it did.
    fn wake_one(&self) -> bool {
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
            let slot = Arc::new(Slot::new(self.hub.clone()));
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
    fn wake_all(&self) {
        self.parking.idle.store(0, SeqCst);
        self.wake_all_gen.fetch_add(1, SeqCst);
        self.work.notify_waiters();
    }

    fn is_drained_now(&self) -> bool {
        self.closed.load(SeqCst)
            && self.producer.pushing.load(SeqCst) == 0
            && self.intake.len() == 0
            && self.active_now() == 0
    }

    /// Workers that are busy: looking for an item, running a body, or sampling after one.
    fn active_now(&self) -> usize {
        self.ctl()
            .slots
            .iter()
            .filter(|s| s.busy.load(SeqCst))
            .count()
    }

    /// Notifies drain waiters and parked workers if the coordinator is drained.
    fn check_drained(&self) {
        if self.is_drained_now() {
            self.wake_all();
            self.drained.notify_waiters();
        }
    }

    /// Lets a waiting `enqueue` retry after room was made.
    fn room_made(&self) {
        if self.space_waiters.load(SeqCst) > 0 {
            self.space.notify_one();
        }
    }

    // ----- the worker's side ----------------------------------------------------------------

    /// Takes the next item, or says to park or exit.
    fn next(
        &self,
        slot: &Arc<Slot>,
        now: Instant,
        cancel_gate: bool,
        overrun: bool,
    ) -> Next<T, I::Key> {
        loop {
            if self.cancelled.load(SeqCst) {
                return Next::Exit;
            }
            if self.workers.load(SeqCst) > self.limit.load(SeqCst) && self.try_exit_for_shrink(slot)
            {
                return Next::Exit;
            }
            if self.paused.load(SeqCst) {
                return self.park_or_exit();
            }
            // Busy before popping: a drain check that finds the intake empty then sees us.
            // No per-item permit is needed: each worker runs one body at a time, and there are
            // never more workers than the limit that was in force when they started.
            slot.busy.store(true, SeqCst);
            let Some(job) = self.intake.pop() else {
                slot.busy.store(false, SeqCst);
                self.check_drained();
                return self.park_or_exit();
            };
            self.room_made();
            if cancel_gate {
                // A cancel-on signal is present: queued items are not started.
                self.cancelled_items.fetch_add(1, SeqCst);
                self.intake.release(&job.key);
                slot.busy.store(false, SeqCst);
                drop(job);
                continue;
            }
            if overrun {
                self.defer_timeouts.fetch_add(1, SeqCst);
            }
            slot.start(job.id, job.label.clone(), job.seq, now);
            let woke = self.wake_one();
            return Next::Run(job, woke);
        }
    }

    /// Nothing to start: exit if the coordinator is done with us, else park.
    fn park_or_exit(&self) -> Next<T, I::Key> {
        if self.closed.load(SeqCst)
            && self.producer.pushing.load(SeqCst) == 0
            && self.intake.len() == 0
        {
            Next::Exit
        } else {
            Next::Park
        }
    }

    /// Leaves if there are more workers than the limit; answers whether this worker left.
    fn try_exit_for_shrink(&self, slot: &Arc<Slot>) -> bool {
        let mut ctl = self.ctl();
        if self.workers.load(SeqCst) <= self.limit.load(SeqCst) {
            return false;
        }
        self.workers.fetch_sub(1, SeqCst);
        ctl.slots.retain(|s| !Arc::ptr_eq(s, slot));
        true
    }

    /// Unregisters an exiting worker (shrink exits already did).
    fn exit(&self, slot: &Arc<Slot>) {
        let mut ctl = self.ctl();
        if let Some(pos) = ctl.slots.iter().position(|s| Arc::ptr_eq(s, slot)) {
            ctl.slots.swap_remove(pos);
            self.workers.fetch_sub(1, SeqCst);
        }
        drop(ctl);
        // Someone else may have to take over (a shrink exit while items are ready).
        self.wake_one();
        self.check_drained();
    }

    /// Moves a finished operation from its slot into the window, counts it and frees its run
    /// slot.
    fn finish(&self, slot: &Slot, done: Done<I::Key, R>, now: Instant) {
        let ended = slot.finish();
        {
            let mut track = self.track();
            let (error, result) = match done.outcome {
                Ok(r) => {
                    track.completed += 1;
                    (None, Some(r))
                }
                Err(e) => {
                    track.failed += 1;
                    (Some(e), None)
                }
            };
            track.window.push(
                Finished {
                    id: ended.id,
                    key: ended.key,
                    seq: ended.seq,
                    start: ended.start,
                    end: now,
                    error,
                    signals: ended.signals,
                    result,
                },
                ended.pinned,
                now,
                &self.hub.gates,
            );
        }
        self.intake.release(&done.key);
    }

    /// Calls `on_sample` for an operation that just finished (the worker stays busy, so drain
    /// waits for it).
    fn sample(&self, sampler: &SampleHandler) {
        let snapshot = self.snapshot_where(|_| true);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| sampler(&snapshot)));
    }

    // ----- control ------------------------------------------------------------------------

    pub(crate) fn complete(&self) -> bool {
        if self.closed.swap(true, SeqCst) {
            return false;
        }
        self.closed_token.cancel();
        self.wake_all();
        self.space.notify_waiters();
        self.check_drained();
        true
    }

    pub(crate) fn cancel(&self) {
        let first = !self.cancelled.swap(true, SeqCst);
        self.closed.store(true, SeqCst);
        if first {
            let mut items = Vec::new();
            self.intake.drain_into(&mut items);
            self.cancelled_items.fetch_add(items.len() as u64, SeqCst);
            drop(items);
        }
        self.closed_token.cancel();
        self.hub.token.cancel();
        self.wake_all();
        self.space.notify_waiters();
        self.check_drained();
    }

    pub(crate) async fn drain(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_drained_now() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn is_drained(&self) -> bool {
        self.is_drained_now()
    }

    pub(crate) fn pause(&self) {
        self.paused.store(true, SeqCst);
    }

    pub(crate) fn resume(&self) {
        self.paused.store(false, SeqCst);
        self.wake_one();
    }

    pub(crate) fn set_max_concurrency(&self, n: usize) -> Result<(), super::ConcurrencyError> {
        if !self.dynamic {
            return Err(super::ConcurrencyError::NotDynamic);
        }
        if n == 0 {
            return Err(super::ConcurrencyError::Zero);
        }
        let old = self.limit.swap(n, SeqCst);
        if n > old {
            // Growing: start the chain of wakes.
            self.wake_one();
        } else if self.workers.load(SeqCst) > n {
            // Shrinking: parked workers above the limit leave when they look again; running
            // ones leave as they finish.
            self.wake_all();
        }
        Ok(())
    }

    // ----- reads --------------------------------------------------------------------------

    pub(crate) fn stats(&self) -> Stats {
        let track = self.track();
        Stats {
            pending: self.intake.len(),
            active: self.active_now(),
            enqueued: self.producer.enqueued.load(SeqCst),
            completed: track.completed,
            failed: track.failed,
            cancelled: self.cancelled_items.load(SeqCst),
            max_concurrency: self.limit.load(SeqCst),
            paused: self.paused.load(SeqCst),
            closed: self.closed.load(SeqCst),
            defer_timeouts: self.defer_timeouts.load(SeqCst),
            signal_handler_drops: self.hub.handler_drops(),
            signal_handler_failures: self.hub.handler_failures(),
        }
    }

    /// Snapshots of the window (running and finished) that pass `keep`, in start order.
    pub(crate) fn snapshot_where(
        &self,
        mut keep: impl FnMut(&OperationSnapshot) -> bool,
    ) -> Vec<OperationSnapshot> {
        let keep = std::cell::RefCell::new(&mut keep);
        self.window_map(
            |s| (keep.borrow_mut())(&s).then_some(s),
            |rec, pinned| {
                let s = rec.snapshot(pinned);
                (keep.borrow_mut())(&s).then_some(s)
            },
        )
    }

    /// Maps every operation of the window (running ones through `running`, finished ones
    /// through `finished`), in start order.
    pub(crate) fn window_map<X>(
        &self,
        mut running: impl FnMut(OperationSnapshot) -> Option<X>,
        mut finished: impl FnMut(&Finished<R>, bool) -> Option<X>,
    ) -> Vec<X> {
        let now = time::now();
        let mut out = Vec::new();
        {
            let track = self.track();
            let ctl = self.ctl();
            for slot in &ctl.slots {
                let r = slot.lock();
                if let Some(x) = r.snapshot().and_then(&mut running) {
                    out.push((r.seq, x));
                }
            }
            drop(ctl);
            for (rec, pinned) in track.window.iter_live(now) {
                if let Some(x) = finished(rec, pinned) {
                    out.push((rec.seq, x));
                }
            }
        }
        out.sort_unstable_by_key(|(seq, _)| *seq);
        out.into_iter().map(|(_, x)| x).collect()
    }

    /// Finished operations of the window mapped through `f`, in start order.
    pub(crate) fn finished_where<X>(
        &self,
        f: impl FnMut(&Finished<R>, bool) -> Option<X>,
    ) -> Vec<X> {
        self.window_map(|_| None, f)
    }

    /// Visits every live window signal, operations in start order.
    pub(crate) fn visit_signals(&self, visit: &mut dyn FnMut(&SignalEvent) -> ControlFlow<()>) {
        let now = time::now();
        let track = self.track();
        let ctl = self.ctl();
        let guards: Vec<_> = ctl.slots.iter().map(|s| s.lock()).collect();
        let mut ops: Vec<(u64, &[SignalEvent])> = guards
            .iter()
            .filter(|r| r.id.is_some())
            .map(|r| (r.seq, r.signals.as_slice()))
            .chain(
                track
                    .window
                    .iter_live(now)
                    .map(|(rec, _)| (rec.seq, rec.signals.as_slice())),
            )
            .filter(|(_, s)| !s.is_empty())
            .collect();
        ops.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, signals) in ops {
            for e in signals {
                if visit(e).is_break() {
                    return;
                }
            }
        }
    }

    pub(crate) fn pin(&self, id: OperationId) -> bool {
        let mut track = self.track();
        let ctl = self.ctl();
        for slot in &ctl.slots {
            let mut r = slot.lock();
            if r.id == Some(id) {
                r.pinned = true;
                return true;
            }
        }
        drop(ctl);
        track.window.pin(id, time::now())
    }

    pub(crate) fn unpin(&self, id: OperationId) -> bool {
        let mut track = self.track();
        let ctl = self.ctl();
        for slot in &ctl.slots {
            let mut r = slot.lock();
            if r.id == Some(id) {
                let was = r.pinned;
                r.pinned = false;
                return was;
            }
        }
        drop(ctl);
        track.window.unpin(id, time::now(), &self.hub.gates)
    }

    pub(crate) fn evict(&self, id: OperationId) -> bool {
        self.track().window.evict(id, &self.hub.gates)
    }

    pub(crate) fn window_held(&self) -> usize {
        let track = self.track();
        let ctl = self.ctl();
        track.window.held() + ctl.slots.iter().filter(|s| s.lock().id.is_some()).count()
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        self.limit.load(SeqCst)
    }

    /// Feeds `stream` into the coordinator in the background, then completes it. Stops reading
    /// when the coordinator closes, so the feeder never outlives it.
    pub(crate) fn feed<St>(
        self: &Arc<Self>,
        stream: St,
        key_of: impl Fn(&T) -> I::Key + Send + 'static,
    ) where
        St: futures_util::Stream<Item = T> + Send + 'static,
    {
        let shared = self.clone();
        self.runtime.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let closed = shared.closed_token.clone();
            loop {
                let item = tokio::select! {
                    item = futures_util::StreamExt::next(&mut stream) => item,
                    () = closed.cancelled() => None,
                };
                let Some(item) = item else { break };
                let key = key_of(&item);
                if shared.enqueue(item, key).await.is_err() {
                    break;
                }
            }
            shared.complete();
        });
    }
}

impl<T, I: Intake<T>, R> Drop for Shared<T, I, R> {
    fn drop(&mut self) {
        self.stop_watch.cancel();
    }
}

/// Withdraws an `enqueue` waiter's registration however its wait ends.
struct WaiterGuard<'a>(&'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// One worker: runs items one after another until the coordinator no longer needs it.
async fn worker<T, I, R, F, Fut, E>(shared: Arc<Shared<T, I, R>>, slot: Arc<Slot>, body: Arc<F>)
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    // Spawned or woken workers clear `waking` once they look for work.
    let mut woken = true;
    let mut defer_attempts = 0u32;
    let mut now = time::now();
    loop {
        if std::mem::take(&mut woken) {
            shared.parking.waking.store(false, SeqCst);
        }
        let mut overrun = false;
        if shared.hub.gates.configured(GateKind::Defer) && shared.gate_active(GateKind::Defer) {
            if defer_attempts < shared.max_defer_attempts && shared.intake.has_ready() {
                defer_attempts += 1;
                tokio::select! {
                    () = tokio::time::sleep(shared.defer_interval) => {}
                    () = shared.hub.token.cancelled() => {}
                }
                now = time::now();
                continue;
            }
            overrun = defer_attempts >= shared.max_defer_attempts;
        }
        let cancel_gate = shared.gate_active(GateKind::Cancel);
        match shared.next(&slot, now, cancel_gate, overrun) {
            Next::Run(job, woke) => {
                defer_attempts = 0;
                if woke && shared.multi_thread {
                    // The worker we just woke sits in this thread's LIFO slot, which other
                    // threads cannot steal from: let it start before our body, which might
                    // block this thread before its first await. (A current-thread runtime
                    // has no stealing, and a blocking body blocks it whatever we do.)
                    tokio::task::yield_now().await;
                }
                let op = Operation::new(slot.clone(), job.id, job.label);
                let item = job.item;
                let body = &*body;
                let outcome = AssertUnwindSafe(async move { body(item, op).await })
                    .catch_unwind()
                    .await;
                let outcome = match outcome {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(OperationError::from_error(e)),
                    Err(panic) => Err(OperationError::panic(panic)),
                };
                // Only failures pay for reading the token (it takes a lock).
                let outcome = outcome.map_err(|e| {
                    let cancelled = shared.hub.token.is_cancelled();
                    if cancelled {
                        // A parent token may have fired: stop taking items now rather than
                        // when its watcher task runs.
                        shared.cancel();
                    }
                    e.with_cancelled(cancelled)
                });
                now = time::now();
                shared.finish(
                    &slot,
                    Done {
                        key: job.key,
                        outcome,
                    },
                    now,
                );
                if let Some(sampler) = &shared.on_sample {
                    shared.sample(sampler);
                    now = time::now();
                }
                slot.busy.store(false, SeqCst);
                shared.check_drained();
            }
            Next::Park => {
                defer_attempts = 0;
                let notified = shared.work.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let generation = shared.wake_all_gen.load(SeqCst);
                shared.parking.idle.fetch_add(1, SeqCst);
                // Re-check after registering: a producer either saw us idle or we see its item.
                let again = shared.cancelled.load(SeqCst)
                    || shared.runnable()
                    || (shared.closed.load(SeqCst)
                        && shared.producer.pushing.load(SeqCst) == 0
                        && shared.intake.len() == 0)
                    || shared.workers.load(SeqCst) > shared.limit.load(SeqCst);
                if again {
                    if take_one(&shared.parking.idle) {
                        now = time::now();
                        continue;
                    }
                    // Someone already counted us as woken: the notification is ours.
                    notified.await;
                    woken = true;
                    now = time::now();
                    continue;
                }
                if shared.wake_all_gen.load(SeqCst) == generation {
                    notified.await;
                    woken = true;
                }
                now = time::now();
            }
            Next::Exit => {
                shared.exit(&slot);
                return;
            }
        }
    }
}
