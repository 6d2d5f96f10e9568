//! What bodies and async handlers may return.

use crate::BoxError;

/// What a body (or an async signal handler) may return: `()` for work that cannot fail, or
/// `Result<R, E>` with any error that converts into [`BoxError`](crate::BoxError).
///
/// So an infallible body needs no `Ok::<_, E>(())`:
///
/// ```
/// use ephemeral::{Options, WorkCoordinator};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let greeter = WorkCoordinator::new(
///         |name: String, _op| async move { println!("hello, {name}") },
///         Options::default(),
///     );
///     greeter.enqueue("world".to_string()).await.unwrap();
///     greeter.complete();
///     greeter.drain().await;
///     assert_eq!(greeter.total_completed(), 1);
/// }
/// ```
///
/// The trait is sealed: it is implemented for `()` and for `Result<R, E>` only.
pub trait Outcome<R>: Send + 'static + sealed::Sealed<R> {
    /// The outcome as a result.
    #[doc(hidden)]
    fn into_result(self) -> Result<R, BoxError>;
}

impl Outcome<()> for () {
    #[inline]
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<R, E> Outcome<R> for Result<R, E>
where
    R: Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    #[inline]
    fn into_result(self) -> Result<R, BoxError> {
        self.map_err(Into::into)
    }
}

mod sealed {
    pub trait Sealed<R> {}
    impl Sealed<()> for () {}
    impl<R, E> Sealed<R> for Result<R, E> {}
}
