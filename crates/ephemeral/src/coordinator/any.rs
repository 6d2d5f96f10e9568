//! [`AnyCoordinator`]: any coordinator, without its item type.

use crate::{ConcurrencyError, OperationSnapshot, SignalSource, Stats};
use std::fmt;

/// Any coordinator, seen without its item, key or result types: what dashboards, registries
/// and control loops hold as `Arc<dyn AnyCoordinator>` to inspect and steer coordinators of
/// different types side by side.
///
/// Implemented by [`WorkCoordinator`](crate::WorkCoordinator),
/// [`KeyedWorkCoordinator`](crate::KeyedWorkCoordinator) and
/// [`ResultCoordinator`](crate::ResultCoordinator) (whose [`snapshot`](Self::snapshot) here is
/// the base snapshot: metadata only, never results). Every method is the coordinator's own;
/// signal queries come through the [`SignalSource`] supertrait.
///
/// ```
/// use ephemeral::{AnyCoordinator, KeyedWorkCoordinator, Options, WorkCoordinator};
/// use std::sync::Arc;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let emails = WorkCoordinator::new(|_to: String, _op| async {}, Options::default().name("emails"));
///     let orders = KeyedWorkCoordinator::new(
///         |order: &(u32, u32)| order.0,
///         |_order, _op| async {},
///         Options::default().name("orders"),
///     );
///     let all: Vec<Arc<dyn AnyCoordinator>> = vec![Arc::new(emails), Arc::new(orders)];
///     for c in &all {
///         c.pause();
///         println!("{}: {:?}", c.name().unwrap_or("?"), c.stats());
///         assert!(c.stats().paused);
///     }
/// }
/// ```
pub trait AnyCoordinator: SignalSource + fmt::Debug + Send + Sync {
    /// The name given in the options, if any.
    fn name(&self) -> Option<&str>;
    /// All counters at once.
    fn stats(&self) -> Stats;
    /// Every operation in the window (metadata only), in start order.
    fn snapshot(&self) -> Vec<OperationSnapshot>;
    /// The current concurrency limit.
    fn max_concurrency(&self) -> usize;
    /// Changes the concurrency limit (see the coordinators' `set_max_concurrency`).
    ///
    /// # Errors
    ///
    /// [`ConcurrencyError`] unless `dynamic_concurrency` is on, or for 0.
    fn set_max_concurrency(&self, n: usize) -> Result<(), ConcurrencyError>;
    /// Whether `set_max_concurrency` is allowed (the options' `dynamic_concurrency`).
    fn is_dynamic(&self) -> bool;
    /// Stops starting new items.
    fn pause(&self);
    /// Starts items again.
    fn resume(&self);
    /// Whether it is paused.
    fn is_paused(&self) -> bool;
    /// Whether it accepts no more items.
    fn is_completed(&self) -> bool;
    /// The window's snapshot of one operation, if tracked.
    fn snapshot_of(&self, id: crate::OperationId) -> Option<OperationSnapshot>;
}

/// Implements [`AnyCoordinator`] by delegating to the coordinator's inherent methods.
macro_rules! any_coordinator {
    ($snapshot:ident) => {
        fn name(&self) -> Option<&str> {
            Self::name(self)
        }
        fn stats(&self) -> $crate::Stats {
            Self::stats(self)
        }
        fn snapshot(&self) -> Vec<$crate::OperationSnapshot> {
            Self::$snapshot(self)
        }
        fn max_concurrency(&self) -> usize {
            Self::max_concurrency(self)
        }
        fn set_max_concurrency(&self, n: usize) -> Result<(), $crate::ConcurrencyError> {
            Self::set_max_concurrency(self, n)
        }
        fn is_dynamic(&self) -> bool {
            self.shared.is_dynamic()
        }
        fn pause(&self) {
            Self::pause(self);
        }
        fn resume(&self) {
            Self::resume(self);
        }
        fn is_paused(&self) -> bool {
            Self::is_paused(self)
        }
        fn is_completed(&self) -> bool {
            Self::is_completed(self)
        }
        fn snapshot_of(&self, id: $crate::OperationId) -> Option<$crate::OperationSnapshot> {
            Self::snapshot_of(self, id)
        }
    };
}
pub(crate) use any_coordinator;
