//! The synchronisation primitives the crate uses, in one place.
//!
//! Everything that locks or uses an atomic imports it from here rather than from `std`, so a
//! model checker can be switched in at one spot: under `cfg(loom)` these names are meant to come
//! from `loom::sync` (as tokio's own `loom` shim does) and the engine's handshakes (see
//! `coordinator::engine`) can be explored exhaustively. The `loom` dependency itself comes with
//! those models; a normal build never sees `cfg(loom)`.
//!
//! [`Mutex::lock`] ignores poisoning. Every lock in this crate guards state that is consistent
//! at each unlock, and the only user code that can run under one is the drop of an evicted
//! value, so a panic elsewhere leaves nothing half-written: recovering the guard is always
//! right, and writing that once here replaces a recovery at every call site.

use std::fmt;

#[cfg(not(loom))]
pub(crate) use std::sync::MutexGuard;

#[cfg(loom)]
pub(crate) use loom::sync::MutexGuard;

/// Atomics, re-exported (`std::sync::atomic`, or `loom`'s under `cfg(loom)`).
pub(crate) mod atomic {
    #[cfg(not(loom))]
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};

    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering,
    };
}

#[cfg(not(loom))]
type Inner<T> = std::sync::Mutex<T>;

#[cfg(loom)]
type Inner<T> = loom::sync::Mutex<T>;

/// A mutual-exclusion lock whose [`lock`](Self::lock) ignores poisoning.
pub(crate) struct Mutex<T>(Inner<T>);

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub(crate) fn new(value: T) -> Self {
        Mutex(Inner::new(value))
    }

    /// Locks it, waiting if another thread holds it. A lock poisoned by a panic is taken
    /// anyway (see the module docs for why that is sound here).
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::Mutex;
    use std::sync::Arc;

    #[test]
    fn lock_ignores_poisoning() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock();
            panic!("poison it");
        })
        .join();
        *m.lock() += 1;
        assert_eq!(*m.lock(), 2);
    }
}
