//! Workers: waking, taking items, recording what they came to.
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

    /// Wakes (or spawns) one worker if an item is ready and nobody is on the way; answers
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
    pub(super) fn wake_all(&self) {
        self.parking.idle.store(0, SeqCst);
        self.wake_all_gen.fetch_add(1, SeqCst);
        self.work.notify_waiters();
    }

    pub(super) fn is_drained_now(&self) -> bool {
        self.closed.load(SeqCst)
            && self.producer.pushing.load(SeqCst) == 0
            && self.intake.len() == 0
            && self.active_now() == 0
    }

    /// Workers that are busy: looking for an item, running a body, or sampling after one.
    pub(super) fn active_now(&self) -> usize {
        self.ctl()
            .slots
            .iter()
            .filter(|s| s.busy.load(SeqCst))
            .count()
    }

    /// Notifies drain waiters and parked workers if the coordinator is drained.
    pub(super) fn check_drained(&self) {
        if self.is_drained_now() {
            self.wake_all();
            self.drained.notify_waiters();
        }
    }

    /// Lets a waiting `enqueue` retry after room was made.
    pub(super) fn room_made(&self) {
        if self.space_waiters.load(SeqCst) > 0 && !self.space_signalled.swap(true, SeqCst) {
            self.space.notify_one();
        }
    }

    /// Takes the next item, or says to park or exit.
    ///
    /// `release` is the key of the worker's previous item: it is released together with the
    /// pop (one critical section for keyed coordinators), or on its own on the other paths.
    pub(super) fn next(
        &self,
        slot: &Arc<Slot>,
        release: Option<Released<I::Key>>,
        now: Instant,
        cancel_gate: bool,
        overrun: bool,
    ) -> Next<T, I::Key> {
        let mut release = release;
        // Leaving without popping: release the previous key, then stop counting as busy (in
        // that order, so a drain never sees a key still held).
        let release_now = |release: &mut Option<Released<I::Key>>| {
            if let Some(r) = release.take() {
                self.intake.release(r);
            }
            slot.busy.store(false, SeqCst);
        };
        loop {
            if self.cancelled.load(SeqCst) {
                release_now(&mut release);
                return Next::Exit;
            }
            if self.workers.load(SeqCst) > self.limit.load(SeqCst) && self.try_exit_for_shrink(slot)
            {
                release_now(&mut release);
                return Next::Exit;
            }
            if self.paused.load(SeqCst) {
                release_now(&mut release);
                return self.park_or_exit();
            }
            // Busy before popping: a drain check that finds the intake empty then sees us.
            // No per-item permit is needed: each worker runs one body at a time, and there are
            // never more workers than the limit that was in force when they started.
            slot.busy.store(true, SeqCst);
            let Some(mut job) = self.intake.pop(release.take()) else {
                slot.busy.store(false, SeqCst);
                self.check_drained();
                return self.park_or_exit();
            };
            self.room_made();
            if cancel_gate {
                // A cancel-on signal is present: queued items are not started.
                self.cancelled_items.fetch_add(1, SeqCst);
                let Job { item, key, .. } = job;
                self.intake.release(Released { key, label: None });
                drop(item);
                continue;
            }
            if overrun {
                self.defer_timeouts.fetch_add(1, SeqCst);
            }
            if job.label.is_none() {
                job.label = self.intake.label_of(&job.key);
            }
            slot.start(job.id, job.label.clone(), job.seq, now);
            let woke = self.wake_one();
            return Next::Run(job, woke);
        }
    }

    /// Nothing to start: exit if the coordinator is done with us, else park.
    pub(super) fn park_or_exit(&self) -> Next<T, I::Key> {
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
    pub(super) fn try_exit_for_shrink(&self, slot: &Arc<Slot>) -> bool {
        let mut ctl = self.ctl();
        if self.workers.load(SeqCst) <= self.limit.load(SeqCst) {
            return false;
        }
        self.workers.fetch_sub(1, SeqCst);
        ctl.slots.retain(|s| !Arc::ptr_eq(s, slot));
        true
    }

    /// Unregisters an exiting worker (shrink exits already did).
    pub(super) fn exit(&self, slot: &Arc<Slot>) {
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
    pub(super) fn finish(&self, slot: &Slot, done: Done<R>, now: Instant) {
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

/// One worker: runs items one after another until the coordinator no longer needs it.
pub(super) async fn worker<T, I, R, F, Fut, E>(
    shared: Arc<Shared<T, I, R>>,
    slot: Arc<Slot>,
    body: Arc<F>,
) where
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
    // The key of the previous item, released with the next pop.
    let mut release: Option<Released<I::Key>> = None;
    loop {
        if std::mem::take(&mut woken) {
            shared.parking.waking.store(false, SeqCst);
        }
        let mut overrun = false;
        if shared.hub.gates.configured(GateKind::Defer) && shared.gate_active(GateKind::Defer) {
            if defer_attempts < shared.max_defer_attempts && shared.intake.has_ready() {
                defer_attempts += 1;
                if let Some(r) = release.take() {
                    shared.intake.release(r);
                }
                slot.busy.store(false, SeqCst);
                shared.check_drained();
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
        match shared.next(&slot, release.take(), now, cancel_gate, overrun) {
            Next::Run(job, woke) => {
                defer_attempts = 0;
                if woke && shared.multi_thread {
                    // The worker we just woke sits in this thread's LIFO slot, which other
                    // threads cannot steal from: let it start before our body, which might
                    // block this thread before its first await. (A current-thread runtime
                    // has no stealing, and a blocking body blocks it whatever we do.)
                    tokio::task::yield_now().await;
                }
                let op = Operation::new(slot.clone(), job.id, job.label.clone());
                let item = job.item;
                let body = &*body;
                let caught = AssertUnwindSafe(async move { body(item, op).await })
                    .catch_unwind()
                    .await;
                let outcome = settle(&shared, caught);
                now = time::now();
                shared.finish(&slot, Done { outcome }, now);
                release = Some(Released {
                    key: job.key,
                    label: job.label,
                });
                if let Some(sampler) = &shared.on_sample {
                    shared.sample(sampler);
                    now = time::now();
                }
                // Still busy: the key is released, and `busy` cleared, by the next pop.
                // Bodies that never wait would let this loop hold its thread for as long as
                // items come; spending tokio's cooperative budget makes the worker yield now
                // and then, so other tasks (the producers among them) get their turn.
                tokio::task::consume_budget().await;
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
