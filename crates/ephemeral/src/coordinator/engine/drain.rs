//! The drain check and the counting it relies on, apart from tokio so that the loom model
//! (`loom_drain.rs`) runs it as is.
//!
//! # Invariants
//!
//! * A producer counts its item in `enqueued`, then reads `closed` ([`count_in`]); the check
//!   reads `closed`, then `enqueued`. Either the check counts the item, or the producer sees
//!   `closed` and takes its count back.
//! * A worker stores `busy = true` before it pops and records its item under its slot's lock;
//!   the check reads the slot's counts under that lock and its `busy` after them, so a worker
//!   whose item the counts include is seen busy until it has finished with it (`on_sample`
//!   included).
//! * An item counted as accepted and cancelled ([`count_accepted_cancelled`]) is counted in
//!   `enqueued` first; the check reads `enqueued`, the finished and cancelled counts, then
//!   `enqueued` again and wants it unchanged, so a cancelled count it sees always comes with
//!   its `enqueued` count and never stands in for another producer's item in flight.

use super::shards::{Shard, Shards};
use super::slot::SlotState;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use crate::window::Window;

/// What the drain check reads besides the shards (the engine's `Shared`, or a model).
pub(crate) trait Drainable {
    /// `complete` or `cancel` ran.
    fn closed(&self) -> bool;
    /// Items in the intake.
    fn pending(&self) -> usize;
    /// Items a stream source read and has not yet enqueued or counted.
    fn sourcing(&self) -> usize;
    /// Items accepted (counted in before `closed` is read, see [`count_in`]).
    fn enqueued(&self) -> u64;
    /// Items accepted and dropped unstarted.
    fn cancelled(&self) -> u64;
    /// The deliberate break a model runs the check with.
    #[cfg(all(test, loom))]
    fn broken(&self) -> Option<super::loom_drain::Broken> {
        None
    }
}

/// Operations a shard recorded as finished (completed or failed).
pub(crate) trait Tally {
    fn finished(&self) -> u64;
}

impl<R, L> Tally for Window<R, L> {
    #[inline]
    fn finished(&self) -> u64 {
        self.completed + self.failed
    }
}

impl<R, L> Tally for SlotState<R, L> {
    #[inline]
    fn finished(&self) -> u64 {
        self.window.finished()
    }
}

/// Closed, nothing pending or being sourced, no worker busy, and every accepted item
/// finished or cancelled (see the module docs for why no item in flight is missed).
#[inline]
pub(crate) fn is_drained<S, W>(d: &impl Drainable, shards: &Shards<S, W>) -> bool
where
    S: Shard,
    S::State: Tally,
    W: Tally,
{
    if !d.closed() || d.pending() != 0 || d.sourcing() != 0 {
        return false;
    }
    // `closed` read, then `enqueued`: the other half of a producer's `count_in`.
    crate::sync::seq_cst_point();
    let enqueued = d.enqueued();
    #[cfg(all(test, loom))]
    let broken = d.broken();
    let track = shards.track();
    let ctl = shards.ctl();
    let mut finished = track.retired.finished();
    for slot in &ctl.slots {
        #[cfg(all(test, loom))]
        if broken == Some(super::loom_drain::Broken::BusyBeforeCounts) {
            // The check before its fix: `busy` read before the slot's lock.
            if slot.busy() {
                return false;
            }
            finished += slot.lock().finished();
            continue;
        }
        let st = slot.lock();
        // `busy` is read under the slot's lock, after the counts it guards: a worker stores
        // `busy = true` before it takes this lock to record an item, so if these counts
        // include an item, this read sees the worker busy (running `on_sample`, say) until it
        // has finished with it. Read before the lock, a worker could start, run and record an
        // item between the two reads, and the drain would be reported while its `on_sample`
        // still ran.
        if slot.busy() {
            return false;
        }
        finished += st.finished();
    }
    drop(ctl);
    drop(track);
    let cancelled = d.cancelled();
    #[cfg(all(test, loom))]
    if broken == Some(super::loom_drain::Broken::NoSecondEnqueuedRead) {
        return finished + cancelled == enqueued;
    }
    // `enqueued` read again: an item counted as accepted-then-cancelled is counted in
    // `enqueued` first, so if `cancelled` includes it, this second read does too. Unchanged,
    // both reads include it, and its `cancelled` count cannot stand in for another
    // producer's item still in flight.
    finished + cancelled == enqueued && d.enqueued() == enqueued
}

/// A producer's count of its item in `enqueued`: taken back when dropped (also on unwind)
/// unless [`kept`](Self::keep).
pub(crate) struct CountedIn<'a> {
    counter: &'a AtomicU64,
    /// `enqueued` before this item (a start-order stamp for the intake).
    pub(crate) ticket: u64,
    keep: bool,
}

impl CountedIn<'_> {
    /// The item was accepted: the count stays.
    #[inline]
    pub(crate) fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for CountedIn<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.keep {
            self.counter.fetch_sub(1, SeqCst);
        }
    }
}

/// Counts an item in `enqueued`, then reads `closed`: `None` (the count taken back) if
/// closed. A drain check that saw the coordinator closed either counts this item or makes
/// us see `closed` (see [`is_drained`]). One atomic write per accepted item.
#[inline]
pub(crate) fn count_in<'a>(enqueued: &'a AtomicU64, closed: &AtomicBool) -> Option<CountedIn<'a>> {
    let ticket = enqueued.fetch_add(1, SeqCst);
    let count = CountedIn {
        counter: enqueued,
        ticket,
        keep: false,
    };
    crate::sync::seq_cst_point();
    if closed.load(SeqCst) {
        return None;
    }
    Some(count)
}

/// Counts an item that was read but refused as accepted, then cancelled, in that order: a
/// drain check that sees it cancelled sees it enqueued in its second read of `enqueued`.
/// (Counted cancelled first, a check could read `enqueued` with another producer's accepted
/// item in it and without this one, then `cancelled` with this one in it, and report a drain
/// while that item was live.)
#[inline]
pub(crate) fn count_accepted_cancelled(enqueued: &AtomicU64, cancelled: &AtomicU64) {
    enqueued.fetch_add(1, SeqCst);
    cancelled.fetch_add(1, SeqCst);
}
