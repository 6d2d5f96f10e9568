//! [`SignalLogWatcher`]: a callback for every matching event of a sink, exactly once.

use crate::pattern::Pattern;
use crate::signal::{SignalEvent, SignalSink, Subscription};
use crate::sync::{Mutex, MutexGuard};
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

type Callback = Box<dyn Fn(&SignalEvent) + Send + Sync>;

/// Calls a callback exactly once for every event matching a pattern that a [`SignalSink`]
/// holds or receives while the watcher lives, including those already there when it is made,
/// in raise order.
///
/// * **Exactly once.** The watcher subscribes first, then reads the events already in the
///   sink, and drops the overlap by event identity ([`SignalEvent`] is `Eq + Hash`): an
///   event raised while the watcher is being made is reported once. (Two raises of the very
///   same event value through [`SignalSink::raise_event`] count as one.)
/// * **Where it runs.** The callback runs on the thread that raised the event (the
///   constructor's thread for the events already there), one call at a time: while one
///   thread delivers, events raised by others queue and that thread delivers them too, in
///   order. A callback may raise on the same sink. Keep it short, as for
///   [`SignalSink::subscribe`]. No tokio runtime is needed.
/// * **Panics** in the callback are contained: the event counts as delivered and later events
///   are still reported.
/// * **Memory** is bounded by the sink's capacity: the identities it remembers to drop
///   duplicates and the queue of events waiting for the callback hold at most
///   [`max_capacity`](SignalSink::max_capacity) events each (the original's seen-set grew
///   for ever). Only a callback more than a whole sink behind loses events, the oldest
///   waiting ones, which have left the sink already; they are counted in
///   [`skipped`](Self::skipped).
/// * [`stop`](Self::stop) ends it; dropping the last handle (clones share one watcher) too.
///
/// ```
/// use ephemeral::patterns::SignalLogWatcher;
/// use ephemeral::SignalSink;
/// use std::sync::{Arc, Mutex};
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let sink = SignalSink::default();
///     sink.raise("error.db");
///     sink.raise("info.start");
///
///     let seen = Arc::new(Mutex::new(Vec::new()));
///     let log = seen.clone();
///     let watcher = SignalLogWatcher::new(&sink, "error.*", move |evt| {
///         log.lock().unwrap().push(evt.signal().to_string());
///     });
///     sink.raise("error.disk");
///     sink.raise("info.tick");
///
///     assert_eq!(*seen.lock().unwrap(), ["error.db", "error.disk"]);
///     assert_eq!(watcher.matched(), 2);
///
///     watcher.stop();
///     sink.raise("error.late");
///     assert_eq!(watcher.matched(), 2);
/// }
/// ```
#[derive(Clone)]
pub struct SignalLogWatcher {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    subscription: Mutex<Option<Subscription>>,
}

struct Shared {
    pattern: Pattern,
    on_match: Callback,
    state: Mutex<State>,
    matched: AtomicU64,
    skipped: AtomicU64,
    stopped: AtomicBool,
    capacity: usize,
}

struct State {
    /// Events waiting for the callback, oldest first.
    queue: VecDeque<SignalEvent>,
    /// The identities of the newest events taken in (at most `capacity`).
    seen: HashSet<SignalEvent>,
    seen_order: VecDeque<SignalEvent>,
    /// Someone is calling the callback (and will empty the queue).
    delivering: bool,
    /// The events already in the sink have been merged in; until then nothing is delivered.
    ready: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Remembers `event`; false if it was taken in already.
    fn remember(&self, state: &mut State, event: &SignalEvent) -> bool {
        if state.seen.contains(event) {
            return false;
        }
        state.seen.insert(event.clone());
        state.seen_order.push_back(event.clone());
        if state.seen_order.len() > self.capacity {
            if let Some(old) = state.seen_order.pop_front() {
                state.seen.remove(&old);
            }
        }
        true
    }

    fn push(&self, state: &mut State, event: SignalEvent) {
        if state.queue.len() >= self.capacity {
            state.queue.pop_front();
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        state.queue.push_back(event);
    }

    /// A new event from the subscription.
    fn receive(&self, event: &SignalEvent) {
        if self.stopped.load(Ordering::Acquire) || !self.pattern.matches(event.signal()) {
            return;
        }
        let mut state = self.lock();
        if !self.remember(&mut state, event) {
            return;
        }
        self.push(&mut state, event.clone());
        if !state.ready || state.delivering {
            return;
        }
        state.delivering = true;
        drop(state);
        self.deliver();
    }

    /// Empties the queue, one callback at a time (the caller has set `delivering`).
    fn deliver(&self) {
        loop {
            let mut state = self.lock();
            if self.stopped.load(Ordering::Acquire) {
                state.queue.clear();
                state.delivering = false;
                return;
            }
            let Some(event) = state.queue.pop_front() else {
                state.delivering = false;
                return;
            };
            drop(state);
            let _ = catch_unwind(AssertUnwindSafe(|| (self.on_match)(&event)));
            self.matched.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl SignalLogWatcher {
    /// Watches `sink` for events matching `pattern`: `on_match` is called once for each, those
    /// already in the sink first (before `new` returns), then each new one as it is raised.
    ///
    /// ```
    /// use ephemeral::patterns::SignalLogWatcher;
    /// use ephemeral::SignalSink;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     sink.raise("deploy.started");
    ///     let watcher = SignalLogWatcher::new(&sink, "deploy.*", |evt| println!("{evt}"));
    ///     sink.raise("deploy.finished");
    ///     assert_eq!(watcher.matched(), 2);
    /// }
    /// ```
    pub fn new(
        sink: &SignalSink,
        pattern: impl Into<Pattern>,
        on_match: impl Fn(&SignalEvent) + Send + Sync + 'static,
    ) -> SignalLogWatcher {
        let shared = Arc::new(Shared {
            pattern: pattern.into(),
            on_match: Box::new(on_match),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                seen: HashSet::new(),
                seen_order: VecDeque::new(),
                delivering: false,
                ready: false,
            }),
            matched: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            capacity: sink.max_capacity(),
        });
        // Subscribe first, so nothing raised from now on is missed ...
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let subscription = sink.subscribe(move |event| {
            if let Some(shared) = weak.upgrade() {
                shared.receive(event);
            }
        });
        // ... then take the events already there, dropping those the subscription saw too.
        let existing = sink.sense(|e| shared.pattern.matches(e.signal()));
        {
            let mut state = shared.lock();
            // Nothing has been delivered yet: the queue holds what the subscription received.
            // The events already in the sink come first, in the sink's order (a received one
            // that is also there takes its place there), then those raised after `sense`.
            let in_sink: HashSet<&SignalEvent> = existing.iter().collect();
            let received = std::mem::take(&mut state.queue);
            let later: Vec<SignalEvent> = received
                .into_iter()
                .filter(|e| !in_sink.contains(e))
                .collect();
            drop(in_sink);
            let mut queue = VecDeque::with_capacity(existing.len() + later.len());
            for event in existing {
                // Remembered so that a notification still on its way is dropped.
                shared.remember(&mut state, &event);
                queue.push_back(event);
            }
            queue.extend(later);
            while queue.len() > shared.capacity {
                queue.pop_front();
                shared.skipped.fetch_add(1, Ordering::Relaxed);
            }
            state.queue = queue;
            state.ready = true;
            state.delivering = true;
        }
        shared.deliver();
        SignalLogWatcher {
            handle: Arc::new(Handle {
                shared,
                subscription: Mutex::new(Some(subscription)),
            }),
        }
    }

    /// How many times the callback has been called (a panicking call counts).
    ///
    /// ```
    /// use ephemeral::patterns::SignalLogWatcher;
    /// use ephemeral::SignalSink;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let watcher = SignalLogWatcher::new(&sink, "job.*", |evt| {
    ///         assert!(!evt.is("job.bad"), "a panic here is contained");
    ///     });
    ///     sink.raise("job.bad");
    ///     sink.raise("job.good");
    ///     assert_eq!(watcher.matched(), 2);
    /// }
    /// ```
    #[must_use]
    pub fn matched(&self) -> u64 {
        self.handle.shared.matched.load(Ordering::Relaxed)
    }

    /// How many matching events were dropped unreported because the callback fell more than
    /// the sink's capacity behind (they had left the sink already).
    ///
    /// ```
    /// use ephemeral::patterns::SignalLogWatcher;
    /// use ephemeral::SignalSink;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let watcher = SignalLogWatcher::new(&sink, "*", |_| {});
    ///     sink.raise("tick");
    ///     assert_eq!(watcher.skipped(), 0); // a callback that keeps up skips nothing
    /// }
    /// ```
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.handle.shared.skipped.load(Ordering::Relaxed)
    }

    /// Stops watching: no callback starts after this returns (one running on another thread
    /// finishes). Dropping the last handle does the same.
    ///
    /// ```
    /// use ephemeral::patterns::SignalLogWatcher;
    /// use ephemeral::SignalSink;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let watcher = SignalLogWatcher::new(&sink, "*", |evt| println!("{evt}"));
    ///     sink.raise("seen");
    ///     watcher.stop();
    ///     sink.raise("not seen");
    ///     assert_eq!(watcher.matched(), 1);
    /// }
    /// ```
    pub fn stop(&self) {
        self.handle.stop();
    }

    /// Whether [`stop`](Self::stop) was called.
    ///
    /// ```
    /// use ephemeral::patterns::SignalLogWatcher;
    /// use ephemeral::SignalSink;
    ///
    /// #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = SignalSink::default();
    ///     let watcher = SignalLogWatcher::new(&sink, "*", |_| {});
    ///     assert!(!watcher.is_stopped());
    ///     watcher.clone().stop(); // clones share one watcher
    ///     assert!(watcher.is_stopped());
    /// }
    /// ```
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.handle.shared.stopped.load(Ordering::Acquire)
    }
}

impl Handle {
    fn stop(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        let subscription = self.subscription.lock().take();
        drop(subscription);
        self.shared.lock().queue.clear();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for SignalLogWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.handle.shared;
        f.debug_struct("SignalLogWatcher")
            .field("pattern", &shared.pattern)
            .field("matched", &self.matched())
            .field("skipped", &self.skipped())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}
