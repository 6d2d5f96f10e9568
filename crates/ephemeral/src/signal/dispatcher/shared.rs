//! The dispatcher's state: its rules (copy-on-write) and its per-name queues, and the
//! operations on them that handles call.

use crate::pattern::Pattern;
use crate::signal::handler::AsyncHandler;
use crate::signal::runner::{Close, Runner};
use crate::signal::SignalEvent;
use crate::sync::{Mutex, MutexGuard};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One registration: a pattern and the handler it routes to.
pub(super) struct Rule {
    pub(super) pattern: Pattern,
    pub(super) handler: AsyncHandler<SignalEvent>,
}

pub(super) struct Shared {
    state: Mutex<State>,
    /// Copy-on-write: handling clones the `Arc` and runs without any lock.
    rules: Mutex<Arc<Vec<Rule>>>,
    pub(super) runner: Runner,
    pub(super) max_concurrent_names: usize,
    max_queued: usize,
    pub(super) processed: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) dropped: AtomicU64,
}

pub(super) struct State {
    /// Every name with events waiting or being handled, with its waiting events. A name is
    /// either in `ready` (it has waiting events and is not being handled) or being handled.
    pub(super) names: HashMap<Arc<str>, VecDeque<SignalEvent>>,
    /// Names with waiting events, not being handled, in the order they became ready.
    pub(super) ready: VecDeque<Arc<str>>,
    /// Events waiting (not being handled), over all names.
    pub(super) queued: usize,
    pub(super) closed: bool,
}

impl Shared {
    pub(super) fn new(max_concurrent_names: usize, max_queued: usize) -> Self {
        Shared {
            state: Mutex::new(State {
                names: HashMap::new(),
                ready: VecDeque::new(),
                queued: 0,
                closed: false,
            }),
            rules: Mutex::new(Arc::new(Vec::new())),
            runner: Runner::new(),
            max_concurrent_names,
            max_queued,
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock, so poisoning cannot leave broken state.
        self.state.lock()
    }

    pub(super) fn rules(&self) -> Arc<Vec<Rule>> {
        self.rules.lock().clone()
    }

    /// Copy-on-write update of the rules: `f` edits a copy, which then replaces them.
    pub(super) fn update_rules(&self, f: impl FnOnce(&mut Vec<Rule>)) {
        let mut rules = self.rules.lock();
        let mut next: Vec<Rule> = rules
            .iter()
            .map(|r| Rule {
                pattern: r.pattern.clone(),
                handler: r.handler.clone(),
            })
            .collect();
        f(&mut next);
        let old = std::mem::replace(&mut *rules, Arc::new(next));
        drop(rules);
        // Replaced handlers (user data) are released outside the lock.
        drop(old);
    }

    /// See [`SignalDispatcher::replace`](super::SignalDispatcher::replace).
    pub(super) fn replace_rules(&self, new: Rule) -> bool {
        let mut replaced = false;
        self.update_rules(|rules| {
            let first = rules
                .iter()
                .position(|r| r.pattern.as_str() == new.pattern.as_str());
            match first {
                Some(first) => {
                    replaced = true;
                    let mut i = 0;
                    rules.retain(|r| {
                        let keep = i <= first || r.pattern.as_str() != new.pattern.as_str();
                        i += 1;
                        keep
                    });
                    rules[first] = new;
                }
                None => rules.push(new),
            }
        });
        replaced
    }

    /// See [`SignalDispatcher::dispatch`](super::SignalDispatcher::dispatch).
    pub(super) fn dispatch(&self, event: SignalEvent) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        if state.queued >= self.max_queued {
            drop(state);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        state.queued += 1;
        let state = &mut *state;
        let newly_ready = match state.names.entry(event.signal_arc().clone()) {
            // The name is already ready or being handled: the driver gets to it.
            Entry::Occupied(mut waiting) => {
                waiting.get_mut().push_back(event);
                false
            }
            Entry::Vacant(slot) => {
                state.ready.push_back(slot.key().clone());
                slot.insert(VecDeque::from([event]));
                true
            }
        };
        if newly_ready {
            self.runner.wake();
        }
        true
    }
}

impl Close for Shared {
    fn close(&self) {
        self.lock().closed = true;
        self.runner.wake();
    }
}
