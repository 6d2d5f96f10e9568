//! Reads: counters, snapshots, signal visits, pinning.
//!
//! # Invariants
//!
//! * A read of the window holds `track`, `ctl` and every slot's lock (in that order) while it
//!   looks, so it sees each operation exactly once: running, or finished in one shard.
//! * Every window read first retracts the signals whose ttl ended and trims the window to its
//!   logical content, so no read returns an expired operation or signal.
//! * Evicted results are dropped and retraction handlers run after every lock is released.
use super::expiry::Due;
use super::slot::SlotState;
use super::*;
use crate::label::KeyLabel;
use crate::signal::SignalRetracted;
use crate::window::Finished;

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    /// Items pending (an atomic read).
    pub(crate) fn pending_count(&self) -> usize {
        self.intake.len()
    }

    /// Items accepted so far (an atomic read).
    pub(crate) fn total_enqueued(&self) -> u64 {
        self.producer.enqueued.load(SeqCst)
    }

    /// Items dropped before starting (an atomic read).
    pub(crate) fn total_cancelled(&self) -> u64 {
        self.cancelled_items.load(SeqCst)
    }

    /// Bodies that returned `Ok` and that failed: counted per worker (no shared counter on the
    /// hot path), so this sums the workers' counts under their locks.
    pub(crate) fn finished_counts(&self) -> (u64, u64) {
        let track = self.track();
        let ctl = self.ctl();
        ctl.slots.iter().fold(
            (track.retired.completed, track.retired.failed),
            |(c, f), slot| {
                let st = slot.lock();
                (c + st.window.completed, f + st.window.failed)
            },
        )
    }

    pub(crate) fn stats(&self) -> Stats {
        let (completed, failed) = self.finished_counts();
        let pending = self.intake.len();
        Stats {
            pending,
            active: self.active_now(),
            enqueued: self.producer.enqueued.load(SeqCst),
            completed,
            failed,
            cancelled: self.cancelled_items.load(SeqCst),
            max_concurrency: self.limit.load(SeqCst),
            paused: self.paused.load(SeqCst),
            closed: self.closed.load(SeqCst),
            defer_timeouts: self.defer_timeouts.load(SeqCst),
            deferred: self.deferring.load(SeqCst).min(pending),
            signal_handler_drops: self.hub.handler_drops(),
            signal_handler_failures: self.hub.handler_failures(),
        }
    }

    /// Runs `f` with a test of whether an operation is in a slot (its body running, or
    /// returned and not recorded yet), under every slot's lock, so that whatever `f` reads
    /// meanwhile is consistent with the test's answers.
    pub(crate) fn with_started<X>(&self, f: impl FnOnce(&dyn Fn(OperationId) -> bool) -> X) -> X {
        let ctl = self.ctl();
        let slots: Vec<MutexGuard<'_, SlotState<R, I::Label>>> =
            ctl.slots.iter().map(|s| s.lock()).collect();
        f(&|id| slots.iter().any(|st| st.running.id == Some(id)))
    }

    /// Locks the whole window (every worker's slot and the retired shard), trims it to its
    /// logical content (see `window`), and hands it to `f`.
    pub(super) fn with_window<X>(
        &self,
        f: impl FnOnce(&mut WindowView<'_, '_, R, I::Label>) -> X,
    ) -> X {
        let now = time::now();
        let mut due = Vec::new();
        // Results that leave the window are dropped once every lock is released (a result's
        // `Drop` is user code).
        let mut dead = Vec::new();
        let out = self.shards.read(|retired, slots| {
            // Signals whose ttl ended leave first, so that no read returns them.
            self.hub.expiry.take_due(now, &mut due);
            due.retain(|d| self.remove_expired(slots, retired, d));
            window::trim(
                slots
                    .iter_mut()
                    .map(|st| &mut st.window)
                    .chain(std::iter::once(&mut *retired)),
                self.window_max,
                now,
                &self.hub.gates,
            );
            let out = f(&mut WindowView {
                slots,
                retired,
                now,
            });
            for st in slots.iter_mut() {
                st.window.take_dead(&mut dead);
            }
            retired.take_dead(&mut dead);
            out
        });
        drop(dead);
        if !due.is_empty() {
            // Retraction handlers are user code: run them with no lock held.
            let at = time::to_system(now);
            for d in due {
                self.hub.retracted(SignalRetracted::expiry(&d.event, at));
            }
        }
        out
    }

    /// Removes a signal whose ttl ended from its operation, running or finished; returns
    /// whether it was still there (it may have been retracted, or left with its operation).
    fn remove_expired(
        &self,
        slots: &mut [MutexGuard<'_, SlotState<R, I::Label>>],
        retired: &mut Window<R, I::Label>,
        due: &Due,
    ) -> bool {
        let gates = &self.hub.gates;
        let op = due.event.operation_id();
        for st in slots.iter_mut() {
            if st.running.id == Some(op) {
                if let Some(pos) = st.running.signals.iter().position(|e| *e == due.event) {
                    let gone = st.running.signals.remove(pos);
                    gates.removed_one(gone.signal());
                    return true;
                }
                return false;
            }
        }
        slots
            .iter_mut()
            .map(|st| &mut st.window)
            .chain(std::iter::once(retired))
            .any(|w| w.remove_signal(op, &due.event, gates))
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

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn owed_replies(&self) -> usize {
        self.replies.len()
    }

    /// The snapshot of operation `id`, if the window holds it.
    pub(crate) fn snapshot_of(&self, id: OperationId) -> Option<OperationSnapshot> {
        self.with_window(|view| {
            for st in view.slots.iter() {
                if st.running.id == Some(id) {
                    return st.running.snapshot();
                }
            }
            view.finished()
                .find(|(rec, _)| rec.id == id)
                .map(|(rec, pinned)| rec.snapshot(pinned))
        })
    }

    /// Maps every operation of the window (running ones through `running`, finished ones
    /// through `finished`), in start order.
    pub(crate) fn window_map<X>(
        &self,
        mut running: impl FnMut(OperationSnapshot) -> Option<X>,
        mut finished: impl FnMut(&Finished<R, I::Label>, bool) -> Option<X>,
    ) -> Vec<X> {
        let mut out = self.with_window(|view| {
            let mut out = Vec::new();
            for st in view.slots.iter() {
                if let (Some(id), Some(x)) =
                    (st.running.id, st.running.snapshot().and_then(&mut running))
                {
                    out.push(((st.running.seq, id), x));
                }
            }
            for (rec, pinned) in view.finished() {
                if let Some(x) = finished(rec, pinned) {
                    out.push(((rec.seq, rec.id), x));
                }
            }
            out
        });
        // Stamps may tie (see `Job::seq`); the id makes the order total.
        out.sort_unstable_by_key(|(order, _)| *order);
        out.into_iter().map(|(_, x)| x).collect()
    }

    /// Finished operations of the window mapped through `f`, in start order.
    pub(crate) fn finished_where<X>(
        &self,
        f: impl FnMut(&Finished<R, I::Label>, bool) -> Option<X>,
    ) -> Vec<X> {
        self.window_map(|_| None, f)
    }

    /// Visits every live window signal, operations in start order.
    pub(crate) fn visit_signals(&self, visit: &mut dyn FnMut(&SignalEvent) -> ControlFlow<()>) {
        self.with_window(|view| {
            let mut ops: Vec<((u64, OperationId), &[SignalEvent])> = view
                .slots
                .iter()
                .filter_map(|st| Some(((st.running.seq, st.running.id?), &st.running.signals[..])))
                .chain(
                    view.finished()
                        .map(|(rec, _)| ((rec.seq, rec.id), rec.signals.as_slice())),
                )
                .filter(|(_, s)| !s.is_empty())
                .collect();
            ops.sort_unstable_by_key(|(order, _)| *order);
            for (_, signals) in ops {
                for e in signals {
                    if visit(e).is_break() {
                        return;
                    }
                }
            }
        });
    }

    pub(crate) fn pin(&self, id: OperationId) -> bool {
        self.with_window(|view| {
            let now = view.now;
            for st in view.slots.iter_mut() {
                if st.running.id == Some(id) {
                    st.running.pinned = true;
                    return true;
                }
            }
            view.shards().any(|w| w.pin(id, now))
        })
    }

    pub(crate) fn unpin(&self, id: OperationId) -> bool {
        let gates = &self.hub.gates;
        self.with_window(|view| {
            let now = view.now;
            for st in view.slots.iter_mut() {
                if st.running.id == Some(id) {
                    return std::mem::replace(&mut st.running.pinned, false);
                }
            }
            view.shards().any(|w| w.unpin(id, now, gates))
        })
    }

    pub(crate) fn evict(&self, id: OperationId) -> bool {
        let gates = &self.hub.gates;
        self.with_window(|view| view.shards().any(|w| w.evict(id, gates)))
    }

    #[cfg(any(test, feature = "test-util"))]
    /// Records held right now (running and finished, including some that already left the
    /// logical window and wait for the next read to be dropped).
    pub(crate) fn window_held(&self) -> usize {
        let track = self.track();
        let ctl = self.ctl();
        track.retired.held()
            + ctl
                .slots
                .iter()
                .map(|s| {
                    let st = s.lock();
                    st.window.held() + usize::from(st.running.id.is_some())
                })
                .sum::<usize>()
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    pub(crate) fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    pub(crate) fn max_concurrency(&self) -> usize {
        self.limit.load(SeqCst)
    }

    /// Feeds `stream` into the coordinator in the background, then completes it.
    ///
    /// Reads the stream to its end: every item read is accepted, or counted as accepted and
    /// cancelled (see [`enqueue_from_source`](Self::enqueue_from_source)), so items read ==
    /// completed + failed + cancelled once drained. Stops reading once the coordinator is
    /// closed (by `complete`, `cancel` or a parent token), so the feeder never outlives it.
    pub(crate) fn feed<St>(
        self: &Arc<Self>,
        stream: St,
        key_of: impl Fn(&T) -> I::Key + Send + Sync + 'static,
    ) where
        St: futures_util::Stream<Item = T> + Send + 'static,
    {
        let shared = self.clone();
        self.runtime.spawn(async move {
            // Completes the coordinator however reading ends, also when the stream or the key
            // function panics (the items read before still run; a drain does not hang).
            let _complete = CompleteOnDrop(&shared);
            let mut stream = std::pin::pin!(stream);
            let closed = shared.closed_token.clone();
            loop {
                let item = tokio::select! {
                    item = futures_util::StreamExt::next(&mut stream) => item,
                    () = closed.cancelled() => None,
                };
                let Some(item) = item else { break };
                if shared.enqueue_from_source(item, &key_of).await == SourceOutcome::Closed {
                    break;
                }
            }
        });
    }
}

/// Completes the coordinator when dropped.
struct CompleteOnDrop<'a, T: Send + 'static, I: Intake<T>, R: Send + 'static>(
    &'a Arc<Shared<T, I, R>>,
);

impl<T: Send + 'static, I: Intake<T>, R: Send + 'static> Drop for CompleteOnDrop<'_, T, I, R> {
    fn drop(&mut self) {
        self.0.complete();
    }
}

/// The whole window, locked and trimmed: every worker's slot, and the retired shard.
pub(super) struct WindowView<'v, 'g, R, L> {
    slots: &'v mut [MutexGuard<'g, SlotState<R, L>>],
    retired: &'v mut Window<R, L>,
    now: Instant,
}

impl<'v, 'g, R, L: KeyLabel> WindowView<'v, 'g, R, L> {
    /// Every shard of finished operations.
    fn shards<'s>(
        &'s mut self,
    ) -> impl Iterator<Item = &'s mut Window<R, L>> + use<'s, 'v, 'g, R, L> {
        self.slots
            .iter_mut()
            .map(|st| &mut st.window)
            .chain(std::iter::once(&mut *self.retired))
    }

    /// Every live finished operation with its pinned flag, in no particular order.
    fn finished(&self) -> impl Iterator<Item = (&Finished<R, L>, bool)> + '_ {
        let now = self.now;
        self.slots
            .iter()
            .flat_map(move |st| st.window.iter_live(now))
            .chain(self.retired.iter_live(now))
    }
}
