//! The node's task: publishes what is raised on the local sink into chitchat, and mirrors every
//! live member's signals back into the local sink.
//!
//! Shape: the local sink's subscriber queues this node's raises in the outbox (a std lock, no
//! await); the task drains the outbox under chitchat's lock (a ring of `max_capacity` keys, see
//! [`codec`](crate::codec)), then reads the other members' state and computes what to add to and
//! remove from the local sink, then applies that outside chitchat's lock. It wakes on every
//! raise, on every remote update chitchat applies (a retraction also sets a `removals` key, since
//! chitchat announces sets but not deletions), and every eighth of a gossip interval (for
//! removals otherwise unannounced, departures, and own signals that age out).
//!
//! Invariants:
//! - Lock order: chitchat's (async) lock, then `Core::mirrored`, then the sink's lock. The
//!   outbox lock is a leaf. No std lock is held across an await, and no user code (the sink's
//!   subscribers) runs under `mirrored` or chitchat's lock.
//! - An event the task mirrors into the local sink is never published again: the subscriber
//!   skips events raised while [`MIRRORING`] names this node.
//! - What this node publishes is bounded by `max_capacity` keys; the outbox by `max_capacity`
//!   raises (older unsent raises would be overwritten in the ring anyway).

use crate::codec::{self, Identity, IdentitySet, BYE_KEY, REMOVALS_KEY, SIGNAL_PREFIX};
use crate::member::Member;
use crate::transport::Wire;
use chitchat::{Chitchat, ChitchatHandle, ChitchatId, NodeState};
use ephemeral::{SignalEvent, SignalSink};
use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

thread_local! {
    /// The node (its `Core`'s address) whose task is mirroring into its local sink on this
    /// thread right now; 0 for none.
    static MIRRORING: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as mirroring for `core` until dropped (also on unwind).
struct MirroringGuard;

impl MirroringGuard {
    fn enter(core: &Core) -> Self {
        MIRRORING.with(|m| m.set(core as *const Core as usize));
        MirroringGuard
    }
}

impl Drop for MirroringGuard {
    fn drop(&mut self) {
        MIRRORING.with(|m| m.set(0));
    }
}

/// What the task is asked to do with this node's own signals.
#[derive(Debug)]
pub(crate) enum Out {
    Publish(SignalEvent),
    Retract(Vec<Identity>),
}

/// Raises and retractions waiting for the task, in order.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Out>,
    /// How many of `queue` are publishes.
    publishes: usize,
}

/// The node's state shared by its handles, its subscriber and its task.
pub(crate) struct Core {
    pub(crate) local: SignalSink,
    pub(crate) me: ChitchatId,
    pub(crate) chitchat: ChitchatHandle,
    pub(crate) wire: Arc<Wire>,
    pub(crate) gossip_interval: Duration,
    pub(crate) max_capacity: usize,
    pub(crate) max_age: Duration,
    pub(crate) max_signal_bytes: usize,
    outbox: Mutex<Outbox>,
    pub(crate) wake: Notify,
    /// Identities of the remote events mirrored into `local`.
    mirrored: Mutex<IdentitySet>,
    pub(crate) members: watch::Sender<Vec<Member>>,
    /// Raises through `local` too long to publish (they stay local).
    pub(crate) unpublished: AtomicU64,
    /// Remote values that did not decode.
    pub(crate) undecodable: AtomicU64,
    last_log: AtomicU64,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing that can panic runs under these locks while they are mutated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The settings the core is built from.
pub(crate) struct CoreParts {
    pub(crate) local: SignalSink,
    pub(crate) me: ChitchatId,
    pub(crate) chitchat: ChitchatHandle,
    pub(crate) wire: Arc<Wire>,
    pub(crate) gossip_interval: Duration,
    pub(crate) max_age: Duration,
    pub(crate) max_signal_bytes: usize,
}

impl Core {
    pub(crate) fn new(parts: CoreParts) -> Arc<Core> {
        let me = Member::new(&parts.me, true);
        let (members, _) = watch::channel(vec![me]);
        Arc::new(Core {
            max_capacity: parts.local.max_capacity(),
            local: parts.local,
            me: parts.me,
            chitchat: parts.chitchat,
            wire: parts.wire,
            gossip_interval: parts.gossip_interval,
            max_age: parts.max_age,
            max_signal_bytes: parts.max_signal_bytes,
            outbox: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            mirrored: Mutex::new(IdentitySet::default()),
            members,
            unpublished: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
        })
    }

    /// The subscriber that publishes what is raised on the local sink.
    pub(crate) fn publisher(core: &Arc<Core>) -> impl Fn(&SignalEvent) + Send + Sync + 'static {
        let weak: Weak<Core> = Arc::downgrade(core);
        let me = Arc::as_ptr(core) as usize;
        move |event: &SignalEvent| {
            if MIRRORING.with(Cell::get) == me {
                return;
            }
            if let Some(core) = weak.upgrade() {
                core.publish(event);
            }
        }
    }

    /// Whether `name` and `key` fit the cluster's limit.
    pub(crate) fn check_len(
        &self,
        name: &str,
        key: Option<&str>,
    ) -> Result<(), (&'static str, usize)> {
        if name.len() > self.max_signal_bytes {
            return Err(("name", name.len()));
        }
        match key {
            Some(k) if k.len() > self.max_signal_bytes => Err(("key", k.len())),
            _ => Ok(()),
        }
    }

    fn publish(&self, event: &SignalEvent) {
        if self.check_len(event.signal(), event.key()).is_err() {
            let n = self.unpublished.fetch_add(1, Ordering::Relaxed) + 1;
            self.log_limited(|| {
                tracing::warn!(
                    target: "ephemeral_cluster",
                    signal_len = event.signal().len(),
                    unpublished_so_far = n,
                    "a signal over the cluster's size limit stays local"
                );
            });
            return;
        }
        let mut outbox = lock(&self.outbox);
        if outbox.publishes >= self.max_capacity {
            // The oldest unsent raise would be overwritten in the ring anyway.
            if let Some(pos) = outbox
                .queue
                .iter()
                .position(|o| matches!(o, Out::Publish(_)))
            {
                outbox.queue.remove(pos);
                outbox.publishes -= 1;
            }
        }
        outbox.queue.push_back(Out::Publish(event.clone()));
        outbox.publishes += 1;
        drop(outbox);
        self.wake.notify_one();
    }

    /// Removes this node's own live signals named `name` from the local sink and asks the task
    /// to delete them everywhere. Returns whether there were any.
    pub(crate) fn retract(&self, name: &str) -> bool {
        let mut gone = Vec::new();
        {
            let mirrored = lock(&self.mirrored);
            self.local.remove_where(|e| {
                let own = e.is(name) && !mirrored.contains(e);
                if own {
                    gone.push(Identity::of(e));
                }
                own
            });
        }
        // `remove_where` may ask twice about an event: keep one of each.
        let mut seen = HashSet::new();
        gone.retain(|id| seen.insert(id.clone()));
        if gone.is_empty() {
            return false;
        }
        lock(&self.outbox).queue.push_back(Out::Retract(gone));
        self.wake.notify_one();
        true
    }

    fn log_limited(&self, log: impl FnOnce()) {
        let second = crate::seal::wall_ms() / 1000;
        if self.last_log.swap(second, Ordering::Relaxed) != second {
            log();
        }
    }

    fn take_outbox(&self) -> VecDeque<Out> {
        std::mem::take(&mut *lock(&self.outbox)).queue
    }

    /// Adds and removes mirrored remote events in the local sink. Runs outside chitchat's lock.
    fn apply(&self, diff: Diff) {
        if !diff.remove.is_empty() {
            let mut mirrored = lock(&self.mirrored);
            let mut gone = IdentitySet::default();
            for id in diff.remove {
                if mirrored.remove(&id) {
                    gone.insert(id);
                }
            }
            if !gone.is_empty() {
                self.local.remove_where(|e| gone.contains(e));
            }
        }
        if !diff.add.is_empty() {
            let mut add = diff.add;
            // In time order, so the sink stays ordered.
            add.sort_by_key(SignalEvent::timestamp);
            {
                let mut mirrored = lock(&self.mirrored);
                add.retain(|e| mirrored.insert(Identity::of(e)));
            }
            let _guard = MirroringGuard::enter(self);
            for event in add {
                self.local.raise_event(event);
            }
        }
    }

    /// Live peers' gossip addresses (not this node).
    fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.members
            .borrow()
            .iter()
            .filter(|m| !m.is_self())
            .map(Member::addr)
            .collect()
    }

    /// Sends a gossip round to every live peer now (instead of waiting for the next tick).
    pub(crate) fn gossip_now(&self) {
        for addr in self.peer_addrs() {
            let _ = self.chitchat.gossip(addr);
        }
    }

    /// Empties the mirror of the other members and lists only this node (after leaving).
    pub(crate) fn forget_others(&self) {
        let mut mirrored = lock(&self.mirrored);
        self.local.remove_where(|e| mirrored.contains(e));
        *mirrored = IdentitySet::default();
        drop(mirrored);
        self.members.send_replace(vec![Member::new(&self.me, true)]);
    }

    /// Says goodbye: marks this node as leaving, deletes its signals, and tells every peer.
    pub(crate) async fn say_goodbye(&self) {
        {
            let cc = self.chitchat.chitchat();
            let mut cc = cc.lock().await;
            let state = cc.self_node_state();
            let keys: Vec<String> = state
                .iter_prefix(SIGNAL_PREFIX)
                .map(|(k, _)| k.to_owned())
                .collect();
            for key in keys {
                state.delete(&key);
            }
            state.set(BYE_KEY, "1");
        }
        self.gossip_now();
    }
}

/// What one pass found: remote events to mirror and mirrored ones to drop.
#[derive(Debug, Default)]
struct Diff {
    add: Vec<SignalEvent>,
    remove: Vec<Identity>,
}

/// This node's ring of published signals.
#[derive(Debug)]
struct OwnRing {
    slots: Vec<Option<(Identity, SystemTime)>>,
    next: usize,
    /// The soonest end of a published signal, if any is published.
    next_end: Option<SystemTime>,
    /// Retractions that found nothing to delete yet (a raise racing with its own retraction):
    /// a later publish of one of these is dropped. Kept for one second.
    early_retracts: VecDeque<(SystemTime, Identity)>,
    early_set: IdentitySet,
    /// How many retractions deleted something (published as [`REMOVALS_KEY`]).
    removals: u64,
}

impl OwnRing {
    fn new(capacity: usize) -> Self {
        OwnRing {
            slots: vec![None; capacity],
            next: 0,
            next_end: None,
            early_retracts: VecDeque::new(),
            early_set: IdentitySet::default(),
            removals: 0,
        }
    }

    fn publish(&mut self, state: &mut NodeState, event: &SignalEvent, max_age: Duration) {
        if !self.early_set.is_empty() && self.early_set.contains(event) {
            return;
        }
        let life = event.ttl().map_or(max_age, |ttl| ttl.min(max_age));
        let end = event
            .timestamp()
            .checked_add(life)
            .unwrap_or(event.timestamp());
        let slot = self.next;
        self.next = (self.next + 1) % self.slots.len();
        state.set(codec::slot_key(slot), codec::encode(event));
        self.slots[slot] = Some((Identity::of(event), end));
        self.next_end = Some(self.next_end.map_or(end, |n| n.min(end)));
    }

    fn retract(&mut self, state: &mut NodeState, ids: Vec<Identity>, now: SystemTime) {
        let mut wanted = IdentitySet::default();
        for id in &ids {
            wanted.insert(id.clone());
        }
        let mut found = IdentitySet::default();
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if let Some((id, _)) = entry {
                if wanted.contains_identity(id) {
                    found.insert(id.clone());
                    state.delete(&codec::slot_key(slot));
                    *entry = None;
                }
            }
        }
        if !found.is_empty() {
            self.removals += 1;
            state.set(REMOVALS_KEY, self.removals);
        }
        for id in ids {
            if !found.contains_identity(&id) && self.early_set.insert(id.clone()) {
                self.early_retracts.push_back((now, id));
            }
        }
    }

    /// Deletes own signals whose time is up, and forgets old early retractions.
    fn expire(&mut self, state: &mut NodeState, now: SystemTime) {
        while let Some((at, _)) = self.early_retracts.front() {
            if now.duration_since(*at).unwrap_or_default() < Duration::from_secs(1) {
                break;
            }
            if let Some((_, id)) = self.early_retracts.pop_front() {
                self.early_set.remove(&id);
            }
        }
        if self.next_end.is_none_or(|end| end > now) {
            return;
        }
        let mut next_end = None;
        for (slot, entry) in self.slots.iter_mut().enumerate() {
            if let Some((_, end)) = entry {
                if *end <= now {
                    state.delete(&codec::slot_key(slot));
                    *entry = None;
                } else {
                    let end = *end;
                    next_end = Some(next_end.map_or(end, |n: SystemTime| n.min(end)));
                }
            }
        }
        self.next_end = next_end;
    }
}

/// What this node last read of one remote member.
#[derive(Debug, Default)]
struct RemoteNode {
    max_version: Option<u64>,
    slots: HashMap<usize, (u64, Identity)>,
}

/// What this node mirrors of the others.
#[derive(Debug, Default)]
struct Mirror {
    nodes: HashMap<ChitchatId, RemoteNode>,
}

impl Mirror {
    /// Reads the live members' signals and returns what changed, and the member list.
    fn sweep(
        &mut self,
        cc: &Chitchat,
        me: &ChitchatId,
        undecodable: &AtomicU64,
    ) -> (Diff, Vec<Member>) {
        let mut diff = Diff::default();
        let mut members = vec![Member::new(me, true)];
        let mut live = HashSet::new();
        for id in cc.live_nodes() {
            if id == me {
                continue;
            }
            let Some(state) = cc.node_state(id) else {
                continue;
            };
            if state.get(BYE_KEY).is_some() {
                continue;
            }
            members.push(Member::new(id, false));
            live.insert(id.clone());
            let node = self.nodes.entry(id.clone()).or_default();
            if node.max_version == Some(state.max_version()) {
                continue;
            }
            node.max_version = Some(state.max_version());
            let mut present = HashSet::new();
            for (key, value) in state.iter_prefix(SIGNAL_PREFIX) {
                let Some(slot) = codec::parse_slot_key(key) else {
                    continue;
                };
                if let Some((version, old)) = node.slots.get(&slot) {
                    if *version == value.version {
                        present.insert(slot);
                        continue;
                    }
                    diff.remove.push(old.clone());
                    node.slots.remove(&slot);
                }
                match codec::decode(&value.value) {
                    Some(event) => {
                        present.insert(slot);
                        node.slots
                            .insert(slot, (value.version, Identity::of(&event)));
                        diff.add.push(event);
                    }
                    None => {
                        undecodable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            node.slots.retain(|slot, (_, id)| {
                let keep = present.contains(slot);
                if !keep {
                    diff.remove.push(id.clone());
                }
                keep
            });
        }
        self.nodes.retain(|id, node| {
            let keep = live.contains(id);
            if !keep {
                diff.remove
                    .extend(node.slots.drain().map(|(_, (_, identity))| identity));
            }
            keep
        });
        members.sort_by(|a, b| a.name().cmp(b.name()).then(a.addr().cmp(&b.addr())));
        (diff, members)
    }
}

/// Runs the node until `stop` is cancelled.
pub(crate) async fn run(core: Arc<Core>, stop: CancellationToken) {
    let cc = core.chitchat.chitchat();
    // Remote updates wake the task at once (the callback runs under chitchat's lock: it only
    // notifies). Deletions are not announced: the periodic pass finds them.
    let _listeners = {
        let guard = cc.lock().await;
        [SIGNAL_PREFIX, REMOVALS_KEY, BYE_KEY].map(|prefix| {
            let weak = Arc::downgrade(&core);
            let me = core.me.clone();
            guard.subscribe_event(prefix, move |event| {
                if *event.node != me {
                    if let Some(core) = weak.upgrade() {
                        core.wake.notify_one();
                    }
                }
            })
        })
    };
    let mut ring = OwnRing::new(core.max_capacity);
    let mut mirror = Mirror::default();
    let period = (core.gossip_interval / 8).max(Duration::from_millis(5));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A change is pushed to every peer at once, but at most once per `push_gap`: under a storm
    // of raises the pushes are batched instead of flooding the peers with exchanges.
    let push_gap = (core.gossip_interval / 50).max(Duration::from_millis(1));
    let mut last_push: Option<tokio::time::Instant> = None;
    let mut push_pending = false;
    loop {
        let push_at = last_push.map_or_else(tokio::time::Instant::now, |t| t + push_gap);
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = core.wake.notified() => {}
            () = tokio::time::sleep_until(push_at), if push_pending => {}
            _ = tick.tick() => {}
        }
        let outbox = core.take_outbox();
        push_pending |= !outbox.is_empty();
        let now = ephemeral::now();
        let (diff, members) = {
            let mut guard = cc.lock().await;
            let state = guard.self_node_state();
            for out in outbox {
                match out {
                    Out::Publish(event) => ring.publish(state, &event, core.max_age),
                    Out::Retract(ids) => ring.retract(state, ids, now),
                }
            }
            ring.expire(state, now);
            mirror.sweep(&guard, &core.me, &core.undecodable)
        };
        core.members.send_if_modified(|current| {
            if *current == members {
                return false;
            }
            log_membership(current, &members);
            *current = members;
            true
        });
        let now_t = tokio::time::Instant::now();
        if push_pending && last_push.is_none_or(|t| now_t >= t + push_gap) {
            core.gossip_now();
            last_push = Some(now_t);
            push_pending = false;
        }
        core.apply(diff);
    }
}

fn log_membership(before: &[Member], after: &[Member]) {
    for m in after.iter().filter(|m| !before.contains(m)) {
        tracing::info!(target: "ephemeral_cluster", member = m.name(), addr = %m.addr(), "member joined");
    }
    for m in before.iter().filter(|m| !after.contains(m)) {
        tracing::info!(target: "ephemeral_cluster", member = m.name(), addr = %m.addr(), "member left");
    }
}
