//! Why an operation failed.

use crate::BoxError;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Why an operation failed: the body's own error, a panic, or cancellation.
///
/// Cheap to clone (shared). [`downcast_ref`](Self::downcast_ref) reaches the body's error value.
///
/// ```
/// use ephemeral::OperationError;
///
/// #[derive(Debug)]
/// struct Timeout;
/// impl std::fmt::Display for Timeout {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("timed out") }
/// }
/// impl std::error::Error for Timeout {}
///
/// let err = OperationError::from_error(Timeout);
/// assert!(err.downcast_ref::<Timeout>().is_some());
/// assert!(!err.is_panic());
/// assert_eq!(err.to_string(), "timed out");
/// ```
#[derive(Clone)]
pub struct OperationError {
    kind: Arc<Kind>,
    cancelled: bool,
}

enum Kind {
    Body(BoxError),
    Panic(String),
    /// Dropped before it started (by `cancel`, or a cancel-on signal): only a
    /// [`Completion`](crate::Completion) reports it, since such an item has no operation.
    NotStarted,
}

impl OperationError {
    /// Wraps a body's error.
    pub fn from_error(err: impl Into<BoxError>) -> Self {
        OperationError {
            kind: Arc::new(Kind::Body(err.into())),
            cancelled: false,
        }
    }

    pub(crate) fn panic(payload: Box<dyn Any + Send>) -> Self {
        let msg = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        OperationError {
            kind: Arc::new(Kind::Panic(msg)),
            cancelled: false,
        }
    }

    /// An item dropped before its body started.
    pub(crate) fn not_started() -> Self {
        OperationError {
            kind: Arc::new(Kind::NotStarted),
            cancelled: true,
        }
    }

    /// Whether the item never started: it was dropped while pending (by `cancel`, or while a
    /// `cancel_on_signals` signal was present). Such an error is always
    /// [`is_cancelled`](Self::is_cancelled); only a [`Completion`](crate::Completion) can
    /// report it.
    #[must_use]
    pub fn is_not_started(&self) -> bool {
        matches!(*self.kind, Kind::NotStarted)
    }

    /// Marks the failure as having happened after the operation's token was cancelled.
    pub(crate) fn with_cancelled(mut self, cancelled: bool) -> Self {
        self.cancelled = cancelled;
        self
    }

    /// Whether the body panicked.
    #[must_use]
    pub fn is_panic(&self) -> bool {
        matches!(*self.kind, Kind::Panic(_))
    }

    /// Whether the operation failed after its cancellation token was cancelled (by
    /// [`WorkCoordinator::cancel`](crate::WorkCoordinator::cancel) or a parent token): the
    /// failure most likely *is* the cancellation. The body's own error stays reachable. Also
    /// true for an item that never started (see [`is_not_started`](Self::is_not_started)).
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// The panic message, for panics.
    #[must_use]
    pub fn panic_message(&self) -> Option<&str> {
        match &*self.kind {
            Kind::Panic(m) => Some(m),
            _ => None,
        }
    }

    /// The body's error as `E`, if it is one.
    #[must_use]
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match &*self.kind {
            Kind::Body(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }
}

impl fmt::Display for OperationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            Kind::Body(e) => fmt::Display::fmt(e, f),
            Kind::Panic(m) => write!(f, "operation panicked: {m}"),
            Kind::NotStarted => f.write_str("cancelled before it started"),
        }
    }
}

impl fmt::Debug for OperationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            Kind::Body(e) => f.debug_tuple("OperationError::Body").field(e).finish(),
            Kind::Panic(m) => f.debug_tuple("OperationError::Panic").field(m).finish(),
            Kind::NotStarted => f.write_str("OperationError::NotStarted"),
        }
    }
}

impl std::error::Error for OperationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            Kind::Body(e) => e.source(),
            Kind::Panic(_) | Kind::NotStarted => None,
        }
    }
}
