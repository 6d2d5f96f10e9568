//! The shapes user handlers are stored in: a sync `Fn(&E)`, and async handlers whose futures
//! are boxed once, here, into one uniform future type.

use crate::outcome::Outcome;
use crate::BoxError;
use futures_util::future::{BoxFuture, FutureExt};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A synchronous handler of `&E` (`on_signal`, `on_signal_retracted`).
pub(crate) type SyncHandler<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// The future every async handler call is boxed into.
pub(crate) type HandlerFuture = BoxFuture<'static, Result<(), BoxError>>;

/// An async handler of `E`, its future boxed (`on_signal_async`, dispatchers).
pub(crate) type AsyncHandler<E> = Arc<dyn Fn(E) -> HandlerFuture + Send + Sync>;

/// An async handler of `E` that is also handed a cancellation token (processors).
pub(crate) type TokenHandler<E> = Arc<dyn Fn(E, CancellationToken) -> HandlerFuture + Send + Sync>;

/// Boxes a user's async handler into the uniform shape.
pub(crate) fn async_handler<E, F, Fut>(f: F) -> AsyncHandler<E>
where
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    Arc::new(move |e| boxed(f(e)))
}

/// Boxes a user's async handler that takes a cancellation token into the uniform shape.
pub(crate) fn token_handler<E, F, Fut>(f: F) -> TokenHandler<E>
where
    F: Fn(E, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    Arc::new(move |e, token| boxed(f(e, token)))
}

/// Boxes a handler's future into the uniform output (the one place a handler future is
/// boxed).
fn boxed<Fut>(fut: Fut) -> HandlerFuture
where
    Fut: Future<Output: Outcome<()>> + Send + 'static,
{
    Box::pin(async move { fut.await.into_result() })
}

/// Runs one handler call with its panics contained, the one way every async handler runs:
/// `call` makes the handler's future (its synchronous part may panic: then `None`), and the
/// returned future resolves to whether the handler succeeded (`Ok`, no panic).
pub(crate) fn contained(
    call: impl FnOnce() -> HandlerFuture,
) -> Option<impl Future<Output = bool> + Send + 'static> {
    let fut = catch_unwind(AssertUnwindSafe(call)).ok()?;
    Some(
        AssertUnwindSafe(fut)
            .catch_unwind()
            .map(|r| matches!(r, Ok(Ok(())))),
    )
}
