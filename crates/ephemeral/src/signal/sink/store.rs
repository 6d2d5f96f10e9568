//! What a sink keeps: its events in arrival order, and how they age.
//!
//! # Invariants
//!
//! * `events` never holds more than the sink's capacity (the oldest is dropped on insert).
//! * An event is live at `now` while `at >= now - max_age` and, if it has a ttl, while its
//!   ttl has not run out. `at` is the event's own timestamp on tokio's clock, so an event
//!   raised with an old timestamp is already partly aged.
//! * While `unordered` is false, `events` is ordered by `at`, so expired events by age sit at
//!   the front. `next_ttl_end` is at or before the end of every stored ttl'd event, so before
//!   it no ttl'd event has ended behind a live one.

use super::subscribe::Subscribers;
use crate::signal::SignalEvent;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A stored event and its instant on tokio's clock.
pub(super) struct Stored {
    pub(super) event: SignalEvent,
    /// The event's timestamp on tokio's clock.
    pub(super) at: Instant,
    /// When its ttl runs out (`None`: no ttl, or beyond the clock's range).
    pub(super) ttl_end: Option<Instant>,
}

impl Stored {
    #[inline]
    pub(super) fn new(event: SignalEvent, at: Instant) -> Self {
        let ttl_end = event.ttl().and_then(|ttl| at.checked_add(ttl));
        Stored { event, at, ttl_end }
    }

    /// Whether it is live at `now`, given the age cut-off `oldest` (`now - max_age`, `None`
    /// when that is before the clock's range: nothing is too old then).
    #[inline]
    pub(super) fn live(&self, now: Instant, oldest: Option<Instant>) -> bool {
        oldest.is_none_or(|oldest| self.at >= oldest) && self.ttl_end.is_none_or(|end| end >= now)
    }

    /// The instant until which it stays live (`None`: beyond the clock's range).
    pub(super) fn end(&self, max_age: Duration) -> Option<Instant> {
        let by_age = self.at.checked_add(max_age);
        match self.ttl_end {
            Some(by_ttl) => Some(by_age.map_or(by_ttl, |a| a.min(by_ttl))),
            None => by_age,
        }
    }
}

/// What the sink's lock guards.
pub(super) struct State {
    pub(super) events: VecDeque<Stored>,
    /// The newest `at` ever pushed; an older push makes the deque unordered.
    pub(super) newest: Option<Instant>,
    pub(super) unordered: bool,
    /// The soonest end of a stored event with a ttl (maybe one already gone): from then on,
    /// expired events may sit behind live ones, and a purge looks at every event.
    pub(super) next_ttl_end: Option<Instant>,
    pub(super) subscribers: Subscribers,
    pub(super) next_subscriber: u64,
    /// The authoritative change counter; published to the sink's shared `generation`.
    pub(super) generation: u64,
    /// Interned names (see `names`).
    pub(super) names: super::names::Names,
}

impl State {
    pub(super) fn new(max_capacity: usize) -> Self {
        State {
            events: VecDeque::with_capacity(max_capacity.min(1024)),
            newest: None,
            unordered: false,
            next_ttl_end: None,
            subscribers: Arc::from(Vec::new()),
            next_subscriber: 0,
            generation: 0,
            names: super::names::Names::default(),
        }
    }

    /// Adds `stored`, dropping the oldest event when `max_capacity` are held; returns the
    /// dropped one (to be released outside the lock).
    #[inline]
    pub(super) fn push(&mut self, stored: Stored, max_capacity: usize) -> Option<Stored> {
        match self.newest {
            Some(newest) if stored.at < newest => self.unordered = true,
            _ => self.newest = Some(stored.at),
        }
        let evicted = if self.events.len() >= max_capacity {
            self.events.pop_front()
        } else {
            None
        };
        if let Some(end) = stored.ttl_end {
            self.next_ttl_end = Some(self.next_ttl_end.map_or(end, |n| n.min(end)));
        }
        self.events.push_back(stored);
        evicted
    }

    /// Drops every event.
    pub(super) fn take_all(&mut self) -> VecDeque<Stored> {
        self.newest = None;
        self.unordered = false;
        self.next_ttl_end = None;
        std::mem::take(&mut self.events)
    }

    /// Drops expired events: from the front while the deque is ordered by time, by a full pass
    /// otherwise (or once an event with a ttl may have ended behind live ones).
    pub(super) fn purge(&mut self, max_age: Duration, now: Instant) {
        let oldest = now.checked_sub(max_age);
        let ttl_due = self.next_ttl_end.is_some_and(|end| end < now);
        if self.unordered || ttl_due {
            self.events.retain(|s| s.live(now, oldest));
            self.unordered = !self
                .events
                .iter()
                .zip(self.events.iter().skip(1))
                .all(|(a, b)| a.at <= b.at);
            self.next_ttl_end = self.events.iter().filter_map(|s| s.ttl_end).min();
        } else {
            while self.events.front().is_some_and(|s| !s.live(now, oldest)) {
                self.events.pop_front();
            }
        }
    }
}
