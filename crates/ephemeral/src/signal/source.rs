//! One query vocabulary for everything that holds signals.

use crate::pattern::Pattern;
use crate::signal::SignalEvent;
use std::ops::ControlFlow;
use std::time::SystemTime;

/// Read access to a set of signals, with one vocabulary everywhere.
///
/// Implemented by every coordinator (over the signals of the operations in its window) and by
/// [`SignalSink`](crate::SignalSink) (over its events). Only [`visit_signals`] is required; every
/// query is provided on top of it and stops early where it can (`has_*`). Events keep their real
/// timestamps and propagation.
///
/// ```
/// use ephemeral::{SignalSink, SignalSource};
///
/// let sink = SignalSink::default();
/// sink.raise("http.error.503");
/// sink.raise("http.error.502");
/// sink.raise_with_key("cache-hit", "user-1");
///
/// assert!(sink.has_signal("cache-hit"));
/// assert_eq!(sink.count_signals_matching("http.error.*"), 2);
/// assert_eq!(sink.signals_for_key("user-1").len(), 1);
/// assert_eq!(sink.total_signals(), 3);
/// ```
///
/// [`visit_signals`]: SignalSource::visit_signals
pub trait SignalSource {
    /// Calls `visit` with each live signal, oldest first, until it returns
    /// [`ControlFlow::Break`].
    ///
    /// The implementation may hold a lock while visiting: do not call back into the same source
    /// from `visit`, and keep `visit` short (a coordinator's workers wait for it to finish).
    fn visit_signals(&self, visit: &mut dyn FnMut(&SignalEvent) -> ControlFlow<()>);

    /// Every live signal, oldest first.
    fn signals(&self) -> Vec<SignalEvent> {
        collect(self, |_| true)
    }

    /// Whether a signal named exactly `name` is present.
    fn has_signal(&self, name: &str) -> bool {
        any(self, |e| e.is(name))
    }

    /// Whether a signal matching the glob `pattern` is present.
    fn has_signal_matching(&self, pattern: &str) -> bool {
        let p = Pattern::new(pattern);
        any(self, |e| p.matches(e.signal()))
    }

    /// How many signals are named exactly `name`.
    fn count_signals(&self, name: &str) -> usize {
        count(self, |e| e.is(name))
    }

    /// How many signals match the glob `pattern`.
    fn count_signals_matching(&self, pattern: &str) -> usize {
        let p = Pattern::new(pattern);
        count(self, |e| p.matches(e.signal()))
    }

    /// How many signals there are in all.
    fn total_signals(&self) -> usize {
        count(self, |_| true)
    }

    /// The signals named exactly `name`.
    fn signals_named(&self, name: &str) -> Vec<SignalEvent> {
        collect(self, |e| e.is(name))
    }

    /// The signals matching the glob `pattern`.
    fn signals_matching(&self, pattern: &str) -> Vec<SignalEvent> {
        let p = Pattern::new(pattern);
        collect(self, |e| p.matches(e.signal()))
    }

    /// The signals raised at or after `since` (by [`SignalEvent::timestamp`]).
    ///
    /// Timestamps are on the library's clock, [`ephemeral::now`](crate::now()), which follows
    /// tokio's clock: take `since` from it, not from [`SystemTime::now`], or a paused test
    /// clock (and any wall-clock adjustment) puts the bound off.
    ///
    /// ```
    /// use ephemeral::{SignalSink, SignalSource};
    ///
    /// let sink = SignalSink::default();
    /// sink.raise("before");
    /// let since = ephemeral::now();
    /// sink.raise("after");
    /// assert!(sink.signals_since(since).iter().any(|e| e.is("after")));
    /// ```
    fn signals_since(&self, since: SystemTime) -> Vec<SignalEvent> {
        collect(self, |e| e.timestamp() >= since)
    }

    /// The signals raised between `from` and `to`, both inclusive (by
    /// [`SignalEvent::timestamp`]).
    ///
    /// Like [`signals_since`](Self::signals_since), the bounds must be on the library's clock,
    /// [`ephemeral::now`](crate::now()).
    ///
    /// ```
    /// use ephemeral::{SignalSink, SignalSource};
    ///
    /// let sink = SignalSink::default();
    /// let from = ephemeral::now();
    /// sink.raise("inside");
    /// let to = ephemeral::now();
    /// assert_eq!(sink.signals_between(from, to).len(), 1);
    /// ```
    fn signals_between(&self, from: SystemTime, to: SystemTime) -> Vec<SignalEvent> {
        collect(self, |e| e.timestamp() >= from && e.timestamp() <= to)
    }

    /// The signals raised for `key`.
    fn signals_for_key(&self, key: &str) -> Vec<SignalEvent> {
        collect(self, |e| e.key() == Some(key))
    }
}

fn collect<S: SignalSource + ?Sized>(
    source: &S,
    mut keep: impl FnMut(&SignalEvent) -> bool,
) -> Vec<SignalEvent> {
    let mut out = Vec::new();
    source.visit_signals(&mut |e| {
        if keep(e) {
            out.push(e.clone());
        }
        ControlFlow::Continue(())
    });
    out
}

fn count<S: SignalSource + ?Sized>(source: &S, mut hit: impl FnMut(&SignalEvent) -> bool) -> usize {
    let mut n = 0;
    source.visit_signals(&mut |e| {
        n += usize::from(hit(e));
        ControlFlow::Continue(())
    });
    n
}

fn any<S: SignalSource + ?Sized>(source: &S, mut hit: impl FnMut(&SignalEvent) -> bool) -> bool {
    let mut found = false;
    source.visit_signals(&mut |e| {
        if hit(e) {
            found = true;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}
