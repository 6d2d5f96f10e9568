//! Emitting signals from an [`Operation`]: recorded on the running operation, checked against
//! the coordinator's [`SignalConstraints`](crate::SignalConstraints), raised on the sink and
//! passed to the handlers.

use super::Operation;
use crate::label::Label;
use crate::signal::constraints;
use crate::signal::SignalEvent;
use crate::time;
use std::sync::Arc;
use std::time::Duration;

impl Operation {
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
}
