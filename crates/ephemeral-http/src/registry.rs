//! [`Registry`]: the named coordinators and sinks a router shows.

use ephemeral::{AnyCoordinator, SignalSink};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// The coordinators and signal sinks a [`router`](crate::router) shows, each under a name.
///
/// A cheap `Clone` handle: clones share the same entries, so coordinators registered after the
/// router was built show up in it. Coordinators are listed in registration order, and so are
/// sinks. Coordinators and sinks have separate names: a coordinator and a sink may share one.
///
/// Registering a name that is already taken (by a coordinator for
/// [`register`](Self::register), by a sink for [`register_sink`](Self::register_sink))
/// **replaces** the old entry in place: it keeps its position in the listing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::{Options, SignalSink, WorkCoordinator};
/// use ephemeral_http::Registry;
///
/// let registry = Registry::new();
/// let emails = WorkCoordinator::new(|_to: String, _op| async {}, Options::default());
/// registry.register("emails", emails.clone());
/// registry.register_sink("alerts", &SignalSink::default());
/// assert_eq!(registry.coordinator_names(), ["emails"]);
/// assert_eq!(registry.sink_names(), ["alerts"]);
///
/// assert!(registry.unregister("emails"));
/// assert!(registry.coordinator_names().is_empty());
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<Entries>>,
}

#[derive(Default)]
struct Entries {
    coordinators: Vec<(Arc<str>, Arc<dyn AnyCoordinator>)>,
    sinks: Vec<(Arc<str>, SignalSink)>,
}

/// Replaces the entry named `name`, keeping its place, or appends one.
fn upsert<T>(list: &mut Vec<(Arc<str>, T)>, name: String, value: T) {
    match list.iter_mut().find(|(n, _)| **n == *name) {
        Some(slot) => slot.1 = value,
        None => list.push((name.into(), value)),
    }
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows `coordinator` under `name`, replacing any coordinator already registered under it.
    ///
    /// Coordinators are cheap handles: pass a clone and keep using the original.
    pub fn register(&self, name: impl Into<String>, coordinator: impl AnyCoordinator + 'static) {
        self.register_arc(name, Arc::new(coordinator));
    }

    /// Like [`register`](Self::register), for a coordinator already behind an `Arc`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use ephemeral::{AnyCoordinator, Options, WorkCoordinator};
    /// use ephemeral_http::Registry;
    /// use std::sync::Arc;
    ///
    /// let jobs: Arc<dyn AnyCoordinator> =
    ///     Arc::new(WorkCoordinator::new(|_n: u32, _op| async {}, Options::default()));
    /// let registry = Registry::new();
    /// registry.register_arc("jobs", jobs);
    /// assert!(registry.coordinator("jobs").is_some());
    /// # }
    /// ```
    pub fn register_arc(&self, name: impl Into<String>, coordinator: Arc<dyn AnyCoordinator>) {
        let mut entries = self.write();
        upsert(&mut entries.coordinators, name.into(), coordinator);
    }

    /// Shows the signals of `sink` under `name`, replacing any sink already registered under
    /// it. The registry keeps a handle to the same sink (not a copy of its events).
    pub fn register_sink(&self, name: impl Into<String>, sink: &SignalSink) {
        let mut entries = self.write();
        upsert(&mut entries.sinks, name.into(), sink.clone());
    }

    /// Removes the coordinator and the sink registered under `name`; whether there was one.
    ///
    /// Open event streams stop following them at their next poll. The Prometheus series
    /// already rendered for a removed coordinator keep their last values in `/metrics`.
    pub fn unregister(&self, name: &str) -> bool {
        let mut entries = self.write();
        let before = entries.coordinators.len() + entries.sinks.len();
        entries.coordinators.retain(|(n, _)| **n != *name);
        entries.sinks.retain(|(n, _)| **n != *name);
        before != entries.coordinators.len() + entries.sinks.len()
    }

    /// The names of the registered coordinators, in registration order.
    #[must_use]
    pub fn coordinator_names(&self) -> Vec<String> {
        self.read()
            .coordinators
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// The names of the registered sinks, in registration order.
    #[must_use]
    pub fn sink_names(&self) -> Vec<String> {
        self.read()
            .sinks
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// The coordinator registered under `name`.
    #[must_use]
    pub fn coordinator(&self, name: &str) -> Option<Arc<dyn AnyCoordinator>> {
        self.read()
            .coordinators
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|(_, c)| c.clone())
    }

    /// A copy of the coordinator entries, so that no lock is held while they are queried.
    pub(crate) fn coordinators(&self) -> Vec<(Arc<str>, Arc<dyn AnyCoordinator>)> {
        self.read().coordinators.clone()
    }

    /// A copy of the sink entries.
    pub(crate) fn sinks(&self) -> Vec<(Arc<str>, SignalSink)> {
        self.read().sinks.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        // Entries are plain lists, valid after any panic: ignore poisoning.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.read();
        f.debug_struct("Registry")
            .field(
                "coordinators",
                &entries
                    .coordinators
                    .iter()
                    .map(|(n, _)| &**n)
                    .collect::<Vec<_>>(),
            )
            .field(
                "sinks",
                &entries.sinks.iter().map(|(n, _)| &**n).collect::<Vec<_>>(),
            )
            .finish()
    }
}
