//! The shapes user handlers are stored in: a sync `Fn(&E)` and an async `Fn(E) -> Future`
//! boxed once into a uniform future type.

use crate::outcome::Outcome;
use crate::BoxError;
use futures_util::future::{BoxFuture, FutureExt};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A synchronous handler of `&E` (`on_signal`, `on_signal_retracted`).
pub(crate) type SyncHandler<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// An async handler of `E`, its future boxed (`on_signal_async`, processors, dispatchers).
pub(crate) type AsyncHandler<E> =
    Arc<dyn Fn(E) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// Boxes a user's async handler into the uniform shape.
pub(crate) fn async_handler<E, F, Fut>(f: F) -> AsyncHandler<E>
where
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    Arc::new(move |e| boxed(f(e)))
}

/// Boxes a handler's future into the uniform output (the one place a handler future is
/// boxed).
pub(crate) fn boxed<Fut>(fut: Fut) -> BoxFuture<'static, Result<(), BoxError>>
where
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    Box::pin(async move { fut.await.into_result() })
}

/// Runs one handler call with its panics contained, the one way every async handler runs:
/// `call` makes the handler's future (its synchronous part may panic: then `None`), and the
/// returned future resolves to whether the handler succeeded (`Ok`, no panic).
pub(crate) fn contained(
    call: impl FnOnce() -> BoxFuture<'static, Result<(), BoxError>>,
) -> Option<impl Future<Output = bool> + Send + 'static> {
    let fut = catch_unwind(AssertUnwindSafe(call)).ok()?;
    Some(
        AssertUnwindSafe(fut)
            .catch_unwind()
            .map(|r| matches!(r, Ok(Ok(())))),
    )
}
