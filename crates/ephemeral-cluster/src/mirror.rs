//! What this node knows of the other members: who is alive, and which of their signals it
//! mirrors.
//!
//! Liveness is decided here, not by chitchat's phi-accrual detector: phi divides the silence
//! by the mean interval between heartbeats, and every push after a raise moves a heartbeat, so
//! after a burst of raises the mean falls to milliseconds and an ordinary gossip gap would mark
//! a healthy member dead (and its signals would leave and come back). A member counts as alive
//! here while its heartbeat has moved within `failure_timeout`, and only once it has moved
//! since this node first heard of it (so state about a dead member, relayed by a third one,
//! does not bring it back).
//!
//! Invariants: the task owns this state (no lock); one pass reads chitchat's state under its
//! lock and returns what to add and remove, applied afterwards outside that lock.

use crate::codec::{self, Identity, BYE_KEY, SIGNAL_PREFIX};
use crate::member::Member;
use chitchat::{Chitchat, ChitchatId};
use ephemeral::SignalEvent;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// What one pass found: remote events to mirror and mirrored ones to drop.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    pub(crate) add: Vec<SignalEvent>,
    pub(crate) remove: Vec<Identity>,
}

/// What this node last read of one other member.
#[derive(Debug)]
struct Remote {
    heartbeat: u64,
    /// When `heartbeat` last moved.
    moved_at: Instant,
    /// Whether it moved since this node first heard of the member.
    moved: bool,
    /// The member's state version when its signals were last read (`None`: read them).
    read_version: Option<u64>,
    /// Its signals this node mirrors, by slot: the value's version and the event's identity.
    slots: HashMap<usize, (u64, Identity)>,
}

/// The other members as this node sees them.
#[derive(Debug)]
pub(crate) struct Mirror {
    remotes: HashMap<ChitchatId, Remote>,
    failure_timeout: Duration,
}

impl Mirror {
    pub(crate) fn new(failure_timeout: Duration) -> Self {
        Mirror {
            remotes: HashMap::new(),
            failure_timeout,
        }
    }

    /// Reads every member's state: returns what changed in the mirror and the live members.
    pub(crate) fn sweep(
        &mut self,
        cc: &Chitchat,
        me: &ChitchatId,
        undecodable: &AtomicU64,
    ) -> (Diff, Vec<Member>) {
        let now = Instant::now();
        let mut diff = Diff::default();
        let mut members = vec![Member::new(me, true)];
        let mut alive = HashSet::new();
        for (id, state) in cc.node_states() {
            if id == me {
                continue;
            }
            let heartbeat = u64::from(state.heartbeat());
            let remote = self.remotes.entry(id.clone()).or_insert_with(|| Remote {
                heartbeat,
                moved_at: now,
                moved: false,
                read_version: None,
                slots: HashMap::new(),
            });
            if heartbeat > remote.heartbeat {
                remote.heartbeat = heartbeat;
                remote.moved_at = now;
                remote.moved = true;
            }
            let live = remote.moved
                && now.duration_since(remote.moved_at) <= self.failure_timeout
                && state.get(BYE_KEY).is_none();
            if !live {
                continue;
            }
            alive.insert(id.clone());
            members.push(Member::new(id, false));
            if remote.read_version == Some(state.max_version()) {
                continue;
            }
            remote.read_version = Some(state.max_version());
            let mut present = HashSet::new();
            for (key, value) in state.iter_prefix(SIGNAL_PREFIX) {
                let Some(slot) = codec::parse_slot_key(key) else {
                    continue;
                };
                if let Some((version, old)) = remote.slots.get(&slot) {
                    if *version == value.version {
                        present.insert(slot);
                        continue;
                    }
                    diff.remove.push(old.clone());
                    remote.slots.remove(&slot);
                }
                match codec::decode(&value.value) {
                    Some(event) => {
                        present.insert(slot);
                        remote
                            .slots
                            .insert(slot, (value.version, Identity::of(&event)));
                        diff.add.push(event);
                    }
                    None => {
                        undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            remote.slots.retain(|slot, (_, identity)| {
                let keep = present.contains(slot);
                if !keep {
                    diff.remove.push(identity.clone());
                }
                keep
            });
        }
        // Members that died, left, or were forgotten by chitchat: their signals go; a member
        // chitchat still lists keeps its liveness record, so it must move again to come back.
        let known: HashSet<&ChitchatId> = cc.node_states().keys().collect();
        self.remotes.retain(|id, remote| {
            if !alive.contains(id) {
                diff.remove
                    .extend(remote.slots.drain().map(|(_, (_, identity))| identity));
                remote.read_version = None;
            }
            known.contains(id)
        });
        members.sort();
        (diff, members)
    }
}
