//! Signal events and retraction events.

use crate::id::OperationId;
use crate::pattern;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The chain of signal names that led to an event (root first, the event's own name last).
pub(crate) type Propagation = Arc<[Arc<str>]>;

/// A signal raised by an operation or by hand: a short name plus who raised it and when.
///
/// Events are cheap to clone (a few reference-count increments) and carry metadata only.
/// An event emitted by an operation keeps its real emission time and its propagation path; a
/// root emitted by an operation has [`depth`](Self::depth) 1, while events made by hand (or
/// marked as leaf signals by [`SignalConstraints`](crate::SignalConstraints)) have depth 0.
///
/// ```
/// use ephemeral::{OperationId, SignalEvent};
///
/// let evt = SignalEvent::new("http.error.503", OperationId::next(), Some("api"), ephemeral::now());
/// assert!(evt.is("http.error.503"));
/// assert!(evt.matches("http.error.*"));
/// assert_eq!(evt.key(), Some("api"));
/// assert_eq!(evt.depth(), 0);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SignalEvent {
    signal: Arc<str>,
    operation_id: OperationId,
    key: Option<Arc<str>>,
    timestamp: SystemTime,
    propagation: Option<Propagation>,
    ttl: Option<Duration>,
}

impl SignalEvent {
    /// Makes an event by hand (depth 0, no propagation).
    ///
    /// `timestamp` is taken as it is. Sinks age an event by it, on the library's clock: stamp
    /// events with [`ephemeral::now`](crate::now()) (which follows tokio's clock, also when a
    /// test pauses it), not with [`SystemTime::now`], or under a paused or adjusted clock the
    /// event looks older or newer than it is.
    #[must_use]
    pub fn new(
        signal: impl Into<Arc<str>>,
        operation_id: OperationId,
        key: Option<&str>,
        timestamp: SystemTime,
    ) -> Self {
        SignalEvent {
            signal: signal.into(),
            operation_id,
            key: key.map(Arc::from),
            timestamp,
            propagation: None,
            ttl: None,
        }
    }

    /// The same event with a time to live: it counts as present for `ttl` from its
    /// timestamp, then leaves every sink that holds it (before the sink's own `max_age` if
    /// that is shorter), as [`Operation::emit_for`](crate::Operation::emit_for)'s events do.
    ///
    /// ```
    /// use ephemeral::{OperationId, SignalEvent, SignalSink};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let sink = SignalSink::default(); // events live a minute...
    /// let evt = SignalEvent::new("rate-limit", OperationId::next(), None, ephemeral::now())
    ///     .with_ttl(Duration::from_secs(2)); // ...this one two seconds
    /// sink.raise_event(evt);
    /// assert!(sink.detect("rate-limit"));
    /// tokio::time::advance(Duration::from_secs(3)).await;
    /// assert!(!sink.detect("rate-limit"));
    /// # }
    /// ```
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The event's time to live, if it has one (see [`with_ttl`](Self::with_ttl)).
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The instant (on tokio's clock) at which a ttl'd event stops counting; `None` without a
    /// ttl, or when the end is beyond the clock's range (a ttl of `Duration::MAX`: never).
    pub(crate) fn expires_at(&self) -> Option<tokio::time::Instant> {
        let ttl = self.ttl?;
        crate::time::from_system(self.timestamp).checked_add(ttl)
    }

    /// Whether a ttl'd event has stopped counting at `now`.
    pub(crate) fn expired(&self, now: tokio::time::Instant) -> bool {
        self.expires_at().is_some_and(|end| end <= now)
    }

    pub(crate) fn with_parts(
        signal: Arc<str>,
        operation_id: OperationId,
        key: Option<Arc<str>>,
        timestamp: SystemTime,
        propagation: Option<Propagation>,
    ) -> Self {
        SignalEvent {
            signal,
            operation_id,
            key,
            timestamp,
            propagation,
            ttl: None,
        }
    }

    /// The signal's name.
    #[must_use]
    pub fn signal(&self) -> &str {
        &self.signal
    }

    pub(crate) fn signal_arc(&self) -> &Arc<str> {
        &self.signal
    }

    /// The operation that raised it (a fresh id for events raised straight on a sink).
    #[must_use]
    pub fn operation_id(&self) -> OperationId {
        self.operation_id
    }

    /// The key of the operation that raised it, if any.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// When it was raised, on the library's clock ([`ephemeral::now`](crate::now()), which
    /// follows tokio's clock): the library stamps the events it makes from that clock; a
    /// hand-made event carries whatever [`new`](Self::new) was given.
    #[must_use]
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// The chain of signals that led here, root first, ending with this signal; empty for
    /// hand-made and leaf events.
    #[must_use]
    pub fn propagation(&self) -> &[Arc<str>] {
        self.propagation.as_deref().unwrap_or(&[])
    }

    pub(crate) fn propagation_arc(&self) -> Option<&Propagation> {
        self.propagation.as_ref()
    }

    /// Length of the propagation chain: 1 for a root emitted by an operation, 0 for hand-made
    /// and leaf events.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.propagation().len()
    }

    /// Whether the signal's name is exactly `name`.
    #[must_use]
    pub fn is(&self, name: &str) -> bool {
        &*self.signal == name
    }

    /// Whether the signal's name matches the glob `pattern` (see [`crate::pattern`]).
    #[must_use]
    pub fn matches(&self, pattern: &str) -> bool {
        pattern::matches(&self.signal, pattern)
    }
}

impl fmt::Debug for SignalEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SignalEvent");
        d.field("signal", &&*self.signal)
            .field("operation_id", &self.operation_id)
            .field("key", &self.key())
            .field("timestamp", &self.timestamp);
        if let Some(ttl) = &self.ttl {
            d.field("ttl", ttl);
        }
        if let Some(p) = &self.propagation {
            d.field("propagation", &p.iter().map(|s| &**s).collect::<Vec<_>>());
        }
        d.finish()
    }
}

impl fmt::Display for SignalEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.signal)?;
        if let Some(key) = &self.key {
            write!(f, " [{key}]")?;
        }
        write!(f, " from {}", self.operation_id)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SignalEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("SignalEvent", 5)?;
        s.serialize_field("signal", &*self.signal)?;
        s.serialize_field("operation_id", &self.operation_id)?;
        s.serialize_field("key", &self.key())?;
        s.serialize_field("timestamp", &crate::serde_time::millis(self.timestamp))?;
        s.serialize_field(
            "propagation",
            &self.propagation().iter().map(|s| &**s).collect::<Vec<_>>(),
        )?;
        s.end()
    }
}

/// A signal was retracted from an operation (see [`Operation::retract`]).
///
/// Retraction only removes the signal from the operation (and so from the coordinator's window
/// queries); a shared [`SignalSink`](crate::SignalSink) is append-only and keeps what was raised.
///
/// [`Operation::retract`]: crate::Operation::retract
#[derive(Clone, PartialEq, Eq)]
pub struct SignalRetracted {
    signal: Arc<str>,
    operation_id: OperationId,
    key: Option<Arc<str>>,
    timestamp: SystemTime,
    pattern: Option<Arc<str>>,
    expired: bool,
}

impl SignalRetracted {
    pub(crate) fn new(
        signal: Arc<str>,
        operation_id: OperationId,
        key: Option<Arc<str>>,
        timestamp: SystemTime,
        pattern: Option<Arc<str>>,
    ) -> Self {
        SignalRetracted {
            signal,
            operation_id,
            key,
            timestamp,
            pattern,
            expired: false,
        }
    }

    /// A signal with a ttl retracted itself.
    pub(crate) fn expiry(event: &SignalEvent, timestamp: SystemTime) -> Self {
        SignalRetracted {
            signal: event.signal.clone(),
            operation_id: event.operation_id,
            key: event.key.clone(),
            timestamp,
            pattern: None,
            expired: true,
        }
    }

    /// Whether the signal retracted itself at the end of its time to live (see
    /// [`Operation::emit_for`](crate::Operation::emit_for)) rather than by a `retract` call.
    #[must_use]
    pub fn is_expiry(&self) -> bool {
        self.expired
    }

    /// The retracted signal's name.
    #[must_use]
    pub fn signal(&self) -> &str {
        &self.signal
    }

    /// The operation it was retracted from.
    #[must_use]
    pub fn operation_id(&self) -> OperationId {
        self.operation_id
    }

    /// That operation's key, if any.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// When it was retracted.
    #[must_use]
    pub fn timestamp(&self) -> SystemTime {
        self.timestamp
    }

    /// Whether it was removed by [`Operation::retract_matching`](crate::Operation::retract_matching).
    #[must_use]
    pub fn was_pattern_match(&self) -> bool {
        self.pattern.is_some()
    }

    /// The pattern that removed it, for pattern retractions.
    #[must_use]
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    /// Whether the retracted signal's name is exactly `name`.
    #[must_use]
    pub fn is(&self, name: &str) -> bool {
        &*self.signal == name
    }
}

impl fmt::Debug for SignalRetracted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalRetracted")
            .field("signal", &&*self.signal)
            .field("operation_id", &self.operation_id)
            .field("key", &self.key())
            .field("timestamp", &self.timestamp)
            .field("pattern", &self.pattern())
            .finish()
    }
}
