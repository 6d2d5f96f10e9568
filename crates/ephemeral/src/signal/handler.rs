//! The shapes user handlers are stored in: a sync `Fn(&E)` and an async `Fn(E) -> Future`
//! boxed once into a uniform future type.

use crate::outcome::Outcome;
use crate::BoxError;
use futures_util::future::BoxFuture;
use std::future::Future;
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
    Arc::new(move |e| {
        let fut = f(e);
        Box::pin(async move { fut.await.into_result() })
    })
}
