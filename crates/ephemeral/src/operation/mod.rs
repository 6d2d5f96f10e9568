//! The operation handle given to bodies, and what is kept of an operation.

mod error;
pub(crate) mod hub;
mod snapshot;

pub use error::OperationError;
pub use snapshot::OperationSnapshot;

use crate::id::OperationId;
use crate::pattern::Pattern;
use crate::signal::constraints;
use crate::signal::{SignalEvent, SignalRetracted};
use crate::time;
use hub::Hub;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One worker's current operation. Bodies write signals here; window reads lock it briefly.
pub(crate) struct Slot {
    pub(crate) hub: Arc<Hub>,
    running: Mutex<Running>,
    /// The worker is looking for an item, running a body, or sampling after one.
    pub(crate) busy: std::sync::atomic::AtomicBool,
}

/// The running operation of a slot (`id == None` while the worker is between items).
pub(crate) struct Running {
    pub(crate) id: Option<OperationId>,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) seq: u64,
    pub(crate) start: Instant,
    pub(crate) signals: Vec<SignalEvent>,
    pub(crate) pinned: bool,
}

impl Running {
    pub(crate) fn snapshot(&self) -> Option<OperationSnapshot> {
        let id = self.id?;
        Some(OperationSnapshot {
            id,
            started: time::to_system(self.start),
            completed: None,
            key: self.key.clone(),
            error: None,
            signals: self
                .signals
                .iter()
                .map(|e| e.signal_arc().clone())
                .collect(),
            pinned: self.pinned,
        })
    }
}

impl Slot {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Slot {
            hub,
            busy: std::sync::atomic::AtomicBool::new(false),
            running: Mutex::new(Running {
                id: None,
                key: None,
                seq: 0,
                start: time::now(),
                signals: Vec::new(),
                pinned: false,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Running> {
        // Only our own code runs under this lock; a poisoned lock holds consistent data.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `id` in this slot.
    pub(crate) fn start(&self, id: OperationId, key: Option<Arc<str>>, seq: u64, start: Instant) {
        let mut r = self.lock();
        r.id = Some(id);
        r.key = key;
        r.seq = seq;
        r.start = start;
        r.pinned = false;
        debug_assert!(r.signals.is_empty());
    }

    /// Ends the current operation, handing back what was recorded.
    pub(crate) fn finish(&self) -> Ended {
        let mut r = self.lock();
        Ended {
            id: r.id.take().unwrap_or_else(OperationId::next),
            key: r.key.take(),
            seq: r.seq,
            start: r.start,
            signals: std::mem::take(&mut r.signals),
            pinned: std::mem::replace(&mut r.pinned, false),
        }
    }
}

/// What a slot hands back when its operation ends.
pub(crate) struct Ended {
    pub(crate) id: OperationId,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) seq: u64,
    pub(crate) start: Instant,
    pub(crate) signals: Vec<SignalEvent>,
    pub(crate) pinned: bool,
}

/// The handle a body gets for its operation: emit and retract signals, read its token.
///
/// Cheap to clone. Signals emitted while the body runs are recorded on the operation (so the
/// coordinator's window queries, snapshots and `cancel_on_signals` / `defer_on_signals` see them,
/// with their real timestamp and propagation), raised on the configured sink, and passed to
/// `on_signal` / `on_signal_async`. After the body has returned, the handle still publishes to
/// the sink and handlers, but the finished operation's recorded signals no longer change.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
///
/// let c = WorkCoordinator::new(
///     |_: (), op: Operation| async move {
///         op.emit("processing");
///         assert!(op.has_signal("processing"));
///         op.retract("processing");
///         op.emit("completed");
///         Ok::<_, std::io::Error>(())
///     },
///     Options::default(),
/// );
/// c.enqueue(()).await.unwrap();
/// c.complete();
/// c.drain().await;
/// assert!(c.has_signal("completed"));
/// assert!(!c.has_signal("processing"));
/// # }
/// ```
#[derive(Clone)]
pub struct Operation {
    slot: Arc<Slot>,
    id: OperationId,
    key: Option<Arc<str>>,
}

impl Operation {
    pub(crate) fn new(slot: Arc<Slot>, id: OperationId, key: Option<Arc<str>>) -> Self {
        Operation { slot, id, key }
    }

    /// This operation's id.
    #[must_use]
    pub fn id(&self) -> OperationId {
        self.id
    }

    /// This operation's key (keyed coordinators only).
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Emits a signal (a root: depth 1). Answers `false` if the coordinator's
    /// [`SignalConstraints`](crate::SignalConstraints) block it (then it goes nowhere).
    pub fn emit(&self, signal: impl Into<Arc<str>>) -> bool {
        self.emit_inner(signal.into(), None)
    }

    /// Emits a signal caused by `cause` (its propagation extends the cause's path), subject to
    /// the coordinator's constraints. A cause with no propagation (hand-made or leaf) starts a
    /// fresh chain.
    pub fn emit_caused(&self, signal: impl Into<Arc<str>>, cause: &SignalEvent) -> bool {
        self.emit_inner(signal.into(), cause.propagation_arc())
    }

    fn emit_inner(
        &self,
        name: Arc<str>,
        cause: Option<&crate::signal::event::Propagation>,
    ) -> bool {
        let hub = &self.slot.hub;
        let propagation = match &hub.constraints {
            Some(c) => {
                let blocked = |p| {
                    SignalEvent::with_parts(
                        name.clone(),
                        self.id,
                        self.key.clone(),
                        time::system_now(),
                        p,
                    )
                };
                match c.admit(&name, cause, blocked) {
                    Ok(p) => p,
                    Err(_) => return false,
                }
            }
            None => Some(constraints::extend(cause.filter(|c| !c.is_empty()), &name)),
        };
        let event = SignalEvent::with_parts(
            name,
            self.id,
            self.key.clone(),
            time::system_now(),
            propagation,
        );
        {
            let mut r = self.slot.lock();
            if r.id == Some(self.id) {
                hub.gates.added(event.signal());
                r.signals.push(event.clone());
            }
        }
        hub.publish(&event);
        true
    }

    /// Removes the first signal named exactly `signal` from this operation; answers whether
    /// one was there. Fires `on_signal_retracted` / `on_signal_retracted_async`.
    pub fn retract(&self, signal: &str) -> bool {
        let removed = {
            let mut r = self.slot.lock();
            if r.id != Some(self.id) {
                return false;
            }
            match r.signals.iter().position(|e| e.is(signal)) {
                Some(pos) => {
                    let e = r.signals.remove(pos);
                    self.slot.hub.gates.removed_one(e.signal());
                    e
                }
                None => return false,
            }
        };
        self.slot.hub.retracted(SignalRetracted::new(
            removed.signal_arc().clone(),
            self.id,
            self.key.clone(),
            time::system_now(),
            None,
        ));
        true
    }

    /// Removes every signal matching the glob `pattern`; answers how many. Fires one
    /// retraction event per removed signal.
    pub fn retract_matching(&self, pattern: &str) -> usize {
        let p = Pattern::new(pattern);
        let removed: Vec<SignalEvent> = {
            let mut r = self.slot.lock();
            if r.id != Some(self.id) {
                return 0;
            }
            let (gone, kept) = std::mem::take(&mut r.signals)
                .into_iter()
                .partition(|e| p.matches(e.signal()));
            r.signals = kept;
            gone
        };
        let pattern: Arc<str> = Arc::from(pattern);
        let now = time::system_now();
        for e in &removed {
            self.slot.hub.gates.removed_one(e.signal());
            self.slot.hub.retracted(SignalRetracted::new(
                e.signal_arc().clone(),
                self.id,
                self.key.clone(),
                now,
                Some(pattern.clone()),
            ));
        }
        removed.len()
    }

    /// Whether this (running) operation holds a signal named exactly `signal`.
    #[must_use]
    pub fn has_signal(&self, signal: &str) -> bool {
        let r = self.slot.lock();
        r.id == Some(self.id) && r.signals.iter().any(|e| e.is(signal))
    }

    /// The signals this (running) operation holds, in emission order.
    #[must_use]
    pub fn signals(&self) -> Vec<SignalEvent> {
        let r = self.slot.lock();
        if r.id == Some(self.id) {
            r.signals.clone()
        } else {
            Vec::new()
        }
    }

    /// The coordinator's cancellation token: cancelled by `cancel`, `shutdown` or a parent
    /// token. Long bodies should watch it.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        &self.slot.hub.token
    }

    /// Whether [`token`](Self::token) is cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.slot.hub.token.is_cancelled()
    }
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("id", &self.id)
            .field("key", &self.key())
            .finish()
    }
}
