//! A worker's slot: the operation it runs and its shard of the window, under one lock.
//!
//! # Invariants
//!
//! * One lock covers the running operation and the shard, so an operation is always in exactly
//!   one of them for a reader holding the lock.
//! * `ended` holds the id of the last operation whose body returned; handles of that operation
//!   no longer change its signals or label (its record is written lazily, with the next start).
//! * Only the slot's worker and readers take its lock; no user code runs under it except drops
//!   of evicted results.

use super::hub::Hub;
use super::shards::Shard;
use crate::id::OperationId;
use crate::label::KeyLabel;
use crate::operation::{OpSlot, OperationError, OperationSnapshot};
use crate::signal::{SignalConstraints, SignalEvent, SignalRetracted};
use crate::sync::{Mutex, MutexGuard};
use crate::time;
use crate::window::{Finished, OnRemoved, Window};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One worker's state: its running operation (bodies write signals here) and its shard of the
/// window (the operations it finished). One lock covers both, so a worker records an
/// operation's end and starts its next one in a single critical section, and a reader never
/// sees an operation in neither place. Only its worker and readers take it.
pub(crate) struct Slot<R, L> {
    pub(crate) hub: Arc<Hub>,
    state: Mutex<SlotState<R, L>>,
    /// The worker is looking for an item, running a body, or sampling after one.
    pub(crate) busy: crate::sync::atomic::AtomicBool,
    /// The id (raw) of the last operation whose body returned. Its worker records it lazily,
    /// with the start of the next one; until then this keeps handles that outlive the body
    /// from changing its signals.
    ended: crate::sync::atomic::AtomicU64,
}

/// What a slot's lock guards.
pub(crate) struct SlotState<R, L> {
    pub(crate) running: Running<L>,
    /// The operations this worker finished (see `window`).
    pub(crate) window: Window<R, L>,
}

impl<R: Send, L: KeyLabel> OpSlot for Slot<R, L> {
    fn with_running(&self, f: &mut dyn FnMut(Option<OperationId>, &mut Vec<SignalEvent>)) {
        let mut st = self.lock();
        let running = &mut st.running;
        let ended = self.ended.load(crate::sync::atomic::Ordering::Acquire);
        f(
            running.id.filter(|id| id.get() != ended),
            &mut running.signals,
        );
    }
    fn set_label(&self, id: OperationId, label: Arc<str>) -> bool {
        let mut st = self.lock();
        let ended = self.ended.load(crate::sync::atomic::Ordering::Acquire);
        if st.running.id != Some(id) || id.get() == ended {
            return false;
        }
        let old = st.running.label.replace(label);
        drop(st);
        drop(old);
        true
    }
    fn token(&self) -> &CancellationToken {
        &self.hub.token
    }
    fn signal_ttl(&self) -> Option<Duration> {
        self.hub.signal_ttl
    }
    fn constraints(&self) -> Option<&SignalConstraints> {
        self.hub.constraints.as_ref()
    }
    fn signal_added(&self, name: &str) {
        self.hub.gates.added(name);
    }
    fn signal_removed(&self, name: &str) {
        self.hub.gates.removed_one(name);
    }
    fn emitted(&self, event: &SignalEvent, expires: bool) {
        self.hub.emitted(event, expires);
    }
    fn retracted(&self, event: SignalRetracted) {
        self.hub.retracted(event);
    }
}

impl<R, L> SlotState<R, L> {
    /// Nothing running, an empty shard of capacity `max`.
    pub(crate) fn new(max: usize, lifetime: Option<Duration>, now: Instant) -> Self {
        SlotState {
            running: Running {
                id: None,
                key: None,
                seq: 0,
                start: now,
                signals: Vec::new(),
                pinned: false,
                label: None,
            },
            window: Window::new(max, lifetime),
        }
    }
}

impl<R, L: KeyLabel> SlotState<R, L> {
    /// Ends the running operation with `outcome` at `now` and records it in this slot's
    /// shard (`seen` sees the record first), moving results that left the shard to `spare`
    /// (to be dropped after the lock is released).
    ///
    /// The operation goes from running to finished within this one call, so a caller holding
    /// the slot's lock across it (and across the next start: `settle_slot`) never shows a
    /// reader the operation in neither place or in both.
    #[inline]
    pub(crate) fn settle(
        &mut self,
        outcome: Result<R, OperationError>,
        now: Instant,
        gates: &impl OnRemoved,
        spare: &mut Vec<R>,
        seen: impl FnOnce(&Finished<R, L>),
    ) {
        let (rec, pinned) = self.running.finish(now, outcome);
        seen(&rec);
        self.window.record(rec, pinned, now, gates);
        self.window.take_dead(spare);
    }
}

impl<R, L> Shard for Slot<R, L> {
    type State = SlotState<R, L>;
    #[inline]
    fn lock(&self) -> MutexGuard<'_, SlotState<R, L>> {
        Slot::lock(self)
    }
    #[inline]
    fn busy(&self) -> bool {
        self.busy.load(crate::sync::atomic::Ordering::SeqCst)
    }
}

/// The running operation of a slot (`id == None` while the worker is between items).
pub(crate) struct Running<L> {
    pub(crate) id: Option<OperationId>,
    pub(crate) key: Option<L>,
    pub(crate) seq: u64,
    pub(crate) start: Instant,
    pub(crate) signals: Vec<SignalEvent>,
    pub(crate) pinned: bool,
    pub(crate) label: Option<Arc<str>>,
}

impl<L: KeyLabel> Running<L> {
    pub(crate) fn snapshot(&self) -> Option<OperationSnapshot> {
        let id = self.id?;
        Some(OperationSnapshot {
            id,
            started: time::to_system(self.start),
            completed: None,
            key: self.key.as_ref().and_then(KeyLabel::to_arc),
            error: None,
            signals: self
                .signals
                .iter()
                .map(|e| e.signal_arc().clone())
                .collect(),
            pinned: self.pinned,
            label: self.label.clone(),
        })
    }

    /// Starts `id`.
    pub(crate) fn start(&mut self, id: OperationId, key: Option<L>, seq: u64, start: Instant) {
        self.id = Some(id);
        self.key = key;
        self.seq = seq;
        self.start = start;
        self.pinned = false;
        debug_assert!(self.signals.is_empty());
    }

    /// Ends the current operation: its record, finished at `end`.
    pub(crate) fn finish<R>(
        &mut self,
        end: Instant,
        outcome: Result<R, OperationError>,
    ) -> (Finished<R, L>, bool) {
        let (error, result) = match outcome {
            Ok(r) => (None, Some(r)),
            Err(e) => (Some(e), None),
        };
        let rec = Finished {
            id: self.id.take().unwrap_or_else(OperationId::next),
            key: self.key.take(),
            seq: self.seq,
            start: self.start,
            end,
            error,
            signals: std::mem::take(&mut self.signals),
            result,
            label: self.label.take(),
        };
        (rec, std::mem::replace(&mut self.pinned, false))
    }
}

impl<R, L> Slot<R, L> {
    pub(crate) fn new(hub: Arc<Hub>, max: usize, lifetime: Option<std::time::Duration>) -> Self {
        Slot {
            hub,
            busy: crate::sync::atomic::AtomicBool::new(false),
            ended: crate::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(SlotState::new(max, lifetime, time::now())),
        }
    }

    /// The body of operation `id` returned: its handles stop changing it.
    pub(crate) fn body_returned(&self, id: OperationId) {
        self.ended
            .store(id.get(), crate::sync::atomic::Ordering::Release);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SlotState<R, L>> {
        // Only our own code (and drops of evicted results) runs under this lock; a poisoned
        // lock holds consistent data.
        self.state.lock()
    }
}
