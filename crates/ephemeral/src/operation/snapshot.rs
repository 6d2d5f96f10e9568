//! Copies of operation metadata.

use crate::id::OperationId;
use crate::operation::OperationError;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A copy of one operation's metadata: never a live view, never the payload.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{Options, WorkCoordinator};
///
/// let c = WorkCoordinator::new(
///     |n: u32, op: ephemeral::Operation| async move {
///         op.emit("seen");
///         if n == 2 { Err("two is bad") } else { Ok(()) }
///     },
///     Options::default().max_concurrency(2),
/// );
/// for n in 0..3 { c.enqueue(n).await.unwrap(); }
/// c.complete();
/// c.drain().await;
/// let snap = c.snapshot();
/// assert_eq!(snap.len(), 3);
/// assert!(snap.iter().all(|s| s.has_signal("seen") && s.completed().is_some()));
/// assert_eq!(snap.iter().filter(|s| s.is_faulted()).count(), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct OperationSnapshot {
    pub(crate) id: OperationId,
    pub(crate) started: SystemTime,
    pub(crate) completed: Option<SystemTime>,
    pub(crate) key: Option<Arc<str>>,
    pub(crate) error: Option<OperationError>,
    pub(crate) signals: Vec<Arc<str>>,
    pub(crate) pinned: bool,
    pub(crate) label: Option<Arc<str>>,
}

impl OperationSnapshot {
    /// The operation's id.
    #[must_use]
    pub fn id(&self) -> OperationId {
        self.id
    }

    /// When its body started.
    #[must_use]
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// When it finished; `None` while running.
    #[must_use]
    pub fn completed(&self) -> Option<SystemTime> {
        self.completed
    }

    /// Its key (keyed coordinators only).
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Whether it finished with an error (or a panic).
    #[must_use]
    pub fn is_faulted(&self) -> bool {
        self.error.is_some()
    }

    /// Whether it is still running.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.completed.is_none()
    }

    /// Why it failed.
    #[must_use]
    pub fn error(&self) -> Option<&OperationError> {
        self.error.as_ref()
    }

    /// How long it ran; `None` while running.
    #[must_use]
    pub fn duration(&self) -> Option<Duration> {
        self.completed
            .map(|c| c.duration_since(self.started).unwrap_or_default())
    }

    /// The names of the signals it holds, in emission order.
    #[must_use]
    pub fn signals(&self) -> &[Arc<str>] {
        &self.signals
    }

    /// Whether it holds a signal named exactly `name`.
    #[must_use]
    pub fn has_signal(&self, name: &str) -> bool {
        self.signals.iter().any(|s| &**s == name)
    }

    /// The short label its body gave it with [`Operation::set_label`](crate::Operation::set_label)
    /// (a URL, an order number), if any: how to tell *which* item failed without keeping the
    /// items.
    #[must_use]
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// Whether it is pinned in the window.
    #[must_use]
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for OperationSnapshot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("OperationSnapshot", 10)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("started_ms", &crate::serde_time::millis(self.started))?;
        s.serialize_field(
            "completed_ms",
            &self.completed.map(crate::serde_time::millis),
        )?;
        s.serialize_field("key", &self.key())?;
        s.serialize_field("label", &self.label())?;
        s.serialize_field("faulted", &self.is_faulted())?;
        s.serialize_field("error", &self.error.as_ref().map(ToString::to_string))?;
        s.serialize_field(
            "duration_ms",
            &self.duration().map(|d| d.as_secs_f64() * 1e3),
        )?;
        s.serialize_field(
            "signals",
            &self.signals.iter().map(|s| &**s).collect::<Vec<_>>(),
        )?;
        s.serialize_field("pinned", &self.pinned)?;
        s.end()
    }
}
