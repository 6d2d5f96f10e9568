//! Errors of the coordinators. Refused items are always handed back.

use std::fmt;

/// Why [`enqueue`](crate::WorkCoordinator::enqueue) refused an item; the item is inside.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{EnqueueError, Options, WorkCoordinator};
///
/// let c = WorkCoordinator::new(|_: String, _op| async { Ok::<_, std::io::Error>(()) }, Options::default());
/// c.complete();
/// let err = c.enqueue("late".to_string()).await.unwrap_err();
/// assert!(matches!(err, EnqueueError::Closed(_)));
/// assert_eq!(err.into_inner(), "late");
/// # }
/// ```
#[derive(PartialEq, Eq)]
pub enum EnqueueError<T> {
    /// The coordinator is completed or cancelled.
    Closed(T),
    /// A `cancel_on_signals` pattern matches a present signal.
    Rejected(T),
    /// The item's key already has [`Options::max_pending_per_key`](crate::Options::max_pending_per_key) items pending.
    KeyOverloaded(T),
}

/// Why [`try_enqueue`](crate::WorkCoordinator::try_enqueue) refused an item; the item is inside.
#[derive(PartialEq, Eq)]
pub enum TryEnqueueError<T> {
    /// `queue_capacity` items are already pending.
    Full(T),
    /// The coordinator is completed or cancelled.
    Closed(T),
    /// A `cancel_on_signals` pattern matches a present signal.
    Rejected(T),
    /// The item's key already has [`Options::max_pending_per_key`](crate::Options::max_pending_per_key) items pending.
    KeyOverloaded(T),
}

impl<T> EnqueueError<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        match self {
            EnqueueError::Closed(t)
            | EnqueueError::Rejected(t)
            | EnqueueError::KeyOverloaded(t) => t,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            EnqueueError::Closed(_) => "coordinator closed",
            EnqueueError::Rejected(_) => "rejected by a cancel-on signal",
            EnqueueError::KeyOverloaded(_) => "too many pending items for this key",
        }
    }
}

impl<T> TryEnqueueError<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        match self {
            TryEnqueueError::Full(t)
            | TryEnqueueError::Closed(t)
            | TryEnqueueError::Rejected(t)
            | TryEnqueueError::KeyOverloaded(t) => t,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            TryEnqueueError::Full(_) => "queue full",
            TryEnqueueError::Closed(_) => "coordinator closed",
            TryEnqueueError::Rejected(_) => "rejected by a cancel-on signal",
            TryEnqueueError::KeyOverloaded(_) => "too many pending items for this key",
        }
    }
}

impl<T> From<EnqueueError<T>> for TryEnqueueError<T> {
    fn from(e: EnqueueError<T>) -> Self {
        match e {
            EnqueueError::Closed(t) => TryEnqueueError::Closed(t),
            EnqueueError::Rejected(t) => TryEnqueueError::Rejected(t),
            EnqueueError::KeyOverloaded(t) => TryEnqueueError::KeyOverloaded(t),
        }
    }
}

macro_rules! fmt_impls {
    ($ty:ident, $($variant:ident),+) => {
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($ty::$variant(_) => f.write_str(concat!(stringify!($ty), "::", stringify!($variant), "(..)")),)+
                }
            }
        }

        impl<T> fmt::Display for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.describe())
            }
        }

        impl<T> std::error::Error for $ty<T> {}
    };
}

fmt_impls!(EnqueueError, Closed, Rejected, KeyOverloaded);
fmt_impls!(TryEnqueueError, Full, Closed, Rejected, KeyOverloaded);

/// Why [`set_max_concurrency`](crate::WorkCoordinator::set_max_concurrency) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConcurrencyError {
    /// The coordinator was built without [`Options::dynamic_concurrency`](crate::Options::dynamic_concurrency).
    NotDynamic,
    /// Zero is not a limit.
    Zero,
}

impl fmt::Display for ConcurrencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConcurrencyError::NotDynamic => {
                "dynamic concurrency is not enabled (Options::dynamic_concurrency(true))"
            }
            ConcurrencyError::Zero => "max concurrency must be at least 1",
        })
    }
}

impl std::error::Error for ConcurrencyError {}

/// A one-shot run ([`for_each`](crate::for_each)) was cancelled through its options' token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// A factory was asked for a name nobody registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCoordinator {
    pub(crate) name: String,
    pub(crate) known: Vec<String>,
}

impl UnknownCoordinator {
    /// The name asked for.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names that are registered.
    #[must_use]
    pub fn known(&self) -> &[String] {
        &self.known
    }
}

impl fmt::Display for UnknownCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no coordinator registered under the name {:?}",
            self.name
        )?;
        if self.known.is_empty() {
            f.write_str(" (none are registered)")
        } else {
            write!(f, "; known names: {}", self.known.join(", "))
        }
    }
}

impl std::error::Error for UnknownCoordinator {}
