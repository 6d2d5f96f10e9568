//! The node's task loop: wakes on raises, remote updates and a tick; publishes the outbox into
//! the ring under chitchat's lock, sweeps the other members' state, pushes changes to peers and
//! applies the mirror's diff to the local sink.

use super::{lock, Core};
use crate::codec::{self, BYE_KEY, REMOVALS_KEY, SIGNAL_PREFIX};
use crate::member::Member;
use crate::mirror::Mirror;
use crate::ring::Placed;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the node until `stop` is cancelled.
pub(crate) async fn run(core: Arc<Core>, stop: CancellationToken) {
    let cc = core.chitchat.chitchat();
    // Remote updates wake the task at once (the callback runs under chitchat's lock: it only
    // notifies).
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
    let mut mirror = Mirror::new(core.failure_timeout);
    let mut removals = 0u64;
    let period = (core.gossip_interval / 8).max(Duration::from_millis(5));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A change is pushed to peers at once, but at most once per `push_gap`: under a storm of
    // raises the pushes are batched rather than flooding the peers (and skewing their failure
    // detectors).
    let push_gap = (core.gossip_interval / 10).max(Duration::from_millis(1));
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
        let outbox = std::mem::take(&mut *lock(&core.outbox));
        let now = ephemeral::now();
        let (diff, members) = {
            let mut guard = cc.lock().await;
            let state = guard.self_node_state();
            let mut ring = lock(&core.ring);
            ring.expire(now);
            // Deletes before sets: a slot freed and reused in one batch ends set.
            let (deletes, retracted) = ring.take_deletes();
            for slot in &deletes {
                state.delete(&codec::slot_key(*slot));
            }
            if retracted {
                removals += 1;
                state.set(REMOVALS_KEY, removals);
            }
            for event in &outbox {
                if let Placed::At(slot) = ring.place(event) {
                    state.set(codec::slot_key(slot), codec::encode(event, core.max_age));
                }
            }
            drop(ring);
            push_pending |= retracted || !outbox.is_empty();
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
    core.stop();
}

fn log_membership(before: &[Member], after: &[Member]) {
    for m in after.iter().filter(|m| !before.contains(m)) {
        tracing::info!(target: "ephemeral_cluster", member = m.name(), addr = %m.addr(), "member joined");
    }
    for m in before.iter().filter(|m| !after.contains(m)) {
        tracing::info!(target: "ephemeral_cluster", member = m.name(), addr = %m.addr(), "member left");
    }
}
