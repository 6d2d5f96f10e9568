//! Reads: counters, snapshots, signal visits, pinning.
use super::*;

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
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
