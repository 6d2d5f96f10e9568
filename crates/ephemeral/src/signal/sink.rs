//! The shared, bounded, self-cleaning signal window.

use crate::id::OperationId;
use crate::pattern::PatternSet;
use crate::signal::{SignalEvent, SignalSource, SignalStream};
use crate::time;
use std::collections::VecDeque;
use std::fmt;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::time::Instant;

type Subscriber = Arc<dyn Fn(&SignalEvent) + Send + Sync>;
type Subscribers = Arc<[(u64, Subscriber)]>;

/// Calls every subscriber with `event`; a panicking subscriber must not poison the sink or stop
/// the others.
fn notify(subscribers: &Subscribers, event: &SignalEvent) {
    for (_, subscriber) in subscribers.iter() {
        let _ = catch_unwind(AssertUnwindSafe(|| subscriber(event)));
    }
}

/// A shared, bounded window of recent [`SignalEvent`]s: raise from anywhere, sense from anywhere.
///
/// A sink never holds more than `max_capacity` events (the oldest are dropped on insert) and
/// never returns an event older than `max_age` (ages are checked on every read, on tokio's
/// clock, by each event's own timestamp: an event raised with an old timestamp is already
/// partly aged). [`len`](Self::len), [`is_empty`](Self::is_empty) and
/// [`total_signals`](SignalSource::total_signals) always agree with what
/// [`sense`](Self::sense) returns.
///
/// Cloning gives another handle to the same sink. Configure it on coordinators with
/// [`Options::signals`](crate::Options::signals) and they raise their operations' signals here
/// too, and consult it for `cancel_on_signals` / `defer_on_signals`.
///
/// ```
/// use ephemeral::{SignalSink, SignalSource};
/// use std::time::Duration;
///
/// let sink = SignalSink::new(1000, Duration::from_secs(60));
/// sink.raise("system-maintenance");
/// assert!(sink.detect("system-maintenance"));
/// assert!(sink.has_signal_matching("system-*"));
///
/// // Subscribers see every raise; dropping the subscription unsubscribes.
/// let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let counter = seen.clone();
/// let sub = sink.subscribe(move |_evt| { counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed); });
/// sink.raise("a");
/// drop(sub);
/// sink.raise("b");
/// assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
/// ```
#[derive(Clone)]
pub struct SignalSink {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Moves on every raise and clear, so readers can cache "is a pattern present?". Written
    /// only under the state lock (from `State::generation`), so a plain store suffices.
    generation: AtomicU64,
    has_subscribers: AtomicBool,
    max_capacity: usize,
    max_age: Duration,
}

struct Stored {
    event: SignalEvent,
    /// The event's timestamp on tokio's clock.
    at: Instant,
    /// When it stops being live: `max_age` after `at`, or its ttl if that is sooner (`None`:
    /// beyond the clock's range).
    end: Option<Instant>,
}

impl Stored {
    fn new(event: SignalEvent, at: Instant, max_age: Duration) -> Self {
        let by_age = at.checked_add(max_age);
        let end = match event.ttl().and_then(|ttl| at.checked_add(ttl)) {
            Some(by_ttl) => Some(by_age.map_or(by_ttl, |a| a.min(by_ttl))),
            None => by_age,
        };
        Stored { event, at, end }
    }

    fn live(&self, now: Instant) -> bool {
        self.end.is_none_or(|end| end >= now)
    }
}

struct State {
    events: VecDeque<Stored>,
    /// The newest `at` ever pushed; an older push makes the deque unordered.
    newest: Option<Instant>,
    unordered: bool,
    /// The soonest end of a stored event with a ttl (maybe one already gone): from then on,
    /// expired events may sit behind live ones, and a purge looks at every event.
    next_ttl_end: Option<Instant>,
    subscribers: Subscribers,
    next_subscriber: u64,
    /// The authoritative change counter; published to `Inner::generation`.
    generation: u64,
}

impl State {
    /// Moves the change counter (called with the lock held, so no read-modify-write is needed
    /// on the shared atomic).
    fn bump(&mut self, inner: &Inner) {
        self.generation += 1;
        inner.generation.store(self.generation, Ordering::Release);
    }
}

impl Default for SignalSink {
    /// A sink of 1000 events, each visible for one minute.
    fn default() -> Self {
        SignalSink::new(1000, Duration::from_secs(60))
    }
}

impl SignalSink {
    /// A sink of at most `max_capacity` events, each visible for `max_age`.
    ///
    /// # Panics
    ///
    /// If `max_capacity` is zero.
    #[must_use]
    pub fn new(max_capacity: usize, max_age: Duration) -> Self {
        assert!(
            max_capacity > 0,
            "SignalSink::new: max_capacity must be at least 1"
        );
        SignalSink {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    events: VecDeque::with_capacity(max_capacity.min(1024)),
                    newest: None,
                    unordered: false,
                    next_ttl_end: None,
                    subscribers: Arc::from(Vec::new()),
                    next_subscriber: 0,
                    generation: 0,
                }),
                generation: AtomicU64::new(0),
                has_subscribers: AtomicBool::new(false),
                max_capacity,
                max_age,
            }),
        }
    }

    /// The capacity this sink was made with.
    #[must_use]
    pub fn max_capacity(&self) -> usize {
        self.inner.max_capacity
    }

    /// How long an event stays visible.
    #[must_use]
    pub fn max_age(&self) -> Duration {
        self.inner.max_age
    }

    /// Raises a signal with a fresh operation id, no key, stamped now; returns the event.
    pub fn raise(&self, name: impl Into<Arc<str>>) -> SignalEvent {
        self.raise_now(name.into(), None)
    }

    /// Raises a signal for `key` with a fresh operation id, stamped now; returns the event.
    pub fn raise_with_key(
        &self,
        name: impl Into<Arc<str>>,
        key: impl Into<Arc<str>>,
    ) -> SignalEvent {
        self.raise_now(name.into(), Some(key.into()))
    }

    fn raise_now(&self, name: Arc<str>, key: Option<Arc<str>>) -> SignalEvent {
        let at = time::now();
        let event =
            SignalEvent::with_parts(name, OperationId::next(), key, time::to_system(at), None);
        // One copy is stored; subscribers borrow the one returned.
        if let Some(subscribers) = self.store(event.clone(), at) {
            notify(&subscribers, &event);
        }
        event
    }

    /// Raises an event as it is (its timestamp, id, key and propagation are kept).
    ///
    /// The event ages by its own timestamp, read on the library's clock
    /// ([`ephemeral::now`](crate::now())): an event whose timestamp is already older than
    /// `max_age` is accepted but never returned, and an event with a timestamp in the future
    /// stays visible until that timestamp plus `max_age`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use ephemeral::{OperationId, SignalEvent, SignalSink};
    /// use std::time::Duration;
    ///
    /// // On a paused clock, as in a `#[tokio::test(start_paused = true)]` test:
    /// let sink = SignalSink::new(100, Duration::from_secs(60));
    /// let soon = ephemeral::now() + Duration::from_secs(30);
    /// sink.raise_event(SignalEvent::new("planned", OperationId::next(), None, soon));
    /// tokio::time::advance(Duration::from_secs(80)).await;
    /// assert!(sink.detect("planned")); // 30 s + 60 s have not passed yet
    /// tokio::time::advance(Duration::from_secs(11)).await;
    /// assert!(!sink.detect("planned"));
    /// # }
    /// ```
    pub fn raise_event(&self, event: SignalEvent) {
        let at = time::from_system(event.timestamp());
        // Copy the event only when someone will be told about it. (A subscription racing with
        // this raise may miss it, as if it had been made just after.)
        let copy = self
            .inner
            .has_subscribers
            .load(Ordering::Relaxed)
            .then(|| event.clone());
        if let (Some(subscribers), Some(event)) = (self.store(event, at), copy) {
            notify(&subscribers, &event);
        }
    }

    /// Stores `event` stamped `at` on tokio's clock, dropping the oldest event when full.
    /// Returns the subscribers to tell, if there are any; they are called after the lock is
    /// released.
    fn store(&self, event: SignalEvent, at: Instant) -> Option<Subscribers> {
        let inner = &*self.inner;
        let mut state = self.lock();
        match state.newest {
            Some(newest) if at < newest => state.unordered = true,
            _ => state.newest = Some(at),
        }
        let evicted = if state.events.len() >= inner.max_capacity {
            state.events.pop_front()
        } else {
            None
        };
        let stored = Stored::new(event, at, inner.max_age);
        if stored.event.ttl().is_some() {
            if let Some(end) = stored.end {
                state.next_ttl_end = Some(state.next_ttl_end.map_or(end, |n| n.min(end)));
            }
        }
        state.events.push_back(stored);
        state.bump(inner);
        let subscribers = (!state.subscribers.is_empty()).then(|| state.subscribers.clone());
        drop(state);
        // The evicted event is released outside the lock.
        drop(evicted);
        subscribers
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Only read-only predicates run under this lock (never during a mutation), so poisoning
        // cannot leave broken state.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks, drops expired events, and hands the live ones to `f`.
    fn with_live<R>(&self, f: impl FnOnce(&VecDeque<Stored>) -> R) -> R {
        let now = time::now();
        let mut state = self.lock();
        purge(&mut state, self.inner.max_age, now);
        f(&state.events)
    }

    /// A copy of the live events that satisfy `predicate`, oldest first.
    ///
    /// `predicate` runs while the sink is locked: it must not call back into this sink.
    pub fn sense(&self, mut predicate: impl FnMut(&SignalEvent) -> bool) -> Vec<SignalEvent> {
        self.with_live(|events| {
            events
                .iter()
                .filter(|s| predicate(&s.event))
                .map(|s| s.event.clone())
                .collect()
        })
    }

    /// Whether a live event is named exactly `name`.
    #[must_use]
    pub fn detect(&self, name: &str) -> bool {
        self.detect_where(|e| e.is(name))
    }

    /// Whether a live event satisfies `predicate` (stops at the first).
    ///
    /// `predicate` runs while the sink is locked: it must not call back into this sink.
    pub fn detect_where(&self, mut predicate: impl FnMut(&SignalEvent) -> bool) -> bool {
        self.with_live(|events| events.iter().any(|s| predicate(&s.event)))
    }

    /// The number of live events.
    #[must_use]
    pub fn len(&self) -> usize {
        self.with_live(VecDeque::len)
    }

    /// Whether there are no live events.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every event.
    pub fn clear(&self) {
        let mut state = self.lock();
        let events = std::mem::take(&mut state.events);
        state.newest = None;
        state.unordered = false;
        state.next_ttl_end = None;
        state.bump(&self.inner);
        drop(state);
        drop(events);
    }

    /// Removes every stored event that satisfies `predicate`; returns how many were removed.
    ///
    /// This is a removal, not a raise: subscribers are not called. Readers that cache "is a
    /// pattern present?" (coordinators' cancel and defer gates) see the change at once. Events
    /// that already aged out are dropped first and never offered to `predicate`.
    ///
    /// `predicate` runs while the sink is locked, once per live event: it must not call back
    /// into this sink.
    ///
    /// ```
    /// use ephemeral::SignalSink;
    ///
    /// let sink = SignalSink::default();
    /// sink.raise_with_key("maintenance", "db-1");
    /// sink.raise_with_key("maintenance", "db-2");
    /// assert_eq!(sink.remove_where(|e| e.key() == Some("db-1")), 1);
    /// assert_eq!(sink.len(), 1);
    /// ```
    pub fn remove_where(&self, mut predicate: impl FnMut(&SignalEvent) -> bool) -> usize {
        let now = time::now();
        let mut state = self.lock();
        purge(&mut state, self.inner.max_age, now);
        // Asked once per live event; nothing moves unless something goes.
        let gone: Vec<bool> = state.events.iter().map(|s| predicate(&s.event)).collect();
        if !gone.contains(&true) {
            return 0;
        }
        let all = std::mem::take(&mut state.events);
        let mut removed = Vec::new();
        for (stored, gone) in all.into_iter().zip(gone) {
            if gone {
                removed.push(stored);
            } else {
                state.events.push_back(stored);
            }
        }
        state.bump(&self.inner);
        drop(state);
        // User values are released outside the lock.
        let count = removed.len();
        drop(removed);
        count
    }

    /// Calls `subscriber` with every event raised from now on, on the raising thread, after the
    /// event is stored. A panicking subscriber is contained. Dropping the returned
    /// [`Subscription`] unsubscribes.
    pub fn subscribe(
        &self,
        subscriber: impl Fn(&SignalEvent) + Send + Sync + 'static,
    ) -> Subscription {
        let mut state = self.lock();
        let id = state.next_subscriber;
        state.next_subscriber += 1;
        let mut subs: Vec<(u64, Subscriber)> = state.subscribers.iter().cloned().collect();
        subs.push((id, Arc::new(subscriber)));
        state.subscribers = Arc::from(subs);
        self.inner.has_subscribers.store(true, Ordering::Relaxed);
        Subscription {
            sink: Arc::downgrade(&self.inner),
            id,
        }
    }

    /// A bounded, lossy async stream of every event raised on this sink from now on: when
    /// `capacity` events wait for the consumer, the oldest waiting one is dropped (and counted
    /// in [`SignalStream::dropped`]) to make room. The stream ends only once every handle of
    /// the sink is gone; dropping it unsubscribes. See [`SignalStream`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::SignalSink;
    /// use futures_util::StreamExt;
    ///
    /// let sink = SignalSink::default();
    /// let mut alerts = sink.stream(100).filter(|evt| std::future::ready(evt.matches("alert.*")));
    ///
    /// let raiser = sink.clone();
    /// tokio::spawn(async move {
    ///     raiser.raise("progress");
    ///     raiser.raise("alert.disk");
    /// });
    /// assert_eq!(alerts.next().await.unwrap().signal(), "alert.disk");
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    pub fn stream(&self, capacity: usize) -> SignalStream {
        SignalStream::new(self, capacity)
    }

    /// How many subscribers are registered.
    #[cfg(test)]
    pub(crate) fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Whether two handles point at the same sink.
    #[must_use]
    pub fn same_sink(&self, other: &SignalSink) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The change counter: it moves on every raise and clear.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// If a live event matches `patterns`, the instant until which one surely stays live
    /// (barring raises and clears, which move the generation).
    pub(crate) fn matching_until(&self, patterns: &PatternSet) -> Option<Instant> {
        self.with_live(|events| {
            events
                .iter()
                .filter(|s| patterns.matches(s.event.signal()))
                .map(|s| s.end.unwrap_or(s.at))
                .max()
        })
    }
}

/// Drops expired events: from the front while the deque is ordered by time, by a full pass
/// otherwise (or once an event with a ttl may have ended behind live ones).
fn purge(state: &mut State, _max_age: Duration, now: Instant) {
    let ttl_due = state.next_ttl_end.is_some_and(|end| end < now);
    if state.unordered || ttl_due {
        state.events.retain(|s| s.live(now));
        state.unordered = !state
            .events
            .iter()
            .zip(state.events.iter().skip(1))
            .all(|(a, b)| a.at <= b.at);
        state.next_ttl_end = state
            .events
            .iter()
            .filter(|s| s.event.ttl().is_some())
            .filter_map(|s| s.end)
            .min();
    } else {
        while state.events.front().is_some_and(|s| !s.live(now)) {
            state.events.pop_front();
        }
    }
}

impl SignalSource for SignalSink {
    fn visit_signals(&self, visit: &mut dyn FnMut(&SignalEvent) -> ControlFlow<()>) {
        self.with_live(|events| {
            for s in events {
                if visit(&s.event).is_break() {
                    break;
                }
            }
        });
    }

    fn total_signals(&self) -> usize {
        self.len()
    }
}

impl fmt::Debug for SignalSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalSink")
            .field("len", &self.len())
            .field("max_capacity", &self.inner.max_capacity)
            .field("max_age", &self.inner.max_age)
            .finish()
    }
}

/// A live [`SignalSink::subscribe`] registration; dropping it unsubscribes.
#[must_use = "dropping a Subscription unsubscribes at once"]
pub struct Subscription {
    sink: Weak<Inner>,
    id: u64,
}

impl Subscription {
    /// Unsubscribes now (the same as dropping it).
    pub fn unsubscribe(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.sink.upgrade() {
            let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let subs: Vec<(u64, Subscriber)> = state
                .subscribers
                .iter()
                .filter(|(id, _)| *id != self.id)
                .cloned()
                .collect();
            inner
                .has_subscribers
                .store(!subs.is_empty(), Ordering::Relaxed);
            let old = std::mem::replace(&mut state.subscribers, Arc::from(subs));
            drop(state);
            // The removed subscriber (user code, possibly with a `Drop`) is released outside
            // the lock.
            drop(old);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}
