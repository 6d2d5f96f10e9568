//! [`OpSlot`]: what an [`Operation`](super::Operation) handle needs of the engine.

use crate::id::OperationId;
use crate::signal::{SignalConstraints, SignalEvent, SignalRetracted};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What an [`Operation`] handle needs of the engine: its worker's running operation and the
/// coordinator's signal plumbing. Defined here and implemented by the engine's worker slot,
/// so this module does not depend on the engine.
pub(crate) trait OpSlot: Send + Sync {
    /// Runs `f` on the running operation's id and signals under the slot's lock.
    fn with_running(&self, f: &mut dyn FnMut(Option<OperationId>, &mut Vec<SignalEvent>));
    /// Sets the label of operation `id` if it is the one running (and its body has not
    /// returned); returns whether it did.
    fn set_label(&self, id: OperationId, label: Arc<str>) -> bool;
    /// The coordinator's cancellation token.
    fn token(&self) -> &CancellationToken;
    /// The ttl `emit` gives a body's signals (`Options::signal_ttl`).
    fn signal_ttl(&self) -> Option<Duration>;
    /// The coordinator's propagation limits.
    fn constraints(&self) -> Option<&SignalConstraints>;
    /// A signal named `name` joined the running operation (called under the slot's lock).
    fn signal_added(&self, name: &str);
    /// A signal named `name` left the running operation.
    fn signal_removed(&self, name: &str);
    /// An event was emitted: count it, schedule its expiry if `expires` (it was recorded and
    /// has a ttl), raise it on the sink and pass it to the handlers.
    fn emitted(&self, event: &SignalEvent, expires: bool);
    /// A signal was retracted: pass the event to the handlers.
    fn retracted(&self, event: SignalRetracted);
}
