//! `GET api/events`: server-sent `stats` and `signal` events.
//!
//! # Invariants
//!
//! One unfold stream per connection, no spawned task: it ends when the client goes away and
//! axum drops the body. Sink streams are opened in the handler, before the response is
//! returned, so a signal raised once the response is in the client's hands is delivered.
//! Coordinators are polled with an overlap of [`OVERLAP`], so an event stamped just before a
//! poll but stored just after it is still seen; [`Recent`] drops what the overlap and the
//! sink/coordinator double path show twice.

use crate::api::AppState;
use crate::doc;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use ephemeral::SignalEvent;
use futures_util::stream::{self, BoxStream, SelectAll, Stream, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::{interval, Interval, MissedTickBehavior};

const STATS_EVERY: Duration = Duration::from_secs(1);
const POLL_EVERY: Duration = Duration::from_millis(250);
const OVERLAP: Duration = Duration::from_millis(500);
const SINK_STREAM_CAPACITY: usize = 1024;
const RECENT_CAPACITY: usize = 8192;

/// The last [`RECENT_CAPACITY`] signals sent, to send each once.
struct Recent {
    order: VecDeque<SignalEvent>,
    set: HashSet<SignalEvent>,
}

impl Recent {
    /// Whether `e` is new (and remembers it).
    fn insert(&mut self, e: &SignalEvent) -> bool {
        if !self.set.insert(e.clone()) {
            return false;
        }
        self.order.push_back(e.clone());
        if self.order.len() > RECENT_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

struct Connection {
    state: AppState,
    stats: Interval,
    poll: Interval,
    sinks: SelectAll<BoxStream<'static, (Arc<str>, SignalEvent)>>,
    last_poll: SystemTime,
    /// When the connection opened: older signals are in the page's embedded snapshot.
    opened: SystemTime,
    recent: Recent,
    queue: VecDeque<Event>,
}

impl Connection {
    fn push_signal(&mut self, source: &str, e: &SignalEvent) {
        if self.recent.insert(e) {
            if let Ok(event) = Event::default()
                .event("signal")
                .json_data(doc::signal_doc(source, e))
            {
                self.queue.push_back(event);
            }
        }
    }

    fn poll_coordinators(&mut self) {
        let now = ephemeral::now();
        let since = self
            .last_poll
            .checked_sub(OVERLAP)
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .max(self.opened);
        self.last_poll = now;
        let mut found: Vec<(SignalEvent, Arc<str>)> = Vec::new();
        for (name, c) in self.state.registry.coordinators() {
            c.visit_signals(&mut |e| {
                if e.timestamp() >= since {
                    found.push((e.clone(), name.clone()));
                }
                ControlFlow::Continue(())
            });
        }
        found.sort_by_key(|(e, _)| e.timestamp());
        for (e, name) in found {
            self.push_signal(&name, &e);
        }
    }
}

pub(crate) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sinks = stream::select_all(state.registry.sinks().into_iter().map(|(name, sink)| {
        sink.stream(SINK_STREAM_CAPACITY)
            .map(move |e| (name.clone(), e))
            .boxed()
    }));
    let opened = ephemeral::now();
    let mut stats = interval(STATS_EVERY);
    stats.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut poll = interval(POLL_EVERY);
    poll.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let connection = Connection {
        state,
        stats,
        poll,
        sinks,
        last_poll: opened,
        opened,
        recent: Recent {
            order: VecDeque::new(),
            set: HashSet::new(),
        },
        queue: VecDeque::new(),
    };
    let body = stream::unfold(connection, |mut c| async move {
        loop {
            if let Some(event) = c.queue.pop_front() {
                return Some((Ok(event), c));
            }
            tokio::select! {
                _ = c.stats.tick() => {
                    let status = doc::status(&c.state.registry, c.state.controls);
                    if let Ok(event) = Event::default().event("stats").json_data(status) {
                        c.queue.push_back(event);
                    }
                }
                _ = c.poll.tick() => c.poll_coordinators(),
                Some((name, e)) = c.sinks.next() => c.push_signal(&name, &e),
            }
        }
    });
    Sse::new(body).keep_alive(KeepAlive::default())
}
