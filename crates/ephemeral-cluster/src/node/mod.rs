//! The node's task: publishes what is raised on the local sink into chitchat, and mirrors every
//! live member's signals back into the local sink.
//!
//! Shape: the local sink's subscriber queues this node's raises in the outbox (a std lock, no
//! await); the task places them in the ring of signal keys ([`ring`](crate::ring)) under
//! chitchat's lock, then reads the other members' state ([`mirror`](crate::mirror)) and applies
//! what to add to and remove from the local sink outside chitchat's lock. It wakes on every
//! raise and retraction, on every remote update chitchat applies (a retraction also sets a
//! `removals` key, since chitchat announces sets but not deletions), and every eighth of a
//! gossip interval (for removals otherwise unannounced, departures, and own signals that age
//! out). After a change it gossips with up to three live peers at once, at most once per tenth
//! of a gossip interval, so a change travels in about one round trip.
//!
//! Invariants:
//! - Lock order: chitchat's (async) lock, then `Core::ring`; `Core::mirrored`, then the sink's
//!   lock. The outbox lock is a leaf. No std lock is held across an await, and no user code
//!   (the sink's subscribers) runs under any of these locks.
//! - An event the task mirrors into the local sink is never published again: the publisher
//!   skips the one event being mirrored on this thread ([`MIRRORING`]); anything a subscriber
//!   raises in reaction is published as usual.
//! - What this node publishes is bounded by `max_capacity` keys, the outbox by `max_capacity`
//!   raises (older unsent ones would be overwritten in the ring anyway); once the node has
//!   stopped, nothing is queued.

mod task;

pub(crate) use task::run;

use crate::codec::{self, Identity, IdentitySet, BYE_KEY, SIGNAL_PREFIX};
use crate::member::Member;
use crate::mirror::Diff;
use crate::ring::OwnRing;
use crate::transport::Wire;
use chitchat::{ChitchatHandle, ChitchatId};
use ephemeral::{OperationId, SignalEvent, SignalSink};
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};

/// The event a node's task is mirroring into its local sink on this thread right now: the
/// node (its `Core`'s address), the event's operation id and timestamp.
type Mirroring = Option<(usize, OperationId, SystemTime)>;

thread_local! {
    static MIRRORING: Cell<Mirroring> = const { Cell::new(None) };
}

/// Marks `event` as being mirrored on this thread until dropped (also on unwind).
struct MirroringGuard;

impl MirroringGuard {
    fn enter(core: &Core, event: &SignalEvent) -> Self {
        let me = core as *const Core as usize;
        MIRRORING.with(|m| m.set(Some((me, event.operation_id(), event.timestamp()))));
        MirroringGuard
    }
}

impl Drop for MirroringGuard {
    fn drop(&mut self) {
        MIRRORING.with(|m| m.set(None));
    }
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
    failure_timeout: Duration,
    pub(crate) bound: SocketAddr,
    outbox: Mutex<VecDeque<SignalEvent>>,
    ring: Mutex<OwnRing>,
    pub(crate) wake: Notify,
    /// Identities of the remote events mirrored into `local`.
    mirrored: Mutex<IdentitySet>,
    pub(crate) members: watch::Sender<Vec<Member>>,
    /// Set once the task has ended: nothing is queued any more.
    stopped: AtomicBool,
    /// Raises through `local` too long to publish (they stay local).
    pub(crate) unpublished: AtomicU64,
    /// Remote values that did not decode.
    pub(crate) undecodable: AtomicU64,
    /// Rotates the peers a push goes to.
    push_turn: AtomicUsize,
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
    pub(crate) failure_timeout: Duration,
    pub(crate) bound: SocketAddr,
}

impl Core {
    pub(crate) fn new(parts: CoreParts) -> Arc<Core> {
        let me = Member::new(&parts.me, true);
        let (members, _) = watch::channel(vec![me]);
        let max_capacity = parts.local.max_capacity();
        Arc::new(Core {
            max_capacity,
            local: parts.local,
            me: parts.me,
            chitchat: parts.chitchat,
            wire: parts.wire,
            gossip_interval: parts.gossip_interval,
            max_age: parts.max_age,
            max_signal_bytes: parts.max_signal_bytes,
            failure_timeout: parts.failure_timeout,
            bound: parts.bound,
            outbox: Mutex::new(VecDeque::new()),
            ring: Mutex::new(OwnRing::new(max_capacity, parts.max_age)),
            wake: Notify::new(),
            mirrored: Mutex::new(IdentitySet::default()),
            members,
            stopped: AtomicBool::new(false),
            unpublished: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            push_turn: AtomicUsize::new(0),
            last_log: AtomicU64::new(0),
        })
    }

    /// The subscriber that publishes what is raised on the local sink.
    pub(crate) fn publisher(core: &Arc<Core>) -> impl Fn(&SignalEvent) + Send + Sync + 'static {
        let weak: Weak<Core> = Arc::downgrade(core);
        let me = Arc::as_ptr(core) as usize;
        move |event: &SignalEvent| {
            let mirrored = Some((me, event.operation_id(), event.timestamp()));
            if MIRRORING.with(Cell::get) == mirrored {
                return;
            }
            if let Some(core) = weak.upgrade() {
                core.publish(event);
            }
        }
    }

    /// Whether `name` and `key` fit the cluster's limit once escaped; the offender otherwise.
    pub(crate) fn check_len(
        &self,
        name: &str,
        key: Option<&str>,
    ) -> Result<(), (&'static str, usize)> {
        let name_len = codec::escaped_len(name);
        if name_len > self.max_signal_bytes {
            return Err(("name", name_len));
        }
        match key.map(codec::escaped_len) {
            Some(len) if len > self.max_signal_bytes => Err(("key", len)),
            _ => Ok(()),
        }
    }

    fn publish(&self, event: &SignalEvent) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
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
        if outbox.len() >= self.max_capacity {
            // The oldest unsent raise would be overwritten in the ring anyway.
            outbox.pop_front();
        }
        outbox.push_back(event.clone());
        drop(outbox);
        self.wake.notify_one();
    }

    /// Retracts this node's own signals named `name`, here and everywhere. Returns whether
    /// there were any.
    pub(crate) fn retract(&self, name: &str) -> bool {
        // This node's signals of that name in the local sink (not the mirrored ones).
        let mut own = Vec::new();
        {
            let mirrored = lock(&self.mirrored);
            self.local.remove_where(|e| {
                let mine = e.is(name) && !mirrored.contains(e);
                if mine {
                    own.push(Identity::of(e));
                }
                mine
            });
        }
        // The ring also finds published ones the local sink has already dropped for room.
        let published = lock(&self.ring).retract(name, &own, ephemeral::now());
        if published && !self.stopped.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
        published || !own.is_empty()
    }

    fn log_limited(&self, log: impl FnOnce()) {
        let second = crate::seal::wall_ms() / 1000;
        if self.last_log.swap(second, Ordering::Relaxed) != second {
            log();
        }
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
            for event in add {
                let _guard = MirroringGuard::enter(self, &event);
                self.local.raise_event(event);
            }
        }
    }

    /// Gossips with up to three live peers now (instead of waiting for the next tick); the
    /// others hear of the change from them.
    pub(crate) fn gossip_now(&self) {
        let peers: Vec<SocketAddr> = self
            .members
            .borrow()
            .iter()
            .filter(|m| !m.is_self())
            .map(Member::addr)
            .collect();
        if peers.is_empty() {
            return;
        }
        let turn = self.push_turn.fetch_add(3, Ordering::Relaxed);
        for i in 0..peers.len().min(3) {
            let _ = self.chitchat.gossip(peers[(turn + i) % peers.len()]);
        }
    }

    /// Stops queueing: called when the task ends.
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        lock(&self.outbox).clear();
    }

    /// Empties the mirror of the other members and lists only this node (after leaving).
    pub(crate) fn forget_others(&self) {
        let mut mirrored = lock(&self.mirrored);
        self.local.remove_where(|e| mirrored.contains(e));
        *mirrored = IdentitySet::default();
        drop(mirrored);
        self.members.send_replace(vec![Member::new(&self.me, true)]);
    }

    /// Says goodbye: marks this node as leaving, deletes its signals, and tells the peers.
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
        self.gossip_all();
    }

    /// Gossips with every live peer now (for the goodbye).
    fn gossip_all(&self) {
        for m in self.members.borrow().iter().filter(|m| !m.is_self()) {
            let _ = self.chitchat.gossip(m.addr());
        }
    }

    /// Offers the goodbye again (see `ClusterSink::leave`).
    pub(crate) fn repeat_goodbye(&self) {
        self.gossip_all();
    }
}
