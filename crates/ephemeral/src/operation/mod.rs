//! The operation handle given to bodies, and what is kept of an operation.

mod emit;
mod error;
mod op_slot;
mod retract;
mod snapshot;

pub use error::OperationError;
pub(crate) use op_slot::OpSlot;
pub use snapshot::OperationSnapshot;

use crate::id::OperationId;
use crate::label::Label;
use crate::signal::SignalEvent;
use crate::time;
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
    /// and the dashboard. Calling it again replaces the label. Returns `false` (and does
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
