//! Workers: the worker loop, taking items, recording what they came to.
//!
//! # Invariants
//!
//! * A worker marks its slot busy before it pops and clears it only after its previous item
//!   is settled (recorded, key released), so a drain never sees an item in no state.
//! * With a keyed intake, settling the previous item and taking the next happen in one
//!   critical section of the slot's lock (see `settle_slot`).
//! * Results leaving the window are dropped after the slot's lock is released.
use super::*;
use crate::label::KeyLabel;
use crate::outcome::Outcome;

/// What [`settle_slot`](Shared::settle_slot) does after settling the previous item.
pub(super) enum Take {
    /// Nothing more.
    Nothing,
    /// Takes the next item and starts it.
    Start,
    /// Takes the next item and releases it unstarted (a cancel-on signal is present).
    Discard,
}

/// What [`settle_slot`](Shared::settle_slot) took.
pub(super) enum Taken<T, K, L> {
    /// Started in the slot.
    Run(Job<T, K>, L),
    /// Released unstarted: the item, to be dropped outside the lock.
    Discarded(OperationId, T),
}

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    /// Workers that are busy: looking for an item, running a body, or sampling after one.
    pub(crate) fn active_now(&self) -> usize {
        self.ctl()
            .slots
            .iter()
            .filter(|s| s.busy.load(SeqCst))
            .count()
    }

    /// Takes the next item, or says to park or exit.
    ///
    /// `carry` holds what the worker's previous item came to and its key, neither settled
    /// yet: they are settled together with the start of the next item, in one critical
    /// section of the slot's lock (see [`settle_slot`](Self::settle_slot)), or on their own
    /// on the other paths.
    pub(super) fn next(
        &self,
        slot: &WorkerSlot<T, I, R>,
        carry: &mut Carry<R, I::Key>,
        now: Instant,
        cancel_gate: bool,
        overrun: bool,
    ) -> Next<T, I::Key, I::Label> {
        loop {
            if self.cancelled.load(SeqCst) {
                self.leave(slot, carry, now);
                return Next::Exit;
            }
            if self.must_shrink() {
                self.leave(slot, carry, now);
                if self.try_exit_for_shrink(slot) {
                    return Next::Exit;
                }
                continue;
            }
            if self.paused.load(SeqCst) {
                self.leave(slot, carry, now);
                return self.park_or_exit();
            }
            if self.closed.load(SeqCst) && self.intake.len() == 0 {
                // Done, without counting as busy for a last look (a drained coordinator then
                // shows no active worker). A producer already past its `closed` check leaves
                // its item to the wake-up in `exit`.
                self.leave(slot, carry, now);
                self.check_drained();
                return Next::Exit;
            }
            // Busy before popping: a drain check that finds the intake empty then sees us.
            // No per-item permit is needed: each worker runs one body at a time, and there are
            // never more workers than the limit that was in force when they started.
            if !slot.busy.load(SeqCst) {
                slot.busy.store(true, SeqCst);
            }
            let take = if cancel_gate {
                Take::Discard
            } else {
                Take::Start
            };
            let taken = self.settle_slot(slot, carry, take, now);
            let Some(taken) = taken else {
                // The previous item is settled; nothing is ready.
                slot.busy.store(false, SeqCst);
                self.check_drained();
                return self.park_or_exit();
            };
            self.room_made();
            match taken {
                Taken::Discarded(id, item) => {
                    // A cancel-on signal is present: queued items are not started.
                    self.cancelled_items.fetch_add(1, SeqCst);
                    self.hub.telemetry.taken(false);
                    self.replies.forget(id);
                    drop(item);
                }
                Taken::Run(job, label) => {
                    self.hub.telemetry.taken(true);
                    if overrun {
                        self.defer_timeouts.fetch_add(1, SeqCst);
                    }
                    let woke = self.wake_one();
                    return Next::Run(job, label, woke);
                }
            }
        }
    }

    /// Stops without taking an item: settles the previous one, then stops counting as busy
    /// (in that order, so a drain never sees a key still held or an operation not yet
    /// counted).
    pub(super) fn leave(
        &self,
        slot: &Slot<R, I::Label>,
        carry: &mut Carry<R, I::Key>,
        now: Instant,
    ) {
        let taken = self.settle_slot(slot, carry, Take::Nothing, now);
        debug_assert!(taken.is_none());
        slot.busy.store(false, SeqCst);
    }

    /// Settles the previous item (records its operation, releases its key), then does what
    /// `take` says, all in one critical section of the slot's lock.
    ///
    /// Readers hold every slot's lock, so with a keyed intake they see each item queued,
    /// running or finished, never in two states or none: an operation still listed as running
    /// holds its key (no other item of it has started in its place), and an item a worker
    /// took is running. (Plain intakes take outside the lock: see `Intake::KEYED`.)
    ///
    /// Results of records this pushes out of the window are dropped after the lock is
    /// released (a result's `Drop` is user code), through `carry`'s spare buffer, kept so that
    /// this allocates nothing once warm.
    pub(super) fn settle_slot(
        &self,
        slot: &Slot<R, I::Label>,
        carry: &mut Carry<R, I::Key>,
        take: Take,
        now: Instant,
    ) -> Option<Taken<T, I::Key, I::Label>> {
        let done = carry.done.take();
        let mut release = carry.release.take();
        if done.is_none() && release.is_none() && matches!(take, Take::Nothing) {
            return None;
        }
        // Plain intakes take first, outside the lock (see `Intake::KEYED`).
        let mut early = None;
        if !I::KEYED && !matches!(take, Take::Nothing) {
            early = Some(self.intake.pop(release.take()));
        }
        let mut guard = slot.lock();
        let st = &mut *guard;
        let mut reply = None;
        if let Some(outcome) = done {
            st.settle(outcome, now, &self.hub.gates, &mut carry.spare, |rec| {
                if self.replies.owed() {
                    reply = self
                        .replies
                        .take(rec.id, rec.error.as_ref(), rec.result.as_ref());
                }
            });
        }
        let taken = match take {
            Take::Nothing => {
                if let Some(released) = release {
                    self.intake.release(released);
                }
                None
            }
            Take::Start => early
                .unwrap_or_else(|| self.intake.pop(release))
                .map(|job| {
                    let label = self.intake.label_of(&job.key);
                    st.running.start(job.id, Some(label.clone()), job.seq, now);
                    Taken::Run(job, label)
                }),
            Take::Discard => early
                .unwrap_or_else(|| self.intake.pop(release))
                .map(|job| {
                    let Job { item, key, id, .. } = job;
                    self.intake.release(Released { key });
                    Taken::Discarded(id, item)
                }),
        };
        drop(guard);
        carry.spare.clear();
        if let Some(reply) = reply {
            // Sent once the operation shows as finished.
            reply.send();
        }
        taken
    }

    /// Calls `on_sample` for an operation that just finished (the worker stays busy, so drain
    /// waits for it).
    pub(super) fn sample(&self, sampler: &SampleHandler) {
        let snapshot = self.snapshot_where(|_| true);
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| sampler(&snapshot)));
    }
}

/// Turns what a body's future came to into the recorded outcome.
fn settle<T, I, R, E>(
    shared: &Shared<T, I, R>,
    caught: Result<Result<R, E>, Box<dyn std::any::Any + Send>>,
) -> Result<R, OperationError>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
    E: Into<BoxError>,
{
    let failure = match caught {
        Ok(Ok(r)) => return Ok(r),
        Ok(Err(e)) => OperationError::from_error(e),
        Err(panic) => OperationError::panic(panic),
    };
    // Only failures pay for reading the token (it takes a lock).
    let cancelled = shared.hub.token.is_cancelled();
    if cancelled {
        // A parent token may have fired: stop taking items now rather than when its watcher
        // task runs.
        shared.cancel();
    }
    Err(failure.with_cancelled(cancelled))
}

/// What a worker carries from one item to the next.
pub(super) struct Carry<R, K> {
    /// The key of the previous item, released with the next pop.
    release: Option<Released<K>>,
    /// What the previous item came to, recorded with the next start.
    done: Option<Result<R, OperationError>>,
    /// Where results leaving the window wait to be dropped outside the slot's lock.
    spare: Vec<R>,
}

/// One worker: runs items one after another until the coordinator no longer needs it.
pub(super) async fn worker<T, I, R, F, Fut>(
    shared: Arc<Shared<T, I, R>>,
    slot: WorkerSlot<T, I, R>,
    body: Arc<F>,
) where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
    F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<R>> + Send + 'static,
{
    // Spawned or woken workers clear `waking` once they look for work.
    let mut woken = true;
    let mut defer_attempts = 0u32;
    let mut now = time::now();
    let mut carry = Carry {
        release: None,
        done: None,
        spare: Vec::new(),
    };
    loop {
        if std::mem::take(&mut woken) {
            shared.parking.woke();
        }
        let mut overrun = false;
        if shared.gates_on
            && shared.hub.gates.configured(GateKind::Defer)
            && shared.gate_active(GateKind::Defer)
        {
            if defer_attempts < shared.max_defer_attempts && shared.intake.has_ready() {
                defer_attempts += 1;
                shared.leave(&slot, &mut carry, now);
                shared.check_drained();
                shared.deferring.fetch_add(1, SeqCst);
                tokio::select! {
                    () = tokio::time::sleep(shared.defer_interval) => {}
                    () = shared.hub.token.cancelled() => {}
                }
                shared.deferring.fetch_sub(1, SeqCst);
                now = time::now();
                continue;
            }
            overrun = defer_attempts >= shared.max_defer_attempts;
        }
        let cancel_gate = shared.gates_on && shared.gate_active(GateKind::Cancel);
        match shared.next(&slot, &mut carry, now, cancel_gate, overrun) {
            Next::Run(job, label, woke) => {
                defer_attempts = 0;
                if woke && shared.multi_thread {
                    // The worker we just woke sits in this thread's LIFO slot, which other
                    // threads cannot steal from: let it start before our body, which might
                    // block this thread before its first await. (A current-thread runtime
                    // has no stealing, and a blocking body blocks it whatever we do.)
                    tokio::task::yield_now().await;
                }
                let started = now;
                let key = label.label();
                #[cfg(feature = "tracing")]
                let span = tracing::info_span!(
                    "ephemeral.op",
                    coordinator = &*shared.hub.name,
                    id = %job.id,
                    key = key.as_ref().map(crate::label::Label::as_str),
                    outcome = tracing::field::Empty,
                );
                let op = Operation::new(slot.clone(), job.id, key);
                let item = job.item;
                let body = &*body;
                let run = AssertUnwindSafe(async move { body(item, op).await.into_result() })
                    .catch_unwind();
                #[cfg(feature = "tracing")]
                let run = tracing::Instrument::instrument(run, span.clone());
                let caught = run.await;
                slot.body_returned(job.id);
                #[cfg(feature = "tracing")]
                span.record(
                    "outcome",
                    match &caught {
                        Ok(Ok(_)) => "completed",
                        Ok(Err(_)) => "failed",
                        Err(_) => "panicked",
                    },
                );
                let outcome = settle(&shared, caught);
                now = time::now();
                shared
                    .hub
                    .telemetry
                    .finished(outcome.is_ok(), now.saturating_duration_since(started));
                carry.release = Some(Released { key: job.key });
                carry.done = Some(outcome);
                if let Some(sampler) = &shared.on_sample {
                    // The sampler sees this operation finished and its key released.
                    let taken = shared.settle_slot(&slot, &mut carry, Take::Nothing, now);
                    debug_assert!(taken.is_none());
                    // The release may have let the key's next item start.
                    shared.wake_one();
                    shared.sample(sampler);
                    now = time::now();
                }
                // Still busy: the operation is recorded, the key released and `busy` cleared
                // by the next pop. Bodies that never wait would let this loop hold its thread
                // for as long as items come; spending tokio's cooperative budget makes the
                // worker yield now and then, so other tasks (the producers among them) get
                // their turn.
                tokio::task::consume_budget().await;
            }
            Next::Park => {
                defer_attempts = 0;
                let notified = shared.work.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                // Counts us idle, then looks again (see `Parking::park`).
                match shared.parking.park(|| shared.worth_looking_again()) {
                    ParkWait::Poll => woken = notified.as_mut().now_or_never().is_some(),
                    ParkWait::Wait => {
                        notified.await;
                        woken = true;
                    }
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
