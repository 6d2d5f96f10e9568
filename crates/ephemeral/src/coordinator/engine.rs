//! The one engine behind every coordinator.
//!
//! # Shape
//!
//! A pool of long-lived worker tasks (never one task per item) pulls from a scheduler (plain
//! FIFO or per-key queues) under one lock. The worker count follows the concurrency limit:
//! workers are spawned on demand up to the limit and exit when the limit shrinks below their
//! number, so running bodies never exceed the newest limit once the excess has finished.
//!
//! Each worker owns a [`Slot`] holding its running operation; bodies write their signals there
//! (a lock only they and window readers touch). Finishing an item and taking the next one
//! happen in one critical section, together with moving the finished record into the window
//! and updating the counters: per item a worker takes the coordinator lock once and reads the
//! clock once (the end of one item is the start of the next).
//!
//! # Wake discipline
//!
//! At most one worker is being woken at a time (`waking`). A producer wakes (or spawns) a
//! worker only when none is already on its way; a worker that takes an item wakes the next
//! one only if more items are ready. Workers drain the queue before parking.
//!
//! # Invariants (all under `core`)
//!
//! * `active <= limit` at every start; `active` counts bodies (plus their `on_sample` call).
//! * `enqueued == completed + failed + cancelled + pending + active` at every release of the
//!   lock (`pending` is `sched.len()`), so after a drain `enqueued == completed + failed +
//!   cancelled`.
//! * `idle` counts parked workers that nobody has notified yet; wake-alls reset it and bump
//!   `wake_all_gen`, which a parking worker re-checks after registering, so no wake is lost.
//! * Drained (closed, nothing pending or active) wakes every parked worker so each exits: no
//!   task outlives the coordinator.

use super::error::{EnqueueError, TryEnqueueError};
use super::scheduler::{Job, Scheduler};
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type SpawnFn<T, S, R> = Box<dyn Fn(Arc<Shared<T, S, R>>, Arc<Slot>) + Send + Sync>;

pub(crate) struct Shared<T, S: Scheduler<T>, R> {
    /// Intake and scheduling: taken by producers and by workers taking items.
    core: Mutex<Core<T, S, R>>,
    /// The finished-operation window and outcome counters: taken by workers finishing items
    /// and by readers. Lock order: `track` before `core`.
    track: Mutex<Track<R>>,
    pub(crate) hub: Arc<Hub>,
    /// Parked workers wait here.
    work: Notify,
    /// `enqueue` calls waiting for queue room wait here.
    space: Notify,
    /// `drain` waits here.
    drained: Notify,
    wake_all_gen: AtomicU64,
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
    spawn: SpawnFn<T, S, R>,
    me: Weak<Self>,
    /// Stops the parent-token watcher when the coordinator goes away.
    stop_watch: CancellationToken,
    /// Cancelled when the coordinator closes (stream feeders stop reading).
    pub(crate) closed_token: CancellationToken,
}

pub(crate) struct Core<T, S, R> {
    pub(crate) sched: S,
    active: usize,
    sampling: usize,
    limit: usize,
    workers: usize,
    idle: usize,
    waking: bool,
    paused: bool,
    closed: bool,
    cancelled: bool,
    seq: u64,
    enqueued: u64,
    cancelled_items: u64,
    defer_timeouts: u64,
    space_waiters: usize,
    slots: Vec<Arc<Slot>>,
    _item: std::marker::PhantomData<fn(T) -> R>,
}

/// What finished operations left behind.
pub(crate) struct Track<R> {
    window: Window<R>,
    completed: u64,
    failed: u64,
}

impl<T, S: Scheduler<T>, R> Core<T, S, R> {
    fn is_drained(&self) -> bool {
        self.closed && self.sched.len() == 0 && self.active == 0 && self.sampling == 0
    }
}

/// What the previous item of a worker came to.
struct Done<K, R> {
    key: K,
    outcome: Result<R, OperationError>,
}

enum Step<T, K> {
    /// Run this item; `woke` says whether another worker was woken or spawned first.
    Run(Job<T, K>, bool),
    Park(u64),
    Exit,
}

/// Why an item was refused (with the item and its key, for a retry).
pub(crate) enum Refusal<T, K> {
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

impl<T, S, R> Shared<T, S, R>
where
    T: Send + 'static,
    S: Scheduler<T>,
    R: Send + 'static,
{
    /// Builds the engine for `body`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or on invalid options.
    #[track_caller]
    pub(crate) fn start<F, Fut, E>(sched: S, options: Options, body: F) -> Arc<Self>
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
        let spawn: SpawnFn<T, S, R> = Box::new(move |shared, slot| {
            spawn_rt.spawn(worker(shared, slot, body.clone()));
        });
        let shared = Arc::new_cyclic(|me| Shared {
            core: Mutex::new(Core {
                sched,
                active: 0,
                sampling: 0,
                limit: options.max_concurrency,
                workers: 0,
                idle: 0,
                waking: false,
                paused: false,
                closed: false,
                cancelled: false,
                seq: 0,
                enqueued: 0,
                cancelled_items: 0,
                defer_timeouts: 0,
                space_waiters: 0,
                slots: Vec::new(),
                _item: std::marker::PhantomData,
            }),
            track: Mutex::new(Track {
                window: Window::new(
                    options.max_tracked_operations,
                    options.max_operation_lifetime,
                ),
                completed: 0,
                failed: 0,
            }),
            hub,
            work: Notify::new(),
            space: Notify::new(),
            drained: Notify::new(),
            wake_all_gen: AtomicU64::new(0),
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core<T, S, R>> {
        // No user code runs under this lock except drops of finished results; the state is
        // consistent at every unlock, so a poisoned lock is still usable.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn track(&self) -> MutexGuard<'_, Track<R>> {
        // Same reasoning as `lock`.
        self.track.lock().unwrap_or_else(|e| e.into_inner())
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

    fn try_push(
        &self,
        item: T,
        key: S::Key,
        waiter: Option<std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>>,
    ) -> Result<OperationId, Refusal<T, S::Key>> {
        if self.gate_active(GateKind::Cancel) {
            // Closed wins over Rejected.
            return Err(if self.lock().closed {
                Refusal::Closed(item)
            } else {
                Refusal::Rejected(item)
            });
        }
        let mut core = self.lock();
        if core.closed {
            return Err(Refusal::Closed(item));
        }
        if self.fair && core.sched.overloaded(&key) {
            return Err(Refusal::KeyOverloaded(item));
        }
        if core.sched.len() >= self.capacity {
            if let Some(waiter) = waiter {
                // Registered under the lock: a pop after this unlock will wake us.
                waiter.enable();
                core.space_waiters += 1;
            }
            return Err(Refusal::Full(item, key));
        }
        let id = OperationId::next();
        let label = core.sched.label(&key);
        core.sched.push(Job {
            item,
            id,
            key,
            label,
        });
        core.enqueued += 1;
        self.wake_one(&mut core);
        Ok(id)
    }

    pub(crate) fn try_enqueue(
        &self,
        item: T,
        key: S::Key,
    ) -> Result<OperationId, TryEnqueueError<T>> {
        self.try_push(item, key, None).map_err(Refusal::into_try)
    }

    pub(crate) async fn enqueue(
        &self,
        item: T,
        key: S::Key,
    ) -> Result<OperationId, EnqueueError<T>> {
        let (mut item, mut key) = match self.try_push(item, key, None) {
            Ok(id) => return Ok(id),
            Err(Refusal::Full(item, key)) => (item, key),
            Err(Refusal::Closed(t)) => return Err(EnqueueError::Closed(t)),
            Err(Refusal::Rejected(t)) => return Err(EnqueueError::Rejected(t)),
            Err(Refusal::KeyOverloaded(t)) => return Err(EnqueueError::KeyOverloaded(t)),
        };
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            match self.try_push(item, key, Some(notified.as_mut())) {
                Ok(id) => return Ok(id),
                Err(Refusal::Full(i, k)) => {
                    item = i;
                    key = k;
                    notified.await;
                }
                Err(Refusal::Closed(t)) => return Err(EnqueueError::Closed(t)),
                Err(Refusal::Rejected(t)) => return Err(EnqueueError::Rejected(t)),
                Err(Refusal::KeyOverloaded(t)) => return Err(EnqueueError::KeyOverloaded(t)),
            }
        }
    }

    // ----- waking -------------------------------------------------------------------------

    /// Wakes (or spawns) one worker if an item is ready and nobody is on the way; answers
    /// whether it did.
    fn wake_one(&self, core: &mut Core<T, S, R>) -> bool {
        if core.waking || core.paused || core.active >= core.limit || !core.sched.has_ready() {
            return false;
        }
        if core.idle > 0 {
            core.idle -= 1;
            core.waking = true;
            self.work.notify_one();
            true
        } else if core.workers < core.limit {
            let slot = Arc::new(Slot::new(self.hub.clone()));
            core.slots.push(slot.clone());
            core.workers += 1;
            core.waking = true;
            if let Some(me) = self.me.upgrade() {
                (self.spawn)(me, slot);
            }
            true
        } else {
            false
        }
    }

    /// Wakes every parked worker (they re-read the state).
    fn wake_all(&self, core: &mut Core<T, S, R>) {
        core.idle = 0;
        core.waking = false;
        self.wake_all_gen.fetch_add(1, Ordering::AcqRel);
        self.work.notify_waiters();
    }

    // ----- the worker's critical section ---------------------------------------------------

    /// Records the previous item (if any) and takes the next one.
    fn step(
        &self,
        slot: &Arc<Slot>,
        done: Option<Done<S::Key, R>>,
        now: Instant,
        woken: &mut bool,
        cancel_gate: bool,
        overrun: bool,
    ) -> Step<T, S::Key> {
        let mut discarded = Vec::new();
        // The window part of finishing happens before the intake lock is taken, so producers
        // only ever wait for the short pop below.
        let mut track = done.as_ref().map(|_| self.track());
        let released = match (done, track.as_mut()) {
            (Some(done), Some(track)) => Some(self.record(track, slot, done, now)),
            _ => None,
        };
        let mut core = self.lock();
        if let Some(key) = released {
            core.active -= 1;
            core.sched.release(&key);
        }
        if std::mem::take(woken) {
            core.waking = false;
        }
        let pending_before = core.sched.len();
        let step = loop {
            if core.cancelled || (core.closed && core.sched.len() == 0) {
                break Step::Exit;
            }
            if core.workers > core.limit {
                break Step::Exit;
            }
            if core.paused || core.active >= core.limit || !core.sched.has_ready() {
                core.idle += 1;
                break Step::Park(self.wake_all_gen.load(Ordering::Acquire));
            }
            let Some(job) = core.sched.pop() else {
                core.idle += 1;
                break Step::Park(self.wake_all_gen.load(Ordering::Acquire));
            };
            if cancel_gate {
                // A cancel-on signal is present: queued items are not started.
                core.cancelled_items += 1;
                core.sched.release(&job.key);
                discarded.push(job.item);
                continue;
            }
            if overrun {
                core.defer_timeouts += 1;
            }
            core.active += 1;
            core.seq += 1;
            slot.start(job.id, job.label.clone(), core.seq, now);
            let woke = self.wake_one(&mut core);
            break Step::Run(job, woke);
        };
        if core.sched.len() < pending_before && core.space_waiters > 0 {
            let freed = (pending_before - core.sched.len()).min(core.space_waiters);
            core.space_waiters -= freed;
            for _ in 0..freed {
                self.space.notify_one();
            }
        }
        if matches!(step, Step::Exit) {
            core.workers -= 1;
            core.slots.retain(|s| !Arc::ptr_eq(s, slot));
            // Someone else may have to take over (a shrink exit while items are ready).
            self.wake_one(&mut core);
        }
        let drained = core.is_drained();
        if drained {
            self.wake_all(&mut core);
        }
        drop(core);
        drop(track);
        if drained {
            self.drained.notify_waiters();
        }
        drop(discarded);
        step
    }

    /// Moves a finished operation from its slot into the window and counts it; answers the
    /// key to release in the scheduler (the caller then updates `core` while still holding
    /// `track`, so counters read under both locks always add up).
    fn record(
        &self,
        track: &mut Track<R>,
        slot: &Slot,
        done: Done<S::Key, R>,
        now: Instant,
    ) -> S::Key {
        let ended = slot.finish();
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
        done.key
    }

    /// Records a finished item outside `step` (deferral path).
    fn record_only(&self, slot: &Arc<Slot>, done: Done<S::Key, R>, now: Instant) {
        let mut track = self.track();
        let key = self.record(&mut track, slot, done, now);
        let mut core = self.lock();
        core.active -= 1;
        core.sched.release(&key);
        drop(track);
        self.after_release(core);
    }

    /// The `on_sample` path: record, call the sampler outside the lock, then release.
    fn record_and_sample(
        &self,
        slot: &Arc<Slot>,
        done: Done<S::Key, R>,
        now: Instant,
        sampler: &SampleHandler,
    ) {
        {
            let mut track = self.track();
            let key = self.record(&mut track, slot, done, now);
            let mut core = self.lock();
            core.active -= 1;
            core.sched.release(&key);
            // Drain waits for the sample too.
            core.sampling += 1;
        }
        let snapshot = self.snapshot_where(|_| true);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| sampler(&snapshot)));
        let mut core = self.lock();
        core.sampling -= 1;
        self.after_release(core);
    }

    /// After a slot or sample was released outside `step`: hand freed capacity on and notice
    /// the drained state.
    fn after_release(&self, mut core: MutexGuard<'_, Core<T, S, R>>) {
        self.wake_one(&mut core);
        let drained = core.is_drained();
        if drained {
            self.wake_all(&mut core);
        }
        drop(core);
        if drained {
            self.drained.notify_waiters();
        }
    }

    // ----- control ------------------------------------------------------------------------

    pub(crate) fn complete(&self) -> bool {
        let mut core = self.lock();
        if core.closed {
            return false;
        }
        core.closed = true;
        core.space_waiters = 0;
        self.wake_all(&mut core);
        let drained = core.is_drained();
        drop(core);
        self.closed_token.cancel();
        self.space.notify_waiters();
        if drained {
            self.drained.notify_waiters();
        }
        true
    }

    pub(crate) fn cancel(&self) {
        let mut items = Vec::new();
        let mut core = self.lock();
        if !core.cancelled {
            core.cancelled = true;
            core.closed = true;
            core.sched.drain_into(&mut items);
            core.cancelled_items += items.len() as u64;
            core.space_waiters = 0;
            self.wake_all(&mut core);
        }
        let drained = core.is_drained();
        drop(core);
        self.closed_token.cancel();
        self.hub.token.cancel();
        self.space.notify_waiters();
        if drained {
            self.drained.notify_waiters();
        }
        drop(items);
    }

    pub(crate) async fn drain(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().is_drained() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn is_drained(&self) -> bool {
        self.lock().is_drained()
    }

    pub(crate) fn pause(&self) {
        self.lock().paused = true;
    }

    pub(crate) fn resume(&self) {
        let mut core = self.lock();
        core.paused = false;
        self.wake_one(&mut core);
    }

    pub(crate) fn set_max_concurrency(&self, n: usize) -> Result<(), super::ConcurrencyError> {
        if !self.dynamic {
            return Err(super::ConcurrencyError::NotDynamic);
        }
        if n == 0 {
            return Err(super::ConcurrencyError::Zero);
        }
        let mut core = self.lock();
        core.limit = n;
        // Growing: start the chain of wakes. Shrinking: excess workers exit as they finish,
        // parked ones when next woken.
        self.wake_one(&mut core);
        if core.workers > n && core.idle > 0 {
            self.wake_all(&mut core);
        }
        Ok(())
    }

    // ----- reads --------------------------------------------------------------------------

    pub(crate) fn stats(&self) -> Stats {
        let track = self.track();
        let core = self.lock();
        Stats {
            pending: core.sched.len(),
            active: core.active,
            enqueued: core.enqueued,
            completed: track.completed,
            failed: track.failed,
            cancelled: core.cancelled_items,
            max_concurrency: core.limit,
            paused: core.paused,
            closed: core.closed,
            defer_timeouts: core.defer_timeouts,
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
    /// through `finished`), in start order, under one lock.
    pub(crate) fn window_map<X>(
        &self,
        mut running: impl FnMut(OperationSnapshot) -> Option<X>,
        mut finished: impl FnMut(&Finished<R>, bool) -> Option<X>,
    ) -> Vec<X> {
        let now = time::now();
        let mut out = Vec::new();
        {
            let track = self.track();
            let core = self.lock();
            for slot in &core.slots {
                let r = slot.lock();
                if let Some(x) = r.snapshot().and_then(&mut running) {
                    out.push((r.seq, x));
                }
            }
            drop(core);
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
        let core = self.lock();
        let guards: Vec<_> = core.slots.iter().map(|s| s.lock()).collect();
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
        let core = self.lock();
        for slot in &core.slots {
            let mut r = slot.lock();
            if r.id == Some(id) {
                r.pinned = true;
                return true;
            }
        }
        drop(core);
        track.window.pin(id, time::now())
    }

    pub(crate) fn unpin(&self, id: OperationId) -> bool {
        let mut track = self.track();
        let core = self.lock();
        for slot in &core.slots {
            let mut r = slot.lock();
            if r.id == Some(id) {
                let was = r.pinned;
                r.pinned = false;
                return was;
            }
        }
        drop(core);
        track.window.unpin(id, time::now(), &self.hub.gates)
    }

    pub(crate) fn evict(&self, id: OperationId) -> bool {
        self.track().window.evict(id, &self.hub.gates)
    }

    pub(crate) fn window_held(&self) -> usize {
        let track = self.track();
        let core = self.lock();
        track.window.held() + core.slots.iter().filter(|s| s.lock().id.is_some()).count()
    }

    pub(crate) fn with_core<X>(&self, f: impl FnOnce(&mut Core<T, S, R>) -> X) -> X {
        f(&mut self.lock())
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.lock().paused
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        self.lock().limit
    }

    /// Feeds `stream` into the coordinator in the background, then completes it. Stops reading
    /// when the coordinator closes, so the feeder never outlives it.
    pub(crate) fn feed<St>(
        self: &Arc<Self>,
        stream: St,
        key_of: impl Fn(&T) -> S::Key + Send + 'static,
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

impl<T, S: Scheduler<T>, R> Drop for Shared<T, S, R> {
    fn drop(&mut self) {
        self.stop_watch.cancel();
    }
}

/// One worker: runs items one after another until the coordinator no longer needs it.
async fn worker<T, S, R, F, Fut, E>(shared: Arc<Shared<T, S, R>>, slot: Arc<Slot>, body: Arc<F>)
where
    T: Send + 'static,
    S: Scheduler<T>,
    R: Send + 'static,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    let mut done: Option<Done<S::Key, R>> = None;
    let mut woken = true;
    let mut defer_attempts = 0u32;
    loop {
        let mut now = time::now();
        if let Some(sampler) = &shared.on_sample {
            if let Some(d) = done.take() {
                shared.record_and_sample(&slot, d, now, sampler);
                now = time::now();
            }
        }
        let mut overrun = false;
        if shared.hub.gates.configured(GateKind::Defer) && shared.gate_active(GateKind::Defer) {
            if defer_attempts < shared.max_defer_attempts {
                defer_attempts += 1;
                if let Some(d) = done.take() {
                    shared.record_only(&slot, d, now);
                }
                tokio::select! {
                    () = tokio::time::sleep(shared.defer_interval) => {}
                    () = shared.hub.token.cancelled() => {}
                }
                continue;
            }
            overrun = true;
        }
        let cancel_gate = shared.gate_active(GateKind::Cancel);
        match shared.step(&slot, done.take(), now, &mut woken, cancel_gate, overrun) {
            Step::Run(job, woke) => {
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
                done = Some(Done {
                    key: job.key,
                    outcome,
                });
            }
            Step::Park(generation) => {
                defer_attempts = 0;
                let notified = shared.work.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if shared.wake_all_gen.load(Ordering::Acquire) != generation {
                    continue;
                }
                notified.await;
                woken = true;
            }
            Step::Exit => return,
        }
    }
}
