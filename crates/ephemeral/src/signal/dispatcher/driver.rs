//! The dispatcher's background task and its shared state's operations.

use super::{Rule, Shared, State};
use crate::signal::handler::contained;
use crate::signal::SignalEvent;
use crate::sync::MutexGuard;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Shared {
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
            self.wake.notify_one();
        }
        true
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    pub(super) async fn wait_finished(&self) {
        crate::notify::wait_until(&self.done, || self.lock().finished).await;
    }
}

/// Handles one event: every matching handler, in registration order, each awaited.
/// Resolves to the event's name so the driver can move on to that name's next event.
async fn handle(shared: Arc<Shared>, name: Arc<str>, event: SignalEvent) -> Arc<str> {
    let rules = shared.rules();
    for rule in rules.iter().filter(|r| r.pattern.matches(&name)) {
        let succeeded = match contained(|| (rule.handler)(event.clone())) {
            Some(run) => run.await,
            None => false,
        };
        if !succeeded {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    shared.processed.fetch_add(1, Ordering::Relaxed);
    name
}

/// The background task: starts ready names while there are free slots, and on each finished
/// event either requeues its name (more waiting) or forgets it.
pub(super) async fn drive(shared: Arc<Shared>) {
    let mut running = FuturesUnordered::new();
    loop {
        let exit = {
            let mut state = shared.lock();
            while running.len() < shared.max_concurrent_names {
                let Some(name) = state.ready.pop_front() else {
                    break;
                };
                // A ready name always has a waiting event; stay robust all the same.
                let Some(event) = state.names.get_mut(&name).and_then(VecDeque::pop_front) else {
                    state.names.remove(&name);
                    continue;
                };
                state.queued -= 1;
                running.push(handle(shared.clone(), name, event));
            }
            shrink(&mut state);
            // A name stays in `names` while it is handled, so this also means nothing runs.
            state.closed && state.names.is_empty()
        };
        if exit {
            break;
        }
        tokio::select! {
            biased;
            Some(name) = running.next(), if !running.is_empty() => {
                let mut state = shared.lock();
                let more = state.names.get(&name).is_some_and(|q| !q.is_empty());
                if more {
                    state.ready.push_back(name);
                } else {
                    state.names.remove(&name);
                }
            }
            () = shared.wake.notified() => {}
        }
    }
    shared.lock().finished = true;
    shared.done.notify_waiters();
}

/// Gives memory back after a burst of many names: removed entries do not shrink a map.
fn shrink(state: &mut State) {
    const MIN: usize = 64;
    if state.names.capacity() > MIN && state.names.len() < state.names.capacity() / 4 {
        state.names.shrink_to((state.names.len() * 2).max(MIN));
    }
    if state.ready.capacity() > MIN && state.ready.len() < state.ready.capacity() / 4 {
        state.ready.shrink_to((state.ready.len() * 2).max(MIN));
    }
}
