//! The operation handle given to bodies, and what is kept of an operation.

mod error;
mod snapshot;

pub use error::OperationError;
pub use snapshot::OperationSnapshot;

use crate::id::OperationId;
use crate::label::Label;
use crate::pattern::Pattern;
use crate::signal::constraints;
use crate::signal::{SignalConstraints, SignalEvent, SignalRetracted};
use crate::time;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What an [`Operation`] handle needs of the engine: its worker's running operation and the
/// coordinator's signal plumbing. Defined here and implemented by the engine's worker slot,
/// so this module does not depend on the engine.
pub(crate) trait OpSlot: Send + Sync {
    /// Runs `f` on the running operation's id and signals under the slot's lock.
    fn with_running(&self, f: &mut dyn FnMut(Option<OperationId>, &mut Vec<SignalEvent>));
    /// Sets the label of operation `id` if it is the one running (and its body has not
    /// returned); returns whether it did.
    fn set_label(&self, id: OperationId, label: Arc<str>) -> bool;
    /// The coordinator's cancellation token.
    fn token(&self) -> &CancellationToken;
    /// The ttl `emit` gives a body's signals (`Options::signal_ttl`).
    fn signal_ttl(&self) -> Option<Duration>;
    /// The coordinator's propagation limits.
    fn constraints(&self) -> Option<&SignalConstraints>;
    /// A signal named `name` joined the running operation (called under the slot's lock).
    fn signal_added(&self, name: &str);
    /// A signal named `name` left the running operation.
    fn signal_removed(&self, name: &str);
    /// An event was emitted: count it, schedule its expiry if `expires` (it was recorded and
    /// has a ttl), raise it on the sink and pass it to the handlers.
    fn emitted(&self, event: &SignalEvent, expires: bool);
    /// A signal was retracted: pass the event to the handlers.
    fn retracted(&self, event: SignalRetracted);
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
    /// Always returns `true`: [`SignalConstraints`](crate::SignalConstraints) only limit what a
    /// *cause* may cause (depth, cycles, terminal signals), and a root has no cause, so no
    /// configuration blocks it. The `bool` mirrors [`emit_caused`](Self::emit_caused), which
    /// can return `false`. Use [`emit_event`](Self::emit_event) to get the event.
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
    /// remain listed. Always returns `true`, as `emit` does (a root is never blocked).
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

    /// Emits a signal caused by `cause` (its propagation extends the cause's path); returns
    /// `false`, and the signal goes nowhere, when the coordinator's
    /// [`SignalConstraints`](crate::SignalConstraints) block it (the cause is at the maximum
    /// depth, the name is already on the cause's path, or the cause is terminal). Without
    /// constraints it always returns `true`. A cause with no propagation (hand-made or leaf)
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
        self.emit_inner(signal.into(), None, self.slot.signal_ttl())
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
            self.slot.signal_ttl(),
        )
    }

    /// Builds, records and publishes the event, unless the constraints block it.
    fn emit_inner(
        &self,
        name: Arc<str>,
        cause: Option<&crate::signal::event::Propagation>,
        ttl: Option<Duration>,
    ) -> Option<SignalEvent> {
        let slot = &*self.slot;
        let propagation = match slot.constraints() {
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
                slot.signal_added(event.signal());
                signals.push(event.clone());
                recorded = true;
            }
        });
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "ephemeral",
            signal = event.signal(),
            operation = %self.id,
            depth = event.depth(),
            "signal"
        );
        // An expiry is scheduled once recorded (and outside the slot's lock): an expiry read
        // finds it.
        slot.emitted(&event, recorded && ttl.is_some());
        Some(event)
    }

    /// Removes the first signal named exactly `signal` from this operation; returns whether
    /// one was there. Fires `on_signal_retracted` / `on_signal_retracted_async`.
    pub fn retract(&self, signal: &str) -> bool {
        let slot = &*self.slot;
        let mut removed = None;
        self.slot.with_running(&mut |id, signals| {
            if id == Some(self.id) {
                if let Some(pos) = signals.iter().position(|e| e.is(signal)) {
                    let e = signals.remove(pos);
                    slot.signal_removed(e.signal());
                    removed = Some(e);
                }
            }
        });
        let Some(removed) = removed else {
            return false;
        };
        slot.retracted(SignalRetracted::new(
            removed.signal_arc().clone(),
            self.id,
            self.key.as_ref().map(Label::to_arc),
            time::system_now(),
            None,
        ));
        true
    }

    /// Removes every signal matching the glob `pattern`; returns how many. Fires one
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
        let slot = &*self.slot;
        let pattern: Arc<str> = Arc::from(pattern);
        let now = time::system_now();
        for e in &removed {
            slot.signal_removed(e.signal());
            slot.retracted(SignalRetracted::new(
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
        self.slot.token()
    }

    /// Whether [`token`](Self::token) is cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.slot.token().is_cancelled()
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
