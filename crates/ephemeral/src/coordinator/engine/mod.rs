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
//!   Wake-alls start a new generation of `idle` with no one counted; a worker that finds work
//!   on its re-check takes back only a count of its own generation, and then looks again
//!   rather than wait (see `wake::Parking`).
//! * After a drain, `enqueued == completed + failed + cancelled`.
//! * No user code (bodies, handlers, `on_sample`, a result's or item's `Drop`, a key's
//!   `Clone`/`Hash`/`Display`) runs under an engine lock, except the drop of a result evicted
//!   while a read holds the window (its `Drop` runs after the locks are released wherever the
//!   engine can defer it: `take_dead`, `carry.spare`).
//!
//! # Lock order
//!
//! Every lock the engine and its parts take, outermost first. A thread holding one of them
//! takes only locks further down the list (a lock of the same rank only where said).
//!
//! 1. `track` (the retired workers' window; serialises readers; `shards.rs`).
//! 2. `ctl` (the worker list; `shards.rs`).
//! 3. A worker slot's `state` (`slot.rs`). Readers take every slot's, in list order, after
//!    `ctl`; a worker takes only its own, with nothing above held.
//! 4. A keyed intake's shard lock (`scheduler/keyed`): taken by workers under their slot's
//!    lock (settle and take in one step), by `pending_count_for_key` under every slot's lock
//!    (`with_started`), and by producers with no engine lock. Never two shards at once.
//! 5. Leaves, each taken alone, under any of the above or none: the expiry queue (`expiry.rs`,
//!    taken under the slot locks of a window read), the replies map (`completion.rs`, taken
//!    under a worker's slot lock when it settles an owed item).
//!
//! Outside that chain, with no engine lock held:
//!
//! * A gate's sink cache (`gates.rs`), then the sink's own state lock (`SignalSink`), in that
//!   order: `gate_active` reads the window first (taking 1–3 and releasing them), then the
//!   cache, and under it asks the sink. The sink never calls back into a coordinator under its
//!   lock (subscribers run after it is released).
//! * Publishing an emitted signal (sink, `on_signal`, the async handler queues) and firing
//!   retraction handlers happen after the slot's lock is released (`Operation::emit_event`,
//!   the end of `with_window`).
//! * The async handler queues' locks (`signal::processor`) are taken with no engine lock held.
//!
//! # Atomics
//!
//! The engine's counters and flags use `SeqCst` where two parties each *store one variable and
//! then load another* (the Dekker shape): acquire/release alone lets both loads miss both
//! stores, and then an item or a wake-up is lost. The handshakes:
//!
//! * **Drain vs. producers** (`drain.rs`): a producer increments `enqueued`, then loads
//!   `closed`; `complete` stores `closed`, and a drain check loads `closed`, then `enqueued`.
//!   One of them sees the other: the item is counted, or the producer sees `closed` and takes
//!   its count back.
//! * **Drain vs. workers**: a worker stores `busy = true`, then pops; a drain check reads the
//!   intake's length, then each `busy`. An item a worker popped is either still counted in the
//!   intake or its worker shows busy. The check reads a slot's `busy` under that slot's lock,
//!   after its counts: a worker that recorded an item there (under the lock, after storing
//!   `busy = true`) is seen busy until it has finished with the item (`on_sample` included).
//! * **Parking**: a worker increments `idle`, then re-reads the intake; a producer pushes, then
//!   loads `idle` / `waking` in `wake_one`. Either the producer sees the idle worker and
//!   notifies it, or the worker sees the item.
//! * **Room**: a waiting producer increments `room.waiters` and clears `room.signalled`, then
//!   retries its push; a worker pops, then loads `room.waiters` and swaps `room.signalled`
//!   (`room_made`). Either the retry finds room or the pop notifies.
//! * **Cancel vs. push**: a producer pushes, then loads `cancelled`; `cancel` swaps
//!   `cancelled`, then drains the intake. A pushed item is drained by the cancel, or its
//!   producer sees `cancelled` and deals with it.
//! * **Fast slots** (`scheduler/keyed/fast_slots.rs`): a producer counts its key into a slot's
//!   word, then reads the slot's tag; a releasing worker clears the tag, then (under the shard
//!   lock) reads who waits. Either the producer sees the slot free or the release sees it.
//! * **Sourcing**: a stream feeder increments `sourcing` before it enqueues an item it read
//!   and decrements it after the item is counted (accepted, or accepted and cancelled), then
//!   runs the drain check; the check loads `closed`, then `sourcing`, then `enqueued`. A
//!   refused item is counted in `enqueued`, then in `cancelled`; the check loads `enqueued`,
//!   the finished and cancelled counts, then `enqueued` again and wants both the same, so a
//!   cancelled count it sees always comes with its `enqueued` count.
//!
//! Counters that take part in no handshake (`defer_timeouts`, `deferring`, `workers`,
//! `limit`, the keyed intake's `pending`) are single read-modify-writes or loads; they use
//! `SeqCst` too, which costs nothing extra for a read-modify-write on x86
//! and keeps every engine atomic on one ordering so that no reasoning above depends on which
//! of them was weakened. Atomics outside the engine's handshakes say why they are weaker where
//! they are declared (`Relaxed` start-order stamps in the keyed intake and statistics in the
//! signal processor and dispatcher, `Acquire`/`Release` on a slot's `ended`, `AcqRel` gate
//! counts).

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
use crate::sync::MutexGuard;
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
mod drain;
mod expiry;
mod gates;
mod hub;
mod intake;
mod reads;
mod shards;
mod slot;
mod wake;
mod worker;

use expiry::ExpireTarget;
use gates::GateKind;
use hub::Hub;
use shards::{Ctl, Shards, Track};
use slot::Slot;
use wake::{ParkWait, Parking, Room};

#[cfg(all(test, loom))]
mod loom_drain;
#[cfg(all(test, loom))]
mod loom_models;
#[cfg(all(test, loom))]
mod loom_shards;

type SpawnFn<T, I, R> = Box<dyn Fn(Arc<Shared<T, I, R>>, WorkerSlot<T, I, R>) + Send + Sync>;

/// A worker's slot, with the label type of its intake.
type WorkerSlot<T, I, R> = Arc<Slot<R, <I as Intake<T>>::Label>>;

pub(crate) struct Shared<T, I: Intake<T>, R> {
    pub(crate) intake: I,
    /// The window's shards: `track` (what workers that left had finished; serialises
    /// readers) and `ctl` (the slot list: spawn, exit, readers), neither taken on the hot
    /// path. Lock order: see the module docs.
    shards: Shards<Slot<R, I::Label>, Window<R, I::Label>>,
    pub(crate) hub: Arc<Hub>,

    closed: AtomicBool,
    cancelled: AtomicBool,
    paused: AtomicBool,
    limit: AtomicUsize,
    workers: AtomicUsize,
    /// Producers waiting for queue room: written when a producer waits, so on lines of its own.
    room: CachePadded<Room>,
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

struct ProducerCounters {
    enqueued: AtomicU64,
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
    /// `enqueue` returns.
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
            shards: Shards::new(Window::new(
                options.max_tracked_operations,
                options.max_operation_lifetime,
            )),
            window_max: options.max_tracked_operations,
            window_lifetime: options.max_operation_lifetime,
            gates_on: hub.gates.any(),
            hub,
            closed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            limit: AtomicUsize::new(options.max_concurrency),
            workers: AtomicUsize::new(0),
            room: CachePadded::new(Room::new()),
            cancelled_items: AtomicU64::new(0),
            defer_timeouts: AtomicU64::new(0),
            sourcing: AtomicUsize::new(0),
            deferring: AtomicUsize::new(0),
            replies: Replies::new(),
            producer: CachePadded::new(ProducerCounters {
                enqueued: AtomicU64::new(0),
            }),
            parking: CachePadded::new(Parking::new()),
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

    fn track(&self) -> MutexGuard<'_, Track<Window<R, I::Label>>> {
        self.shards.track()
    }

    fn ctl(&self) -> MutexGuard<'_, Ctl<Slot<R, I::Label>>> {
        self.shards.ctl()
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
