//! The operation handle given to bodies, and what is kept of an operation.

mod error;
pub(crate) mod expiry;
pub(crate) mod hub;
mod snapshot;

pub use error::OperationError;
pub use snapshot::OperationSnapshot;

use crate::id::OperationId;
use crate::label::{KeyLabel, Label};
use crate::pattern::Pattern;
use crate::signal::constraints;
use crate::signal::{SignalEvent, SignalRetracted};
use crate::time;
use crate::window::{Finished, Window};
use hub::Hub;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
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
    pub(crate) busy: std::sync::atomic::AtomicBool,
    /// The id (raw) of the last operation whose body returned. Its worker records it lazily,
    /// with the start of the next one; until then this keeps handles that outlive the body
    /// from changing its signals.
    ended: std::sync::atomic::AtomicU64,
}

/// What a slot's lock guards.
pub(crate) struct SlotState<R, L> {
    pub(crate) running: Running<L>,
    /// The operations this worker finished (see `window`).
    pub(crate) window: Window<R, L>,
}

/// What an [`Operation`] handle needs of its slot, without the result type.
pub(crate) trait OpSlot: Send + Sync {
    fn hub(&self) -> &Hub;
    /// Runs `f` on the running operation's id and signals under the slot's lock.
    fn with_running(&self, f: &mut dyn FnMut(Option<OperationId>, &mut Vec<SignalEvent>));
    /// Sets the label of operation `id` if it is the one running (and its body has not
    /// returned); answers whether it did.
    fn set_label(&self, id: OperationId, label: Arc<str>) -> bool;
}

impl<R: Send, L: KeyLabel> OpSlot for Slot<R, L> {
    fn hub(&self) -> &Hub {
        &self.hub
    }
    fn with_running(&self, f: &mut dyn FnMut(Option<OperationId>, &mut Vec<SignalEvent>)) {
        let mut st = self.lock();
        let running = &mut st.running;
        let ended = self.ended.load(std::sync::atomic::Ordering::Acquire);
        f(
            running.id.filter(|id| id.get() != ended),
            &mut running.signals,
        );
    }
    fn set_label(&self, id: OperationId, label: Arc<str>) -> bool {
        let mut st = self.lock();
        let ended = self.ended.load(std::sync::atomic::Ordering::Acquire);
        if st.running.id != Some(id) || id.get() == ended {
            return false;
        }
        let old = st.running.label.replace(label);
        drop(st);
        drop(old);
        true
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
            busy: std::sync::atomic::AtomicBool::new(false),
            ended: std::sync::atomic::AtomicU64::new(0),
            state: Mutex::new(SlotState {
                running: Running {
                    id: None,
                    key: None,
                    seq: 0,
                    start: time::now(),
                    signals: Vec::new(),
                    pinned: false,
                    label: None,
                },
                window: Window::new(max, lifetime),
            }),
        }
    }

    /// The body of operation `id` returned: its handles stop changing it.
    pub(crate) fn body_returned(&self, id: OperationId) {
        self.ended
            .store(id.get(), std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SlotState<R, L>> {
        // Only our own code (and drops of evicted results) runs under this lock; a poisoned
        // lock holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    slot: Arc<dyn OpSlot>,
    id: OperationId,
    key: Option<Label>,
}

impl Operation {
    pub(crate) fn new(slot: Arc<dyn OpSlot>, id: OperationId, key: Option<Label>) -> Self {
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
        self.key.as_ref().map(Label::as_str)
    }

    /// Emits a signal as the root of a chain (depth 1; depth 0 for a
    /// [leaf signal](crate::SignalConstraints::leaf_signals)).
    ///
    /// Always answers `true`: [`SignalConstraints`](crate::SignalConstraints) only limit what a
    /// *cause* may cause (depth, cycles, terminal signals), and a root has no cause, so no
    /// configuration blocks it. The `bool` mirrors [`emit_caused`](Self::emit_caused), which
    /// can answer `false`. Use [`emit_event`](Self::emit_event) to get the event.
    ///
    /// The signal is recorded on this operation while its body runs, raised on the configured
    /// sink and passed to the `on_signal` handlers.
    pub fn emit(&self, signal: impl Into<Arc<str>>) -> bool {
        self.emit_event(signal).is_some()
    }

    /// Emits a signal that retracts itself after `ttl`: the way to say "back off for a
    /// while". Until then it is like [`emit`](Self::emit)'s; when `ttl` runs out it leaves
    /// the operation (even one that has finished), a retraction event fires
    /// (`on_signal_retracted`, with [`is_expiry`](crate::SignalRetracted::is_expiry) true),
    /// `defer_on_signals` / `cancel_on_signals` gates release, and a configured sink stops
    /// returning it. The operation itself stays in the window as long as before, so failures
    /// remain listed. Always answers `true`, as `emit` does (a root is never blocked).
    ///
    /// ```
    /// use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
    /// use std::time::Duration;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let crawler = WorkCoordinator::new(
    ///         |status: u16, op: Operation| async move {
    ///             if status == 429 {
    ///                 op.emit_for("rate-limit", Duration::from_millis(500));
    ///             }
    ///         },
    ///         Options::default().defer_on_signals(["rate-limit"]),
    ///     );
    ///     crawler.enqueue(429).await.unwrap();
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    ///     assert!(crawler.has_signal("rate-limit")); // back off...
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     assert!(!crawler.has_signal("rate-limit")); // ...for half a second
    ///     assert_eq!(crawler.completed().len(), 1); // the operation is still listed
    /// }
    /// ```
    pub fn emit_for(&self, signal: impl Into<Arc<str>>, ttl: Duration) -> bool {
        self.emit_inner(signal.into(), None, Some(ttl)).is_some()
    }

    /// Emits a signal caused by `cause` (its propagation extends the cause's path); answers
    /// `false`, and the signal goes nowhere, when the coordinator's
    /// [`SignalConstraints`](crate::SignalConstraints) block it (the cause is at the maximum
    /// depth, the name is already on the cause's path, or the cause is terminal). Without
    /// constraints it always answers `true`. A cause with no propagation (hand-made or leaf)
    /// starts a fresh chain and is never blocked. Use
    /// [`emit_caused_event`](Self::emit_caused_event) to get the event.
    pub fn emit_caused(&self, signal: impl Into<Arc<str>>, cause: &SignalEvent) -> bool {
        self.emit_caused_event(signal, cause).is_some()
    }

    /// Emits a signal as the root of a chain, like [`emit`](Self::emit), and returns the event
    /// it made (with its timestamp and propagation), ready to be the cause of the next step.
    ///
    /// Always `Some` (a root is never blocked); the `Option` mirrors
    /// [`emit_caused_event`](Self::emit_caused_event).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{Operation, Options, SignalConstraints, SignalSource, WorkCoordinator};
    ///
    /// let c = WorkCoordinator::new(
    ///     |_: (), op: Operation| async move {
    ///         // Each step passes its event on as the cause of the next one.
    ///         let fetched = op.emit_event("fetched").expect("a root is never blocked");
    ///         let parsed = op.emit_caused_event("parsed", &fetched).expect("depth 2 is allowed");
    ///         let stored = op.emit_caused_event("stored", &parsed).expect("depth 3 is allowed");
    ///         assert_eq!(stored.depth(), 3);
    ///         // The chain is at the maximum depth: what `stored` causes is blocked.
    ///         assert!(op.emit_caused_event("indexed", &stored).is_none());
    ///         Ok::<_, std::io::Error>(())
    ///     },
    ///     Options::default().signal_constraints(SignalConstraints::default().max_depth(3)),
    /// );
    /// c.enqueue(()).await.unwrap();
    /// c.complete();
    /// c.drain().await;
    /// let stored = c.signals_named("stored");
    /// assert_eq!(stored[0].propagation().len(), 3);
    /// assert!(!c.has_signal("indexed"));
    /// # }
    /// ```
    pub fn emit_event(&self, signal: impl Into<Arc<str>>) -> Option<SignalEvent> {
        self.emit_inner(signal.into(), None, self.slot.hub().signal_ttl)
    }

    /// Emits a signal caused by `cause`, like [`emit_caused`](Self::emit_caused), and returns
    /// the event it made; `None` when the coordinator's
    /// [`SignalConstraints`](crate::SignalConstraints) block it (then it goes nowhere).
    ///
    /// See [`emit_event`](Self::emit_event) for a chain built step by step.
    pub fn emit_caused_event(
        &self,
        signal: impl Into<Arc<str>>,
        cause: &SignalEvent,
    ) -> Option<SignalEvent> {
        self.emit_inner(
            signal.into(),
            cause.propagation_arc(),
            self.slot.hub().signal_ttl,
        )
    }

    /// Builds, records and publishes the event, unless the constraints block it.
    fn emit_inner(
        &self,
        name: Arc<str>,
        cause: Option<&crate::signal::event::Propagation>,
        ttl: Option<Duration>,
    ) -> Option<SignalEvent> {
        let hub = self.slot.hub();
        let propagation = match &hub.constraints {
            Some(c) => {
                let blocked = |p| {
                    SignalEvent::with_parts(
                        name.clone(),
                        self.id,
                        self.key.as_ref().map(Label::to_arc),
                        time::system_now(),
                        p,
                    )
                };
                match c.admit(&name, cause, blocked) {
                    Ok(p) => p,
                    Err(_) => return None,
                }
            }
            None => Some(constraints::extend(cause.filter(|c| !c.is_empty()), &name)),
        };
        let mut event = SignalEvent::with_parts(
            name,
            self.id,
            self.key.as_ref().map(Label::to_arc),
            time::system_now(),
            propagation,
        );
        if let Some(ttl) = ttl {
            event = event.with_ttl(ttl);
        }
        let mut recorded = false;
        self.slot.with_running(&mut |id, signals| {
            if id == Some(self.id) {
                hub.gates.added(event.signal());
                signals.push(event.clone());
                recorded = true;
            }
        });
        hub.telemetry.signal(event.signal());
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "ephemeral",
            signal = event.signal(),
            operation = %self.id,
            depth = event.depth(),
            "signal"
        );
        if recorded && ttl.is_some() {
            // Scheduled once recorded (and outside the slot's lock): an expiry read finds it.
            hub.expiry.schedule(event.clone());
        }
        hub.publish(&event);
        Some(event)
    }

    /// Removes the first signal named exactly `signal` from this operation; answers whether
    /// one was there. Fires `on_signal_retracted` / `on_signal_retracted_async`.
    pub fn retract(&self, signal: &str) -> bool {
        let hub = self.slot.hub();
        let mut removed = None;
        self.slot.with_running(&mut |id, signals| {
            if id == Some(self.id) {
                if let Some(pos) = signals.iter().position(|e| e.is(signal)) {
                    let e = signals.remove(pos);
                    hub.gates.removed_one(e.signal());
                    removed = Some(e);
                }
            }
        });
        let Some(removed) = removed else {
            return false;
        };
        hub.retracted(SignalRetracted::new(
            removed.signal_arc().clone(),
            self.id,
            self.key.as_ref().map(Label::to_arc),
            time::system_now(),
            None,
        ));
        true
    }

    /// Removes every signal matching the glob `pattern`; answers how many. Fires one
    /// retraction event per removed signal.
    pub fn retract_matching(&self, pattern: &str) -> usize {
        let p = Pattern::new(pattern);
        let mut removed: Vec<SignalEvent> = Vec::new();
        self.slot.with_running(&mut |id, signals| {
            if id == Some(self.id) {
                let (gone, kept) = std::mem::take(signals)
                    .into_iter()
                    .partition(|e| p.matches(e.signal()));
                *signals = kept;
                removed = gone;
            }
        });
        let hub = self.slot.hub();
        let pattern: Arc<str> = Arc::from(pattern);
        let now = time::system_now();
        for e in &removed {
            hub.gates.removed_one(e.signal());
            hub.retracted(SignalRetracted::new(
                e.signal_arc().clone(),
                self.id,
                self.key.as_ref().map(Label::to_arc),
                now,
                Some(pattern.clone()),
            ));
        }
        removed.len()
    }

    /// Whether this (running) operation holds a signal named exactly `signal`.
    #[must_use]
    pub fn has_signal(&self, signal: &str) -> bool {
        let mut found = false;
        let now = time::now();
        self.slot.with_running(&mut |id, signals| {
            found = id == Some(self.id) && signals.iter().any(|e| e.is(signal) && !e.expired(now));
        });
        found
    }

    /// The signals this (running) operation holds, in emission order.
    #[must_use]
    pub fn signals(&self) -> Vec<SignalEvent> {
        let mut signals = Vec::new();
        let now = time::now();
        self.slot.with_running(&mut |id, held| {
            if id == Some(self.id) {
                signals.extend(held.iter().filter(|e| !e.expired(now)).cloned());
            }
        });
        signals
    }

    /// Gives this operation a short, human-readable label (a URL, an order number, a file
    /// name), shown by its snapshots ([`OperationSnapshot::label`]) and so in failure lists
    /// and the dashboard. Calling it again replaces the label. Answers `false` (and does
    /// nothing) once the body has returned.
    ///
    /// **Metadata, never payloads**: a label is a string the body chooses, cut to at most
    /// [`MAX_LABEL_LEN`](Self::MAX_LABEL_LEN) bytes (at a character boundary), so the window's
    /// memory stays bounded by `max_tracked_operations` × that, whatever the items hold. Put
    /// an identifier in it, not the item: it lives as long as the operation stays in the
    /// window, and snapshots (and the status API) show it to whoever can read them.
    ///
    /// ```
    /// use ephemeral::{Operation, Options, WorkCoordinator};
    ///
    /// #[tokio::main(flavor = "current_thread")]
    /// async fn main() {
    ///     let fetcher = WorkCoordinator::new(
    ///         |url: String, op: Operation| async move {
    ///             op.set_label(url.as_str());
    ///             if url.ends_with("/missing") { Err("404 Not Found") } else { Ok(()) }
    ///         },
    ///         Options::default(),
    ///     );
    ///     for url in ["https://example.com/", "https://example.com/missing"] {
    ///         fetcher.enqueue(url.to_string()).await.unwrap();
    ///     }
    ///     fetcher.complete();
    ///     fetcher.drain().await;
    ///     for failed in fetcher.failed() {
    ///         // Which item failed, without a side map of id -> item.
    ///         assert_eq!(failed.label(), Some("https://example.com/missing"));
    ///         assert_eq!(failed.error().unwrap().to_string(), "404 Not Found");
    ///     }
    /// }
    /// ```
    pub fn set_label(&self, label: impl AsRef<str>) -> bool {
        let label = label.as_ref();
        let cut = if label.len() <= Self::MAX_LABEL_LEN {
            label
        } else {
            let mut end = Self::MAX_LABEL_LEN;
            while !label.is_char_boundary(end) {
                end -= 1;
            }
            &label[..end]
        };
        self.slot.set_label(self.id, Arc::from(cut))
    }

    /// The longest label [`set_label`](Self::set_label) keeps, in bytes.
    pub const MAX_LABEL_LEN: usize = 128;

    /// The coordinator's cancellation token: cancelled by `cancel`, `shutdown` or a parent
    /// token. Long bodies should watch it.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        &self.slot.hub().token
    }

    /// Whether [`token`](Self::token) is cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.slot.hub().token.is_cancelled()
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
