//! Reading a sink: every read drops expired events first, then looks at the live ones under
//! the lock; removals by predicate.

use super::store::Stored;
use super::SignalSink;
use crate::pattern::PatternSet;
use crate::signal::{SignalEvent, SignalSource};
use crate::time;
use std::collections::VecDeque;
use std::ops::ControlFlow;
use tokio::time::Instant;

impl SignalSink {
    /// Locks, drops expired events, and hands the live ones to `f`.
    fn with_live<R>(&self, f: impl FnOnce(&VecDeque<Stored>) -> R) -> R {
        let now = time::now();
        let mut state = self.lock();
        state.purge(self.inner.max_age, now);
        f(&state.events)
    }

    /// A copy of the live events that satisfy `predicate`, oldest first.
    ///
    /// `predicate` runs while the sink is locked: it must not call back into this sink.
    pub fn sense(&self, mut predicate: impl FnMut(&SignalEvent) -> bool) -> Vec<SignalEvent> {
        self.with_live(|events| {
            events
                .iter()
                .filter(|s| predicate(&s.event))
                .map(|s| s.event.clone())
                .collect()
        })
    }

    /// Whether a live event is named exactly `name`.
    #[must_use]
    pub fn detect(&self, name: &str) -> bool {
        self.detect_where(|e| e.is(name))
    }

    /// Whether a live event satisfies `predicate` (stops at the first).
    ///
    /// `predicate` runs while the sink is locked: it must not call back into this sink.
    pub fn detect_where(&self, mut predicate: impl FnMut(&SignalEvent) -> bool) -> bool {
        self.with_live(|events| events.iter().any(|s| predicate(&s.event)))
    }

    /// The number of live events.
    #[must_use]
    pub fn len(&self) -> usize {
        self.with_live(VecDeque::len)
    }

    /// Whether there are no live events.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every stored event that satisfies `predicate`; returns how many were removed.
    ///
    /// This is a removal, not a raise: subscribers are not called. Readers that cache "is a
    /// pattern present?" (coordinators' cancel and defer gates) see the change at once. Events
    /// that already aged out are dropped first and never offered to `predicate`.
    ///
    /// `predicate` runs while the sink is locked, once per live event: it must not call back
    /// into this sink.
    ///
    /// ```
    /// use ephemeral::SignalSink;
    ///
    /// let sink = SignalSink::default();
    /// sink.raise_with_key("maintenance", "db-1");
    /// sink.raise_with_key("maintenance", "db-2");
    /// assert_eq!(sink.remove_where(|e| e.key() == Some("db-1")), 1);
    /// assert_eq!(sink.len(), 1);
    /// ```
    pub fn remove_where(&self, mut predicate: impl FnMut(&SignalEvent) -> bool) -> usize {
        let now = time::now();
        let mut state = self.lock();
        state.purge(self.inner.max_age, now);
        // Asked once per live event; nothing moves unless something goes.
        let gone: Vec<bool> = state.events.iter().map(|s| predicate(&s.event)).collect();
        if !gone.contains(&true) {
            return 0;
        }
        let all = std::mem::take(&mut state.events);
        let mut removed = Vec::new();
        for (stored, gone) in all.into_iter().zip(gone) {
            if gone {
                removed.push(stored);
            } else {
                state.events.push_back(stored);
            }
        }
        self.inner.bump(&mut state);
        drop(state);
        // User values are released outside the lock.
        let count = removed.len();
        drop(removed);
        count
    }

    /// If a live event matches `patterns`, the instant until which one surely stays live
    /// (barring raises and clears, which move the generation).
    pub(crate) fn matching_until(&self, patterns: &PatternSet) -> Option<Instant> {
        self.with_live(|events| {
            events
                .iter()
                .filter(|s| patterns.matches(s.event.signal()))
                .map(|s| s.end(self.inner.max_age).unwrap_or(s.at))
                .max()
        })
    }
}

impl SignalSource for SignalSink {
    fn visit_signals(&self, visit: &mut dyn FnMut(&SignalEvent) -> ControlFlow<()>) {
        self.with_live(|events| {
            for s in events {
                if visit(&s.event).is_break() {
                    break;
                }
            }
        });
    }

    fn total_signals(&self) -> usize {
        self.len()
    }
}
