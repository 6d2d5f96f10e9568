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
//! intake. A worker marks its [`Slot`] busy, pops, runs the body, then, in one critical section
//! of its own slot's lock, records the finished operation in its shard of the window and
//! starts the next one, reading the clock once per item (the end of one item is the start of
//! the next). Bodies write their signals into their worker's slot. Readers merge the shards
//! (see `window`).
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
//! * A worker marks itself busy *before* popping, and a producer counts its item in
//!   `enqueued` before it reads `closed` (taking it back if refused), so "closed, intake
//!   empty, no busy slot, every counted item finished or cancelled" is exactly
//!   drained. Every party that moves one of these towards zero re-checks and notifies.
//! * Parking: a worker registers its `Notified`, then counts itself `idle`, then re-checks for
//!   work (all sequentially consistent), so a producer either sees it idle or it sees the item.
//!   Wake-alls zero `idle` and bump `wake_all_gen`.
//! * After a drain, `enqueued == completed + failed + cancelled`.

use super::completion::{Completion, Replies};
use super::error::{EnqueueError, TryEnqueueError};
use super::scheduler::{Intake, Job, Refused, Released};
use super::Stats;
use crate::id::OperationId;
use crate::operation::{Operation, OperationError, OperationSnapshot};
use crate::options::{Options, SampleHandler};
use crate::outcome::Outcome;
use crate::signal::SignalEvent;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use crate::sync::{Mutex, MutexGuard};
use crate::time;
use crate::window::{self, Window};
use crate::BoxError;
use crossbeam_utils::CachePadded;
use futures_util::FutureExt;
use std::future::Future;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod control;
mod expiry;
mod gates;
mod hub;
mod intake;
mod reads;
mod slot;
mod wake;
mod worker;

use expiry::ExpireTarget;
use gates::GateKind;
use hub::Hub;
use slot::Slot;

type SpawnFn<T, I, R> = Box<dyn Fn(Arc<Shared<T, I, R>>, WorkerSlot<T, I, R>) + Send + Sync>;

/// A worker's slot, with the label type of its intake.
type WorkerSlot<T, I, R> = Arc<Slot<R, <I as Intake<T>>::Label>>;

pub(crate) struct Shared<T, I: Intake<T>, R> {
    pub(crate) intake: I,
    /// Serialises readers and holds what workers that left had finished. Never taken on the
    /// hot path. Lock order: `track`, then `ctl`, then slots in list order.
    track: Mutex<Track<R, I::Label>>,
    /// Worker bookkeeping (spawn, exit, the slot list readers walk). Rarely taken.
    ctl: Mutex<Ctl<R, I::Label>>,
    pub(crate) hub: Arc<Hub>,

    closed: AtomicBool,
    cancelled: AtomicBool,
    paused: AtomicBool,
    limit: AtomicUsize,
    workers: AtomicUsize,
    /// Producers waiting for queue room: written when a producer waits, so on lines of its own.
    room: CachePadded<Room>,
    wake_all_gen: AtomicU64,
    cancelled_items: AtomicU64,
    defer_timeouts: AtomicU64,
    /// Items a stream source read and has not yet enqueued or counted: a drain waits for them.
    sourcing: AtomicUsize,
    /// Workers waiting out a defer-on signal before their next start.
    deferring: AtomicUsize,
    /// Replies owed to `Completion`s (see `enqueue_with_handle`).
    replies: Replies<R>,
    /// Written by producers on every push: kept off the lines workers write.
    producer: CachePadded<ProducerCounters>,
    /// Written when workers park and wake.
    parking: CachePadded<Parking>,

    /// Parked workers wait here.
    work: Notify,
    /// `enqueue` calls waiting for queue room wait here.
    space: Notify,
    /// `drain` waits here.
    drained: Notify,
    /// Stream readers waiting for a key's room wait here (told of every take while any waits).
    key_room: Notify,

    capacity: usize,
    /// The window's capacity and lifetime (each worker's shard gets them).
    window_max: usize,
    window_lifetime: Option<Duration>,
    /// Whether any cancel-on / defer-on pattern is configured (else no gate is ever checked).
    gates_on: bool,
    dynamic: bool,
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

struct Ctl<R, L> {
    slots: Vec<Arc<Slot<R, L>>>,
}

struct ProducerCounters {
    enqueued: AtomicU64,
}

struct Room {
    /// `enqueue` calls waiting for room.
    waiters: AtomicUsize,
    /// A pop already notified the waiting producers since the last one registered.
    signalled: AtomicBool,
    /// Stream readers waiting for a key's room (an item refused with `KeyOverloaded`).
    key_waiters: AtomicUsize,
}

struct Parking {
    /// Parked workers nobody has notified yet.
    idle: AtomicUsize,
    /// A worker is on its way (woken or spawned, not yet looking for work).
    waking: AtomicBool,
}

/// What finished operations of workers that left are kept in.
struct Track<R, L> {
    retired: Window<R, L>,
}

enum Next<T, K, L> {
    /// Run this item (its key's label alongside); `woke` says whether another worker was woken
    /// or spawned first.
    Run(Job<T, K>, L, bool),
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
    /// The item and key back if the queue was full (worth waiting for room), else the error
    /// `enqueue` answers.
    fn unless_full(self) -> Result<(T, K), EnqueueError<T>> {
        match self {
            Refusal::Full(t, k) => Ok((t, k)),
            Refusal::Closed(t) => Err(EnqueueError::Closed(t)),
            Refusal::Rejected(t) => Err(EnqueueError::Rejected(t)),
            Refusal::KeyOverloaded(t) => Err(EnqueueError::KeyOverloaded(t)),
        }
    }

    fn into_try(self) -> TryEnqueueError<T> {
        match self {
            Refusal::Full(t, _) => TryEnqueueError::Full(t),
            Refusal::Closed(t) => TryEnqueueError::Closed(t),
            Refusal::Rejected(t) => TryEnqueueError::Rejected(t),
            Refusal::KeyOverloaded(t) => TryEnqueueError::KeyOverloaded(t),
        }
    }
}

/// What became of an item read from a source with no caller to hand it back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceOutcome {
    /// Enqueued.
    Accepted,
    /// Refused by a cancel-on signal: counted as accepted and cancelled.
    Cancelled,
    /// The coordinator is closed: counted as accepted and cancelled; read no more.
    Closed,
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
    pub(crate) fn start<F, Fut>(
        make_intake: impl FnOnce(&Options) -> I,
        options: Options,
        body: F,
    ) -> Arc<Self>
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<R>> + Send + 'static,
    {
        let options = options.validated();
        let runtime = tokio::runtime::Handle::try_current()
            .expect("ephemeral coordinators must be created within a tokio runtime");
        let token = match &options.cancellation_token {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        let hub = Arc::new(Hub::new(&options, token));
        hub.telemetry.limit(options.max_concurrency);
        let body = Arc::new(body);
        let spawn_rt = runtime.clone();
        let spawn: SpawnFn<T, I, R> = Box::new(move |shared, slot| {
            spawn_rt.spawn(worker::worker(shared, slot, body.clone()));
        });
        let expiry = hub.expiry.clone();
        let shared = Arc::new_cyclic(|me| Shared {
            intake: make_intake(&options),
            track: Mutex::new(Track {
                retired: Window::new(
                    options.max_tracked_operations,
                    options.max_operation_lifetime,
                ),
            }),
            window_max: options.max_tracked_operations,
            window_lifetime: options.max_operation_lifetime,
            gates_on: hub.gates.any(),
            ctl: Mutex::new(Ctl { slots: Vec::new() }),
            hub,
            closed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            limit: AtomicUsize::new(options.max_concurrency),
            workers: AtomicUsize::new(0),
            room: CachePadded::new(Room {
                waiters: AtomicUsize::new(0),
                signalled: AtomicBool::new(false),
                key_waiters: AtomicUsize::new(0),
            }),
            wake_all_gen: AtomicU64::new(0),
            cancelled_items: AtomicU64::new(0),
            defer_timeouts: AtomicU64::new(0),
            sourcing: AtomicUsize::new(0),
            deferring: AtomicUsize::new(0),
            replies: Replies::new(),
            producer: CachePadded::new(ProducerCounters {
                enqueued: AtomicU64::new(0),
            }),
            parking: CachePadded::new(Parking {
                idle: AtomicUsize::new(0),
                waking: AtomicBool::new(false),
            }),
            work: Notify::new(),
            space: Notify::new(),
            drained: Notify::new(),
            key_room: Notify::new(),
            capacity: options.effective_queue_capacity(),
            dynamic: options.dynamic_concurrency,
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
        let target: Weak<dyn ExpireTarget> = Arc::downgrade(&shared) as Weak<dyn ExpireTarget>;
        expiry.set_target(target);
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

    fn track(&self) -> MutexGuard<'_, Track<R, I::Label>> {
        // No user code runs under this lock except drops of evicted results; the state is
        // consistent at every unlock, so a poisoned lock is still usable.
        self.track.lock()
    }

    fn ctl(&self) -> MutexGuard<'_, Ctl<R, I::Label>> {
        // Same reasoning as `track`.
        self.ctl.lock()
    }
}

impl<T, I: Intake<T>, R> Drop for Shared<T, I, R> {
    fn drop(&mut self) {
        self.stop_watch.cancel();
        self.hub.expiry.stop.cancel();
    }
}

impl<T, I, R> ExpireTarget for Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    fn expire_due(&self) {
        // Every read of the window retracts the signals whose ttl ended.
        self.with_window(|_| ());
    }
}
