//! The keyed intake against a naive model: one FIFO per key and a count of each key's items
//! out. Random pushes, takes, releases (alone or in one step with a take) and cancels, on a few
//! keys, with and without the lock-free fast slots and the per-key pending limit.
//!
//! Checked after every step: a take returns the oldest pending item of a key below its cap,
//! and returns nothing only when no key can start; refusals happen exactly when the capacity
//! or the key's pending limit says so; the pending count is exact. At the end every accepted
//! item has been taken or cancelled exactly once and no key state is left.

use super::Keyed;
use crate::coordinator::scheduler::{Intake, Refused, Released};
use crate::id::OperationId;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet, VecDeque};

#[derive(Clone, Debug)]
enum Step {
    Push(u8),
    Pop,
    /// Releases the running item at this index (modulo the number running).
    Finish(usize),
    /// Releases the running item at this index and takes the next one, in one step.
    FinishAndPop(usize),
    Cancel,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..5).prop_map(Step::Push),
        4 => Just(Step::Pop),
        3 => any::<usize>().prop_map(Step::Finish),
        2 => any::<usize>().prop_map(Step::FinishAndPop),
        1 => Just(Step::Cancel),
    ]
}

/// The model: pending items per key (in push order), and the items out (taken, not released).
#[derive(Default)]
struct Model {
    queues: HashMap<u8, VecDeque<u32>>,
    running: Vec<(u8, u32)>,
}

impl Model {
    fn pending(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    fn running_of(&self, key: u8) -> usize {
        self.running.iter().filter(|(k, _)| *k == key).count()
    }

    fn can_start(&self, per_key: usize) -> bool {
        self.queues
            .iter()
            .any(|(k, q)| !q.is_empty() && self.running_of(*k) < per_key)
    }
}

struct Run {
    intake: Keyed<u32, u8>,
    model: Model,
    per_key: usize,
    threshold: Option<usize>,
    capacity: usize,
    next_item: u32,
    ids: HashMap<u32, OperationId>,
    /// Items taken or cancelled, each once.
    out: HashSet<u32>,
}

impl Run {
    fn push(&mut self, key: u8) -> Result<(), TestCaseError> {
        let item = self.next_item;
        self.next_item += 1;
        let id = OperationId::next();
        let key_pending = self.model.queues.get(&key).map_or(0, VecDeque::len);
        let result = self
            .intake
            .try_push(item, key, self.capacity, u64::from(item), id);
        match result {
            Ok(got) => {
                prop_assert_eq!(got, id);
                prop_assert!(
                    self.model.pending() < self.capacity,
                    "accepted beyond capacity"
                );
                prop_assert!(
                    self.threshold.is_none_or(|t| key_pending < t),
                    "accepted beyond the key's pending limit"
                );
                self.model.queues.entry(key).or_default().push_back(item);
                self.ids.insert(item, id);
            }
            Err(Refused::KeyOverloaded(back)) => {
                prop_assert_eq!(back, item);
                prop_assert!(self.threshold.is_some_and(|t| key_pending >= t));
            }
            Err(Refused::Full(back, back_key)) => {
                prop_assert_eq!((back, back_key), (item, key));
                prop_assert!(self.model.pending() >= self.capacity);
            }
        }
        Ok(())
    }

    /// Takes the running item at `index` out of the model, for a release.
    fn finish(&mut self, index: usize) -> Option<Released<u8>> {
        if self.model.running.is_empty() {
            return None;
        }
        let (key, _) = self.model.running.remove(index % self.model.running.len());
        Some(Released { key })
    }

    fn pop(&mut self, release: Option<Released<u8>>) -> Result<(), TestCaseError> {
        let could_start = self.model.can_start(self.per_key);
        match self.intake.pop(release) {
            Some(job) => {
                let key = job.key;
                prop_assert!(
                    self.model.running_of(key) < self.per_key,
                    "key {} taken beyond its cap",
                    key
                );
                let queue = self.model.queues.get_mut(&key);
                let head = queue.and_then(VecDeque::pop_front);
                prop_assert_eq!(head, Some(job.item), "not the key's oldest pending item");
                prop_assert_eq!(self.ids.get(&job.item).copied(), Some(job.id));
                prop_assert!(self.out.insert(job.item), "item {} taken twice", job.item);
                self.model.running.push((key, job.item));
            }
            None => prop_assert!(!could_start, "nothing taken while a key could start"),
        }
        Ok(())
    }

    fn cancel(&mut self) -> Result<(), TestCaseError> {
        let mut drained = Vec::new();
        self.intake.drain_into(&mut drained);
        let mut expected: Vec<u32> = self.model.queues.values().flatten().copied().collect();
        let mut got: Vec<u32> = drained.iter().map(|(_, item)| *item).collect();
        expected.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(
            got,
            expected,
            "cancel drained other items than the pending ones"
        );
        for (id, item) in drained {
            prop_assert_eq!(self.ids.get(&item).copied(), Some(id));
            prop_assert!(
                self.out.insert(item),
                "item {} cancelled after leaving",
                item
            );
        }
        self.model.queues.clear();
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match *step {
            Step::Push(key) => self.push(key)?,
            Step::Pop => self.pop(None)?,
            Step::Finish(i) => {
                if let Some(released) = self.finish(i) {
                    self.intake.release(released);
                }
            }
            Step::FinishAndPop(i) => {
                let released = self.finish(i);
                self.pop(released)?;
            }
            Step::Cancel => self.cancel()?,
        }
        prop_assert_eq!(self.intake.len(), self.model.pending(), "pending count");
        Ok(())
    }

    /// Releases and takes until nothing is left.
    fn finish_all(&mut self) -> Result<(), TestCaseError> {
        while !self.model.running.is_empty() || self.model.pending() > 0 {
            let released = self.finish(0);
            self.pop(released)?;
            prop_assert_eq!(self.intake.len(), self.model.pending(), "pending count");
        }
        prop_assert!(self.intake.pop(None).is_none());
        prop_assert_eq!(self.intake.tracked_keys(), 0, "state left for idle keys");
        prop_assert_eq!(self.out.len(), self.ids.len(), "an accepted item was lost");
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn keyed_intake_matches_per_key_fifos(
        per_key in 1usize..=3,
        threshold in prop::option::of(1usize..=4),
        capacity in 1usize..=10,
        steps in prop::collection::vec(step(), 0..80),
    ) {
        let mut run = Run {
            intake: Keyed::new(per_key, threshold, capacity),
            model: Model::default(),
            per_key,
            threshold,
            capacity,
            next_item: 0,
            ids: HashMap::new(),
            out: HashSet::new(),
        };
        for s in &steps {
            run.step(s)?;
        }
        run.finish_all()?;
    }
}
