//! [`trim`](super::trim) against sort-and-take: after a trim, the shards hold every pinned
//! operation plus the newest `max - pinned` live unpinned ones over all shards (newest by
//! completion order), nothing else, and every record that left was reported.

use super::{order, trim, Finished, OnRemoved, Window};
use crate::id::OperationId;
use crate::signal::SignalEvent;
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// Counts the signals reported as leaving (each record carries one).
#[derive(Default)]
struct Count(Cell<usize>);

impl OnRemoved for Count {
    fn removed(&self, signals: &[SignalEvent]) {
        self.0.set(self.0.get() + signals.len());
    }
}

fn record(id: OperationId, seq: u64, end: Instant) -> Finished<(), ()> {
    Finished {
        id,
        key: None,
        seq,
        start: end,
        end,
        error: None,
        signals: vec![SignalEvent::new("s", id, None, crate::now())],
        result: None,
        label: None,
    }
}

fn held_ids(shards: &[Window<(), ()>]) -> BTreeSet<u64> {
    shards
        .iter()
        .flat_map(|w| w.finished.iter().chain(w.pinned.iter()))
        .map(|r| r.id.get())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn trim_keeps_pinned_plus_the_newest_live(
        n_shards in 1usize..=4,
        max in 0usize..=8,
        lifetime in prop::option::of(0u64..=50),
        // (shard, completion offset in ms, pinned): few distinct offsets, so records often
        // finish at the same instant.
        recs in prop::collection::vec((0usize..4, 0u64..40, prop::bool::weighted(0.15)), 0..40),
        now_at in 0u64..=80,
    ) {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let lifetime = lifetime.map(Duration::from_millis);
        let gates = Count::default();
        let mut shards: Vec<Window<(), ()>> =
            (0..n_shards).map(|_| Window::new(max, lifetime)).collect();
        for (seq, &(shard, end, pinned)) in (0u64..).zip(recs.iter()) {
            let rec = record(OperationId::next(), seq, at(end));
            shards[shard % n_shards].push(rec, pinned, at(end), &gates);
        }
        let now = at(now_at);

        // The model: sort the live unpinned records by completion order and take the newest.
        let pinned: BTreeSet<u64> = shards
            .iter()
            .flat_map(|w| w.pinned.iter())
            .map(|r| r.id.get())
            .collect();
        let mut unpinned: Vec<_> = shards
            .iter()
            .flat_map(|w| w.finished.iter())
            .filter(|r| lifetime.is_none_or(|l| r.end + l >= now))
            .map(|r| (order(r), r.id.get()))
            .collect();
        unpinned.sort_unstable();
        let budget = max.saturating_sub(pinned.len());
        let newest = unpinned.iter().rev().take(budget).map(|&(_, id)| id);
        let expected: BTreeSet<u64> = pinned.iter().copied().chain(newest).collect();

        let before = held_ids(&shards).len();
        let reported = gates.0.get();
        trim(shards.iter_mut(), max, now, &gates);
        let after = held_ids(&shards);
        prop_assert_eq!(&after, &expected);
        prop_assert_eq!(gates.0.get() - reported, before - after.len(), "unreported removals");
    }
}
