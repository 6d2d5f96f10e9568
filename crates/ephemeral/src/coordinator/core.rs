//! The private core every coordinator face wraps: the engine's state and the strong handle
//! whose last drop completes the coordinator, with what each face has in common (cloning,
//! `Debug`, [`SignalSource`](crate::SignalSource), [`AnyCoordinator`](crate::AnyCoordinator))
//! written once.
//!
//! A face (`WorkCoordinator`, `KeyedWorkCoordinator`, `ResultCoordinator`) is a `Core` plus
//! whatever it adds (the keyed face's key function), its constructors, and the methods that
//! differ (enqueueing with a key, results). The methods all faces share come from
//! [`common_methods!`](super::common_methods) and the impls from [`face!`].

use super::engine::Shared;
use super::scheduler::Intake;
use crate::options::Options;
use crate::outcome::Outcome;
use crate::Operation;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

/// The engine's state, shared with the workers, plus the strong handle only faces hold.
///
/// Reads go straight to the engine (`Deref`), without going through the handle.
pub(crate) struct Core<T: Send + 'static, I: Intake<T>, R: Send + 'static> {
    shared: Arc<Shared<T, I, R>>,
    /// Only user-facing handles count towards "dropping the last handle completes".
    _handle: Arc<Handle<T, I, R>>,
}

/// The strong handle: dropping the last one completes the coordinator.
struct Handle<T: Send + 'static, I: Intake<T>, R: Send + 'static> {
    shared: Arc<Shared<T, I, R>>,
}

impl<T: Send + 'static, I: Intake<T>, R: Send + 'static> Drop for Handle<T, I, R> {
    fn drop(&mut self) {
        self.shared.complete();
    }
}

impl<T: Send + 'static, I: Intake<T>, R: Send + 'static> Core<T, I, R> {
    /// Starts the engine (its workers need a tokio runtime) with the intake `make_intake`
    /// builds from the validated options.
    #[track_caller]
    pub(crate) fn start<F, Fut>(
        make_intake: impl FnOnce(&Options) -> I,
        options: Options,
        body: F,
    ) -> Self
    where
        F: Fn(T, Operation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output: Outcome<R>> + Send + 'static,
    {
        let shared = Shared::start(make_intake, options, body);
        Core {
            _handle: Arc::new(Handle {
                shared: shared.clone(),
            }),
            shared,
        }
    }

    /// The one `Debug` of every face: its type name, the coordinator's name and its counters.
    pub(crate) fn fmt_as(&self, face: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(face)
            .field("name", &self.shared.name.as_deref())
            .field("stats", &self.shared.stats())
            .finish()
    }
}

impl<T: Send + 'static, I: Intake<T>, R: Send + 'static> Clone for Core<T, I, R> {
    fn clone(&self) -> Self {
        Core {
            shared: self.shared.clone(),
            _handle: self._handle.clone(),
        }
    }
}

impl<T: Send + 'static, I: Intake<T>, R: Send + 'static> Deref for Core<T, I, R> {
    type Target = Arc<Shared<T, I, R>>;

    fn deref(&self) -> &Self::Target {
        &self.shared
    }
}

/// Implements `Clone`, `Debug`, [`SignalSource`](crate::SignalSource) and
/// [`AnyCoordinator`](crate::AnyCoordinator) for a face whose core is in its `shared` field.
///
/// `face!(Name<P, ...> { fields to clone } snapshot: method, where bounds)`: `snapshot` is the
/// method `AnyCoordinator::snapshot` delegates to (metadata only).
macro_rules! face {
    (
        $face:ident<$($p:ident),+> { $($field:ident),+ }
        snapshot: $snapshot:ident,
        where $($bound:tt)+
    ) => {
        impl<$($p),+> Clone for $face<$($p),+>
        where
            $($bound)+
        {
            fn clone(&self) -> Self {
                $face {
                    $($field: self.$field.clone()),+
                }
            }
        }

        impl<$($p),+> $crate::SignalSource for $face<$($p),+>
        where
            $($bound)+
        {
            fn visit_signals(
                &self,
                visit: &mut dyn FnMut(&$crate::SignalEvent) -> std::ops::ControlFlow<()>,
            ) {
                self.shared.visit_signals(visit);
            }
        }

        impl<$($p),+> $crate::AnyCoordinator for $face<$($p),+>
        where
            $($bound)+
        {
            $crate::coordinator::any::any_coordinator!($snapshot);
        }

        impl<$($p),+> std::fmt::Debug for $face<$($p),+>
        where
            $($bound)+
        {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.shared.fmt_as(stringify!($face), f)
            }
        }
    };
}
pub(crate) use face;
