//! The shared, bounded, self-cleaning signal window.
//!
//! Split by concept: what is stored and how it ages (`store`), interned names (`names`),
//! reading and removing (`read`), subscribers (`subscribe`); this module holds the handle
//! and raising.
//!
//! # Invariants
//!
//! * One lock (`Inner::state`, a [`crate::sync::Mutex`], which ignores poisoning: only
//!   read-only predicates run under it, never during a mutation) guards the events and the
//!   subscriber list. Subscribers, predicates' side effects aside, and the drop of evicted
//!   events run outside it.
//! * `generation` moves on every raise, removal and clear; it is written only under the lock.

mod names;
mod read;
mod store;
mod subscribe;

pub use subscribe::Subscription;

use crate::id::OperationId;
use crate::signal::{SignalEvent, SignalStream};
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::{Mutex, MutexGuard};
use crate::time;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use store::{State, Stored};
use subscribe::{notify, Subscribers};
use tokio::time::Instant;

/// A shared, bounded window of recent [`SignalEvent`]s: raise from anywhere, sense from anywhere.
///
/// A sink never holds more than `max_capacity` events (the oldest are dropped on insert) and
/// never returns an event older than `max_age` (ages are checked on every read, on tokio's
/// clock, by each event's own timestamp: an event raised with an old timestamp is already
/// partly aged). [`len`](Self::len), [`is_empty`](Self::is_empty) and
/// [`total_signals`](crate::SignalSource::total_signals) always agree with what
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

impl Inner {
    /// Moves the change counter (called with the lock held, so no read-modify-write is needed
    /// on the shared atomic).
    #[inline]
    fn bump(&self, state: &mut State) {
        state.generation += 1;
        self.generation.store(state.generation, Ordering::Release);
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
                state: Mutex::new(State::new(max_capacity)),
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

    /// Raises a signal with a fresh operation id, no key, stamped now, like
    /// [`raise`](Self::raise), but returns nothing: the fast path for raising in a loop.
    ///
    /// The name is interned: a sink shares one `Arc<str>` per distinct name (among the last
    /// few hundred it saw), so raising a `&str` allocates nothing once the name was seen, and
    /// no copy of the event is made unless a subscriber is registered. Ages and the capacity
    /// bound are exactly those of [`raise`](Self::raise).
    ///
    /// ```
    /// use ephemeral::SignalSink;
    ///
    /// let sink = SignalSink::default();
    /// for _ in 0..3 {
    ///     sink.emit("cache-miss");
    /// }
    /// assert_eq!(sink.sense(|e| e.is("cache-miss")).len(), 3);
    /// ```
    pub fn emit(&self, name: impl AsRef<str>) {
        let at = time::now();
        let id = OperationId::next();
        let timestamp = time::to_system(at);
        let inner = &*self.inner;
        let mut state = self.lock();
        let name = state.names.intern(name.as_ref());
        let event = SignalEvent::with_parts(name, id, None, timestamp, None);
        let told =
            (!state.subscribers.is_empty()).then(|| (state.subscribers.clone(), event.clone()));
        let evicted = state.push(Stored::new(event, at), inner.max_capacity);
        inner.bump(&mut state);
        drop(state);
        // The evicted event is released outside the lock.
        drop(evicted);
        if let Some((subscribers, event)) = told {
            notify(&subscribers, &event);
        }
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
    #[inline]
    fn store(&self, event: SignalEvent, at: Instant) -> Option<Subscribers> {
        let inner = &*self.inner;
        let mut state = self.lock();
        let evicted = state.push(Stored::new(event, at), inner.max_capacity);
        inner.bump(&mut state);
        let subscribers = (!state.subscribers.is_empty()).then(|| state.subscribers.clone());
        drop(state);
        // The evicted event is released outside the lock.
        drop(evicted);
        subscribers
    }

    #[inline]
    fn lock(&self) -> MutexGuard<'_, State> {
        // `crate::sync::Mutex` ignores poisoning: only read-only predicates run under this
        // lock (never during a mutation), so a panic cannot leave broken state.
        self.inner.state.lock()
    }

    /// Drops every event.
    pub fn clear(&self) {
        let mut state = self.lock();
        let events = state.take_all();
        self.inner.bump(&mut state);
        drop(state);
        drop(events);
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

    /// Whether two handles point at the same sink.
    #[must_use]
    pub fn same_sink(&self, other: &SignalSink) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The change counter: it moves on every raise and clear.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
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
