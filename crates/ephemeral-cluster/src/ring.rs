//! This node's published signals: a ring of `max_capacity` chitchat keys, reused.
//!
//! Invariants:
//! - At most `max_capacity` slots, so this node's signal keys (values and tombstones) never
//!   exceed `max_capacity` however many signals it raises.
//! - A free slot (retracted or expired) is used before a live one is overwritten; when every
//!   slot is live, the one the cursor points at (the oldest, unless slots were freed out of
//!   order) is overwritten.
//! - Every slot emptied here is queued in `deletes` until the node's task deletes its key;
//!   the task applies deletes before sets, so a slot freed and reused in one batch ends set.
//! - The ring is changed by the task (publish, expire) and by `ClusterSink::retract` on the
//!   caller's thread, under `Core::ring`; nothing here awaits or calls user code.

use crate::codec::{Identity, IdentitySet};
use ephemeral::SignalEvent;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

#[derive(Debug)]
struct Slot {
    identity: Identity,
    /// When the signal stops counting: its timestamp plus the shorter of its ttl and max_age.
    end: SystemTime,
}

/// The ring of this node's published signals.
#[derive(Debug)]
pub(crate) struct OwnRing {
    slots: Vec<Option<Slot>>,
    /// Empty slots, used first.
    free: Vec<usize>,
    /// The slot to overwrite when none is free.
    cursor: usize,
    /// The soonest `end` among live slots (perhaps one already freed: a hint).
    next_end: Option<SystemTime>,
    /// Slots emptied since the task last ran, whose keys it must delete.
    deletes: Vec<usize>,
    /// Whether one of `deletes` came from a retraction (announced to the others).
    retracted: bool,
    /// Retractions of signals not yet published (a raise racing with its own retraction): their
    /// later publish is dropped. Each is kept until the signal would have ended anyway.
    early: VecDeque<(SystemTime, Identity)>,
    early_set: IdentitySet,
    max_age: Duration,
}

/// What the task must write after a publish.
pub(crate) enum Placed {
    /// Set this slot's key.
    At(usize),
    /// The signal was retracted before it could be published.
    Retracted,
}

impl OwnRing {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        OwnRing {
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity).rev().collect(),
            cursor: 0,
            next_end: None,
            deletes: Vec::new(),
            retracted: false,
            early: VecDeque::new(),
            early_set: IdentitySet::default(),
            max_age,
        }
    }

    fn end_of(&self, event: &SignalEvent) -> SystemTime {
        let life = event.ttl().map_or(self.max_age, |t| t.min(self.max_age));
        event
            .timestamp()
            .checked_add(life)
            .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4))
    }

    /// Takes a slot for `event`.
    pub(crate) fn place(&mut self, event: &SignalEvent) -> Placed {
        if !self.early_set.is_empty() && self.early_set.contains(event) {
            return Placed::Retracted;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.cursor;
                self.cursor = (self.cursor + 1) % self.slots.len();
                slot
            }
        };
        let end = self.end_of(event);
        self.slots[slot] = Some(Slot {
            identity: Identity::of(event),
            end,
        });
        self.next_end = Some(self.next_end.map_or(end, |n| n.min(end)));
        Placed::At(slot)
    }

    fn empty(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.free.push(slot);
        self.deletes.push(slot);
    }

    /// Retracts every published signal named `name`, and remembers `unpublished` (this node's
    /// signals of that name seen in the local sink) so that a publish still on its way is
    /// dropped. Returns whether a published one was found.
    pub(crate) fn retract(
        &mut self,
        name: &str,
        unpublished: &[Identity],
        now: SystemTime,
    ) -> bool {
        let mut found = IdentitySet::default();
        for slot in 0..self.slots.len() {
            let hit = self.slots[slot]
                .as_ref()
                .filter(|s| s.identity.name() == name)
                .map(|s| s.identity.clone());
            if let Some(identity) = hit {
                found.insert(identity);
                self.empty(slot);
            }
        }
        let published = !found.is_empty();
        self.retracted |= published;
        for identity in unpublished {
            if !found.contains_identity(identity) && self.early_set.insert(identity.clone()) {
                let until = now.checked_add(self.max_age).unwrap_or(now);
                self.early.push_back((until, identity.clone()));
                if self.early.len() > self.slots.len() {
                    if let Some((_, old)) = self.early.pop_front() {
                        self.early_set.remove(&old);
                    }
                }
            }
        }
        published
    }

    /// Empties the slots whose signals have ended, and forgets early retractions past theirs.
    pub(crate) fn expire(&mut self, now: SystemTime) {
        while self.early.front().is_some_and(|(until, _)| *until <= now) {
            if let Some((_, id)) = self.early.pop_front() {
                self.early_set.remove(&id);
            }
        }
        if self.next_end.is_none_or(|end| end > now) {
            return;
        }
        let mut next_end: Option<SystemTime> = None;
        for slot in 0..self.slots.len() {
            if let Some(end) = self.slots[slot].as_ref().map(|s| s.end) {
                if end <= now {
                    self.empty(slot);
                } else {
                    next_end = Some(next_end.map_or(end, |n| n.min(end)));
                }
            }
        }
        self.next_end = next_end;
    }

    /// The slots to delete, and whether a retraction emptied one of them.
    pub(crate) fn take_deletes(&mut self) -> (Vec<usize>, bool) {
        let retracted = std::mem::take(&mut self.retracted);
        (std::mem::take(&mut self.deletes), retracted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemeral::OperationId;

    fn event(name: &str, at: SystemTime) -> SignalEvent {
        SignalEvent::new(name, OperationId::next(), None, at)
    }

    fn slot(p: Placed) -> usize {
        match p {
            Placed::At(s) => s,
            Placed::Retracted => panic!("retracted"),
        }
    }

    #[test]
    fn a_freed_slot_is_used_before_a_live_one_is_overwritten() {
        let now = SystemTime::now();
        let mut ring = OwnRing::new(3, Duration::from_secs(60));
        let x = slot(ring.place(&event("x", now)));
        let y = slot(ring.place(&event("y", now)));
        assert!(ring.retract("y", &[], now));
        let (deletes, retracted) = ring.take_deletes();
        assert_eq!((deletes, retracted), (vec![y], true));
        let z = slot(ring.place(&event("z", now)));
        let w = slot(ring.place(&event("w", now)));
        assert!([z, w].contains(&y), "y's slot was reused");
        assert!(![z, w].contains(&x), "x is still live and kept");
        // Full now: the next one overwrites.
        let v = slot(ring.place(&event("v", now)));
        assert!(v < 3);
    }

    #[test]
    fn a_retraction_ahead_of_its_publish_drops_the_publish() {
        let now = SystemTime::now();
        let mut ring = OwnRing::new(4, Duration::from_secs(60));
        let e = event("late", now);
        assert!(!ring.retract("late", &[Identity::of(&e)], now));
        assert!(matches!(ring.place(&e), Placed::Retracted));
        ring.expire(now + Duration::from_secs(61));
        assert!(
            matches!(ring.place(&e), Placed::At(_)),
            "forgotten once it would have ended"
        );
    }

    #[test]
    fn signals_expire_by_the_shorter_of_ttl_and_max_age() {
        let now = SystemTime::now();
        let mut ring = OwnRing::new(4, Duration::from_secs(10));
        let a = slot(ring.place(&event("a", now).with_ttl(Duration::from_secs(2))));
        let b = slot(ring.place(&event("b", now)));
        ring.expire(now + Duration::from_secs(3));
        assert_eq!(ring.take_deletes(), (vec![a], false));
        ring.expire(now + Duration::from_secs(11));
        assert_eq!(ring.take_deletes(), (vec![b], false));
    }
}
