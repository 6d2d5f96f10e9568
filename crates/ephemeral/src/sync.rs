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

/// Marks a point between a `SeqCst` write of one variable and a `SeqCst` read of another that
/// a handshake relies on (the Dekker shape, see `coordinator::engine`): nothing at all in a
/// normal build, where the `SeqCst` accesses already order them.
///
/// Under `cfg(loom)` it is a `SeqCst` fence, because loom treats `SeqCst` accesses as
/// `AcqRel` (a documented limitation) and would otherwise report lost wake-ups that the real
/// total order of `SeqCst` accesses rules out. A fence between the write and the read gives
/// exactly the guarantee the `SeqCst` accesses give, so the models check each handshake's
/// logic under the ordering the engine really has, neither stronger nor weaker.
#[inline(always)]
pub(crate) fn seq_cst_point() {
    #[cfg(loom)]
    loom::sync::atomic::fence(atomic::Ordering::SeqCst);
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

/// What the loom models share: a model of tokio's `Notify` (which loom cannot drive) and the
/// runner every model goes through.
#[cfg(all(test, loom))]
pub(crate) mod model {
    use loom::sync::{Condvar, Mutex};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// Runs `f` under loom in every interleaving with at most `LOOM_MAX_PREEMPTIONS`
    /// preemptions (2 unless the variable says otherwise), and prints how many interleavings
    /// that was.
    pub(crate) fn check(name: &str, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(2);
        }
        let bound = builder.preemption_bound;
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let start = std::time::Instant::now();
        builder.check(move || {
            counted.fetch_add(1, Relaxed);
            f();
        });
        println!(
            "loom model {name}: {} interleavings explored (preemption bound {bound:?}) in {:.1?}",
            runs.load(Relaxed),
            start.elapsed(),
        );
    }

    /// tokio's `Notify`, as its documentation and source describe it, built on loom's lock
    /// and condition variable:
    ///
    /// * `notify_one` wakes the oldest registered waiter, or stores one permit if none is.
    /// * `notify_waiters` wakes every registered waiter and every `Notified` created before
    ///   the call (registered or not); it stores no permit.
    /// * A `Notified` registers on `enable` (or its first poll), which takes a stored permit
    ///   or a `notify_waiters` call since its creation as its wake-up instead.
    /// * A `Notified` woken by `notify_one` and dropped before it took the wake-up passes it
    ///   on (`notify_one` again); a permit taken by `enable` is gone with it.
    pub(crate) struct Notify {
        state: Mutex<State>,
        wakes: Condvar,
    }

    #[derive(Default)]
    struct State {
        permit: bool,
        waiters_calls: usize,
        /// Registered and not woken, oldest first.
        waiting: VecDeque<usize>,
        /// Woken and not yet taken: (waiter, by `notify_one`).
        woken: Vec<(usize, bool)>,
        next: usize,
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Stage {
        Init,
        Waiting,
        Done,
    }

    /// One wait (tokio's `Notified`).
    pub(crate) struct Notified<'a> {
        notify: &'a Notify,
        id: usize,
        waiters_calls: usize,
        stage: Stage,
    }

    impl Notify {
        pub(crate) fn new() -> Self {
            Notify {
                state: Mutex::new(State::default()),
                wakes: Condvar::new(),
            }
        }

        pub(crate) fn notified(&self) -> Notified<'_> {
            let mut st = self.state.lock().unwrap();
            let id = st.next;
            st.next += 1;
            Notified {
                notify: self,
                id,
                waiters_calls: st.waiters_calls,
                stage: Stage::Init,
            }
        }

        pub(crate) fn notify_one(&self) {
            let mut st = self.state.lock().unwrap();
            Self::notify_one_locked(&mut st);
            drop(st);
            self.wakes.notify_all();
        }

        fn notify_one_locked(st: &mut State) {
            match st.waiting.pop_front() {
                Some(id) => st.woken.push((id, true)),
                None => st.permit = true,
            }
        }

        pub(crate) fn notify_waiters(&self) {
            let mut st = self.state.lock().unwrap();
            st.waiters_calls += 1;
            while let Some(id) = st.waiting.pop_front() {
                st.woken.push((id, false));
            }
            drop(st);
            self.wakes.notify_all();
        }
    }

    impl Notified<'_> {
        /// One poll: whether the wake-up arrived (and is now taken).
        fn poll(&mut self, st: &mut State) -> bool {
            match self.stage {
                Stage::Init => {
                    if st.waiters_calls != self.waiters_calls {
                        self.stage = Stage::Done;
                    } else if st.permit {
                        st.permit = false;
                        self.stage = Stage::Done;
                    } else {
                        st.waiting.push_back(self.id);
                        self.stage = Stage::Waiting;
                    }
                }
                Stage::Waiting => {
                    if let Some(pos) = st.woken.iter().position(|w| w.0 == self.id) {
                        st.woken.swap_remove(pos);
                        self.stage = Stage::Done;
                    }
                }
                Stage::Done => {}
            }
            self.stage == Stage::Done
        }

        /// `Notified::enable`: registers; true if the wake-up is already here.
        pub(crate) fn enable(&mut self) -> bool {
            let mut st = self.notify.state.lock().unwrap();
            self.poll(&mut st)
        }

        /// `notified.now_or_never().is_some()`.
        pub(crate) fn now_or_never(&mut self) -> bool {
            self.enable()
        }

        /// `notified.await`.
        pub(crate) fn wait(&mut self) {
            let mut st = self.notify.state.lock().unwrap();
            while !self.poll(&mut st) {
                st = self.notify.wakes.wait(st).unwrap();
            }
        }
    }

    impl Drop for Notified<'_> {
        fn drop(&mut self) {
            // A failed model unwinds with its execution gone: loom must not be touched.
            if self.stage != Stage::Waiting || std::thread::panicking() {
                return;
            }
            let mut st = self.notify.state.lock().unwrap();
            if let Some(pos) = st.waiting.iter().position(|&id| id == self.id) {
                st.waiting.remove(pos);
            } else if let Some(pos) = st.woken.iter().position(|w| w.0 == self.id) {
                let (_, by_one) = st.woken.swap_remove(pos);
                if by_one {
                    Notify::notify_one_locked(&mut st);
                    drop(st);
                    self.notify.wakes.notify_all();
                }
            }
        }
    }
}
