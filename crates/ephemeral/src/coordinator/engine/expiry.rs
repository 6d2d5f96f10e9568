//! Signals with a time to live: when each one ends, and the one task per coordinator that
//! retracts them on time.
//!
//! An operation's signal emitted with a ttl ([`Operation::emit_for`](crate::Operation::emit_for),
//! or [`Options::signal_ttl`](crate::Options::signal_ttl)) is scheduled here. Expiry is exact
//! for readers: every read of the window first retracts what is due (see the engine's
//! `with_window`), so no read returns an ended signal. The background task only makes the
//! retraction events (and the gates' release) happen on time when nobody reads: it sleeps
//! until the soonest deadline and then reads the window. It is spawned with the first
//! scheduled signal, so coordinators that never use a ttl have no such task, and it stops
//! when its coordinator goes away.
//!
//! # Invariants
//!
//! * The queue's lock is a leaf (see the engine's lock order): taken under the slot locks of a
//!   window read, never with a call out of this module.
//! * A signal is scheduled only after it was recorded on its operation, so a due entry whose
//!   signal is not found was retracted or left with its operation, and is simply dropped.

use crate::signal::SignalEvent;
use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::sync::Mutex;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the expiry task drives: a read of the window, which retracts what is due.
pub(crate) trait ExpireTarget: Send + Sync {
    fn expire_due(&self);
}

/// One scheduled end of a signal.
pub(crate) struct Due {
    pub(crate) at: Instant,
    seq: u64,
    /// The signal; its `operation_id` is the operation it belongs to.
    pub(crate) event: SignalEvent,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
    task: bool,
}

/// The ttl schedule of one coordinator.
pub(crate) struct Expiry {
    queue: Mutex<Queue>,
    /// Entries in `queue`: lets readers skip the lock when nothing is scheduled.
    len: AtomicUsize,
    wake: Notify,
    target: OnceLock<Weak<dyn ExpireTarget>>,
    runtime: Option<tokio::runtime::Handle>,
    /// Cancelled when the coordinator goes away: the task ends.
    pub(crate) stop: CancellationToken,
}

impl Expiry {
    pub(crate) fn new() -> Self {
        Expiry {
            queue: Mutex::new(Queue::default()),
            len: AtomicUsize::new(0),
            wake: Notify::new(),
            target: OnceLock::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            stop: CancellationToken::new(),
        }
    }

    /// Sets what the task reads (once, when the coordinator is built).
    pub(crate) fn set_target(&self, target: Weak<dyn ExpireTarget>) {
        let _ = self.target.set(target);
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, Queue> {
        // No user code runs under this lock.
        self.queue.lock()
    }

    /// Schedules the end of `event`, a signal with a ttl recorded on its operation.
    pub(crate) fn schedule(self: &Arc<Self>, event: SignalEvent) {
        let Some(at) = event.expires_at() else {
            return;
        };
        let mut q = self.lock();
        q.seq += 1;
        let seq = q.seq;
        let soonest = q.heap.peek().is_none_or(|Reverse(d)| at < d.at);
        q.heap.push(Reverse(Due { at, seq, event }));
        self.len.fetch_add(1, SeqCst);
        let spawn = !q.task && self.runtime.is_some();
        q.task = true;
        drop(q);
        if spawn {
            if let Some(runtime) = &self.runtime {
                runtime.spawn(run(self.clone()));
            }
        } else if soonest {
            self.wake.notify_one();
        }
    }

    /// Takes every entry due at `now`.
    pub(crate) fn take_due(&self, now: Instant, out: &mut Vec<Due>) {
        if self.len.load(SeqCst) == 0 {
            return;
        }
        let mut q = self.lock();
        while q.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(d)) = q.heap.pop() {
                out.push(d);
            }
        }
        self.len.store(q.heap.len(), SeqCst);
    }

    fn soonest(&self) -> Option<Instant> {
        self.lock().heap.peek().map(|Reverse(d)| d.at)
    }
}

/// The task: sleeps until the soonest end, then reads the window (which retracts what is due).
async fn run(expiry: Arc<Expiry>) {
    loop {
        let sleep = async {
            match expiry.soonest() {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = expiry.wake.notified() => continue,
            () = expiry.stop.cancelled() => return,
        }
        match expiry.target.get().and_then(Weak::upgrade) {
            Some(target) => target.expire_due(),
            None => return,
        }
    }
}
