//! Pattern-routed async signal handlers.

mod driver;
mod shared;

use driver::drive;
use shared::{Rule, Shared};

use crate::outcome::Outcome;
use crate::pattern::Pattern;
use crate::signal::handler::async_handler;
use crate::signal::runner::{Close, Closer};
use crate::signal::{SignalEvent, SignalSink, Subscription};
use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Routes [`SignalEvent`]s to async handlers by glob pattern, in the background.
///
/// * [`register`](Self::register) adds a handler for a [pattern](crate::pattern), after every
///   handler registered before, like listeners on an event bus: handlers for the same pattern
///   coexist and all run. [`replace`](Self::replace) swaps out the handlers of one pattern
///   instead.
/// * [`dispatch`](Self::dispatch) queues an event and never waits.
/// * For one event, every handler whose pattern matches the event's name runs, **one after
///   another in registration order** (each awaited before the next starts). A handler that
///   returns an error or panics is counted in [`failed_count`](Self::failed_count) and does not
///   stop the handlers after it.
/// * Events with the **same name** are handled one after another, in dispatch order (never
///   overlapping). Events with different names are handled concurrently, at most
///   `max_concurrent_names` names at once; names waiting for a slot are served round-robin, so
///   a busy name cannot starve the others.
/// * At most `max_queued` events wait (not counting those being handled). When that many wait,
///   `dispatch` refuses the new event, returns `false` and counts it in
///   [`dropped_count`](Self::dropped_count).
/// * A name costs memory only while it has events waiting or being handled, so
///   high-cardinality names such as `progress:37` do not accumulate.
/// * [`shutdown`](Self::shutdown) stops intake and returns once every queued event has been
///   handled. Dropping the last handle does the same in the background.
///
/// All handlers are polled on one background task: they should await rather than block their
/// thread, or they stall their siblings. The rules an event is handled with are the ones
/// registered when its handling starts.
///
/// Cloning gives another handle to the same dispatcher; it is `Send + Sync`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{OperationId, SignalDispatcher, SignalEvent};
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let dispatcher = SignalDispatcher::new();
///
/// let log = seen.clone();
/// dispatcher.register("http.error.*", move |evt: SignalEvent| {
///     let log = log.clone();
///     async move {
///         log.lock().unwrap().push(format!("alert {}", evt.signal()));
///         Ok::<_, std::io::Error>(())
///     }
/// });
/// let log = seen.clone();
/// dispatcher.register("http.*", move |evt: SignalEvent| {
///     let log = log.clone();
///     async move {
///         log.lock().unwrap().push(format!("count {}", evt.signal()));
///         Ok::<_, std::io::Error>(())
///     }
/// });
///
/// let evt = SignalEvent::new("http.error.503", OperationId::next(), None, ephemeral::now());
/// assert!(dispatcher.dispatch(evt));
/// dispatcher.shutdown().await;
///
/// // Both handlers ran, in registration order.
/// assert_eq!(*seen.lock().unwrap(), ["alert http.error.503", "count http.error.503"]);
/// assert_eq!(dispatcher.processed_count(), 1);
/// # }
/// ```
///
/// # Panics
///
/// [`new`](Self::new) and [`with_limits`](Self::with_limits) panic outside a tokio runtime;
/// `with_limits` also panics if a limit is zero.
#[derive(Clone)]
pub struct SignalDispatcher {
    shared: Arc<Shared>,
    /// Only user-facing handles count towards "dropping the last handle shuts down".
    _closer: Arc<Closer<Shared>>,
}

impl SignalDispatcher {
    /// How many names [`new`](Self::new) handles at once.
    pub const DEFAULT_MAX_CONCURRENT_NAMES: usize = 4;

    /// How many events [`new`](Self::new) lets wait before refusing more.
    pub const DEFAULT_MAX_QUEUED: usize = 1024;

    /// Starts a dispatcher with no handlers, handling at most
    /// [`DEFAULT_MAX_CONCURRENT_NAMES`](Self::DEFAULT_MAX_CONCURRENT_NAMES) names at once with at
    /// most [`DEFAULT_MAX_QUEUED`](Self::DEFAULT_MAX_QUEUED) events waiting.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dispatcher = ephemeral::SignalDispatcher::new();
    /// assert_eq!(dispatcher.queued_count(), 0);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns its background task).
    // No `Default`: constructing spawns a task, which needs a runtime; a `Default` that can
    // panic would be a trap in `#[derive(Default)]` structs.
    #[allow(clippy::new_without_default)]
    #[must_use]
    pub fn new() -> Self {
        SignalDispatcher::with_limits(
            SignalDispatcher::DEFAULT_MAX_CONCURRENT_NAMES,
            SignalDispatcher::DEFAULT_MAX_QUEUED,
        )
    }

    /// Starts a dispatcher handling at most `max_concurrent_names` names at once, with at most
    /// `max_queued` events waiting (events being handled do not count).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{OperationId, SignalDispatcher, SignalEvent};
    ///
    /// let dispatcher = SignalDispatcher::with_limits(1, 2);
    /// let evt = || SignalEvent::new("tick", OperationId::next(), None, ephemeral::now());
    /// assert!(dispatcher.dispatch(evt()));
    /// assert!(dispatcher.dispatch(evt()));
    /// // Nothing has started yet (the background task has not run), so the queue is full.
    /// assert!(!dispatcher.dispatch(evt()));
    /// assert_eq!(dispatcher.dropped_count(), 1);
    /// dispatcher.shutdown().await;
    /// assert_eq!(dispatcher.processed_count(), 2);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or if either limit is zero.
    #[must_use]
    pub fn with_limits(max_concurrent_names: usize, max_queued: usize) -> Self {
        assert!(
            max_concurrent_names > 0,
            "SignalDispatcher: max_concurrent_names must be at least 1"
        );
        assert!(
            max_queued > 0,
            "SignalDispatcher: max_queued must be at least 1"
        );
        let shared = Arc::new(Shared::new(max_concurrent_names, max_queued));
        tokio::spawn(drive(shared.clone()));
        SignalDispatcher {
            _closer: Closer::new(shared.clone()),
            shared,
        }
    }

    /// Routes events whose name matches `pattern` to `handler`, after every handler registered
    /// before.
    ///
    /// Handlers accumulate: registering a pattern that already has a handler adds a second one
    /// (both run, in registration order), like listeners on an event bus. Use
    /// [`replace`](Self::replace) to swap a pattern's handler instead. Events already being
    /// handled keep the rules they started with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{OperationId, SignalDispatcher, SignalEvent};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let dispatcher = SignalDispatcher::new();
    /// for tag in ["audit", "metrics"] {
    ///     let seen = seen.clone();
    ///     dispatcher.register("order.*", move |evt: SignalEvent| {
    ///         let seen = seen.clone();
    ///         async move {
    ///             seen.lock().unwrap().push(format!("{tag}: {}", evt.signal()));
    ///             Ok::<_, std::io::Error>(())
    ///         }
    ///     });
    /// }
    /// let evt = SignalEvent::new("order.placed", OperationId::next(), None, ephemeral::now());
    /// dispatcher.dispatch(evt);
    /// dispatcher.shutdown().await;
    /// // Both handlers of the pattern ran, in registration order.
    /// assert_eq!(*seen.lock().unwrap(), ["audit: order.placed", "metrics: order.placed"]);
    /// # }
    /// ```
    pub fn register<P, F, Fut>(&self, pattern: P, handler: F)
    where
        P: Into<Pattern>,
        F: Fn(SignalEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        let rule = Rule {
            pattern: pattern.into(),
            handler: async_handler(handler),
        };
        self.shared.update_rules(|rules| rules.push(rule));
    }

    /// Makes `handler` the only handler of `pattern` (the same exact string): it takes the
    /// place of the first handler registered for it, and the others registered for it are
    /// removed. Returns whether any was registered; if none was, it is added last, as
    /// [`register`](Self::register) does. Events already being handled keep the rules they
    /// started with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{SignalDispatcher, SignalEvent};
    ///
    /// let dispatcher = SignalDispatcher::new();
    /// dispatcher.register("a.*", |_evt: SignalEvent| async { Ok::<_, std::io::Error>(()) });
    /// dispatcher.register("b", |_evt: SignalEvent| async { Ok::<_, std::io::Error>(()) });
    /// dispatcher.register("a.*", |_evt: SignalEvent| async { Ok::<_, std::io::Error>(()) });
    /// let patterns = |d: &SignalDispatcher| -> Vec<String> {
    ///     d.patterns().iter().map(|p| p.to_string()).collect()
    /// };
    /// assert_eq!(patterns(&dispatcher), ["a.*", "b", "a.*"]);
    ///
    /// // Both "a.*" handlers give way to one, in the first one's place.
    /// assert!(dispatcher.replace("a.*", |_evt: SignalEvent| async { Err("nope") }));
    /// assert_eq!(patterns(&dispatcher), ["a.*", "b"]);
    /// assert!(!dispatcher.replace("c", |_evt: SignalEvent| async { Ok::<_, std::io::Error>(()) }));
    /// assert_eq!(patterns(&dispatcher), ["a.*", "b", "c"]);
    /// # }
    /// ```
    pub fn replace<P, F, Fut>(&self, pattern: P, handler: F) -> bool
    where
        P: Into<Pattern>,
        F: Fn(SignalEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<()>> + Send + 'static,
    {
        self.shared.replace_rules(Rule {
            pattern: pattern.into(),
            handler: async_handler(handler),
        })
    }

    /// The pattern of every registered handler, in registration order (a pattern with two
    /// handlers appears twice).
    #[must_use]
    pub fn patterns(&self) -> Vec<Pattern> {
        self.shared
            .rules()
            .iter()
            .map(|r| r.pattern.clone())
            .collect()
    }

    /// Queues `event` for every handler whose pattern matches its name; never waits.
    ///
    /// Returns `false`, and the event is not handled, after [`shutdown`](Self::shutdown) or
    /// when `max_queued` events already wait (then it is counted in
    /// [`dropped_count`](Self::dropped_count)).
    pub fn dispatch(&self, event: SignalEvent) -> bool {
        self.shared.dispatch(event)
    }

    /// Dispatches every event raised on `sink` from now on (as [`dispatch`](Self::dispatch)
    /// does, so a full queue drops and counts); dropping the returned [`Subscription`]
    /// detaches.
    ///
    /// The subscription does not keep the dispatcher running: once its last handle is dropped
    /// (or after [`shutdown`](Self::shutdown)), events raised on the sink are refused.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{SignalDispatcher, SignalEvent, SignalSink};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let sink = SignalSink::default();
    /// let dispatcher = SignalDispatcher::new();
    /// let alerts = Arc::new(AtomicUsize::new(0));
    /// let count = alerts.clone();
    /// dispatcher.register("alert.*", move |_evt: SignalEvent| {
    ///     count.fetch_add(1, Ordering::Relaxed);
    ///     async { Ok::<_, std::io::Error>(()) }
    /// });
    ///
    /// let attached = dispatcher.attach(&sink);
    /// sink.raise("alert.disk");
    /// drop(attached);
    /// sink.raise("alert.cpu"); // detached: not dispatched
    /// dispatcher.shutdown().await;
    /// assert_eq!(alerts.load(Ordering::Relaxed), 1);
    /// # }
    /// ```
    pub fn attach(&self, sink: &SignalSink) -> Subscription {
        // Weak: an attached sink keeps neither the dispatcher nor its handlers alive.
        let shared = Arc::downgrade(&self.shared);
        sink.subscribe(move |event| {
            if let Some(shared) = shared.upgrade() {
                shared.dispatch(event.clone());
            }
        })
    }

    /// Events waiting to be handled (not counting those being handled).
    #[must_use]
    pub fn queued_count(&self) -> usize {
        self.shared.lock().queued
    }

    /// Names that currently have events waiting or being handled; 0 once the dispatcher is idle.
    #[must_use]
    pub fn tracked_names(&self) -> usize {
        self.shared.lock().names.len()
    }

    /// Events fully handled: every matching handler has run (also when some failed, and also
    /// when no handler matched).
    #[must_use]
    pub fn processed_count(&self) -> u64 {
        self.shared.processed.load(Ordering::Relaxed)
    }

    /// Handler runs that returned an error or panicked (one per failing handler per event).
    #[must_use]
    pub fn failed_count(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Events refused by [`dispatch`](Self::dispatch) because the queue was full.
    #[must_use]
    pub fn dropped_count(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Whether [`shutdown`](Self::shutdown) has been called (intake is closed).
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.shared.lock().closed
    }

    /// Stops intake and returns once every event already queued has been handled.
    /// Idempotent: later calls wait for the same thing.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: intake stops when the future is first polled; dropping it afterwards only stops
    /// the waiting, and queued events are still handled in the background.
    pub async fn shutdown(&self) {
        self.shared.close();
        self.shared.runner.finished().await;
    }
}

impl fmt::Debug for SignalDispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalDispatcher")
            .field("patterns", &self.patterns())
            .field("queued", &self.queued_count())
            .field("tracked_names", &self.tracked_names())
            .field("processed", &self.processed_count())
            .field("failed", &self.failed_count())
            .field("dropped", &self.dropped_count())
            .finish()
    }
}
