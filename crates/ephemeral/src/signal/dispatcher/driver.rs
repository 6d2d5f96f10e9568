//! The dispatcher's background task: per-name queues served round-robin, at most
//! `max_concurrent_names` names handled at once.

use super::shared::{Shared, State};
use crate::signal::handler::contained;
use crate::signal::SignalEvent;
use futures_util::stream::FuturesUnordered;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
    let fill = |running: &mut FuturesUnordered<_>| {
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
    let on_done = |name: Arc<str>| {
        let mut state = shared.lock();
        let more = state.names.get(&name).is_some_and(|q| !q.is_empty());
        if more {
            state.ready.push_back(name);
        } else {
            state.names.remove(&name);
        }
    };
    shared.runner.run(fill, on_done).await;
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
